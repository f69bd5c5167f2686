"""Runtime state of one collection: its vector index and filter columns,
both derived from LMDB and rebuilt from it on start."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ragd.domain import Document

from ragd.engine import records
from ragd.errors import InvalidArgument
from ragd.index.columns import FilterColumns
from ragd.index.vector_index import VectorIndex
from ragd.store.lmdb_store import CollectionMeta, Store


@dataclass
class Collection:
    meta: CollectionMeta
    index: VectorIndex
    columns: FilterColumns = field(default_factory=FilterColumns)

    @classmethod
    def load(cls, store: Store, meta: CollectionMeta) -> "Collection":
        coll = cls(meta=meta, index=VectorIndex(meta.dim))
        for doc_id, rec in store.iter_docs(meta.id):
            if not records.is_tombstone(rec):
                coll.columns.set_chunks(rec["c"], records.from_record(doc_id, rec, with_text=False))
        ids, vectors = store.load_vectors(meta.id, meta.dim, meta.chunks)
        coll.index.add(ids, vectors)
        return coll

    # The two methods below make a committed (durable) write searchable. They
    # run under the engine's write lock, right after the LMDB commit.

    def apply_upsert(self, doc: Document, new_ids: list[int], old_ids: list[int], vectors: np.ndarray) -> None:
        self.index.remove(old_ids)
        self.columns.clear_chunks(old_ids)
        self.index.add(np.asarray(new_ids, dtype=np.int64), vectors)
        self.columns.set_chunks(new_ids, doc)

    def apply_delete(self, removed_ids: list[int]) -> None:
        self.index.remove(removed_ids)
        self.columns.clear_chunks(removed_ids)


def get_collection(collections: dict[str, Collection], name: str) -> Collection:
    coll = collections.get(name)
    if coll is None:
        # A collection is a namespace the caller names, created by its first
        # write; naming one that was never written is a bad argument.
        raise InvalidArgument("collection", f"unknown collection {name!r} (it is created by its first Upsert)")
    return coll
