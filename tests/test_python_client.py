"""RagClient / AsyncRagClient behaviours not covered by the other daemon tests:
retries of UNAVAILABLE, deadlines, snapshot and the async streams."""
from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prom import scrape, value

from ragd.v1 import ragd_pb2, ragd_pb2_grpc
from ragd_client import AsyncRagClient, RagClient, Unavailable


def test_unavailable_while_loading_is_retried_by_the_client(daemon):
    d = daemon(start=False, metrics=True)
    d.start(wait=False)
    port = d.wait_listening()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[
        ("grpc.initial_reconnect_backoff_ms", 10), ("grpc.min_reconnect_backoff_ms", 10),
        ("grpc.max_reconnect_backoff_ms", 20), ("grpc.enable_retries", 0)])
    health = health_pb2_grpc.HealthStub(channel)
    raw = ragd_pb2_grpc.RagServiceStub(channel)
    while True:  # until the daemon listens but is still loading
        assert d.proc.poll() is None, d.log()
        try:
            if health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == \
                    health_pb2.HealthCheckResponse.NOT_SERVING:
                break
        except grpc.RpcError:
            pass
        time.sleep(0.01)
    with pytest.raises(grpc.RpcError) as err:  # without retries: UNAVAILABLE
        raw.Stats(ragd_pb2.StatsRequest(), timeout=30)
    channel.close()
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    # With the client's policy the same call is retried while the daemon loads:
    # it succeeds once loaded, or, if loading outlasts the policy (5 attempts,
    # ~3 s of backoff: a loaded machine), fails after exactly 5 attempts. The
    # daemon counts every attempt it answered, so both outcomes show the retries.
    key = {"service": "ragd.v1.RagService", "method": "Stats", "code": "UNAVAILABLE"}
    before = value(scrape(d.metrics_port), "ragd_rpc_requests_total", **key)
    with RagClient(f"127.0.0.1:{port}", timeout=120) as c:
        try:
            assert c.stats().model.name == "all-MiniLM-L6-v2"
            outcome = "OK"
        except Unavailable:
            outcome = "UNAVAILABLE"
    after = scrape(d.metrics_port)
    refused = value(after, "ragd_rpc_requests_total", **key) - before
    if outcome == "OK":
        assert 1 <= refused <= 4 and value(after, "ragd_rpc_requests_total", **{**key, "code": "OK"}) == 1
    else:
        assert refused == 5
    d.wait_serving()
    assert d.stop() == 0


def test_deadline_gives_unavailable_and_snapshot_and_async_streams_work(daemon, tmp_path):
    d = daemon()
    with RagClient(d.address, timeout=30) as c:
        c.upsert([{"id": "a", "text": "disk quota exceeded on the build server"}])
        with pytest.raises(Unavailable):  # DEADLINE_EXCEEDED maps to Unavailable: fall back
            c.embed(["x " * 200] * 500, timeout=0.001)
        path, seq, size = c.snapshot(str(tmp_path / "backup"))
        assert (tmp_path / "backup").is_dir() and seq >= 1 and size > 0 and path.endswith("backup")

    async def run():
        async with AsyncRagClient(d.address, timeout=30) as ac:
            answers = [r async for r in ac.search_stream([("1", "disk full"), ("2", "quota")], top_k=1)]
            watched = [j async for j in ac.watch_job((await ac.upsert([{"id": "b", "text": "t"}], wait=False)).job_id)]
            return answers, watched
    answers, watched = asyncio.run(run())
    assert [(tag, r.hits[0].document_id) for tag, r in answers] == [("1", "a"), ("2", "a")]
    assert watched[-1].state == "succeeded"
    assert d.stop() == 0
