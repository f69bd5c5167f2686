"""Search latency through a running daemon (client-side, gRPC round trip included):
uncached vs cached (the same query repeated: a result-page cache hit), per mode, and
the AUTO router's keyword route (no model call) vs HYBRID. Each uncached query is
followed at once by its cached repeat, so both see the same machine load.

--engines also measures the keyword engine choice in process: SQLite FTS5 vs tantivy
on the same synthetic 100k chunks, unfiltered and under permission masks.

    python benchmarks/search_latency.py [--engines] [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "clients" / "python"))

import cisi  # noqa: E402
from quality import start_daemon  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def summary(xs):
    return {"p50_ms": round(statistics.median(xs), 3), "p95_ms": round(pct(xs, 95), 3),
            "mean_ms": round(statistics.fmean(xs), 3), "n": len(xs)}


def daemon_latency(out: dict) -> None:
    from ragd_client import RagClient
    docs = cisi.documents()
    queries = list(cisi.queries().values())
    tmp = Path(tempfile.mkdtemp(prefix="ragd-latency-"))
    proc, address = start_daemon(tmp / "data", {})
    try:
        with RagClient(address, timeout=600) as c:
            for i in range(0, len(docs), 200):
                c.upsert(docs[i:i + 200])
            c.search("warm up", top_k=10)
            res = {}
            for mode in ("hybrid", "vector", "keyword"):
                miss, hit, server_miss, server_hit = [], [], [], []
                for q in queries:
                    q = f"{q} [{mode}]"  # distinct per mode: the embedding cache must not help the first call
                    t0 = time.perf_counter()
                    a = c.search(q, top_k=10, mode=mode, filter={"all_private": True}, group_by_document=True)
                    t1 = time.perf_counter()
                    b = c.search(q, top_k=10, mode=mode, filter={"all_private": True}, group_by_document=True)
                    t2 = time.perf_counter()
                    assert not a.timings.cache_hit and b.timings.cache_hit
                    miss.append((t1 - t0) * 1000)
                    hit.append((t2 - t1) * 1000)
                    server_miss.append(a.timings.total_ms)
                    server_hit.append(b.timings.total_ms)
                res[mode] = {"uncached": summary(miss), "cached": summary(hit),
                             "speedup_p50": round(statistics.median(miss) / statistics.median(hit), 1),
                             "server_uncached": summary(server_miss), "server_cached": summary(server_hit)}
            # AUTO: identifier queries take the keyword route (no model), questions go hybrid.
            # "#1963"-style references to numbers that occur in the abstracts (years, counts).
            nums = sorted({m for d in docs for m in re.findall(r"\b\d{2,4}\b", d["text"])})
            idents = [f"#{n}" for n in nums]
            kw_route, hy_route = [], []
            for ident, q in zip(idents, queries):
                t0 = time.perf_counter()
                r1 = c.search(ident, top_k=10, mode="auto", filter={"all_private": True})
                t1 = time.perf_counter()
                r2 = c.search(q + " (auto)", top_k=10, mode="auto", filter={"all_private": True})
                t2 = time.perf_counter()
                assert r2.mode == "hybrid" and r1.mode in ("keyword", "hybrid")
                if r1.mode == "keyword":
                    kw_route.append((t1 - t0) * 1000)
                hy_route.append((t2 - t1) * 1000)
            res["auto"] = {"keyword_route": summary(kw_route) if kw_route else None,
                           "hybrid_route": summary(hy_route)}
            out["daemon"] = res
    finally:
        proc.terminate()
        proc.wait(60)


def engines(out: dict, n: int = 100_000) -> None:
    """FTS5 vs tantivy at n synthetic chunks (words drawn from CISI), with permission masks."""
    import sqlite3

    import numpy as np

    from ragd.index.keyword import STOPWORDS, KeywordIndex

    rng = random.Random(0)
    words = [w.lower() for d in cisi.documents() for w in re.findall(r"\w+", d["text"])]
    texts = [" ".join(rng.choice(words) for _ in range(80)) for _ in range(n)]
    queries = list(cisi.queries().values())[:30]

    def terms(q):
        return [t for t in re.findall(r"\w+", q.lower()) if t not in STOPWORDS][:64]

    db = sqlite3.connect(":memory:")
    db.execute("create virtual table t using fts5(body, tokenize='porter unicode61 remove_diacritics 2')")
    t0 = time.perf_counter()
    db.executemany("insert into t(rowid, body) values (?, ?)", enumerate(texts))
    db.commit()
    fts_build = time.perf_counter() - t0

    def fts(q, mask, k=10):
        match = " OR ".join(f'"{t}"' for t in terms(q))
        rows = np.array(db.execute("select rowid, rank from t where t match ?", (match,)).fetchall(),
                        dtype=np.float64).reshape(-1, 2)
        ids, sc = rows[:, 0].astype(np.int64), -rows[:, 1]
        if mask is not None:
            keep = mask[ids]
            ids, sc = ids[keep], sc[keep]
        return ids[np.argsort(-sc)[:k]]

    from ragd.domain import Document
    from ragd.index.derived import Change, DocChunks

    t0 = time.perf_counter()
    kw = KeywordIndex(None)  # in memory, filled with one change as the write path would
    docs = [DocChunks(Document(id=str(i), text=text), [i], [text]) for i, text in enumerate(texts)]
    kw.apply(Change(1, (), lambda: (np.zeros(0, np.int64), np.zeros((0, 1), np.float32)), lambda: docs))
    kw.refresh()
    tv_build = time.perf_counter() - t0
    res = {"chunks": n, "build_s": {"fts5": round(fts_build, 2), "tantivy": round(tv_build, 2)}, "search": {}}
    for share in (None, 0.01, 0.2, 0.5, 0.99):
        mask = None
        if share is not None:
            mask = np.zeros(n, dtype=bool)
            mask[rng.sample(range(n), int(n * share))] = True
        row = {}
        for name, fn in (("fts5", lambda q, mask=mask: fts(q, mask)),
                         ("tantivy", lambda q, mask=mask: kw.search(q, 10, mask))):
            times = []
            for q in queries:
                t0 = time.perf_counter()
                fn(q)
                times.append((time.perf_counter() - t0) * 1000)
            row[name] = summary(times)
        res["search"]["unfiltered" if share is None else f"admits {share:.0%}"] = row
    out["engines"] = res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", action="store_true", help="also compare FTS5 and tantivy at 100k chunks")
    ap.add_argument("--no-daemon", action="store_true")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    out: dict = {}
    path = args.out / "search_latency.json"
    if path.exists():
        out = json.loads(path.read_text())
    if not args.no_daemon:
        daemon_latency(out)
    if args.engines:
        engines(out)
    args.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")

    if "daemon" in out:
        print("client-side latency, CISI (1460 docs), top_k=10, grouped; each uncached query then its repeat")
        for mode in ("hybrid", "vector", "keyword"):
            r = out["daemon"][mode]
            print(f"  {mode:<8} uncached p50 {r['uncached']['p50_ms']:8.2f} ms  p95 {r['uncached']['p95_ms']:8.2f}"
                  f" | cached p50 {r['cached']['p50_ms']:6.2f} ms  p95 {r['cached']['p95_ms']:6.2f}"
                  f" | speedup x{r['speedup_p50']}")
        a = out["daemon"]["auto"]
        if a["keyword_route"]:
            print(f"  auto: keyword route p50 {a['keyword_route']['p50_ms']:.2f} ms vs hybrid route p50 "
                  f"{a['hybrid_route']['p50_ms']:.2f} ms (uncached)")
    if "engines" in out:
        e = out["engines"]
        print(f"keyword engines, {e['chunks']} synthetic chunks: build fts5 {e['build_s']['fts5']} s, "
              f"tantivy {e['build_s']['tantivy']} s")
        for name, row in e["search"].items():
            fts5, tantivy = row['fts5']['p50_ms'], row['tantivy']['p50_ms']
            print(f"  {name:<12} fts5 p50 {fts5:8.2f} ms | tantivy p50 {tantivy:7.2f} ms")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = [k for k in ("daemon", "engines") if k in out]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        if panel == "daemon":
            modes = ["hybrid", "vector", "keyword"]
            x = range(len(modes))
            ax.bar([i - 0.2 for i in x], [out["daemon"][m]["uncached"]["p50_ms"] for m in modes], 0.4,
                   label="uncached")
            ax.bar([i + 0.2 for i in x], [out["daemon"][m]["cached"]["p50_ms"] for m in modes], 0.4, label="cached")
            ax.set_xticks(list(x), modes)
            ax.set_yscale("log")
            ax.set_ylabel("p50 ms (client side, log)")
            ax.set_title("ragd search: uncached vs cached page")
        else:
            names = list(out["engines"]["search"])
            x = range(len(names))
            ax.bar([i - 0.2 for i in x], [out["engines"]["search"][n]["fts5"]["p50_ms"] for n in names], 0.4,
                   label="SQLite FTS5")
            ax.bar([i + 0.2 for i in x], [out["engines"]["search"][n]["tantivy"]["p50_ms"] for n in names], 0.4,
                   label="tantivy (ragd)")
            ax.set_xticks(list(x), names, rotation=15)
            ax.set_yscale("log")
            ax.set_ylabel("p50 ms per query (log)")
            ax.set_title(f"keyword top-10 at {out['engines']['chunks']} chunks")
        ax.legend(loc="upper right" if panel == "daemon" else "center right", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "search_latency.png", dpi=120)


if __name__ == "__main__":
    main()
