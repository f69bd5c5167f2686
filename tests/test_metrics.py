"""Prometheus metrics of a real daemon: per-call counts by status code and
durations from the interceptor, engine figures read at scrape time, and a
metrics port already in use leaving the daemon serving."""
from __future__ import annotations

import socket

import pytest
from prom import scrape, value

from ragd_client import RagClient
from ragd_client.errors import InvalidArgument

DOCS = [{"id": f"issue:{i}", "title": f"Issue {i}", "text": f"The mail handler dropped reply number {i}. " * 20,
         "project_id": 1 + i % 2} for i in range(6)]


@pytest.fixture(scope="module")
def served(module_daemon):
    return module_daemon(metrics=True)


def test_calls_are_counted_by_method_and_code(served):
    before = scrape(served.metrics_port)
    with RagClient(served.address) as c:
        c.upsert(DOCS, wait=True)
        for _ in range(3):
            c.search("mail handler reply", top_k=3)
        with pytest.raises(InvalidArgument, match="top_k"):
            c.search("mail", top_k=-1)
    after = scrape(served.metrics_port)
    svc = "ragd.v1.RagService"

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)
    assert delta("ragd_rpc_requests_total", service=svc, method="Search", code="OK") == 3
    assert delta("ragd_rpc_requests_total", service=svc, method="Search", code="INVALID_ARGUMENT") == 1
    assert delta("ragd_rpc_requests_total", service=svc, method="Upsert", code="OK") == 1
    assert delta("ragd_rpc_duration_seconds_count", service=svc, method="Search") == 4
    assert delta("ragd_rpc_duration_seconds_sum", service=svc, method="Search") > 0
    # Bucket counts are cumulative: the +Inf bucket holds every call.
    assert delta("ragd_rpc_duration_seconds_bucket", service=svc, method="Search", le="+Inf") == 4


def test_a_failed_call_is_counted_before_the_client_has_its_error(served):
    """context.abort sends the status first; the count must not lag behind it.
    (On the old interceptor, which recorded only on exit, CI lost this race.)"""
    key = dict(service="ragd.v1.RagService", method="Search", code="INVALID_ARGUMENT")
    with RagClient(served.address) as c:
        for _ in range(20):
            before = value(scrape(served.metrics_port), "ragd_rpc_requests_total", **key)
            with pytest.raises(InvalidArgument, match="top_k"):
                c.search("mail", top_k=-1)
            assert value(scrape(served.metrics_port), "ragd_rpc_requests_total", **key) == before + 1


def test_engine_figures_are_read_at_scrape_time(served):
    with RagClient(served.address) as c:
        c.upsert(DOCS, wait=True)
        stats = c.stats()
    s = scrape(served.metrics_port)
    coll = next(x for x in stats.collections if x.name == "default")
    assert value(s, "ragd_ready") == 1
    assert value(s, "ragd_collection_documents", collection="default") == coll.documents == len(DOCS)
    assert value(s, "ragd_collection_chunks", collection="default") == coll.chunks > len(DOCS)
    assert value(s, "ragd_index_vectors", collection="default", kind=coll.index_kind) == coll.index_vectors
    assert value(s, "ragd_store_sequence") == coll.sequence
    real, padded = value(s, "ragd_embed_tokens_total", kind="real"), value(s, "ragd_embed_tokens_total", kind="padded")
    assert 0 < real <= padded
    assert value(s, "ragd_embed_texts_total") >= coll.chunks
    assert value(s, "ragd_embed_batches_total") >= 1
    assert value(s, "ragd_embed_inference_seconds_total") > 0
    assert value(s, "process_resident_memory_bytes") > 50e6


def test_metrics_port_in_use_leaves_the_daemon_serving(daemon):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        d = daemon(env={"RAGD_SERVER_METRICS_LISTEN": f"127.0.0.1:{port}"})
        with RagClient(d.address) as c:
            c.upsert(DOCS[:1], wait=True)
            assert c.search("mail handler", top_k=1).hits
        assert "metrics: cannot listen on 127.0.0.1:" in d.log()
