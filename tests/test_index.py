"""The vector index and its lifecycle on real LMDB and real FAISS (small synthetic sizes):
flat and IVF-PQ search with re-ranking, tombstones and compaction, filters inside
the search, background training and swap, snapshots with op-log replay, corrupt
snapshots, backups."""
from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

from ragd.engine.datadir import DataDir
from ragd.index import snapshot as snapfile
from ragd.index.lifecycle import IndexContext, IndexKeeper, vector_fetch
from ragd.index.vector_index import IndexSettings, VectorIndex
from ragd.store.lmdb_store import CollectionMeta, Store

DIM = 32


def clustered(n: int, seed: int = 0, centers: int = 50) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centers, DIM)).astype(np.float32)
    x = c[rng.integers(0, centers, n)] + 0.35 * rng.normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_topk(vecs: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    scores = vecs @ q
    return ids[np.argsort(-scores, kind="stable")[:k]]


def write_chunks(store: Store, vecs: np.ndarray, per_doc: int = 10, start_doc: int = 0) -> list[int]:
    out: list[int] = []
    with store.write() as w:
        meta = w.collection("c", DIM, "test", create=True)
        for d, i in enumerate(range(0, len(vecs), per_doc)):
            part = vecs[i:i + per_doc]
            out += w.add_chunks(meta, f"doc:{start_doc + d}", [(0, 1)] * len(part), ["t"] * len(part), part)
    return out


def remove_chunks(store: Store, ids) -> None:
    with store.write() as w:
        meta = w.collection("c", DIM, "test", create=False)
        w.remove_chunks(meta, [int(i) for i in ids])


def lmdb_ids(store: Store, coll: int = 1) -> set[int]:
    return {int(i) for _, ids, _ in store.scan_vectors(coll, DIM) for i in ids}


def index_ids(index: VectorIndex) -> set[int]:
    return set(index.live_ids().tolist())


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "store", 1 << 30)
    yield s
    s.close()


def keeper_for(store, tmp_path, **settings) -> IndexKeeper:
    s = IndexSettings(**{"ivf_threshold": 10**9, "pq_m": 8, **settings})
    ctx = IndexContext(settings=s, write_lock=threading.Lock(), background=False)
    meta = CollectionMeta(name="c", id=1, dim=DIM, model="test")
    k = IndexKeeper(VectorIndex(DIM, s, vector_fetch(store, 1, DIM)), store, meta, ctx,
                    DataDir(tmp_path).snapshot_paths(1))
    k.recovery = k.open()
    return k


# ------------------------------------------------------------------ flat


def test_flat_search_tombstones_filters_and_compaction():
    vecs = clustered(2000)
    ids = np.arange(2000, dtype=np.int64)
    idx = VectorIndex(DIM, IndexSettings(compact_fraction=0.01))
    idx.add(ids, vecs)
    idx.add(ids[:10], vecs[:10])  # idempotent replay
    assert idx.ntotal == 2000 and idx.kind == "flat"
    q = vecs[7]
    _, got = idx.search(q[None], 5)
    assert got[0][0] == 7
    idx.remove([7, 8, 9999])
    assert idx.ntotal == 1998 and idx.tombstones == 2
    _, got = idx.search(q[None], 10)
    assert 7 not in got[0] and 8 not in got[0]
    # A filter admitting 1% still fills the page, with the exact filtered answer.
    allowed = np.zeros(2000, bool)
    allowed[::100] = True
    allowed[100] = False
    _, got = idx.search(q[None], 10, allowed)
    keep = np.flatnonzero(allowed)
    assert list(got[0]) == list(exact_topk(vecs[keep], keep, q, 10))
    assert not idx.needs_compaction()  # 2 tombstones: below the 64 floor
    assert idx.compact() == 2
    assert idx.tombstones == 0 and idx.ntotal == 1998
    assert index_ids(idx) == set(range(2000)) - {7, 8}


# ------------------------------------------------------------------ IVF-PQ


def test_ivfpq_recall_filters_and_deletes_on_lmdb(store, tmp_path):
    vecs = clustered(20000, seed=1)
    ids = np.asarray(write_chunks(store, vecs), dtype=np.int64)
    k = keeper_for(store, tmp_path, ivf_threshold=5000, nlist_factor=2.0)
    assert k.index.kind == "flat" and k.index.ntotal == 20000
    assert k.index.needs_training()
    assert k.train_and_swap()
    idx = k.index
    assert idx.kind == "ivfpq" and idx.ntotal == 20000 and idx.nlist >= 16
    queries = clustered(100, seed=2)
    hit = 0
    for q in queries:
        _, got = idx.search(q[None], 10)
        hit += len(set(got[0]) & set(exact_topk(vecs, ids, q, 10)))
    assert hit / 1000 >= 0.95
    # Without re-ranking enough candidates, PQ alone is worse: the re-rank is doing work.
    _, got = idx.search(queries[0][None], 10, rerank_factor=1, nprobe=1)
    assert len(got[0]) == 10
    # 1% filter: a full page of the best admitted vectors.
    allowed = np.zeros(20000, bool)
    allowed[np.random.default_rng(3).choice(20000, 200, replace=False)] = True
    keep = np.flatnonzero(allowed)
    hit = 0
    for q in queries[:30]:
        _, got = idx.search(q[None], 10, allowed)
        assert (got[0] >= 0).sum() == 10 and allowed[got[0]].all()
        hit += len(set(got[0]) & set(exact_topk(vecs[keep], keep, q, 10)))
    assert hit / 300 >= 0.95
    # 12 admitted vectors and one probed list: the search widens its probe until every row
    # of a batch has a full page (a read-only mask, as the engine's cache hands out, whose
    # selector and search parameters are kept between searches: same answers twice).
    few = np.zeros(20000, bool)
    few[np.random.default_rng(4).choice(20000, 12, replace=False)] = True
    few.setflags(write=False)
    for _ in range(2):
        _, got = idx.search(queries[:3], 10, few, nprobe=1)
        assert ((got >= 0).sum(axis=1) == 10).all() and few[got].all()
    # Deletes are tombstones applied inside the search, then compacted away.
    gone = ids[:3000]
    remove_chunks(store, gone)
    idx.remove(gone)
    _, got = idx.search(vecs[5][None], 10)
    assert not set(got[0]) & set(gone.tolist())
    assert idx.needs_compaction() and idx.compact() == 3000
    assert index_ids(idx) == lmdb_ids(store)
    _, got = idx.search(vecs[5000][None], 1)
    assert got[0][0] == ids[5000]


def test_background_training_catches_up_with_writes_made_meanwhile(store, tmp_path):
    vecs = clustered(8000, seed=4)
    write_chunks(store, vecs)
    k = keeper_for(store, tmp_path, ivf_threshold=4000, nlist_factor=1.0)
    lock = k.ctx.write_lock
    more = clustered(500, seed=5)
    # Writes interleaved with the build: commit + apply under the write lock, like the engine.
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set() and i < 50:
            with lock:
                new = write_chunks(store, more[i * 10:(i + 1) * 10], start_doc=10000 + i)
                k.index.add(np.asarray(new), more[i * 10:(i + 1) * 10])
                remove_chunks(store, [i * 7])
                k.index.remove([i * 7])
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    assert k.train_and_swap()
    stop.set()
    t.join()
    assert k.index.kind == "ivfpq"
    assert index_ids(k.index) == lmdb_ids(store)
    assert (tmp_path / "index" / "collection-1.snap").exists()  # snapshot after the swap


# ------------------------------------------------------------------ snapshots


@pytest.mark.parametrize("kind", ["flat", "ivfpq"])
def test_snapshot_then_replay_matches_lmdb(store, tmp_path, kind):
    vecs = clustered(6000, seed=6)
    write_chunks(store, vecs[:5000])
    k = keeper_for(store, tmp_path, ivf_threshold=1000, nlist_factor=1.0)
    if kind == "ivfpq":
        assert k.train_and_swap()
    remove_chunks(store, range(100, 200))
    k.index.remove(list(range(100, 200)))
    k.snapshot()
    seq = k.snapshot_seq
    # After the snapshot: more writes the snapshot does not hold (the "crash" loses nothing).
    new = write_chunks(store, vecs[5000:], start_doc=9000)
    remove_chunks(store, list(range(0, 50)) + new[:20])
    k2 = keeper_for(store, tmp_path, ivf_threshold=1000, nlist_factor=1.0)
    assert k2.recovery.source == f"loaded at sequence {seq}"
    assert k2.recovery.replayed == 2
    assert k2.index.kind == kind
    assert index_ids(k2.index) == lmdb_ids(store)
    assert k2.index.ntotal == len(lmdb_ids(store))
    _, got = k2.index.search(vecs[5500][None], 1)
    assert got[0][0] == new[500]


def test_corrupt_or_missing_snapshot_is_rebuilt_from_lmdb_with_a_log_line(store, tmp_path, caplog):
    vecs = clustered(3000, seed=7)
    write_chunks(store, vecs)
    k = keeper_for(store, tmp_path)
    k.snapshot()
    path = k.paths.index
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(snapfile.SnapshotError):
        snapfile.read(path)
    with caplog.at_level(logging.WARNING, logger="ragd.index"):
        k2 = keeper_for(store, tmp_path)
    assert "unusable" in caplog.text and "rebuilding" in caplog.text
    assert k2.recovery.source == "rebuilt from LMDB" and k2.recovery.reason == "copy unusable"
    assert index_ids(k2.index) == lmdb_ids(store)
    path.write_bytes(bytes(data[: len(data) // 3]))  # torn write
    k3 = keeper_for(store, tmp_path)
    assert index_ids(k3.index) == lmdb_ids(store)
    path.unlink()
    k4 = keeper_for(store, tmp_path)
    assert k4.recovery.source == "rebuilt from LMDB" and not k4.recovery.reason and k4.index.ntotal == 3000


def test_store_backup_is_a_consistent_copy(store, tmp_path):
    vecs = clustered(500, seed=8)
    write_chunks(store, vecs)
    seq, size = store.backup(tmp_path / "backup")
    assert seq == store.sequence() and size > 0
    copy = Store(tmp_path / "backup", 1 << 30)
    try:
        assert lmdb_ids(copy) == lmdb_ids(store)
        assert copy.sequence() == seq
    finally:
        copy.close()
    with pytest.raises(FileExistsError):
        store.backup(tmp_path / "backup")


def test_default_probes_and_rerank_depth_are_the_measured_settings():
    """The auto defaults at the sizes benchmarks/index_scale.py --xlarge measured: 1M (125
    lists, x40: recall@10 0.967) and 10M (128 lists, x200: 0.958, where 395 lists x40 gave
    0.876); probes stop at 128 lists, the re-rank depth keeps growing with N."""
    from ragd.index.vector_index import default_nprobe, default_rerank_factor, nlist_for

    assert (default_nprobe(nlist_for(1_000_000, 4.0)), default_rerank_factor(1_000_000)) == (125, 40)
    assert (default_nprobe(nlist_for(10_000_000, 4.0)), default_rerank_factor(10_000_000)) == (128, 200)
    assert default_nprobe(16) == 16 and default_nprobe(900) == 32  # never more lists than exist, at least 32
    sizes = [50_000, 500_000, 2_000_000, 5_000_000, 20_000_000]
    depths = [default_rerank_factor(n) for n in sizes]
    assert depths == sorted(depths) and depths[0] == 40 and default_rerank_factor(10**9) == 400
