"""Shared fixtures: one provisioned model per session, and real daemons.

Real daemons: the `daemon` fixture
----------------------------------
`daemon` (one test) and `module_daemon` (every test of a module) are the same
factory. Each call starts a real `ragd serve` subprocess with its own data dir
(under the test's tmp dir; the session's provisioned model is linked in) on a
free loopback port (port 0, read back from the port file), waits until gRPC
health reports SERVING, and returns a `Daemon`. Whatever the test does, and
also when it fails, every daemon the factory started is stopped when the test
(or module) ends: SIGTERM, then SIGKILL if it has not exited after 60 s.

    def test_something(daemon):
        d = daemon(env={"RAGD_JOBS_BATCH_SIZE": "16"})      # started and SERVING
        with RagClient(d.address) as c: ...
        assert d.stop() == 0                                # SIGTERM; the exit status
        d.start()                                           # again, on the same data dir

    @pytest.fixture(scope="module")
    def served(module_daemon):                              # one daemon for a module
        return module_daemon(config={"cache": {"ttl_s": 5}}, metrics=True)

Arguments: `name` (the data dir's name, default "data"; the same name again
reuses the data dir), `env` (RAGD_* options), `config` (a {section: {key:
value}} dict written as the daemon's TOML file), `metrics=True` (serve
/metrics on a free port: `d.metrics_port`), `start=False` (a Daemon to start
yourself, e.g. `d.start(wait=False); d.wait_listening()` to watch it load).
The daemon's environment carries no RAGD_* variable from the caller's shell,
so a developer's settings never leak into a test. Its output is in
`d.log_path`; failures to start quote it.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/cisi.py and friends

# Provisioned once and reused by every daemon of the session (and by later local
# runs: the cache lives under the git-ignored var/). CI starts from a clean clone.
MODEL_CACHE = Path(os.environ.get("TEST_MODEL_CACHE", REPO / "var" / "test-cache" / "models"))
SERVICE = "ragd.v1.RagService"
# Bounds that only stop a hang: a daemon starved of CPU on a loaded 2-core
# machine (a niced test run beside busy neighbours) took over a minute to exit.
START_TIMEOUT_S = 600.0  # model load and index rebuild
STOP_TIMEOUT_S = 300.0   # drain, final snapshots, LMDB sync


@pytest.fixture(scope="session")
def models_dir() -> Path:
    from ragd.embed.provision import provision_model
    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    provision_model(MODEL_CACHE)
    return MODEL_CACHE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _toml(config: dict) -> str:
    """A TOML document of top-level keys and one level of tables (what ragd's configuration has)."""
    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(f"cannot write {v!r} as TOML")
    top = [f"{k} = {value(v)}" for k, v in config.items() if not isinstance(v, dict)]
    tables = [f"\n[{k}]\n" + "".join(f"{kk} = {value(vv)}\n" for kk, vv in v.items())
              for k, v in config.items() if isinstance(v, dict)]
    return "\n".join(top) + "\n" + "".join(tables)


class Daemon:
    """A real `ragd serve` subprocess on a loopback port. Made by the `daemon` and
    `module_daemon` fixtures, which also stop it; see the module docstring."""

    def __init__(self, data_dir: Path, models_dir: Path, env: dict[str, str] | None = None,
                 config: dict | None = None, metrics: bool = False):
        self.data_dir = data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        link = data_dir / "models"
        if not link.exists():
            link.symlink_to(models_dir, target_is_directory=True)
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("RAGD_")}
        self.env = {**inherited, "RAGD_MODEL_THREADS": "2", **(env or {})}
        if metrics:
            self.env["RAGD_SERVER_METRICS_LISTEN"] = "127.0.0.1:0"
        self.config_path: Path | None = None
        if config:
            self.config_path = data_dir / "ragd.toml"
            self.config_path.write_text(_toml(config))
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.metrics_port = 0
        self.log_path = data_dir / "daemon.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, port: int = 0, wait: bool = True, timeout: float = START_TIMEOUT_S) -> Daemon:
        """Start `ragd serve` (on `port`, 0: any free one); with `wait`, return once SERVING."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        port_file = self.data_dir / "port"
        port_file.unlink(missing_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        cmd = [sys.executable, "-m", "ragd.cli", "serve", "--data-dir", str(self.data_dir),
               "--listen", f"127.0.0.1:{port}", "--port-file", str(port_file)]
        if self.config_path:
            cmd += ["--config", str(self.config_path)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=REPO)
        self.port = port
        if wait:
            self.wait_serving(timeout)
        return self

    def wait_serving(self, timeout: float = START_TIMEOUT_S) -> None:
        """Until the port file is written (the daemon writes it once SERVING) and
        gRPC health confirms SERVING; raises with the daemon's log otherwise."""
        port_file = self.data_dir / "port"
        deadline = time.monotonic() + timeout
        while not port_file.exists():
            self._check_alive(deadline, timeout)
            time.sleep(0.05)
        self.port = int(port_file.read_text())
        with grpc.insecure_channel(self.address) as channel:
            check = health_pb2_grpc.HealthStub(channel).Check
            while True:
                try:
                    status = check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=10).status
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.RpcError:
                    pass
                self._check_alive(deadline, timeout)
                time.sleep(0.05)
        self._read_metrics_port()

    def wait_listening(self, timeout: float = START_TIMEOUT_S) -> int:
        """After `start(wait=False)`: until the daemon listens (health NOT_SERVING while
        it loads), read from its log line; returns the port, also set on `self.port`."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(r"listening on \S*:(\d+) ", self.log(since_start=True))
            if found:
                self.port = int(found.group(1))
                self._read_metrics_port()  # /metrics is served before the gRPC port is announced
                return self.port
            self._check_alive(deadline, timeout)
            time.sleep(0.02)

    def _read_metrics_port(self) -> None:
        if "RAGD_SERVER_METRICS_LISTEN" in self.env:
            found = re.findall(r"metrics on http://[^ ]+:(\d+)/metrics", self.log(since_start=True))
            self.metrics_port = int(found[-1]) if found else 0

    def _check_alive(self, deadline: float, timeout: float) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
        if time.monotonic() > deadline:
            self.kill()
            raise TimeoutError(f"daemon not SERVING after {timeout:.0f} s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> int:
        """Send `sig` and return the exit status; SIGKILL (and raise) if it has not exited in `timeout`."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def shut_down(self) -> None:
        """The finalizer: SIGTERM, then SIGKILL if still running after STOP_TIMEOUT_S."""
        if self.proc and self.proc.poll() is None:
            try:
                self.stop()
            except subprocess.TimeoutExpired:
                pass  # stop() killed it

    def log(self, since_start: bool = False) -> str:
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as fh:
            if since_start:
                fh.seek(getattr(self, "_log_offset", 0))
            return fh.read().decode(errors="replace")


DaemonFactory = Callable[..., Daemon]


def _factory(root: Callable[[str], Path], models_dir: Path) -> Iterator[DaemonFactory]:
    started: list[Daemon] = []

    def make(name: str = "data", *, env: dict[str, str] | None = None, config: dict | None = None,
             metrics: bool = False, start: bool = True) -> Daemon:
        d = Daemon(root(name), models_dir, env, config, metrics)
        started.append(d)
        return d.start() if start else d

    try:
        yield make
    finally:
        for d in started:
            d.shut_down()


@pytest.fixture
def daemon(tmp_path, models_dir) -> Iterator[DaemonFactory]:
    """Start real daemons for one test; all are stopped when it ends (see the module docstring)."""
    yield from _factory(lambda name: tmp_path / name, models_dir)


@pytest.fixture(scope="module")
def module_daemon(tmp_path_factory, models_dir) -> Iterator[DaemonFactory]:
    """`daemon` for a module: daemons shared by its tests, stopped after the last one."""
    root = tmp_path_factory.mktemp("daemons")
    yield from _factory(lambda name: root / name, models_dir)
