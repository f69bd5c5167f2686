"""A resident, compact copy of a collection's vectors for the IVF-PQ re-rank.

IVF-PQ finds top_k x rerank_factor candidates from 48-byte PQ codes; re-ranking
them needs their vectors. By default they are read from LMDB (fp32, 1,536 B per
384-d vector: fast only while those pages stay in the page cache, 15 GB at 10M
chunks). This copy keeps them in RAM instead, indexed by chunk id:

  - "fp16": 2 bytes per dimension (768 B at 384-d); the re-rank error is ~1e-4
    in cosine, far below the gap between neighbours;
  - "sq8":  1 byte per dimension (384 B at 384-d), FAISS's 8-bit scalar quantizer
    with a per-dimension range trained on the IVF-PQ training sample (the refine
    index FAISS's IndexRefine would use). Its recall cost against fp32 re-rank is
    measured by benchmarks/index_scale.py (--xlarge, results/index_scale_xlarge.json).

The re-rank itself (`rerank`) is one native pass over the candidates
(ragd._native.rerank_top_k, ragd/native/rerank.hpp): each row decoded in
registers, no gathered copy.

Rows of deleted chunks stay until the index is rebuilt (the vector index's id
states exclude them from every search). Saved beside the index snapshot (the
same op-log sequence) as raw rows that a start reads back whole: at 10M chunks
fp16 that is 7.7 GB, a few seconds from a warm page cache or an NVMe disk.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np

from ragd import _native
from ragd.index import snapshot as snapfile

faiss: Any = _faiss

KINDS = ("fp16", "sq8")


class RerankCopy:
    def __init__(self, dim: int, kind: str, trained: np.ndarray | None = None):
        if kind not in KINDS:
            raise ValueError(f"index.rerank_copy: {kind!r} is not one of {', '.join(KINDS)} (or empty)")
        self.dim = dim
        self.kind = kind
        self._sq = None
        if kind == "sq8":
            self._sq = faiss.ScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit)
            if trained is not None:
                faiss.copy_array_to_vector(np.asarray(trained, dtype=np.float32), self._sq.trained)
        self.code_size = dim * (2 if kind == "fp16" else 1)
        self._codes = np.zeros((0, self.code_size), dtype=np.uint8)
        self._present = np.zeros(0, dtype=bool)
        self._sq_range: tuple[np.ndarray, np.ndarray] | None = None  # sq8: (vmin, vdiff), read once trained

    @classmethod
    def trained_on(cls, dim: int, kind: str, sample: np.ndarray) -> RerankCopy:
        copy = cls(dim, kind)
        if copy._sq is not None:
            copy._sq.train(np.ascontiguousarray(sample, dtype=np.float32))
        return copy

    @property
    def nbytes(self) -> int:
        return int(self._codes.nbytes + self._present.nbytes)

    def _encode(self, vectors: np.ndarray) -> np.ndarray:
        if self._sq is None:
            return vectors.astype(np.float16).view(np.uint8).reshape(len(vectors), self.code_size)
        return self._sq.compute_codes(np.ascontiguousarray(vectors, dtype=np.float32))

    def _decode(self, codes: np.ndarray) -> np.ndarray:
        if self._sq is None:
            return np.ascontiguousarray(codes).view(np.float16).astype(np.float32)
        return self._sq.decode(np.ascontiguousarray(codes))

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return
        need = int(ids.max()) + 1
        if need > len(self._codes):
            cap = max(need, int(len(self._codes) * 1.5) + 1024)
            codes = np.zeros((cap, self.code_size), dtype=np.uint8)
            codes[: len(self._codes)] = self._codes
            present = np.zeros(cap, dtype=bool)
            present[: len(self._present)] = self._present
            # Rows first, then both arrays at once: a search sees the old pair or the new.
            self._codes, self._present = codes, present
        self._codes[ids] = self._encode(np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.dim))
        self._present[ids] = True

    def _range(self) -> dict:
        """The native kernel's decode arguments: sq8's per-dimension vmin and vdiff
        (FAISS QT_8bit's trained vector: dim minimums, then dim ranges)."""
        if self._sq is None:
            return {}
        if self._sq_range is None:
            trained = faiss.vector_to_array(self._sq.trained).astype(np.float32)
            if len(trained) != 2 * self.dim:
                raise ValueError(f"sq8 re-rank copy is not trained ({len(trained)} range values)")
            self._sq_range = (np.ascontiguousarray(trained[: self.dim]), np.ascontiguousarray(trained[self.dim:]))
        vmin, vdiff = self._sq_range
        return {"vmin": vmin, "vdiff": vdiff}

    def rerank(self, query: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The best k of the candidate chunk ids by exact inner product with the copy's
        rows: (scores, ids), best first, ties in candidate order; ids without a row
        (negative, deleted since, never added) are skipped, so fewer than k may return."""
        codes, present = self._codes, self._present  # one consistent pair (add swaps both)
        scores = np.empty(k, dtype=np.float32)
        out = np.empty(k, dtype=np.int64)
        n = _native.rerank_top_k(scores, out, codes.reshape(-1), present, np.ascontiguousarray(ids, dtype=np.int64),
                                 np.ascontiguousarray(query, dtype=np.float32), kind=self.kind, **self._range())
        return scores[:n], out[:n]

    def fetch(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ragd.index.vector_index.Fetch of the re-rank: (vectors [n, dim], found [n])."""
        ids = np.asarray(ids, dtype=np.int64)
        codes, present = self._codes, self._present  # one consistent pair (add swaps both)
        inside = ids < len(present)
        found = np.zeros(len(ids), dtype=bool)
        found[inside] = present[ids[inside]]
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        if found.any():
            out[found] = self._decode(codes[ids[found]])
        return out, found

    # ------------------------------------------------------------ persistence

    def capture(self) -> tuple[np.ndarray, np.ndarray]:
        """The arrays as they are now (under the engine's write lock: rows are only ever
        added, so the rows of the snapshot's cut stay as they are while they are saved)."""
        return self._codes, self._present

    def save(self, path: Path, seq: int, arrays: tuple[np.ndarray, np.ndarray] | None = None) -> int:
        """Write atomically, checksummed (ragd.index.snapshot.write_arrays); returns bytes written."""
        codes, present = arrays or self.capture()
        n = int(np.flatnonzero(present)[-1]) + 1 if present.any() else 0
        header: dict = {"kind": self.kind, "dim": self.dim, "rows": n, "seq": seq}
        if self._sq is not None:
            header["trained"] = faiss.vector_to_array(self._sq.trained).tolist()
        return snapfile.write_arrays(path, header, {"codes": codes[:n].reshape(-1), "present": present[:n]})

    @classmethod
    def load(cls, path: Path) -> tuple[RerankCopy, int]:
        """(the copy, the op-log sequence it reflects), read into memory whole (a mapped
        file would fault its pages in during the first searches instead); raises
        ragd.index.snapshot.SnapshotError when torn or corrupt."""
        header, arrays = snapfile.read_arrays(path)
        try:
            copy = cls(int(header["dim"]), header["kind"], header.get("trained"))
            n = int(header["rows"])
            copy._codes = arrays["codes"].reshape(n, copy.code_size)
            copy._present = arrays["present"].view(bool)
            if len(copy._present) != n:
                raise ValueError("rows do not match")
        except (KeyError, ValueError) as exc:
            raise snapfile.SnapshotError(f"{path}: bad re-rank copy ({exc})") from None
        return copy, int(header["seq"])
