"""Compact in-memory columns of chunk attributes, for evaluating filters.

Columns are numpy arrays indexed by chunk id (ids are dense per collection), so
a filter becomes a few vectorised comparisons producing a boolean mask that the
vector index applies inside its search. Rare, many-valued attributes (private
viewers, metadata) live in inverted maps: value -> set of chunk ids.
"""
from __future__ import annotations

import math

import numpy as np

from ragd.domain import Document, Filter

_GROW = 1.5
_COLUMNS = ("alive", "project", "type_code", "private", "author", "updated", "doc_ord")


class FilterColumns:
    def __init__(self) -> None:
        self._cap = 0
        self._buf: dict[str, np.ndarray] = {}
        self.alive = np.zeros(0, dtype=bool)
        self.project = np.zeros(0, dtype=np.int64)
        self.type_code = np.zeros(0, dtype=np.int32)
        self.private = np.zeros(0, dtype=bool)
        self.author = np.zeros(0, dtype=np.int64)
        self.updated = np.zeros(0, dtype=np.int64)
        self.doc_ord = np.zeros(0, dtype=np.int64)
        self._types: dict[str, int] = {}
        self._doc_ords: dict[str, int] = {}
        self.doc_ids: list[str] = []
        self._viewers: dict[int, set[int]] = {}  # user id -> private chunk ids they may see
        self._meta_eq: dict[tuple[str, str], set[int]] = {}
        self._meta_num: dict[str, dict[int, float]] = {}
        self._chunk_meta: dict[int, tuple[dict[str, str], list[int]]] = {}
        self.private_count = 0

    @property
    def size(self) -> int:
        return len(self.alive)

    def _ensure(self, n: int) -> None:
        """Grow every column to hold chunk ids < n (amortised: capacity grows by 1.5x)."""
        if n <= self.size:
            return
        if n > self._cap:
            cap = max(n, int(self._cap * _GROW) + 1024)
            for name in _COLUMNS:
                old = getattr(self, name)
                new = np.zeros(cap, dtype=old.dtype)
                new[: len(old)] = old
                self._buf[name] = new
            self._cap = cap
        for name in _COLUMNS:
            setattr(self, name, self._buf[name][:n])

    def doc_ordinal(self, doc_id: str) -> int:
        ord_ = self._doc_ords.get(doc_id)
        if ord_ is None:
            ord_ = len(self.doc_ids)
            self._doc_ords[doc_id] = ord_
            self.doc_ids.append(doc_id)
        return ord_

    def set_chunks(self, chunk_ids, doc: Document) -> None:
        if not len(chunk_ids):
            return
        ids = np.asarray(chunk_ids, dtype=np.int64)
        self._ensure(int(ids.max()) + 1)
        self.alive[ids] = True
        self.project[ids] = doc.project_id
        self.type_code[ids] = self._types.setdefault(doc.type, len(self._types))
        self.private[ids] = doc.is_private
        self.author[ids] = doc.author_id
        self.updated[ids] = doc.updated_at_us
        self.doc_ord[ids] = self.doc_ordinal(doc.id)
        if doc.is_private:
            self.private_count += len(ids)
            for user in doc.viewer_ids:
                self._viewers.setdefault(user, set()).update(ids.tolist())
        for cid in ids.tolist():
            if doc.metadata or (doc.is_private and doc.viewer_ids):
                self._chunk_meta[cid] = (doc.metadata, list(doc.viewer_ids) if doc.is_private else [])
            for key, value in doc.metadata.items():
                self._meta_eq.setdefault((key, value), set()).add(cid)
                num = _as_number(value)
                if num is not None:
                    self._meta_num.setdefault(key, {})[cid] = num

    def clear_chunks(self, chunk_ids) -> None:
        ids = [c for c in chunk_ids if c < self.size]
        if not ids:
            return
        arr = np.asarray(ids, dtype=np.int64)
        self.private_count -= int(self.private[arr].sum())
        self.alive[arr] = False
        self.private[arr] = False
        for cid in ids:
            entry = self._chunk_meta.pop(cid, None)
            if entry is None:
                continue
            metadata, viewers = entry
            for key, value in metadata.items():
                self._meta_eq.get((key, value), set()).discard(cid)
                self._meta_num.get(key, {}).pop(cid, None)
            for user in viewers:
                self._viewers.get(user, set()).discard(cid)

    def _ids_mask(self, ids) -> np.ndarray:
        mask = np.zeros(self.size, dtype=bool)
        if ids:
            mask[np.fromiter(ids, dtype=np.int64, count=len(ids))] = True
        return mask

    def mask(self, flt: Filter) -> np.ndarray | None:
        """Boolean mask of chunks the filter admits, or None when it admits every chunk."""
        conds = []
        if flt.project_ids:
            conds.append(np.isin(self.project, np.asarray(flt.project_ids, dtype=np.int64)))
        if flt.types:
            codes = [self._types[t] for t in flt.types if t in self._types]
            conds.append(np.isin(self.type_code, np.asarray(codes, dtype=np.int32)))
        if self.private_count and not flt.all_private:
            visible = ~self.private
            if flt.private_project_ids:
                visible |= np.isin(self.project, np.asarray(flt.private_project_ids, dtype=np.int64))
            if flt.user_id:
                visible |= self.private & (self.author == flt.user_id)
                viewers = self._viewers.get(flt.user_id)
                if viewers:
                    visible |= self._ids_mask(viewers)
            conds.append(visible)
        for key, value in flt.metadata_equals.items():
            conds.append(self._ids_mask(self._meta_eq.get((key, value), ())))
        for rng in flt.metadata_ranges:
            values = self._meta_num.get(rng.key, {})
            ok = {cid for cid, v in values.items()
                  if (rng.gte is None or v >= rng.gte) and (rng.lte is None or v <= rng.lte)}
            conds.append(self._ids_mask(ok))
        if flt.updated_after_us is not None:
            conds.append(self.updated >= flt.updated_after_us)
        if flt.updated_before_us is not None:
            conds.append(self.updated <= flt.updated_before_us)
        if flt.exclude_ids:
            ords = [self._doc_ords[d] for d in flt.exclude_ids if d in self._doc_ords]
            if ords:
                conds.append(~np.isin(self.doc_ord, np.asarray(ords, dtype=np.int64)))
        if not conds:
            return None
        mask = self.alive.copy()
        for cond in conds:
            mask &= cond
        return mask


def _as_number(value: str) -> float | None:
    try:
        num = float(value)
    except ValueError:
        return None
    return num if math.isfinite(num) else None
