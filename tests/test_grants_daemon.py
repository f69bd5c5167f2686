"""Filters with grants against a real `ragd serve` (real model, LMDB, FAISS, tantivy),
through the Python client and raw stubs: the document fields grants read round
trip; every mode, grouping, Similar and SearchStream return only what the
contract oracle admits, with full pages; a cached page is never served to other
grants; bad grants are INVALID_ARGUMENT naming the field and change nothing; and
the fields survive a crash and restart (op-log replay into the filter columns).
"""
from __future__ import annotations

import grpc
import pytest
from permission_oracle import may_see

from ragd import domain
from ragd.v1 import ragd_pb2 as pb
from ragd.v1 import ragd_pb2_grpc
from ragd_client import Document, Filter, Grant, RagClient

COLL = "grants"
SUBJECTS = ["printer jams on page two", "login fails after password reset", "backup job runs out of disk",
            "mail notifications arrive twice", "search is slow on large projects", "calendar shows wrong week"]


def corpus() -> list[Document]:
    """Issues (two trackers, private ones, assigned to users and to group 900), their
    journals (private notes among them) and wiki pages, in three projects."""
    docs = []
    for i in range(18):
        project, tracker = 1 + i % 3, 1 + i % 2
        author, assignee = 10 + i % 4, [0, 20, 900][i % 3]
        private = i % 4 == 1
        subject = SUBJECTS[i % len(SUBJECTS)]
        docs.append(Document(id=f"issue:{i}", title=subject, text=f"{subject}. Reported on build {i}.",
                             project_id=project, type="issue", is_private=private, author_id=author,
                             tracker_id=tracker, owner_ids=[author, assignee], version=1))
        for j in range(2):
            docs.append(Document(id=f"journal:{i}-{j}", title=subject, text=f"Note {j} on {subject}: tried a fix.",
                                 project_id=project, type="journal", is_private=private, author_id=30 + j,
                                 tracker_id=tracker, owner_ids=[author, assignee], private_note=(i + j) % 3 == 0,
                                 version=1))
    for p in (1, 2, 3):
        docs.append(Document(id=f"wiki:{p}", title="Printer setup", text="How to set up the office printer.",
                             project_id=p, type="wiki"))
    return docs


def as_domain(d: Document) -> domain.Document:
    return domain.Document(id=d.id, text=d.text, title=d.title, project_id=d.project_id, type=d.type,
                           is_private=d.is_private, author_id=d.author_id, tracker_id=d.tracker_id,
                           owner_ids=list(d.owner_ids), private_note=d.private_note)


def as_domain_filter(f: Filter) -> domain.Filter:
    vis = {"all": 1, "default": 2, "own": 3}
    return domain.Filter(project_ids=list(f.project_ids), types=list(f.types), user_id=f.user_id,
                         group_ids=list(f.group_ids), exclude_ids=list(f.exclude_ids),
                         grants=[domain.Grant(list(g.types), list(g.project_ids), vis[g.visibility],
                                              list(g.tracker_ids), g.private_notes) for g in f.grants])


# Principals as the plugin would describe them.
FILTERS = {
    "manager": Filter(user_id=11, grants=[Grant(["issue", "journal"], [1, 2, 3], "all", private_notes=True),
                                          Grant(["wiki"], [1, 2, 3], "all")]),
    "developer": Filter(user_id=20, group_ids=[900], grants=[
        Grant(["issue", "journal"], [1], "all", private_notes=True),
        Grant(["issue", "journal"], [2], "default"), Grant(["wiki"], [1, 2], "all")]),
    "reporter": Filter(user_id=12, grants=[Grant(["issue", "journal"], [1, 2, 3], "default", tracker_ids=[1])]),
    "own-only": Filter(user_id=13, grants=[Grant(["issue", "journal"], [1, 2, 3], "own")]),
    "note-writer": Filter(user_id=31, grants=[Grant(["journal"], [3], "default")]),
    "anonymous": Filter(user_id=0, grants=[Grant(["issue", "journal", "wiki"], [1, 3], "default")]),
    "narrowed": Filter(user_id=11, project_ids=[2], types=["issue"],
                       grants=[Grant(["issue", "journal"], [1, 2, 3], "all", private_notes=True)]),
}
QUERIES = ["printer jams", "password reset login", "disk backup", "build 7"]


@pytest.fixture(scope="module")
def served(module_daemon):
    return module_daemon()


@pytest.fixture(scope="module")
def docs(served):
    docs = corpus()
    with RagClient(served.address, timeout=300, collection=COLL) as c:
        result = c.upsert(docs)
    assert {a.status for a in result.acks} == {"indexed"}, result.acks
    return {d.id: d for d in docs}


@pytest.fixture(scope="module")
def client(served, docs):
    with RagClient(served.address, timeout=120, collection=COLL) as c:
        yield c


@pytest.fixture(scope="module")
def stub(served):
    channel = grpc.insecure_channel(served.address)
    yield ragd_pb2_grpc.RagServiceStub(channel)
    channel.close()


def visible(docs, flt: Filter) -> set[str]:
    f = as_domain_filter(flt)
    return {i for i, d in docs.items() if may_see(as_domain(d), f)}


def test_document_fields_round_trip(client, docs):
    hits = client.search("Note 1 on printer jams", top_k=50, mode="vector", filter=FILTERS["manager"],
                         group_by_document=True).hits
    assert hits
    for h in hits:
        d = docs[h.document_id]
        assert (h.document.tracker_id, h.document.owner_ids, h.document.private_note) == (
            d.tracker_id, d.owner_ids, d.private_note)


@pytest.mark.parametrize("who", sorted(FILTERS))
def test_every_mode_similar_and_stream_obey_the_grants(client, docs, who):
    flt = FILTERS[who]
    allowed = visible(docs, flt)
    assert allowed
    for query in QUERIES:
        for mode in ("auto", "vector", "keyword", "hybrid"):
            for group in (False, True):
                res = client.search(query, top_k=100, mode=mode, filter=flt, group_by_document=group, min_score=-1)
                got = [h.document_id for h in res.hits]
                assert set(got) <= allowed, (who, query, mode, set(got) - allowed)
                if res.mode in ("vector", "hybrid") and group:
                    assert set(got) == allowed  # full page: every visible document ranks
    for doc_id in ("issue:0", "issue:1", "journal:4-1"):
        got = {h.document_id for h in client.similar(doc_id, top_k=100, filter=flt, min_score=-1).hits}
        assert got == allowed - {doc_id}, (who, doc_id)
    answers = list(client.search_stream([(q, q) for q in QUERIES], top_k=100, filter=flt, mode="vector"))
    assert [tag for tag, _ in answers] == QUERIES
    for _, res in answers:
        assert {h.document_id for h in res.hits} <= allowed


def test_the_grants_are_part_of_the_cache_key(client, docs):
    q = "printer jams on page two"
    def search(flt):
        return client.search(q, top_k=100, mode="vector", filter=flt, group_by_document=True, min_score=-1)

    manager, reporter = search(FILTERS["manager"]), search(FILTERS["reporter"])
    assert not reporter.timings.cache_hit
    assert {h.document_id for h in reporter.hits} == visible(docs, FILTERS["reporter"])
    assert len(manager.hits) > len(reporter.hits)
    # Same grants: a cache hit with the same page; other groups or notes: not.
    again = search(FILTERS["manager"])
    assert again.timings.cache_hit and [h.document_id for h in again.hits] == [h.document_id for h in manager.hits]
    for variant in (Filter(user_id=11, grants=[Grant(["issue", "journal"], [1, 2, 3], "all")]),  # no private notes
                    Filter(user_id=12, group_ids=[900], grants=FILTERS["reporter"].grants)):
        res = search(variant)
        assert not res.timings.cache_hit
        assert {h.document_id for h in res.hits} == visible(docs, variant)


def _grant(**kw) -> pb.Grant:
    base = {"types": ["issue"], "project_ids": [1], "visibility": pb.VISIBILITY_ALL}
    base.update(kw)
    return pb.Grant(**base)


@pytest.mark.parametrize("flt,field", [
    (pb.Filter(grants=[_grant(visibility=0)]), "filter.grants[0].visibility"),
    (pb.Filter(grants=[_grant(), _grant(), _grant(), _grant(visibility=7)]), "filter.grants[3].visibility"),
    (pb.Filter(grants=[_grant(types=[])]), "filter.grants[0].types"),
    (pb.Filter(grants=[_grant(), _grant(project_ids=[])]), "filter.grants[1].project_ids"),
    (pb.Filter(grants=[_grant(project_ids=[1, -3])]), "filter.grants[0].project_ids[1]"),
    (pb.Filter(grants=[_grant(tracker_ids=[-1])]), "filter.grants[0].tracker_ids[0]"),
    (pb.Filter(grants=[_grant()], group_ids=[5, -2]), "filter.group_ids[1]"),
    (pb.Filter(grants=[_grant()], user_id=-4), "filter.user_id"),
    (pb.Filter(grants=[_grant()] * 1001), "filter.grants"),
    (pb.Filter(grants=[_grant(project_ids=list(range(60_000))), _grant(project_ids=list(range(40_001)))]),
     "filter.grants"),
    (pb.Filter(grants=[_grant()], private_project_ids=[1]), "filter.private_project_ids"),
    (pb.Filter(grants=[_grant()], all_private=True), "filter.all_private"),
    (pb.Filter(group_ids=[900]), "filter.group_ids"),
])
def test_bad_grants_are_invalid_argument_naming_the_field(stub, docs, flt, field):
    calls = {
        "Search": lambda: stub.Search(pb.SearchRequest(collection=COLL, query="printer", filter=flt), timeout=60),
        "Similar": lambda: stub.Similar(pb.SimilarRequest(collection=COLL, document_id="issue:0", filter=flt),
                                        timeout=60),
    }
    for name, call in calls.items():
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert err.value.details().startswith(field + ":"), (name, err.value.details())
    # SearchStream answers the bad query with its error and goes on with the next one.
    reqs = [pb.SearchStreamRequest(tag="bad", request=pb.SearchRequest(collection=COLL, query="printer", filter=flt)),
            pb.SearchStreamRequest(tag="ok", request=pb.SearchRequest(collection=COLL, query="printer"))]
    bad, ok = list(stub.SearchStream(iter(reqs), timeout=60))
    assert bad.error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and bad.error_message.startswith(field)
    assert ok.error_code == 0 and ok.response.hits


@pytest.mark.parametrize("change,field", [({"tracker_id": -1}, "documents[0].tracker_id"),
                                          ({"owner_ids": [3, -7]}, "documents[0].owner_ids[1]")])
def test_bad_document_fields_write_nothing(stub, docs, change, field):
    before = [(c.documents, c.sequence) for c in stub.Stats(pb.StatsRequest(collection=COLL), timeout=60).collections]
    doc = pb.Document(id="issue:bad", text="never stored", type="issue", project_id=1, **change)
    with pytest.raises(grpc.RpcError) as err:
        stub.Upsert(pb.UpsertRequest(collection=COLL, documents=[doc], wait=True), timeout=60)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(field + ":"), err.value.details()
    after = [(c.documents, c.sequence) for c in stub.Stats(pb.StatsRequest(collection=COLL), timeout=60).collections]
    assert after == before


# ---------------------------------------------------------------- restart (last: it restarts the daemon)

def test_grant_fields_survive_a_crash_and_a_restart(served, docs):
    def pages(c):
        return {who: sorted(h.document_id for h in c.search("printer", top_k=100, mode="vector", filter=flt,
                                                             group_by_document=True, min_score=-1).hits)
                for who, flt in FILTERS.items()}

    assert served.stop() == 0, served.log()  # SIGTERM: snapshot + filter columns file (format 2)
    served.start()
    with RagClient(served.address, timeout=120, collection=COLL) as c:
        # Writes after the last snapshot, replayed into the filter columns on start: an
        # issue made private and moved, a note made private, a new assignee (a group).
        moved = Document(**{**docs["issue:0"].__dict__, "project_id": 3, "is_private": True, "version": 2})
        note = Document(**{**docs["journal:2-1"].__dict__, "private_note": True, "version": 2})
        assigned = Document(**{**docs["issue:3"].__dict__, "is_private": True, "owner_ids": [13, 900], "version": 2})
        assert {a.status for a in c.upsert([moved, note, assigned]).acks} == {"indexed"}
        for d in (moved, note, assigned):
            docs[d.id] = d
        before = pages(c)
    for who, flt in FILTERS.items():
        assert set(before[who]) == visible(docs, flt), who
    served.kill()  # SIGKILL: no final snapshot
    offset = len(served.log())
    served.start()
    assert "op-log entries" in served.log()[offset:]  # columns from the file + the writes replayed
    with RagClient(served.address, timeout=120, collection=COLL) as c:
        assert pages(c) == before
