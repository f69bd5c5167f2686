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
same op-log sequence) as raw rows, checksummed (ragd.index.snapshot.write_arrays).

A start maps that file instead of reading it (`map`; index.rerank_copy_load =
"map", the default): opening it reads the header alone, so restart time does not
grow with the copy (7.7 GB at 10M chunks fp16). Its checksum is verified in the
background (`verify`, run by ragd.index.lifecycle.IndexKeeper at low priority).
Until it has passed, `verified` is unset and the index re-ranks from LMDB's fp32
vectors instead (ragd.index.vector_index): the file is written atomically and its
header is checked against the snapshot, but neither rules out a bad disk block or
a damaged copy of a backup, and a re-rank with wrong vectors would return wrong
results silently. A failed check means the copy is rebuilt from LMDB (in the
background as well); only then, or once it passed, is the copy used.

The rows are held in two segments: a base (the mapped or read file's rows, never
copied again: growing the copy does not touch it) and a tail in memory, for ids
past the base (writes after the snapshot), grown by half each time it fills.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, NamedTuple

import faiss as _faiss
import numpy as np

from ragd import _native
from ragd.index import snapshot as snapfile

faiss: Any = _faiss

KINDS = ("fp16", "sq8")


class _Rows(NamedTuple):
    """One consistent state of the rows (replaced as a whole when the tail grows, so a
    search reading it alongside an add sees the old state or the new)."""
    base_codes: np.ndarray    # [B, code_size]: rows 0..B-1, the file's (mapped or read), or empty
    base_present: np.ndarray  # [B] bool
    tail_codes: np.ndarray    # [cap, code_size]: rows B..B+cap-1, in memory
    tail_present: np.ndarray  # [cap] bool

    @property
    def base(self) -> int:
        return len(self.base_present)

    def rows_saved(self) -> int:
        """Rows up to the last present one (what a save writes)."""
        tail = np.flatnonzero(self.tail_present)
        if len(tail):
            return self.base + int(tail[-1]) + 1
        head = np.flatnonzero(self.base_present)
        return int(head[-1]) + 1 if len(head) else 0


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
        empty_codes = np.zeros((0, self.code_size), dtype=np.uint8)
        self._rows = _Rows(empty_codes, np.zeros(0, bool), empty_codes, np.zeros(0, bool))
        # Set once the rows may be trusted: at once for a copy built in memory or read
        # and checked whole; for a mapped file, when `verify` passed.
        self.verified = threading.Event()
        self.verified.set()
        self._mapped: snapfile.MappedArrays | None = None
        self._sq_range: tuple[np.ndarray, np.ndarray] | None = None  # sq8: (vmin, vdiff), read once trained

    @classmethod
    def trained_on(cls, dim: int, kind: str, sample: np.ndarray) -> RerankCopy:
        copy = cls(dim, kind)
        if copy._sq is not None:
            copy._sq.train(np.ascontiguousarray(sample, dtype=np.float32))
        return copy

    @property
    def nbytes(self) -> int:
        r = self._rows
        return int(r.base_codes.nbytes + r.base_present.nbytes + r.tail_codes.nbytes + r.tail_present.nbytes)

    @property
    def mapped(self) -> bool:
        """The base rows are a mapped file's (paged in on use; the page cache holds them)."""
        return self._mapped is not None

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
        codes = self._encode(np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.dim))
        rows = self._rows
        low = ids < rows.base
        if low.any():  # ids are never reused, so this is a replay writing the same vector again
            rows.base_codes[ids[low]] = codes[low]  # a mapped base: copy-on-write, the file is untouched
            rows.base_present[ids[low]] = True
            ids, codes = ids[~low], codes[~low]
            if len(ids) == 0:
                return
        at = ids - rows.base
        need = int(at.max()) + 1
        if need > len(rows.tail_present):
            cap = max(need, int(len(rows.tail_present) * 1.5) + 1024)
            tail_codes = np.zeros((cap, self.code_size), dtype=np.uint8)
            tail_codes[: len(rows.tail_codes)] = rows.tail_codes
            tail_present = np.zeros(cap, dtype=bool)
            tail_present[: len(rows.tail_present)] = rows.tail_present
            # Rows first, then the state at once: a search sees the old one or the new.
            rows = self._rows = rows._replace(tail_codes=tail_codes, tail_present=tail_present)
        rows.tail_codes[at] = codes
        rows.tail_present[at] = True

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
        rows: (scores, ids), best first; ids without a row (negative, deleted since, never
        added) are skipped, so fewer than k may return. Ties keep candidate order within
        a segment (base rows first, then the tail's)."""
        rows = self._rows  # one consistent state (add replaces it whole)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        query = np.ascontiguousarray(query, dtype=np.float32)
        if rows.base == 0:
            return self._rerank_rows(rows.tail_codes, rows.tail_present, ids, query, k)
        # Two segments, each ranked in one native pass: ids past the base are "past the
        # rows" for the first, base ids are negative (skipped) for the second.
        scores, out = self._rerank_rows(rows.base_codes, rows.base_present, ids, query, k)
        if len(rows.tail_present) == 0 or not bool((ids >= rows.base).any()):
            return scores, out
        tail_scores, tail_ids = self._rerank_rows(rows.tail_codes, rows.tail_present, ids - rows.base, query, k)
        scores = np.concatenate([scores, tail_scores])
        out = np.concatenate([out, tail_ids + rows.base])
        best = np.argsort(-scores, kind="stable")[:k]
        return scores[best], out[best]

    def _rerank_rows(self, codes: np.ndarray, present: np.ndarray, ids: np.ndarray, query: np.ndarray,
                     k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = np.empty(k, dtype=np.float32)
        out = np.empty(k, dtype=np.int64)
        n = _native.rerank_top_k(scores, out, codes.reshape(-1), present, ids, query, kind=self.kind,
                                 **self._range())
        return scores[:n], out[:n]

    def fetch(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows of these ids decoded to fp32: (vectors [n, dim], found [n]). Searches
        re-rank with `rerank` (one native pass, no decoded copy); this is the plain form
        that checks and tests compare with."""
        ids = np.asarray(ids, dtype=np.int64)
        rows = self._rows  # one consistent state (add replaces it whole)
        found = np.zeros(len(ids), dtype=bool)
        codes = np.zeros((len(ids), self.code_size), dtype=np.uint8)
        low = ids < rows.base
        if low.any():
            at = ids[low]
            found[low] = rows.base_present[at]
            codes[low] = rows.base_codes[at]
        high = ~low & (ids < rows.base + len(rows.tail_present))
        if high.any():
            at = ids[high] - rows.base
            found[high] = rows.tail_present[at]
            codes[high] = rows.tail_codes[at]
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        if found.any():
            out[found] = self._decode(codes[found])
        return out, found

    # ------------------------------------------------------------ persistence

    def capture(self) -> _Rows:
        """The rows as they are now (under the engine's write lock: rows are only ever
        added, so the rows of the snapshot's cut stay as they are while they are saved)."""
        return self._rows

    def save(self, path: Path, seq: int, rows: _Rows | None = None) -> int:
        """Write atomically, checksummed (ragd.index.snapshot.write_arrays); returns bytes written.
        Saving a copy whose mapped file is not verified yet would give its rows a fresh,
        valid checksum: callers save verified copies only (IndexKeeper.snapshot)."""
        rows = rows or self.capture()
        n = rows.rows_saved()
        nb = min(n, rows.base)
        header: dict = {"kind": self.kind, "dim": self.dim, "rows": n, "seq": seq}
        if self._sq is not None:
            header["trained"] = faiss.vector_to_array(self._sq.trained).tolist()
        codes = [rows.base_codes[:nb].reshape(-1), rows.tail_codes[: n - nb].reshape(-1)]
        present = [rows.base_present[:nb], rows.tail_present[: n - nb]]
        return snapfile.write_arrays(path, header, {"codes": codes, "present": present})

    @classmethod
    def _from(cls, path: Path, header: dict, arrays: dict[str, np.ndarray]) -> tuple[RerankCopy, int]:
        try:
            copy = cls(int(header["dim"]), header["kind"], header.get("trained"))
            n = int(header["rows"])
            codes, present = arrays["codes"], arrays["present"].view(bool)
            if len(present) != n or len(codes) != n * copy.code_size:
                raise ValueError("rows do not match")
            copy._rows = copy._rows._replace(base_codes=codes.reshape(n, copy.code_size), base_present=present)
            return copy, int(header["seq"])
        except (KeyError, ValueError) as exc:
            raise snapfile.SnapshotError(f"{path}: bad re-rank copy ({exc})") from None

    @classmethod
    def load(cls, path: Path) -> tuple[RerankCopy, int]:
        """(the copy, the op-log sequence it reflects), read into memory whole and its
        checksum checked before it returns (index.rerank_copy_load = "read"); raises
        ragd.index.snapshot.SnapshotError when torn or corrupt."""
        header, arrays = snapfile.read_arrays(path)
        return cls._from(path, header, arrays)

    @classmethod
    def map(cls, path: Path) -> tuple[RerankCopy, int]:
        """(the copy, the op-log sequence it reflects) over a mapping of its file: reads
        the header alone; `verified` stays unset until `verify` passed. Raises
        ragd.index.snapshot.SnapshotError when the header or the size is wrong."""
        mapped = snapfile.MappedArrays(path)
        copy, seq = cls._from(path, mapped.header, mapped.arrays)
        copy._mapped = mapped
        copy.verified.clear()
        return copy, seq

    def verify(self, stop: threading.Event | None = None) -> bool | None:
        """Check a mapped file's checksum (True: `verified` is now set; False: the file is
        damaged, never to be used; None: `stop` was set first). A copy that is not a
        mapped file's, or was verified already, is True at once."""
        if self.verified.is_set():
            return True
        if self._mapped is None:
            raise RuntimeError("an unverified copy without a file")
        ok = self._mapped.verify(stop)
        if ok:
            self.verified.set()
        return ok
