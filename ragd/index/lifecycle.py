"""Index lifecycle of one collection: load (snapshot + op-log replay, or rebuild
from LMDB), background IVF-PQ training and atomic swap, compaction of
tombstones, and snapshots.

The store is used duck-typed (sequence, iter_oplog, scan_vectors,
get_vectors_found): this module never imports it, and the store never sees FAISS.

Consistency rule: the FAISS index reflects exactly the op log up to some
sequence. Writes commit to LMDB and are applied to the index under the engine's
write lock, so holding that lock gives a consistent cut (sequence + index).
  - snapshot: under the lock, read the sequence and serialize the index; write
    the file (atomic) after releasing it.
  - load: snapshot at sequence S, then replay the log after S (an added id whose
    vector is gone was removed later: skipped; removing an absent id is a no-op).
  - train: build IVF-PQ from a consistent LMDB scan at sequence S0 without the
    lock; then, under the lock, replay the log after S0 into it and swap.
  - filter columns (when attached, see Collection): copied in the same locked cut
    as the index and written beside it (collection-<id>.cols) with that sequence,
    so a start loads them and replays the log after it instead of scanning every
    LMDB document.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ragd.index import columns as columns_mod
from ragd.index import snapshot as snapfile
from ragd.index.vector_index import LIVE, IndexSettings, VectorIndex, nlist_for, train_size_for

log = logging.getLogger("ragd.index")


@dataclass
class IndexContext:
    """What the engine gives every collection's index (one per engine)."""
    settings: IndexSettings = field(default_factory=IndexSettings)
    index_dir: Path | None = None          # None: no snapshots (rebuilt from LMDB on every start)
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    snapshot_every_ops: int = 10_000       # op-log entries since the last snapshot
    snapshot_every_s: float = 300.0        # seconds since the last snapshot (when anything changed)
    background: bool = True                # run the maintenance thread
    poll_s: float = 0.5


class IndexKeeper:
    def __init__(self, index: VectorIndex, store, coll_id: int, name: str, ctx: IndexContext):
        self.index = index
        self.store = store
        self.coll_id = coll_id
        self.name = name
        self.ctx = ctx
        self.path = ctx.index_dir / f"collection-{coll_id}.snap" if ctx.index_dir else None
        self.snapshot_seq = -1
        self.snapshot_time = time.monotonic()
        self.last_load: dict = {}
        # Filter columns saved with each snapshot (set by the collection; None: none).
        self.columns = None
        self.columns_seq = -1  # sequence of the columns file on disk (-1: none / stale)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._train_failed_at = -1
        index.fetch = self.fetch

    # ------------------------------------------------------------ helpers

    def fetch(self, ids: np.ndarray):
        return self.store.get_vectors_found(self.coll_id, ids, self.index.dim)

    def replay(self, target: VectorIndex, after: int) -> tuple[int, int]:
        """Apply op-log entries after `after` to `target`; returns (last sequence, entries)."""
        last, n = after, 0
        for seq, entry in self.store.iter_oplog(after=after):
            last = seq
            if entry["c"] != self.coll_id:
                continue
            n += 1
            added = np.asarray(entry["a"], dtype=np.int64)
            if len(added):
                vecs, found = self.fetch(added)
                target.add(added[found], vecs[found])
            if entry["r"]:
                target.remove(entry["r"])
        return last, n

    def build_flat(self, target: VectorIndex) -> int:
        seq = 0
        for seq, ids, vecs in self.store.scan_vectors(self.coll_id, target.dim):  # noqa: B007 - the last seq is returned
            target.add(ids, vecs)
        return seq

    # ------------------------------------------------------------ start-up

    def open(self) -> None:
        """Load the latest good snapshot and replay the log after it, or rebuild from LMDB."""
        t0 = time.perf_counter()
        seq, source = None, "rebuilt from LMDB"
        if self.path is not None and self.path.exists():
            try:
                header, blob, states = snapfile.read(self.path)
                if int(header.get("collection", self.coll_id)) != self.coll_id:
                    raise snapfile.SnapshotError("snapshot of another collection")
                require_not_ahead(int(header["seq"]), self.store.sequence())
                self.index.load_bytes(header, blob, states)
                seq = int(header["seq"])
                source = f"snapshot at sequence {seq}"
            except Exception as exc:  # noqa: BLE001 - any unusable snapshot means: rebuild
                log.warning("collection %s: snapshot %s is unusable (%s); rebuilding the index from LMDB",
                            self.name, self.path, exc)
                self.index.reset()
                seq = None
        elif self.path is not None:
            log.info("collection %s: no index snapshot; building the index from LMDB", self.name)
        t1 = time.perf_counter()
        if seq is None:
            seq = self.build_flat(self.index)
        last, replayed = self.replay(self.index, seq)
        self.snapshot_seq = seq if source.startswith("snapshot") else -1
        self.last_load = {"source": source, "load_ms": (t1 - t0) * 1000,
                          "replay_ms": (time.perf_counter() - t1) * 1000, "replayed": replayed,
                          "kind": self.index.kind, "vectors": self.index.ntotal}
        log.info("collection %s: index %s (%s, %d vectors) in %.0f ms, replayed %d op-log entries in %.0f ms",
                 self.name, self.index.kind, source, self.index.ntotal, self.last_load["load_ms"],
                 replayed, self.last_load["replay_ms"])

    def start(self) -> None:
        if self.ctx.background and self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"ragd-index-{self.coll_id}", daemon=True)
            self._thread.start()

    def close(self, snapshot: bool = True) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if snapshot and self.path is not None and self._snapshot_stale():
            try:
                self.snapshot()
            except OSError as exc:  # a full disk: derived data, the next start replays the op log
                log.warning("collection %s: final index snapshot not written (%s); the next start replays "
                            "the op log instead", self.name, exc)

    def _snapshot_stale(self) -> bool:
        seq = self.store.sequence()
        return seq != self.snapshot_seq or (self.columns is not None and seq != self.columns_seq)

    @property
    def columns_path(self) -> Path | None:
        return columns_path_for(self.path)

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
        if self.path is not None:
            seq = self.store.sequence()
            if self._snapshot_stale():
                due_ops = (self.snapshot_seq < 0 or seq - self.snapshot_seq >= self.ctx.snapshot_every_ops
                           or (self.columns is not None and self.columns_seq < 0))
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
        staging = VectorIndex(self.index.dim, self.index.settings, self.fetch)
        new = staging.build_ivfpq(sample[found], n)
        t1 = time.perf_counter()
        states = np.zeros(max(len(self.index._state), 1024), dtype=np.uint8)
        seq0 = 0
        for seq0, ids, vecs in self.store.scan_vectors(self.coll_id, self.index.dim):  # noqa: B007 - read after the loop
            if self._stop.is_set():
                return True  # shutting down: keep the current index
            if len(ids):
                new.add_with_ids(vecs, ids)
                if ids.max() >= len(states):
                    states = np.concatenate([states, np.zeros(int(ids.max()) + 1 - len(states) + 1024, np.uint8)])
                states[ids] = LIVE
        staging.swap_in(new, states, n)
        t2 = time.perf_counter()
        with self.ctx.write_lock:
            _, replayed = self.replay(staging, seq0)
            self.index.swap_in(staging._index, staging._state, n)
        t3 = time.perf_counter()
        log.info("collection %s: IVF-PQ (nlist %d) trained on %d of %d vectors in %.1f s, built in %.1f s, "
                 "caught up %d op-log entries and swapped in %.0f ms",
                 self.name, self.index.nlist, int(found.sum()), n, t1 - t0, t2 - t1, replayed, (t3 - t2) * 1000)
        self.last_train = {"train_s": t1 - t0, "build_s": t2 - t1, "swap_ms": (t3 - t2) * 1000,
                           "nlist": self.index.nlist, "vectors": n}
        if self.path is not None:
            self.snapshot()
        return True

    def snapshot(self, path: Path | None = None) -> int:
        """Write the index with the sequence it contains (atomic); returns bytes written.
        `path`: write a copy there (a backup) instead of the collection's snapshot file."""
        target = path or self.path
        if target is None:
            return 0
        t0 = time.perf_counter()
        cols = None
        with self.ctx.write_lock:
            seq = self.store.sequence()
            header, blob, states = self.index.to_bytes()
            if self.columns is not None:
                cols = self.columns.export_state()
        t1 = time.perf_counter()
        header.update(seq=seq, collection=self.coll_id, written_at=time.time())
        size = snapfile.write(target, header, blob, states)
        cols_size = 0
        if cols is not None:
            try:
                cols_size = save_columns(columns_path_for(target), cols, seq, self.coll_id)
            except Exception:  # noqa: BLE001 - derived data: the next start rebuilds it from LMDB
                log.exception("collection %s: writing the filter columns failed", self.name)
                cols = None
        if path is not None:
            return size + cols_size
        self.snapshot_seq = seq
        if cols is not None:
            self.columns_seq = seq
        self.snapshot_time = time.monotonic()
        log.info("collection %s: index snapshot at sequence %d (%s, %.1f MB; filter columns %.1f MB): "
                 "lock held %.0f ms, written in %.0f ms", self.name, seq, header["kind"], size / 1e6,
                 cols_size / 1e6, (t1 - t0) * 1000, (time.perf_counter() - t1) * 1000)
        return size + cols_size


# ---------------------------------------------------------------- filter columns files

COLUMNS_FORMAT = 1  # bump when FilterColumns' state changes shape: old files are rebuilt


def require_not_ahead(seq: int, store_seq: int) -> None:
    """A snapshot (index or columns) newer than the store, as after a store restored
    or copied without its index dir, holds chunks the store no longer has (and
    whose ids it may reuse); the op log cannot take them back: refuse it."""
    if seq > store_seq:
        raise snapfile.SnapshotError(f"at sequence {seq}, ahead of the store's {store_seq}")


def columns_path_for(snapshot_path: Path | None) -> Path | None:
    return None if snapshot_path is None else snapshot_path.with_suffix(".cols")


def save_columns(path: Path, state: dict, seq: int, coll_id: int) -> int:
    """Write FilterColumns.export_state() with the op-log sequence it reflects (atomic)."""
    header, arrays = columns_mod.encode_state(state)
    header.update(format=COLUMNS_FORMAT, seq=seq, collection=coll_id, written_at=time.time())
    return snapfile.write_arrays(path, header, arrays)


def load_columns(path: Path, coll_id: int, max_seq: int) -> tuple[columns_mod.FilterColumns, int]:
    """(columns, sequence they reflect) from a columns file; raises on anything unusable:
    torn or corrupt, another format or collection, or ahead of the store (`max_seq`:
    a store restored from an older backup may reuse chunk ids)."""
    header, arrays = snapfile.read_arrays(path)
    if header.get("format") != COLUMNS_FORMAT:
        raise snapfile.SnapshotError(f"format {header.get('format')}, expected {COLUMNS_FORMAT}")
    if int(header.get("collection", -1)) != coll_id:
        raise snapfile.SnapshotError("columns of another collection")
    seq = int(header["seq"])
    require_not_ahead(seq, max_seq)
    try:
        state = columns_mod.decode_state(header, arrays)
        return columns_mod.FilterColumns.from_state(state), seq
    except (KeyError, ValueError, TypeError) as exc:
        raise snapfile.SnapshotError(f"malformed columns: {exc!r}") from None


def index_context_from(cfg, index_dir: Path, write_lock: threading.Lock) -> IndexContext:
    """The IndexContext of an engine from its Config (section `index`)."""
    c = cfg.index
    settings = IndexSettings(ivf_threshold=c.ivf_threshold, retrain_growth=c.retrain_growth,
                             nlist_factor=c.nlist_factor, pq_m=c.pq_m, nprobe=c.nprobe,
                             rerank_factor=c.rerank_factor, compact_fraction=c.compact_fraction, gpu=c.gpu)
    return IndexContext(settings=settings, index_dir=index_dir, write_lock=write_lock,
                        snapshot_every_ops=c.snapshot_every_ops, snapshot_every_s=c.snapshot_every_s)
