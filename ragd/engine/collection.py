"""Runtime state of one collection: its vector index and filter columns,
both derived from LMDB and rebuilt from it on start."""
from __future__ import annotations

import json
import os
import shutil
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ragd.domain import Document

from ragd.engine import records
from ragd.errors import InvalidArgument
from ragd.index import keyword as keyword_index
from ragd.index.columns import FilterColumns
from ragd.index.lifecycle import IndexContext, IndexKeeper
from ragd.index.vector_index import VectorIndex
from ragd.store.lmdb_store import CollectionMeta, Store


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

    @classmethod
    def load(cls, store: Store, meta: CollectionMeta, ctx: IndexContext | None = None) -> "Collection":
        ctx = ctx or index_context(store)
        coll = cls(meta=meta, index=VectorIndex(meta.dim, ctx.settings))
        for doc_id, rec in store.iter_docs(meta.id):
            if not records.is_tombstone(rec):
                coll.columns.set_chunks(rec["c"], records.from_record(doc_id, rec, with_text=False))
        # The vector index: latest good snapshot + op-log replay, or rebuilt from LMDB.
        coll.keeper = IndexKeeper(coll.index, store, meta.id, meta.name, ctx)
        coll.keeper.open()
        coll.keeper.start()
        coll.keyword = keyword_index.open_for(store, meta.id)
        coll.generation = store.sequence()
        return coll

    @classmethod
    def create(cls, store: Store, meta: CollectionMeta, ctx: IndexContext | None = None) -> "Collection":
        """A collection created by its first write (nothing to load)."""
        ctx = ctx or index_context(store)
        coll = cls(meta=meta, index=VectorIndex(meta.dim, ctx.settings))
        coll.keeper = IndexKeeper(coll.index, store, meta.id, meta.name, ctx)
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
        self.index.remove(old_ids)
        self.columns.clear_chunks(old_ids)
        self.index.add(np.asarray(new_ids, dtype=np.int64), vectors)
        self.columns.set_chunks(new_ids, doc)
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


def get_collection(collections: dict[str, Collection], name: str) -> Collection:
    coll = collections.get(name)
    if coll is None:
        # A collection is a namespace the caller names, created by its first
        # write; naming one that was never written is a bad argument.
        raise InvalidArgument("collection", f"unknown collection {name!r} (it is created by its first Upsert)")
    return coll
