"""Daemon lifecycle: health transitions, graceful SIGTERM that drains in-flight writes."""
from __future__ import annotations

import signal
import threading
import time

import cisi
import grpc
import pytest
from conftest import STOP_TIMEOUT_S
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prom import scrape, value

from ragd.v1 import ragd_pb2, ragd_pb2_grpc
from ragd_client import RagClient, Unavailable

SERVICE = "ragd.v1.RagService"


def test_health_goes_not_serving_then_serving_and_rag_calls_wait(daemon):
    """While loading: health NOT_SERVING and RagService calls UNAVAILABLE (retryable)."""
    d = daemon(start=False)
    d.start(wait=False)
    port = d.wait_listening()
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


def test_sigterm_drains_an_in_flight_upsert_and_exits_zero(daemon):
    # No grace for streams at all: the in-flight unary upsert must finish however
    # long its embedding takes on this machine, because the drain waits for the
    # call, not for a clock.
    d = daemon(metrics=True, env={"RAGD_SERVER_GRACE_S": "0"})
    docs = cisi.documents()[:150]
    result = {}

    def upsert():
        with RagClient(d.address, timeout=600) as c:
            try:
                result["acks"] = c.upsert(docs).acks
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                result["error"] = exc

    worker = threading.Thread(target=upsert)
    worker.start()
    # Until the call is in flight: its chunks wait for the model (150 documents
    # take seconds to embed). Read from /metrics, not guessed with a sleep.
    while value(scrape(d.metrics_port), "ragd_embed_queue_tokens") == 0:
        assert worker.is_alive() and d.proc.poll() is None, (result, d.log())
        time.sleep(0.01)
    d.proc.send_signal(signal.SIGTERM)
    # Once the daemon has taken the signal, a new call is refused (UNAVAILABLE:
    # refused by the drain, or by a closed port if the upsert is already done).
    while "shutting down" not in d.log(since_start=True):
        assert d.proc.poll() is None or d.proc.returncode == 0, d.log()
        time.sleep(0.01)
    with RagClient(d.address, timeout=30) as c, pytest.raises(Unavailable):
        c.stats()
    worker.join()
    assert d.proc.wait(STOP_TIMEOUT_S) == 0, d.log()
    assert "error" not in result, (result, d.log())
    assert len(result["acks"]) == 150 and {a.status for a in result["acks"]} == {"indexed"}
    d.start()
    with RagClient(d.address, timeout=60) as c:
        assert c.stats().collections[0].documents == 150
    assert d.stop() == 0
