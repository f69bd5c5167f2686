"""Daemon lifecycle: health transitions, graceful SIGTERM that drains in-flight writes."""
from __future__ import annotations

import signal
import threading
import time

import cisi
import grpc
from conftest import free_port
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prom import scrape, value

from ragd.v1 import ragd_pb2, ragd_pb2_grpc
from ragd_client import RagClient

SERVICE = "ragd.v1.RagService"


def test_health_goes_not_serving_then_serving_and_rag_calls_wait(daemon_factory):
    """While loading: health NOT_SERVING and RagService calls UNAVAILABLE (retryable)."""
    d = daemon_factory()
    port = free_port()
    d.start(port=port, wait=False)
    seen, while_loading = [], set()
    # Reconnect fast: the model loads in a fraction of a second once listening,
    # and gRPC's default reconnect backoff (1 s) would step right over it.
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[
        ("grpc.initial_reconnect_backoff_ms", 10), ("grpc.min_reconnect_backoff_ms", 10),
        ("grpc.max_reconnect_backoff_ms", 20)])
    stub = health_pb2_grpc.HealthStub(channel)
    rag = ragd_pb2_grpc.RagServiceStub(channel)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            status = stub.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=1).status
        except grpc.RpcError:
            status = None  # not listening yet
        if status is not None and (not seen or seen[-1] != status):
            seen.append(status)
        if status == health_pb2.HealthCheckResponse.SERVING:
            break
        if status == health_pb2.HealthCheckResponse.NOT_SERVING:
            try:
                rag.Stats(ragd_pb2.StatsRequest(), timeout=5)
                while_loading.add("OK")  # loading finished between the two calls
            except grpc.RpcError as err:
                while_loading.add(err.code())
        time.sleep(0.01)
    channel.close()
    assert seen == [health_pb2.HealthCheckResponse.NOT_SERVING, health_pb2.HealthCheckResponse.SERVING], d.log()
    assert grpc.StatusCode.UNAVAILABLE in while_loading and while_loading <= {grpc.StatusCode.UNAVAILABLE, "OK"}
    assert d.stop() == 0


def test_sigterm_drains_an_in_flight_upsert_and_exits_zero(daemon_factory):
    metrics_port = free_port()
    d = daemon_factory(env={"RAGD_SERVER_METRICS_LISTEN": f"127.0.0.1:{metrics_port}"}).start()
    docs = cisi.documents()[:150]
    result = {}

    def upsert():
        with RagClient(d.address, timeout=300) as c:
            try:
                result["acks"] = c.upsert(docs).acks
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                result["error"] = exc

    worker = threading.Thread(target=upsert)
    worker.start()
    # Until the call is in flight: its chunks wait for the model (150 documents
    # take seconds to embed). Read from /metrics, not guessed with a sleep.
    deadline = time.monotonic() + 60
    while value(scrape(metrics_port), "ragd_embed_queue_tokens") == 0:
        assert time.monotonic() < deadline and worker.is_alive(), (result, d.log())
        time.sleep(0.01)
    d.proc.send_signal(signal.SIGTERM)
    worker.join(300)
    assert d.proc.wait(120) == 0, d.log()
    assert "error" not in result, result
    assert len(result["acks"]) == 150 and {a.status for a in result["acks"]} == {"indexed"}
    d.start()
    with RagClient(d.address, timeout=60) as c:
        assert c.stats().collections[0].documents == 150
    assert d.stop() == 0
