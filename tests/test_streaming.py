"""IndexStream and SearchStream against a real daemon with a deliberately small queue."""
from __future__ import annotations

import threading

import pytest

from ragd_client import RagClient

N_DOCS = 10_000
BATCH = 50
BLOB = "custom field value " * 105  # ~2 KB


def _rss_kb(pid: int, field: str) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


@pytest.fixture(scope="module")
def served(module_daemon):
    # A tiny embedding queue (a few batches) and stream depth: memory must stay
    # bounded by these, not by how much the client sends.
    return module_daemon(env={"RAGD_BATCHING_MAX_QUEUE_TOKENS": "4096", "RAGD_SERVER_STREAM_DEPTH": "2"})


def test_ten_thousand_documents_stream_with_bounded_memory_and_all_acks(served):
    produced = 0
    lock = threading.Lock()
    lead = []  # how far the producer ran ahead of the acks, sampled at each ack

    def batches():
        nonlocal produced
        for start in range(0, N_DOCS, BATCH):
            with lock:
                produced += 1
            # 2 KB of metadata per document: the stream is 20 MB on the wire (far more
            # than HTTP/2 flow-control windows hold) while each document stays one chunk.
            yield [{"id": f"s{i}", "title": f"Issue {i}", "project_id": i % 20, "metadata": {"custom": BLOB},
                    "text": f"Ticket {i}: the nightly export of project {i % 20} stopped after step {i % 13}."}
                   for i in range(start, start + BATCH)]

    rss_before = _rss_kb(served.proc.pid, "VmRSS")
    acked = 0
    statuses = set()
    with RagClient(served.address, timeout=60, stream_timeout=None) as c:  # no deadline: slow machines
        for n, result in enumerate(c.index_stream(batches(), collection="big"), 1):
            acked += len(result.acks)
            statuses |= {a.status for a in result.acks}
            with lock:
                lead.append(produced - n)
        stats = c.stats("big").collections[0]
    peak = _rss_kb(served.proc.pid, "VmHWM")
    assert acked == N_DOCS and statuses == {"indexed"}
    assert stats.documents == N_DOCS and stats.index_vectors == N_DOCS
    # Flow control: the producer can only run ahead by what the server works on
    # (stream_depth messages) plus what the HTTP/2 windows of both ends hold (gRPC
    # grows them to a few MB; measured: 60 messages of ~100 KB). Without flow
    # control the client would push the whole 20 MB stream (200 messages) at once.
    print(f"lead max {max(lead)} of {len(lead)} messages; rss before {rss_before} kB, peak {peak} kB")
    assert max(lead) <= len(lead) // 2, max(lead)
    # Memory: a sanity bound on the daemon's growth over the whole stream
    # (measured ~180 MB: ONNX Runtime arenas for batch shapes, LMDB pages).
    assert (peak - rss_before) < 300_000, (rss_before, peak)


def test_search_stream_answers_in_order_with_per_query_errors(served):
    with RagClient(served.address, timeout=60) as c:
        c.upsert([{"id": "a", "text": "database replication lag"}, {"id": "b", "text": "printer out of toner"}],
                 collection="ss")
        queries = [(f"q{i}", "replication delay" if i % 2 else "toner empty") for i in range(20)]
        queries.insert(5, ("bad", "   "))
        answers = list(c.search_stream(queries, top_k=1, collection="ss"))
    assert [tag for tag, _ in answers] == [tag for tag, _ in queries]
    for (tag, query), (_, result) in zip(queries, answers):
        if tag == "bad":
            assert "query" in str(result)
        else:
            assert result.hits[0].document_id == ("a" if "replication" in query else "b")
