"""Prometheus metrics: a gRPC interceptor for calls, a collector that reads the
engine at scrape time, and the HTTP endpoint (prometheus_client's own server).

Per call: `ragd_rpc_requests_total{service, method, code}` and the
`ragd_rpc_duration_seconds{service, method}` histogram (a streaming call counts
once, for the life of the stream). The engine's figures (documents, chunks,
index size, embedding batches and tokens, queue depth) are read when Prometheus
scrapes, so the request path pays for none of them. Each daemon has its own
registry, so servers in one process (tests) never share or clash.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import time
from typing import TYPE_CHECKING

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

if TYPE_CHECKING:
    from ragd.engine.engine import Engine

log = logging.getLogger("ragd.api")

# From a cache hit (~1 ms) to a long IndexStream.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class Metrics:
    def __init__(self, engine: Engine) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("ragd_rpc_requests", "gRPC calls finished, by status code.",
                                ("service", "method", "code"), registry=self.registry)
        self.duration = Histogram("ragd_rpc_duration_seconds", "gRPC call duration (a stream: its whole life).",
                                  ("service", "method"), buckets=_BUCKETS, registry=self.registry)
        self.registry.register(EngineCollector(engine))
        ProcessCollector(registry=self.registry)  # RSS, CPU seconds, open files
        self._http = None

    def interceptor(self) -> grpc.aio.ServerInterceptor:
        return _RpcInterceptor(self)

    def serve(self, listen: str, tokens=None) -> int | None:
        """Start the /metrics endpoint on HOST:PORT; the bound port, or None when it
        could not listen (warned: the daemon serves on without metrics). With
        `tokens` (a TokenSet), only requests bearing a token of scope admin or
        metrics are answered (401 otherwise)."""
        host, _, port = listen.rpartition(":")
        try:
            if tokens is None:
                self._http, _thread = start_http_server(int(port), addr=host.strip("[]") or "0.0.0.0",
                                                        registry=self.registry)
            else:
                self._http = _serve_with_token(host.strip("[]") or "0.0.0.0", int(port), self.registry, tokens)
        except (OSError, ValueError) as exc:
            log.warning("metrics: cannot listen on %s (%s); serving without /metrics (set server.metrics_listen)",
                        listen, exc)
            return None
        bound = self._http.server_address[1]
        log.info("metrics on http://%s:%d/metrics", host or "0.0.0.0", bound)
        return bound

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def observe(self, method: str, code: grpc.StatusCode | None, seconds: float) -> None:
        service, _, name = method.lstrip("/").rpartition("/")
        self.requests.labels(service, name, code.name if code is not None else "OK").inc()
        self.duration.labels(service, name).observe(seconds)


def _serve_with_token(host: str, port: int, registry, tokens):
    """prometheus_client's WSGI app behind a bearer-token check, on a threaded WSGI server
    (what start_http_server runs, plus the check)."""
    import threading
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from prometheus_client import make_wsgi_app

    from ragd.api.auth import bearer
    app = make_wsgi_app(registry)

    def guarded(environ, start_response):
        token = bearer([("authorization", environ.get("HTTP_AUTHORIZATION", ""))])
        entry = tokens.verify(token) if token else None
        if entry is None or not entry.scopes & {"admin", "metrics"}:
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Bearer realm="ragd metrics"'),
                                                ("Content-Type", "text/plain")])
            return [b"a token of scope metrics or admin is needed\n"]
        return app(environ, start_response)

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    httpd = make_server(host, port, guarded, Server, handler_class=Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True, name="ragd-metrics").start()
    return httpd


def _code(context: grpc.aio.ServicerContext, exc: BaseException | None) -> grpc.StatusCode | None:
    # A stream the client abandoned mid-way: grpc either cancels the handler's task or
    # stops pulling its generator and closes it (GeneratorExit at the yield), by timing.
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        return grpc.StatusCode.CANCELLED
    code = context.code()  # set by context.abort / set_code
    if code is None and exc is not None:
        return grpc.StatusCode.UNKNOWN
    # Older grpcio hand back the integer of the C core's status.
    return code if isinstance(code, grpc.StatusCode) or code is None else _BY_VALUE.get(code, grpc.StatusCode.UNKNOWN)


_BY_VALUE = {c.value[0]: c for c in grpc.StatusCode}


class _RpcInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:  # unknown method: gRPC answers UNIMPLEMENTED itself
            return None
        method = handler_call_details.method
        if handler.response_streaming:
            behavior = handler.unary_stream or handler.stream_stream
            if not inspect.isasyncgenfunction(behavior):
                return handler  # a handler writing through context.write: left untimed
            wrapped = self._stream(method, behavior)
            make = grpc.stream_stream_rpc_method_handler if handler.request_streaming \
                else grpc.unary_stream_rpc_method_handler
        else:
            wrapped = self._unary(method, handler.stream_unary or handler.unary_unary)
            make = grpc.stream_unary_rpc_method_handler if handler.request_streaming \
                else grpc.unary_unary_rpc_method_handler
        return make(wrapped, request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer)

    def _unary(self, method, behavior):
        async def timed(request, context):
            with _Observed(self._m, method, context) as ctx:
                return await behavior(request, ctx)
        return timed

    def _stream(self, method, behavior):
        async def timed(request, context):
            with _Observed(self._m, method, context) as ctx:
                async for item in behavior(request, ctx):
                    yield item
        return timed


class _Observed:
    """Times one call and records it once, with the status it ended with: on exit,
    or, for an aborted call, just before the status goes out.

    `context.abort` sends the status to the client and only then raises, so a call
    recorded on exit alone would reach the client before its count reached
    /metrics. The handler gets a context whose abort records first. (ragd keeps
    aborting rather than setting the code and returning: abort answers
    trailers-only, which the clients' retry policy may retry; a returned status
    follows headers, which commit the call.)
    """

    def __init__(self, metrics: Metrics, method: str, context: grpc.aio.ServicerContext) -> None:
        self._m, self._method, self._context = metrics, method, context
        self._start = time.perf_counter()
        self._recorded = False

    def __enter__(self) -> _RecordingContext:
        return _RecordingContext(self._context, self)

    def __exit__(self, _type, exc, _tb) -> bool:
        self.record(_code(self._context, exc))
        return False

    def record(self, code: grpc.StatusCode | None) -> None:
        if not self._recorded:
            self._recorded = True
            self._m.observe(self._method, code, time.perf_counter() - self._start)


class _RecordingContext:
    """The servicer context, except that abort records the call before sending."""

    def __init__(self, context: grpc.aio.ServicerContext, observed: _Observed) -> None:
        self._context, self._observed = context, observed

    def __getattr__(self, name: str):
        return getattr(self._context, name)

    async def abort(self, code: grpc.StatusCode, *args, **kwargs) -> None:
        # Arguments passed on as given: gRPC's own defaults keep trailing metadata
        # set earlier (retry-after-ms on RESOURCE_EXHAUSTED).
        self._observed.record(code)
        await self._context.abort(code, *args, **kwargs)


class EngineCollector:
    """The engine's figures, read at scrape time (from the HTTP server's thread:
    only reads of counters and copies of dicts, never a lock the engine holds long)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def describe(self):
        return []  # names depend on the engine's state; nothing to check up front

    def collect(self):
        e = self._engine
        yield GaugeMetricFamily("ragd_ready", "1 once the model and indexes are loaded (health SERVING).",
                                value=1 if e.ready else 0)
        yield GaugeMetricFamily("ragd_uptime_seconds", "Seconds since the daemon started.", value=e.uptime_s())
        if not e.ready:
            return
        docs = GaugeMetricFamily("ragd_collection_documents", "Live documents.", labels=["collection"])
        chunks = GaugeMetricFamily("ragd_collection_chunks", "Live chunks.", labels=["collection"])
        tomb = GaugeMetricFamily("ragd_collection_tombstones", "Deleted documents remembered (versioned deletes).",
                                 labels=["collection"])
        vectors = GaugeMetricFamily("ragd_index_vectors", "Vectors in the collection's FAISS index.",
                                    labels=["collection", "kind"])
        for s in e.stats():
            docs.add_metric([s.name], s.documents)
            chunks.add_metric([s.name], s.chunks)
            tomb.add_metric([s.name], s.tombstones)
            vectors.add_metric([s.name, s.index_kind], s.index_vectors)
        yield from (docs, chunks, tomb, vectors)
        yield GaugeMetricFamily("ragd_store_sequence", "Op-log sequence of the last committed write.",
                                value=e.sequence())
        yield GaugeMetricFamily("ragd_disk_bytes", "Bytes used by the data dir's LMDB store.", value=e.disk_bytes())
        if e.follower is not None:
            from ragd.cluster import metrics as cluster_metrics
            yield from cluster_metrics.collect(e.follower)
        b = e.batcher
        if b is None:
            return
        yield CounterMetricFamily("ragd_embed_batches", "Inference batches run.", value=b.batches_run)
        yield CounterMetricFamily("ragd_embed_texts", "Texts embedded.", value=b.rows_run)
        tokens = CounterMetricFamily("ragd_embed_tokens", "Tokens through the model: real, and padded "
                                     "(rows x longest row; padded/real is the padding overhead).", labels=["kind"])
        tokens.add_metric(["real"], b.real_tokens)
        tokens.add_metric(["padded"], b.padded_tokens)
        yield tokens
        yield CounterMetricFamily("ragd_embed_inference_seconds", "Seconds spent in model inference.",
                                  value=b.inference_s)
        yield GaugeMetricFamily("ragd_embed_queue_tokens", "Tokens waiting for the model.", value=b.queued_tokens)
        a = e.answerer
        if a is not None:
            yield from a.stats.collect()
            if a.chat is not None:
                yield GaugeMetricFamily("ragd_answer_model_requests_in_flight", "Requests to the model server in "
                                        "flight (at most answer.max_concurrency).", value=a.chat.in_flight)
                yield GaugeMetricFamily("ragd_answer_model_requests_waiting", "Answer calls waiting for a model "
                                        "slot.", value=a.chat.waiting)
