"""A 1%-selective filtered VECTOR search at 1M chunks, with grants (proto
ragd.v1.Grant) beside today's filter and beside no filter at all: the filter must
cost little (p50 within 1.5x of unfiltered) and pages must stay full.

    flock /tmp/ragd-bench.lock python benchmarks/grant_search.py            # 1M -> results/grant_search.{json,png}
    python benchmarks/grant_search.py --size 100000                          # quicker

Set-up, as benchmarks/index_scale.py measured the 1% filter before (its vectors,
cached under var/bench-cache/: real all-MiniLM-L6-v2 embeddings of the CISI chunks
plus draws from a Gaussian mixture fitted to them; its queries: the 112 real CISI
queries plus mixture draws): chunks written to a real LMDB store (documents of 10
chunks, 5 per project: 20,000 projects at 1M, so 200 projects hold 1%; trackers 1-6,
owners), IVF-PQ trained and built by ragd's VectorIndex (defaults: nlist 4 sqrt(N),
PQ48, exact re-rank of top_k x 40 from LMDB), filter columns filled through
FilterColumns.set_chunks. Four searches per query, each timed from the filter to
the re-ranked page (the mask is evaluated per query, as the engine does), one FAISS
thread (per-query latency on a loaded server), taking turns in a rotating order
(A B C D, B C D A, ...), three passes over the queries:

  unfiltered    no filter
  today         Filter(project_ids=<the 200 projects>, all_private=True): ragd 0.1's form
  1 grant       one grant, VISIBILITY_ALL over the 200 projects
  200 grants    one grant per project, visibilities, tracker limits and private notes
                mixed (every one admitting its whole project): a user in 200 projects

All three filters admit the same 1% (checked). Reported per search: p50/p99 over
the queries (median pass) and their ratio to unfiltered per pass (median and
spread over the passes), full pages (10 hits, all admitted) and recall@10 against
exact search over the admitted chunks.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import faiss  # noqa: E402
from common import write  # noqa: E402
from index_scale import CACHE, DIM, Mixture, cached_vectors, real_vectors  # noqa: E402

from ragd.domain import Document, Filter, Grant, Visibility  # noqa: E402
from ragd.index.columns import FilterColumns  # noqa: E402
from ragd.index.vector_index import LIVE, IndexSettings, VectorIndex, nlist_for, train_size_for  # noqa: E402
from ragd.store.lmdb_store import Store  # noqa: E402
from ragd.store.records import DocRecord  # noqa: E402

CHUNKS_PER_DOC, DOCS_PER_PROJECT, ADMITTED_PROJECTS = 10, 5, 200


def projects_for(n: int) -> int:
    """5 documents of 10 chunks per project: 20,000 projects at 1M chunks, so 200 of
    them hold 1% (smaller --size runs are smoke runs: the 200 projects hold more)."""
    return max(ADMITTED_PROJECTS, n // (CHUNKS_PER_DOC * DOCS_PER_PROJECT))


def build(n: int, vecs: np.ndarray, workdir: Path):
    """LMDB store, IVF-PQ index (cached: training at 1M takes minutes) and filter columns."""
    store_dir = workdir / f"grant-store-{n}"
    shutil.rmtree(store_dir, ignore_errors=True)
    store = Store(store_dir, 64 << 30)
    rng = np.random.default_rng(n)
    proj = rng.integers(0, projects_for(n), n // CHUNKS_PER_DOC + 1)
    tracker = rng.integers(1, 7, len(proj))
    owners = rng.integers(1, 5000, (len(proj), 2))
    cols = FilterColumns()
    t0 = time.perf_counter()
    for s in range(0, n, 50_000):
        with store.write() as w:
            meta = w.collection("bench", DIM, "all-MiniLM-L6-v2", create=True)
            for d0 in range(s, min(s + 50_000, n), CHUNKS_PER_DOC):
                d = d0 // CHUNKS_PER_DOC
                part = vecs[d0:min(d0 + CHUNKS_PER_DOC, n)]
                doc = Document(id=f"issue:{d}", text="", project_id=int(proj[d]), type="issue",
                               tracker_id=int(tracker[d]), owner_ids=owners[d].tolist(), version=1)
                cids = w.add_chunks(meta, doc.id, [(0, 0)] * len(part), [""] * len(part), part)
                w.put_doc(meta, DocRecord.live(doc, cids))
                cols.set_chunks(cids, doc)
                meta.docs += 1
    build_s = {"lmdb_and_columns_s": time.perf_counter() - t0}
    coll_id = store.collections()["bench"].id
    settings = IndexSettings(ivf_threshold=1)
    index = VectorIndex(DIM, settings, fetch=lambda ids: store.get_vectors(coll_id, ids, DIM))
    cached = CACHE / f"grant-ivfpq-{n}.faiss"
    t0 = time.perf_counter()
    if cached.exists():
        ivf = faiss.read_index(str(cached))
        ivf_ = faiss.extract_index_ivf(ivf)
        ivf_.set_direct_map_type(faiss.DirectMap.Hashtable)
        build_s["index"] = "cached"
    else:
        nlist = nlist_for(n, settings.nlist_factor)
        sample = vecs[np.sort(rng.choice(n, min(n, train_size_for(nlist)), replace=False))]
        ivf = index.build_ivfpq(sample, n)
        build_s["train_s"] = time.perf_counter() - t0
        for s in range(0, n, 100_000):
            ids = np.arange(s, min(s + 100_000, n), dtype=np.int64)
            ivf.add_with_ids(np.ascontiguousarray(vecs[s:s + len(ids)]), ids)
        CACHE.mkdir(parents=True, exist_ok=True)
        faiss.write_index(ivf, str(cached))
    build_s["index_s"] = time.perf_counter() - t0
    states = np.zeros(n + 1024, np.uint8)
    states[:n] = LIVE
    index.swap_in(ivf, states, n)
    return store, index, cols, proj, build_s


def filters(proj: np.ndarray, rng: np.random.Generator) -> tuple[dict[str, Filter | None], np.ndarray]:
    counts = np.bincount(proj)
    # 200 projects of typical size (the median's neighbourhood), so they hold ~1% of the chunks.
    order = np.argsort(np.abs(counts - np.median(counts)) + rng.random(len(counts)) * 0.5)
    chosen = sorted(order[:ADMITTED_PROJECTS].tolist())
    vis = [Visibility.ALL, Visibility.DEFAULT]
    many = [Grant(["issue", "journal"], [p], vis[i % 2], list(range(1, 7)) if i % 3 == 0 else [], i % 2 == 0)
            for i, p in enumerate(chosen)]
    return {"unfiltered": None,
            "today": Filter(project_ids=chosen, all_private=True),
            "1 grant": Filter(user_id=42, grants=[Grant(["issue", "journal"], chosen, Visibility.ALL)]),
            "200 grants": Filter(user_id=42, group_ids=[5003], grants=many)}, np.asarray(chosen)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--workdir", default=str(Path(os.environ.get("TMPDIR", "/tmp")) / "ragd-grant-bench"))
    args = ap.parse_args()
    n = args.size
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    real, real_q = real_vectors()
    mix = Mixture(real)
    vecs = cached_vectors(n, mix, real)
    queries = np.concatenate([real_q, mix.draw(max(args.queries - len(real_q), 0), seed=n + 1)])[:args.queries]
    print(f"{n:,} vectors; building the store, filter columns and IVF-PQ index ...", flush=True)
    store, index, cols, proj, build_s = build(n, vecs, workdir)
    print(f"built: {json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in build_s.items()})}",
          flush=True)
    rng = np.random.default_rng(7)
    flts, chosen = filters(proj, rng)
    masks = {name: cols.mask(f) for name, f in flts.items() if f is not None}
    admitted = masks["today"]
    for name, m in masks.items():
        assert np.array_equal(m, admitted), name
    share = float(admitted.mean())
    keep = np.flatnonzero(admitted)
    sub = faiss.IndexFlatIP(DIM)
    sub.add(np.ascontiguousarray(vecs[keep]))
    _, t_sub = sub.search(queries, 10)
    truth = keep[t_sub]
    print(f"1% filter: {len(keep):,} chunks admitted ({share:.2%}) in {len(chosen)} projects", flush=True)

    faiss.omp_set_num_threads(1)  # per-query latency: one core per search, as index_scale measures it

    def run(name, q):
        flt = flts[name]
        mask = cols.mask(flt) if flt is not None else None  # per query, as the engine does
        return index.search(q[None], 10, mask)[1][0]

    names = list(flts)
    lat = {name: [[] for _ in range(args.passes)] for name in names}
    got = {name: [] for name in names}
    for p in range(args.passes):
        for qi, q in enumerate(queries):
            k = (qi + p) % len(names)
            for name in names[k:] + names[:k]:  # rotating order: no search always first or last
                t0 = time.perf_counter()
                ids = run(name, q)
                lat[name][p].append((time.perf_counter() - t0) * 1000)
                if p == 0:
                    got[name].append(ids)
        print(f"pass {p + 1}: " + ", ".join(f"{name} p50 {np.percentile(lat[name][p], 50):.2f} ms"
                                          for name in names), flush=True)

    def pcts(xs):
        return {"p50_ms": float(np.percentile(xs, 50)), "p99_ms": float(np.percentile(xs, 99))}

    res = {"vectors": n, "dim": DIM, "queries": len(queries), "passes": args.passes, "share": share,
           "admitted_projects": len(chosen), "nlist": index.nlist, "build": build_s, "searches": {}}
    for name in names:
        per_pass = [pcts(x) for x in lat[name]]
        mid = sorted(per_pass, key=lambda d: d["p50_ms"])[len(per_pass) // 2]
        entry = {**mid, "passes": per_pass}
        if name != "unfiltered":
            r50 = [a["p50_ms"] / b["p50_ms"] for a, b in zip(per_pass, [pcts(x) for x in lat["unfiltered"]])]
            r99 = [a["p99_ms"] / b["p99_ms"] for a, b in zip(per_pass, [pcts(x) for x in lat["unfiltered"]])]
            entry["ratio_p50"] = {"median": float(np.median(r50)), "min": min(r50), "max": max(r50)}
            entry["ratio_p99"] = {"median": float(np.median(r99)), "min": min(r99), "max": max(r99)}
            entry["full_pages"] = float(np.mean([(g >= 0).sum() == 10 and admitted[g[g >= 0]].all()
                                                 for g in got[name]]))
            entry["recall@10"] = float(np.mean([len(set(g.tolist()) & set(t.tolist())) / 10
                                                for g, t in zip(got[name], truth)]))
        res["searches"][name] = entry
    for name, e in res["searches"].items():
        extra = ""
        if "ratio_p50" in e:
            r = e["ratio_p50"]
            extra = (f"  ratio p50 {r['median']:.2f}x [{r['min']:.2f}-{r['max']:.2f}], p99 "
                     f"{e['ratio_p99']['median']:.2f}x; full pages {e['full_pages']:.0%}, "
                     f"recall@10 {e['recall@10']:.3f}")
        print(f"{name:>11}: p50 {e['p50_ms']:.2f} ms  p99 {e['p99_ms']:.2f} ms{extra}", flush=True)
    with open("/proc/loadavg") as f:
        res["loadavg_after"] = f.read().split()[:3]

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4.5))
    xs = np.arange(len(names))
    for off, key, color in ((-0.2, "p50_ms", "#1f5fa8"), (0.2, "p99_ms", "#e69138")):
        bars = ax.bar(xs + off, [res["searches"][nm][key] for nm in names], 0.4, label=key.replace("_ms", ""),
                      color=color)
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks(xs, [nm if nm == "unfiltered" else f"{nm}\n{res['searches'][nm]['ratio_p50']['median']:.2f}x p50"
                       for nm in names])
    ax.set_ylabel("ms per search (mask + IVF-PQ + re-rank, 1 thread)")
    ax.set_title(f"1% filter at {n:,} chunks: grants beside today's filter and no filter", fontsize=10)
    ax.legend()
    store.close()
    shutil.rmtree(workdir / f"grant-store-{n}", ignore_errors=True)
    write("grant_search" if n == 1_000_000 else f"grant_search_{n}", res, fig)


if __name__ == "__main__":
    main()
