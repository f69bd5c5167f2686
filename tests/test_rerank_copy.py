"""The resident re-rank copy (ragd.index.rerank_copy) on real FAISS and LMDB, and the
filter-mask cache (FilterColumns.mask, VectorIndex's selector memo): same answers as
the uncached, LMDB-reading paths, saved and restored with the snapshot, rebuilt when
its file does not match, and never a stale mask after a write."""
from __future__ import annotations

import logging
import threading

import numpy as np
import pytest
from test_index import DIM, clustered, exact_topk, keeper_for, write_chunks

from ragd.domain import Document, Filter
from ragd.index import snapshot as snapfile
from ragd.index.columns import FilterColumns
from ragd.index.derived import replay
from ragd.index.lifecycle import IndexContext, IndexKeeper, vector_fetch
from ragd.index.rerank_copy import RerankCopy
from ragd.index.vector_index import IndexSettings, VectorIndex
from ragd.store.lmdb_store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "store", 1 << 30)
    yield s
    s.close()


@pytest.mark.parametrize("kind, tol", [("fp16", 1e-3), ("sq8", 2e-2)])
def test_copy_round_trips_and_decodes_close_to_the_vectors(tmp_path, kind, tol):
    vecs = clustered(3000, seed=3)
    copy = RerankCopy.trained_on(DIM, kind, vecs)
    copy.add(np.arange(5, 3005), vecs)
    got, found = copy.fetch(np.array([0, 5, 3004, 10**6]))
    assert found.tolist() == [False, True, True, False]
    assert np.abs(got[1] - vecs[0]).max() < tol and np.abs(got[2] - vecs[-1]).max() < tol
    path = tmp_path / "c.rerank"
    copy.save(path, seq=42)
    back, seq = RerankCopy.load(path)
    assert seq == 42 and back.kind == kind
    assert np.array_equal(back.fetch(np.arange(3010))[0], copy.fetch(np.arange(3010))[0])
    back.add(np.array([4000]), vecs[:1])  # grows past what was read
    assert back.fetch(np.array([4000, 3004]))[1].all()
    mapped, seq = RerankCopy.map(path)  # the header alone: unverified until its checksum passed
    assert seq == 42 and mapped.mapped and not mapped.verified.is_set()
    assert mapped.verify() is True and mapped.verified.is_set()
    assert np.array_equal(mapped.fetch(np.arange(3010))[0], copy.fetch(np.arange(3010))[0])
    mapped.add(np.array([4000, 7]), vecs[:2])  # grows past the file; a base row is written copy-on-write
    assert mapped.fetch(np.array([4000, 7, 3004]))[1].all()
    mapped.save(tmp_path / "again.rerank", seq=43)  # base and tail saved as one array
    again, _ = RerankCopy.load(tmp_path / "again.rerank")
    assert np.array_equal(again.fetch(np.arange(4001))[0], mapped.fetch(np.arange(4001))[0])
    assert RerankCopy.load(path)[0].fetch(np.array([7]))[0][0].tolist() == copy.fetch(np.array([7]))[0][0].tolist()
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(snapfile.SnapshotError):
        RerankCopy.load(path)
    damaged, _ = RerankCopy.map(path)  # same size, same header: only the checksum tells
    assert damaged.verify() is False and not damaged.verified.is_set()
    path.write_bytes(bytes(raw[:-100]))  # torn: refused on open, by its size
    with pytest.raises(snapfile.SnapshotError, match="truncated"):
        RerankCopy.map(path)


@pytest.mark.parametrize("kind", ["fp16", "sq8"])
def test_native_rerank_is_the_numpy_rerank_over_the_decoded_rows(tmp_path, kind):
    """RerankCopy.rerank (ragd._native.rerank_top_k) against the numpy form it replaced:
    the candidates' decoded rows (fetch), their dot products, a stable argsort; ids that
    are negative, never added, past the rows or deleted are skipped; also on a copy
    read back from its file (read-only arrays), and on a mapped file with rows added past it."""
    vecs = clustered(2000, seed=6)
    copy = RerankCopy.trained_on(DIM, kind, vecs)
    copy.add(np.arange(0, 1500), vecs[:1500])
    copy.add(np.arange(1700, 2000), vecs[1700:])  # rows 1500..1699 never added
    path = tmp_path / "c.rerank"
    copy.save(path, seq=1)
    back, _ = RerankCopy.load(path)
    # A mapped copy grown past its file: rows in two segments (the file's, then memory's),
    # each ranked natively, merged by score.
    mapped, _ = RerankCopy.map(path)
    assert mapped.verify() is True
    mapped.add(np.arange(2000, 2050), clustered(50, seed=7))
    rng = np.random.default_rng(0)
    for copy_ in (copy, back, mapped):
        for trial in range(30):
            q = clustered(1, seed=100 + trial)[0]
            cand = rng.integers(-2, 2100, size=int(rng.integers(0, 400))).astype(np.int64)
            for k in (1, 10, 500):
                scores, ids = copy_.rerank(q, cand, k)
                vec, found = copy_.fetch(np.where(cand >= 0, cand, 10**9))
                keep = cand[found]
                exact = vec[found] @ q
                order = np.argsort(-exact, kind="stable")[:k]
                assert len(ids) == len(order) <= k
                np.testing.assert_allclose(scores, exact[order], rtol=0, atol=1e-4)
                # Equal ids wherever the numpy scores are not a near tie (float rounding).
                if len(order) == 0:
                    continue
                gaps = np.abs(np.diff(exact[order]))
                clear = np.concatenate([[True], gaps > 1e-4]) & np.concatenate([gaps > 1e-4, [True]])
                assert np.array_equal(ids[clear], keep[order][clear])


def test_copy_rerank_matches_the_lmdb_rerank(store, tmp_path):
    vecs = clustered(12000, seed=4)
    ids = np.asarray(write_chunks(store, vecs), dtype=np.int64)
    fp16 = keeper_for(store, tmp_path, ivf_threshold=1000, rerank_copy="fp16")
    assert fp16.train_and_swap() and fp16.index.kind == "ivfpq" and fp16.index.copy is not None
    # The same IVF-PQ (same candidates), re-ranked from LMDB's fp32 vectors instead.
    lmdb = type(fp16)(VectorIndex(DIM, IndexSettings(), vector_fetch(store, 1, DIM)), store, fp16.meta, fp16.ctx)
    lmdb.index.swap_in(fp16.index._index, fp16.index._state.copy(), fp16.index.trained_n)  # noqa: SLF001
    queries = clustered(60, seed=5)
    hits_l = hits_f = 0
    for q in queries:
        truth = set(exact_topk(vecs, ids, q, 10).tolist())
        hits_l += len(truth & set(lmdb.index.search(q[None], 10)[1][0].tolist()))
        scores, got = fp16.index.search(q[None], 10)
        hits_f += len(truth & set(got[0].tolist()))
        assert np.abs(scores[0] - vecs[np.searchsorted(ids, got[0])] @ q).max() < 2e-3  # fp16 rounding only
    # Neighbours 10 and 11 of these dense 32-d clusters can be closer than fp16's rounding.
    assert hits_f >= hits_l - 6 and hits_l / 600 > 0.9
    # A filter and a tombstone apply with the copy as without it.
    allowed = np.zeros(ids.max() + 1, bool)
    allowed[ids[::7]] = True
    fp16.index.remove(ids[:1])
    for q in queries[:10]:
        got = fp16.index.search(q[None], 10, allowed)[1][0]
        assert allowed[got].all() and ids[0] not in got


def test_snapshot_saves_the_copy_and_a_start_reads_or_rebuilds_it(store, tmp_path):
    vecs = clustered(6000, seed=6)
    write_chunks(store, vecs)
    k = keeper_for(store, tmp_path, ivf_threshold=1000, rerank_copy="fp16")
    assert k.train_and_swap()  # writes the snapshot and the copy
    paths = k.paths
    assert paths.rerank.exists()
    q = clustered(5, seed=7)
    want = k.index.search(q, 10)

    def reopened(same=True):
        k2 = keeper_for(store, tmp_path, ivf_threshold=1000, rerank_copy="fp16")
        assert k2.copy_settled.wait(120)  # verified, or rebuilt from LMDB, in the background
        assert k2.index.kind == "ivfpq" and k2.index.copy is not None and k2.index.copy.verified.is_set()
        got = k2.index.search(q, 10)
        if same:
            assert np.array_equal(got[1], want[1]) and np.allclose(got[0], want[0], atol=1e-6)
        return k2

    reopened()
    paths.rerank.unlink()  # missing: rebuilt from LMDB
    reopened()
    new = clustered(10, seed=8)
    write_chunks(store, new, start_doc=10_000)  # the op log moves on: replayed into the index and the copy
    k3 = reopened(same=False)
    assert k3.index.ntotal == 6010
    assert k3.index.search(new[3][None], 1)[1][0][0] == 6003
    k3.snapshot()
    RerankCopy.trained_on(DIM, "fp16", vecs).save(paths.rerank, seq=1)  # of another sequence: rebuilt
    k5 = keeper_for(store, tmp_path, ivf_threshold=1000, rerank_copy="fp16")
    assert k5.copy_settled.wait(120) and k5.copy_state == "rebuilt"
    assert k5.index.copy.fetch(np.arange(6010))[1].sum() == 6010
    k4 = keeper_for(store, tmp_path, ivf_threshold=1000)  # turned off: no copy, the file goes
    assert k4.index.copy is None
    k4.snapshot()
    assert not paths.rerank.exists()


# ------------------------------------------------------------------ the mapped copy at start


def fp16_exact(n: int, seed: int) -> np.ndarray:
    """Vectors fp16 holds exactly: re-ranking from the fp16 copy then gives the very
    scores of the fp32 re-rank from LMDB, so 'equal to the fp32 re-rank' is exact."""
    return clustered(n, seed=seed).astype(np.float16).astype(np.float32)


@pytest.fixture
def gate(monkeypatch):
    """Holds every mapped file's checksum check until released: the test sees the
    start before the check completes (the real check runs once released)."""
    started, release = threading.Event(), threading.Event()
    verify = snapfile.MappedArrays.verify

    def held(self, stop=None, block=8 << 20):
        started.set()
        assert release.wait(120), "the test never released the check"
        return verify(self, stop, block)

    monkeypatch.setattr(snapfile.MappedArrays, "verify", held)
    yield started, release
    release.set()


def fp32_reference(store, keeper: IndexKeeper) -> VectorIndex:
    """The same IVF-PQ (same candidates), re-ranked from LMDB's fp32 vectors."""
    ref = VectorIndex(DIM, IndexSettings(), vector_fetch(store, 1, DIM))
    ref.swap_in(keeper.index._index, keeper.index._state.copy(), keeper.index.trained_n)  # noqa: SLF001
    return ref


def built_with_copy(store, tmp_path, n: int = 6000) -> tuple[np.ndarray, IndexKeeper]:
    vecs = fp16_exact(n, seed=11)
    write_chunks(store, vecs)
    k = keeper_for(store, tmp_path, ivf_threshold=1000, rerank_copy="fp16")
    assert k.train_and_swap() and k.paths.rerank.exists()  # the snapshot, with the copy's file
    return vecs, k


def test_a_start_serves_before_the_copy_is_verified_then_uses_it(store, tmp_path, gate):
    started, release = gate
    _, k = built_with_copy(store, tmp_path)
    queries = clustered(20, seed=12)
    k2 = keeper_for(store, tmp_path, ivf_threshold=1000, rerank_copy="fp16")
    try:
        assert started.wait(120)  # the check runs (held) in its own thread; the start is done
        copy = k2.index.copy
        assert copy is not None and copy.mapped and not copy.verified.is_set()
        assert k2.copy_state == "verifying" and not k2.copy_settled.is_set()
        ref = fp32_reference(store, k2)
        for q in queries:  # served now, re-ranked from LMDB
            got, want = k2.index.search(q[None], 10), ref.search(q[None], 10)
            assert np.array_equal(got[1], want[1]) and np.array_equal(got[0], want[0])
        assert k2.snapshot() == 0  # no snapshot of unchecked rows
        release.set()
        assert k2.copy_settled.wait(120) and k2.copy_state == "verified"
        assert k2.index.copy is copy and copy.verified.is_set()  # the mapped file, now trusted
        for q in queries:
            got, want = k2.index.search(q[None], 10), ref.search(q[None], 10)
            assert np.array_equal(got[1], want[1]) and np.allclose(got[0], want[0], rtol=0, atol=1e-6)
        assert k2.snapshot() > 0
    finally:
        release.set()
        k2.close(snapshot=False)


def test_a_damaged_copy_is_caught_in_the_background_and_rebuilt(store, tmp_path, gate, caplog):
    started, release = gate
    vecs, k = built_with_copy(store, tmp_path)
    path = k.paths.rerank
    raw = bytearray(path.read_bytes())
    header_end = len(raw) - 6000 - 6000 * DIM * 2  # the codes, then one present byte per row
    for at in range(header_end + 1, header_end + 6000 * DIM * 2, 2):
        raw[at] ^= 0x80  # every fp16 value's sign: same size, same header, wrong vectors
    path.write_bytes(bytes(raw))
    queries = clustered(20, seed=13)
    k2 = keeper_for(store, tmp_path, ivf_threshold=1000, rerank_copy="fp16")
    try:
        assert started.wait(120)
        damaged = k2.index.copy
        assert damaged is not None and not damaged.verified.is_set()
        assert np.array_equal(damaged.fetch(np.arange(10))[0], -vecs[:10])  # what serving it would re-rank with
        ref = fp32_reference(store, k2)
        for q in queries:  # before the check completes: LMDB's fp32 re-rank, not the damaged rows
            got, want = k2.index.search(q[None], 10), ref.search(q[None], 10)
            assert np.array_equal(got[1], want[1]) and np.array_equal(got[0], want[0])
        fresh = fp16_exact(20, seed=14)
        fresh_ids = write_chunks(store, fresh, start_doc=50_000)  # a write before the check fails,
        replay(store, k2.meta, [k2])                              # applied as the live path does
        release.set()
        with caplog.at_level(logging.INFO, logger="ragd.index"):
            assert k2.copy_settled.wait(120)
        assert k2.copy_state == "rebuilt"
        assert "fails its checksum" in caplog.text
        rebuilt = k2.index.copy
        assert rebuilt is not damaged and rebuilt.verified.is_set() and not rebuilt.mapped
        assert np.array_equal(rebuilt.fetch(np.arange(6000))[0], vecs)
        assert np.array_equal(rebuilt.fetch(np.asarray(fresh_ids))[0], fresh)
        for q in queries:  # after the recovery: equal to the fp32 re-rank
            got, want = k2.index.search(q[None], 10), ref.search(q[None], 10)
            assert np.array_equal(got[1], want[1]) and np.allclose(got[0], want[0], rtol=0, atol=1e-6)
    finally:
        release.set()
        k2.close()  # the rebuilt copy goes into the final snapshot
    k3 = keeper_for(store, tmp_path, ivf_threshold=1000, rerank_copy="fp16")
    try:
        assert k3.copy_settled.wait(120) and k3.copy_state == "verified"  # the file is sound again
    finally:
        k3.close(snapshot=False)


def test_a_crash_while_the_copy_was_written_leaves_a_file_a_start_can_trust_or_rebuilds(store, tmp_path):
    vecs, k = built_with_copy(store, tmp_path)
    path = k.paths.rerank
    good = path.read_bytes()
    # Killed while writing the next one: the write goes to a .tmp beside it, renamed only when whole.
    path.with_name(path.name + ".tmp").write_bytes(good[: len(good) // 2])
    k2 = keeper_for(store, tmp_path, ivf_threshold=1000, rerank_copy="fp16")
    assert k2.copy_settled.wait(120) and k2.copy_state == "verified"
    k2.close(snapshot=False)
    path.write_bytes(good[: len(good) // 2])  # a torn file in its place (never by ragd): refused by its size
    k3 = keeper_for(store, tmp_path, ivf_threshold=1000, rerank_copy="fp16")
    try:
        # Nothing to trust: no copy until it is rebuilt (the re-rank reads LMDB meanwhile).
        assert k3.copy_settled.wait(120) and k3.copy_state == "rebuilt"
        assert np.array_equal(k3.index.copy.fetch(np.arange(6000))[0], vecs)
    finally:
        k3.close(snapshot=False)


def test_read_mode_checks_the_copy_before_the_start_returns(store, tmp_path):
    _, k = built_with_copy(store, tmp_path)
    s = IndexSettings(ivf_threshold=1000, pq_m=8, rerank_copy="fp16")
    ctx = IndexContext(settings=s, write_lock=threading.Lock(), background=False, rerank_copy_load="read")
    k2 = IndexKeeper(VectorIndex(DIM, s, vector_fetch(store, 1, DIM)), store, k.meta, ctx, k.paths)
    k2.open()
    assert k2.copy_settled.is_set() and k2.copy_state == "verified"
    assert k2.index.copy is not None and not k2.index.copy.mapped and k2.index.copy.verified.is_set()


# ------------------------------------------------------------------ the mask cache


def doc(i: int, project: int, private: bool = False, author: int = 1) -> Document:
    return Document(id=f"issue:{i}", text="", project_id=project, type="issue", is_private=private,
                    author_id=author, version=1)


def test_cached_mask_is_shared_read_only_and_never_stale():
    cols = FilterColumns()
    for i in range(50):
        cols.set_chunks(range(i * 4, i * 4 + 4), doc(i, project=i % 5, private=i % 7 == 0, author=i % 3))
    flt = Filter(project_ids=[1, 2], user_id=2)
    a = cols.mask(flt)
    assert a is cols.mask(Filter(project_ids=[1, 2], user_id=2))  # an equal filter: the same array
    assert not a.flags.writeable
    with pytest.raises(ValueError):
        a[0] = True
    assert np.array_equal(a, cols.compute_mask(flt))
    cols.set_chunks(range(200, 204), doc(50, project=1))  # a new document the filter admits
    b = cols.mask(flt)
    assert b is not a and b[200:204].all() and np.array_equal(b, cols.compute_mask(flt))
    cols.clear_chunks(range(4, 8))  # issue:1 (project 1) deleted
    c = cols.mask(flt)
    assert not c[4:8].any() and np.array_equal(c, cols.compute_mask(flt))
    cols.set_chunks(range(8, 12), doc(2, project=2, private=True, author=9))  # re-upserted private
    assert not cols.mask(flt)[8:12].any()
    assert cols.mask(Filter(project_ids=[1, 2], user_id=9))[8:12].all()


def test_cache_is_bounded_by_bytes(monkeypatch):
    cols = FilterColumns()
    cols.set_chunks(range(1000), doc(0, project=1))
    monkeypatch.setattr(FilterColumns, "MASK_CACHE_BYTES", 3000)
    masks = [cols.mask(Filter(project_ids=[1, p])) for p in range(2, 12)]
    assert cols._masks_bytes <= 3000 and len(cols._masks) == 3  # noqa: SLF001
    assert all(m.all() for m in masks)


def test_index_memo_of_a_shared_mask_follows_tombstones():
    vecs = clustered(3000, seed=9)
    idx = VectorIndex(DIM, IndexSettings())
    ids = np.arange(3000, dtype=np.int64)
    idx.add(ids, vecs)
    allowed = np.zeros(3000, bool)
    allowed[::3] = True
    allowed.setflags(write=False)
    q = vecs[9]
    assert idx.search(q[None], 5, allowed)[1][0][0] == 9
    assert idx.admitted(allowed) == 1000
    idx.remove([9])
    got = idx.search(q[None], 5, allowed)[1][0]
    assert 9 not in got and allowed[got].all()
