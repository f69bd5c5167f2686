"""`ragd serve`: the grpc.aio server, health, reflection, Prometheus metrics and signal handling.

Security (ragd/security, ragd/api/auth.py): the exposure check runs before
anything listens; TLS credentials and the tokens file are loaded then (a bad
file refuses to start); SIGHUP re-reads both without a restart.

Start-up order: listen at once with health NOT_SERVING (RagService calls get
UNAVAILABLE), load the model and rebuild the indexes, then report SERVING.
SIGTERM/SIGINT: report NOT_SERVING, refuse new calls (UNAVAILABLE), wait for
every unary call in flight to finish however long it takes (ragd/api/drain.py;
a second signal stops waiting), give open streams `server.grace_s`, close LMDB
(fsync) and exit 0.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ragd.api import reflection
from ragd.api.auth import AuthInterceptor, TokenBucket
from ragd.api.drain import Drain
from ragd.api.metrics import Metrics
from ragd.api.servicer import SERVICE, RagServicer, generic_handler
from ragd.config import Config, ConfigError
from ragd.engine.engine import Engine
from ragd.security.exposure import check_exposure
from ragd.security.tls import RotatingCredentials, TlsError
from ragd.security.tokens import TokenFileError, TokenSet
from ragd.store.lmdb_store import StoreError

log = logging.getLogger("ragd.server")


def _write_port_file(path: str, port: int) -> None:
    # Atomic: a watcher never reads a half-written port.
    tmp = Path(path + ".tmp")
    tmp.write_text(f"{port}\n")
    os.replace(tmp, path)


def server_options(cfg: Config) -> list[tuple[str, object]]:
    """gRPC core's own limits: message and metadata sizes, streams per connection, keepalive."""
    s = cfg.server
    return [("grpc.max_receive_message_length", s.max_message_bytes),
            ("grpc.max_send_message_length", s.max_message_bytes),
            ("grpc.so_reuseport", 0),
            ("grpc.max_concurrent_streams", s.max_concurrent_streams),
            ("grpc.max_metadata_size", s.max_metadata_bytes),
            ("grpc.keepalive_time_ms", int(s.keepalive_time_s * 1000)),
            ("grpc.keepalive_timeout_ms", int(s.keepalive_timeout_s * 1000)),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", int(s.min_ping_interval_s * 1000)),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", int(s.min_ping_interval_s * 1000)),
            ("grpc.http2.max_ping_strikes", 2)]


def _security(cfg: Config) -> tuple[TokenSet | None, RotatingCredentials | None]:
    """The tokens file and TLS material, or ConfigError naming what is wrong."""
    check_exposure(cfg)
    try:
        tokens = TokenSet(cfg.auth.tokens_file) if cfg.auth.tokens_file else None
    except TokenFileError as exc:
        raise ConfigError(f"auth.tokens_file: {exc}") from None
    t = cfg.tls
    try:
        creds = RotatingCredentials(t.cert_file, t.key_file, t.client_ca_file) if t.cert_file else None
    except TlsError as exc:
        raise ConfigError(f"tls: {exc}") from None
    if tokens is not None and not len(tokens):
        log.warning("auth: %s holds no token: every call but health is refused", cfg.auth.tokens_file)
    return tokens, creds


async def serve(cfg: Config) -> int:
    try:
        tokens, creds = _security(cfg)
    except ConfigError as exc:
        log.error("refusing to start: %s", exc)
        return 2
    engine = Engine(cfg)
    metrics = Metrics(engine)
    drain = Drain()
    limiter = TokenBucket(cfg.auth.rate_per_s, cfg.auth.rate_burst) if cfg.auth.rate_per_s > 0 else None
    auth = AuthInterceptor(tokens, cfg.auth.reflection, limiter)
    # Metrics outermost: refused calls (auth, rate limit, drain) are counted too.
    server = grpc.aio.server(options=server_options(cfg), interceptors=[metrics.interceptor(), auth, drain])
    server.add_generic_rpc_handlers((generic_handler(RagServicer(engine)),))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if cfg.auth.reflection != "off":
        reflection.enable((SERVICE.full_name, health.SERVICE_NAME), server)
    try:
        port = (server.add_secure_port(cfg.server.listen, creds.server_credentials()) if creds
                else server.add_insecure_port(cfg.server.listen))
    except RuntimeError as exc:
        log.error("cannot listen on %s: %s", cfg.server.listen, exc)
        return 2
    for name in ("", SERVICE.full_name):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    await server.start()
    if cfg.server.metrics_listen:
        metrics.serve(cfg.server.metrics_listen, tokens if cfg.auth.metrics_token else None)
    host = cfg.server.listen.rpartition(":")[0]
    log.info("listening on %s:%d (NOT_SERVING until loaded), data dir %s", host, port, cfg.data_dir)
    log.info("security: auth %s, TLS %s, reflection %s", f"on ({len(tokens)} tokens)" if tokens else "off",
             ("mutual" if creds.mutual else "on") if creds else "off", cfg.auth.reflection)

    stop, force = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        (force if stop.is_set() else stop).set()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)

    def on_hangup() -> None:
        # Certificates are re-read at the next handshake, tokens now.
        if creds:
            creds.reload()
        if tokens:
            tokens.reload(force=True)
        log.info("SIGHUP: reloading %s", " and ".join(
            n for n, on in (("certificates", creds), ("tokens", tokens)) if on) or "nothing (no TLS, no auth)")
    loop.add_signal_handler(signal.SIGHUP, on_hangup)

    load = loop.run_in_executor(None, engine.load)
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({load, stopper}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if load.done():
        try:
            load.result()
        except StoreError as exc:  # unreadable or corrupt: a clear message, no traceback, no empty index
            log.error("refusing to start: %s", exc)
            stop.set()
            code = 1
        except Exception:  # noqa: BLE001 - reported, then a clean exit with status 1
            log.exception("start-up failed")
            stop.set()
            code = 1
    if code == 0 and not stop.is_set():
        await engine.start()
        for name in ("", SERVICE.full_name):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        if cfg.server.port_file:
            _write_port_file(cfg.server.port_file, port)
        log.info("SERVING on %s:%d", host, port)
    await stop.wait()

    log.info("shutting down: refusing new calls, waiting for %d in flight (a second signal stops waiting)",
             drain.in_flight)
    await health_servicer.enter_graceful_shutdown()
    drained, forced = asyncio.ensure_future(drain.close()), asyncio.ensure_future(force.wait())
    await asyncio.wait({drained, forced}, return_when=asyncio.FIRST_COMPLETED)
    forced.cancel()
    if not drained.done():
        drained.cancel()
        log.warning("second signal: cancelling %d calls in flight", drain.in_flight)
    await server.stop(0 if force.is_set() else cfg.server.grace_s)
    await engine.stop()
    if not load.done():
        await load  # model loading cannot be interrupted; wait so LMDB closes cleanly
    await loop.run_in_executor(None, engine.close)
    metrics.close()
    log.info("stopped")
    return code
