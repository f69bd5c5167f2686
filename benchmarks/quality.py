"""Retrieval quality on CISI (tests/data/cisi): nDCG@10 over the 76 judged queries,
through a running daemon, for VECTOR (IVF-PQ forced on, and exact), KEYWORD (tantivy
BM25) and HYBRID (server-side fusion), beside the BM25 peer (bm25s) measured here and
the reference figures of design.md (exact search).

Also compares fusion schemes offline on the same candidate lists (RRF with several
k and weights, and a convex combination of min-max normalised scores), which is how
the server's default (search.rrf_k, search.*_weight) was chosen.

--precision runs the whole measurement once per model graph, each through its own
daemon (model.precision): fp32 (model.onnx), int8 (model.int8.onnx, the default int8
variant) and int8-attention-fp32 (the int8 variant with the attention blocks left in
float). The nDCG@10 differences to fp32 are what decides whether int8 may become
the CPU default (a loss below 0.005; ragd/embed/onnx_embedder.py CPU_DEFAULT_PRECISION).

    python benchmarks/quality.py [--ivf-threshold 1000] [--precision fp32 int8] [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "clients" / "python"))
sys.path.insert(0, str(REPO / "benchmarks"))

import cisi  # noqa: E402

DESIGN = {"bm25 (bm25s, design.md)": 0.349, "dense exact (design.md)": 0.419, "hybrid RRF exact (design.md)": 0.422}


def ndcg_at_10(ranked: list[int], relevant: set[int]) -> float:
    dcg = sum(1.0 / math.log2(i + 2) for i, d in enumerate(ranked[:10]) if d in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(10, len(relevant))))
    return dcg / ideal if ideal else 0.0


MODELS = REPO / "var" / "test-cache" / "models"


def start_daemon(data: Path, env: dict, models: Path = MODELS) -> tuple[subprocess.Popen, str]:
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


def models_for(precision: str, tmp: Path) -> tuple[Path, str]:
    """(models dir, model.precision) for a --precision name."""
    from ragd.embed.provision import provision_model
    if precision == "int8-attention-fp32":
        # Its own models dir: a copy of the fp32 model with the attention-kept int8 variant.
        from ragd.embed.quantize import add_int8_variant
        src = provision_model(MODELS)
        models = tmp / "models-int8-attention-fp32"
        (models / src.name).mkdir(parents=True, exist_ok=True)
        for f in ("model.onnx", "tokenizer.json", "manifest.json"):
            shutil.copy(src / f, models / src.name / f)
        manifest = json.loads((models / src.name / "manifest.json").read_text())
        manifest["files"] = {k: v for k, v in manifest["files"].items() if k in ("model.onnx", "tokenizer.json")}
        manifest["variants"] = {"model.onnx": manifest["variants"]["model.onnx"]}
        (models / src.name / "manifest.json").write_text(json.dumps(manifest))
        add_int8_variant(models / src.name, keep_attention=True)
        return models, "int8"
    provision_model(MODELS, int8=precision == "int8")  # before the daemon: it shares this cache
    return MODELS, precision


def measure(args, precision: str, tmp: Path) -> tuple[dict, dict, dict]:
    """One daemon with `precision`: (results, 100-deep vector lists, 100-deep keyword lists)."""
    import grpc

    from ragd.v1 import ragd_pb2 as pb
    from ragd.v1 import ragd_pb2_grpc
    from ragd_client import RagClient

    docs = cisi.documents()
    queries, rel = cisi.queries(), cisi.judgments()
    judged = sorted(q for q in rel if q in queries)
    models, model_precision = models_for(precision, tmp)
    env = {"RAGD_INDEX_IVF_THRESHOLD": str(args.ivf_threshold), "RAGD_CACHE_ENABLED": "false",
           "RAGD_MODEL_PRECISION": model_precision}
    proc, address = start_daemon(tmp / f"data-{precision}", env, models)
    out: dict = {"precision": precision}
    try:
        with RagClient(address, timeout=600) as client:
            out["model"] = repr(client.stats().model)[:500]
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
    return out, vec100, kw100


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ivf-threshold", type=int, default=1000,
                    help="index.ivf_threshold for the daemon (CISI is ~3k chunks: 1000 forces IVF-PQ on)")
    ap.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "int8", "int8-attention-fp32"],
                    help="model graphs to measure, each through its own daemon (the first is the reference)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--models", nargs="*", default=None,
                    help="the per-model table instead (benchmarks/model_families.py): CISI nDCG@10 VECTOR/HYBRID, "
                         "embedding speed interleaved, the Japanese set, the Japanese keyword analysers; no names = "
                         "every model ragd knows")
    ap.add_argument("--parts", nargs="+", default=["cisi", "speed", "japanese", "analysers"],
                    choices=["cisi", "speed", "japanese", "analysers"],
                    help="with --models: the parts to measure (the JSON keeps the others from its last run)")
    args = ap.parse_args()
    if args.models is not None:
        import model_families
        tmp = Path(tempfile.mkdtemp(prefix="ragd-quality-models-"))
        try:
            out = model_families.measure_models(args.models or model_families.DEFAULT_MODELS, args.parts, tmp,
                                                start_daemon, ndcg_at_10, doc_num, MODELS)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print(json.dumps(model_families.write(out, args.out), indent=2, ensure_ascii=False))
        return

    docs = cisi.documents()
    queries, rel = cisi.queries(), cisi.judgments()
    judged = sorted(q for q in rel if q in queries)
    tmp = Path(tempfile.mkdtemp(prefix="ragd-quality-"))
    try:
        measured = [measure(args, p, tmp) for p in args.precision]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    first, vec100, kw100 = measured[0]
    out: dict = {"queries": len(judged), "documents": len(docs), "metric": "nDCG@10 (binary relevance)",
                 **{k: v for k, v in first.items() if k != "precision"}, "precision": first["precision"]}
    if len(measured) > 1:
        out["precisions"] = {m["precision"]: m for m, _, _ in measured}
        out["delta_to_" + first["precision"]] = {
            m["precision"]: {k: round(v - first["ragd"][k], 4) for k, v in m["ragd"].items()}
            for m, _, _ in measured[1:]}

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
    for precision, delta in out.get("delta_to_" + first["precision"], {}).items():
        m = out["precisions"][precision]["ragd"]
        print(f"-- {precision} (its own daemon) vs {first['precision']}: "
              + ", ".join(f"{k} {m[k]:.4f} ({delta[k]:+.4f})" for k in m))

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = [*out["ragd"], *out["peers"]]
    values = [*out["ragd"].values(), *out["peers"].values()]
    colors = ["tab:blue"] * len(out["ragd"]) + ["tab:gray"] * len(out["peers"])
    for precision in list(out.get("precisions", {}))[1:]:  # the other graphs: their vector and hybrid figures
        for mode in ("VECTOR", "VECTOR exact", "HYBRID"):
            names.append(f"{mode}, {precision}")
            values.append(out["precisions"][precision]["ragd"][mode])
            colors.append("tab:purple")
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
