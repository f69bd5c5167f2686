"""Retrieval quality on CISI (tests/data/cisi): nDCG@10 over the 76 judged queries,
through a running daemon, for VECTOR (IVF-PQ forced on, and exact), KEYWORD (tantivy
BM25) and HYBRID (server-side fusion), beside the BM25 peer (bm25s) measured here and
the reference figures of design.md (exact search).

Also compares fusion schemes offline on the same candidate lists (RRF with several
k and weights, and a convex combination of min-max normalised scores), which is how
the server's default (search.rrf_k, search.*_weight) was chosen.

    python benchmarks/quality.py [--ivf-threshold 1000] [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "clients" / "python"))

import cisi  # noqa: E402

DESIGN = {"bm25 (bm25s, design.md)": 0.349, "dense exact (design.md)": 0.419, "hybrid RRF exact (design.md)": 0.422}


def ndcg_at_10(ranked: list[int], relevant: set[int]) -> float:
    dcg = sum(1.0 / math.log2(i + 2) for i, d in enumerate(ranked[:10]) if d in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(10, len(relevant))))
    return dcg / ideal if ideal else 0.0


def start_daemon(data: Path, env: dict) -> tuple[subprocess.Popen, str]:
    models = REPO / "var" / "test-cache" / "models"
    data.mkdir(parents=True, exist_ok=True)
    if models.exists() and not (data / "models").exists():
        (data / "models").symlink_to(models, target_is_directory=True)
    port_file = data / "port"
    port_file.unlink(missing_ok=True)  # a daemon restarted on the same data dir writes its own
    proc = subprocess.Popen([sys.executable, "-m", "ragd.cli", "serve", "--data-dir", str(data), "--listen",
                             "127.0.0.1:0", "--port-file", str(port_file)], cwd=REPO,
                            env={**os.environ, **env}, stdout=open(data / "daemon.log", "wb"),
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError((data / "daemon.log").read_text())
        time.sleep(0.1)
    return proc, f"127.0.0.1:{int(port_file.read_text())}"


def upsert_all(client, docs: list[dict], batch: int = 200) -> float:
    """Upsert `docs` in batches through `client` (wait=true); the seconds it took."""
    t0 = time.perf_counter()
    for i in range(0, len(docs), batch):
        client.upsert(docs[i:i + batch])
    return round(time.perf_counter() - t0, 1)


def doc_num(doc_id: str) -> int:
    return int(doc_id.split(":")[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ivf-threshold", type=int, default=1000,
                    help="index.ivf_threshold for the daemon (CISI is ~3k chunks: 1000 forces IVF-PQ on)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()

    import grpc

    from ragd.v1 import ragd_pb2 as pb
    from ragd.v1 import ragd_pb2_grpc
    from ragd_client import RagClient

    docs = cisi.documents()
    queries, rel = cisi.queries(), cisi.judgments()
    judged = sorted(q for q in rel if q in queries)
    tmp = Path(tempfile.mkdtemp(prefix="ragd-quality-"))
    env = {"RAGD_INDEX_IVF_THRESHOLD": str(args.ivf_threshold), "RAGD_CACHE_ENABLED": "false"}
    proc, address = start_daemon(tmp / "data", env)
    out: dict = {"queries": len(judged), "documents": len(docs), "metric": "nDCG@10 (binary relevance)"}
    try:
        with RagClient(address, timeout=600) as client:
            out["index_s"] = upsert_all(client, docs)
            deadline = time.monotonic() + 300
            while True:
                st = client.stats().collections[0]
                if st.index_kind == "ivfpq" or args.ivf_threshold <= 0 or time.monotonic() > deadline:
                    break
                time.sleep(1)
            out["index_kind"] = st.index_kind
            out["chunks"] = st.chunks
            channel = grpc.insecure_channel(address)
            stub = ragd_pb2_grpc.RagServiceStub(channel)

            def run(mode, top_k=10, exact=False):
                ranked = {}
                for q in judged:
                    req = pb.SearchRequest(query=queries[q], top_k=top_k, mode=mode, group_by_document=True,
                                           filter=pb.Filter(all_private=True), params=pb.SearchParams(exact=exact))
                    resp = stub.Search(req, timeout=120)
                    ranked[q] = [(doc_num(h.document_id), h.score) for h in resp.hits]
                return ranked

            def score(ranked):
                return round(sum(ndcg_at_10([d for d, _ in ranked[q]], rel[q]) for q in judged) / len(judged), 4)

            runs = {
                "VECTOR": run(pb.SEARCH_MODE_VECTOR),
                "VECTOR exact": run(pb.SEARCH_MODE_VECTOR, exact=True),
                "KEYWORD": run(pb.SEARCH_MODE_KEYWORD),
                "HYBRID": run(pb.SEARCH_MODE_HYBRID),
                "HYBRID exact": run(pb.SEARCH_MODE_HYBRID, exact=True),
                "AUTO": run(pb.SEARCH_MODE_AUTO),
            }
            out["ragd"] = {name: score(r) for name, r in runs.items()}
            # Offline fusion comparison on the same deep candidate lists (100 documents each).
            vec100 = run(pb.SEARCH_MODE_VECTOR, top_k=100)
            kw100 = run(pb.SEARCH_MODE_KEYWORD, top_k=100)
            channel.close()
    finally:
        proc.terminate()
        proc.wait(60)

    def rrf(q, k, wv=1.0, wk=1.0):
        s: dict[int, float] = {}
        for w, lst in ((wv, vec100[q]), (wk, kw100[q])):
            for r, (d, _) in enumerate(lst, 1):
                s[d] = s.get(d, 0.0) + w / (k + r)
        return sorted(s, key=lambda d: -s[d])

    def convex(q, alpha):
        s: dict[int, float] = {}
        for w, lst in ((alpha, vec100[q]), (1 - alpha, kw100[q])):
            if not lst:
                continue
            hi, lo = lst[0][1], lst[-1][1]
            for d, x in lst:
                s[d] = s.get(d, 0.0) + w * ((x - lo) / (hi - lo) if hi > lo else 1.0)
        return sorted(s, key=lambda d: -s[d])

    fusion = {}
    for k in (10, 30, 60, 100):
        fusion[f"rrf k={k}"] = [rrf(q, k) for q in judged]
    for wv in (1.5, 2.0):
        fusion[f"rrf k=60 wv={wv}"] = [rrf(q, 60, wv) for q in judged]
    for a in (0.5, 0.7, 0.8):
        fusion[f"convex minmax alpha={a}"] = [convex(q, a) for q in judged]
    out["fusion_offline"] = {name: round(sum(ndcg_at_10(r, rel[q]) for r, q in zip(lists, judged)) / len(judged), 4)
                             for name, lists in fusion.items()}

    # The BM25 peer: bm25s over whole documents (title + abstract), English stop words.
    import bm25s
    corpus = [f"{d['title']}\n{d['text']}" for d in docs]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False)
    res, _ = retriever.retrieve(bm25s.tokenize([queries[q] for q in judged], stopwords="en", show_progress=False),
                                k=10, show_progress=False)
    out["peers"] = {"bm25s (measured here)": round(
        sum(ndcg_at_10([doc_num(docs[i]["id"]) for i in res[j]], rel[q]) for j, q in enumerate(judged)) / len(judged),
        4), **DESIGN}

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality.json").write_text(json.dumps(out, indent=2) + "\n")
    width = max(len(k) for k in [*out["ragd"], *out["peers"], *out["fusion_offline"]])
    print(f"CISI nDCG@10, {out['queries']} judged queries, {out['documents']} documents, "
          f"{out['chunks']} chunks, vector index {out['index_kind']}")
    for section in ("ragd", "peers", "fusion_offline"):
        print(f"-- {section}")
        for name, value in out[section].items():
            print(f"  {name:<{width}}  {value:.4f}")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = [*out["ragd"], *out["peers"]]
    values = [*out["ragd"].values(), *out["peers"].values()]
    colors = ["tab:blue"] * len(out["ragd"]) + ["tab:gray"] * len(out["peers"])
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.barh(names[::-1], values[::-1], color=colors[::-1])
    for y, v in enumerate(values[::-1]):
        ax.text(v + 0.003, y, f"{v:.3f}", va="center", fontsize=8)
    ax.set_xlabel("nDCG@10 on CISI (76 judged queries)")
    ax.set_title(f"ragd through the daemon (blue; vector index {out['index_kind']}) vs peers (gray)")
    ax.set_xlim(0, max(values) * 1.15)
    fig.tight_layout()
    fig.savefig(args.out / "quality.png", dpi=120)


if __name__ == "__main__":
    main()
