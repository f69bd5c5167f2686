"""A streaming client for any OpenAI-compatible chat endpoint (Ollama, vLLM,
llama.cpp's server, hosted APIs): POST {model_url}/chat/completions with
"stream": true, read the server-sent events (httpx + httpx-sse).

Why httpx and not the `openai` package: ragd needs five JSON fields of the
stream, while `openai` brings pydantic, pydantic-core, jiter and distro (~8 MB
of compiled code) on top of httpx, which it uses as its transport anyway; and
ragd wants its own say over three things the SDK hides: which failures are
retried (only before the first token, so an answer is never duplicated), how
each failure maps to a gRPC status, and closing the HTTP stream the moment a
caller goes away (that is what stops generation on the model server).

Guarantees:
- A bounded number of requests in flight (`max_concurrency`); callers beyond
  it wait within their deadline, and beyond `max_waiting` waiting callers get
  RESOURCE_EXHAUSTED.
- Connection refused, HTTP 429/502/503/504 are retried `retries` times with
  backoff (Retry-After honoured up to 5 s), never past the caller's deadline;
  then UNAVAILABLE (RESOURCE_EXHAUSTED for 429).
- 401/403/404/400-class answers are FAILED_PRECONDITION: the server is up but
  refuses ragd's key, model name or prompt size; retrying will not help.
- The caller's deadline (an absolute `loop.time()`) bounds every wait:
  TimeoutError, which the API maps to DEADLINE_EXCEEDED.
- Closing the generator (a cancelled call) closes the HTTP response, so the
  server sees the connection drop and stops generating.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from httpx_sse import SSEError, aconnect_sse

from ragd import __version__
from ragd.errors import FailedPrecondition, ResourceExhausted, Unavailable

log = logging.getLogger("ragd.answer")

_RETRY_STATUS = {429, 502, 503, 504}
_MAX_RETRY_AFTER_S = 5.0
_MAX_ERROR_CHARS = 300


@dataclass
class ChatSettings:
    url: str                       # base URL, e.g. http://127.0.0.1:11434/v1
    model: str = ""
    api_key: str = ""
    max_tokens_field: str = "max_tokens"
    extra_body: dict = field(default_factory=dict)
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0
    retries: int = 2
    retry_backoff_s: float = 0.25
    max_concurrency: int = 4
    max_waiting: int = 64


def read_api_key(key_file: str, key_env: str, environ=None) -> str:
    """The key from `key_file` (first non-empty line) or from the variable named `key_env`; "" for none.
    Called once at start-up; a missing file is a configuration error."""
    if key_file:
        try:
            lines = [ln.strip() for ln in Path(key_file).read_text(encoding="utf-8").splitlines()]
        except OSError as exc:
            raise FailedPrecondition(f"answer.api_key_file: cannot read {key_file}: {exc.strerror}") from None
        key = next((ln for ln in lines if ln), "")
        if not key:
            raise FailedPrecondition(f"answer.api_key_file: {key_file} is empty")
        return key
    if key_env:
        return (os.environ if environ is None else environ).get(key_env, "").strip()
    return ""


@dataclass
class ChatChunk:
    text: str = ""
    finish_reason: str = ""
    model: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class ChatClient:
    def __init__(self, settings: ChatSettings):
        self.settings = s = settings
        headers = {"User-Agent": f"ragd/{__version__}"}
        if s.api_key:
            headers["Authorization"] = f"Bearer {s.api_key}"
        self.endpoint = s.url.rstrip("/") + "/chat/completions"
        self._http = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(connect=s.connect_timeout_s, read=s.read_timeout_s, write=s.read_timeout_s,
                                  pool=s.read_timeout_s),
            limits=httpx.Limits(max_connections=s.max_concurrency, max_keepalive_connections=s.max_concurrency),
            # Proxies from the environment apply to a hosted API; loopback servers bypass them (NO_PROXY).
            trust_env=True)
        self._slots: asyncio.Semaphore | None = None
        self.in_flight = 0
        self.waiting = 0

    async def close(self) -> None:
        await self._http.aclose()

    def _body(self, messages: list[dict], max_tokens: int, temperature: float) -> dict:
        s = self.settings
        body = dict(s.extra_body)
        body.update({"messages": messages, "stream": True, "stream_options": {"include_usage": True},
                     s.max_tokens_field: max_tokens, "temperature": temperature})
        if s.model:
            body["model"] = s.model
        return body

    async def stream(self, messages: list[dict], *, max_tokens: int, temperature: float,
                     deadline: float | None = None) -> AsyncIterator[ChatChunk]:
        """The completion's chunks as they arrive. `deadline`: absolute loop.time(), or None."""
        async with self._slot(deadline):
            body = self._body(messages, max_tokens, temperature)
            async with self._open(body, deadline) as events:
                async for chunk in self._chunks(events, deadline):
                    yield chunk

    async def complete(self, messages: list[dict], *, max_tokens: int, temperature: float,
                       deadline: float | None = None) -> str:
        """The whole completion's text (used for the HyDE draft)."""
        parts = []
        async for chunk in self.stream(messages, max_tokens=max_tokens, temperature=temperature, deadline=deadline):
            parts.append(chunk.text)
        return "".join(parts)

    # ------------------------------------------------------------ pieces

    @asynccontextmanager
    async def _slot(self, deadline: float | None):
        s = self.settings
        if self._slots is None:
            self._slots = asyncio.Semaphore(s.max_concurrency)
        if self._slots.locked() and self.waiting >= s.max_waiting:
            raise ResourceExhausted(f"answer: all {s.max_concurrency} model slots busy and {self.waiting} calls "
                                    "waiting (answer.max_concurrency, answer.max_waiting)", retry_after_s=1.0)
        self.waiting += 1
        try:
            async with asyncio.timeout_at(deadline):
                await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._slots.release()

    @asynccontextmanager
    async def _open(self, body: dict, deadline: float | None):
        """An open event stream with a 2xx status, after retries of failures before any token."""
        s = self.settings
        loop = asyncio.get_running_loop()
        backoff = s.retry_backoff_s
        for attempt in range(s.retries + 1):
            last = attempt == s.retries
            wait = backoff
            async with AsyncExitStack() as stack:  # closes the response on every way out
                try:
                    async with asyncio.timeout_at(deadline):
                        events = await stack.enter_async_context(aconnect_sse(self._http, "POST", self.endpoint,
                                                                              json=body))
                except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError,
                        httpx.ReadTimeout, httpx.WriteError, httpx.PoolTimeout) as exc:
                    error: Exception = Unavailable(f"model server at {s.url} unreachable: {_describe(exc)}")
                else:
                    status = events.response.status_code
                    if status < 300:
                        yield events
                        return
                    async with asyncio.timeout_at(deadline):
                        detail = await _error_detail(events.response)
                    error = _http_error(status, detail, s)
                    if status not in _RETRY_STATUS:
                        raise error
                    wait = _retry_after(events.response, backoff)
            if last or (deadline is not None and loop.time() + wait >= deadline):
                raise error
            log.info("model request failed (%s); retry %d of %d in %.2f s", error, attempt + 1, s.retries, wait)
            await asyncio.sleep(wait)
            backoff *= 2

    async def _chunks(self, events, deadline: float | None) -> AsyncIterator[ChatChunk]:
        s = self.settings
        stream = events.aiter_sse()
        try:
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        sse = await anext(stream)
                except StopAsyncIteration:
                    return
                except SSEError as exc:
                    raise Unavailable(f"model server at {s.url} did not stream events ({exc}); is answer.model_url "
                                      "the API base (ending in /v1)?") from None
                except httpx.ReadTimeout:
                    raise Unavailable(f"model server at {s.url} sent nothing for {s.read_timeout_s:g} s "
                                      "(answer.read_timeout_s)") from None
                except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
                    raise Unavailable(f"model server at {s.url} closed the stream mid-answer: "
                                      f"{_describe(exc)}") from None
                if sse.data.strip() == "[DONE]":
                    return
                if not sse.data.strip():
                    continue
                yield _parse_chunk(sse.data, s.url)
        finally:
            await stream.aclose()


def _parse_chunk(data: str, url: str) -> ChatChunk:
    try:
        obj = json.loads(data)
    except json.JSONDecodeError:
        raise Unavailable(f"model server at {url} sent an event that is not JSON: {data[:80]!r}") from None
    if not isinstance(obj, dict):
        raise Unavailable(f"model server at {url} sent an unexpected event: {data[:80]!r}")
    if obj.get("error"):
        err = obj["error"]
        message = err.get("message") if isinstance(err, dict) else err
        raise Unavailable(f"model server at {url} failed mid-answer: {str(message)[:_MAX_ERROR_CHARS]}")
    chunk = ChatChunk(model=str(obj.get("model") or ""))
    usage = obj.get("usage")
    if isinstance(usage, dict):
        chunk.prompt_tokens = _int(usage.get("prompt_tokens"))
        chunk.completion_tokens = _int(usage.get("completion_tokens"))
    for choice in obj.get("choices") or []:
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            continue
        delta = choice.get("delta") or {}
        content = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(content, str):
            chunk.text += content
        if choice.get("finish_reason"):
            chunk.finish_reason = str(choice["finish_reason"])
    return chunk


def _int(value) -> int | None:
    return int(value) if isinstance(value, (int, float)) else None


async def _error_detail(response: httpx.Response) -> str:
    try:
        raw = await response.aread()
    except httpx.HTTPError:
        return ""
    text = raw.decode("utf-8", "replace")
    try:
        obj = json.loads(text)
        err = obj.get("error", obj) if isinstance(obj, dict) else obj
        if isinstance(err, dict):
            text = str(err.get("message") or err)
        elif err:
            text = str(err)
    except json.JSONDecodeError:
        pass
    return " ".join(text.split())[:_MAX_ERROR_CHARS]


def _http_error(status: int, detail: str, s: ChatSettings) -> Exception:
    where = f"model server at {s.url} answered HTTP {status}"
    detail = f": {detail}" if detail else ""
    if status in (401, 403):
        return FailedPrecondition(f"{where} (check answer.api_key_file / answer.api_key_env){detail}")
    if status == 404:
        return FailedPrecondition(f"{where} (check answer.model_url and answer.model {s.model!r}){detail}")
    if status == 429:
        return ResourceExhausted(f"{where} (rate limited){detail}", retry_after_s=1.0)
    if 400 <= status < 500:
        return FailedPrecondition(f"{where} (the request was refused; a prompt too long for the model's context "
                                  f"needs a smaller answer.max_context_chars){detail}")
    return Unavailable(f"{where}{detail}")


def _retry_after(response: httpx.Response, default: float) -> float:
    value = response.headers.get("retry-after", "")
    try:
        return min(max(float(value), 0.0), _MAX_RETRY_AFTER_S)
    except ValueError:
        return default


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())[:_MAX_ERROR_CHARS]
