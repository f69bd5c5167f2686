"""Vector index at scale: IVF-PQ + exact re-rank (ragd's index, through its real
lifecycle code on a real LMDB store) against exact flat search (the peer).

    python benchmarks/index_scale.py                      # 100k and 1M -> benchmarks/results/index_scale.{json,png}
    python benchmarks/index_scale.py --size 20000         # quick look

Vectors: 384-d all-MiniLM-L6-v2 embeddings. The real part: the CISI abstracts,
chunked as ragd chunks them (500 characters, overlap 50) and embedded with
ragd's OnnxEmbedder (cached under var/bench-cache/); they are the first vectors
of every data set. The rest are drawn to match them: a Gaussian mixture fitted
to the real sample (k-means centres; the real within-cluster residual covariance,
full rank, scaled per cluster), L2-normalised. Queries: the 112 real CISI
queries plus draws from the same mixture.

Per size, one process, same vectors, same queries:
  - build: write to LMDB (one synced transaction per 50k vectors); start-up
    rebuild of the flat index from LMDB; IVF-PQ training on the sample and build
    from LMDB (IndexKeeper.train_and_swap, the code the daemon runs);
  - snapshot write, and load on restart (IndexKeeper.open: snapshot + replay);
    filter columns rebuilt from LMDB documents (FilterColumns, as Collection.load);
  - memory: RSS growth of a fresh subprocess loading the snapshot, per vector
    (the index alone), plus the LMDB vector bytes the re-rank reads (page cache);
  - recall@10 against exact search, latency p50/p99 per single query: IVF-PQ
    search alone, IVF-PQ + re-rank (ragd's default search), exact flat search;
    a sweep of nprobe x rerank_factor;
  - a filter admitting 1% of documents (one project of 100): latency ratio to
    unfiltered, full pages, recall against exact filtered search.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import faiss  # noqa: E402

from ragd.domain import Document, Filter  # noqa: E402
from ragd.index.columns import FilterColumns  # noqa: E402
from ragd.index.lifecycle import IndexContext, IndexKeeper  # noqa: E402
from ragd.index.vector_index import IndexSettings, VectorIndex, default_nprobe  # noqa: E402
from ragd.store.lmdb_store import Store  # noqa: E402

CACHE = REPO / "var" / "bench-cache"
RESULTS = REPO / "benchmarks" / "results"
MODEL = REPO / "var" / "test-cache" / "models" / "all-MiniLM-L6-v2"
DIM = 384
CHUNKS_PER_DOC = 10
PROJECTS = 100


def real_vectors() -> tuple[np.ndarray, np.ndarray]:
    """(CISI chunk vectors, CISI query vectors), embedded once and cached."""
    path = CACHE / "cisi_minilm.npz"
    if path.exists():
        z = np.load(path)
        return z["chunks"], z["queries"]
    import cisi
    from ragd.embed.onnx_embedder import OnnxEmbedder
    from ragd.engine.ingest import embedding_text
    emb = OnnxEmbedder(MODEL, device="cpu")
    texts = []
    for d in cisi.documents():
        t = d["text"]
        for s in range(0, max(len(t) - 50, 1), 450):
            texts.append(embedding_text(d["title"], t[s:s + 500]))
    t0 = time.perf_counter()
    chunks = emb.embed(texts).vectors.astype(np.float32)
    queries = emb.embed(list(cisi.queries().values())).vectors.astype(np.float32)
    print(f"embedded {len(texts)} CISI chunks + {len(queries)} queries in {time.perf_counter() - t0:.0f} s")
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, chunks=chunks, queries=queries)
    return chunks, queries


class Mixture:
    """Gaussian mixture fitted to the real vectors; draws are L2-normalised."""

    def __init__(self, real: np.ndarray, k: int = 64, seed: int = 0):
        km = faiss.Kmeans(real.shape[1], k, niter=20, seed=seed, spherical=True)
        km.train(real)
        _, assign = km.index.search(real, 1)
        assign = assign[:, 0]
        self.centres = km.centroids.copy()
        resid = real - self.centres[assign]
        cov = np.cov(resid.T) + 1e-6 * np.eye(real.shape[1])
        self.chol = np.linalg.cholesky(cov).astype(np.float32)
        overall = float(np.mean(np.sum(resid ** 2, axis=1)))
        counts = np.bincount(assign, minlength=k)
        self.weights = counts / counts.sum()
        self.scale = np.ones(k, np.float32)
        for c in range(k):
            if counts[c] >= 5:
                self.scale[c] = np.sqrt(np.mean(np.sum(resid[assign == c] ** 2, axis=1)) / overall)

    def draw(self, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        comp = rng.choice(len(self.centres), size=n, p=self.weights)
        out = np.empty((n, self.centres.shape[1]), np.float32)
        for s in range(0, n, 100_000):
            c = comp[s:s + 100_000]
            z = rng.standard_normal((len(c), self.centres.shape[1]), dtype=np.float32)
            x = self.centres[c] + (z @ self.chol.T) * self.scale[c, None]
            out[s:s + len(c)] = x / np.linalg.norm(x, axis=1, keepdims=True)
        return out


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pct(xs, p) -> float:
    return float(np.percentile(np.asarray(xs), p))


def timed_queries(fn, queries, repeat: int = 1) -> tuple[list[float], list[np.ndarray]]:
    """Per-query latency in ms; with repeat > 1 the best of `repeat` runs of each query
    (the machine is shared: the minimum strips other processes' time slices)."""
    lat, out = [], []
    for q in queries:
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            ids = fn(q)
            best = min(best, (time.perf_counter() - t0) * 1000)
        lat.append(best)
        out.append(ids)
    return lat, out


def recall(got: list[np.ndarray], truth: np.ndarray, k: int = 10) -> float:
    return float(np.mean([len(set(g[:k].tolist()) & set(t[:k].tolist())) / k for g, t in zip(got, truth)]))


def index_rss_subprocess(snap: Path) -> dict:
    """RSS growth of a fresh process loading the snapshot (the index alone)."""
    code = f"""
import sys, json, gc
sys.path.insert(0, {str(REPO)!r})
from ragd.index import snapshot as sf
from ragd.index.vector_index import VectorIndex
import numpy as np
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'): return int(line.split()[1]) * 1024
idx = VectorIndex({DIM})
gc.collect(); before = rss()
h, blob, st = sf.read(__import__('pathlib').Path({str(snap)!r}))
idx.load_bytes(h, blob, st)
del blob, st, h; gc.collect()
print(json.dumps({{"bytes": rss() - before, "vectors": idx.ntotal}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_size(n: int, mix: Mixture, real: np.ndarray, real_q: np.ndarray, nq: int, workdir: Path) -> dict:
    print(f"\n=== {n:,} vectors x {DIM}-d ===", flush=True)
    res: dict = {"vectors": n, "dim": DIM}
    nreal = min(len(real), n)
    vecs = np.concatenate([real[:nreal], mix.draw(n - nreal, seed=n)]) if n > nreal else real[:n].copy()
    queries = np.concatenate([real_q, mix.draw(max(nq - len(real_q), 0), seed=n + 1)])[:nq]
    res["real_vectors"] = nreal
    res["queries"] = {"total": len(queries), "real": min(len(real_q), nq)}

    # ---- LMDB (source of truth): documents of 10 chunks, 100 projects
    store_dir = workdir / f"store-{n}"
    shutil.rmtree(store_dir, ignore_errors=True)
    store = Store(store_dir, 64 << 30)
    t0 = time.perf_counter()
    batch = 50_000
    proj = np.arange(n) // CHUNKS_PER_DOC % PROJECTS
    for s in range(0, n, batch):
        with store.write() as w:
            meta = w.collection("bench", DIM, "all-MiniLM-L6-v2", create=True)
            for d0 in range(s, min(s + batch, n), CHUNKS_PER_DOC):
                part = vecs[d0:min(d0 + CHUNKS_PER_DOC, n)]
                doc_id = f"issue:{d0 // CHUNKS_PER_DOC}"
                cids = w.add_chunks(meta, doc_id, [(0, 0)] * len(part), [""] * len(part), part)
                w.put_doc(meta, doc_id, {"v": 1, "ti": "", "tx": "", "p": int(proj[d0]), "ty": "issue",
                                         "pr": False, "a": 1, "u": 0, "m": {}, "vw": [], "c": cids})
                meta.docs += 1
    res["lmdb_write_s"] = time.perf_counter() - t0
    res["lmdb_bytes"] = store.disk_bytes()
    print(f"LMDB: wrote {n:,} vectors in {res['lmdb_write_s']:.1f} s ({res['lmdb_bytes'] / 1e9:.2f} GB)", flush=True)
    coll_id = store.collections()["bench"].id

    settings = IndexSettings(ivf_threshold=1)  # always IVF-PQ here; defaults otherwise
    ctx = IndexContext(settings=settings, index_dir=workdir / f"index-{n}", write_lock=threading.Lock(),
                       background=False)
    shutil.rmtree(ctx.index_dir, ignore_errors=True)

    # ---- start-up without a snapshot: flat index rebuilt from LMDB
    keeper = IndexKeeper(VectorIndex(DIM, settings), store, coll_id, "bench", ctx)
    t0 = time.perf_counter()
    keeper.open()
    res["flat_rebuild_from_lmdb_s"] = time.perf_counter() - t0
    flat_index = keeper.index._index  # the exact peer: IndexIDMap2(IndexFlatIP), same vectors

    # ---- IVF-PQ: train on a sample, build from LMDB, swap (snapshot written after the swap)
    ivf = VectorIndex(DIM, settings)
    keeper2 = IndexKeeper(ivf, store, coll_id, "bench", ctx)
    ivf.swap_in(flat_index, keeper.index._state.copy(), 0)
    keeper2.snapshot = lambda: 0  # time the snapshot separately below
    t0 = time.perf_counter()
    keeper2.train_and_swap()
    res["train_s"] = keeper2.last_train["train_s"]
    res["build_s"] = keeper2.last_train["build_s"]
    res["swap_ms"] = keeper2.last_train["swap_ms"]
    res["nlist"] = ivf.nlist
    res["pq_m"] = faiss.downcast_index(ivf._index).pq.M
    print(f"IVF-PQ nlist {ivf.nlist}, PQ{res['pq_m']}x8: trained in {res['train_s']:.1f} s, "
          f"built in {res['build_s']:.1f} s, swap {res['swap_ms']:.0f} ms", flush=True)
    del keeper2.snapshot
    t0 = time.perf_counter()
    res["snapshot_bytes"] = keeper2.snapshot()
    res["snapshot_write_s"] = time.perf_counter() - t0

    # ---- restart: snapshot load + replay, filter columns from LMDB documents
    loaded = VectorIndex(DIM, settings)
    k3 = IndexKeeper(loaded, store, coll_id, "bench", ctx)
    t0 = time.perf_counter()
    k3.open()
    res["snapshot_load_s"] = time.perf_counter() - t0
    assert loaded.ntotal == n and loaded.kind == "ivfpq"
    t0 = time.perf_counter()
    columns = FilterColumns()
    from ragd.engine import records
    for doc_id, rec in store.iter_docs(coll_id):
        columns.set_chunks(rec["c"], records.from_record(doc_id, {**rec, "tx": ""}, with_text=False))
    res["columns_rebuild_s"] = time.perf_counter() - t0
    print(f"restart: snapshot ({res['snapshot_bytes'] / 1e6:.0f} MB) loaded in {res['snapshot_load_s']:.2f} s, "
          f"filter columns rebuilt from LMDB in {res['columns_rebuild_s']:.2f} s", flush=True)
    res["index_rss"] = index_rss_subprocess(k3.path)
    res["index_bytes_per_vector"] = res["index_rss"]["bytes"] / n
    res["lmdb_vector_bytes_per_vector"] = DIM * 4
    print(f"memory: index {res['index_bytes_per_vector']:.0f} B/vector (RSS of a process loading it); "
          f"re-rank reads exact vectors from LMDB pages ({DIM * 4} B/vector on disk / page cache)", flush=True)
    ivf = loaded
    del keeper, k3

    # ---- ground truth: exact search (flat peer, batched)
    t0 = time.perf_counter()
    _, truth = flat_index.search(queries, 10)
    res["exact_batch_ms_per_query"] = (time.perf_counter() - t0) * 1000 / len(queries)

    faiss.omp_set_num_threads(1)  # per-query latency: one core per search, like a loaded server
    lat_flat, got_flat = timed_queries(lambda q: flat_index.search(q[None], 10)[1][0], queries[:200])
    ivf_fetch = ivf.fetch
    ivf.fetch = None
    lat_pq, got_pq = timed_queries(lambda q: ivf.search(q[None], 10)[1][0], queries)
    lat_pq3, _ = timed_queries(lambda q: ivf.search(q[None], 10)[1][0], queries, repeat=3)
    ivf.fetch = ivf_fetch
    lat_def, got_def = timed_queries(lambda q: ivf.search(q[None], 10)[1][0], queries)
    lat_def3, _ = timed_queries(lambda q: ivf.search(q[None], 10)[1][0], queries, repeat=3)
    res["exact"] = {"p50_ms": pct(lat_flat, 50), "p99_ms": pct(lat_flat, 99), "recall@10": recall(got_flat, truth),
                    "bytes_per_vector": DIM * 4 + 16}
    res["ivfpq_only"] = {"p50_ms": pct(lat_pq, 50), "p99_ms": pct(lat_pq, 99), "recall@10": recall(got_pq, truth),
                         "best_of_3_p50_ms": pct(lat_pq3, 50), "best_of_3_p99_ms": pct(lat_pq3, 99)}
    res["default"] = {"p50_ms": pct(lat_def, 50), "p99_ms": pct(lat_def, 99), "recall@10": recall(got_def, truth),
                      "best_of_3_p50_ms": pct(lat_def3, 50), "best_of_3_p99_ms": pct(lat_def3, 99),
                      "nprobe": settings.nprobe or default_nprobe(ivf.nlist), "rerank_factor": settings.rerank_factor}
    print(f"exact flat:       p50 {res['exact']['p50_ms']:.2f} ms  p99 {res['exact']['p99_ms']:.2f} ms", flush=True)
    print(f"IVF-PQ alone:     p50 {res['ivfpq_only']['p50_ms']:.2f} ms  p99 {res['ivfpq_only']['p99_ms']:.2f} ms  "
          f"(best of 3: {res['ivfpq_only']['best_of_3_p50_ms']:.2f}/{res['ivfpq_only']['best_of_3_p99_ms']:.2f})  "
          f"recall@10 {res['ivfpq_only']['recall@10']:.3f}", flush=True)
    print(f"IVF-PQ + rerank:  p50 {res['default']['p50_ms']:.2f} ms  p99 {res['default']['p99_ms']:.2f} ms  "
          f"(best of 3: {res['default']['best_of_3_p50_ms']:.2f}/{res['default']['best_of_3_p99_ms']:.2f})  "
          f"recall@10 {res['default']['recall@10']:.3f} (nprobe {res['default']['nprobe']}, "
          f"rerank x{settings.rerank_factor})", flush=True)

    sweep = []
    for nprobe in (32, 64, 128):
        for rf in (10, 20, 40, 80):
            lat, got = timed_queries(lambda q: ivf.search(q[None], 10, nprobe=nprobe, rerank_factor=rf)[1][0],
                                     queries)
            sweep.append({"nprobe": nprobe, "rerank_factor": rf, "recall@10": recall(got, truth),
                          "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99)})
    res["sweep"] = sweep
    print("sweep: " + ", ".join(f"np{s['nprobe']}/rf{s['rerank_factor']}: {s['recall@10']:.3f} "
                                f"@{s['p50_ms']:.2f}/{s['p99_ms']:.2f}ms" for s in sweep), flush=True)

    # ---- a filter admitting 1% of documents (one project of 100), inside the search
    flt = Filter(project_ids=[7], all_private=True)
    mask = columns.mask(flt)
    keep = np.flatnonzero(mask)
    res["filter_share"] = len(keep) / n
    sub = faiss.IndexFlatIP(DIM)
    sub.add(vecs[keep])
    _, t_sub = sub.search(queries, 10)
    truth_f = keep[t_sub]

    def filtered(q):
        m = columns.mask(flt)  # evaluated per query, as the engine does
        return ivf.search(q[None], 10, m)[1][0]

    lat_f, got_f = timed_queries(filtered, queries)
    lat_u, _ = timed_queries(lambda q: ivf.search(q[None], 10)[1][0], queries)
    lat_f3, _ = timed_queries(filtered, queries, repeat=3)
    lat_u3, _ = timed_queries(lambda q: ivf.search(q[None], 10)[1][0], queries, repeat=3)
    full = float(np.mean([(g >= 0).sum() == 10 and mask[g].all() for g in got_f]))
    res["filtered_1pct"] = {"p50_ms": pct(lat_f, 50), "p99_ms": pct(lat_f, 99), "recall@10": recall(got_f, truth_f),
                            "full_pages": full, "unfiltered_p50_ms": pct(lat_u, 50),
                            "unfiltered_p99_ms": pct(lat_u, 99),
                            "ratio_p50": pct(lat_f, 50) / pct(lat_u, 50), "ratio_p99": pct(lat_f, 99) / pct(lat_u, 99),
                            "best_of_3_ratio_p50": pct(lat_f3, 50) / pct(lat_u3, 50),
                            "best_of_3_ratio_p99": pct(lat_f3, 99) / pct(lat_u3, 99)}
    f = res["filtered_1pct"]
    print(f"filter 1%: p50 {f['p50_ms']:.2f} ms p99 {f['p99_ms']:.2f} ms (unfiltered {f['unfiltered_p50_ms']:.2f}/"
          f"{f['unfiltered_p99_ms']:.2f}; ratio p50 {f['ratio_p50']:.2f}x p99 {f['ratio_p99']:.2f}x; best of 3: "
          f"{f['best_of_3_ratio_p50']:.2f}x / {f['best_of_3_ratio_p99']:.2f}x), "
          f"full pages {full:.0%}, recall@10 {f['recall@10']:.3f}", flush=True)
    faiss.omp_set_num_threads(os.cpu_count() or 2)
    res["process_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    store.close()
    shutil.rmtree(store_dir, ignore_errors=True)
    shutil.rmtree(ctx.index_dir, ignore_errors=True)
    return res


def plot(results: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sizes = [r["vectors"] for r in results]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    ax = axes[0]
    for key, label in (("exact", "exact flat (peer)"), ("ivfpq_only", "IVF-PQ search alone"),
                       ("default", "IVF-PQ + exact re-rank (default)"), ("filtered_1pct", "default, 1% filter")):
        ax.plot(sizes, [r[key]["p50_ms"] for r in results], "o-", label=f"{label} p50")
        ax.plot(sizes, [r[key]["p99_ms"] for r in results], "x--", label=f"{label} p99")
    ax.set_xscale("log"); ax.set_yscale("log"); ax.set_xlabel("vectors"); ax.set_ylabel("ms per query (1 thread)")
    ax.set_title("Search latency"); ax.legend(fontsize=7)
    ax = axes[1]
    for r in results:
        xs = [s["p50_ms"] for s in r["sweep"]]
        ys = [s["recall@10"] for s in r["sweep"]]
        ax.plot(xs, ys, "o", label=f"{r['vectors']:,} (sweep nprobe x rerank)")
        ax.plot([r["default"]["p50_ms"]], [r["default"]["recall@10"]], "k*", markersize=12)
    ax.axhline(0.95, color="grey", lw=0.8)
    ax.set_xlabel("p50 ms"); ax.set_ylabel("recall@10 vs exact"); ax.set_title("Recall (star: default)")
    ax.legend(fontsize=7)
    ax = axes[2]
    w = 0.35
    x = np.arange(len(results))
    ax.bar(x - w / 2, [r["index_bytes_per_vector"] for r in results], w, label="IVF-PQ index RSS")
    ax.bar(x + w / 2, [r["exact"]["bytes_per_vector"] for r in results], w, label="flat index")
    ax.axhline(200, color="grey", lw=0.8)
    ax.set_xticks(x, [f"{s:,}" for s in sizes]); ax.set_ylabel("bytes per vector"); ax.set_title("Index memory")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--workdir", default=None, help="scratch directory for LMDB and snapshots (default: a temp dir)")
    ap.add_argument("--out", default=str(RESULTS / "index_scale"), help="output path without extension")
    args = ap.parse_args()
    real, real_q = real_vectors()
    mix = Mixture(real)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="ragd-index-bench-"))
    results = [run_size(n, mix, real, real_q, args.queries, workdir) for n in args.size]
    out = {"machine": {"cpus": os.cpu_count(), "faiss": faiss.__version__, "gpus": faiss.get_num_gpus()},
           "vectors": "first %d: real all-MiniLM-L6-v2 embeddings of CISI chunks; rest drawn from a Gaussian "
                      "mixture fitted to them (64 k-means centres, shared full residual covariance scaled per "
                      "centre), L2-normalised" % len(real),
           "queries": "112 real CISI query embeddings + mixture draws",
           "peer": "exact flat inner-product search (faiss IndexFlatIP), same vectors and queries",
           "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps(out, indent=1))
    plot(results, Path(args.out + ".png"))
    print(f"\nwrote {args.out}.json and {args.out}.png")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
