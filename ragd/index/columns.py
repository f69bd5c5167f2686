"""Compact in-memory columns of chunk attributes, for evaluating filters.

Columns are numpy arrays indexed by chunk id (ids are dense per collection), so
a filter becomes a few vectorised comparisons producing a boolean mask that the
vector index applies inside its search. Rare, many-valued attributes (private
viewers, metadata, owners past the first two) live in inverted maps: value ->
set of chunk ids.

Two permission models read them (proto ragd.v1.Filter): filters without grants
read `private` (the document is private or a private note), `author` and the
viewers; filters with grants read `key` (the project's code and the type code
packed in 32 bits: the kernel is bound by memory traffic), `gflags` (private,
private note: the bits ragd/native/grant_mask.hpp tests), `tcode` (the tracker's
code), `author` (the note's writer) and the owners (`owner0`, `owner1`, then
`_owners_extra`).
"""
from __future__ import annotations

import itertools
import json
import math
import threading
from collections import OrderedDict

import numpy as np

from ragd import _native
from ragd.domain import Document, Filter, Visibility

_GROW = 1.5
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_COLUMNS = ("alive", "project", "type_code", "private", "author", "updated", "doc_ord",
            "key", "tcode", "owner0", "owner1", "gflags")
_DTYPES = (bool, np.int64, np.int32, bool, np.int64, np.int64, np.int64,
           np.uint32, np.int32, np.int64, np.int64, np.uint8)
# gflags bits (kRowPrivate, kRowPrivateNote in ragd/native/grant_mask.hpp)
FLAG_PRIVATE, FLAG_PRIVATE_NOTE = 1, 4
# The packed key of grant_mask.hpp: project code << 12 | type code, or the overflow value.
_TYPE_BITS, _KEY_OVERFLOW = 12, 0xFFFFFFFF
_MAX_PROJECT_CODE = (1 << (32 - _TYPE_BITS)) - 2


def pack_key(project_code: int, type_code: int) -> int:
    if project_code > _MAX_PROJECT_CODE or type_code >= (1 << _TYPE_BITS):
        return _KEY_OVERFLOW
    return (project_code << _TYPE_BITS) | type_code


class Codes:
    """A dictionary of int64 ids to dense codes, with the ids by code in a numpy array
    that grows in place (amortised) and is published after each new entry is written,
    so a search reading `by_code` without a lock sees whole entries only."""

    def __init__(self, ids=()) -> None:
        self.codes: dict[int, int] = {}
        self._buf = np.zeros(16, dtype=np.int64)
        self.by_code = self._buf[:0]
        for i in ids:
            self.code(int(i))

    def code(self, id_: int) -> int:
        c = self.codes.get(id_)
        if c is None:
            c = len(self.codes)
            if c >= len(self._buf):
                buf = np.zeros(max(16, len(self._buf) * 2), dtype=np.int64)
                buf[:c] = self._buf[:c]
                self._buf = buf
            self._buf[c] = id_
            self.codes[id_] = c
            self.by_code = self._buf[:c + 1]
        return c


def _column(i: int, name: str) -> property:
    return property(lambda self: self._views[i], doc=f"The {name} column (a view; see _views).")


class FilterColumns:
    """Searches read the columns while a writer (under the engine's write lock)
    extends them, without a lock of their own. The seven column views are
    swapped as one tuple (`_views`), so a reader never sees columns of different
    lengths; new rows are written before the swap that makes them visible, and
    a deleted row stops being alive before anything else about it changes, so a
    reader never sees a private chunk half-written (alive but not yet private)."""

    alive, project, type_code, private, author, updated, doc_ord, key, tcode, owner0, owner1, gflags = (
        _column(i, name) for i, name in enumerate(_COLUMNS))

    def __init__(self) -> None:
        self._cap = 0
        self._buf: dict[str, np.ndarray] = {}
        self._views: tuple[np.ndarray, ...] = tuple(np.zeros(0, dtype=d) for d in _DTYPES)
        self._types: dict[str, int] = {}
        self._doc_ords: dict[str, int] = {}
        self.doc_ids: list[str] = []
        self._viewers: dict[int, set[int]] = {}  # user id -> private chunk ids they may see
        # The metadata maps and each chunk's (metadata, viewers), read through _metadata():
        # from_state may build them in a thread after a start (they are most of the
        # columns' load, and only metadata filters and writes need them).
        self._meta: tuple[dict[tuple[str, str], set[int]], dict[str, dict[int, float]],
                          dict[int, tuple[dict[str, str], list[int]]]] = ({}, {}, {})
        self._meta_thread: threading.Thread | None = None
        self._meta_started = False
        self._meta_error: BaseException | None = None
        self._meta_lock = threading.Lock()
        self._project_codes = Codes()  # project id <-> code (the key column packs the code)
        self._tracker_codes = Codes()  # tracker id <-> code (the tcode column)
        self._owners_extra: dict[int, set[int]] = {}  # principal -> chunk ids it owns past owner0/owner1
        self._chunk_owners: dict[int, tuple[int, ...]] = {}  # chunk id -> those extra owners
        self.private_count = 0  # chunks private to a filter without grants (is_private or private_note)
        # Bumped when a mutation of the columns completes (set_chunks, clear_chunks): the
        # masks cached under an older version are never served again (see mask()).
        self.version = 0
        self._masks: OrderedDict[str, tuple[int, np.ndarray]] = OrderedDict()
        self._masks_bytes = 0
        self._masks_lock = threading.Lock()

    @property
    def size(self) -> int:
        return len(self.alive)

    def _metadata(self) -> tuple[dict, dict, dict]:
        """(metadata value -> chunk ids, numeric metadata, chunk -> (metadata, viewers)). A
        reader arriving while from_state's thread still builds them waits for it: a filter
        on metadata or a write, in the first seconds after a start; nothing else waits."""
        thread = self._meta_thread
        if thread is not None:
            self.start_metadata()
            thread.join()
            if self._meta_error is not None:  # never answer a metadata filter from partial maps
                raise RuntimeError(f"filter columns: metadata not loaded ({self._meta_error!r})")
        return self._meta

    def start_metadata(self) -> None:
        """Start building the metadata maps left by from_state (once; a no-op otherwise).
        The collection starts it once its indexes are open: a Python thread building
        them alongside the vector index's load would take the GIL from it."""
        with self._meta_lock:
            if self._meta_thread is not None and not self._meta_started:
                self._meta_started = True
                self._meta_thread.start()

    @property
    def _meta_eq(self) -> dict[tuple[str, str], set[int]]:
        return self._metadata()[0]

    @property
    def _meta_num(self) -> dict[str, dict[int, float]]:
        return self._metadata()[1]

    @property
    def _chunk_meta(self) -> dict[int, tuple[dict[str, str], list[int]]]:
        return self._metadata()[2]

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

    def _fill_codes(self, tracker_ids: np.ndarray) -> None:
        """Benchmarks and tests that fill the columns array by array (set_chunks per
        document would take minutes at 1M rows): derive `key` and `tcode` from `project`,
        `type_code` and the given tracker ids, as set_chunks would."""
        projects, pcodes = np.unique(self.project, return_inverse=True)
        trackers, tcodes = np.unique(np.asarray(tracker_ids, dtype=np.int64), return_inverse=True)
        self._project_codes, self._tracker_codes = Codes(projects), Codes(trackers)
        packable = (pcodes <= _MAX_PROJECT_CODE) & (self.type_code < (1 << _TYPE_BITS))
        packed = (pcodes.astype(np.uint64) << _TYPE_BITS) | self.type_code.astype(np.uint64)
        self.key[:] = np.where(packable, packed, _KEY_OVERFLOW).astype(np.uint32)
        self.tcode[:] = tcodes.astype(np.int32)
        self.version += 1

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
        # Without grants a private note is private too (a filter of ragd 0.1 never shows it
        # to someone it could not show a private document to).
        private = doc.is_private or doc.private_note
        owners = [o for o in dict.fromkeys(doc.owner_ids) if o != 0]  # 0 is nobody
        type_code = self._types.setdefault(doc.type, len(self._types))
        b["project"][ids] = doc.project_id
        b["type_code"][ids] = type_code
        b["key"][ids] = pack_key(self._project_codes.code(doc.project_id), type_code)
        b["tcode"][ids] = self._tracker_codes.code(doc.tracker_id)
        b["private"][ids] = private
        b["author"][ids] = doc.author_id
        b["updated"][ids] = doc.updated_at_us
        b["doc_ord"][ids] = self.doc_ordinal(doc.id)
        b["owner0"][ids] = owners[0] if owners else 0
        b["owner1"][ids] = owners[1] if len(owners) > 1 else 0
        b["gflags"][ids] = (FLAG_PRIVATE if doc.is_private else 0) | (FLAG_PRIVATE_NOTE if doc.private_note else 0)
        if private:  # before the rows show: mask() skips the private check while the count is 0
            self.private_count += len(ids)
            for user in doc.viewer_ids:
                self._viewers.setdefault(user, set()).update(ids.tolist())
        if len(owners) > 2:
            for owner in owners[2:]:
                self._owners_extra.setdefault(owner, set()).update(ids.tolist())
            self._chunk_owners.update(dict.fromkeys(ids.tolist(), tuple(owners[2:])))
        b["alive"][ids] = True
        if fresh:
            self._ensure(n)
        for cid in ids.tolist():
            if doc.metadata or (private and doc.viewer_ids):
                self._chunk_meta[cid] = (doc.metadata, list(doc.viewer_ids) if private else [])
            for key, value in doc.metadata.items():
                self._meta_eq.setdefault((key, value), set()).add(cid)
                num = _as_number(value)
                if num is not None:
                    self._meta_num.setdefault(key, {})[cid] = num
        self.version += 1

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
            for owner in self._chunk_owners.pop(cid, ()):
                self._owners_extra.get(owner, set()).discard(cid)
            entry = self._chunk_meta.pop(cid, None)
            if entry is None:
                continue
            metadata, viewers = entry
            for key, value in metadata.items():
                self._meta_eq.get((key, value), set()).discard(cid)
                self._meta_num.get(key, {}).pop(cid, None)
            for user in viewers:
                self._viewers.get(user, set()).discard(cid)
        self.version += 1

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
    # Masks cached per (filter, columns version): a Redmine user searches with the same
    # filter again and again, and at 10M chunks building the mask (one pass over every
    # row) costs more than the IVF-PQ search itself. Exact: an entry is stored only if
    # no mutation completed while it was computed, and served only while the version
    # it was computed at is current; a mutation in progress (before its bump) may be
    # served the state before it, as a search that started a moment earlier would be.
    MASK_CACHE_BYTES = 64 << 20

    def mask(self, flt: Filter) -> np.ndarray | None:
        """Boolean mask of chunks the filter admits, or None when it admits every chunk
        (no condition, and a viewer who may see every private chunk). The array is
        read-only and may be shared with other searches of the same filter."""
        key = repr(flt)
        version = self.version
        with self._masks_lock:
            hit = self._masks.get(key)
            if hit is not None and hit[0] == version:
                self._masks.move_to_end(key)
                return hit[1]
        mask = self.compute_mask(flt)
        if mask is None:
            return None
        mask.setflags(write=False)
        if self.version == version and mask.nbytes <= self.MASK_CACHE_BYTES:
            with self._masks_lock:
                old = self._masks.pop(key, None)
                if old is not None:
                    self._masks_bytes -= old[1].nbytes
                self._masks[key] = (version, mask)
                self._masks_bytes += mask.nbytes
                while self._masks_bytes > self.MASK_CACHE_BYTES:
                    _, (_, dropped) = self._masks.popitem(last=False)
                    self._masks_bytes -= dropped.nbytes
        return mask

    def compute_mask(self, flt: Filter) -> np.ndarray | None:
        """mask() without the cache: evaluated now, in one native pass."""
        if flt.grants:
            return self._grant_mask(flt)
        # Each column read once: the kernel checks the very arrays it reads.
        alive, project, type_code, private, author, updated = self._views[:6]
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
        conds = _updated_bounds(flt, updated, kw) + self._rare_conds(flt)
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

    # Measured (benchmarks/hot_loops.py): with grants, the one-pass kernel
    # ragd._native.grant_mask (ragd/native/grant_mask.hpp) against the numpy form
    # below, at 100k and 1M rows and 1 / 10 / 200 grants.
    def _grant_mask(self, flt: Filter) -> np.ndarray:
        """mask() for a filter with grants (proto ragd.v1.Grant): one native pass for
        the grants and updated_at, numpy for metadata and exclude_ids."""
        alive, project, type_code, _, author, updated, _, key, tcode, owner0, owner1, gflags = self._views
        grants = flt.grants
        codes = self._types
        kw: dict = {"user_id": flt.user_id if _I64_MIN <= flt.user_id <= _I64_MAX else 0,
                    # read after the columns: a row may be newer than them, never the reverse
                    "project_of_code": self._project_codes.by_code, "tracker_of_code": self._tracker_codes.by_code}
        kw["visibility"] = np.fromiter((int(g.visibility) for g in grants), np.int32, len(grants))
        kw["private_notes"] = np.fromiter((g.private_notes for g in grants), bool, len(grants))
        kw["any_tracker"] = np.fromiter((not g.tracker_ids for g in grants), bool, len(grants))
        for name, lists in (("types", [[codes[t] for t in g.types if t in codes] for g in grants]),
                            ("projects", [g.project_ids for g in grants]),
                            ("trackers", [g.tracker_ids for g in grants])):
            total = sum(map(len, lists))
            kw[name] = np.fromiter(itertools.chain.from_iterable(lists), np.int64, total)
            kw[f"{name}_ends"] = np.cumsum(np.fromiter(map(len, lists), np.int64, len(lists)))
        if flt.project_ids:
            kw["narrow_projects"] = np.asarray(flt.project_ids, dtype=np.int64)
        if flt.types:
            kw["narrow_types"] = np.asarray(self._type_codes(flt.types), dtype=np.int64)
        principals = {p for p in (flt.user_id, *flt.group_ids) if p != 0}
        if principals:
            kw["principals"] = np.fromiter(principals, np.int64, len(principals))
            extra = set().union(*(self._owners_extra.get(p, ()) for p in principals))
            if extra:
                kw["own_rows"] = np.fromiter(extra, np.int64, len(extra))
        conds = _updated_bounds(flt, updated, kw) + self._rare_conds(flt)
        mask = np.empty(len(alive), dtype=bool)
        _native.grant_mask(mask, alive, project, type_code, author, updated, key, tcode, owner0, owner1, gflags, **kw)
        for cond in conds:
            mask &= cond
        return mask

    def _grant_mask_numpy(self, flt: Filter) -> np.ndarray:
        """_grant_mask in numpy alone, grant by grant: the reference for the native kernel."""
        principals = np.asarray([p for p in (flt.user_id, *flt.group_ids) if p != 0], dtype=np.int64)
        own = np.isin(self.owner0, principals) | np.isin(self.owner1, principals)
        extra = set().union(*(self._owners_extra.get(int(p), ()) for p in principals))
        own |= self._ids_mask(extra)
        is_private = (self.gflags & FLAG_PRIVATE) != 0
        note = (self.gflags & FLAG_PRIVATE_NOTE) != 0
        note_author = (self.author == flt.user_id) if flt.user_id else np.zeros(self.size, bool)
        visible = np.zeros(self.size, dtype=bool)
        for g in flt.grants:
            ok = np.isin(self.type_code, np.asarray(self._type_codes(g.types), dtype=np.int32))
            ok &= np.isin(self.project, np.asarray(g.project_ids, dtype=np.int64))
            if g.tracker_ids:
                ok &= np.isin(self._tracker_codes.by_code[self.tcode], np.asarray(g.tracker_ids, dtype=np.int64))
            if g.visibility == Visibility.DEFAULT:
                ok &= ~is_private | own
            elif g.visibility == Visibility.OWN:
                ok &= own
            if not g.private_notes:
                ok &= ~note | note_author
            visible |= ok
        conds = [visible]
        if flt.project_ids:
            conds.append(np.isin(self.project, np.asarray(flt.project_ids, dtype=np.int64)))
        if flt.types:
            conds.append(np.isin(self.type_code, np.asarray(self._type_codes(flt.types), dtype=np.int32)))
        if flt.updated_after_us is not None:
            conds.append(self.updated >= flt.updated_after_us)
        if flt.updated_before_us is not None:
            conds.append(self.updated <= flt.updated_before_us)
        conds += self._rare_conds(flt)
        mask = self.alive.copy()
        for cond in conds:
            mask &= cond
        return mask

    def _mask_numpy(self, flt: Filter) -> np.ndarray | None:
        """mask() in numpy alone: the reference for the native kernel (tests, benchmarks)."""
        if flt.grants:
            return self._grant_mask_numpy(flt)
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
                "chunk_meta": dict(self._chunk_meta), "private_count": self.private_count,
                "owners_extra": {o: set(s) for o, s in self._owners_extra.items() if s},
                "project_of_code": self._project_codes.by_code.copy(),
                "tracker_of_code": self._tracker_codes.by_code.copy()}

    @classmethod
    def from_state(cls, state: dict) -> FilterColumns:
        """Columns from decode_state(): its sets and dicts are taken as they are, not copied
        again (decode_state builds fresh ones; a start held both copies at once). The
        column arrays are copied into buffers of their own (they grow in place)."""
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
        cols._doc_ords = dict(zip(cols.doc_ids, range(len(cols.doc_ids))))
        cols._viewers = {int(u): s for u, s in state["viewers"].items()}
        if "metadata" in state:  # decode_state(lazy=True): built in a thread (start_metadata)
            build = state["metadata"]

            def run() -> None:
                try:
                    cols._meta = build()
                except BaseException as exc:  # noqa: BLE001 - reported to every reader (_metadata)
                    cols._meta_error = exc

            cols._meta_thread = threading.Thread(target=run, name="ragd-columns-metadata", daemon=True)
        else:
            cols._meta = ({tuple(kv): s for kv, s in state["meta_eq"].items()}, dict(state["meta_num"]),
                          state["chunk_meta"])
        cols.private_count = int(state["private_count"])
        cols._project_codes = Codes(state["project_of_code"])
        cols._tracker_codes = Codes(state["tracker_of_code"])
        if len(cols._project_codes.codes) != len(state["project_of_code"]):
            raise ValueError("repeated project codes")
        cols._owners_extra = {int(o): s for o, s in state["owners_extra"].items()}
        for owner, ids in cols._owners_extra.items():  # the per-chunk view, for clear_chunks
            for cid in ids:
                cols._chunk_owners[cid] = (*cols._chunk_owners.get(cid, ()), owner)
        return cols


def encode_state(state: dict) -> tuple[dict, dict[str, np.ndarray]]:
    """export_state() as (JSON-able header, named flat arrays) for a snapshot file."""
    arrays = {f"col.{k}": v for k, v in state["arrays"].items()}
    arrays["project_of_code"] = np.asarray(state["project_of_code"], dtype=np.int64)
    arrays["tracker_of_code"] = np.asarray(state["tracker_of_code"], dtype=np.int64)
    encoded = [d.encode() for d in state["doc_ids"]]
    arrays["doc_ids"] = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    arrays["doc_id_lens"] = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))

    def ids(s) -> np.ndarray:
        return np.sort(np.fromiter(s, dtype=np.int64, count=len(s)))

    header: dict = {"types": state["types"], "doc_count": len(state["doc_ids"]),
                    "private_count": state["private_count"], "viewers": [], "meta_eq": [], "meta_num": [],
                    "chunk_meta": [], "owners_extra": []}
    for i, (user, s) in enumerate(state["viewers"].items()):
        header["viewers"].append(int(user))
        arrays[f"viewers.{i}"] = ids(s)
    for i, (owner, s) in enumerate(state["owners_extra"].items()):
        header["owners_extra"].append(int(owner))
        arrays[f"owners_extra.{i}"] = ids(s)
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


def decode_state(header: dict, arrays: dict[str, np.ndarray], lazy: bool = False) -> dict:
    """The inverse of encode_state (raises KeyError/ValueError on a malformed file).
    lazy: the metadata maps (meta_eq, meta_num, chunk_meta: a Python set or dict entry per
    chunk, ~60% of the load at 1M) are left to state["metadata"], a function building
    them, which from_state runs in a thread; the file's shape is checked here all the same."""
    raw = arrays["doc_ids"].tobytes()
    lens = arrays["doc_id_lens"]
    if len(lens) != header["doc_count"] or int(lens.sum()) != len(raw):
        raise ValueError("document ids do not match their lengths")
    ends = np.cumsum(lens).tolist()
    doc_ids = [raw[a:b].decode() for a, b in zip([0, *ends[:-1]], ends)]
    state = {"arrays": {name: arrays[f"col.{name}"] for name in _COLUMNS}, "types": header["types"],
             "project_of_code": arrays["project_of_code"], "tracker_of_code": arrays["tracker_of_code"],
             "doc_ids": doc_ids, "private_count": header["private_count"],
             "viewers": {u: set(arrays[f"viewers.{i}"].tolist()) for i, u in enumerate(header["viewers"])},
             "owners_extra": {o: set(arrays[f"owners_extra.{i}"].tolist())
                              for i, o in enumerate(header["owners_extra"])}}
    meta_eq = [((k, v), arrays[f"meta_eq.{i}"]) for i, (k, v) in enumerate(header["meta_eq"])]
    meta_num = [(k, arrays[f"meta_num.{i}.ids"], arrays[f"meta_num.{i}.values"])
                for i, k in enumerate(header["meta_num"])]
    if any(len(ids) != len(values) for _, ids, values in meta_num):
        raise ValueError("numeric metadata ids do not match their values")
    chunk_ids, lens = arrays["chunk_meta.ids"], arrays["chunk_meta.lens"]
    groups = header["chunk_meta"]
    if len(lens) != len(groups) or int(lens.sum()) != len(chunk_ids):
        raise ValueError("chunk metadata groups do not match their ids")

    def metadata() -> tuple[dict, dict, dict]:
        chunk_meta: dict = {}
        ids, at = chunk_ids.tolist(), 0
        for (md, vw), n in zip(groups, lens.tolist()):
            # One (metadata, viewers) tuple shared by the group's chunks, as set_chunks
            # shares a document's metadata dict among its chunks: entries are only read
            # and popped, never changed in place.
            chunk_meta.update(dict.fromkeys(ids[at:at + n], (dict(md), list(vw))))
            at += n
        return ({kv: set(a.tolist()) for kv, a in meta_eq},
                {k: dict(zip(i.tolist(), v.tolist())) for k, i, v in meta_num}, chunk_meta)

    if lazy:
        state["metadata"] = metadata
    else:
        state["meta_eq"], state["meta_num"], state["chunk_meta"] = metadata()
    return state


def _updated_bounds(flt: Filter, updated: np.ndarray, kw: dict) -> list[np.ndarray]:
    """The updated_at range for a native kernel (updated_min / updated_max in `kw`),
    or, for a bound outside int64, as a numpy condition (which compares it exactly)."""
    conds = []
    for name, bound in (("updated_min", flt.updated_after_us), ("updated_max", flt.updated_before_us)):
        if bound is None:
            continue
        if _I64_MIN <= bound <= _I64_MAX:
            kw[name] = bound
        else:
            conds.append(updated >= bound if name == "updated_min" else updated <= bound)
    return conds


def _as_number(value: str) -> float | None:
    try:
        num = float(value)
    except ValueError:
        return None
    return num if math.isfinite(num) else None
