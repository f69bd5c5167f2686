"""ragd-client against a real daemon: every method, its types and its errors.
Only ragd_client, grpcio and protobuf are imported (numpy when present)."""
from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util

import pytest

from ragd_client import (
    AsyncRagClient,
    Document,
    FailedPrecondition,
    Filter,
    InvalidArgument,
    NotFound,
    RagClient,
    SearchResult,
    Unavailable,
)
from ragd_client.policy import RETRY_POLICY, SERVICE_CONFIG, STREAM_TIMEOUT_S, TIMEOUT_S, channel_options

DOCS = [
    Document(id="issue:1", title="Login fails with LDAP", text="Users cannot sign in since the LDAP upgrade.",
             project_id=1, type="issue", author_id=7, version=1,
             updated_at=dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)),
    Document(id="issue:2", title="Backup job stalls", text="The nightly restic backup hangs at 80 percent.",
             project_id=1, type="issue", is_private=True, author_id=8, version=1),
    Document(id="wiki:1:Mail", title="Mail handler", text="Incoming mail is fetched over IMAP every five minutes.",
             project_id=2, type="wiki", version=1, metadata={"lang": "en"}),
    {"id": "news:3", "title": "Upgrade to 6.0", "text": "Redmine was upgraded; plugins need a restart.",
     "project_id": 2, "type": "news", "version": 1},
]


@pytest.fixture(scope="module")
def indexed(client):
    result = client.upsert(DOCS)
    assert [a.status for a in result.acks] == ["indexed"] * len(DOCS)
    assert result.sequence > 0
    return result


def test_the_client_runs_without_the_daemon_installed():
    # What this distribution must not pull in (tests/test_python_client_alone.py
    # runs this file where only ragd-client, pytest and their dependencies are).
    for module in ("faiss", "onnxruntime", "ragd"):
        if importlib.util.find_spec(module) is not None:
            pytest.skip(f"{module} is installed here: run in a virtualenv holding ragd-client alone")
    import ragd_client.v1.ragd_pb2 as pb
    assert pb.DESCRIPTOR.package == "ragd.v1"


def test_defaults_follow_the_documented_policy(monkeypatch):
    assert (TIMEOUT_S, STREAM_TIMEOUT_S) == (10.0, 600.0)
    assert RETRY_POLICY["maxAttempts"] == 5 and RETRY_POLICY["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert ("grpc.service_config", SERVICE_CONFIG) in channel_options()
    monkeypatch.setenv("RAGD_ADDRESS", "127.0.0.1:1")
    with RagClient() as c:
        assert (c.address, c.timeout, c.stream_timeout) == ("127.0.0.1:1", 10.0, 600.0)
    with pytest.raises(ValueError):
        RagClient("127.0.0.1:1", timeout=0)


def test_search_filters_and_typed_results(client, indexed):
    result = client.search("cannot sign in", top_k=2, filter=Filter(project_ids=[1], user_id=7))
    assert isinstance(result, SearchResult) and result.mode in ("vector", "keyword", "hybrid")
    assert result.hits[0].document_id == "issue:1"
    hit = result.hits[0]
    assert hit.document.title == "Login fails with LDAP" and hit.document.project_id == 1
    assert hit.document.updated_at == dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    assert 0 <= hit.start < hit.end and result.timings.total_ms > 0
    # A private issue of author 8 is invisible to user 7 without the private grant.
    ids = {h.document_id for h in client.search("backup hangs", top_k=5, filter={"project_ids": [1],
                                                                                    "user_id": 7}).hits}
    assert "issue:2" not in ids
    ids = {h.document_id for h in client.search("backup hangs", top_k=5, filter={"project_ids": [1],
                                                                                    "user_id": 8}).hits}
    assert "issue:2" in ids
    kw = client.search("IMAP", top_k=1, mode="keyword", filter={"metadata_equals": {"lang": "en"}})
    assert kw.mode == "keyword" and [h.document_id for h in kw.hits] == ["wiki:1:Mail"]


def test_similar_and_its_not_found(client, indexed):
    hits = client.similar("issue:1", top_k=3).hits
    assert hits and "issue:1" not in {h.document_id for h in hits}
    with pytest.raises(NotFound):
        client.similar("issue:404")


def test_invalid_argument_names_the_field(client, indexed):
    with pytest.raises(InvalidArgument) as err:
        client.search("x", top_k=10**9)
    assert "top_k" in str(err.value)
    with pytest.raises(ValueError):
        client.search("x", mode="fuzzy")  # refused before anything is sent


def test_embed_returns_plain_vectors(client):
    result = client.embed(["database indexing", "database indexing"])
    assert result.dimension == 384 and len(result.vectors) == 2 and len(result.vectors[0]) == 384
    assert abs(sum(v * v for v in result.vectors[0]) - 1.0) < 1e-4
    assert result.vectors[0] == result.vectors[1] and result.tokens[0] > 0
    if importlib.util.find_spec("numpy") is None:
        with pytest.raises(ImportError):
            result.array()
    else:
        assert result.array().shape == (2, 384)


def test_streams_jobs_delete_and_stats(client, collection, indexed):
    batches = [[{"id": f"note:{i}", "text": f"note {i} about the mail handler"} for i in range(j, j + 3)]
               for j in (0, 3)]
    results = list(client.index_stream(batches))
    assert [len(r.acks) for r in results] == [3, 3]
    answers = list(client.search_stream([("a", "mail handler"), ("b", "")], top_k=1))
    assert answers[0][0] == "a" and answers[0][1].hits
    assert answers[1][0] == "b" and isinstance(answers[1][1], InvalidArgument)
    queued = client.upsert([{"id": "note:9", "text": "queued note"}], wait=False)
    assert queued.job_id
    states = [j.state for j in client.watch_job(queued.job_id)]
    assert states[-1] == "succeeded" and client.get_job(queued.job_id).finished
    deleted = client.delete(["note:9", "note:404"])
    assert [a.status for a in deleted.acks] == ["deleted", "not_found"]
    stats = client.stats(collection)
    assert [c.name for c in stats.collections] == [collection]
    assert stats.collections[0].documents == len(DOCS) + 6 and stats.model.dimension == 384


def test_deadline_exceeded_is_unavailable(client):
    with pytest.raises(Unavailable):
        client.embed(["x " * 200] * 200, timeout=0.001)


def test_async_client(address, collection, indexed):
    async def run():
        async with AsyncRagClient(address, collection=collection, timeout=120) as ac:
            found = await ac.search("cannot sign in", top_k=1, filter={"project_ids": [1]})
            streamed = [r async for r in ac.search_stream([("q", "backup")], top_k=1,
                                                          filter={"project_ids": [1], "all_private": True})]
            return found, streamed
    found, streamed = asyncio.run(run())
    assert found.hits[0].document_id == "issue:1"
    assert streamed[0][1].hits[0].document_id == "issue:2"


def test_answer_without_a_model_server_is_failed_precondition(address, collection):
    # The daemon under test has no answer.model_url (tests/test_answer.py streams real
    # answers): the stream is opened, refused with a pointer, and mapped to the client's error.
    with RagClient(address, collection=collection) as c, pytest.raises(FailedPrecondition, match="answer.model_url"):
        c.ask("Why does login fail?", filter={"project_ids": [1]})

    async def run():
        async with AsyncRagClient(address, collection=collection) as ac:
            return [e async for e in ac.answer("Why does login fail?")]
    with pytest.raises(FailedPrecondition, match="answer.model_url"):
        asyncio.run(run())
