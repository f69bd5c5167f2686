"""`ragd serve`: the grpc.aio server, health, reflection, Prometheus metrics and signal handling.

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
from ragd.api.drain import Drain
from ragd.api.metrics import Metrics
from ragd.api.servicer import SERVICE, RagServicer, generic_handler
from ragd.config import Config
from ragd.engine.engine import Engine

log = logging.getLogger("ragd.server")


def _write_port_file(path: str, port: int) -> None:
    # Atomic: a watcher never reads a half-written port.
    tmp = Path(path + ".tmp")
    tmp.write_text(f"{port}\n")
    os.replace(tmp, path)


async def serve(cfg: Config) -> int:
    engine = Engine(cfg)
    options = [("grpc.max_receive_message_length", cfg.server.max_message_bytes),
               ("grpc.max_send_message_length", cfg.server.max_message_bytes),
               ("grpc.so_reuseport", 0)]
    metrics = Metrics(engine)
    drain = Drain()
    # Metrics outermost: calls the drain refuses are counted (UNAVAILABLE) too.
    server = grpc.aio.server(options=options, interceptors=[metrics.interceptor(), drain])
    server.add_generic_rpc_handlers((generic_handler(RagServicer(engine)),))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable((SERVICE.full_name, health.SERVICE_NAME), server)
    try:
        port = server.add_insecure_port(cfg.server.listen)
    except RuntimeError as exc:
        log.error("cannot listen on %s: %s", cfg.server.listen, exc)
        return 2
    for name in ("", SERVICE.full_name):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    await server.start()
    if cfg.server.metrics_listen:
        metrics.serve(cfg.server.metrics_listen)
    host = cfg.server.listen.rpartition(":")[0]
    log.info("listening on %s:%d (NOT_SERVING until loaded), data dir %s", host, port, cfg.data_dir)

    stop, force = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        (force if stop.is_set() else stop).set()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)

    load = loop.run_in_executor(None, engine.load)
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({load, stopper}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if load.done():
        try:
            load.result()
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
