"""ListDocuments against a real `ragd serve`: every stored document's id, type,
project and version a page at a time in id order, tombstones left out, filters,
a restart in between, and bad arguments named."""
from __future__ import annotations

import grpc
import pytest
from conftest import Daemon

from ragd.v1 import ragd_pb2 as pb
from ragd.v1 import ragd_pb2_grpc

COLL = "listing"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, models_dir):
    d = Daemon(tmp_path_factory.mktemp("listing"), models_dir).start()
    yield d
    d.kill()


@pytest.fixture(scope="module")
def stub(daemon):
    channel = grpc.insecure_channel(daemon.address)
    yield ragd_pb2_grpc.RagServiceStub(channel)
    channel.close()


def _docs():
    for i in range(1, 26):
        yield pb.Document(id=f"issue:{i:03d}", title=f"Issue {i}", text=f"Short note number {i}.",
                          project_id=1 + i % 2, type="issue", version=i)
    for i in range(1, 6):
        yield pb.Document(id=f"wiki:{i}", title=f"Page {i}", text=f"Wiki page {i} text.", project_id=3,
                          type="wiki", version=1)


def _all(stub, **kwargs) -> list[pb.DocumentInfo]:
    out, token, pages = [], "", 0
    while True:
        resp = stub.ListDocuments(pb.ListDocumentsRequest(collection=COLL, page_token=token, **kwargs), timeout=60)
        out.extend(resp.documents)
        pages += 1
        token = resp.next_page_token
        if not token:
            return out
        assert pages < 100


@pytest.fixture(scope="module")
def stored(stub):
    stub.Upsert(pb.UpsertRequest(collection=COLL, wait=True, documents=list(_docs())), timeout=300)
    # A versioned delete leaves a tombstone, which is not a document.
    stub.Delete(pb.DeleteRequest(collection=COLL, refs=[pb.DocumentRef(id="issue:007", version=99)]), timeout=60)
    return sorted(d.id for d in _docs() if d.id != "issue:007")


def test_pages_cover_every_document_once_in_id_order(stub, stored):
    for size in (1, 7, 29, 0):
        got = _all(stub, page_size=size)
        assert [d.id for d in got] == stored, size
    info = {d.id: d for d in _all(stub)}["issue:012"]
    assert (info.type, info.project_id, info.version, info.chunks) == ("issue", 1, 12, 1)


def test_filters_by_type_and_project(stub, stored):
    assert [d.id for d in _all(stub, types=["wiki"])] == [f"wiki:{i}" for i in range(1, 6)]
    odd = _all(stub, types=["issue"], project_ids=[2], page_size=3)
    assert [d.id for d in odd] == [i for i in stored if i.startswith("issue:") and int(i[6:]) % 2 == 1]


@pytest.mark.parametrize("request_kwargs, field", [
    ({"page_size": 10_001}, "page_size"),
    ({"page_size": -1}, "page_size"),
    ({"collection": "no such/name"}, "collection"),
    ({"page_token": "x" * 600}, "page_token"),
])
def test_bad_arguments_are_named(stub, stored, request_kwargs, field):
    kwargs = {"collection": COLL, **request_kwargs}
    with pytest.raises(grpc.RpcError) as err:
        stub.ListDocuments(pb.ListDocumentsRequest(**kwargs), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(field)


def test_unknown_collection_is_named(stub):
    with pytest.raises(grpc.RpcError) as err:
        stub.ListDocuments(pb.ListDocumentsRequest(collection="never_written"), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "never_written" in err.value.details()


# Last: it restarts the module's daemon (on a new port).
def test_listing_survives_a_restart(daemon, stub, stored):
    daemon.stop()
    daemon.start()
    with grpc.insecure_channel(daemon.address) as channel:
        fresh = ragd_pb2_grpc.RagServiceStub(channel)
        assert [d.id for d in _all(fresh, page_size=4)] == stored
