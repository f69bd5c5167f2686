"""A real OpenAI-compatible model server for the Answer tests, and a recording
proxy in front of it.

LlamaServer runs llama.cpp's `llama-server` (installed by scripts/model_server.sh
into .tools/) with SmolLM2-135M-Instruct on a free loopback port; it is ready
when its /health says ok.

RecordingProxy sits between ragd and the model server and keeps, for every
request, what ragd sent (headers and JSON body: the prompt) and how the exchange
ended. It can also hold requests (a model server that says nothing: the
deadline test), add fields to the body before forwarding (a GBNF grammar that
shapes the real model's output, or ignore_eos so that only a cancellation can
stop a long generation), and counts requests in flight. Every outcome is an
event the tests wait on, never a sleep.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import ClientSession, ClientTimeout, web
from conftest import free_port

REPO = Path(__file__).resolve().parents[1]
BIN = Path(os.environ.get("TEST_LLAMA_SERVER", REPO / ".tools" / "bin" / "llama-server"))
MODEL = Path(os.environ.get("TEST_LLM_GGUF", REPO / ".tools" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"))


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll `predicate` until it returns a truthy value; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(interval)


class LlamaServer:
    """llama-server on a free port. `slots` parallel requests, each with ctx_per_slot tokens."""

    def __init__(self, workdir: Path, *, slots: int = 4, ctx_per_slot: int = 2048, threads: int = 2,
                 api_key: str = "", extra: tuple[str, ...] = ()):
        assert BIN.exists() and MODEL.exists(), \
            f"{BIN} or {MODEL} missing: scripts/setup.sh --test installs them (scripts/model_server.sh)"
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.prompts_dir = workdir / "prompts"
        self.log_path = workdir / "llama-server.log"
        args = [str(BIN), "-m", str(MODEL), "--host", "127.0.0.1", "--port", str(self.port),
                "-np", str(slots), "-c", str(slots * ctx_per_slot), "-t", str(threads), "--no-webui", "--metrics",
                "--log-prompts-dir", str(self.prompts_dir), *extra]
        if api_key:
            key_file = workdir / "server-keys"
            key_file.write_text(api_key + "\n")
            args += ["--api-key-file", str(key_file)]
        self.api_key = api_key
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _get(self, path: str) -> tuple[int, bytes]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}")
        if self.api_key:
            req.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, b""

    def wait_ready(self, timeout: float = 300.0) -> LlamaServer:
        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited with {self.proc.returncode}:\n{self.log()}")
            status, body = self._get("/health")
            return status == 200 and b"ok" in body
        wait_for(ready, timeout, f"llama-server /health (log {self.log_path})", interval=0.2)
        return self

    def metrics(self) -> dict[str, float]:
        status, body = self._get("/metrics")
        assert status == 200, body
        out = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def logged_prompts(self) -> dict[str, str]:
        """File name -> the prompt as the server rendered it (--log-prompts-dir), one file per request."""
        if not self.prompts_dir.exists():
            return {}
        return {p.name: p.read_text(errors="replace") for p in sorted(self.prompts_dir.iterdir()) if p.is_file()}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@dataclass
class Exchange:
    """One request through the proxy."""
    path: str
    headers: dict[str, str]
    body: dict
    chunks: int = 0                  # response pieces forwarded to ragd
    outcome: str = ""                # "completed", "client_closed" (ragd went away first), "failed with N"
    finished: threading.Event = field(default_factory=threading.Event)

    def prompt_text(self) -> str:
        return "\n".join(str(m.get("content", "")) for m in self.body.get("messages", []))


class RecordingProxy:
    """An HTTP proxy in its own thread and event loop; see the module docstring."""

    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")   # e.g. http://127.0.0.1:PORT (no /v1)
        self.exchanges: list[Exchange] = []
        self.inject: dict = {}                 # merged into request bodies before forwarding
        self.fail_next: list[int] = []         # HTTP statuses answered (in order) instead of forwarding
        self.hold = threading.Event()          # set: requests wait (say nothing) until released
        self._release = threading.Event()
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recording-proxy", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        assert self.port, "the recording proxy did not start"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # ------------------------------------------------------------ test side

    def reset(self) -> None:
        with self._lock:
            self.exchanges.clear()
            self.max_in_flight = self.in_flight
        self.inject = {}
        self.fail_next = []
        self.hold.clear()
        self._release.clear()

    def release(self) -> None:
        self._release.set()

    def wait_requests(self, n: int, timeout: float = 120.0) -> list[Exchange]:
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.exchanges) >= n, timeout):
                raise TimeoutError(f"waited {timeout:.0f} s for {n} requests at the proxy, got {len(self.exchanges)}")
            return list(self.exchanges)

    def close(self) -> None:
        self._release.set()
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    # ------------------------------------------------------------ proxy side

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handler_cancellation: a handler is cancelled when ragd closes its connection,
        # which is how the proxy sees a cancelled or timed-out call go away.
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self._session = ClientSession(timeout=ClientTimeout(total=None, sock_read=600))
        self._ready.set()
        await self._stop.wait()
        await self._session.close()
        await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            body = {}
        ex = Exchange(request.path, dict(request.headers), body)
        with self._arrived:
            self.exchanges.append(ex)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self._arrived.notify_all()
        try:
            if self.fail_next:
                status = self.fail_next.pop(0)
                ex.outcome = f"failed with {status}"
                return web.json_response({"error": {"message": "injected by the test proxy"}}, status=status)
            if self.hold.is_set():
                while not self._release.is_set():
                    await asyncio.sleep(0.02)  # released by the test, or cancelled when ragd goes away
            if self.inject and isinstance(body, dict):
                body = {**body, **self.inject}
                raw = json.dumps(body).encode()
            headers = {k: v for k, v in request.headers.items()
                       if k.lower() in ("authorization", "content-type", "accept")}
            async with self._session.request(request.method, self.upstream + request.path_qs, data=raw,
                                             headers=headers) as upstream:
                response = web.StreamResponse(status=upstream.status)
                response.content_type = upstream.content_type
                await response.prepare(request)
                async for piece in upstream.content.iter_any():
                    await response.write(piece)
                    ex.chunks += 1
                await response.write_eof()
            ex.outcome = "completed"
            return response
        except (asyncio.CancelledError, ConnectionResetError):
            ex.outcome = "client_closed"  # leaving the `async with` closed the upstream request too
            raise
        except Exception as exc:  # noqa: BLE001 - recorded for the test to read
            ex.outcome = f"error: {type(exc).__name__}: {exc}"
            raise
        finally:
            with self._lock:
                self.in_flight -= 1
            ex.finished.set()
