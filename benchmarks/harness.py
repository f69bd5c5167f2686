"""The benchmark harness: ragd and its peers side by side, in one run, on this machine.

    python -m benchmarks [--docs 2000] [--seconds 8] [--peer-python .venv-peers/bin/python]
                         [--large] [--gpu] [--skip-peers]

Order (each step one concern):
  1. corpus      benchmarks/corpus.py: a Redmine-like corpus from CISI text, deterministic by seed
  2. ingest      ragd IndexStream (durable, searchable acks) in four steps; after each step a short
                 search load at 8 clients (search QPS vs corpus size)
  3. vectors     ragd's own chunk and query vectors (Embed RPC): what the peers are fed; embed tokens/s
  4. load        ragd Search (VECTOR, permission filter, cache off) at 1/8/32/128 concurrent clients
                 over gRPC (benchmarks/load.py)
  5. recall      ragd recall@10 against exact search under the same filter, with latency
  6. mixed       searches at 8 clients while one writer streams document updates
  7. peers       benchmarks/peers/vector_peers.py in the peers' virtualenv: sentence-transformers +
                 LangChain splitter + FAISS (the RedMica design's in-process stack) and
                 sentence-transformers + LanceDB (a real vector database from PyPI) fed ragd's vectors
  8. report      benchmarks/results/harness.json + harness_*.png, and the table in README.md between
                 <!-- bench-table --> and <!-- /bench-table -->
`--gpu` records ONNX Runtime's provider, embed tokens/s and the share of the GPU's peak (needs CUDA).
`--large` sizes the corpus for about 1M chunks (hours on CPU: meant for a GPU machine).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for p in (HERE, REPO / "clients" / "python", REPO / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import common  # noqa: E402
import load  # noqa: E402
from corpus import redmine_corpus  # noqa: E402

FILTER = {"project_ids": list(range(1, 11)), "user_id": 7}  # half the projects; private: only user 7's
CHUNKS_PER_DOC_GUESS = 4.1  # measured on the default corpus (seed 42); sizes --large
# Peak dense FLOP/s (fp16 tensor, no sparsity) of GPUs the device tool may lend.
GPU_PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10": 125e12,
                  "T4": 65e12}
# all-MiniLM-L6-v2 forward, per token: 6 layers x (4*384^2 attention projections + 2*384*1536 FFN)
# multiply-adds x 2 FLOPs, plus attention scores (~2*2*L*384 per layer at L~128): about 22.4 MFLOP.
FLOPS_PER_TOKEN = 2 * 6 * (4 * 384 ** 2 + 2 * 384 * 1536) + 6 * 4 * 128 * 384


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def vmstat(pid: int) -> dict:
    out = {}
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return {"rss_mib": out.get("VmRSS"), "peak_rss_mib": out.get("VmHWM")}


def dir_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 2 ** 20


def make_queries(n: int, seed: int) -> list[str]:
    """The 76 CISI queries (real information needs) plus first sentences of abstracts."""
    rng = random.Random(seed)
    qs = [q.strip() for q in common.cisi.queries().values()]
    abstracts = [d for d in common.cisi.documents() if d["text"]]
    while len(qs) < n:
        a = rng.choice(abstracts)
        first = re.split(r"(?<=[.!?])\s+", a["text"].strip())[0]
        if 20 < len(first) < 400:
            qs.append(first)
    return qs[:n]


def chunk_corpus(docs: list[dict]) -> tuple[list[dict], list[str]]:
    """ragd's chunks of each document (its normaliser and chunker, default settings) and the text
    ragd embeds for each (title + newline + chunk)."""
    from ragd import _native
    from ragd.engine.chunking import Chunker
    from ragd.engine.ingest import embedding_text
    chunker = Chunker(mode="chars")
    chunks, inputs = [], []
    for d in docs:
        text = _native.normalize_text(d["text"].encode("utf-8"))
        for c in chunker.chunk(text):
            chunks.append({"doc": d["id"], "text": c.text, "project_id": d["project_id"],
                           "is_private": d["is_private"], "author_id": d["author_id"]})
            inputs.append(embedding_text(d.get("title", ""), c.text))
    return chunks, inputs


def embed_all(client, texts: list[str], batch: int = 256) -> tuple[np.ndarray, dict]:
    vecs, tokens = [], 0
    t0 = time.perf_counter()
    for i in range(0, len(texts), batch):
        r = client.embed(texts[i:i + batch], timeout=600)
        vecs.append(r.vectors)
        tokens += int(sum(r.tokens))
    s = time.perf_counter() - t0
    return np.vstack(vecs).astype(np.float32), {"texts": len(texts), "tokens": tokens, "seconds": s,
                                                "texts_per_s": len(texts) / s, "tokens_per_s": tokens / s}


def gpu_facts(tokens_per_s: float | None) -> dict:
    import onnxruntime
    facts = {"onnxruntime_providers": onnxruntime.get_available_providers()}
    try:
        import faiss
        facts["faiss_gpus"] = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    except Exception:  # noqa: BLE001
        facts["faiss_gpus"] = 0
    try:
        name = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=20).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        name = ""
    facts["gpu"] = name
    peak = next((v for k, v in GPU_PEAK_FLOPS.items() if k in name), None)
    facts["peak_flops_fp16"] = peak
    facts["flops_per_token"] = FLOPS_PER_TOKEN
    if peak and tokens_per_s:
        facts["share_of_peak"] = tokens_per_s * FLOPS_PER_TOKEN / peak
    return facts


def ragd_side(args, docs, queries, workdir: Path) -> dict:
    from ragd_client import RagClient
    out: dict = {}
    env = {"RAGD_CACHE_ENABLED": "false"}  # every search embeds its query and searches: no cached pages
    if args.gpu:
        env["RAGD_MODEL_DEVICE"] = "cuda"
    kw = {"top_k": 10, "mode": "vector", "filter": FILTER, "group_by_document": False}
    with common.daemon(env) as (address, proc):
        with RagClient(address, timeout=600, stream_timeout=None) as c:
            c.wait_ready()
            c.embed(["warm up"])
            base_mem = vmstat(proc.pid)
            # 2. ingest in steps, a short load after each: search QPS vs corpus size.
            steps = [int(len(docs) * f) for f in args.scale_fractions]
            ingest_s, chunks_total, done, scale = 0.0, 0, 0, {}
            for upto in steps:
                part = docs[done:upto]
                t0 = time.perf_counter()
                batches = (part[i:i + args.batch] for i in range(0, len(part), args.batch))
                for res in c.index_stream(batches):
                    assert all(a.status in ("indexed", "unchanged") for a in res.acks), res.acks[:3]
                    chunks_total += sum(a.chunks for a in res.acks)
                ingest_s += time.perf_counter() - t0
                done = upto
                log(f"ragd ingested {done} docs ({chunks_total} chunks), {done / ingest_s:.1f} docs/s")
                r = asyncio.run(load.search_load(address, queries, [args.scale_concurrency], args.scale_seconds,
                                                 **kw))
                scale[str(chunks_total)] = r[str(args.scale_concurrency)]
            out["ingest"] = {"docs_per_s": len(docs) / ingest_s, "chunks_per_s": chunks_total / ingest_s,
                             "chunks": chunks_total, "seconds": ingest_s, "batch": args.batch}
            out["scale"] = scale
            # 3. ragd's vectors for the peers (and embed throughput).
            chunks, inputs = chunk_corpus(docs)
            log(f"embedding {len(inputs)} chunks for the peers (ragd Embed RPC)")
            vectors, out["embed"] = embed_all(c, inputs)
            qvectors, _ = embed_all(c, queries)
            out["chunks_match_ingest"] = len(chunks) == chunks_total
            np.save(workdir / "vectors.npy", vectors)
            np.save(workdir / "qvectors.npy", qvectors)
            (workdir / "chunks.json").write_text(json.dumps(chunks))
            # 4. load at each concurrency.
            log("ragd search load")
            out["load"] = asyncio.run(load.search_load(address, queries, args.concurrency, args.seconds, **kw))
            # 5. recall@10 vs exact under the same filter (sequential: latency at 1 client).
            ps = set(FILTER["project_ids"])
            mask = np.array([ch["project_id"] in ps and (not ch["is_private"] or ch["author_id"] == FILTER["user_id"])
                             for ch in chunks])
            scores = qvectors @ vectors.T
            scores[:, ~mask] = -np.inf
            truth = np.argsort(-scores, axis=1)[:, :10]
            key_of = {(ch["doc"], ch["text"]): i for i, ch in enumerate(chunks)}
            hits = unmatched = 0
            lat = []
            for qi, q in enumerate(queries):
                t0 = time.perf_counter()
                r = c.search(q, **kw)
                lat.append((time.perf_counter() - t0) * 1000)
                got = set()
                for h in r.hits:
                    i = key_of.get((h.document_id, h.text))
                    if i is None:
                        unmatched += 1
                    else:
                        got.add(i)
                hits += len(got & set(truth[qi].tolist()))
            out["recall"] = {"recall_at_10": hits / (10 * len(queries)), "unmatched_hits": unmatched,
                             **load.summarize(lat, sum(lat) / 1000)}
            log(f"ragd recall@10 {out['recall']['recall_at_10']:.3f} (unmatched hits {unmatched})")
            # 6. mixed read/write.
            log("ragd mixed read/write")
            out["mixed"] = asyncio.run(load.mixed_load(address, queries, docs[: max(64, len(docs) // 4)],
                                                       args.mixed_concurrency, args.seconds, **kw))
            st = c.stats()
            out["stats"] = {"repr": repr(st)[:2000]}
            out["memory"] = {**vmstat(proc.pid), "baseline_rss_mib": base_mem["rss_mib"]}
            try:
                cmd = open(f"/proc/{proc.pid}/cmdline").read().split("\0")
                data_dir = Path(cmd[cmd.index("--data-dir") + 1])
                out["memory"]["data_dir_mib"] = dir_mib(data_dir)
            except (OSError, ValueError, IndexError):
                pass
            if args.gpu:
                out["gpu"] = gpu_facts(out["embed"]["tokens_per_s"])
    return out


def peers_side(args, docs, queries, workdir: Path) -> dict:
    (workdir / "docs.json").write_text(json.dumps(docs))
    (workdir / "queries.json").write_text(json.dumps(queries))
    (workdir / "settings.json").write_text(json.dumps({
        "concurrency": args.concurrency, "seconds": args.seconds, "filter": FILTER,
        "scale_fractions": args.scale_fractions, "scale_concurrency": args.scale_concurrency,
        "scale_seconds": args.scale_seconds, "mixed_concurrency": args.mixed_concurrency}))
    cmd = [args.peer_python, str(HERE / "peers" / "vector_peers.py"), str(workdir)]
    # stderr (LanceDB's deprecation warnings per query, model loading bars) is shown only on failure.
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env={**os.environ, "RUST_LOG": "error", "LANCE_LOG": "error"})
    lines = proc.stdout.strip().splitlines()
    for line in lines[:-1]:
        log(line)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-5000:])
        raise RuntimeError(f"peers failed ({proc.returncode}): {' '.join(cmd)}")
    return json.loads(lines[-1])


# ---------------------------------------------------------------- report

PEERS = [("st_faiss", "ST + LangChain + FAISS"), ("st_lancedb", "ST + LanceDB")]


def rows(res: dict) -> list[tuple[str, str, dict, bool]]:
    """(figure, unit, {system: value}, higher_is_better)."""
    r, p = res["ragd"], res.get("peers", {})
    out = [("ingest, documents/s", "docs/s",
            {"ragd": r["ingest"]["docs_per_s"], **{k: p.get("ingest", {}).get(k, {}).get("docs_per_s")
                                                    for k, _ in PEERS}}, True)]
    for c in res["settings"]["concurrency"]:
        c = str(c)
        out.append((f"search QPS, {c} clients", "q/s",
                    {"ragd": r["load"][c]["qps"], **{k: p.get("load", {}).get(k, {}).get(c, {}).get("qps")
                                                      for k, _ in PEERS}}, True))
        for q in ("p50", "p99"):
            out.append((f"search {q}, {c} clients", "ms",
                        {"ragd": r["load"][c].get(f"{q}_ms"),
                         **{k: p.get("load", {}).get(k, {}).get(c, {}).get(f"{q}_ms") for k, _ in PEERS}}, False))
    rec = p.get("recall", {})
    out.append(("recall@10 vs exact (same filter)", "",
                {"ragd": r["recall"]["recall_at_10"],
                 "st_faiss": rec.get("faiss_flat_unfiltered", {}).get("recall_at_10"),
                 "st_lancedb": rec.get("lancedb_flat", {}).get("recall_at_10")}, True))
    mem = p.get("memory", {})
    out.append(("peak RSS, MiB (whole process)", "MiB",
                {"ragd": r["memory"].get("peak_rss_mib"), "st_faiss": mem.get("process_peak_rss_mib"),
                 "st_lancedb": mem.get("process_peak_rss_mib")}, False))
    m = r["mixed"]
    pm = p.get("mixed", {})
    out.append((f"search QPS while indexing, {m['concurrency']} clients", "q/s",
                {"ragd": m["search"]["qps"], **{k: pm.get(k, {}).get("search", {}).get("qps") for k, _ in PEERS}},
                True))
    out.append((f"search p99 while indexing, {m['concurrency']} clients", "ms",
                {"ragd": m["search"].get("p99_ms"),
                 **{k: pm.get(k, {}).get("search", {}).get("p99_ms") for k, _ in PEERS}}, False))
    out.append(("documents/s written during that load", "docs/s",
                {"ragd": m["write"]["docs_per_s"],
                 **{k: pm.get(k, {}).get("write", {}).get("docs_per_s") for k, _ in PEERS}}, True))
    st_embed = p.get("embed", {}).get("tokens_per_s")
    out.append(("embed tokens/s (ragd: Embed RPC, batches of 256; peers: ST encode(), batches of 32)", "tok/s",
                {"ragd": r["embed"]["tokens_per_s"], **{k: st_embed for k, _ in PEERS}}, True))
    return out


def fmt(v) -> str:
    if v is None:
        return "n/a"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}" if v < 1 else f"{v:.2f}"


def table(res: dict) -> str:
    s = res["settings"]
    head = "| figure | ragd | " + " | ".join(f"{n} | ragd/peer" for _, n in PEERS) + " |"
    lines = [head, "|" + " --- |" * (2 + 2 * len(PEERS))]
    for fig, _unit, vals, higher in rows(res):
        cells = [fig + ("" if higher else " (lower is better)"), fmt(vals["ragd"])]
        for k, _ in PEERS:
            v = vals.get(k)
            ratio = f"{vals['ragd'] / v:.2f}x" if v and vals["ragd"] is not None else "n/a"
            cells += [fmt(v), ratio]
        lines.append("| " + " | ".join(cells) + " |")
    m = res["machine"]
    r = res["ragd"]
    notes = f"""
Measured by `python -m benchmarks` on {m['date']}: {m['cores']} cores ({m['cpu'] or 'CPU'}), shared with other
work while it ran (all systems measured in the same run, so compare ratios rather than absolute figures);
corpus {s['docs']} Redmine-like documents (seed {s['seed']}: issues, notes, wiki pages from CISI text;
{r['ingest']['chunks']} chunks), {len(res.get('queries', [])) or s['queries']} distinct queries, top_k 10,
{s['seconds']} s per concurrency level. Full figures: `benchmarks/results/harness.json`; plots
`harness_latency.png`, `harness_scale.png`, `harness_recall.png`.

What each side does (not the same work):
- **ragd**: a separate daemon over gRPC (client and daemon share the two cores; the Python asyncio load
  generator is part of the cost). Each Search embeds the query (cache disabled for the run, micro-batched
  across concurrent clients), searches VECTOR mode with a Redmine permission filter applied inside the index
  (projects 1-10, private only for its author), and returns hits with chunk text, offsets, highlights,
  document fields and timings. Ingest acks only when the LMDB write is fsynced and searchable; each chunk is
  embedded with its title in front.
- **ST + LangChain + FAISS**: the RedMica design's in-process stack, no network, no durability, **no
  permission filter** (IndexFlatIP over ragd's vectors); one `encode([query])` per query (PyTorch CPU),
  threads for concurrency. Ingest: split + encode (each chunk with its title in front, as ragd embeds it) + add.
- **ST + LanceDB** ({res.get('peers', {}).get('versions', {}).get('lancedb', '?')}): an embedded vector
  database fed ragd's own chunk vectors, prefiltered with the same permission filter (SQL `where`,
  flat search: exact); queries encoded with sentence-transformers in process. Ingest = ST split + encode
  time + LanceDB add time.
- recall@10 is against exact search over ragd's vectors under the filter (ST + FAISS: unfiltered exact).
  below 1.0 is tie-breaking among identical chunks (the corpus reuses abstracts); ragd and LanceDB are both
  exact at this size (ragd switches to IVF-PQ at 50,000 vectors); the IVF-PQ
  recall/latency trade-off is in `harness_recall.png`. Peak RSS of the peers is one process holding
  PyTorch, the model, FAISS and LanceDB; ragd's is the daemon alone.
- Mixed read/write: ragd streams re-versioned documents (each replaces its old chunks) over IndexStream;
  each peer has one writer thread splitting, encoding and appending batches of 16 documents (appends, no
  replacement; FAISS behind one lock shared with the searches, since a FAISS index may not be searched while
  it grows; LanceDB appends table versions). Embed tokens/s of the peers is sentence-transformers `encode()`
  during their ingest (the same encoder for both). GPU profile: {res.get('gpu_note', '')}
"""
    return "\n".join(lines) + "\n" + notes


def update_readme(text_table: str) -> bool:
    readme = REPO / "README.md"
    src = readme.read_text()
    start, end = "<!-- bench-table -->", "<!-- /bench-table -->"
    if start not in src or end not in src:
        if "## Benchmarks" not in src:
            return False
        head, tail = src.split("## Benchmarks", 1)
        nxt = tail.find("\n## ")
        section, rest = (tail, "") if nxt < 0 else (tail[:nxt], tail[nxt:])
        src = head + "## Benchmarks" + section.rstrip("\n") + f"\n\n{start}\n{end}\n" + rest
    a, b = src.index(start) + len(start), src.index(end)
    readme.write_text(src[:a] + "\n" + text_table.strip() + "\n" + src[b:])
    return True


def plots(res: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    r, p = res["ragd"], res.get("peers", {})
    systems = [("ragd", "ragd (gRPC, filtered, durable)", r.get("load", {}))] + \
        [(k, n, p.get("load", {}).get(k, {})) for k, n in PEERS]
    conc = [str(c) for c in res["settings"]["concurrency"]]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for _key, name, ld in systems:
        xs = [int(c) for c in conc if c in ld and ld[c].get("n")]
        if not xs:
            continue
        axes[0].plot(xs, [ld[str(c)]["qps"] for c in xs], marker="o", label=name)
        axes[1].plot(xs, [ld[str(c)]["p50_ms"] for c in xs], marker="o", label=f"{name} p50")
        axes[1].plot(xs, [ld[str(c)]["p99_ms"] for c in xs], marker="x", linestyle="--", label=f"{name} p99",
                     color=axes[1].lines[-1].get_color())
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent clients")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("search QPS (higher is better)")
    axes[1].set_ylabel("latency ms (log, lower is better)")
    axes[1].set_yscale("log")
    fig.suptitle(f"Search under concurrency, {res['settings']['docs']} docs, {r['ingest']['chunks']} chunks, CPU")
    fig.tight_layout()
    fig.savefig(common.RESULTS / "harness_latency.png", dpi=120)

    fig, ax = plt.subplots(figsize=(6, 4))
    for _key, name, sc in [("ragd", "ragd", r.get("scale", {}))] + \
            [(k, n, p.get("scale", {}).get(k, {})) for k, n in PEERS]:
        if sc:
            xs = sorted(sc, key=int)
            ax.plot([int(x) for x in xs], [sc[x]["qps"] for x in xs], marker="o", label=name)
    ax.set_xlabel("chunks in the index")
    ax.set_ylabel(f"search QPS at {res['settings']['scale_concurrency']} clients")
    ax.set_title("Search throughput vs corpus size")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(common.RESULTS / "harness_scale.png", dpi=120)

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter([r["recall"]["p50_ms"]], [r["recall"]["recall_at_10"]], s=60, label="ragd (text query, gRPC)")
    for name, v in p.get("recall", {}).items():
        if isinstance(v, dict) and "recall_at_10" in v:
            ax.scatter([v["p50_ms"]], [v["recall_at_10"]], s=30, label=f"{name} (vector query)")
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency per query, 1 client (ms, log)")
    ax.set_ylabel("recall@10 vs exact")
    ax.set_title("Recall vs latency")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(common.RESULTS / "harness_recall.png", dpi=120)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=2000, help="corpus size in documents")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--queries", type=int, default=200, help="distinct query texts")
    ap.add_argument("--seconds", type=float, default=8.0, help="seconds per concurrency level")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128])
    ap.add_argument("--batch", type=int, default=64, help="documents per IndexStream message")
    ap.add_argument("--scale-fractions", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0])
    ap.add_argument("--scale-concurrency", type=int, default=8)
    ap.add_argument("--scale-seconds", type=float, default=3.0)
    ap.add_argument("--mixed-concurrency", type=int, default=8)
    ap.add_argument("--peer-python", default=os.environ.get("PEER_PYTHON",
                                                             str(REPO / ".venv-peers" / "bin" / "python")))
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument("--large", action="store_true", help="about 1M chunks (hours on CPU; for a GPU machine)")
    ap.add_argument("--gpu", action="store_true", help="daemon on CUDA; record provider, tokens/s, share of peak")
    ap.add_argument("--no-readme", action="store_true", help="do not rewrite the README table")
    args = ap.parse_args(argv)
    if args.large:
        args.docs = int(1_000_000 / CHUNKS_PER_DOC_GUESS)
    t_start = time.perf_counter()
    log(f"corpus: {args.docs} documents, seed {args.seed}")
    docs = redmine_corpus(args.docs, args.seed)
    queries = make_queries(args.queries, args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="ragd-harness-"))
    res: dict = {"settings": {k: v for k, v in vars(args).items() if k != "peer_python"} | {"filter": FILTER},
                 "mix": {k: sum(d["type"] == k for d in docs) for k in ("issue", "journal", "wiki")}}
    try:
        res["ragd"] = ragd_side(args, docs, queries, workdir)
        if not args.skip_peers:
            log(f"peers ({args.peer_python})")
            res["peers"] = peers_side(args, docs, queries, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    res["gpu_note"] = ("run with --gpu: see ragd.gpu in harness.json" if args.gpu else
                       "not run here (no GPU lent); `python -m benchmarks --gpu` records ONNX Runtime's provider, "
                       "tokens/s and the share of the GPU's fp16 peak")
    res["machine"] = common.machine()
    res["wall_s"] = time.perf_counter() - t_start
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    (common.RESULTS / "harness.json").write_text(json.dumps(res, indent=2) + "\n")
    plots(res)
    text = table(res)
    (common.RESULTS / "harness_table.md").write_text(text)
    print(text)
    if not args.no_readme and update_readme(text):
        log("README.md table regenerated")
    log(f"done in {res['wall_s']:.0f} s: benchmarks/results/harness.json, harness_*.png")


if __name__ == "__main__":
    main()
