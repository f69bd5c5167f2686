"""The --xlarge profile of benchmarks/index_scale.py: 10M x 384 on one machine.

    python benchmarks/index_scale.py --xlarge                    # 10M (and the 1M re-rank comparison)
    python benchmarks/index_scale.py --xlarge --size 2000000     # a smaller run of the same profile

Vectors: the index benchmark's (real CISI chunk embeddings first, then draws from the
Gaussian mixture fitted to them, L2-normalised, 384-d), generated in batches of 250k
from per-batch seeds: 10M fp32 vectors (15.4 GB) never exist at once. Nothing is
embedded, and LMDB is not written (10M fp32 vectors and their documents would be
~20 GB of disk and hours of writes on the shared machine): the index is ragd's own
VectorIndex (IVF-PQ trained by VectorIndex.build_ivfpq, the trainer's code) with the
resident re-rank copy of ragd.index.rerank_copy (index.rerank_copy = "fp16": sq8 costs
0.01-0.02 recall@10 on these vectors, step 1), and the
permission masks come from ragd's FilterColumns (the engine's native kernels) filled
with one document per 10 chunks over 100 projects (Zipf-skewed), 5% private.

Steps:
  1. at N: train on 39 x nlist vectors, add every batch to IVF-PQ and the re-rank copy,
     exact top-10 kept per batch (ground truth: unfiltered and under each filter);
  2. at N <= --compare-at (1M): the re-rank copy's recall cost on the same index, fp32
     (the exact vectors, what LMDB gives) vs fp16 vs sq8, unfiltered and filtered;
  3. snapshot (index + id states), copy file and columns file written as the daemon
     writes them, then loaded by a fresh process: load time and RSS (the index's load
     time: a whole daemon data dir of 10M documents is not built here, see above);
  4. one-thread latency p50/p99 and recall@10: unfiltered, a 1% filter (one project),
     a Redmine user's grants (DEFAULT visibility over 8 projects), each with the mask
     built per query by the native kernel (uncached) and through the engine's cache;
     a sweep of nprobe x rerank_factor.
"""
from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import faiss  # noqa: E402
from index_scale import pct, rss_mb  # noqa: E402  (this profile's entry point: index_scale.py --xlarge)

from ragd.domain import Filter, Grant, Visibility  # noqa: E402
from ragd.index import snapshot as snapfile  # noqa: E402
from ragd.index.columns import FilterColumns, encode_state  # noqa: E402
from ragd.index.rerank_copy import RerankCopy  # noqa: E402
from ragd.index.vector_index import (  # noqa: E402
    LIVE,
    IndexSettings,
    VectorIndex,
    default_nprobe,
    default_rerank_factor,
    nlist_for,
    train_size_for,
)

DIM = 384
BATCH = 250_000
CHUNKS_PER_DOC = 10
PROJECTS = 100
PRIVATE_SHARE = 0.05
TEMP_PREFIX = "ragd-index-xlarge-"  # the scratch directory made when no --workdir is given


class Stream:
    """Rows [a, b) of the data set, regenerated on demand from per-batch seeds."""

    def __init__(self, mix, real: np.ndarray, n: int):
        self.mix, self.real, self.n = mix, real, n

    def batch(self, i: int) -> np.ndarray:
        a, b = i * BATCH, min((i + 1) * BATCH, self.n)
        out = self.mix.draw(b - a, seed=10_000 + i)
        if a < len(self.real):
            k = min(len(self.real), b) - a
            out[:k] = self.real[a:a + k]
        return out

    def batches(self, upto: int | None = None):
        n = self.n if upto is None else upto
        for i in range((n + BATCH - 1) // BATCH):
            v = self.batch(i)
            a = i * BATCH
            yield a, v[: max(0, min(len(v), n - a))]


def fill_columns(n: int, seed: int = 0) -> FilterColumns:
    """Filter columns of n chunks (10 per document), filled array by array as
    benchmarks/hot_loops.py does (set_chunks per document would take an hour at 10M)."""
    rng = np.random.default_rng(seed)
    cols = FilterColumns()
    cols._ensure(n)  # noqa: SLF001
    ndocs = (n + CHUNKS_PER_DOC - 1) // CHUNKS_PER_DOC
    doc = np.arange(n) // CHUNKS_PER_DOC
    d_project = np.minimum(rng.zipf(1.3, ndocs), PROJECTS) - 1   # a few big projects hold most issues
    d_private = rng.random(ndocs) < PRIVATE_SHARE
    d_author = rng.integers(1, 5000, ndocs)
    d_owner = rng.integers(1, 5000, ndocs)
    cols.alive[:] = True
    cols.project[:] = d_project[doc]
    cols.type_code[:] = 0  # "issue"
    cols.private[:] = d_private[doc]
    cols.author[:] = d_author[doc]
    cols.owner0[:] = d_owner[doc]
    cols.gflags[:] = np.where(d_private[doc], 1, 0).astype(np.uint8)
    cols.updated[:] = 1_600_000_000_000_000 + doc * 1_000_000
    cols.doc_ord[:] = doc
    cols._types = {"issue": 0}  # noqa: SLF001
    cols.doc_ids = [f"issue:{d}" for d in range(ndocs)]
    cols._doc_ords = {d: i for i, d in enumerate(cols.doc_ids)}  # noqa: SLF001
    cols.private_count = int(cols.private.sum())
    cols._fill_codes(rng.integers(1, 4, ndocs)[doc])  # noqa: SLF001
    return cols


def filters(cols: FilterColumns) -> dict[str, Filter]:
    """A filter admitting ~1% (a mid-sized project), and a Redmine user's grants."""
    counts = np.bincount(cols.project, minlength=PROJECTS)
    share = counts / counts.sum()
    one = int(np.argmin(np.abs(share - 0.01)))
    member = [int(p) for p in np.argsort(-counts)[5:13]]  # 8 projects, not the biggest
    return {
        "project_1pct": Filter(project_ids=[one], all_private=True),
        "grants_8_projects": Filter(user_id=17, grants=[Grant(types=["issue"], project_ids=member,
                                                              visibility=Visibility.DEFAULT)]),
    }


def topk_merge(best_s, best_i, scores, ids, k=10):
    s = np.concatenate([best_s, scores], axis=1)
    i = np.concatenate([best_i, ids], axis=1)
    top = np.argpartition(-s, k - 1, axis=1)[:, :k]
    s, i = np.take_along_axis(s, top, 1), np.take_along_axis(i, top, 1)
    o = np.argsort(-s, axis=1, kind="stable")
    return np.take_along_axis(s, o, 1), np.take_along_axis(i, o, 1)


class Truth:
    """Exact top-10 over a stream of batches, unfiltered and per mask."""

    def __init__(self, queries: np.ndarray, masks: dict[str, np.ndarray]):
        self.q = queries
        self.masks = masks
        nq = len(queries)
        self.best = {name: (np.full((nq, 10), -np.inf, np.float32), np.full((nq, 10), -1, np.int64))
                     for name in ["all", *masks]}

    def add(self, a: int, v: np.ndarray) -> None:
        sc = self.q @ v.T
        ids = np.arange(a, a + len(v))
        for name in self.best:
            if name == "all":
                s, i = sc, ids
            else:
                keep = self.masks[name][a:a + len(v)]
                if not keep.any():
                    continue
                s, i = sc[:, keep], ids[keep]
            kk = min(10, s.shape[1])
            top = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
            self.best[name] = topk_merge(*self.best[name], np.take_along_axis(s, top, 1), i[top])

    def ids(self, name: str) -> np.ndarray:
        return self.best[name][1]


def recall(got: list[np.ndarray], truth: np.ndarray) -> float:
    return float(np.mean([len(set(g[:10].tolist()) & set(t[t >= 0][:10].tolist())) / max(1, min(10, (t >= 0).sum()))
                          for g, t in zip(got, truth)]))


# What a search did, independent of the machine's load (wall-clock percentiles on a
# shared machine carry other processes' time slices): the CPU time of the searching
# thread, and FAISS's counters of the lists probed and the PQ codes scored.
_work: dict = {}


def run_queries(idx: VectorIndex, queries: np.ndarray, mask_of, repeat: int = 1, k: int = 10, **params):
    """Per-query ms (best of `repeat`), with the mask built inside the timed call; k hits
    asked (the first 10 kept, for recall@10)."""
    lat, got, mask_ms = [], [], []
    stats = faiss.cvar.indexIVF_stats
    stats.reset()
    cpu0 = time.thread_time()
    for q in queries:
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            m = mask_of() if mask_of is not None else None
            t1 = time.perf_counter()
            ids = idx.search(q[None], k, m, **params)[1][0][:10]
            t2 = time.perf_counter()
            if (t2 - t0) * 1000 < best:
                best = (t2 - t0) * 1000
                mm = (t1 - t0) * 1000
        lat.append(best)
        mask_ms.append(mm)
        got.append(ids)
    searches = max(1, len(queries) * repeat)
    _work.update(cpu_ms_per_query=(time.thread_time() - cpu0) * 1000 / searches,
                 lists_probed=stats.nlist / searches, codes_scored=stats.ndis / searches)
    return lat, got, mask_ms


def summary(lat, got, truth, mask_ms=None) -> dict:
    out = {"p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "mean_ms": float(np.mean(lat)),
           "recall@10": recall(got, truth), **_work}
    if mask_ms is not None:
        out["mask_p50_ms"] = pct(mask_ms, 50)
        out["mask_p99_ms"] = pct(mask_ms, 99)
    return out


def compare_sources(ivf, n: int, nlist: int, queries: np.ndarray, truth: Truth, masks: dict,
                    sources: dict) -> dict:
    """Step 1: the same IVF-PQ, its candidates re-ranked from each source (fp32, fp16, sq8)."""
    print(f"\n=== re-rank sources at {n:,}: {', '.join(sources)} ===", flush=True)
    settings = IndexSettings(ivf_threshold=1)
    states = np.full(n, LIVE, np.uint8)
    faiss.omp_set_num_threads(1)
    res: dict = {"vectors": n, "nlist": nlist, "rows": []}
    for source, (fetch, copy) in sources.items():
        view = VectorIndex(DIM, settings, fetch=fetch)
        view.swap_in(ivf, states, n, copy)
        for flt_name in ("all", *masks):
            m = masks.get(flt_name)
            for nprobe, rf in ((0, 0), (32, 10), (64, 10), (128, 20)):
                lat, got, _ = run_queries(view, queries, (lambda m=m: m) if m is not None else None,
                                          nprobe=nprobe, rerank_factor=rf)
                row = {"rerank_from": source, "filter": flt_name, "nprobe": nprobe or default_nprobe(nlist),
                       "rerank_factor": rf or settings.rerank_factor or default_rerank_factor(n),
                       **summary(lat, got, truth.ids(flt_name))}
                res["rows"].append(row)
                print(f"  {source:5s} {flt_name:18s} nprobe {row['nprobe']:4d} rf {row['rerank_factor']:3d}: "
                      f"recall@10 {row['recall@10']:.4f}  p50 {row['p50_ms']:.2f} ms p99 {row['p99_ms']:.2f} ms",
                      flush=True)
    res["bytes_per_vector"] = {"fp32": DIM * 4, **{k: c.code_size for k, (_, c) in sources.items() if c is not None}}
    cost = {}
    base = [r for r in res["rows"] if r["rerank_from"] == "fp32"]
    for kind in [k for k in sources if k != "fp32"]:
        diffs = [b["recall@10"] - a["recall@10"] for a, b in zip(
            [r for r in res["rows"] if r["rerank_from"] == kind], base)]
        cost[kind] = {"max_recall_loss": float(max(diffs)), "mean_recall_loss": float(np.mean(diffs))}
    res["recall_cost_vs_fp32"] = cost
    print(f"recall cost vs fp32 re-rank: {cost}", flush=True)
    faiss.omp_set_num_threads(os.cpu_count() or 2)
    return res


def load_in_fresh_process(snap: Path, copy_path: Path, cols_path: Path, copy_kind: str) -> dict:
    code = f"""
import sys, json, time, gc
sys.path.insert(0, {str(REPO)!r})
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'): return int(line.split()[1]) * 1024
from pathlib import Path
from ragd.index import snapshot as sf
from ragd.index.columns import FilterColumns, decode_state
from ragd.index.rerank_copy import RerankCopy
from ragd.index.vector_index import IndexSettings, VectorIndex
import numpy as np
gc.collect(); before = rss()
t0 = time.perf_counter()
h, blob, st = sf.read(Path({str(snap)!r}))
# as a start does it (index.rerank_copy_load = map): the header alone; the checksum later
copy, seq = RerankCopy.map(Path({str(copy_path)!r}))
idx = VectorIndex({DIM}, IndexSettings(rerank_copy={copy_kind!r}))
idx.load_bytes(h, blob, st, copy)
del blob, st; gc.collect()
t1 = time.perf_counter()
ch, arrays = sf.read_arrays(Path({str(cols_path)!r}))
cols = FilterColumns.from_state(decode_state(ch, arrays, lazy=True))  # as the daemon: metadata in a thread
del arrays
t2 = time.perf_counter()
cols._metadata()
t2m = time.perf_counter()
gc.collect()
after_load = rss()
assert copy.verify()  # what the daemon runs in the background after the start, here timed alone
t3 = time.perf_counter()
# the copy's pages are read on first use: touch them all (what a warm server holds)
s = int(np.asarray(copy.capture().base_codes[::64]).sum())
print(json.dumps({{"index_load_s": t1 - t0, "columns_load_s": t2 - t1, "load_s": t2 - t0,
                  "copy_verify_s": t3 - t2m, "columns_metadata_s": t2m - t2,
                  "rss_after_load_bytes": after_load - before, "rss_warm_bytes": rss() - before,
                  "vectors": idx.ntotal}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_xlarge(n: int, mix, real: np.ndarray, real_q: np.ndarray, nq: int, workdir: Path,
               compare_at: int = 1_000_000, copy_kind: str = "fp16") -> dict:
    stream = Stream(mix, real, n)
    queries = np.concatenate([real_q, mix.draw(max(nq - len(real_q), 0), seed=n + 1)])[:nq]
    res: dict = {"vectors": n, "dim": DIM, "queries": len(queries), "batch": BATCH}
    # At n <= compare_at the same build also keeps the fp32 vectors and the other copy kind,
    # and step 1 compares the re-rank sources on it (one training, one build).
    compare = bool(compare_at) and n <= compare_at
    fp32: list[np.ndarray] = []

    print(f"\n=== --xlarge: {n:,} vectors x {DIM}-d, streamed in batches of {BATCH:,} ===", flush=True)
    settings = IndexSettings(ivf_threshold=1, rerank_copy=copy_kind)
    res["rerank_copy"] = copy_kind
    idx = VectorIndex(DIM, settings)
    nlist = nlist_for(n, settings.nlist_factor)
    ntrain = train_size_for(nlist)
    t0 = time.perf_counter()
    cols = fill_columns(n)
    flts = filters(cols)
    masks = {name: cols.mask(f) for name, f in flts.items()}
    res["columns_fill_s"] = time.perf_counter() - t0
    res["filter_share"] = {name: float(m.mean()) for name, m in masks.items()}
    print(f"columns filled in {res['columns_fill_s']:.0f} s; filters admit "
          f"{', '.join(f'{k} {v:.2%}' for k, v in res['filter_share'].items())}", flush=True)
    t0 = time.perf_counter()
    sample = np.concatenate([v for _, v in stream.batches(ntrain)])
    ivf = idx.build_ivfpq(sample, n)
    copy = idx.new_rerank_copy(sample)
    other_kind = "sq8" if copy_kind == "fp16" else "fp16"
    other = RerankCopy.trained_on(DIM, other_kind, sample) if compare else None
    del sample
    res["train_s"] = time.perf_counter() - t0
    res["nlist"], res["pq_m"], res["train_vectors"] = nlist, faiss.downcast_index(ivf).pq.M, ntrain
    print(f"IVF-PQ nlist {nlist}, PQ{res['pq_m']}x8: trained on {ntrain:,} in {res['train_s']:.0f} s "
          f"(RSS {rss_mb():.0f} MB)", flush=True)
    truth = Truth(queries, masks)
    t0 = time.perf_counter()
    gen_s = add_s = truth_s = 0.0
    for a, v in stream.batches():
        t1 = time.perf_counter()
        ids = np.arange(a, a + len(v), dtype=np.int64)
        ivf.add_with_ids(v, ids)
        copy.add(ids, v)
        t2 = time.perf_counter()
        if compare:
            other.add(ids, v)
            fp32.append(v)
        truth.add(a, v)
        t3 = time.perf_counter()
        add_s += t2 - t1
        truth_s += t3 - t2
        if (a // BATCH) % 4 == 3:
            el = time.perf_counter() - t0
            print(f"  {a + len(v):,} added ({el:.0f} s; index add {add_s:.0f} s, exact truth {truth_s:.0f} s; "
                  f"RSS {rss_mb():.0f} MB; ETA {el / (a + len(v)) * (n - a - len(v)):.0f} s)", flush=True)
    gen_s = time.perf_counter() - t0 - add_s - truth_s
    res["build_s"] = add_s
    res["generate_s"] = gen_s
    res["exact_truth_s"] = truth_s
    if compare:
        vecs = np.concatenate(fp32)
        del fp32[:]
        res["rerank_copies"] = compare_sources(
            ivf, n, nlist, queries, truth, masks,
            {"fp32": (lambda q_ids: (vecs[q_ids], np.ones(len(q_ids), bool)), None),
             copy_kind: (None, copy), other_kind: (None, other)})
        del vecs, other
        gc.collect()
        _save_partial(res, workdir)
    idx.swap_in(ivf, np.full(n, LIVE, np.uint8), n, copy)
    print(f"built in {add_s:.0f} s (+ vector generation {gen_s:.0f} s, exact ground truth {truth_s:.0f} s); "
          f"RSS {rss_mb():.0f} MB", flush=True)

    # ---- snapshot files as the daemon writes them, then a fresh process loads them
    snap, copy_path, cols_path = workdir / "xl.snap", workdir / "xl.rerank", workdir / "xl.cols"
    t0 = time.perf_counter()
    header, blob, states = idx.to_bytes()
    res["snapshot_bytes"] = snapfile.write(snap, {**header, "seq": 0, "collection": 1}, blob, states)
    del blob, states
    gc.collect()
    res["snapshot_write_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    res["rerank_copy_bytes"] = copy.save(copy_path, 0)
    res["rerank_copy_write_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    h, arrays = encode_state(cols.export_state())
    res["columns_bytes"] = snapfile.write_arrays(cols_path, {**h, "seq": 0}, arrays)
    del arrays
    res["columns_write_s"] = time.perf_counter() - t0
    print(f"files: index {res['snapshot_bytes'] / 1e6:.0f} MB ({res['snapshot_write_s']:.0f} s), {copy_kind} copy "
          f"{res['rerank_copy_bytes'] / 1e6:.0f} MB ({res['rerank_copy_write_s']:.0f} s), columns "
          f"{res['columns_bytes'] / 1e6:.0f} MB ({res['columns_write_s']:.0f} s)", flush=True)
    _save_partial(res, workdir)
    return measure(res, idx, cols, flts, masks, truth, queries, workdir, (snap, copy_path, cols_path))


def reload(n: int, mix, real: np.ndarray, real_q: np.ndarray, nq: int, workdir: Path) -> dict:
    """--reuse: the index, copy and columns files a build left in the workdir (with its partial
    results), loaded back; the exact ground truth recomputed from the regenerated vectors."""
    res = json.loads((workdir / "xlarge-partial.json").read_text())
    if res["vectors"] != n:
        raise SystemExit(f"{workdir} holds a build of {res['vectors']:,} vectors, not {n:,}")
    paths = workdir / "xl.snap", workdir / "xl.rerank", workdir / "xl.cols"
    print(f"\n=== --xlarge --reuse: {n:,} vectors from {workdir} ===", flush=True)
    queries = np.concatenate([real_q, mix.draw(max(nq - len(real_q), 0), seed=n + 1)])[:nq]
    idx = VectorIndex(DIM, IndexSettings(ivf_threshold=1, rerank_copy=res["rerank_copy"]))
    h, blob, states = snapfile.read(paths[0])
    copy, _ = RerankCopy.load(paths[1])
    idx.load_bytes(h, blob, states, copy)
    del blob, states
    cols = fill_columns(n)  # the same columns (deterministic) as the build's
    flts = filters(cols)
    masks = {name: cols.mask(f) for name, f in flts.items()}
    truth = Truth(queries, masks)
    t0 = time.perf_counter()
    for a, v in Stream(mix, real, n).batches():
        truth.add(a, v)
    print(f"exact ground truth recomputed in {time.perf_counter() - t0:.0f} s", flush=True)
    res["reused_build"] = True
    return measure(res, idx, cols, flts, masks, truth, queries, workdir, paths)


def measure(res: dict, idx: VectorIndex, cols: FilterColumns, flts: dict, masks: dict, truth: Truth,
            queries: np.ndarray, workdir: Path, paths: tuple[Path, Path, Path]) -> dict:
    """Steps 3 and 4: load the files in a fresh process; latency and recall, one thread."""
    n, nlist, copy_kind = res["vectors"], res["nlist"], res["rerank_copy"]
    settings = idx.settings
    snap, copy_path, cols_path = paths
    res["load"] = load_in_fresh_process(snap, copy_path, cols_path, copy_kind)
    ld = res["load"]
    res["bytes_per_vector"] = {
        "ram_after_load": ld["rss_after_load_bytes"] / n, "ram_warm": ld["rss_warm_bytes"] / n,
        "disk": (res["snapshot_bytes"] + res["rerank_copy_bytes"] + res["columns_bytes"]) / n,
        "disk_index": res["snapshot_bytes"] / n, "disk_rerank_copy": res["rerank_copy_bytes"] / n,
        "disk_columns": res["columns_bytes"] / n}
    print(f"load in a fresh process: {ld['load_s']:.1f} s (index + mapped copy {ld['index_load_s']:.1f} s, "
          f"columns {ld['columns_load_s']:.1f} s; in the background: the copy's check "
          f"{ld.get('copy_verify_s', 0):.1f} s, the columns' metadata {ld.get('columns_metadata_s', 0):.1f} s); "
          f"RAM {res['bytes_per_vector']['ram_after_load']:.0f} B/vector after "
          f"load, {res['bytes_per_vector']['ram_warm']:.0f} warm; disk {res['bytes_per_vector']['disk']:.0f} "
          f"B/vector", flush=True)
    _save_partial(res, workdir)

    # ---- latency and recall, one thread
    faiss.omp_set_num_threads(1)
    nl = default_nprobe(nlist)
    res["default"] = {"nprobe": nl, "rerank_factor": settings.rerank_factor or default_rerank_factor(n)}
    lat, got, _ = run_queries(idx, queries, None)
    lat3, _, _ = run_queries(idx, queries, None, repeat=3)
    res["unfiltered"] = {**summary(lat, got, truth.ids("all")), "best_of_3_p50_ms": pct(lat3, 50),
                         "best_of_3_p99_ms": pct(lat3, 99)}
    print(f"unfiltered: {res['unfiltered']}", flush=True)
    for name, flt in flts.items():
        row: dict = {}
        # mask_uncached: the native kernel over every row, per query (ragd before the cache);
        # mask_cached: the engine's FilterColumns.mask, answered from its cache after the first query.
        for label, mask_of in (("mask_uncached", lambda flt=flt: cols.compute_mask(flt)),
                               ("mask_cached", lambda flt=flt: cols.mask(flt))):
            lat, got, mm = run_queries(idx, queries, mask_of)
            lat3, _, _ = run_queries(idx, queries, mask_of, repeat=3)
            row[label] = {**summary(lat, got, truth.ids(name), mm), "best_of_3_p50_ms": pct(lat3, 50),
                          "best_of_3_p99_ms": pct(lat3, 99)}
            print(f"{name} ({label}): {row[label]}", flush=True)
        row["full_pages"] = float(np.mean([(g >= 0).sum() == 10 for g in got]))
        res[f"filtered_{name}"] = row
    _save_partial(res, workdir)
    # The plugin's page: 50 hits at the defaults (50 x the re-rank factor candidates re-ranked);
    # recall@10 of the page's first 10.
    page: dict = {}
    for name in ("all", "grants_8_projects"):
        m = masks.get(name)
        lat, got, _ = run_queries(idx, queries[:200], (lambda m=m: m) if m is not None else None, k=50)
        page[name] = summary(lat, got, truth.ids(name)[:200])
        print(f"50 hits, {name}: recall@10 {page[name]['recall@10']:.3f} p50 {page[name]['p50_ms']:.2f} "
              f"p99 {page[name]['p99_ms']:.2f} ms, {page[name]['cpu_ms_per_query']:.2f} ms CPU", flush=True)
    res["page_50"] = page
    sweep = []
    for nprobe in (32, 64, 128, 256):
        for rf in (10, 40, 100, 200):  # at 10M, rf 40 tops out near 0.89 unfiltered
            lat, got, _ = run_queries(idx, queries[:200], None, nprobe=nprobe, rerank_factor=rf)
            row = {"nprobe": nprobe, "rerank_factor": rf, **summary(lat, got, truth.ids("all")[:200])}
            for key, name in (("grants", "grants_8_projects"), ("project_1pct", "project_1pct")):
                m = masks[name]
                lat, got, _ = run_queries(idx, queries[:200], lambda m=m: m, nprobe=nprobe, rerank_factor=rf)
                row[key] = summary(lat, got, truth.ids(name)[:200])
            sweep.append(row)
            print(f"  sweep nprobe {nprobe} rf {rf}: recall {row['recall@10']:.3f} p50 {row['p50_ms']:.2f} "
                  f"p99 {row['p99_ms']:.2f}; grants recall {row['grants']['recall@10']:.3f} p99 "
                  f"{row['grants']['p99_ms']:.2f}; 1% recall {row['project_1pct']['recall@10']:.3f} p99 "
                  f"{row['project_1pct']['p99_ms']:.2f}", flush=True)
    res["sweep"] = sweep
    faiss.omp_set_num_threads(os.cpu_count() or 2)
    res["process_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if workdir.name.startswith(TEMP_PREFIX):  # a --workdir the caller named keeps the build for --reuse
        for p in (snap, copy_path, cols_path):
            p.unlink(missing_ok=True)
    return res


def _save_partial(res: dict, workdir: Path) -> None:
    (workdir / "xlarge-partial.json").write_text(json.dumps(res, indent=1))


def plot(results: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    ax = axes[0]
    for r in results:
        sw = r.get("sweep", [])
        ax.plot([s["p50_ms"] for s in sw], [s["recall@10"] for s in sw], "o", label=f"{r['vectors']:,} unfiltered")
        ax.plot([s["grants"]["p50_ms"] for s in sw], [s["grants"]["recall@10"] for s in sw], "x",
                label=f"{r['vectors']:,} grants (8 projects)")
        if "unfiltered" in r:
            ax.plot([r["unfiltered"]["p50_ms"]], [r["unfiltered"]["recall@10"]], "k*", markersize=12)
    ax.axhline(0.95, color="grey", lw=0.8)
    ax.set_xlabel("p50 ms (1 thread)"); ax.set_ylabel("recall@10 vs exact"); ax.set_title("Recall (star: default)")
    ax.legend(fontsize=7)
    ax = axes[1]
    for r in results:
        labels, p50, p99 = [], [], []
        for key, lab in (("unfiltered", "unfiltered"),):
            if key in r:
                labels.append(lab); p50.append(r[key]["p50_ms"]); p99.append(r[key]["p99_ms"])
        for key in [k for k in r if k.startswith("filtered_")]:
            for how in [h for h in ("mask_uncached", "mask_per_query", "mask_cached") if h in r[key]]:
                labels.append(f"{key[9:]}\n{how.replace('mask_', 'mask ')}")
                p50.append(r[key][how]["p50_ms"]); p99.append(r[key][how]["p99_ms"])
        x = np.arange(len(labels))
        ax.bar(x - 0.2, p50, 0.4, label="p50"); ax.bar(x + 0.2, p99, 0.4, label="p99")
        ax.set_xticks(x, labels, fontsize=6)
    ax.axhline(20, color="grey", lw=0.8)
    ax.set_ylabel("ms per query (1 thread)"); ax.set_title(f"Index search at {results[-1]['vectors']:,}")
    ax.legend(fontsize=7)
    ax = axes[2]
    rc = next((r["rerank_copies"] for r in results if "rerank_copies" in r), None)
    if rc:
        for src in ("fp32", "fp16", "sq8"):
            rows = [x for x in rc["rows"] if x["rerank_from"] == src]
            ax.plot(range(len(rows)), [x["recall@10"] for x in rows], "o-", label=f"re-rank from {src}")
        ax.set_xticks(range(len(rows)), [f"{x['filter'][:8]}\nnp{x['nprobe']}/rf{x['rerank_factor']}" for x in rows],
                      fontsize=5)
        ax.set_ylabel("recall@10"); ax.set_title(f"Re-rank copy recall cost at {rc['vectors']:,}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
