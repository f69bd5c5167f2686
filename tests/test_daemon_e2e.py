"""End to end against a real `ragd serve` subprocess: real model, LMDB, FAISS.

One daemon for the module (indexing is the slow part); tests that change the
daemon's state clean up after themselves or use their own collection.
"""
from __future__ import annotations

import math

import cisi
import grpc
import numpy as np
import pytest

from ragd.v1 import ragd_pb2 as pb
from ragd.v1 import ragd_pb2_grpc
from ragd_client import AsyncRagClient, InvalidArgument, NotFound, RagClient

N_DOCS = 300


@pytest.fixture(scope="module")
def served(module_daemon):
    return module_daemon()


@pytest.fixture(scope="module")
def client(served):
    with RagClient(served.address, timeout=300) as c:
        yield c


@pytest.fixture(scope="module")
def docs(client):
    docs = cisi.documents()[:N_DOCS]
    for i in range(0, len(docs), 100):
        result = client.upsert(docs[i:i + 100])
        assert [a.status for a in result.acks] == ["indexed"] * len(docs[i:i + 100])
    return docs


@pytest.fixture(scope="module")
def stub(served):
    channel = grpc.insecure_channel(served.address, options=[("grpc.max_send_message_length", 128 << 20)])
    yield ragd_pb2_grpc.RagServiceStub(channel)
    channel.close()


def test_title_and_first_sentence_find_their_document_first(client, docs):
    for doc in docs[10:30]:
        query = doc["title"] + ". " + " ".join(doc["text"].split(".")[0].split())
        hits = client.search(query, top_k=3, filter={"all_private": True}, group_by_document=True).hits
        assert hits[0].document_id == doc["id"], (query, [h.document_id for h in hits])
        assert hits[0].document.title == doc["title"]
        assert 0.0 < hits[0].score <= 1.0001


def test_cisi_queries_retrieve_judged_documents(client, docs):
    """Real retrieval quality on the indexed slice: most judged queries find a relevant abstract in the top 10."""
    indexed = {int(d["id"].split(":")[1]) for d in docs}
    queries, rel = cisi.queries(), cisi.judgments()
    found = total = 0
    for qid, relevant in rel.items():
        relevant &= indexed
        if not relevant:
            continue
        total += 1
        hits = client.search(queries[qid], top_k=10, filter={"all_private": True}, group_by_document=True).hits
        found += any(int(h.document_id.split(":")[1]) in relevant for h in hits)
    assert total >= 20
    assert found / total >= 0.6, f"{found}/{total} queries found a relevant document"


def test_chunk_offsets_point_into_the_document(client, docs):
    by_id = {d["id"]: d for d in docs}
    for hit in client.search("library classification systems", top_k=20, filter={"all_private": True}).hits:
        text = by_id[hit.document_id]["text"]
        assert text[hit.start:hit.end] == hit.text


def test_project_filter_is_applied_inside_the_search_and_pages_are_full(client, docs):
    result = client.search("information retrieval", top_k=25, filter={"project_ids": [2]})
    assert len(result.hits) == 25
    assert {h.document.project_id for h in result.hits} == {2}


def test_private_documents_need_permission(client, docs):
    private = [d for d in docs if d["is_private"]]
    target = private[0]
    # Anonymous: no private document, whatever the query.
    hits = client.search(target["title"], top_k=50).hits
    assert hits and not any(h.document.is_private for h in hits)
    # The author sees their own private document ...
    hits = client.search(target["title"], top_k=3, filter={"user_id": target["author_id"]}).hits
    assert hits[0].document_id == target["id"]
    assert all(not h.document.is_private or h.document.author_id == target["author_id"] for h in hits)
    # ... and so does a member of a project where private documents are visible.
    hits = client.search(target["title"], top_k=3, filter={"private_project_ids": [target["project_id"]]}).hits
    assert hits[0].document_id == target["id"]


def test_group_by_document_returns_one_hit_per_document(client, docs):
    hits = client.search("use of libraries", top_k=15, group_by_document=True).hits
    ids = [h.document_id for h in hits]
    assert len(ids) == 15 and len(set(ids)) == 15
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_versions_stale_and_unchanged(client):
    coll = "versions"
    doc = {"id": "issue:1", "title": "Printer jams", "text": "The printer on floor 3 jams daily.", "version": 5}
    assert client.upsert([doc], collection=coll).acks[0].status == "indexed"
    assert client.upsert([doc], collection=coll).acks[0].status == "unchanged"
    older = {**doc, "text": "old text", "version": 4}
    assert client.upsert([older], collection=coll).acks[0].status == "stale"
    newer = {**doc, "text": "The printer was replaced.", "version": 6}
    assert client.upsert([newer], collection=coll).acks[0].status == "indexed"
    hits = client.search("printer", collection=coll).hits
    assert [h.text for h in hits] == ["The printer was replaced."]
    # A versioned delete leaves a tombstone: an older upsert cannot resurrect the document.
    assert client.delete(["issue:1"], versions={"issue:1": 7}, collection=coll).acks[0].status == "deleted"
    assert client.upsert([newer], collection=coll).acks[0].status == "stale"
    assert client.search("printer", collection=coll).hits == []


def test_delete_removes_from_search_and_stats(client):
    coll = "deletes"
    client.upsert([{"id": f"d{i}", "text": f"note number {i} about backups"} for i in range(5)], collection=coll)
    assert client.stats(coll).collections[0].documents == 5
    acks = client.delete(["d1", "nope"], collection=coll).acks
    assert [a.status for a in acks] == ["deleted", "not_found"]
    ids = {h.document_id for h in client.search("backups", top_k=10, collection=coll).hits}
    assert ids == {"d0", "d2", "d3", "d4"}
    stats = client.stats(coll).collections[0]
    assert (stats.documents, stats.index_vectors) == (4, 4)


def test_similar_excludes_the_document_itself(client, docs):
    target = docs[42]["id"]
    hits = client.similar(target, top_k=5).hits
    assert len(hits) == 5 and target not in {h.document_id for h in hits}
    with pytest.raises(NotFound):
        client.similar("cisi:999999")


def test_embed_returns_unit_vectors(client):
    result = client.embed(["database indexing", "database indexing", "word " * 400])
    vectors = result.array()
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert np.allclose(vectors[0], vectors[1], atol=1e-6)
    assert result.truncated == [False, False, True]
    assert result.tokens[2] == 256


def test_stats_reports_collection_and_model(client, docs):
    stats = client.stats()
    default = next(c for c in stats.collections if c.name == "default")
    assert default.documents == N_DOCS and default.index_vectors == default.chunks >= N_DOCS
    assert default.index_kind == "flat" and default.dimension == 384
    assert stats.model.name == "all-MiniLM-L6-v2" and stats.model.dimension == 384
    assert stats.model.provider == "CPUExecutionProvider"


def test_async_client_matches_sync(served, client, docs):
    import asyncio

    async def run():
        async with AsyncRagClient(served.address, timeout=60) as ac:
            return await ac.search("automatic indexing", top_k=5)

    a = asyncio.run(run())
    s = client.search("automatic indexing", top_k=5)
    assert [h.chunk_id for h in a.hits] == [h.chunk_id for h in s.hits]


# ---------------------------------------------------------------- bad input

def _write_state(client):
    stats = {c.name: (c.documents, c.chunks, c.sequence) for c in client.stats().collections}
    return stats


BAD_UPSERTS = [
    ("empty text", {"id": "x", "text": ""}, "documents[1].text"),
    ("whitespace text", {"id": "x", "text": " \n\t "}, "documents[1].text"),
    ("missing id", {"text": "some text"}, "documents[1].id"),
    ("long id", {"id": "x" * 513, "text": "some text"}, "documents[1].id"),
    ("50 MB text", {"id": "x", "text": "a" * (50 << 20)}, "documents[1].text"),
    ("negative version", {"id": "x", "text": "t", "version": -1}, "documents[1].version"),
]


@pytest.mark.parametrize("case,bad,field", BAD_UPSERTS, ids=[c[0] for c in BAD_UPSERTS])
def test_bad_documents_are_rejected_whole(client, docs, case, bad, field):
    before = _write_state(client)
    good = {"id": "fresh:1", "text": "a perfectly fine document"}
    with pytest.raises(InvalidArgument) as err:
        client.upsert([good, bad], timeout=120)
    assert field in err.value.message
    assert _write_state(client) == before
    assert client.search("perfectly fine document", top_k=50).hits[0].document_id != "fresh:1"


def test_invalid_utf8_names_the_field(served, client, docs):
    before = _write_state(client)
    req = pb.UpsertRequest(documents=[pb.Document(id="ok", text="fine"), pb.Document(id="bad", text="PLACEHOLDER")])
    raw = req.SerializeToString().replace(b"PLACEHOLDER", b"ab\xff\xfe\xfdcdefgh")
    channel = grpc.insecure_channel(served.address)
    call = channel.unary_unary("/ragd.v1.RagService/Upsert", request_serializer=lambda b: b,
                               response_deserializer=pb.UpsertResponse.FromString)
    with pytest.raises(grpc.RpcError) as err:
        call(raw, timeout=30)
    channel.close()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "documents[1].text" in err.value.details() and "UTF-8" in err.value.details()
    assert _write_state(client) == before


@pytest.mark.parametrize("kwargs,field", [
    ({"query": "x", "top_k": 10**9}, "top_k"),
    ({"query": "x", "top_k": -1}, "top_k"),
    ({"query": "   "}, "query"),
    ({"query": "x", "collection": "never-written"}, "collection"),
    ({"query": "x", "collection": "bad name!"}, "collection"),
    ({"query": "x", "filter": {"metadata_ranges": [{"key": "n", "gte": math.nan}]}},
     "filter.metadata_ranges[0].gte"),
], ids=["top_k huge", "top_k negative", "blank query", "unknown collection", "bad collection name", "NaN range"])
def test_bad_searches_name_the_field(client, docs, kwargs, field):
    query = kwargs.pop("query")
    with pytest.raises(InvalidArgument) as err:
        client.search(query, **kwargs)
    assert err.value.message.startswith(field)


def test_top_k_zero_means_default(stub, docs):
    resp = stub.Search(pb.SearchRequest(query="library", top_k=0), timeout=30)
    assert len(resp.hits) == 10


def test_unknown_collection_on_delete(client):
    with pytest.raises(InvalidArgument, match="collection"):
        client.delete(["a"], collection="never-written")


def test_later_rpcs_answer_unimplemented_with_a_message(stub, client, docs):
    # Snapshot is implemented (tests/test_crash.py); a path that exists is a bad argument.
    with pytest.raises(grpc.RpcError) as err:
        stub.Snapshot(pb.SnapshotRequest(path="/"), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "path" in err.value.details()


# ---------------------------------------------------------------- restart (last: it restarts the daemon)

def test_restart_keeps_every_document_and_result(served, docs):
    queries = ["retrieval evaluation", "library automation", "citation analysis"]
    with RagClient(served.address, timeout=60) as c:
        before = [[(h.document_id, h.chunk_id, round(h.score, 5)) for h in c.search(q, top_k=10).hits]
                  for q in queries]
        stats_before = {s.name: (s.documents, s.chunks, s.sequence) for s in c.stats().collections}
    assert served.stop() == 0, served.log()
    served.start()
    with RagClient(served.address, timeout=60) as c:
        after = [[(h.document_id, h.chunk_id, round(h.score, 5)) for h in c.search(q, top_k=10).hits]
                 for q in queries]
        stats_after = {s.name: (s.documents, s.chunks, s.sequence) for s in c.stats().collections}
    assert after == before
    assert stats_after == stats_before
