"""Runtime state of one collection: its vector index, filter columns and keyword
index, all derived from LMDB. On start each loads its own persisted copy (saved
with the op-log sequence it reflects) and replays the log after it, or is
rebuilt from LMDB when that copy is missing or unusable."""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ragd.domain import Document

from ragd.engine import records
from ragd.errors import FailedPrecondition, InvalidArgument
from ragd.index import keyword as keyword_index
from ragd.index.columns import FilterColumns
from ragd.index.lifecycle import IndexContext, IndexKeeper, columns_path_for, load_columns
from ragd.index.vector_index import VectorIndex
from ragd.store.lmdb_store import CollectionMeta, Store

log = logging.getLogger("ragd.engine")


@dataclass
class Collection:
    meta: CollectionMeta
    index: VectorIndex
    columns: FilterColumns = field(default_factory=FilterColumns)
    keeper: IndexKeeper | None = None  # vector index lifecycle: snapshots, training, compaction
    # BM25 index (tantivy), derived from LMDB like the vector index; None until bound.
    keyword: keyword_index.KeywordIndex | None = None
    # The op-log sequence of the last applied write (durable, so a restart or a replica
    # fed the same writes agrees on it): search-result caches key on it (ragd.engine.cache).
    generation: int = 0
    load_phases: dict = field(default_factory=dict)  # start-up timings (Collection.load)

    @classmethod
    def load(cls, store: Store, meta: CollectionMeta, ctx: IndexContext | None = None) -> "Collection":
        ctx = ctx or index_context(store)
        t0 = time.perf_counter()
        coll = cls(meta=meta, index=VectorIndex(meta.dim, ctx.settings))
        coll.keeper = IndexKeeper(coll.index, store, meta.id, meta.name, ctx)
        # Filter columns: the file saved with the last snapshot + op-log replay, or rebuilt.
        coll.columns, cols_seq, cols_note = load_filter_columns(store, meta, coll.keeper.path)
        coll.keeper.columns = coll.columns
        coll.keeper.columns_seq = cols_seq  # -1 after a rebuild: the next maintenance round saves them
        t1 = time.perf_counter()
        # The vector index: latest good snapshot + op-log replay, or rebuilt from LMDB.
        coll.keeper.open()
        t2 = time.perf_counter()
        coll.keyword = keyword_index.open_for(store, meta.id)
        t3 = time.perf_counter()
        coll.keeper.start()
        coll.generation = store.sequence()
        coll.load_phases = {"columns_ms": (t1 - t0) * 1000, "index_ms": (t2 - t1) * 1000,
                            "keyword_ms": (t3 - t2) * 1000, "columns": cols_note, "index": dict(coll.keeper.last_load)}
        log.info("collection %s: start-up phases: filter columns %.0f ms (%s), vector index %.0f ms, "
                 "keyword index %.0f ms", meta.name, coll.load_phases["columns_ms"], cols_note,
                 coll.load_phases["index_ms"], coll.load_phases["keyword_ms"])
        return coll

    @classmethod
    def create(cls, store: Store, meta: CollectionMeta, ctx: IndexContext | None = None) -> "Collection":
        """A collection created by its first write (nothing to load)."""
        ctx = ctx or index_context(store)
        coll = cls(meta=meta, index=VectorIndex(meta.dim, ctx.settings))
        coll.keeper = IndexKeeper(coll.index, store, meta.id, meta.name, ctx)
        coll.keeper.columns = coll.columns
        coll.keeper.start()
        coll.keyword = keyword_index.open_for(store, meta.id)
        return coll

    def close(self, snapshot: bool = True) -> None:
        """Stop background index work and write a final snapshot (graceful shutdown)."""
        if self.keeper is not None:
            self.keeper.close(snapshot=snapshot)
        if self.keyword is not None:
            self.keyword.close()  # commit staged keyword writes (else replayed on start)

    # The two methods below make a committed (durable) write searchable. They
    # run under the engine's write lock, right after the LMDB commit.

    def apply_upsert(self, doc: Document, new_ids: list[int], old_ids: list[int], vectors: np.ndarray) -> None:
        # Order matters to searches running alongside (they take no lock): old chunks
        # leave the index before their filter rows die, and new chunks get their
        # filter rows (and a private document its private count) before they enter
        # the index, so no search ever finds a chunk without the rows that filter it.
        self.index.remove(old_ids)
        self.columns.clear_chunks(old_ids)
        self.columns.set_chunks(new_ids, doc)
        self.index.add(np.asarray(new_ids, dtype=np.int64), vectors)
        if self.keyword is not None:
            self.generation = self.keyword.apply(doc.title, new_ids, old_ids)
        else:
            self.generation += 1

    def apply_delete(self, removed_ids: list[int]) -> None:
        self.index.remove(removed_ids)
        self.columns.clear_chunks(removed_ids)
        if self.keyword is not None:
            self.generation = self.keyword.apply("", [], removed_ids)
        else:
            self.generation += 1


def rebuild_filter_columns(store: Store, coll_id: int) -> FilterColumns:
    """Filter columns from every LMDB document of the collection (the source of truth)."""
    cols = FilterColumns()
    for doc_id, rec in store.iter_docs(coll_id):
        if not records.is_tombstone(rec):
            cols.set_chunks(rec["c"], records.from_record(doc_id, rec, with_text=False))
    return cols


def replay_filter_columns(store: Store, coll_id: int, cols: FilterColumns, after: int) -> int:
    """Apply the op-log entries after `after` to columns that reflect sequence `after`;
    returns the entries applied. A chunk id is never reused and a chunk's LMDB record
    exists exactly while its document's current record lists it, so: removed ids are
    cleared; an added id whose chunk is still in LMDB is set from its document's
    current record, one whose chunk is gone was removed later (its removal follows)."""
    n = 0
    for _, entry in store.iter_oplog(after=after):
        if entry["c"] != coll_id:
            continue
        n += 1
        if entry["r"]:
            cols.clear_chunks(entry["r"])
        if entry["a"]:
            by_doc: dict[str, list[int]] = {}
            for chunk in store.get_chunks(coll_id, entry["a"]):
                if chunk is not None:
                    by_doc.setdefault(chunk.doc_id, []).append(chunk.chunk_id)
            recs = store.get_docs(coll_id, list(by_doc))
            for doc_id, ids in by_doc.items():
                rec = recs.get(doc_id)
                if rec is not None and not records.is_tombstone(rec):
                    current = set(rec["c"])
                    cols.set_chunks([c for c in ids if c in current],
                                    records.from_record(doc_id, rec, with_text=False))
    return n


def load_filter_columns(store: Store, meta: CollectionMeta, snapshot_path: Path | None
                        ) -> tuple[FilterColumns, int, str]:
    """(columns, sequence of the file they came from or -1, what happened): the columns
    file saved beside the index snapshot plus the op log after it; rebuilt from the
    LMDB documents when there is no file or it is unusable (logged, never fatal)."""
    path = columns_path_for(snapshot_path)
    if path is not None and path.exists():
        try:
            cols, seq = load_columns(path, meta.id, store.sequence())
            replayed = replay_filter_columns(store, meta.id, cols, seq)
            return cols, seq, f"file at sequence {seq} + {replayed} op-log entries"
        except Exception as exc:  # noqa: BLE001 - derived data: rebuild it
            log.warning("collection %s: filter columns file %s is unusable (%s); rebuilding them from LMDB "
                        "documents", meta.name, path, exc)
            note = "rebuilt from LMDB documents (file unusable)"
    else:
        if path is not None:
            log.info("collection %s: no filter columns file; rebuilding them from LMDB documents", meta.name)
        note = "rebuilt from LMDB documents"
    return rebuild_filter_columns(store, meta.id), -1, note


# One IndexContext per open store, set by the engine (settings, snapshot dir,
# its write lock); collections of a store without one get defaults (no snapshots).
_CONTEXTS: "weakref.WeakKeyDictionary[Store, IndexContext]" = weakref.WeakKeyDictionary()


def set_index_context(store: Store, ctx: IndexContext) -> None:
    _CONTEXTS[store] = ctx


def index_context(store: Store) -> IndexContext:
    ctx = _CONTEXTS.get(store)
    if ctx is None:
        ctx = _CONTEXTS[store] = IndexContext()
    return ctx


def backup(store: Store, collections: dict[str, "Collection"], dest: Path) -> tuple[int, int]:
    """A consistent backup of a data dir's state into `dest` (which must not exist):
    every index snapshot first, then a compacted copy of LMDB. Each snapshot's
    sequence is <= the copy's, so a daemon started on the restored dir replays
    the log after each snapshot and agrees with LMDB exactly. Returns (sequence
    of the LMDB copy, bytes written)."""
    dest = Path(dest)
    if dest.exists():
        raise FileExistsError(f"{dest} exists")
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "index").mkdir(parents=True)
    size = 0
    for coll in list(collections.values()):
        if coll.keeper is not None:
            size += coll.keeper.snapshot(tmp / "index" / f"collection-{coll.meta.id}.snap")
    seq, lmdb_bytes = store.backup(tmp / "store")
    (tmp / "BACKUP.json").write_text(json.dumps({"sequence": seq, "created": time.time(),
                                                  "collections": sorted(collections)}) + "\n")
    os.replace(tmp, dest)  # a backup directory exists only once complete
    return seq, size + lmdb_bytes


def restore(backup_dir: Path, data_dir: Path, force: bool = False) -> int:
    """Bring a backup back into `data_dir` (daemon stopped); returns its sequence.
    An existing store/index is moved aside (with force) rather than deleted."""
    backup_dir, data_dir = Path(backup_dir), Path(data_dir)
    manifest = json.loads((backup_dir / "BACKUP.json").read_text())
    if not (backup_dir / "store" / "data.mdb").exists():
        raise FileNotFoundError(f"{backup_dir} holds no store/data.mdb")
    data_dir.mkdir(parents=True, exist_ok=True)
    present = [p for p in (data_dir / "store", data_dir / "index") if p.exists()]
    if present and not force:
        raise FileExistsError(f"{data_dir} already holds {', '.join(p.name for p in present)} (use --force)")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for p in present:
        p.rename(p.with_name(f"{p.name}.before-restore-{stamp}"))
    shutil.copytree(backup_dir / "store", data_dir / "store")
    shutil.copytree(backup_dir / "index", data_dir / "index")
    return int(manifest["sequence"])


def require_model(meta: CollectionMeta, model: str, dimension: int, action: str) -> None:
    """Refuse to embed into or for a collection built with another model: its vectors
    and the new ones would live in different spaces (even at the same dimension), so
    results would be silently wrong. Raises FailedPrecondition naming both models."""
    if meta.model == model and meta.dim == dimension:
        return
    raise FailedPrecondition(
        f"collection {meta.name!r} was built with model {meta.model!r} ({meta.dim}-d) but this daemon "
        f"serves {model!r} ({dimension}-d): cannot {action} it. Re-embed it with "
        f"`ragd reindex {meta.name} --model {model}`, or serve model {meta.model!r} (model.name); "
        "KEYWORD searches still work")


def get_collection(collections: dict[str, Collection], name: str) -> Collection:
    coll = collections.get(name)
    if coll is None:
        # A collection is a namespace the caller names, created by its first
        # write; naming one that was never written is a bad argument.
        raise InvalidArgument("collection", f"unknown collection {name!r} (it is created by its first Upsert)")
    return coll
