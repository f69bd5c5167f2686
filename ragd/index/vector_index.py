"""FAISS vector index of one collection: exact (flat) while small, IVF-PQ once trained.

Vectors are L2-normalised, so inner product is cosine similarity. Ids are the
store's chunk ids (dense per collection, never reused). Filters arrive as a
boolean mask over chunk ids and are applied inside the FAISS search through
IDSelectorBitmap, so a page is full whenever enough permitted chunks exist
(never filtered after the top-k).

Deletes are tombstones: `remove` marks ids dead in a per-id state array and the
search excludes them through the same selector; `compact` (run in the
background by the collection's maintenance thread) removes dead vectors from
FAISS in one batch. IVF uses a hashtable direct map, so removal does not scan
every inverted list.

IVF-PQ candidates (top_k x rerank_factor) are re-ranked with the exact vectors
fetched through `fetch` (LMDB, memory-mapped), so PQ does not cap recall; or,
with settings.rerank_copy, with a resident compact copy (ragd.index.rerank_copy:
fp16 or 8-bit scalar-quantised), which needs no LMDB read per query and re-ranks
in one native pass.

A single-query search is what a gRPC Search runs, one per request thread, so its
Python between the FAISS call and the re-rank is kept to a few attribute reads:
the IVF's list count is read at swap time, and a cached mask's IDSelectorBitmap
is built once with its bitmap.

The index is derived data: `to_bytes` / `from_bytes` (de)serialise it with its
id states for snapshots; a collection rebuilds it from LMDB when missing.
"""
from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import faiss as _faiss
import numpy as np

from ragd.index.rerank_copy import RerankCopy

# faiss's bundled SWIG stubs lack most keyword arguments and constants (sel=,
# nprobe=, DirectMap): it is used untyped.
faiss: Any = _faiss

ABSENT, LIVE, DEAD = 0, 1, 2
_FACTS_KEPT = 16  # selector bitmaps of shared (cached) masks kept per index

# fetch(ids) -> (vectors float32 [n, dim], found bool [n]); missing = deleted since.
Fetch = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class IndexSettings:
    ivf_threshold: int = 50_000      # live vectors before IVF-PQ is trained (at least 256: PQ training)
    retrain_growth: float = 4.0      # retrain when the collection grew this many times since training
    nlist_factor: float = 4.0        # nlist = factor x sqrt(N)
    pq_m: int = 0                    # PQ sub-quantizers; 0 = dim / 8
    train_iters: int = 10            # k-means iterations for the coarse quantizer
    nprobe: int = 0                  # default lists probed; 0 = auto (default_nprobe)
    rerank_factor: int = 0           # candidates re-ranked exactly = k x this; 0 = auto (default_rerank_factor)
    compact_fraction: float = 0.05   # compact when tombstones exceed this share of the index
    gpu: bool = True                 # search a GPU clone when faiss sees a GPU
    rerank_copy: str = ""            # "": re-rank with `fetch` (LMDB); "fp16" / "sq8": a resident copy


def nlist_for(n: int, factor: float) -> int:
    return max(4, int(round(factor * math.sqrt(max(n, 1)))))


def train_size_for(nlist: int) -> int:
    return 39 * nlist


class VectorIndex:
    def __init__(self, dim: int, settings: IndexSettings | None = None, fetch: Fetch | None = None):
        self.dim = dim
        self.settings = settings or IndexSettings()
        self.fetch = fetch
        # IDMap2 keeps id -> vector so removal by chunk id works on the flat index.
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.kind = "flat"
        self.trained_n = 0               # live vectors when the IVF index was trained
        self._state = np.zeros(1024, dtype=np.uint8)
        self._live = 0
        self._dead = 0
        self._version = 0                # bumped on every mutation (caches, GPU clone)
        self._live_bits: tuple[int, np.ndarray] | None = None
        self._gpu = None
        self._gpu_version = -1
        self.copy: RerankCopy | None = None  # the resident re-rank copy (IVF-PQ with settings.rerank_copy)
        self._facts: dict[int, tuple] = {}   # id(read-only mask) -> (mask, version, bits, admitted, selector)
        self._nlist = 0                      # the IVF's lists (0: flat), read at swap time
        self._plain_params: dict[int, Any] = {}  # unfiltered SearchParametersIVF per probe count
        # FAISS indexes are not safe for concurrent add/remove and search, but searches
        # (const) are safe with each other: searches share the lock, writes take it alone.
        self._lock = ReadWriteLock()

    # ------------------------------------------------------------ state

    @property
    def ntotal(self) -> int:
        """Live (searchable) vectors; tombstoned ones are not counted."""
        return self._live

    @property
    def tombstones(self) -> int:
        return self._dead

    @property
    def nlist(self) -> int:
        return self._nlist

    def _ivf(self):
        return faiss.extract_index_ivf(self._index)

    def _grow(self, n: int) -> None:
        if n > len(self._state):
            new = np.zeros(max(n, int(len(self._state) * 1.5) + 1024), dtype=np.uint8)
            new[: len(self._state)] = self._state
            self._state = new

    def live_ids(self) -> np.ndarray:
        with self._lock.read():
            return np.flatnonzero(self._state == LIVE).astype(np.int64)

    def contains(self, ids) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        out = np.zeros(len(ids), dtype=bool)
        inside = ids < len(self._state)
        out[inside] = self._state[ids[inside]] == LIVE
        return out

    # ------------------------------------------------------------ mutation

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        with self._lock.write():
            self._grow(int(ids.max()) + 1)
            fresh = self._state[ids] == ABSENT  # idempotent: replaying an op twice adds nothing
            if not fresh.all():
                ids, vectors = ids[fresh], vectors[fresh]
            if len(ids) == 0:
                return
            self._index.add_with_ids(vectors, np.ascontiguousarray(ids))
            if self.copy is not None:
                self.copy.add(ids, vectors)
            self._state[ids] = LIVE
            self._live += len(ids)
            self._version += 1

    def remove(self, ids) -> None:
        """Tombstone: the ids vanish from searches at once; `compact` frees them later."""
        if len(ids) == 0:
            return
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        with self._lock.write():
            ids = ids[ids < len(self._state)]
            ids = ids[self._state[ids] == LIVE]
            if len(ids) == 0:
                return
            self._state[ids] = DEAD
            self._live -= len(ids)
            self._dead += len(ids)
            self._version += 1

    def needs_compaction(self) -> bool:
        return self._dead > 0 and self._dead >= max(64, self.settings.compact_fraction * (self._live + self._dead))

    def compact(self) -> int:
        """Remove tombstoned vectors from FAISS; returns how many."""
        with self._lock.write():
            dead = np.flatnonzero(self._state == DEAD).astype(np.int64)
            if len(dead) == 0:
                return 0
            if self.kind == "ivfpq":
                # The hashtable direct map removes only through an IDSelectorArray.
                sel = faiss.IDSelectorArray(len(dead), faiss.swig_ptr(dead))
            else:
                sel = faiss.IDSelectorBatch(len(dead), faiss.swig_ptr(dead))
            removed = int(self._index.remove_ids(sel))
            self._state[dead] = ABSENT
            self._dead = 0
            self._version += 1
            return removed

    # ------------------------------------------------------------ IVF-PQ build and swap

    def build_ivfpq(self, sample: np.ndarray, n_expected: int):
        """A trained, empty IVF-PQ index (no lock held: runs in the background)."""
        s = self.settings
        nlist = nlist_for(n_expected, s.nlist_factor)
        nlist = max(4, min(nlist, len(sample) // 39))
        m = s.pq_m or _pq_m_for(self.dim)
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFPQ(quantizer, self.dim, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = s.train_iters
        index.cp.max_points_per_centroid = 64
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        index.set_direct_map_type(faiss.DirectMap.Hashtable)
        return index

    def new_rerank_copy(self, sample: np.ndarray) -> RerankCopy | None:
        """An empty re-rank copy of settings.rerank_copy's kind, trained on the IVF-PQ
        training sample (None: the re-rank reads `fetch`)."""
        kind = self.settings.rerank_copy
        return RerankCopy.trained_on(self.dim, kind, sample) if kind else None

    def swap_in(self, index, states: np.ndarray, trained_n: int, copy: RerankCopy | None = None) -> None:
        """Atomically replace the FAISS index (searches see the old one or the new one),
        with the re-rank copy that holds its vectors (None: re-rank through `fetch`)."""
        live = int((states == LIVE).sum())
        dead = int((states == DEAD).sum())
        with self._lock.write():
            self._index = index
            self.kind = "ivfpq" if isinstance(faiss.downcast_index(index), faiss.IndexIVF) else "flat"
            self._nlist = int(self._ivf().nlist) if self.kind == "ivfpq" else 0
            self._state = states
            self._live, self._dead = live, dead
            self.trained_n = trained_n
            self.copy = copy if self.kind == "ivfpq" else None
            self._version += 1
            self._gpu = None

    def replace_copy(self, expected: RerankCopy | None, copy: RerankCopy) -> bool:
        """Put `copy` in place of the re-rank copy `expected` (one rebuilt from LMDB in the
        background); False when the index changed meanwhile (retrained, reset: it has
        its own copy, or none), and `copy` is dropped."""
        with self._lock.write():
            if self.copy is not expected or self.kind != "ivfpq":
                return False
            self.copy = copy
            return True

    def reset(self) -> None:
        """Back to an empty flat index."""
        self.swap_in(faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim)), np.zeros(1024, np.uint8), 0)

    def needs_training(self) -> bool:
        s = self.settings
        if self.kind == "flat":
            return self._live >= max(s.ivf_threshold, 1)
        return self.trained_n > 0 and self._live >= s.retrain_growth * self.trained_n

    # ------------------------------------------------------------ snapshots

    def to_bytes(self) -> tuple[dict, np.ndarray, np.ndarray]:
        """(header, index bytes, id states); call with writes excluded for a consistent cut."""
        with self._lock.read():
            blob = faiss.serialize_index(self._index)
            states = self._state.copy()
            header = {"kind": self.kind, "dim": self.dim, "trained_n": self.trained_n,
                      "live": self._live, "dead": self._dead}
        return header, blob, states

    def load_bytes(self, header: dict, blob: np.ndarray, states: np.ndarray, copy: RerankCopy | None = None) -> None:
        index = faiss.deserialize_index(blob)
        if index.d != self.dim:
            raise ValueError(f"snapshot is {index.d}-d, collection is {self.dim}-d")
        if index.ntotal != int((states != ABSENT).sum()):
            raise ValueError(f"snapshot holds {index.ntotal} vectors but its id states count "
                             f"{int((states != ABSENT).sum())}")
        ivf = faiss.try_extract_index_ivf(index)
        if ivf is not None and ivf.direct_map.type != faiss.DirectMap.Hashtable:
            ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
        self.swap_in(index, states.copy(), int(header.get("trained_n", 0)), copy)

    # ------------------------------------------------------------ search

    def _selector(self, allowed: np.ndarray | None) -> tuple[Any, int]:
        """(IDSelectorBitmap of the ids that may be returned or None for every id in the
        index, admitted count). The selector holds its bitmap (a numpy array) alive."""
        if allowed is not None:
            facts = self._mask_facts(allowed)
            return facts[2], facts[1]
        if self._dead == 0:
            return None, self._live
        cached = self._live_bits
        if cached is None or cached[0] != self._version:
            cached = (self._version, _bitmap_selector(np.packbits(self._state == LIVE, bitorder="little"), True))
            self._live_bits = cached
        return cached[1], self._live

    def _mask_facts(self, allowed: np.ndarray) -> tuple[np.ndarray, int, Any]:
        """(packed selector bitmap, admitted count, its IDSelectorBitmap) of a mask. For a
        read-only mask (the filter columns' cached ones: their contents never change) they
        are kept, keyed by the array's identity (the entry holds it, so the id is not
        reused) and this index's version (the bitmap excludes tombstones): a repeated
        filter skips two passes over every chunk id."""
        shared = not allowed.flags.writeable
        if shared:
            hit = self._facts.get(id(allowed))
            if hit is not None and hit[0] is allowed and hit[1] == self._version:
                return hit[2], hit[3], hit[4]
        n = min(len(allowed), len(self._state))
        mask = allowed[:n] & (self._state[:n] == LIVE) if self._dead else allowed[:n]
        bits = np.packbits(mask, bitorder="little")
        facts = bits, int(np.count_nonzero(allowed)), _bitmap_selector(bits, shared)
        if shared:
            self._facts[id(allowed)] = (allowed, self._version, *facts)
            for key in list(self._facts)[:-_FACTS_KEPT]:  # concurrent searches may evict the same
                self._facts.pop(key, None)
        return facts

    def admitted(self, allowed: np.ndarray) -> int:
        """Chunk ids the mask admits (its count of True), from the same memo as the search."""
        with self._lock.read():
            return self._mask_facts(allowed)[1]

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None, *,
               nprobe: int = 0, rerank_factor: int = 0, exact: bool = False):
        """Top-k (scores, ids) per query; `allowed` is a bool mask indexed by chunk id.

        nprobe / rerank_factor: IVF-PQ lists probed and candidates re-ranked (k x factor);
        0 = the defaults. exact: probe every list (exhaustive over the codes) before re-ranking.
        Rows are padded with id -1 when fewer than k admitted vectors exist.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        nq = len(queries)
        with self._lock.read():
            if self._live == 0:
                return np.zeros((nq, 0), np.float32), np.zeros((nq, 0), np.int64)
            sel, admitted = self._selector(allowed)
            k = max(1, min(k, self._live))
            if self.kind == "flat":
                params = faiss.SearchParameters(sel=sel) if sel is not None else None
                with _one_omp_thread(nq):
                    return self._index.search(queries, k, params=params)
            copy = self.copy  # the copy of this index (swap_in replaces both at once)
            if copy is not None and not copy.verified.is_set():
                # A mapped copy whose checksum has not passed yet (ragd.index.rerank_copy):
                # re-rank from LMDB's fp32 vectors, never from a row that might be damaged.
                copy = None
            fetch = self.fetch if copy is None else None
            scores, ids = self._search_ivf(queries, k, sel, admitted, nprobe, rerank_factor, exact,
                                           copy is not None or fetch is not None)
        if copy is not None:
            return _rerank_with_copy(copy, queries, ids, k)
        if fetch is None:
            return scores[:, :k], ids[:, :k]
        return self._rerank(fetch, queries, scores, ids, k)

    def _search_ivf(self, queries, k, sel, admitted, nprobe, rerank_factor, exact, rerank: bool):
        s = self.settings
        nlist = self._nlist
        base = nprobe or s.nprobe or default_nprobe(nlist)
        kk = k * max(1, rerank_factor or s.rerank_factor or default_rerank_factor(self._live)) if rerank else k
        kk = min(kk, max(admitted, 1))
        if exact:
            probe = nlist
        else:
            # A selective filter admits few vectors per list: probe more lists
            # (by share admitted ^ -0.4: 6x at 1%) so the page still fills with near hits.
            share = admitted / max(self._live, 1)
            probe = min(nlist, int(math.ceil(base * max(share, 1e-6) ** -0.4)))
        want = min(k, admitted)
        # A cached selector (or none) keeps its search parameters per probe count: FAISS
        # only reads them, and building them is a few SWIG calls per search.
        memo = self._plain_params if sel is None else getattr(sel, "params_by_probe", None)
        while True:
            params = memo.get(probe) if memo is not None else None
            if params is None:
                params = faiss.SearchParametersIVF(sel=sel, nprobe=probe) if sel is not None else \
                    faiss.SearchParametersIVF(nprobe=probe)
                if memo is not None and len(memo) < 8:
                    memo[probe] = params
            index = self._gpu if (sel is None and self._gpu is not None and self._gpu_version == self._version) \
                else self._index
            with _one_omp_thread(len(queries)):
                scores, ids = index.search(queries, kk, params=params)
            # FAISS pads a row's missing results with -1 at its end: a row is short when
            # its want-th entry is missing.
            short = want > 0 and bool((ids[:, want - 1] < 0).any())
            if not short or probe >= nlist:
                return scores, ids
            probe = min(nlist, probe * 4)

    @staticmethod
    def _rerank(fetch: Fetch, queries, scores, ids, k):
        """The re-rank through `fetch` (LMDB): the candidates' vectors, then numpy."""
        nq = len(queries)
        out_s = np.full((nq, k), -np.inf, dtype=np.float32)
        out_i = np.full((nq, k), -1, dtype=np.int64)
        for qi in range(nq):
            cand = ids[qi][ids[qi] >= 0]
            if len(cand) == 0:
                continue
            vecs, found = fetch(cand)
            cand, vecs = cand[found], vecs[found]
            exact = vecs @ queries[qi]
            top = np.argsort(-exact, kind="stable")[:k]
            out_s[qi, : len(top)] = exact[top]
            out_i[qi, : len(top)] = cand[top]
        return out_s, out_i

    # ------------------------------------------------------------ GPU

    def refresh_gpu(self) -> bool:
        """Clone the IVF index to the GPU for unfiltered searches (the CPU index stays the
        mutable one: GPU indexes ignore IDSelector and cannot remove). No-op without a GPU."""
        if not self.settings.gpu or self.kind != "ivfpq" or not hasattr(faiss, "StandardGpuResources"):
            return False
        if faiss.get_num_gpus() <= 0 or self._gpu_version == self._version:
            return False
        try:
            with self._lock.write():
                version = self._version
                if not hasattr(self, "_gpu_res"):
                    self._gpu_res = faiss.StandardGpuResources()
                co = faiss.GpuClonerOptions()
                co.useFloat16LookupTables = True  # needed for many sub-quantizers (shared memory)
                gpu = faiss.index_cpu_to_gpu(self._gpu_res, 0, self._index, co)
                self._gpu, self._gpu_version = gpu, version
        except Exception as exc:  # noqa: BLE001 - the CPU index serves everything
            logging.getLogger("ragd.index").warning("GPU clone failed (%s); searching on the CPU only", exc)
            self.settings.gpu = False
            return False
        return True


def _bitmap_selector(bits: np.ndarray, cached: bool):
    """An IDSelectorBitmap over a packed bitmap, holding the array (FAISS keeps a raw
    pointer to it) for as long as the selector lives; a cached one (reused by later
    searches) also keeps its search parameters per probe count (_search_ivf)."""
    sel = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))
    sel.referenced_bits = bits
    if cached:
        sel.params_by_probe = {}
    return sel


def _rerank_with_copy(copy: RerankCopy, queries: np.ndarray, ids: np.ndarray, k: int):
    """The IVF-PQ candidates re-ranked from the resident copy (one native pass per query);
    rows padded with id -1 (score -inf) when fewer than k candidates have a row."""
    nq = len(queries)
    out_s = np.full((nq, k), -np.inf, dtype=np.float32)
    out_i = np.full((nq, k), -1, dtype=np.int64)
    for qi in range(nq):
        s, i = copy.rerank(queries[qi], ids[qi], k)
        out_s[qi, : len(s)] = s
        out_i[qi, : len(i)] = i
    return out_s, out_i


def _one_omp_thread(nq: int) -> _OneOmpThread | nullcontext:
    """FAISS parallelises a search over its queries: one query gains nothing from an
    OpenMP team, and every concurrent caller starting one oversubscribes the cores.
    The setting is per calling thread (OpenMP's nthreads-var), restored afterwards."""
    return _OneOmpThread() if nq == 1 else nullcontext()


class _OneOmpThread:
    """_one_omp_thread's context manager for one query (a plain object: every search
    takes one)."""

    __slots__ = ("_before",)

    def __enter__(self) -> None:
        self._before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)

    def __exit__(self, *exc) -> None:
        faiss.omp_set_num_threads(self._before)


class ReadWriteLock:
    """Any number of readers at once, or one writer; a waiting writer holds back new
    readers (a stream of searches cannot starve a write)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._read_hold = _ReadHold(self)

    def read(self) -> _ReadHold:
        """`with lock.read():` holds a read share (a plain object, not a generator:
        every search takes it)."""
        return self._read_hold

    def _acquire_read(self) -> None:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1

    def _release_read(self) -> None:
        with self._cond:
            self._readers -= 1
            if self._readers == 0:
                self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class _ReadHold:
    """The context manager of ReadWriteLock.read (state lives in the lock: one per lock)."""

    __slots__ = ("_lock",)

    def __init__(self, lock: ReadWriteLock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        self._lock._acquire_read()  # noqa: SLF001

    def __exit__(self, *exc) -> None:
        self._lock._release_read()  # noqa: SLF001


# Measured with benchmarks/index_scale.py --xlarge (results/index_scale_xlarge*.json,
# benchmarks/README.md): at 1M vectors nlist/32 = 125 lists with re-rank x40 give recall@10
# 0.967; at 10M nlist/32 = 395 lists with x40 give only 0.876 and filtered p99 22-25 ms,
# while 128 lists with x200 give 0.958 (0.988 under a user's grants) at p99 10 ms. Past
# ~1M the true top 10 fall out of the best k x 40 by PQ distance (ten times the vectors
# per list, the same 48-byte codes): recall is bounded by the re-rank depth, not by the
# lists probed, and a deeper re-rank (one native pass over the resident copy) is cheaper
# than a longer PQ scan. So probes stop growing at 128 lists and the depth grows with N.
_MAX_DEFAULT_NPROBE = 128


def default_nprobe(nlist: int) -> int:
    return min(nlist, max(32, min(nlist // 32, _MAX_DEFAULT_NPROBE)))


def default_rerank_factor(live: int) -> int:
    """x40 up to 1M vectors, then growing as (N / 1M)^0.7: x200 at 10M."""
    return 40 if live <= 1_000_000 else min(400, int(round(40 * (live / 1_000_000) ** 0.7)))


def _pq_m_for(dim: int) -> int:
    """Sub-quantizers for 8-bit PQ: about 8 dimensions each, dividing the dimension."""
    for m in (dim // 8, 64, 48, 32, 24, 16, 12, 8, 4, 2, 1):
        if m >= 1 and dim % m == 0 and m <= dim:
            return m
    return 1
