"""Search: embed the query, evaluate the filter into a mask over chunk ids,
search the index with that mask inside FAISS, and assemble hits from LMDB."""
from __future__ import annotations

import time

import numpy as np

from ragd.domain import Filter, Hit, SearchMode, SearchQuery, SearchResult, Timings
from ragd.engine import records
from ragd.engine.collection import Collection, get_collection
from ragd.errors import NotFound, Unimplemented
from ragd.store.lmdb_store import Store


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


class Searcher:
    def __init__(self, store: Store, embedder, collections: dict[str, Collection]):
        self.store = store
        self.embedder = embedder
        self.collections = collections

    def collection(self, name: str) -> Collection:
        return get_collection(self.collections, name)

    def search(self, q: SearchQuery) -> SearchResult:
        coll = self.collection(q.collection)
        mode = q.mode
        if mode == SearchMode.AUTO:
            # Keyword and hybrid search are not built yet: AUTO routes to vector.
            mode = SearchMode.VECTOR
        if mode != SearchMode.VECTOR:
            raise Unimplemented(f"mode {mode.name} is coming (keyword and hybrid search); use VECTOR or AUTO")
        timings = Timings()
        t0 = time.perf_counter()
        result = self.embedder.embed([q.query])
        timings.embed_ms = _ms(t0)
        hits = self._vector_hits(coll, result.vectors[0], q.top_k, q.filter, q.group_by_document,
                                 q.min_score, timings)
        return SearchResult(hits=hits, mode=mode, timings=timings)

    def similar(self, name: str, doc_id: str, top_k: int, flt: Filter, min_score: float) -> SearchResult:
        coll = self.collection(name)
        rec = self.store.get_doc(coll.meta.id, doc_id)
        if rec is None or records.is_tombstone(rec):
            raise NotFound(f"document_id: {doc_id!r} is not in collection {name!r}")
        timings = Timings()
        vectors = self.store.get_vectors(coll.meta.id, rec["c"], coll.meta.dim)
        # The document's centroid: the mean of its (unit) chunk vectors, renormalised.
        centroid = vectors.mean(axis=0)
        centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
        flt.exclude_ids = [*flt.exclude_ids, doc_id]
        hits = self._vector_hits(coll, centroid, top_k, flt, True, min_score, timings)
        return SearchResult(hits=hits, mode=SearchMode.VECTOR, timings=timings)

    def _vector_hits(self, coll: Collection, query: np.ndarray, top_k: int, flt: Filter, group: bool,
                     min_score: float, timings: Timings) -> list[Hit]:
        t0 = time.perf_counter()
        mask = coll.columns.mask(flt)
        available = int(mask.sum()) if mask is not None else coll.index.ntotal
        # Grouping keeps one chunk per document: ask for more chunks until the
        # page is full or every admitted chunk has been seen.
        k = top_k * 4 if group else top_k
        while True:
            scores, ids = coll.index.search(query[None, :], min(k, max(available, 1)), mask)
            pairs = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0 and s >= min_score]
            if group:
                best: dict[int, tuple[int, float]] = {}
                for cid, score in pairs:
                    best.setdefault(int(coll.columns.doc_ord[cid]), (cid, score))
                picked = list(best.values())[:top_k]
            else:
                picked = pairs[:top_k]
            exhausted = k >= available or len(pairs) < min(k, available)
            if len(picked) >= top_k or exhausted:
                break
            k *= 4
        timings.search_ms = _ms(t0)
        t1 = time.perf_counter()
        hits = self._hits(coll, picked)
        timings.store_ms = _ms(t1)
        return hits

    def _hits(self, coll: Collection, picked: list[tuple[int, float]]) -> list[Hit]:
        chunks = self.store.get_chunks(coll.meta.id, [cid for cid, _ in picked])
        docs = self.store.get_docs(coll.meta.id, {c.doc_id for c in chunks if c is not None})
        hits = []
        for (cid, score), chunk in zip(picked, chunks):
            if chunk is None or chunk.doc_id not in docs:
                continue  # deleted between the index search and this read
            doc = records.from_record(chunk.doc_id, docs[chunk.doc_id], with_text=False)
            hits.append(Hit(document=doc, chunk_id=cid, text=chunk.text, start=chunk.start, end=chunk.end,
                            score=score, vector_score=score))
        return hits
