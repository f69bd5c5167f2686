"""Runtime state of one collection: its vector index and filter columns,
both derived from LMDB and rebuilt from it on start."""
from __future__ import annotations

from dataclasses import dataclass, field

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


def get_collection(collections: dict[str, Collection], name: str) -> Collection:
    coll = collections.get(name)
    if coll is None:
        # A collection is a namespace the caller names, created by its first
        # write; naming one that was never written is a bad argument.
        raise InvalidArgument("collection", f"unknown collection {name!r} (it is created by its first Upsert)")
    return coll
