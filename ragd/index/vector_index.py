"""FAISS vector index of one collection (exact inner product for now).

Vectors are L2-normalised, so inner product is cosine similarity. Ids are the
store's chunk ids. Filters arrive as a boolean mask over chunk ids and are
applied inside the FAISS search through IDSelectorBitmap, so a page is full
whenever enough permitted chunks exist (never filtered after the top-k).
The index is derived data: it is rebuilt from LMDB when missing.
"""
from __future__ import annotations

import threading

import faiss
import numpy as np


class VectorIndex:
    kind = "flat"

    def __init__(self, dim: int):
        self.dim = dim
        # IDMap2 keeps id -> vector so removal by chunk id works on the flat index.
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        # FAISS indexes are not safe for concurrent add/remove and search; reads
        # are short, so one lock is simpler than a reader/writer scheme.
        self._lock = threading.Lock()

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        with self._lock:
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32),
                                     np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids) -> None:
        if len(ids) == 0:
            return
        with self._lock:
            self._index.remove_ids(np.asarray(ids, dtype=np.int64))

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None):
        """Top-k (scores, ids) per query; `allowed` is a bool mask indexed by chunk id."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = max(1, min(k, self.ntotal)) if self.ntotal else 1
        params = None
        if allowed is not None:
            bits = np.packbits(allowed, bitorder="little")
            # The selector only borrows `bits`; it stays alive until search returns.
            params = faiss.SearchParameters(sel=faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bits)))
        with self._lock:
            if self.ntotal == 0:
                n = len(queries)
                return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
            scores, ids = self._index.search(queries, k, params=params)
        return scores, ids
