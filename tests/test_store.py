"""LMDB store on real files: durability boundaries and the op log."""
import numpy as np
import pytest

from ragd.store.lmdb_store import Store


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
        w.put_doc(meta, doc_id, {"c": ids})
        meta.docs += 1
    return ids, vecs


def test_write_is_visible_with_sequence_and_survives_reopen(tmp_path):
    s = Store(tmp_path / "store", 1 << 30)
    ids, vecs = _write(s, "a", "doc", 3)
    assert s.sequence() == 1
    s.close()
    s = Store(tmp_path / "store", 1 << 30)
    meta = s.collections()["a"]
    assert (meta.docs, meta.chunks, meta.next_chunk) == (1, 3, 3)
    got_ids, got = s.load_vectors(meta.id, 4)
    assert got_ids.tolist() == ids and np.array_equal(got, vecs)
    assert s.get_doc(meta.id, "doc") == {"c": ids}
    s.close()


def test_failed_transaction_leaves_nothing(store):
    _write(store, "a", "doc", 2)
    with pytest.raises(RuntimeError):
        with store.write() as w:
            meta = w.collection("a", 4, "m", create=True)
            w.add_chunks(meta, "doc2", [(0, 1)], ["t"], np.zeros((1, 4), np.float32))
            w.put_doc(meta, "doc2", {"c": [2]})
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
    assert store.load_vectors(meta_a.id, 4)[0].tolist() == [2]
    assert store.load_vectors(meta_b.id, 4)[0].tolist() == [0]
    assert store.sequence() == 4
