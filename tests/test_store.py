"""LMDB store on real files: durability boundaries and the op log."""
import lmdb
import msgpack
import numpy as np
import pytest

from ragd.domain import Document
from ragd.store.lmdb_store import DocRecord, OpLogEntry, Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "store", 1 << 30)
    yield s
    s.close()


def _write(store, name, doc_id, n_chunks, dim=4):
    with store.write() as w:
        meta = w.collection(name, dim, "m", create=True)
        vecs = np.random.default_rng(0).random((n_chunks, dim), dtype=np.float32)
        ids = w.add_chunks(meta, doc_id, [(0, 1)] * n_chunks, ["t"] * n_chunks, vecs)
        w.put_doc(meta, DocRecord.live(Document(id=doc_id, text="t"), ids))
        meta.docs += 1
    return ids, vecs


def vector_ids(store, coll, dim=4):
    (_, ids, vecs), = store.scan_vectors(coll, dim)
    return ids, vecs


def test_write_is_visible_with_sequence_and_survives_reopen(tmp_path):
    s = Store(tmp_path / "store", 1 << 30)
    ids, vecs = _write(s, "a", "doc", 3)
    assert s.sequence() == 1
    s.close()
    s = Store(tmp_path / "store", 1 << 30)
    meta = s.collections()["a"]
    assert (meta.docs, meta.chunks, meta.next_chunk) == (1, 3, 3)
    got_ids, got = vector_ids(s, meta.id)
    assert got_ids.tolist() == ids and np.array_equal(got, vecs)
    assert s.get_doc(meta.id, "doc").chunk_ids == ids
    s.close()


def test_failed_transaction_leaves_nothing(store):
    _write(store, "a", "doc", 2)
    with pytest.raises(RuntimeError):
        with store.write() as w:
            meta = w.collection("a", 4, "m", create=True)
            w.add_chunks(meta, "doc2", [(0, 1)], ["t"], np.zeros((1, 4), np.float32))
            w.put_doc(meta, DocRecord.live(Document(id="doc2", text="t"), [2]))
            raise RuntimeError("crash mid-batch")
    meta = store.collections()["a"]
    assert (meta.chunks, meta.next_chunk) == (2, 2)
    assert store.get_doc(meta.id, "doc2") is None
    assert store.sequence() == 1


def test_collections_are_isolated_and_chunk_ids_never_reused(store):
    a_ids, _ = _write(store, "a", "x", 2)
    b_ids, _ = _write(store, "b", "x", 1)
    assert a_ids == [0, 1] and b_ids == [0]
    with store.write() as w:
        meta = w.collection("a", 4, "m", create=False)
        w.remove_chunks(meta, a_ids)
    ids, _ = _write(store, "a", "y", 1)
    assert ids == [2]
    meta_a, meta_b = store.collections()["a"], store.collections()["b"]
    assert vector_ids(store, meta_a.id)[0].tolist() == [2]
    assert vector_ids(store, meta_b.id)[0].tolist() == [0]
    assert store.sequence() == 4


def test_records_written_by_earlier_versions_read_back_typed(tmp_path):
    """The on-disk format is unchanged: msgpack maps with the short keys earlier ragd
    wrote (here written raw, as they sit in existing data dirs) read back as typed
    records, and typed writes produce the same maps."""
    path = tmp_path / "store"
    s = Store(path, 1 << 30)
    s.close()
    env = lmdb.open(str(path), max_dbs=8)
    pack = lambda o: msgpack.packb(o, use_bin_type=True)  # noqa: E731
    live = {"v": 3, "ti": "Login", "tx": "LDAP fails", "p": 7, "ty": "issue", "pr": True, "a": 5,
            "u": 1_700_000_000_000_000, "m": {"tracker": "bug"}, "vw": [9], "c": [0, 1]}
    with env.begin(write=True) as txn:
        txn.put(b"seq", (2).to_bytes(8, "big"), db=env.open_db(b"meta", txn=txn))
        # Collections written before `tombstones` was counted lack the key.
        txn.put(b"old", pack({"id": 1, "dim": 4, "model": "m", "next_chunk": 2, "docs": 1, "chunks": 2}),
                db=env.open_db(b"collections", txn=txn))
        docs = env.open_db(b"docs", txn=txn)
        txn.put((1).to_bytes(4, "big") + b"issue:1", pack(live), db=docs)
        txn.put((1).to_bytes(4, "big") + b"issue:2", pack({"v": 4, "del": True, "c": []}), db=docs)
        txn.put((1).to_bytes(8, "big"), pack({"c": 1, "a": [0, 1], "r": []}), db=env.open_db(b"oplog", txn=txn))
        txn.put((2).to_bytes(8, "big"), pack({"c": 1, "a": [], "r": [7]}), db=env.open_db(b"oplog", txn=txn))
    env.close()

    s = Store(path, 1 << 30)
    try:
        meta = s.collections()["old"]
        assert (meta.id, meta.dim, meta.docs, meta.chunks, meta.tombstones) == (1, 4, 1, 2, 0)
        rec = s.get_doc(1, "issue:1")
        assert not rec.deleted and rec.version == 3 and rec.chunk_ids == [0, 1]
        assert rec.document == Document(id="issue:1", text="LDAP fails", title="Login", project_id=7, type="issue",
                                        is_private=True, author_id=5, updated_at_us=1_700_000_000_000_000,
                                        version=3, metadata={"tracker": "bug"}, viewer_ids=[9])
        gone = s.get_doc(1, "issue:2")
        assert gone.deleted and gone.version == 4 and gone.document is None
        assert list(s.iter_oplog()) == [OpLogEntry(1, 1, (0, 1), ()), OpLogEntry(2, 1, (), (7,))]
        # Written back typed, the maps are byte-for-byte what was there.
        with s.write() as w:
            m = w.collection("old", 4, "m", create=False)
            w.put_doc(m, rec)
            w.put_doc(m, gone)
        with s.env.begin() as txn:
            docs = s.db("docs")
            assert msgpack.unpackb(txn.get((1).to_bytes(4, "big") + b"issue:1", db=docs)) == live
            assert msgpack.unpackb(txn.get((1).to_bytes(4, "big") + b"issue:2", db=docs)) == \
                {"v": 4, "del": True, "c": []}
    finally:
        s.close()


def test_finished_jobs_are_pruned_after_their_retention(store):
    from ragd.domain import JobState
    from ragd.store.jobs import JobStore

    now = [1000.0]
    jobs = JobStore(store, clock=lambda: now[0])
    old = jobs.create("c", [Document(id="a", text="x")])
    running = jobs.create("c", [Document(id="b", text="y"), Document(id="c", text="z")])
    with store.write() as w:
        jobs.advance(w, old, 1, 1)  # finished at t=1000
        jobs.advance(w, running, 1, 1)  # one of two: still running
    assert jobs.get(old.id).state is JobState.SUCCEEDED and jobs.get(running.id).state is JobState.RUNNING
    now[0] = 1000.0 + 59
    assert jobs.prune(60) == 0  # finished 59 s ago: kept
    now[0] = 1000.0 + 61
    assert jobs.prune(60) == 1
    assert jobs.get(old.id) is None
    assert jobs.get(running.id) is not None and [j.id for j in jobs.unfinished()] == [running.id]
    assert [d.id for d in jobs.docs_from(jobs.get(running.id), 10)] == ["c"]


def test_grant_fields_round_trip_and_are_written_only_when_set(store):
    """tracker_id, owner_ids and private_note (read by filter grants) come back as
    written; a document without them keeps the record format of before (no keys)."""
    with_grants = Document(id="journal:4", text="t", type="journal", tracker_id=2, owner_ids=[7, 40],
                           private_note=True)
    plain = Document(id="wiki:1", text="t", type="wiki")
    with store.write() as w:
        meta = w.collection("c", 4, "m", create=True)
        w.put_doc(meta, DocRecord.live(with_grants, [0]))
        w.put_doc(meta, DocRecord.live(plain, [1]))
    assert store.get_doc(meta.id, "journal:4").document == with_grants
    assert store.get_doc(meta.id, "wiki:1").document == plain
    with store.env.begin() as txn:
        raw = {k: msgpack.unpackb(txn.get(meta.id.to_bytes(4, "big") + k.encode(), db=store.db("docs")))
               for k in ("journal:4", "wiki:1")}
    assert (raw["journal:4"]["tr"], raw["journal:4"]["ow"], raw["journal:4"]["pn"]) == (2, [7, 40], True)
    assert not {"tr", "ow", "pn"} & set(raw["wiki:1"])
