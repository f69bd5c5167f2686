"""Search: evaluate the filter into one boolean mask over chunk ids, then run the
vector index (FAISS), the keyword index (tantivy BM25) or both (HYBRID, fused by
relative score or reciprocal rank, ragd.engine.fusion) with that mask applied inside each engine's search, and assemble
hits from LMDB.

AUTO is routed by ragd.engine.router: identifier-like queries go to KEYWORD (no
model call), everything else to HYBRID; a KEYWORD route that finds nothing falls
back to HYBRID. The mode actually used is reported, and questions are flagged
`complex` (a client may then call Answer). Result pages and query
embeddings are cached (ragd.engine.cache), keyed by the collection's generation, so
a write invalidates that collection's pages at once.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ragd.domain import Filter, Hit, SearchMode, SearchQuery, SearchResult, Timings
from ragd.engine import fusion, router
from ragd.engine.cache import SearchCache, page_key
from ragd.engine.collection import Collection, Collections, require_model
from ragd.errors import NotFound
from ragd.store.lmdb_store import Store


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


@dataclass
class SearchSettings:
    fusion: str = "relative"       # "relative" (min-max score fusion) or "rrf"
    rrf_k: float = 60.0
    hybrid_candidates: int = 100   # per list (documents when grouping, else chunks)
    vector_weight: float = 1.0
    keyword_weight: float = 1.0
    auto_max_words: int = 4
    highlights: bool = True

    def __post_init__(self) -> None:
        if self.fusion not in ("relative", "rrf"):
            raise ValueError(f"search.fusion: {self.fusion!r} is not one of relative, rrf")


class Searcher:
    def __init__(self, store: Store, embedder, collections: Collections,
                 settings: SearchSettings | None = None, cache: SearchCache | None = None):
        self.store = store
        self.embedder = embedder
        self.collections = collections
        self.settings = settings or SearchSettings()
        self.cache = cache or SearchCache(enabled=False)
        # model name -> the query embedder of another loaded model, for collections built
        # with it (re-embedded ones, ragd.engine.reindex); None: only self.embedder.
        self.embedder_for: Callable[[str], Any] | None = None

    def collection(self, name: str) -> Collection:
        return self.collections.get(name)

    # ------------------------------------------------------------ entry points

    def search(self, q: SearchQuery) -> SearchResult:
        coll = self.collection(q.collection)
        generation = coll.generation  # read first: a write during this search makes a newer key
        key = page_key(q, generation, (coll.meta.model,))  # a re-embedded collection's pages are new
        routed = q.mode == SearchMode.AUTO
        complex_ = routed and router.is_complex(q.query)  # computed, not cached: a regex over the query
        cached = self.cache.get_page(key)
        if cached is not None:
            cached.complex = complex_
            return cached
        mode = q.mode
        if routed:
            mode = router.route(q.query, self.settings.auto_max_words)
        timings = Timings()
        t0 = time.perf_counter()
        mask = coll.columns.mask(q.filter)
        timings.search_ms += _ms(t0)
        if mode == SearchMode.KEYWORD:
            picked = self._keyword_only(coll, q, mask, timings)
            if not picked and routed:
                mode = SearchMode.HYBRID  # nothing matched verbatim: let the model try
        if mode == SearchMode.VECTOR:
            vec = self._query_vector(coll, q, timings)
            t1 = time.perf_counter()
            pairs = self._vector_pairs(coll, vec, q.top_k, mask, q.group_by_document, q.min_score, q)
            timings.search_ms += _ms(t1)
            picked = [(cid, s, s, 0.0) for cid, s in pairs]
        elif mode == SearchMode.HYBRID:
            picked = self._hybrid(coll, q, mask, timings)
        t2 = time.perf_counter()
        hits = self._hits(coll, picked, q.query if self.settings.highlights else "")
        timings.store_ms = _ms(t2)
        result = SearchResult(hits=hits, mode=mode, timings=timings, complex=complex_)
        self.cache.put_page(key, result)
        return result

    def similar(self, name: str, doc_id: str, top_k: int, flt: Filter, min_score: float) -> SearchResult:
        coll = self.collection(name)
        rec = self.store.get_doc(coll.meta.id, doc_id)
        if rec is None or rec.deleted:
            raise NotFound(f"document_id: {doc_id!r} is not in collection {name!r}")
        timings = Timings()
        t0 = time.perf_counter()
        vectors, found = self.store.get_vectors(coll.meta.id, rec.chunk_ids, coll.meta.dim)
        vectors = vectors[found]  # all of them, unless the document is being replaced right now
        if not len(vectors):
            raise NotFound(f"document_id: {doc_id!r} is not in collection {name!r}")
        # The document's centroid: the mean of its (unit) chunk vectors, renormalised.
        centroid = vectors.mean(axis=0)
        centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
        flt.exclude_ids = [*flt.exclude_ids, doc_id]
        mask = coll.columns.mask(flt)
        pairs = self._vector_pairs(coll, centroid, top_k, mask, True, min_score, None)
        timings.search_ms = _ms(t0)
        t1 = time.perf_counter()
        hits = self._hits(coll, [(cid, s, s, 0.0) for cid, s in pairs], "")
        timings.store_ms = _ms(t1)
        return SearchResult(hits=hits, mode=SearchMode.VECTOR, timings=timings)

    # ------------------------------------------------------------ pieces

    def _embed(self, coll: Collection, text: str, timings: Timings) -> np.ndarray:
        # A query vector of another model than the collection's would rank by noise.
        embedder = self.embedder
        if coll.meta.model != embedder.name and self.embedder_for is not None:
            embedder = self.embedder_for(coll.meta.model) or embedder
        require_model(coll.meta, embedder.name, embedder.dimension, "search (VECTOR, HYBRID)")
        key = text if embedder is self.embedder else f"\x00{embedder.name}\x00{text}"
        t0 = time.perf_counter()
        vec = self.cache.get_embedding(key)
        if vec is None:
            vec = embedder.embed([text]).vectors[0]
            self.cache.put_embedding(key, vec)
        timings.embed_ms += _ms(t0)
        return vec

    def _query_vector(self, coll: Collection, q: SearchQuery, timings: Timings) -> np.ndarray:
        """The query's embedding; with an expansion (a HyDE draft), the normalised mean
        of the query's and the draft's (HyDE averages the question with its drafts)."""
        vec = self._embed(coll, q.query, timings)
        if not q.expansion.strip():
            return vec
        mean = vec + self._embed(coll, q.expansion, timings)
        return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)

    @staticmethod
    def _index_search(coll: Collection, query: np.ndarray, k: int, mask, q: SearchQuery | None):
        if q is None:
            return coll.index.search(query[None, :], k, mask)
        return coll.index.search(query[None, :], k, mask, nprobe=q.nprobe, rerank_factor=q.rerank_factor,
                                 exact=q.exact)

    def _vector_pairs(self, coll: Collection, query: np.ndarray, top_k: int, mask, group: bool,
                      min_score: float, q: SearchQuery | None) -> list[tuple[int, float]]:
        """Top chunks (or best chunk per document when grouping) the mask admits."""
        available = coll.index.admitted(mask) if mask is not None else coll.index.ntotal
        # Grouping keeps one chunk per document: ask for more chunks until the
        # page is full or every admitted chunk has been seen.
        k = top_k * 4 if group else top_k
        while True:
            scores, ids = self._index_search(coll, query, min(k, max(available, 1)), mask, q)
            if ids.shape[1] == 0:
                return []
            pairs = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0 and s >= min_score]
            if group:
                picked = fusion.dedupe_by(pairs, lambda cid: int(coll.columns.doc_ord[cid]))[:top_k]
            else:
                picked = pairs[:top_k]
            exhausted = k >= available or len(pairs) < min(k, available)
            if len(picked) >= top_k or exhausted:
                return picked
            k *= 4

    def _keyword_pairs(self, coll: Collection, qt, top_k: int, mask, group: bool,
                       min_score: float = 0.0) -> list[tuple[int, float]]:
        admitted = int(mask.sum()) if mask is not None else None
        k = top_k * 4 if group else top_k
        while True:
            got = coll.keyword.search(qt, k, mask, admitted)
            pairs = [(c, s) for c, s in got if s >= min_score]
            if group:
                picked = fusion.dedupe_by(pairs, lambda cid: int(coll.columns.doc_ord[cid]))[:top_k]
            else:
                picked = pairs[:top_k]
            if len(picked) >= top_k or len(got) < k:
                return picked
            k *= 4

    def _keyword_only(self, coll: Collection, q: SearchQuery, mask, timings: Timings):
        t0 = time.perf_counter()
        qt = coll.keyword.terms(q.query)
        pairs = self._keyword_pairs(coll, qt, q.top_k, mask, q.group_by_document, q.min_score)
        timings.search_ms += _ms(t0)
        return [(cid, s, 0.0, s) for cid, s in pairs]

    def _hybrid(self, coll: Collection, q: SearchQuery, mask, timings: Timings):
        s = self.settings
        n = max(s.hybrid_candidates, q.top_k)
        vec = self._query_vector(coll, q, timings)
        t0 = time.perf_counter()
        group = q.group_by_document
        vpairs = self._vector_pairs(coll, vec, n, mask, group, q.min_score, q)
        kpairs = self._keyword_pairs(coll, coll.keyword.terms(q.query), n, mask, group)
        vmap, kmap = dict(vpairs), dict(kpairs)
        if group:
            doc_of = coll.columns.doc_ord
            vbest = {int(doc_of[c]): (c, sc) for c, sc in vpairs}
            kbest = {int(doc_of[c]): (c, sc) for c, sc in kpairs}
            fused = self._fuse([[(d, sc) for d, (_, sc) in vbest.items()], [(d, sc) for d, (_, sc) in kbest.items()]])
            picked = []
            for doc, score in fused[: q.top_k]:
                v, k = vbest.get(doc), kbest.get(doc)
                best = v or k  # a fused document came from at least one list
                assert best is not None
                picked.append((best[0], score, v[1] if v else 0.0, k[1] if k else 0.0))
        else:
            fused = self._fuse([vpairs, kpairs])
            picked = [(cid, score, vmap.get(cid, 0.0), kmap.get(cid, 0.0)) for cid, score in fused[: q.top_k]]
        timings.search_ms += _ms(t0)
        return picked

    def _fuse(self, lists):
        """Fused (key, score) best first from [(key, score)] lists ranked best first."""
        s = self.settings
        weights = [s.vector_weight, s.keyword_weight]
        if s.fusion == "rrf":
            return fusion.rrf([[key for key, _ in pairs] for pairs in lists], s.rrf_k, weights)
        return fusion.relative_score(lists, weights)

    def _hits(self, coll: Collection, picked: list[tuple[int, float, float, float]], query: str) -> list[Hit]:
        chunks = self.store.get_chunks(coll.meta.id, [p[0] for p in picked])
        docs = self.store.get_docs(coll.meta.id, {c.doc_id for c in chunks if c is not None})
        qt = coll.keyword.terms(query) if query else None
        memo: dict = {}  # the page's words, analysed once (KeywordIndex.highlight)
        hits = []
        for (cid, score, vscore, kscore), chunk in zip(picked, chunks):
            rec = docs.get(chunk.doc_id) if chunk is not None else None
            if chunk is None or rec is None or rec.document is None or cid not in rec.chunk_ids:
                # Deleted or replaced between the index search and these reads (two read
                # transactions): the document's current record no longer owns this chunk.
                continue
            doc = dataclasses.replace(rec.document, text="")  # the hit carries the chunk's text
            spans = coll.keyword.highlight(qt, chunk.text, memo=memo) if qt else []
            hits.append(Hit(document=doc, chunk_id=cid, text=chunk.text, start=chunk.start, end=chunk.end,
                            score=score, vector_score=vscore, keyword_score=kscore, highlights=spans))
        return hits
