"""Compact in-memory columns of chunk attributes, for evaluating filters.

Columns are numpy arrays indexed by chunk id (ids are dense per collection), so
a filter becomes a few vectorised comparisons producing a boolean mask that the
vector index applies inside its search. Rare, many-valued attributes (private
viewers, metadata) live in inverted maps: value -> set of chunk ids.
"""
from __future__ import annotations

import json
import math

import numpy as np

from ragd import _native
from ragd.domain import Document, Filter

_GROW = 1.5
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_COLUMNS = ("alive", "project", "type_code", "private", "author", "updated", "doc_ord")
_DTYPES = (bool, np.int64, np.int32, bool, np.int64, np.int64, np.int64)


def _column(i: int, name: str) -> property:
    return property(lambda self: self._views[i], doc=f"The {name} column (a view; see _views).")


class FilterColumns:
    """Searches read the columns while a writer (under the engine's write lock)
    extends them, without a lock of their own. The seven column views are
    swapped as one tuple (`_views`), so a reader never sees columns of different
    lengths; new rows are written before the swap that makes them visible, and
    a deleted row stops being alive before anything else about it changes, so a
    reader never sees a private chunk half-written (alive but not yet private)."""

    alive, project, type_code, private, author, updated, doc_ord = (
        _column(i, name) for i, name in enumerate(_COLUMNS))

    def __init__(self) -> None:
        self._cap = 0
        self._buf: dict[str, np.ndarray] = {}
        self._views: tuple[np.ndarray, ...] = tuple(np.zeros(0, dtype=d) for d in _DTYPES)
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

    def _ensure(self, n: int, publish: bool = True) -> None:
        """Grow every column to hold chunk ids < n (amortised: capacity grows by 1.5x).
        publish=False grows the buffers only: rows past `size` stay invisible to
        readers until the views are swapped."""
        if n > self._cap:
            cap = max(n, int(self._cap * _GROW) + 1024)
            for name, old in zip(_COLUMNS, self._views):
                new = np.zeros(cap, dtype=old.dtype)
                new[: len(old)] = old
                self._buf[name] = new
            self._cap = cap
            # The old views may point into the old buffers: republish at the same length.
            self._views = tuple(self._buf[name][: self.size] for name in _COLUMNS)
        if publish and n > self.size:
            self._views = tuple(self._buf[name][:n] for name in _COLUMNS)  # one atomic swap

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
        n = int(ids.max()) + 1
        # New chunks (ids past every visible row: the write path always) are written
        # into the buffers beyond the views and published by one swap of the views,
        # so a reader, even the native kernel reading without the GIL, sees each row
        # whole or not at all. Rows rewritten in place (rebuild, replay) are marked
        # alive last.
        fresh = int(ids.min()) >= self.size
        self._ensure(n, publish=not fresh)
        b = self._buf
        b["project"][ids] = doc.project_id
        b["type_code"][ids] = self._types.setdefault(doc.type, len(self._types))
        b["private"][ids] = doc.is_private
        b["author"][ids] = doc.author_id
        b["updated"][ids] = doc.updated_at_us
        b["doc_ord"][ids] = self.doc_ordinal(doc.id)
        if doc.is_private:  # before the rows show: mask() skips the private check while the count is 0
            self.private_count += len(ids)
            for user in doc.viewer_ids:
                self._viewers.setdefault(user, set()).update(ids.tolist())
        b["alive"][ids] = True
        if fresh:
            self._ensure(n)
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
        alive, private = self.alive, self.private  # from one _views: same length
        alive[arr] = False  # first: a concurrent reader no longer admits the rows
        self.private_count -= int(private[arr].sum())
        private[arr] = False
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

    # Measured (benchmarks/hot_loops.py, results/hot_loops.json; 2-core box): for
    # 100 allowed projects + 2 types + private visibility the numpy form takes
    # 2.5 ms at 100k rows and 24.9 ms at 1M; the one-pass kernel in ragd._native
    # (ragd/native/filter_mask.hpp) 0.26 / 2.7 ms through mask() (9-10x, issue
    # #4's bar is 5x), so mask() uses it for projects, types, private visibility
    # and updated_at, and numpy for the inverted-map conditions (metadata, exclude_ids).
    # _mask_numpy is the numpy form, kept as the reference the tests compare with.
    def mask(self, flt: Filter) -> np.ndarray | None:
        """Boolean mask of chunks the filter admits, or None when it admits every chunk
        (no condition, and a viewer who may see every private chunk)."""
        # Each column read once: the kernel checks the very arrays it reads.
        alive, project, type_code, private, author, updated, _ = self._views
        kw: dict = {}
        if flt.project_ids:
            kw["projects"] = np.asarray(flt.project_ids, dtype=np.int64)
        if flt.types:
            kw["types"] = np.asarray(self._type_codes(flt.types), dtype=np.int32)
        if self.private_count and not flt.all_private:
            kw["private_check"] = True
            if flt.private_project_ids:
                kw["private_projects"] = np.asarray(flt.private_project_ids, dtype=np.int64)
            if flt.user_id:
                if _I64_MIN <= flt.user_id <= _I64_MAX:  # otherwise no author can match it
                    kw["user_id"] = flt.user_id
                viewers = self._viewers.get(flt.user_id)
                if viewers:
                    kw["viewer_rows"] = np.fromiter(viewers, dtype=np.int64, count=len(viewers))
        conds = []
        for key, bound in (("updated_min", flt.updated_after_us), ("updated_max", flt.updated_before_us)):
            if bound is None:
                continue
            if _I64_MIN <= bound <= _I64_MAX:
                kw[key] = bound
            else:  # outside int64: numpy compares it exactly
                conds.append(updated >= bound if key == "updated_min" else updated <= bound)
        conds += self._rare_conds(flt)
        if not kw and not conds:
            # No private chunk exists now, so none is checked. But a private document
            # committed while this search runs would pass a None mask: bound the
            # admitted ids at the rows that exist now (later ones fall outside the mask).
            return None if flt.all_private else alive.copy()
        mask = np.empty(len(alive), dtype=bool)
        _native.filter_mask(mask, alive, project, type_code, private, author, updated, **kw)
        for cond in conds:
            mask &= cond
        return mask

    def _mask_numpy(self, flt: Filter) -> np.ndarray | None:
        """mask() in numpy alone: the reference for the native kernel (tests, benchmarks)."""
        conds = []
        if flt.project_ids:
            conds.append(np.isin(self.project, np.asarray(flt.project_ids, dtype=np.int64)))
        if flt.types:
            codes = self._type_codes(flt.types)
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
        if flt.updated_after_us is not None:
            conds.append(self.updated >= flt.updated_after_us)
        if flt.updated_before_us is not None:
            conds.append(self.updated <= flt.updated_before_us)
        conds += self._rare_conds(flt)
        if not conds and flt.all_private:
            return None
        mask = self.alive.copy()
        for cond in conds:
            mask &= cond
        return mask

    def _type_codes(self, types) -> list[int]:
        return [self._types[t] for t in types if t in self._types]

    def _rare_conds(self, flt: Filter) -> list[np.ndarray]:
        """Masks of the conditions kept in numpy: metadata (inverted maps) and exclude_ids."""
        conds = []
        for key, value in flt.metadata_equals.items():
            conds.append(self._ids_mask(self._meta_eq.get((key, value), ())))
        for rng in flt.metadata_ranges:
            values = self._meta_num.get(rng.key, {})
            ok = {cid for cid, v in values.items()
                  if (rng.gte is None or v >= rng.gte) and (rng.lte is None or v <= rng.lte)}
            conds.append(self._ids_mask(ok))
        if flt.exclude_ids:
            ords = [self._doc_ords[d] for d in flt.exclude_ids if d in self._doc_ords]
            if ords:
                conds.append(~np.isin(self.doc_ord, np.asarray(ords, dtype=np.int64)))
        return conds


    # ------------------------------------------------------------ persistence
    # Additive: the columns are derived from LMDB documents; a copy saved with the
    # op-log sequence it reflects spares the start-up a scan of every document
    # (ragd.engine.collection loads it and replays the log after that sequence).

    def export_state(self) -> dict:
        """A consistent copy of the state, for encode_state(); cheap (array copies and
        shallow container copies), so it can run under the engine's write lock."""
        return {"arrays": {name: getattr(self, name).copy() for name in _COLUMNS},
                "types": dict(self._types), "doc_ids": list(self.doc_ids),
                "viewers": {u: set(s) for u, s in self._viewers.items() if s},
                "meta_eq": {kv: set(s) for kv, s in self._meta_eq.items() if s},
                "meta_num": {k: dict(d) for k, d in self._meta_num.items() if d},
                "chunk_meta": dict(self._chunk_meta), "private_count": self.private_count}

    @classmethod
    def from_state(cls, state: dict) -> FilterColumns:
        cols = cls()
        arrays = state["arrays"]
        n = len(arrays["alive"])
        if any(len(arrays[name]) != n for name in _COLUMNS):
            raise ValueError("columns of different lengths")
        cols._cap = n
        for name, dtype in zip(_COLUMNS, _DTYPES):
            cols._buf[name] = np.array(arrays[name], dtype=dtype, copy=True)
        cols._views = tuple(cols._buf[name][:n] for name in _COLUMNS)
        cols._types = dict(state["types"])
        cols.doc_ids = list(state["doc_ids"])
        cols._doc_ords = {d: i for i, d in enumerate(cols.doc_ids)}
        cols._viewers = {int(u): set(s) for u, s in state["viewers"].items()}
        cols._meta_eq = {tuple(kv): set(s) for kv, s in state["meta_eq"].items()}
        cols._meta_num = {k: dict(d) for k, d in state["meta_num"].items()}
        cols._chunk_meta = dict(state["chunk_meta"])
        cols.private_count = int(state["private_count"])
        return cols


def encode_state(state: dict) -> tuple[dict, dict[str, np.ndarray]]:
    """export_state() as (JSON-able header, named flat arrays) for a snapshot file."""
    arrays = {f"col.{k}": v for k, v in state["arrays"].items()}
    encoded = [d.encode() for d in state["doc_ids"]]
    arrays["doc_ids"] = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    arrays["doc_id_lens"] = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))

    def ids(s) -> np.ndarray:
        return np.sort(np.fromiter(s, dtype=np.int64, count=len(s)))

    header: dict = {"types": state["types"], "doc_count": len(state["doc_ids"]),
                    "private_count": state["private_count"], "viewers": [], "meta_eq": [], "meta_num": [],
                    "chunk_meta": []}
    for i, (user, s) in enumerate(state["viewers"].items()):
        header["viewers"].append(int(user))
        arrays[f"viewers.{i}"] = ids(s)
    for i, ((key, value), s) in enumerate(state["meta_eq"].items()):
        header["meta_eq"].append([key, value])
        arrays[f"meta_eq.{i}"] = ids(s)
    for i, (key, d) in enumerate(state["meta_num"].items()):
        header["meta_num"].append(key)
        arrays[f"meta_num.{i}.ids"] = np.fromiter(d.keys(), dtype=np.int64, count=len(d))
        arrays[f"meta_num.{i}.values"] = np.fromiter(d.values(), dtype=np.float64, count=len(d))
    # Per-chunk (metadata, viewers), stored once per distinct pair (a few tracker x
    # status combinations, say), with the chunk ids of each pair concatenated.
    by_obj: dict[tuple[int, tuple[int, ...]], list[int]] = {}
    objs: dict[tuple[int, tuple[int, ...]], dict] = {}
    for cid, (md, vw) in state["chunk_meta"].items():
        k = (id(md), tuple(vw))
        ids_ = by_obj.get(k)
        if ids_ is None:
            ids_ = by_obj[k] = []
            objs[k] = md
        ids_.append(cid)
    groups: dict[tuple[str, tuple[int, ...]], list[list[int]]] = {}
    for k, ids_ in by_obj.items():
        groups.setdefault((json.dumps(objs[k], sort_keys=True), k[1]), []).append(ids_)
    lens = []
    for (md_json, vw), parts in groups.items():
        header["chunk_meta"].append([json.loads(md_json), list(vw)])
        lens.append(sum(len(p) for p in parts))
    arrays["chunk_meta.ids"] = np.fromiter((c for parts in groups.values() for p in parts for c in p),
                                           dtype=np.int64, count=sum(lens))
    arrays["chunk_meta.lens"] = np.asarray(lens, dtype=np.int64)
    return header, arrays


def decode_state(header: dict, arrays: dict[str, np.ndarray]) -> dict:
    """The inverse of encode_state (raises KeyError/ValueError on a malformed file)."""
    raw = arrays["doc_ids"].tobytes()
    lens = arrays["doc_id_lens"]
    if len(lens) != header["doc_count"] or int(lens.sum()) != len(raw):
        raise ValueError("document ids do not match their lengths")
    ends = np.cumsum(lens).tolist()
    doc_ids = [raw[a:b].decode() for a, b in zip([0, *ends[:-1]], ends)]
    state = {"arrays": {name: arrays[f"col.{name}"] for name in _COLUMNS}, "types": header["types"],
             "doc_ids": doc_ids, "private_count": header["private_count"],
             "viewers": {u: set(arrays[f"viewers.{i}"].tolist()) for i, u in enumerate(header["viewers"])},
             "meta_eq": {(k, v): set(arrays[f"meta_eq.{i}"].tolist()) for i, (k, v) in enumerate(header["meta_eq"])},
             "meta_num": {k: dict(zip(arrays[f"meta_num.{i}.ids"].tolist(), arrays[f"meta_num.{i}.values"].tolist()))
                          for i, k in enumerate(header["meta_num"])},
             "chunk_meta": {}}
    ids = arrays["chunk_meta.ids"].tolist()
    lens = arrays["chunk_meta.lens"].tolist()
    if len(lens) != len(header["chunk_meta"]) or sum(lens) != len(ids):
        raise ValueError("chunk metadata groups do not match their ids")
    at = 0
    for (md, vw), n in zip(header["chunk_meta"], lens):
        # One (metadata, viewers) tuple shared by the group's chunks, as set_chunks
        # shares a document's metadata dict among its chunks: entries are only read
        # and popped, never changed in place.
        state["chunk_meta"].update(dict.fromkeys(ids[at:at + n], (dict(md), list(vw))))
        at += n
    return state


def _as_number(value: str) -> float | None:
    try:
        num = float(value)
    except ValueError:
        return None
    return num if math.isfinite(num) else None
