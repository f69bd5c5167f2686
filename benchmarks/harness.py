"""The benchmark harness: ragd and its peers side by side, interleaved, in one run.

    python -m benchmarks [--docs 2000] [--rounds 3] [--seconds 5] [--peer-python .venv-peers/bin/python]
                         [--index-vectors 50000] [--large] [--gpu] [--skip-peers]

Every ragd-vs-peer figure is measured in alternating rounds (benchmarks/interleave.py):
each round measures every system once, the order reversed every other round, and a
ratio is the median of the per-round ratios with its spread (lowest-highest round).
The peers live in one long-lived process in their own virtualenv
(benchmarks/peers/server.py), so the rounds alternate without reloading anything.

Peers (benchmarks/peers/engines.py, embedders.py), all fed ragd's own chunk vectors:
  st_faiss    sentence-transformers + LangChain splitter + FAISS IndexFlatIP: the RedMica
              design's in-process stack (no permission filter)
  st_lancedb  sentence-transformers + LanceDB, prefiltered with the permission filter
  fe_qdrant   fastembed + qdrant-edge (Qdrant's own engine in process): the filter as payload
              conditions over payload indexes, HNSW searched at the hnsw_ef reaching the
              recall target
  fe_milvus   fastembed + Milvus Lite 2.5 (Milvus's C++ engine as a local server): the filter
              as an expression, IVF_FLAT at the nprobe reaching the recall target

Steps:
  1. corpus    a Redmine-like corpus from CISI text (benchmarks/corpus.py), deterministic by seed
  2. ingest    ragd IndexStream, the whole corpus in four steps, a short 8-client search load
               after each (search QPS vs corpus size; ragd only)
  3. vectors   ragd's chunk and query vectors (Embed RPC): what every peer is fed
  4. recall    ragd recall@10 against exact search under the same filter (over gRPC, text
               queries); each peer engine's recall@10 vs latency at each of its search-time
               settings (vector queries), and the cheapest setting reaching --recall-target
  5. rounds    ingest (a fresh collection / fresh peer indexes per round), embed, search load
               at each concurrency, searches while one writer streams updates: A B A B
  6. index     ragd's index search alone (in process, benchmarks/ragd_index.py) against
               qdrant-edge's and Milvus Lite's, on --index-vectors vectors (the CISI chunk
               vectors plus draws from a mixture fitted to them): recall vs QPS for every
               setting of each, then QPS and latency at 1/8/32 threads at equal recall, in rounds
  7. report    benchmarks/results/harness.json, harness_*.png, the tables in
               benchmarks/results/harness_table.md and in README.md between
               <!-- bench-table --> and <!-- /bench-table -->
`--gpu` records ONNX Runtime's provider, embed tokens/s and the share of the GPU's peak (needs CUDA).
`--large` sizes the corpus for about 1M chunks (hours on CPU: meant for a GPU machine).
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
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
for p in (HERE, HERE / "peers", REPO / "clients" / "python", REPO / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import common  # noqa: E402
import interleave  # noqa: E402
import load  # noqa: E402
import loadgen  # noqa: E402  (benchmarks/peers/loadgen.py: pure Python, shared with the peers)
from corpus import redmine_corpus  # noqa: E402

FILTER = {"project_ids": list(range(1, 11)), "user_id": 7}  # half the projects; private: only user 7's
CHUNKS_PER_DOC_GUESS = 4.1  # measured on the default corpus (seed 42); sizes --large
# Peak dense FLOP/s (fp16 tensor, no sparsity) of GPUs the device tool may lend.
GPU_PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10": 125e12,
                  "T4": 65e12}
# all-MiniLM-L6-v2 forward, per token: 6 layers x (4*384^2 attention projections + 2*384*1536 FFN)
# multiply-adds x 2 FLOPs, plus attention scores (~2*2*L*384 per layer at L~128): about 22.4 MFLOP.
FLOPS_PER_TOKEN = 2 * 6 * (4 * 384 ** 2 + 2 * 384 * 1536) + 6 * 4 * 128 * 384

# The peers' text-search stacks: (key, label, embedder, engine).
STACKS = [("st_faiss", "ST + LangChain + FAISS", "sentence-transformers", "faiss"),
          ("st_lancedb", "ST + LanceDB", "sentence-transformers", "lancedb"),
          ("fe_qdrant", "fastembed + qdrant-edge", "fastembed", "qdrant-edge"),
          ("fe_milvus", "fastembed + Milvus Lite", "fastembed", "milvus-lite")]
INDEX_PEERS = ["qdrant-edge", "milvus-lite"]
# Two peer processes, one per embedder family, as their users would run them: PyTorch's
# thread pools never share a process with fastembed's ONNX Runtime (or Qdrant's/Milvus's).
PROCESS_OF = {"sentence-transformers": "st", "faiss": "st", "lancedb": "st",
              "fastembed": "fe", "qdrant-edge": "fe", "milvus-lite": "fe"}


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


def loadavg() -> list[float]:
    try:
        return [float(x) for x in open("/proc/loadavg").read().split()[:3]]
    except OSError:
        return []


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


def write_dataset(path: Path, vectors, qvectors, queries, project_id, is_private, author_id, docs=None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    np.save(path / "vectors.npy", np.asarray(vectors, np.float32))
    np.save(path / "qvectors.npy", np.asarray(qvectors, np.float32))
    (path / "queries.json").write_text(json.dumps(queries))
    np.savez(path / "payload.npz", project_id=np.asarray(project_id, np.int64),
             is_private=np.asarray(is_private, bool), author_id=np.asarray(author_id, np.int64))
    if docs is not None:
        (path / "docs.json").write_text(json.dumps(docs))
    return path


def choose(sweep: list[dict], target: float) -> dict:
    """The cheapest setting (settings run from fastest to exact) reaching the recall target,
    else the one with the best recall."""
    for s in sweep:
        if s["recall_at_10"] >= target:
            return s
    return max(sweep, key=lambda s: s["recall_at_10"])


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


# ---------------------------------------------------------------- the run


class Run:
    """One harness run: the daemon, the peers' process, the corpus, and the results."""

    def __init__(self, args, docs, queries, workdir: Path, peers) -> None:
        self.args, self.docs, self.queries, self.workdir, self.peers = args, docs, queries, workdir, peers
        self.daemon_pid: int | None = None
        self.kw = {"top_k": 10, "mode": "vector", "filter": FILTER, "group_by_document": False}
        self.res: dict = {"ragd": {}, "peers": {}, "rounds": {}, "ratios": {}, "choices": {}}

    def ragd_cpu(self) -> float:
        """CPU seconds of the daemon plus this process (the gRPC client): ragd's side of a figure."""
        return loadgen.cpu_seconds(self.daemon_pid) + loadgen.cpu_seconds(tree=False)

    def ragd_measured(self, fn, count: str, per_key: str) -> dict:
        """fn()'s result with ragd's CPU seconds and `count` per CPU-second under `per_key`."""
        c0 = self.ragd_cpu()
        out = fn()
        out["cpu_s"] = self.ragd_cpu() - c0
        out[per_key] = out[count] / out["cpu_s"] if out["cpu_s"] else None
        return out

    # ---------------------------------------------------- ragd-only steps

    def ingest_all(self, c, address) -> None:
        args, docs = self.args, self.docs
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
            r = asyncio.run(load.search_load(address, self.queries, [args.scale_concurrency], args.scale_seconds,
                                             **self.kw))
            scale[str(chunks_total)] = r[str(args.scale_concurrency)]
        self.res["ragd"]["ingest_all"] = {"docs_per_s": len(docs) / ingest_s, "chunks_per_s": chunks_total / ingest_s,
                                          "chunks": chunks_total, "seconds": ingest_s, "batch": args.batch}
        self.res["ragd"]["scale"] = scale

    def vectors(self, c) -> None:
        chunks, inputs = chunk_corpus(self.docs)
        # The same model and texts give the same vectors: cached across runs (var/bench-cache).
        key = hashlib.sha256(json.dumps([c.stats().model.sha256, inputs, self.queries]).encode()).hexdigest()[:16]
        cache = REPO / "var" / "bench-cache" / f"harness-vectors-{key}.npz"
        if cache.exists() and not self.args.gpu:  # --gpu measures the embedding: never cached
            z = np.load(cache)
            self.vecs, self.qvecs = z["vectors"], z["queries"]
            self.res["ragd"]["embed_all"] = {"cached": str(cache.relative_to(REPO))}
            log(f"ragd's vectors of {len(inputs)} chunks and {len(self.queries)} queries from {cache}")
        else:
            log(f"embedding {len(inputs)} chunks for the peers (ragd Embed RPC)")
            self.vecs, self.res["ragd"]["embed_all"] = embed_all(c, inputs)
            self.qvecs, _ = embed_all(c, self.queries)
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, vectors=self.vecs, queries=self.qvecs)
        self.chunks, self.inputs = chunks, inputs
        self.res["ragd"]["chunks_match_ingest"] = len(chunks) == self.res["ragd"]["ingest_all"]["chunks"]
        self.e2e_dir = write_dataset(
            self.workdir / "e2e", self.vecs, self.qvecs, self.queries, [ch["project_id"] for ch in chunks],
            [bool(ch["is_private"]) for ch in chunks], [ch["author_id"] for ch in chunks], self.docs)

    def ragd_recall(self, c) -> None:
        chunks, vectors, qvectors = self.chunks, self.vecs, self.qvecs
        ps = set(FILTER["project_ids"])
        mask = np.array([ch["project_id"] in ps and (not ch["is_private"] or ch["author_id"] == FILTER["user_id"])
                         for ch in chunks])
        truth = loadgen.exact_topk(vectors, qvectors, mask, 10)
        key_of = {(ch["doc"], ch["text"]): i for i, ch in enumerate(chunks)}
        hits = unmatched = 0
        lat = []
        for qi, q in enumerate(self.queries):
            t0 = time.perf_counter()
            r = c.search(q, **self.kw)
            lat.append((time.perf_counter() - t0) * 1000)
            got = set()
            for h in r.hits:
                i = key_of.get((h.document_id, h.text))
                if i is None:
                    unmatched += 1
                else:
                    got.add(i)
            hits += len(got & set(truth[qi].tolist()))
        self.res["ragd"]["recall"] = {"recall_at_10": hits / (10 * len(self.queries)), "unmatched_hits": unmatched,
                                      **load.summarize(lat, sum(lat) / 1000)}
        log(f"ragd recall@10 {self.res['ragd']['recall']['recall_at_10']:.3f} (unmatched hits {unmatched}), "
            f"text queries over gRPC, p50 {self.res['ragd']['recall']['p50_ms']:.1f} ms")

    # ---------------------------------------------------- peers: build and sweep

    def peer(self, name: str):
        """The peers' process holding an embedder or engine."""
        return self.peers[PROCESS_OF[name]]

    def peers_build(self) -> None:
        for proc in self.peers.values():
            self.res["peers"].setdefault("versions", {}).update(proc.call("hello"))
            proc.call("open", dataset="e2e", dir=str(self.e2e_dir))
        builds, sweeps = {}, {}
        for engine in ("faiss", "lancedb", "qdrant-edge", "milvus-lite"):
            p = self.peer(engine)
            log(f"peer {engine}: building over {len(self.vecs)} vectors")
            builds[engine] = p.call("build", key=engine, engine=engine, dataset="e2e")
            sweeps[engine] = p.call("sweep", key=engine, k=10, filter=FILTER)
            best = choose(sweeps[engine], self.args.recall_target)
            self.res["choices"][engine] = best
            log(f"peer {engine}: " + ", ".join(f"{s['setting']} {s['recall_at_10']:.3f}@{s['p50_ms']:.2f}ms"
                                               for s in sweeps[engine]) + f"; chosen: {best['setting']}")
        self.res["peers"]["build"] = builds
        self.res["peers"]["sweep"] = sweeps

    # ---------------------------------------------------- interleaved rounds

    def rounds_ingest(self, c) -> None:
        part = self.docs[: self.args.ingest_docs]
        batches = [part[i:i + self.args.batch] for i in range(0, len(part), self.args.batch)]
        counter = [0]

        def ingest():
            counter[0] += 1
            coll = f"ingest-round-{counter[0]}"  # a fresh collection per round: the same work each time
            t0 = time.perf_counter()
            chunks = 0
            for res in c.index_stream(iter(batches), collection=coll):
                assert all(a.status == "indexed" for a in res.acks), res.acks[:3]
                chunks += sum(a.chunks for a in res.acks)
            s = time.perf_counter() - t0
            return {"docs_per_s": len(part) / s, "chunks": chunks, "seconds": s, "docs": len(part)}

        def ragd():
            return self.ragd_measured(ingest, "docs", "docs_per_cpu_s")

        systems = {"ragd": ragd}
        if self.peers:
            # One split + encode per embedder per round, then each of its engines' add into a
            # fresh index: a stack's time is split + encode + its own add.
            for emb in dict.fromkeys(e for _, _, e, _ in STACKS):
                engines = [eng for _, _, e, eng in STACKS if e == emb]
                systems[emb] = lambda emb=emb, engines=engines: self.peer(emb).call(
                    "ingest", embedder=emb, engines=engines, docs=part)
        log(f"ingest rounds: {len(part)} documents per round into a fresh collection / fresh peer indexes")
        rounds = interleave.run_rounds(self.args.rounds, systems)
        per_stack = {"ragd": rounds["ragd"]}
        for key, _, emb, engine in STACKS:
            if emb in rounds:
                per_stack[key] = [{**r["engines"][engine], "encode_s": r["encode_s"], "split_s": r["split_s"],
                                   "chunks": r["chunks"]} for r in rounds[emb]]
        self._record("ingest", per_stack, "docs_per_s", also=("docs_per_cpu_s",))

    def rounds_embed(self, c) -> None:
        texts = self.inputs[: self.args.embed_texts]
        tokens = sum(int(t) for t in c.embed(texts, timeout=600).tokens)

        def ragd():
            return self.ragd_measured(lambda: embed_all(c, texts)[1], "texts", "texts_per_cpu_s")

        systems = {"ragd": ragd}
        if self.peers:
            for name in ("sentence-transformers", "fastembed"):
                def peer(name=name):
                    r = self.peer(name).call("embed", embedder=name, texts=texts)
                    return {**r, "tokens_per_s": tokens / r["seconds"]}
                systems[name] = peer
        log(f"embed rounds: {len(texts)} chunk texts ({tokens} tokens) per round")
        self._rounds("embed", systems, "texts_per_s", also=("texts_per_cpu_s",))

    def rounds_load(self, address) -> None:
        for conc in self.args.concurrency:
            def ragd(conc=conc):
                return self.ragd_measured(lambda: asyncio.run(load.search_load(
                    address, self.queries, [conc], self.args.seconds, quiet=True, **self.kw))[str(conc)],
                    "n", "per_cpu_s")
            systems = {"ragd": ragd}
            if self.peers:
                for key, _, emb, engine in STACKS:
                    setting = self._setting_of(engine)

                    def peer(engine=engine, emb=emb, setting=setting, conc=conc):
                        return self.peer(engine).call("load", key=engine, setting=setting, concurrency=conc,
                                               seconds=self.args.seconds, filter=FILTER, embedder=emb)
                    systems[key] = peer
            log(f"search load rounds at {conc} clients ({self.args.seconds} s each)")
            self._rounds(f"load_{conc}", systems, "qps", also=("p50_ms", "p99_ms", "per_cpu_s"))

    def rounds_mixed(self, address) -> None:
        docs = self.docs[: max(64, len(self.docs) // 4)]
        conc = self.args.mixed_concurrency

        def ragd():
            c0 = self.ragd_cpu()
            out = asyncio.run(load.mixed_load(address, self.queries, docs, conc, self.args.seconds, **self.kw))
            return {**out, "cpu_s": self.ragd_cpu() - c0}

        systems = {"ragd": ragd}
        if self.peers:
            for key, _, emb, engine in STACKS:
                def peer(engine=engine, emb=emb):
                    return self.peer(engine).call("mixed", key=engine, embedder=emb, setting=self._setting_of(engine),
                                           concurrency=conc, seconds=self.args.seconds, filter=FILTER, docs=docs)
                systems[key] = peer
        log(f"mixed read/write rounds: searches at {conc} clients while one writer streams updates")
        rounds = interleave.run_rounds(self.args.rounds, systems, log=None)
        self.res["rounds"]["mixed"] = rounds
        flat = {k: [{"search_qps": r["search"]["qps"], "search_p99_ms": r["search"].get("p99_ms"),
                     "write_docs_per_s": r["write"]["docs_per_s"]} for r in v] for k, v in rounds.items()}
        self.res["ratios"]["mixed"] = {
            k: {m: interleave.ratio_of(flat["ragd"], flat[k], m) for m in ("search_qps", "search_p99_ms",
                                                                            "write_docs_per_s")}
            for k in flat if k != "ragd"}
        self.res["medians"] = self.res.get("medians", {})
        self.res["medians"]["mixed"] = {k: {m: interleave.median(interleave.values(v, m)) for m in v[0]}
                                        for k, v in flat.items()}
        for k, r in self.res["ratios"]["mixed"].items():
            log(f"mixed ragd/{k}: search QPS {interleave.fmt_ratio(r['search_qps'])}, "
                f"writes {interleave.fmt_ratio(r['write_docs_per_s'])}")

    def _setting_of(self, engine: str) -> dict:
        ch = self.res["choices"][engine]
        return {"label": ch["setting"], "params": ch["params"], "exact": ch["exact"]}

    def _rounds(self, name: str, systems: dict, key: str, also: tuple[str, ...] = ()) -> None:
        self._record(name, interleave.run_rounds(self.args.rounds, systems, log=log), key, also)

    def _record(self, name: str, rounds: dict, key: str, also: tuple[str, ...] = ()) -> None:
        self.res["rounds"][name] = rounds
        self.res.setdefault("medians", {})[name] = {
            k: {m: interleave.median(interleave.values(v, m)) for m in (key, *also)} for k, v in rounds.items()}
        self.res["ratios"][name] = {k: {m: interleave.ratio_of(rounds["ragd"], rounds[k], m) for m in (key, *also)}
                                    for k in rounds if k != "ragd"}
        for k, r in self.res["ratios"][name].items():
            log(f"{name} ragd/{k}: {key} {interleave.fmt_ratio(r[key])}")

    # ---------------------------------------------------- index search alone

    def index_step(self) -> None:
        """ragd's index (in process) vs qdrant-edge and Milvus Lite on the same larger vector set."""
        import index_scale
        from ragd_index import RagdIndex
        n = self.args.index_vectors
        real, real_q = index_scale.real_vectors()
        mix = index_scale.Mixture(real)
        vecs = index_scale.cached_vectors(n, mix, real)
        nq = self.args.index_queries
        qvecs = np.concatenate([real_q, mix.draw(max(nq - len(real_q), 0), seed=n + 1)])[:nq].astype(np.float32)
        rng = np.random.default_rng(n)
        cpd = self.args.index_chunks_per_doc
        ndocs = (n + cpd - 1) // cpd
        project = np.repeat(rng.integers(1, 21, ndocs), cpd)[:n]
        private = np.repeat(rng.random(ndocs) < 0.1, cpd)[:n]
        author = np.repeat(rng.integers(1, 201, ndocs), cpd)[:n]
        mask = np.isin(project, FILTER["project_ids"]) & (~private | (author == FILTER["user_id"]))
        truth = loadgen.exact_topk(vecs, qvecs, mask, 10)
        out: dict = {"vectors": n, "queries": nq, "real_vectors": int(min(len(real), n)),
                     "filter_share": float(mask.mean()), "chunks_per_doc": cpd}
        log(f"index step: {n:,} vectors ({out['real_vectors']} real CISI chunk vectors, the rest mixture draws), "
            f"filter admits {mask.mean():.0%}")
        ragd = RagdIndex(self.workdir)
        try:
            out["ragd_build"] = ragd.build(vecs, project, private, author, cpd)
            sweeps = {"ragd": [{"setting": s.label, "params": s.params, "exact": s.exact,
                                **loadgen.sweep(lambda v, s=s: ragd.search(v, 10, FILTER, s), qvecs, truth, 10)}
                               for s in ragd.settings()]}
            out["ragd_build"].update(ragd.train())
            log(f"ragd index: flat recall {sweeps['ragd'][0]['recall_at_10']:.3f}; IVF-PQ trained "
                f"(nlist {out['ragd_build']['nlist']}) in {out['ragd_build']['train_and_build_s']:.0f} s")
            sweeps["ragd"] += [{"setting": s.label, "params": s.params, "exact": s.exact,
                                **loadgen.sweep(lambda v, s=s: ragd.search(v, 10, FILTER, s), qvecs, truth, 10)}
                               for s in ragd.settings()]
            ivf = [s for s in sweeps["ragd"] if not s["exact"]]
            choices = {"ragd": choose(ivf, self.args.recall_target)}
            if self.peers:
                index_dir = write_dataset(self.workdir / "index", vecs, qvecs, [""] * nq, project, private, author)
                for proc in {PROCESS_OF[e] for e in INDEX_PEERS}:
                    self.peers[proc].call("open", dataset="index", dir=str(index_dir))
                out["peer_build"] = {}
                for engine in INDEX_PEERS:
                    log(f"index step: building {engine}")
                    out["peer_build"][engine] = self.peer(engine).call("build", key=f"index-{engine}",
                                                                       engine=engine, dataset="index")
                    sweeps[engine] = self.peer(engine).call("sweep", key=f"index-{engine}", k=10, filter=FILTER)
                    choices[engine] = choose([s for s in sweeps[engine] if not s["exact"]] or sweeps[engine],
                                             self.args.recall_target)
            for name, sw in sweeps.items():
                log(f"index {name}: " + ", ".join(f"{s['setting']} {s['recall_at_10']:.3f}@{s['p50_ms']:.2f}ms"
                                                  for s in sw) + f"; chosen {choices[name]['setting']}")
            out["sweeps"], out["choices"] = sweeps, choices
            from ragd_index import IndexSetting
            rsetting = IndexSetting(choices["ragd"]["setting"], choices["ragd"]["params"], choices["ragd"]["exact"])
            for conc in self.args.index_concurrency:
                def ragd_load(conc=conc):
                    c0 = loadgen.cpu_seconds(tree=False)  # in this process: the index alone
                    out = loadgen.run_threads(lambda i: ragd.search(qvecs[i], 10, FILTER, rsetting), nq, conc,
                                              self.args.index_seconds)
                    out["cpu_s"] = loadgen.cpu_seconds(tree=False) - c0
                    out["per_cpu_s"] = out["n"] / out["cpu_s"] if out["cpu_s"] else None
                    return out
                systems = {"ragd": ragd_load}
                for engine in INDEX_PEERS if self.peers else []:
                    ch = choices[engine]

                    def peer(engine=engine, ch=ch, conc=conc):
                        return self.peer(engine).call("load", key=f"index-{engine}", concurrency=conc,
                                               seconds=self.args.index_seconds, filter=FILTER,
                                               setting={"label": ch["setting"], "params": ch["params"],
                                                        "exact": ch["exact"]})
                    systems[engine] = peer
                log(f"index search alone at {conc} threads, equal recall")
                self._rounds(f"index_{conc}", systems, "qps", also=("p50_ms", "p99_ms", "per_cpu_s"))
        finally:
            ragd.close()
            if self.peers:
                for engine in INDEX_PEERS:
                    try:
                        self.peer(engine).call("close", key=f"index-{engine}")
                    except Exception:  # noqa: BLE001 - not built (an earlier failure is what matters)
                        pass
        self.res["index"] = out


def run_index_only(args) -> dict:
    """--index-only: the index step alone (ragd's index vs qdrant-edge and Milvus Lite, interleaved),
    merged into the last full run's results (its end-to-end figures are kept as they were)."""
    t_start = time.perf_counter()
    old = json.loads((common.RESULTS / "harness.json").read_text())
    workdir = Path(tempfile.mkdtemp(prefix="ragd-harness-"))
    peers: dict = {}
    try:
        if not args.skip_peers:
            from peer_models import fastembed_model_dir
            from peer_process import PeerProcess
            env = {"BENCH_FASTEMBED_DIR": str(fastembed_model_dir())}
            peers = {"fe": PeerProcess(args.peer_python, env=env)}  # the index peers' process
        r = Run(args, [], [], workdir, peers)
        load0 = loadavg()
        r.index_step()
        load1 = loadavg()
    finally:
        for proc in peers.values():
            proc.close()
        shutil.rmtree(workdir, ignore_errors=True)
    old["index"] = r.res["index"]
    for part in ("rounds", "ratios", "medians"):
        old.setdefault(part, {}).update({k: v for k, v in r.res.get(part, {}).items() if k.startswith("index_")})
    old["index_rerun"] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                          "settings": {k: v for k, v in vars(args).items() if k.startswith("index_") or
                                       k in ("rounds", "recall_target")},
                          "load_average": {"start": load0, "end": load1}, "wall_s": time.perf_counter() - t_start}
    return old


def run(args) -> dict:
    t_start = time.perf_counter()
    log(f"corpus: {args.docs} documents, seed {args.seed}; load average {loadavg()}")
    docs = redmine_corpus(args.docs, args.seed)
    queries = make_queries(args.queries, args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="ragd-harness-"))
    peers: dict = {}
    try:
        if not args.skip_peers:
            from peer_models import fastembed_model_dir
            from peer_process import PeerProcess
            env = {"BENCH_FASTEMBED_DIR": str(fastembed_model_dir())}
            peers = {name: PeerProcess(args.peer_python, env=env) for name in ("st", "fe")}
        r = Run(args, docs, queries, workdir, peers)
        r.res["settings"] = {k: v for k, v in vars(args).items() if k != "peer_python"} | {"filter": FILTER}
        r.res["mix"] = {k: sum(d["type"] == k for d in docs) for k in ("issue", "journal", "wiki")}
        r.res["load_average"] = {"start": loadavg()}
        env = {"RAGD_CACHE_ENABLED": "false"}  # every search embeds its query and searches: no cached pages
        if args.secure:  # the daemon with tokens and TLS; the clients read RAGD_TOKEN and RAGD_CA_FILE
            env.update(common.secure_env(workdir / "security"))
            os.environ.update(RAGD_TOKEN=env["RAGD_TOKEN"], RAGD_CA_FILE=env["RAGD_CA_FILE"])
        if args.gpu:
            env["RAGD_MODEL_DEVICE"] = "cuda"
        from ragd_client import RagClient
        with common.daemon(env) as (address, proc):
            r.daemon_pid = proc.pid
            with RagClient(address, timeout=600, stream_timeout=None) as c:
                c.wait_ready()
                c.embed(["warm up"])
                base_mem = vmstat(proc.pid)
                r.ingest_all(c, address)
                r.vectors(c)
                r.ragd_recall(c)
                if peers:
                    r.peers_build()
                r.rounds_ingest(c)
                r.rounds_embed(c)
                r.rounds_load(address)
                r.rounds_mixed(address)
                r.res["ragd"]["memory"] = {**vmstat(proc.pid), "baseline_rss_mib": base_mem["rss_mib"]}
                r.res["ragd"]["stats"] = {"repr": repr(c.stats())[:2000]}
                if args.gpu:
                    r.res["ragd"]["gpu"] = gpu_facts(r.res["ragd"]["embed_all"].get("tokens_per_s"))
        r.res["load_average"]["after_end_to_end"] = loadavg()
        if args.index_vectors:
            r.index_step()
        for name, proc in peers.items():
            r.res["peers"].setdefault("memory", {})[name] = proc.call("memory")
        r.res["load_average"]["end"] = loadavg()
    finally:
        for proc in peers.values():
            proc.close()
        shutil.rmtree(workdir, ignore_errors=True)
    res = r.res
    res["queries"] = len(queries)
    res["gpu_note"] = ("run with --gpu: see ragd.gpu in harness.json" if args.gpu else
                       "not run here (no GPU lent); `python -m benchmarks --gpu` records ONNX Runtime's provider, "
                       "tokens/s and the share of the GPU's fp16 peak")
    res["machine"] = common.machine()
    res["wall_s"] = time.perf_counter() - t_start
    return res


# ---------------------------------------------------------------- report


def fmt(v) -> str:
    if v is None:
        return "n/a"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}" if v < 1 else f"{v:.2f}"


def rows(res: dict) -> list[tuple[str, dict, dict, bool]]:
    """(figure, {system: median value}, {peer: ratio dict}, higher_is_better) for the main table."""
    med, rat = res.get("medians", {}), res.get("ratios", {})
    out = []

    def add(fig, step, key, higher=True, sys_map=None):
        m = med.get(step)
        if not m:
            return
        vals = {k: v.get(key) for k, v in m.items()}
        ratios = {k: v.get(key) for k, v in rat.get(step, {}).items()}
        if sys_map:
            vals.update({k: vals.get(src) for k, src in sys_map.items()})
            ratios.update({k: ratios.get(src) for k, src in sys_map.items()})
        out.append((fig, vals, ratios, higher))

    add("ingest, documents/s", "ingest", "docs_per_s")
    add("ingest, documents per CPU-second", "ingest", "docs_per_cpu_s")
    for c in res["settings"]["concurrency"]:
        add(f"search QPS, {c} clients", f"load_{c}", "qps")
        add(f"search p50 ms, {c} clients", f"load_{c}", "p50_ms", higher=False)
        add(f"search p99 ms, {c} clients", f"load_{c}", "p99_ms", higher=False)
        add(f"search queries per CPU-second, {c} clients", f"load_{c}", "per_cpu_s")
    add(f"search QPS while indexing, {res['settings']['mixed_concurrency']} clients", "mixed", "search_qps")
    add(f"search p99 ms while indexing, {res['settings']['mixed_concurrency']} clients", "mixed", "search_p99_ms",
        higher=False)
    add("documents/s written during that load", "mixed", "write_docs_per_s")
    add("embed texts/s (ragd: Embed RPC, batches of 256; ST: encode(), batches of 32; fastembed: embed(), "
        "batches of 256)", "embed", "texts_per_s",
        sys_map={"st_faiss": "sentence-transformers", "st_lancedb": "sentence-transformers",
                 "fe_qdrant": "fastembed", "fe_milvus": "fastembed"})
    add("embed texts per CPU-second", "embed", "texts_per_cpu_s",
        sys_map={"st_faiss": "sentence-transformers", "st_lancedb": "sentence-transformers",
                 "fe_qdrant": "fastembed", "fe_milvus": "fastembed"})
    return out


def table(res: dict) -> str:
    s = res["settings"]
    peers = [(k, n) for k, n, _, _ in STACKS]
    head = "| figure | ragd | " + " | ".join(f"{n} | ragd/peer" for _, n in peers) + " |"
    lines = [head, "|" + " --- |" * (2 + 2 * len(peers))]
    for fig, vals, ratios, higher in rows(res):
        cells = [fig + ("" if higher else " (lower is better)"), fmt(vals.get("ragd"))]
        for k, _ in peers:
            cells += [fmt(vals.get(k)), interleave.fmt_ratio(ratios.get(k))]
        lines.append("| " + " | ".join(cells) + " |")
    # recall and memory: not timings, one measurement each
    ch = res.get("choices", {})
    rec = ["recall@10 vs exact, same filter (peers: the setting used above)",
           fmt(res["ragd"]["recall"]["recall_at_10"])]
    for _k, _, _, engine in STACKS:
        c = ch.get(engine)
        rec += [f"{fmt(c['recall_at_10'])} ({c['setting']})" if c else "n/a", ""]
    lines.append("| " + " | ".join(rec) + " |")
    pm = res.get("peers", {}).get("memory", {})
    mem = ["peak RSS, MiB (whole process; lower is better)", fmt(res["ragd"]["memory"].get("peak_rss_mib"))]
    for _, _, emb, _ in STACKS:
        mem += [fmt(pm.get(PROCESS_OF[emb], {}).get("peak_rss_mib")), ""]
    lines.append("| " + " | ".join(mem) + " |")

    idx = res.get("index")
    if idx:
        lines += ["", f"Index search alone, {idx['vectors']:,} vectors x 384, the same filter (admits "
                      f"{idx['filter_share']:.0%}), at equal recall (each system's cheapest setting reaching "
                      f"recall@10 >= {s['recall_target']}), threads in process"
                      + (f" (re-measured alone with `--index-only` on {res['index_rerun']['date']}, load average "
                         f"{res['index_rerun']['load_average']['start'][0]:.1f} at the start, "
                         f"{res['index_rerun']['load_average']['end'][0]:.1f} at the end)"
                         if "index_rerun" in res else "") + ":", ""]
        names = [n for n in ("ragd", *INDEX_PEERS) if n in idx["choices"]]
        lines.append("| figure | " + " | ".join(
            f"{n} | ragd/{n}" if n != "ragd" else "ragd" for n in names) + " |")
        lines.append("|" + " --- |" * (1 + 1 + 2 * (len(names) - 1)))
        cells = ["setting, recall@10"]
        for n in names:
            c = idx["choices"][n]
            cells.append(f"{c['setting']}, {c['recall_at_10']:.3f}")
            if n != "ragd":
                cells.append("")
        lines.append("| " + " | ".join(cells) + " |")
        for conc in s["index_concurrency"]:
            step = f"index_{conc}"
            for key, label, higher in (("qps", f"QPS, {conc} threads", True),
                                       ("p50_ms", f"p50 ms, {conc} threads", False),
                                       ("p99_ms", f"p99 ms, {conc} threads", False),
                                       ("per_cpu_s", f"queries per CPU-second, {conc} threads", True)):
                m, rt = res["medians"].get(step, {}), res["ratios"].get(step, {})
                cells = [label + ("" if higher else " (lower is better)")]
                for n in names:
                    cells.append(fmt(m.get(n, {}).get(key)))
                    if n != "ragd":
                        cells.append(interleave.fmt_ratio(rt.get(n, {}).get(key)))
                lines.append("| " + " | ".join(cells) + " |")

    m = res["machine"]
    la = res.get("load_average", {})
    v = res.get("peers", {}).get("versions", {})
    notes = f"""
Measured by `python -m benchmarks` on {m['date']}: {m['cores']} cores ({m['cpu'] or 'CPU'}), shared with other
engineers' builds and tests while it ran (load average {la.get('start', ['?'])[0]} at the start,
{la.get('end', ['?'])[0]} at the end): every ragd-vs-peer figure is the median of {s['rounds']} interleaved rounds
(each round measures every system once, order reversed every other round); a ratio is the median of the per-round
ratios, with the lowest and highest round in brackets. On a machine this oversubscribed the wall-clock figures
measure the share of the cores each system got as much as its speed, so the work per CPU-second is reported beside
them (user + system time of every thread: ragd's daemon plus the Python client driving it, a peer's process with
its children, e.g. Milvus Lite's server): it does not depend on how busy the machine is.
Corpus {s['docs']} Redmine-like documents (seed {s['seed']}:
issues, notes, wiki pages from CISI text; {res['ragd']['ingest_all']['chunks']} chunks), {res['queries']} distinct
queries, top_k 10, {s['seconds']} s per system per concurrency level per round. Full figures:
`benchmarks/results/harness.json`; plots `harness_latency.png`, `harness_scale.png`, `harness_recall.png`.

What each side does (not the same work):
- **ragd**: a separate daemon over gRPC (client and daemon share the cores; the Python asyncio load generator is
  part of the cost). Each Search embeds the query (cache disabled for the run, micro-batched across concurrent
  clients), searches VECTOR mode with a Redmine permission filter applied inside the index (projects 1-10,
  private only for its author), and returns hits with chunk text, offsets, highlights, document fields and
  timings. Ingest acks only when the LMDB write is fsynced and searchable; each chunk is embedded with its title
  in front.
- **The peers** run in process (no network; two processes: the PyTorch stacks, and the fastembed stacks with
  Qdrant's and Milvus's engines), threads for concurrency, each query's text embedded in process, over ragd's own
  chunk vectors: **ST + LangChain + FAISS** (the RedMica design's stack, **no
  permission filter**, IndexFlatIP), **ST + LanceDB** ({v.get('lancedb', '?')}, SQL prefilter, flat: exact),
  **fastembed + qdrant-edge** (fastembed {v.get('fastembed', '?')} on the same weights, offline; qdrant-edge-py
  {v.get('qdrant-edge-py', '?')}: payload indexes, HNSW m 16 / ef_construct 100, searched at the hnsw_ef shown),
  **fastembed + Milvus Lite** (milvus-lite {v.get('milvus-lite', '?')}, the 2.x line that ships Milvus's C++
  engine; the 3.x line is a Python layer over faiss-cpu; Lite's local mode offers FLAT and IVF_FLAT only).
  Ingest: LangChain split + encode (title + chunk, as ragd embeds) + the engine's add (Qdrant: upsert + optimize).
- recall@10 is against exact search over ragd's vectors under the filter (ST + FAISS: unfiltered exact); below
  1.0 at this size is mostly tie-breaking among identical chunks (the corpus reuses abstracts). ragd is exact here
  (it switches to IVF-PQ at 50,000 vectors): the index table above compares the engines where the index matters.
- Mixed read/write: ragd streams re-versioned documents (each replaces its old chunks) over IndexStream; each peer
  has one writer thread splitting, encoding and appending batches of 16 documents (appends, no replacement; FAISS
  behind one lock shared with the searches, since a FAISS index may not be searched while it grows). Peak RSS of
  a peer is its process (PyTorch + FAISS + LanceDB, or fastembed + qdrant-edge + the Milvus Lite client; the Milvus
  Lite server process is not counted); ragd's is the daemon alone. GPU profile:
  {res.get('gpu_note', '')}
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
    med = res.get("medians", {})
    names = [("ragd", "ragd (gRPC, filtered, durable)")] + [(k, n) for k, n, _, _ in STACKS]
    conc = res["settings"]["concurrency"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for key, name in names:
        xs = [c for c in conc if med.get(f"load_{c}", {}).get(key, {}).get("qps")]
        if not xs:
            continue
        axes[0].plot(xs, [med[f"load_{c}"][key]["qps"] for c in xs], marker="o", label=name)
        axes[1].plot(xs, [med[f"load_{c}"][key]["p50_ms"] for c in xs], marker="o", label=f"{name} p50")
        axes[1].plot(xs, [med[f"load_{c}"][key]["p99_ms"] for c in xs], marker="x", linestyle="--",
                     label=f"{name} p99", color=axes[1].lines[-1].get_color())
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent clients")
        ax.legend(fontsize=6)
    axes[0].set_ylabel(f"search QPS, median of {res['settings']['rounds']} rounds (higher is better)")
    axes[1].set_ylabel("latency ms (log, lower is better)")
    axes[1].set_yscale("log")
    fig.suptitle(f"Text search under concurrency, {res['settings']['docs']} docs, "
                 f"{res['ragd']['ingest_all']['chunks']} chunks, CPU, interleaved rounds")
    fig.tight_layout()
    fig.savefig(common.RESULTS / "harness_latency.png", dpi=120)

    fig, ax = plt.subplots(figsize=(6, 4))
    sc = res["ragd"].get("scale", {})
    if sc:
        xs = sorted(sc, key=int)
        ax.plot([int(x) for x in xs], [sc[x]["qps"] for x in xs], marker="o", label="ragd")
    ax.set_xlabel("chunks in the index")
    ax.set_ylabel(f"search QPS at {res['settings']['scale_concurrency']} clients")
    ax.set_title("ragd search throughput while the corpus grows")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(common.RESULTS / "harness_scale.png", dpi=120)

    # Recall vs QPS: one curve per system (each point a search-time setting, 1 thread; the line
    # joins the settings no other setting beats on both recall and speed).
    colors = {"ragd": "tab:blue", "qdrant-edge": "tab:green", "milvus-lite": "tab:red", "lancedb": "tab:orange",
              "faiss": "tab:purple"}
    panels = [("end-to-end corpus, peers' index alone", res.get("peers", {}).get("sweep", {}),
               res["ragd"].get("recall"))]
    if res.get("index"):
        panels.append((f"{res['index']['vectors']:,} vectors, index alone", res["index"]["sweeps"], None))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.6), squeeze=False)
    for ax, (title, sweeps, ragd_point) in zip(axes[0], panels):
        for name, sw in sweeps.items():
            pts = [(1000 / s["mean_ms"], s["recall_at_10"]) for s in sw if s.get("mean_ms")]
            if not pts:
                continue
            color = colors.get(name)
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=14, color=color, label=name)
            front = sorted((p for p in pts if not any(q[0] >= p[0] and q[1] > p[1] or q[0] > p[0] and q[1] >= p[1]
                                                      for q in pts)), key=lambda p: p[0])
            ax.plot([p[0] for p in front], [p[1] for p in front], "-", color=color, lw=1)
        if ragd_point:
            ax.plot([1000 / ragd_point["mean_ms"]], [ragd_point["recall_at_10"]], "k*", ms=12,
                    label="ragd over gRPC, text query (embed + search + full hits)")
        ax.axhline(res["settings"]["recall_target"], color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("queries/s, 1 thread (1000 / mean ms; log)")
        ax.set_ylabel("recall@10 vs exact, same filter")
        ax.set_title(f"Recall vs QPS: {title}", fontsize=9)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(common.RESULTS / "harness_recall.png", dpi=120)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=2000, help="corpus size in documents")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--queries", type=int, default=200, help="distinct query texts")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per ragd-vs-peer figure")
    ap.add_argument("--seconds", type=float, default=5.0, help="seconds per system per concurrency level per round")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128])
    ap.add_argument("--batch", type=int, default=64, help="documents per IndexStream message")
    ap.add_argument("--ingest-docs", type=int, default=300, help="documents ingested per system per round")
    ap.add_argument("--embed-texts", type=int, default=256, help="chunk texts embedded per system per round")
    ap.add_argument("--scale-fractions", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0])
    ap.add_argument("--scale-concurrency", type=int, default=8)
    ap.add_argument("--scale-seconds", type=float, default=3.0)
    ap.add_argument("--mixed-concurrency", type=int, default=8)
    ap.add_argument("--recall-target", type=float, default=0.95, help="recall@10 the peers are tuned to reach")
    ap.add_argument("--index-vectors", type=int, default=50_000,
                    help="vectors of the index-alone comparison (0 skips it)")
    ap.add_argument("--index-queries", type=int, default=200)
    ap.add_argument("--index-chunks-per-doc", type=int, default=4)
    ap.add_argument("--index-concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--index-seconds", type=float, default=4.0)
    ap.add_argument("--peer-python", default=os.environ.get("PEER_PYTHON",
                                                             str(REPO / ".venv-peers" / "bin" / "python")))
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument("--large", action="store_true", help="about 1M chunks (hours on CPU; for a GPU machine)")
    ap.add_argument("--gpu", action="store_true", help="daemon on CUDA; record provider, tokens/s, share of peak")
    ap.add_argument("--secure", action="store_true", help="daemon with bearer tokens and TLS (clients use them)")
    ap.add_argument("--no-readme", action="store_true", help="do not rewrite the README table")
    ap.add_argument("--index-only", action="store_true",
                    help="only the index step (ragd's index vs the peers' engines), merged into the last "
                         "results/harness.json; the README table and PNGs are regenerated from the merge")
    args = ap.parse_args(argv)
    common.exit_on_sigterm()
    if args.large:
        args.docs = int(1_000_000 / CHUNKS_PER_DOC_GUESS)
    res = run_index_only(args) if args.index_only else run(args)
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    (common.RESULTS / "harness.json").write_text(json.dumps(res, indent=1) + "\n")
    plots(res)
    text = table(res)
    (common.RESULTS / "harness_table.md").write_text(text)
    print(text)
    if not args.no_readme and update_readme(text):
        log("README.md table regenerated")
    wall = res["index_rerun"]["wall_s"] if args.index_only else res["wall_s"]
    log(f"done in {wall:.0f} s: benchmarks/results/harness.json, harness_*.png")


if __name__ == "__main__":
    main()
