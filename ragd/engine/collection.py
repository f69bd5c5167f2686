"""Runtime state of one collection, and the open collections of a store.

A collection's searchable state is derived from LMDB: its filter columns, vector
index and keyword index (plus any index plugged in) are derived indexes
(ragd.index.derived). They are opened together by one recovery (each loads its
own persisted copy or is rebuilt, then the op log after its sequence brings it up
to date) and every committed write reaches them through one `apply`.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ragd.errors import FailedPrecondition, InvalidArgument
from ragd.index.columns import FilterColumns
from ragd.index.columns_keeper import ColumnsKeeper
from ragd.index.derived import Change, DerivedIndex, Recovery, StoreReader, recover
from ragd.index.keyword import KeywordIndex
from ragd.index.lifecycle import IndexContext, IndexKeeper, vector_fetch
from ragd.index.snapshot import SnapshotPaths
from ragd.index.vector_index import VectorIndex
from ragd.store.records import CollectionMeta

if TYPE_CHECKING:
    from ragd.engine.datadir import DataDir

log = logging.getLogger("ragd.engine")

# Makes a further derived index for a collection (tests, later features).
DerivedFactory = Callable[[StoreReader, CollectionMeta], DerivedIndex]


class Collection:
    def __init__(self, store: StoreReader, meta: CollectionMeta, ctx: IndexContext,
                 snapshot_paths: SnapshotPaths | None = None, keyword_dir: Path | None = None,
                 extra: Sequence[DerivedIndex] = ()):
        self.store = store
        self.meta = meta
        self.columns_keeper = ColumnsKeeper(store, meta, snapshot_paths.columns if snapshot_paths else None)
        self.index = VectorIndex(meta.dim, ctx.settings, vector_fetch(store, meta.id, meta.dim))
        # Vector index lifecycle (snapshots with the columns, training, compaction).
        self.keeper = IndexKeeper(self.index, store, meta, ctx, snapshot_paths, self.columns_keeper)
        self.keyword = KeywordIndex(keyword_dir, store, meta.id, ctx.keyword_cjk_of(meta.name))  # BM25 (tantivy)
        # Apply order matters to searches running alongside (they take no lock): the
        # filter columns first, so a new chunk has its filter rows before an index can
        # return it, and an old one's rows are dead before it leaves the indexes.
        self.derived: list[DerivedIndex] = [self.columns_keeper, self.keeper, self.keyword, *extra]
        # The op-log sequence of the last applied write (durable, so a restart or a replica
        # fed the same writes agrees on it): search-result caches key on it (ragd.engine.cache).
        self.generation = 0
        self.recovery: dict[str, Recovery] = {}  # how each index was opened (by label)

    @property
    def columns(self) -> FilterColumns:
        return self.columns_keeper.columns

    def open(self) -> Collection:
        """An existing collection: each index loads its copy or is rebuilt, then replays."""
        t0 = time.perf_counter()
        recovered, replay_ms = recover(self.store, self.meta, self.derived)
        self.recovery = {r.label: r for r in recovered}
        self.generation = self.store.sequence()
        self.columns_keeper.start()
        self.keeper.start()
        log.info("collection %s: indexes opened in %.0f ms (op-log replay %.0f ms)", self.meta.name,
                 (time.perf_counter() - t0) * 1000, replay_ms)
        return self

    def create(self) -> Collection:
        """A collection created by the write just committed: built from LMDB, which holds
        that write alone (a copy persisted under a reused id is never loaded)."""
        for ix in self.derived:
            ix.rebuild()
        self.generation = self.store.sequence()
        self.keeper.start()
        return self

    def apply(self, change: Change) -> None:
        """Make a committed (durable) write searchable: runs under the engine's write
        lock, right after the LMDB commit. The indexes are derived state, recovered
        from LMDB on start, so a crash between the two loses nothing. An index already
        past the change (one built from LMDB after it committed) skips it."""
        for ix in self.derived:
            if change.seq > ix.sequence:
                ix.apply(change)
        self.generation = change.seq

    def close(self, snapshot: bool = True) -> None:
        """Stop background index work and write a final snapshot (graceful shutdown)."""
        self.keeper.close(snapshot=snapshot)
        self.keyword.close()  # commit staged keyword writes (else replayed on start)


class Collections:
    """The open collections of one store, by name, and what each is opened with:
    the index context, where its files live (None: nothing persisted, as in
    tests), and any further derived index factories."""

    def __init__(self, store: StoreReader, ctx: IndexContext, layout: DataDir | None = None,
                 extra: Sequence[DerivedFactory] = ()):
        self.store = store
        self.ctx = ctx
        self.layout = layout
        self.extra = list(extra)
        self._by_name: dict[str, Collection] = {}

    @property
    def write_lock(self) -> threading.Lock:
        """Held while a write commits to LMDB and is applied to the indexes."""
        return self.ctx.write_lock

    def _make(self, meta: CollectionMeta) -> Collection:
        paths = self.layout.snapshot_paths(meta.id) if self.layout is not None else None
        kw_dir = self.layout.keyword_dir(meta.id) if self.layout is not None else None
        return Collection(self.store, meta, self.ctx, paths, kw_dir, [make(self.store, meta) for make in self.extra])

    def open(self, meta: CollectionMeta) -> Collection:
        coll = self._by_name[meta.name] = self._make(meta).open()
        return coll

    def create(self, meta: CollectionMeta) -> Collection:
        coll = self._by_name[meta.name] = self._make(meta).create()
        return coll

    def swap(self, meta: CollectionMeta) -> Collection:
        """Open `meta`'s collection anew (its indexes from their files or LMDB) and put it in
        place of the open one of that name in one step (a re-embedded collection,
        ragd.engine.reindex); the caller closed the old one and holds the write lock."""
        coll = self._make(meta).open()
        self._by_name[meta.name] = coll
        return coll

    def find(self, name: str) -> Collection | None:
        return self._by_name.get(name)

    def get(self, name: str) -> Collection:
        coll = self._by_name.get(name)
        if coll is None:
            # A collection is a namespace the caller names, created by its first
            # write; naming one that was never written is a bad argument.
            raise InvalidArgument("collection", f"unknown collection {name!r} (it is created by its first Upsert)")
        return coll

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def __iter__(self) -> Iterator[Collection]:
        return iter(list(self._by_name.values()))

    def __len__(self) -> int:
        return len(self._by_name)

    def close(self, snapshot: bool = True) -> None:
        for coll in self:
            coll.close(snapshot=snapshot)


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
