"""Vector index at scale: IVF-PQ + exact re-rank (ragd's index, through its real
lifecycle code on a real LMDB store) against exact flat search (the peer).

    python benchmarks/index_scale.py                      # 100k and 1M -> benchmarks/results/index_scale.{json,png}
    python benchmarks/index_scale.py --size 20000         # quick look
    python benchmarks/index_scale.py --restart-only       # only the daemon restarts, merged into the JSON
    python benchmarks/index_scale.py --size 1000000 --copy-load-rounds 4 --keep-data --data-root DIR
        # restart with the re-rank copy read whole vs mapped (index.rerank_copy_load read / map),
        # interleaved -> benchmarks/results/restart_copy_load.{json,png}

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

Per size, the real daemon restart (measure_restarts): a data dir built through
the daemon's own write path (Ingestor.commit -> LMDB, Collection.apply ->
flat index, filter columns, tantivy keyword index; IVF-PQ trained with
IndexKeeper.train_and_swap; snapshot + columns file + keyword commit on close),
with the same vectors (pre-computed: embedding 1M chunks at ~30 texts/s is out
of reach) and synthetic chunk texts (words drawn from a Zipf vocabulary, so the
keyword index is real). Then `ragd serve` as a subprocess with the provisioned
model, timed from process start to grpc.health.v1 SERVING seen by a client:
  (a) clean restarts after SIGTERM;
  (b) a restart after SIGKILL with writes after the last snapshot (upserts
      embedded by the daemon, re-upserts moving documents between projects,
      deletes): op-log replay into the vector index, filter columns and keyword
      index; then checked (counts, the moved and deleted documents' filters);
  (c) a restart with the filter columns file removed (the fallback: columns
      rebuilt from every LMDB document, as every start did before it existed).
Each with the phases from the daemon's log (process start -> listening, model
load, LMDB + collection load split into columns / vector index / keyword index,
-> SERVING). The page cache is warm (the data dir was just written or read).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
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
sys.path.insert(0, str(REPO / "clients" / "python"))
sys.path.insert(0, str(REPO / "benchmarks"))

import faiss  # noqa: E402

from ragd.domain import Document, Filter  # noqa: E402
from ragd.engine.datadir import DataDir  # noqa: E402
from ragd.index.columns import FilterColumns  # noqa: E402
from ragd.index.columns_keeper import ColumnsKeeper  # noqa: E402
from ragd.index.lifecycle import IndexContext, IndexKeeper, vector_fetch  # noqa: E402
from ragd.index.vector_index import IndexSettings, VectorIndex, default_nprobe, default_rerank_factor  # noqa: E402
from ragd.store.lmdb_store import DocRecord, Store  # noqa: E402

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
    vecs = cached_vectors(n, mix, real)
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
                w.put_doc(meta, DocRecord.live(Document(id=doc_id, text="", project_id=int(proj[d0]), type="issue",
                                                        author_id=1, version=1), cids))
                meta.docs += 1
    res["lmdb_write_s"] = time.perf_counter() - t0
    res["lmdb_bytes"] = store.disk_bytes()
    print(f"LMDB: wrote {n:,} vectors in {res['lmdb_write_s']:.1f} s ({res['lmdb_bytes'] / 1e9:.2f} GB)", flush=True)
    meta = store.collections()["bench"]
    coll_id = meta.id
    fetch = vector_fetch(store, coll_id, DIM)

    settings = IndexSettings(ivf_threshold=1)  # always IVF-PQ here; defaults otherwise
    ctx = IndexContext(settings=settings, write_lock=threading.Lock(), background=False)
    layout = DataDir(workdir / f"data-{n}")
    shutil.rmtree(layout.root, ignore_errors=True)
    paths = layout.snapshot_paths(coll_id)

    # ---- start-up without a snapshot: flat index rebuilt from LMDB
    keeper = IndexKeeper(VectorIndex(DIM, settings, fetch), store, meta, ctx, paths)
    t0 = time.perf_counter()
    keeper.open()
    res["flat_rebuild_from_lmdb_s"] = time.perf_counter() - t0
    flat_index = keeper.index._index  # the exact peer: IndexIDMap2(IndexFlatIP), same vectors

    # ---- IVF-PQ: train on a sample, build from LMDB, swap (no snapshot paths: the
    # snapshot is written and timed separately below)
    ivf = VectorIndex(DIM, settings, fetch)
    keeper2 = IndexKeeper(ivf, store, meta, ctx)
    ivf.swap_in(flat_index, keeper.index._state.copy(), 0)
    t0 = time.perf_counter()
    keeper2.train_and_swap()
    res["train_s"] = keeper2.last_train["train_s"]
    res["build_s"] = keeper2.last_train["build_s"]
    res["swap_ms"] = keeper2.last_train["swap_ms"]
    res["nlist"] = ivf.nlist
    res["pq_m"] = faiss.downcast_index(ivf._index).pq.M
    print(f"IVF-PQ nlist {ivf.nlist}, PQ{res['pq_m']}x8: trained in {res['train_s']:.1f} s, "
          f"built in {res['build_s']:.1f} s, swap {res['swap_ms']:.0f} ms", flush=True)
    t0 = time.perf_counter()
    res["snapshot_bytes"] = keeper2.snapshot(paths)
    res["snapshot_write_s"] = time.perf_counter() - t0

    # ---- restart: snapshot load + replay, filter columns from LMDB documents
    loaded = VectorIndex(DIM, settings, fetch)
    k3 = IndexKeeper(loaded, store, meta, ctx, paths)
    t0 = time.perf_counter()
    k3.open()
    res["snapshot_load_s"] = time.perf_counter() - t0
    assert loaded.ntotal == n and loaded.kind == "ivfpq"
    t0 = time.perf_counter()
    cols = ColumnsKeeper(store, meta)
    cols.rebuild()
    columns: FilterColumns = cols.columns
    res["columns_rebuild_s"] = time.perf_counter() - t0
    print(f"restart: snapshot ({res['snapshot_bytes'] / 1e6:.0f} MB) loaded in {res['snapshot_load_s']:.2f} s, "
          f"filter columns rebuilt from LMDB in {res['columns_rebuild_s']:.2f} s", flush=True)
    res["index_rss"] = index_rss_subprocess(paths.index)
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
    pq_only = VectorIndex(DIM, settings)  # the same FAISS index without exact vectors: no re-rank
    pq_only.swap_in(ivf._index, ivf._state, ivf.trained_n)
    lat_pq, got_pq = timed_queries(lambda q: pq_only.search(q[None], 10)[1][0], queries)
    lat_pq3, _ = timed_queries(lambda q: pq_only.search(q[None], 10)[1][0], queries, repeat=3)
    lat_def, got_def = timed_queries(lambda q: ivf.search(q[None], 10)[1][0], queries)
    lat_def3, _ = timed_queries(lambda q: ivf.search(q[None], 10)[1][0], queries, repeat=3)
    res["exact"] = {"p50_ms": pct(lat_flat, 50), "p99_ms": pct(lat_flat, 99), "recall@10": recall(got_flat, truth),
                    "bytes_per_vector": DIM * 4 + 16}
    res["ivfpq_only"] = {"p50_ms": pct(lat_pq, 50), "p99_ms": pct(lat_pq, 99), "recall@10": recall(got_pq, truth),
                         "best_of_3_p50_ms": pct(lat_pq3, 50), "best_of_3_p99_ms": pct(lat_pq3, 99)}
    res["default"] = {"p50_ms": pct(lat_def, 50), "p99_ms": pct(lat_def, 99), "recall@10": recall(got_def, truth),
                      "best_of_3_p50_ms": pct(lat_def3, 50), "best_of_3_p99_ms": pct(lat_def3, 99),
                      "nprobe": settings.nprobe or default_nprobe(ivf.nlist),
                      "rerank_factor": settings.rerank_factor or default_rerank_factor(n)}
    print(f"exact flat:       p50 {res['exact']['p50_ms']:.2f} ms  p99 {res['exact']['p99_ms']:.2f} ms", flush=True)
    print(f"IVF-PQ alone:     p50 {res['ivfpq_only']['p50_ms']:.2f} ms  p99 {res['ivfpq_only']['p99_ms']:.2f} ms  "
          f"(best of 3: {res['ivfpq_only']['best_of_3_p50_ms']:.2f}/{res['ivfpq_only']['best_of_3_p99_ms']:.2f})  "
          f"recall@10 {res['ivfpq_only']['recall@10']:.3f}", flush=True)
    print(f"IVF-PQ + rerank:  p50 {res['default']['p50_ms']:.2f} ms  p99 {res['default']['p99_ms']:.2f} ms  "
          f"(best of 3: {res['default']['best_of_3_p50_ms']:.2f}/{res['default']['best_of_3_p99_ms']:.2f})  "
          f"recall@10 {res['default']['recall@10']:.3f} (nprobe {res['default']['nprobe']}, "
          f"rerank x{res['default']['rerank_factor']})", flush=True)

    sweep = []
    for nprobe in (32, 64, 128):
        for rf in (10, 20, 40, 80):
            def one(q, nprobe=nprobe, rf=rf):
                return ivf.search(q[None], 10, nprobe=nprobe, rerank_factor=rf)[1][0]
            lat, got = timed_queries(one, queries)
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
    shutil.rmtree(layout.root, ignore_errors=True)
    return res


def plot(results: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    every = results
    results = [r for r in every if "exact" in r]  # --restart-only may add sizes without index figures
    sizes = [r["vectors"] for r in results]
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.5))
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
    ax = axes[3]
    rs = [r.get("restart") for r in every]
    x = np.arange(len(every))
    sizes = [r["vectors"] for r in every]
    if any(rs):
        w = 0.27
        for j, (key, label) in enumerate((("clean", "after SIGTERM (median)"),
                                          ("kill", "after SIGKILL + op-log replay"),
                                          ("cols", "columns file removed (rebuild)"))):
            vals = []
            for r in rs:
                if not r:
                    vals.append(0)
                elif key == "clean":
                    vals.append(r["clean_restart"]["median_s"])
                elif key == "kill":
                    vals.append(r["kill_restart"]["to_serving_s"])
                else:
                    vals.append(r["columns_rebuild_restart"]["to_serving_s"])
            ax.bar(x + (j - 1) * w, vals, w, label=label)
        ax.axhline(5.0, color="grey", lw=0.8)
        ax.set_xticks(x, [f"{s:,}" for s in sizes]); ax.set_ylabel("s, process start -> health SERVING")
        ax.set_title("Daemon restart (real `ragd serve`)"); ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# ---------------------------------------------------------------- real daemon restarts

WORDS = None


def synthetic_texts(n: int, seed: int) -> list[str]:
    """Chunk texts of ~40 words drawn from a 20,000-word Zipf vocabulary (so BM25 has
    realistic posting lists); synthetic: the real texts of 1M chunks are not to be had."""
    global WORDS
    rng = np.random.default_rng(seed)
    if WORDS is None:
        letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
        lens = np.random.default_rng(0).integers(3, 10, 20_000)
        WORDS = np.array(["".join(np.random.default_rng(i).choice(letters, size=L)) for i, L in enumerate(lens)])
    ranks = np.minimum(rng.zipf(1.2, size=(n, 40)), len(WORDS)) - 1
    return [" ".join(row) for row in WORDS[ranks]]


def cached_vectors(n: int, mix: Mixture, real: np.ndarray) -> np.ndarray:
    path = CACHE / f"vectors-{n}.npy"
    if path.exists():
        v = np.load(path, mmap_mode="r")
        if v.shape == (n, DIM):
            return np.asarray(v)
    nreal = min(len(real), n)
    vecs = np.concatenate([real[:nreal], mix.draw(n - nreal, seed=n)]) if n > nreal else real[:n].copy()
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vecs)
    return vecs


class _Dim:
    """The embedder as the write path sees it at commit time (vectors are pre-computed)."""
    dimension = DIM


def build_data_dir(data: Path, vecs: np.ndarray) -> dict:
    """A daemon data dir holding one collection ("default") of len(vecs) chunks, written
    through the daemon's own code; returns build timings."""
    from ragd.config import load_config
    from ragd.engine.collection import Collections
    from ragd.engine.ingest import Ingestor, PreparedDoc
    from ragd.index.lifecycle import index_context_from

    n = len(vecs)
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    cfg = load_config(env={}, overrides={"data_dir": str(data)})
    layout = DataDir(data)
    store = Store(layout.store, int(cfg.store.map_size_gb * (1 << 30)))
    ctx = index_context_from(cfg, threading.Lock())
    ctx.background = False  # IVF-PQ is trained below, in the foreground
    collections = Collections(store, ctx, layout)
    ing = Ingestor(store, _Dim(), None, collections, MODEL.name)
    rng = np.random.default_rng(n)
    types = ["issue", "journal", "wiki", "news", "document"]
    trackers = ["bug", "feature", "support"]
    statuses = ["new", "in progress", "resolved", "closed"]
    out: dict = {}
    t0 = time.perf_counter()
    per_commit = 1000  # documents per write transaction (an Upsert call of 1,000 documents)
    ndocs = (n + CHUNKS_PER_DOC - 1) // CHUNKS_PER_DOC
    for d0 in range(0, ndocs, per_commit):
        prepared = []
        texts_all = synthetic_texts(min(per_commit, ndocs - d0) * CHUNKS_PER_DOC, seed=d0)
        for d in range(d0, min(d0 + per_commit, ndocs)):
            c0, c1 = d * CHUNKS_PER_DOC, min((d + 1) * CHUNKS_PER_DOC, n)
            private = rng.random() < 0.05
            doc = Document(id=f"issue:{d}", text="", title=f"issue {d}", project_id=int(d % PROJECTS),
                           type=types[d % len(types)], is_private=bool(private), author_id=int(rng.integers(1, 500)),
                           updated_at_us=1_600_000_000_000_000 + d * 1_000_000, version=1,
                           metadata={"tracker": trackers[d % 3], "status": statuses[d % 4]},
                           viewer_ids=[int(rng.integers(1, 500))] if private else [])
            texts = texts_all[(d - d0) * CHUNKS_PER_DOC:(d - d0) * CHUNKS_PER_DOC + (c1 - c0)]
            spans, at = [], 0
            for t in texts:
                spans.append((at, at + len(t)))
                at += len(t) - 50
            prepared.append(PreparedDoc(doc=doc, spans=spans, texts=texts, vectors=vecs[c0:c1]))
        ing.commit("default", prepared)
    coll = collections.get("default")
    coll.keyword.refresh()
    out["ingest_s"] = time.perf_counter() - t0
    print(f"data dir: {n:,} chunks of {ndocs:,} documents written through Ingestor.commit in "
          f"{out['ingest_s']:.0f} s", flush=True)
    t0 = time.perf_counter()
    coll.keeper.train_and_swap()  # writes the snapshot (index + filter columns) too
    out["ivfpq_train_build_s"] = time.perf_counter() - t0
    coll.close()  # final snapshot if anything changed, keyword commit
    store.close()
    out["bytes"] = {p.name: sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
                    for p in data.iterdir() if p.is_dir()}
    (data / "BUILT.json").write_text(json.dumps({"chunks": n, "documents": ndocs, **out}))
    print(f"data dir: IVF-PQ trained and built in {out['ivfpq_train_build_s']:.0f} s; "
          f"sizes {', '.join(f'{k} {v / 1e6:.0f} MB' for k, v in out['bytes'].items())}", flush=True)
    return out


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_times(text: str) -> list[tuple[float, str]]:
    import datetime
    out = []
    for line in text.splitlines():
        try:
            ts = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        except ValueError:
            continue
        out.append((ts, line[24:]))
    return out


# `ragd` of another source tree: this venv's editable install redirects `import ragd` to
# this checkout whatever the path says, so its finder is dropped first.
_RUN_FROM_SOURCE = """
import runpy, sys
sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith('_editable')]
sys.path.insert(0, sys.argv[1])
sys.argv = ['ragd'] + sys.argv[2:]
runpy.run_module('ragd.cli', run_name='__main__')
"""


class DaemonRun:
    """`ragd serve` on a data dir, timed from process start to health SERVING."""

    def __init__(self, data: Path):
        self.data = data
        self.log_path = data / "daemon.log"
        self.proc: subprocess.Popen | None = None
        models = data / "models"
        if not models.exists():
            models.symlink_to(MODEL.parent, target_is_directory=True)

    def start(self, timeout: float = 300.0, env: dict | None = None, source: Path | None = None) -> dict:
        """source: run the ragd of another source tree (a checkout of an older commit, its
        ragd/_native*.so beside its sources) instead of this one."""
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc
        self.port = _free_port()
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        logf = open(self.log_path, "ab")
        wall0 = time.time()
        t0 = time.perf_counter()
        entry = ["-m", "ragd.cli"] if source is None else ["-c", _RUN_FROM_SOURCE, str(source)]
        self.proc = subprocess.Popen([sys.executable, *entry, "serve", "--data-dir", str(self.data),
                                      "--listen", f"127.0.0.1:{self.port}"],
                                     stdout=logf, stderr=subprocess.STDOUT, cwd=REPO,
                                     env={**os.environ, "RAGD_LOG_LEVEL": "info", **(env or {})})
        logf.close()
        self.t0, self.offset = t0, offset
        channel = grpc.insecure_channel(f"127.0.0.1:{self.port}", options=[
            ("grpc.initial_reconnect_backoff_ms", 10), ("grpc.min_reconnect_backoff_ms", 10),
            ("grpc.max_reconnect_backoff_ms", 20)])
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"daemon exited with {self.proc.returncode}: {self.log(offset)[-3000:]}")
                if time.perf_counter() - t0 > timeout:
                    raise TimeoutError(f"not SERVING after {timeout} s: {self.log(offset)[-3000:]}")
                try:
                    st = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=0.5).status
                except grpc.RpcError:
                    st = None
                if st == health_pb2.HealthCheckResponse.SERVING:
                    break
                time.sleep(0.005)
        finally:
            channel.close()
        total = time.perf_counter() - t0
        time.sleep(0.2)  # let the log lines of the start-up land
        return {"to_serving_s": total, "phases": self.phases(self.log(offset), wall0, wall0 + total)}

    def wait_log(self, needle: str, timeout: float = 600.0) -> float:
        """Seconds from this start's process start until `needle` appears in its log."""
        while needle not in self.log(self.offset):
            if self.proc.poll() is not None or time.perf_counter() - self.t0 > timeout:
                raise RuntimeError(f"no {needle!r} in the log: {self.log(self.offset)[-3000:]}")
            time.sleep(0.05)
        return time.perf_counter() - self.t0

    def log(self, offset: int = 0) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    @staticmethod
    def phases(text: str, wall0: float, wall_end: float) -> dict:
        """Start-up phases from the daemon's log (timestamps are wall clock, ms resolution)."""
        import re
        marks: dict[str, float] = {}
        ph: dict = {}
        for ts, msg in _log_times(text):
            for key, needle in (("listening", "listening on"), ("model", ": model "), ("engine", "engine loaded"),
                                ("serving", "SERVING on")):
                if needle in msg and key not in marks:
                    marks[key] = ts
            # One line per derived index (ragd.index.derived.recover), then the replay's total.
            m = re.search(r"collection \S+: (filter columns|vector index|keyword index) (.*) in (\d+) ms, "
                          r"replayed (\d+) op-log entries", msg)
            if m:
                key = m.group(1).replace(" ", "_").replace("filter_columns", "columns")
                ph[key] = m.group(2)
                ph[f"{key}_s"] = int(m.group(3)) / 1000
                ph[f"{key}_replayed"] = int(m.group(4))
            m = re.search(r"indexes opened in \d+ ms \(op-log replay (\d+) ms\)", msg)
            if m:
                ph["replay_s"] = int(m.group(1)) / 1000
        if {"listening", "model", "engine", "serving"} <= set(marks):
            ph["process_to_listening_s"] = marks["listening"] - wall0  # interpreter, imports, gRPC server
            ph["model_load_s"] = marks["model"] - marks["listening"]   # ONNX session
            # warm-up inference, LMDB open, the collection (columns + index + keyword) load
            ph["warmup_store_collections_s"] = marks["engine"] - marks["model"]
            ph["engine_to_serving_s"] = marks["serving"] - marks["engine"]
            ph["serving_to_client_s"] = wall_end - marks["serving"]
        return ph

    def stop(self, sig=signal.SIGTERM) -> float:
        t0 = time.perf_counter()
        self.proc.send_signal(sig)
        self.proc.wait(300)
        return time.perf_counter() - t0


def _ops_after_snapshot(address: str, ndocs: int) -> dict:
    """Writes the daemon acknowledges after its last snapshot: new documents (embedded by
    the daemon), re-upserts moving documents to project 999, deletes."""
    from ragd_client import RagClient
    new = [{"id": f"new:{i}", "title": f"fresh {i}", "text": f"restart replay document number {i} " * 8,
            "project_id": 998, "type": "issue", "version": 1} for i in range(60)]
    moved = [{"id": f"issue:{d}", "title": f"moved {d}", "text": f"moved document {d} " * 8, "project_id": 999,
              "type": "wiki", "version": 2} for d in range(1, 41)]
    deleted = [f"issue:{d}" for d in range(100, ndocs, max(ndocs // 500, 1))][:500]
    t0 = time.perf_counter()
    ops = 0
    with RagClient(address, timeout=600) as c:
        for i in range(0, len(new), 5):
            c.upsert(new[i:i + 5])
            ops += 1
        for i in range(0, len(moved), 5):
            c.upsert(moved[i:i + 5])
            ops += 1
        for i in range(0, len(deleted), 10):
            c.delete(deleted[i:i + 10])
            ops += 1
    return {"write_calls": ops, "new_docs": len(new), "moved_docs": len(moved), "deleted_docs": len(deleted),
            "seconds": time.perf_counter() - t0, "deleted_ids": deleted}


def _check_after_replay(address: str, ndocs: int, deleted: list[str]) -> dict:
    from ragd_client import RagClient
    with RagClient(address, timeout=120) as c:
        st = c.stats().collections[0]
        want = ndocs + 60 - len(deleted)
        moved = c.search("moved document", top_k=50, filter={"project_ids": [999], "all_private": True},
                         mode="keyword")
        fresh = c.search("restart replay document", top_k=100, filter={"project_ids": [998]}, mode="vector")
        gone = c.search("issue", top_k=10, filter={"exclude_ids": [], "project_ids": [0]}, mode="vector")
    ok = {"documents": st.documents == want,
          "moved_found_in_new_project": len({h.document_id for h in moved.hits}) == 40,
          "new_found": len({h.document_id for h in fresh.hits}) == 60,
          "deleted_absent": not ({h.document_id for h in gone.hits} & set(deleted))}
    return {"documents": st.documents, "expected_documents": want, "checks": ok}


def measure_restarts(n: int, vecs: np.ndarray, data_root: Path, reuse: bool, clean_runs: int = 3) -> dict:
    data = data_root / f"daemon-{n}"
    res: dict = {"chunks": n, "documents": (n + CHUNKS_PER_DOC - 1) // CHUNKS_PER_DOC,
                 "texts": "synthetic chunk texts (Zipf words); vectors pre-computed (the index benchmark's), "
                          "written through Ingestor.commit / Collection.apply_upsert"}
    if reuse and (data / "BUILT.json").exists():
        res["build"] = json.loads((data / "BUILT.json").read_text())
        print(f"data dir {data} reused", flush=True)
    else:
        res["build"] = build_data_dir(data, vecs)
    d = DaemonRun(data)
    first = d.start()
    res["first_start"] = first
    print(f"first start: SERVING in {first['to_serving_s']:.2f} s", flush=True)
    res["sigterm_shutdown_s"] = d.stop()
    clean = []
    for i in range(clean_runs):
        r = d.start()
        clean.append(r)
        print(f"(a) clean restart {i + 1}: SERVING in {r['to_serving_s']:.2f} s  {r['phases']}", flush=True)
        d.stop()
    res["clean_restart"] = {"runs": clean, "median_s": float(np.median([r["to_serving_s"] for r in clean])),
                            "max_s": max(r["to_serving_s"] for r in clean)}
    # (b) writes after the last snapshot, then SIGKILL
    d.start()
    ops = _ops_after_snapshot(f"127.0.0.1:{d.port}", res["documents"])
    deleted = ops.pop("deleted_ids")
    time.sleep(1.0)
    tail = d.log()
    snap_after = tail.rfind("index snapshot at sequence") > tail.rfind("SERVING on")
    d.stop(signal.SIGKILL)
    r = d.start()
    r["ops"] = ops
    r["snapshot_written_after_ops"] = snap_after
    r["verify"] = _check_after_replay(f"127.0.0.1:{d.port}", res["documents"], deleted)
    print(f"(b) restart after SIGKILL, {ops['write_calls']} write calls after the last snapshot: SERVING in "
          f"{r['to_serving_s']:.2f} s  {r['phases']}  verify {r['verify']}", flush=True)
    res["kill_restart"] = r
    d.stop()
    # (c) the columns file removed: the fallback (and what every start did before it existed)
    for f in (data / "index").glob("*.cols"):
        f.unlink()
    r = d.start()
    res["columns_rebuild_restart"] = r
    print(f"(c) restart without the columns file (rebuilt from LMDB): SERVING in {r['to_serving_s']:.2f} s  "
          f"{r['phases']}", flush=True)
    d.stop()
    res["target_s"] = 5.0
    return res


def measure_copy_load(data: Path, rounds: int, baseline: Path | None = None) -> dict:
    """Restart to SERVING of one data dir with the re-rank copy's file read whole and checked
    before serving (index.rerank_copy_load = read: every start before) against mapped and
    checked in the background (map), and, with `baseline` (a source tree of the commit
    before), that commit's daemon ("base": the copy read whole, the columns' maps built
    before serving); interleaved, the order rotating each round; for map also the time
    until the background check passed."""
    d = DaemonRun(data)
    arms = ["read", "map"] + (["base"] if baseline else [])
    runs: dict[str, list] = {a: [] for a in arms}
    for r in range(rounds):
        for mode in arms[r % len(arms):] + arms[:r % len(arms)]:
            if mode == "base":
                res = d.start(source=baseline)
            else:
                res = d.start(env={"RAGD_INDEX_RERANK_COPY_LOAD": mode})
            if mode == "map":
                res["copy_verified_s"] = d.wait_log("re-rank copy file verified")
            res["load_avg_1m"] = os.getloadavg()[0]
            d.stop()
            runs[mode].append(res)
            print(f"round {r + 1} {mode}: SERVING in {res['to_serving_s']:.2f} s "
                  f"(vector index {res['phases'].get('vector_index_s')} s, columns {res['phases'].get('columns_s')} s"
                  + (f", copy verified at {res['copy_verified_s']:.2f} s" if mode == "map" else "")
                  + f"), load {res['load_avg_1m']:.1f}", flush=True)
    def ratio(a: str) -> dict:
        rs = [x["to_serving_s"] / y["to_serving_s"] for x, y in zip(runs[a], runs["map"])]
        return {"median": float(np.median(rs)), "min": min(rs), "max": max(rs)}

    out = {"data_dir": json.loads((data / "BUILT.json").read_text()), "rounds": rounds, "runs": runs,
           "median_s": {m: float(np.median([x["to_serving_s"] for x in v])) for m, v in runs.items()},
           "range_s": {m: [min(x["to_serving_s"] for x in v), max(x["to_serving_s"] for x in v)]
                       for m, v in runs.items()},
           "read_over_map": ratio("read"), **({"base_over_map": ratio("base")} if baseline else {}),
           "copy_verified_s_median": float(np.median([x["copy_verified_s"] for x in runs["map"]])),
           "load_avg_1m": [x["load_avg_1m"] for v in runs.values() for x in v],
           "copy_file_bytes": sum(f.stat().st_size for f in (data / "index").glob("*.rerank"))}
    ratio = out["read_over_map"]
    print(f"read {out['median_s']['read']:.2f} s, map {out['median_s']['map']:.2f} s: read/map "
          f"{ratio['median']:.2f}x ({ratio['min']:.2f}-{ratio['max']:.2f})", flush=True)
    return out


def plot_copy_load(res: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    arms = [a for a in ("base", "read", "map") if a in res["runs"]]
    for i, mode in enumerate(arms):
        ys = [x["to_serving_s"] for x in res["runs"][mode]]
        ax.plot(np.full(len(ys), i) + np.linspace(-0.1, 0.1, len(ys)), ys, "o", label=f"{mode}: SERVING")
    ver = [x["copy_verified_s"] for x in res["runs"]["map"]]
    ax.plot(np.full(len(ver), arms.index("map")) + np.linspace(-0.1, 0.1, len(ver)), ver, "x",
            label="map: copy verified (background)")
    names = {"base": "commit before", "read": "copy read whole", "map": "copy mapped (now)"}
    ax.set_xticks(range(len(arms)), [names[a] for a in arms])
    ax.set_ylabel("s from process start")
    ax.set_title(f"Restart, {res['data_dir']['chunks']:,} chunks, re-rank copy {res['copy_file_bytes'] / 1e6:.0f} MB")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--workdir", default=None,
                    help="scratch directory for LMDB and snapshots (default: a temp dir; --xlarge keeps its "
                         "build files in a named one, for --reuse)")
    ap.add_argument("--out", default=str(RESULTS / "index_scale"), help="output path without extension")
    ap.add_argument("--restart-only", action="store_true",
                    help="only the real daemon restarts; merged into the existing JSON's results of the same sizes")
    ap.add_argument("--no-restart", action="store_true", help="skip the real daemon restarts")
    ap.add_argument("--data-root", default=None, help="where the daemon data dirs are built (default: the workdir)")
    ap.add_argument("--keep-data", action="store_true", help="keep the daemon data dirs (reused by a later run)")
    ap.add_argument("--clean-runs", type=int, default=3, help="clean (SIGTERM) restarts timed per size")
    ap.add_argument("--baseline-source", default=None,
                    help="--copy-load-rounds: also time the daemon of this source tree (e.g. `git archive` of the "
                         "commit before, with ragd/_native*.so copied beside it)")
    ap.add_argument("--copy-load-rounds", type=int, default=0,
                    help="only the restart with the re-rank copy read vs mapped, this many interleaved rounds "
                         "(on the data dir of --data-root, built first when missing) -> restart_copy_load.{json,png}")
    ap.add_argument("--xlarge", action="store_true",
                    help="the 10M profile (benchmarks/index_xlarge.py): --size defaults to 10,000,000, vectors "
                         "streamed in batches, a resident re-rank copy (and its recall cost against fp32 "
                         "re-rank at 1M); writes index_scale_xlarge.{json,png}")
    ap.add_argument("--compare-at", type=int, default=1_000_000,
                    help="--xlarge: sizes up to this also compare fp32 / fp16 / sq8 re-rank on the same index "
                         "(0: never); list it first, e.g. --size 1000000 10000000")
    ap.add_argument("--rerank-copy", default="fp16", choices=("fp16", "sq8"),
                    help="--xlarge: the resident re-rank copy of the large index")
    ap.add_argument("--reuse", action="store_true",
                    help="--xlarge with --workdir: measure the build a previous run left there (its index, "
                         "re-rank copy and columns files) instead of building again")
    args = ap.parse_args()
    real, real_q = real_vectors()
    mix = Mixture(real)
    if args.xlarge:
        main_xlarge(args, mix, real, real_q)
        return
    if args.copy_load_rounds:
        if not args.data_root:
            ap.error("--copy-load-rounds needs --data-root")
        data_root = Path(args.data_root)
        n = args.size[0]
        data = data_root / f"daemon-{n}"
        if not (data / "BUILT.json").exists():
            build_data_dir(data, cached_vectors(n, mix, real))
        res = measure_copy_load(data, args.copy_load_rounds,
                                Path(args.baseline_source) if args.baseline_source else None)
        out_path = RESULTS / "restart_copy_load"
        out_path.with_suffix(".json").write_text(json.dumps(res, indent=1))
        plot_copy_load(res, out_path.with_suffix(".png"))
        print(f"wrote {out_path}.json and {out_path}.png")
        return
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="ragd-index-bench-"))
    data_root = Path(args.data_root) if args.data_root else workdir
    results = []
    if args.restart_only:
        old = json.loads(Path(args.out + ".json").read_text())
        results = old["results"]
    for n in args.size:
        if args.restart_only:
            res = next((r for r in results if r["vectors"] == n), None)
            if res is None:
                res = {"vectors": n, "dim": DIM}
                results.append(res)
        else:
            res = run_size(n, mix, real, real_q, args.queries, workdir)
            results = [r for r in results if r["vectors"] != n] + [res]
        if not args.no_restart:
            print(f"\n=== daemon restart, {n:,} chunks ===", flush=True)
            res["restart"] = measure_restarts(n, cached_vectors(n, mix, real), data_root,
                                              reuse=args.keep_data, clean_runs=args.clean_runs)
            if not args.keep_data:
                shutil.rmtree(data_root / f"daemon-{n}", ignore_errors=True)
    results.sort(key=lambda r: r["vectors"])
    out = {"machine": {"cpus": os.cpu_count(), "faiss": faiss.__version__, "gpus": faiss.get_num_gpus()},
           "vectors": f"first {len(real)}: real all-MiniLM-L6-v2 embeddings of CISI chunks; rest drawn from a "
                      "Gaussian mixture fitted to them (64 k-means centres, shared full residual covariance "
                      "scaled per centre), L2-normalised",
           "queries": "112 real CISI query embeddings + mixture draws",
           "peer": "exact flat inner-product search (faiss IndexFlatIP), same vectors and queries",
           "restart": "results[].restart: a real `ragd serve` subprocess on a data dir built through the daemon's "
                      "write path (Ingestor.commit, Collection.apply_upsert: LMDB, flat index, filter columns, "
                      "tantivy; IVF-PQ via IndexKeeper.train_and_swap) with these vectors pre-computed and "
                      "synthetic chunk texts (Zipf words); timed from process start to grpc.health.v1 SERVING "
                      "seen by a client, warm page cache; phases from the daemon's log",
           "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps(out, indent=1))
    plot(results, Path(args.out + ".png"))
    print(f"\nwrote {args.out}.json and {args.out}.png")
    shutil.rmtree(workdir, ignore_errors=True)


def main_xlarge(args, mix: Mixture, real: np.ndarray, real_q: np.ndarray) -> None:
    import index_xlarge
    sizes = args.size if "--size" in sys.argv else [10_000_000]
    out_path = RESULTS / "index_scale_xlarge" if args.out == str(RESULTS / "index_scale") else Path(args.out)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix=index_xlarge.TEMP_PREFIX))
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for n in sizes:
        if args.reuse:
            results.append(index_xlarge.reload(n, mix, real, real_q, args.queries, workdir))
        else:
            results.append(index_xlarge.run_xlarge(n, mix, real, real_q, args.queries, workdir,
                                                   compare_at=args.compare_at, copy_kind=args.rerank_copy))
    out = {"machine": {"cpus": os.cpu_count(), "faiss": faiss.__version__, "load_avg": os.getloadavg()},
           "vectors": "first: real all-MiniLM-L6-v2 embeddings of CISI chunks; rest drawn from the Gaussian mixture "
                      "fitted to them, L2-normalised, generated in batches (never all at once)",
           "index": f"ragd VectorIndex: IVF-PQ (build_ivfpq), re-rank from the resident {args.rerank_copy} copy "
                    "(ragd.index.rerank_copy); masks from ragd FilterColumns (native kernels)",
           "results": results}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    Path(str(out_path) + ".json").write_text(json.dumps(out, indent=1))
    index_xlarge.plot(results, Path(str(out_path) + ".png"))
    print(f"\nwrote {out_path}.json and {out_path}.png")
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
