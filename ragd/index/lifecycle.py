"""Vector index lifecycle of one collection: its place among the derived indexes
(load a snapshot, rebuild from LMDB, apply changes; see ragd.index.derived),
background IVF-PQ training and atomic swap, compaction of tombstones, and
snapshots.

The store is reached through ragd.index.derived.StoreReader: this module never
imports it, and the store never sees FAISS.

Consistency rule: the FAISS index reflects exactly the op log up to some
sequence. Writes commit to LMDB and are applied to the index under the engine's
write lock, so holding that lock gives a consistent cut (sequence + index).
  - snapshot: under the lock, read the sequence and serialize the index; write
    the file (atomic) after releasing it.
  - load: snapshot at sequence S, then the op log after S is replayed.
  - train: build IVF-PQ from a consistent LMDB scan at sequence S0 without the
    lock; then, under the lock, replay the log after S0 into it and swap.
  - filter columns (when attached, see ColumnsKeeper): copied in the same locked
    cut as the index and written beside it with that sequence, so a start loads
    them and replays the log after it instead of scanning every LMDB document.
  - snapshots are due by this collection's own writes (entries applied since the
    last one, or time since it when anything changed), never by other collections'.
  - the re-rank copy (ragd.index.rerank_copy) of an IVF-PQ snapshot is mapped, not
    read, at load; a thread of its own (lowest CPU priority) verifies its checksum
    once the indexes are open, while searches re-rank from LMDB. A copy that fails,
    or whose file is missing or of another sequence, is rebuilt from LMDB by the
    same thread (a consistent scan at S0, then, under the lock, the log after S0
    and the swap), so a start never waits for the copy. No snapshot is written
    while the copy is unverified: it would give unchecked rows a fresh checksum.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from ragd.index import snapshot as snapfile
from ragd.index.columns_keeper import ColumnsKeeper
from ragd.index.derived import Change, Recovery, StoreReader, recover, replay
from ragd.index.rerank_copy import RerankCopy
from ragd.index.snapshot import SnapshotPaths
from ragd.index.vector_index import LIVE, Fetch, IndexSettings, VectorIndex, nlist_for, train_size_for
from ragd.store.records import CollectionMeta

log = logging.getLogger("ragd.index")


@dataclass
class IndexContext:
    """What the engine gives every collection's indexes (one per engine)."""
    settings: IndexSettings = field(default_factory=IndexSettings)
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    snapshot_every_ops: int = 10_000       # this collection's op-log entries since its last snapshot
    snapshot_every_s: float = 300.0        # seconds since the last snapshot (when the collection changed)
    background: bool = True                # run the maintenance thread
    poll_s: float = 0.5
    keyword_cjk: str = "bigram"            # keyword analysis of CJK text (search.keyword_cjk)
    keyword_cjk_by_collection: dict[str, str] = field(default_factory=dict)  # name -> mode, overriding it
    rerank_copy_load: str = "map"          # the re-rank copy's file at start: "map" (verified in the
    #                                        background) or "read" (read whole and verified first)

    def keyword_cjk_of(self, collection: str) -> str:
        return self.keyword_cjk_by_collection.get(collection, self.keyword_cjk)


def vector_fetch(store: StoreReader, coll_id: int, dim: int) -> Fetch:
    """The exact vectors of chunk ids from LMDB (IVF-PQ re-ranking, training samples)."""
    def fetch(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return store.get_vectors(coll_id, ids, dim)
    return fetch


def apply_vectors(index: VectorIndex, change: Change) -> None:
    index.remove(change.removed)
    ids, vectors = change.vectors
    index.add(ids, vectors)


class _CopyCatchUp:
    """A re-rank copy being rebuilt off-line, caught up with the op log (its adds only:
    rows of deleted chunks stay, as in the live copy)."""

    def __init__(self, copy: RerankCopy, sequence: int):
        self.copy = copy
        self.sequence = sequence

    def apply(self, change: Change) -> None:
        self.copy.add(*change.vectors)
        self.sequence = change.seq


def _lowest_priority() -> None:
    """This thread (not the process) at nice 19: Linux schedules threads as tasks, and
    the default I/O scheduler classes derive their I/O priority from it."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):  # not Linux, or not allowed: it runs at normal priority
        pass


class _Staging:
    """An index being built off-line, caught up with the op log like any derived index."""

    def __init__(self, index: VectorIndex, sequence: int):
        self.index = index
        self.sequence = sequence

    def apply(self, change: Change) -> None:
        apply_vectors(self.index, change)
        self.sequence = change.seq


class IndexKeeper:
    """The vector index as a derived index (ragd.index.derived.DerivedIndex), and
    its background maintenance: training, compaction, snapshots."""
    label = "vector index"

    def __init__(self, index: VectorIndex, store: StoreReader, meta: CollectionMeta, ctx: IndexContext,
                 paths: SnapshotPaths | None = None, columns: ColumnsKeeper | None = None):
        self.index = index
        self.store = store
        self.meta = meta
        self.ctx = ctx
        self.paths = paths                     # None: no snapshots (rebuilt from LMDB on every start)
        self.columns = columns                 # filter columns saved with each snapshot, if any
        self.fetch = index.fetch or vector_fetch(store, meta.id, index.dim)
        self.sequence = 0                      # op-log sequence the index reflects
        self.applied = 0                       # this collection's changes applied (ever, this process)
        self.snapshot_seq = -1                 # sequence of the snapshot on disk (-1: none)
        self.snapshot_applied = 0              # `applied` when that snapshot was taken
        self.snapshot_time = time.monotonic()
        self.last_train: dict = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._train_failed_at = -1
        # The re-rank copy's background check or rebuild (see the module docstring).
        self._copy_job: tuple[str, RerankCopy | None] | None = None  # ("verify", copy) / ("rebuild", old)
        self._copy_thread: threading.Thread | None = None
        self._copy_unsaved = False             # a rebuilt copy not yet in a snapshot
        self.copy_state = "none"               # none, verifying, verified, rebuilding, rebuilt, ...
        # Set while the index's re-rank copy is the one the re-rank uses (or none is due):
        # cleared while a copy is being verified or rebuilt. Tests and tools wait on it.
        self.copy_settled = threading.Event()
        self.copy_settled.set()

    @property
    def name(self) -> str:
        return self.meta.name

    # ------------------------------------------------------------ the derived-index protocol

    def load(self) -> int | None:
        if self.paths is None or not self.paths.index.exists():
            if self.paths is not None:
                log.info("collection %s: no index snapshot; building the index from LMDB", self.name)
            return None
        header, blob, states = snapfile.read(self.paths.index)
        if int(header.get("collection", self.meta.id)) != self.meta.id:
            raise snapfile.SnapshotError("snapshot of another collection")
        seq = int(header["seq"])
        copy, job = self._load_copy(header, seq)
        self.index.load_bytes(header, blob, states, copy)
        self.sequence = self.snapshot_seq = seq
        self._copy_job = job  # started once the indexes are open (start_copy_work)
        self.copy_state = "verified" if copy is not None and job is None else self.copy_state
        if job is not None:
            self.copy_settled.clear()
        return seq

    def _load_copy(self, header: dict, seq: int) -> tuple[RerankCopy | None, tuple[str, RerankCopy | None] | None]:
        """The re-rank copy of an IVF-PQ snapshot and the background job it needs: its file
        mapped when it matches the snapshot (to be verified), else none for now (to be
        rebuilt from LMDB: the setting was just turned on, or the file is missing or torn)."""
        kind = self.index.settings.rerank_copy
        if not kind or header.get("kind") != "ivfpq":
            return None, None
        path = self.paths.rerank if self.paths is not None else None
        if path is not None and path.exists():
            try:
                if self.ctx.rerank_copy_load == "read":
                    copy, copy_seq = RerankCopy.load(path)  # checked whole before the start goes on
                else:
                    copy, copy_seq = RerankCopy.map(path)   # the header alone
                if copy.kind == kind and copy_seq == seq and copy.dim == self.index.dim:
                    return copy, (None if copy.verified.is_set() else ("verify", copy))
                log.info("collection %s: re-rank copy file is %s at sequence %d, the snapshot %s at %d: "
                         "rebuilding it from LMDB in the background", self.name, copy.kind, copy_seq, kind, seq)
            except snapfile.SnapshotError as exc:
                log.warning("collection %s: re-rank copy unreadable (%s); rebuilding it from LMDB in the "
                            "background", self.name, exc)
        return None, ("rebuild", None)

    def start_copy_work(self) -> None:
        """Start the re-rank copy's pending check or rebuild (after the indexes are open:
        the replay has brought the index to the store's sequence)."""
        job, self._copy_job = self._copy_job, None
        if job is None or self._copy_thread is not None:
            self.copy_settled.set()
            return
        self.copy_state = "verifying" if job[0] == "verify" else "rebuilding"
        self._copy_thread = threading.Thread(target=self._copy_work, args=job, daemon=True,
                                             name=f"ragd-rerank-copy-{self.meta.id}")
        self._copy_thread.start()

    def _copy_work(self, job: str, copy: RerankCopy | None) -> None:
        _lowest_priority()
        try:
            if job == "verify" and copy is not None:
                t0 = time.perf_counter()
                ok = copy.verify(self._stop)
                if ok is None:
                    return  # shutting down
                if ok:
                    self.copy_state = "verified"
                    log.info("collection %s: re-rank copy file verified (%.0f MB in %.1f s); the re-rank "
                             "reads it from now on", self.name, copy.nbytes / 1e6, time.perf_counter() - t0)
                    return
                log.error("collection %s: re-rank copy file fails its checksum (damaged on disk?); the "
                          "re-rank reads LMDB while it is rebuilt from LMDB", self.name)
            self.copy_state = "rebuilding"
            self.copy_state = self._rebuild_copy(copy)
        except Exception:  # noqa: BLE001 - the re-rank keeps reading LMDB; the next start retries
            self.copy_state = "rebuild failed"
            log.exception("collection %s: re-rank copy rebuild failed; the re-rank reads LMDB", self.name)
        finally:
            self.copy_settled.set()

    def _rebuild_copy(self, expected: RerankCopy | None) -> str:
        """Build the copy from a consistent LMDB scan, catch it up with the log under the
        write lock and put it in place of `expected`; returns the resulting copy_state."""
        kind = self.index.settings.rerank_copy
        t0 = time.perf_counter()
        live = self.index.live_ids()
        rng = np.random.default_rng(len(live))
        sample, found = self.fetch(np.sort(rng.choice(live, size=min(len(live), 65_536), replace=False)))
        if not found.any():
            return "none"  # nothing live to train on: the re-rank reads LMDB until the next training
        built = RerankCopy.trained_on(self.index.dim, kind, sample[found])
        seq0 = self.store.sequence()  # before the scan: replaying what it already saw is harmless
        for cut, ids, vecs in self.store.scan_vectors(self.meta.id, self.index.dim):
            seq0 = cut
            if self._stop.is_set():
                return "stopped"
            built.add(ids, vecs)
        # close() may be called with the write lock held (a re-embedding's switch) and joins
        # this thread: wait for the lock only while not asked to stop.
        while not self.ctx.write_lock.acquire(timeout=0.2):
            if self._stop.is_set():
                return "stopped"
        try:
            replayed = replay(self.store, self.meta, [_CopyCatchUp(built, seq0)])[0]
            swapped = self.index.replace_copy(expected, built)
        finally:
            self.ctx.write_lock.release()
        if not swapped:
            return "superseded"  # retrained meanwhile: the new index came with its own copy
        self._copy_unsaved = True
        self._wake.set()  # the maintenance thread writes it with the next snapshot
        log.info("collection %s: %s re-rank copy of %d vectors built from LMDB in %.1f s (caught up %d "
                 "op-log entries); the re-rank reads it from now on", self.name, kind, len(live),
                 time.perf_counter() - t0, replayed)
        return "rebuilt"

    def rebuild(self) -> int:
        self.index.reset()
        seq = self.store.sequence()
        for cut, ids, vecs in self.store.scan_vectors(self.meta.id, self.index.dim):
            self.index.add(ids, vecs)
            seq = cut  # the scan's consistent cut
        self.sequence = seq
        self.snapshot_seq = -1
        self._copy_job = None  # a flat index has no copy (training makes one)
        return seq

    def apply(self, change: Change) -> None:
        apply_vectors(self.index, change)
        self.sequence = change.seq
        self.applied += 1

    def open(self) -> Recovery:
        """Load the latest good snapshot and replay the log after it, or rebuild from LMDB
        (the vector index alone; a collection opens all its indexes together)."""
        recovered, _ = recover(self.store, self.meta, [self])
        self.start_copy_work()
        return recovered[0]

    # ------------------------------------------------------------ start-up and shutdown

    def start(self) -> None:
        self.start_copy_work()
        if self.ctx.background and self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"ragd-index-{self.meta.id}", daemon=True)
            self._thread.start()

    def close(self, snapshot: bool = True) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._copy_thread is not None:
            self._copy_thread.join()
            self._copy_thread = None
        if snapshot and self.paths is not None and self._snapshot_stale():
            try:
                self.snapshot()
            except OSError as exc:  # a full disk: derived data, the next start replays the op log
                log.warning("collection %s: final index snapshot not written (%s); the next start replays "
                            "the op log instead", self.name, exc)

    def _snapshot_stale(self) -> bool:
        """This collection changed since its snapshot (or its columns file is older)."""
        return self.sequence > self.snapshot_seq or self._copy_unsaved or (
            self.columns is not None and self.columns.saved_seq < self.snapshot_seq)

    def _copy_unverified(self) -> bool:
        copy = self.index.copy
        return copy is not None and not copy.verified.is_set()

    # ------------------------------------------------------------ background work

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.ctx.poll_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.maintain()
            except Exception:  # noqa: BLE001 - keep serving; the next round retries
                log.exception("collection %s: index maintenance failed", self.name)
                time.sleep(5)

    def maintain(self) -> None:
        """One round: train/retrain, compact, snapshot when due, refresh the GPU clone."""
        idx = self.index
        if idx.needs_training() and self._train_failed_at != idx.ntotal:
            if not self.train_and_swap():
                self._train_failed_at = idx.ntotal
        if idx.needs_compaction():
            t0 = time.perf_counter()
            n = idx.compact()
            log.info("collection %s: compacted %d tombstoned vectors in %.0f ms", self.name, n,
                     (time.perf_counter() - t0) * 1000)
        if self.paths is not None and self._snapshot_stale() and not self._copy_unverified():
            due_ops = (self.snapshot_seq < 0 or self.applied - self.snapshot_applied >= self.ctx.snapshot_every_ops
                       or self._copy_unsaved or (self.columns is not None and self.columns.saved_seq < 0))
            due_time = time.monotonic() - self.snapshot_time >= self.ctx.snapshot_every_s
            if due_ops or due_time:
                self.snapshot()
        idx.refresh_gpu()

    def train_and_swap(self) -> bool:
        """Train IVF-PQ on a sample, build it from LMDB, catch up with the log, swap it in."""
        t0 = time.perf_counter()
        live = self.index.live_ids()
        n = len(live)
        nlist = nlist_for(n, self.index.settings.nlist_factor)
        want = min(n, max(train_size_for(nlist), 4096))
        if n < 256:  # 8-bit PQ needs 256 training points per sub-quantizer
            return False
        rng = np.random.default_rng(n)
        sample_ids = np.sort(rng.choice(live, size=want, replace=False))
        sample, found = self.fetch(sample_ids)
        staging = VectorIndex(self.index.dim, self.index.settings, self.index.fetch)
        new = staging.build_ivfpq(sample[found], n)
        copy = staging.new_rerank_copy(sample[found])
        t1 = time.perf_counter()
        states = np.zeros(max(len(self.index._state), 1024), dtype=np.uint8)
        seq0 = 0
        for cut, ids, vecs in self.store.scan_vectors(self.meta.id, self.index.dim):
            seq0 = cut  # the scan's consistent cut: the log after it is caught up under the lock
            if self._stop.is_set():
                return True  # shutting down: keep the current index
            if len(ids):
                new.add_with_ids(vecs, ids)
                if copy is not None:
                    copy.add(ids, vecs)
                if ids.max() >= len(states):
                    states = np.concatenate([states, np.zeros(int(ids.max()) + 1 - len(states) + 1024, np.uint8)])
                states[ids] = LIVE
        staging.swap_in(new, states, n, copy)
        t2 = time.perf_counter()
        with self.ctx.write_lock:
            replayed = replay(self.store, self.meta, [_Staging(staging, seq0)])[0]
            self.index.swap_in(staging._index, staging._state, n, staging.copy)
        t3 = time.perf_counter()
        log.info("collection %s: IVF-PQ (nlist %d) trained on %d of %d vectors in %.1f s, built in %.1f s, "
                 "caught up %d op-log entries and swapped in %.0f ms",
                 self.name, self.index.nlist, int(found.sum()), n, t1 - t0, t2 - t1, replayed, (t3 - t2) * 1000)
        self.last_train = {"train_s": t1 - t0, "build_s": t2 - t1, "swap_ms": (t3 - t2) * 1000,
                           "nlist": self.index.nlist, "vectors": n}
        if self.paths is not None:
            self.snapshot()
        return True

    def snapshot(self, paths: SnapshotPaths | None = None) -> int:
        """Write the index (and the filter columns) with the sequence they contain
        (atomic); returns bytes written. `paths`: write copies there (a backup)
        instead of the collection's own snapshot files."""
        target = paths or self.paths
        if target is None:
            return 0
        t0 = time.perf_counter()
        cols = None
        with self.ctx.write_lock:
            copy = self.index.copy
            if copy is not None and not copy.verified.is_set():
                if paths is None:
                    # Its rows would be saved with a fresh checksum before their own was checked.
                    # The index is derived: the next start replays the op log after the last one.
                    log.info("collection %s: snapshot put off until the re-rank copy is verified", self.name)
                    return 0
                copy = None  # a backup without the copy: a start on it rebuilds the copy from LMDB
            seq = self.store.sequence()
            applied = self.applied
            header, blob, states = self.index.to_bytes()
            copy_rows = copy.capture() if copy is not None else None
            copy_unsaved = self._copy_unsaved
            if self.columns is not None:
                cols = self.columns.capture()
        t1 = time.perf_counter()
        header.update(seq=seq, collection=self.meta.id, written_at=time.time())
        size = snapfile.write(target.index, header, blob, states)
        if target.rerank is not None:
            if copy is not None:
                size += copy.save(target.rerank, seq, copy_rows)
                if paths is None and copy_unsaved and self.index.copy is copy:
                    self._copy_unsaved = False
            else:
                target.rerank.unlink(missing_ok=True)  # a stale copy would be rebuilt anyway; free the disk
        cols_size = 0
        if cols is not None and self.columns is not None:
            try:
                cols_size = self.columns.save(target.columns, cols, seq, record=paths is None)
            except Exception:  # noqa: BLE001 - derived data: the next start rebuilds it from LMDB
                log.exception("collection %s: writing the filter columns failed", self.name)
        if paths is not None:
            return size + cols_size
        self.snapshot_seq = seq
        self.snapshot_applied = applied
        self.snapshot_time = time.monotonic()
        log.info("collection %s: index snapshot at sequence %d (%s, %.1f MB; filter columns %.1f MB): "
                 "lock held %.0f ms, written in %.0f ms", self.name, seq, header["kind"], size / 1e6,
                 cols_size / 1e6, (t1 - t0) * 1000, (time.perf_counter() - t1) * 1000)
        return size + cols_size


def index_context_from(cfg, write_lock: threading.Lock) -> IndexContext:
    """The IndexContext of an engine from its Config (section `index`, keyword analysis from `search`)."""
    from ragd.config import keyword_cjk_by_collection
    c = cfg.index
    settings = IndexSettings(ivf_threshold=c.ivf_threshold, retrain_growth=c.retrain_growth,
                             nlist_factor=c.nlist_factor, pq_m=c.pq_m, nprobe=c.nprobe,
                             rerank_factor=c.rerank_factor, compact_fraction=c.compact_fraction, gpu=c.gpu,
                             rerank_copy=c.rerank_copy)
    return IndexContext(settings=settings, write_lock=write_lock,
                        snapshot_every_ops=c.snapshot_every_ops, snapshot_every_s=c.snapshot_every_s,
                        keyword_cjk=cfg.search.keyword_cjk,
                        keyword_cjk_by_collection=keyword_cjk_by_collection(cfg.search),
                        rerank_copy_load=c.rerank_copy_load)
