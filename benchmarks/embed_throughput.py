"""Embedding throughput: ragd over gRPC against the fp32 ceiling and the peers, and past
the ceiling with the int8 variant. Interleaved rounds, one run, same texts.

    python benchmarks/embed_throughput.py [--texts 512] [--rounds 3] [--peer-python .venv-peers/bin/python]

Systems, each measured once per round (order reversed every other round):
  ort_fp32       bare ONNX Runtime in this process on ragd's own fp32 graph (model.onnx),
                 length-sorted batches of 32, one intra-op thread per core: the fp32 ceiling
  ort_int8       the same on the int8 variant (model.int8.onnx): the int8 ceiling
  ragd_fp32      the ragd daemon (model.precision fp32), Embed over gRPC, 16 concurrent
                 clients sending one text per call (the micro-batcher merges them)
  ragd_int8      the same daemon configuration with model.precision int8
  ragd_fp32_1    the fp32 daemon with 1 client
  st             sentence-transformers encode() (PyTorch CPU), batches of 32, in the peers'
                 virtualenv (benchmarks/setup_peers.sh)
  fastembed      fastembed embed() on the same weights (its default batches of 256)
Texts: the first N CISI abstracts (real text; truncated at the model's 256 tokens).
Also: the 12-word query latency of each, the cosine of int8 to fp32 on the texts, and
which int8 instructions this CPU offers (ragd.doctor). Retrieval quality of int8 is
measured separately, through the daemon: benchmarks/quality.py --precision fp32 int8.
Writes benchmarks/results/embed_throughput.{json,png}.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "peers"))
sys.path.insert(0, str(HERE.parent / "clients" / "python"))

import common  # noqa: E402
import interleave  # noqa: E402
import loadgen  # noqa: E402  (benchmarks/peers/loadgen.py: CPU seconds of a process tree)

from ragd_client import AsyncRagClient, RagClient  # noqa: E402

QUERY = "why does the nightly backup job fail after the database server upgrade"  # 12 words
MODEL = common.MODEL_CACHE / "all-MiniLM-L6-v2"


class BareOrt:
    """ONNX Runtime on a graph file, nothing else: tokenise, sort by length, pad per batch, run."""

    def __init__(self, graph: Path, batch_size: int = 32) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = os.cpu_count() or 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(graph), opts, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(graph.parent / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(256)
        self.batch_size = batch_size

    def embed(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer.encode_batch(texts)
        lens = np.array([len(e.ids) for e in enc])
        order = np.argsort(lens, kind="stable")
        out = np.empty((len(texts), 384), np.float32)
        for s in range(0, len(order), self.batch_size):
            rows = order[s:s + self.batch_size]
            width = int(lens[rows].max())
            ids = np.zeros((len(rows), width), np.int64)
            mask = np.zeros_like(ids)
            for r, j in enumerate(rows):
                ids[r, :lens[j]] = enc[j].ids
                mask[r, :lens[j]] = 1
            out[rows] = self.session.run(["sentence_embedding"], {"input_ids": ids, "attention_mask": mask,
                                                                  "token_type_ids": np.zeros_like(ids)})[0]
        return out


async def ragd_throughput(address: str, texts: list[str], clients: int) -> float:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for t in texts:
        queue.put_nowait(t)

    async def worker():
        async with AsyncRagClient(address, timeout=300) as c:
            while not queue.empty():
                await c.embed([queue.get_nowait()])
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return len(texts) / (time.perf_counter() - t0)


def ms(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def latency_rounds(systems: dict, samples: int) -> dict:
    """p50/p99 of one query per system per step, the systems alternating step by step."""
    names = list(systems)
    for name in names:  # warm-up
        for _ in range(3):
            systems[name]()
    lat: dict[str, list[float]] = {n: [] for n in names}
    for i in range(samples):
        for name in names if i % 2 == 0 else names[::-1]:
            lat[name].append(systems[name]())
    out = {}
    for name, xs in lat.items():
        xs.sort()
        out[name] = {"p50_ms": statistics.median(xs), "p99_ms": xs[int(0.99 * (len(xs) - 1))], "samples": len(xs)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--latency-samples", type=int, default=60)
    ap.add_argument("--peer-python", default=os.environ.get("RAGD_PEER_PYTHON",
                                                             str(common.REPO / ".venv-peers" / "bin" / "python")))
    ap.add_argument("--skip-peers", action="store_true")
    args = ap.parse_args()
    common.exit_on_sigterm()
    texts = [d["text"] for d in common.cisi.documents() if d["text"]][: args.texts]

    from ragd.doctor import cpu_facts
    from ragd.embed.provision import provision_model
    provision_model(common.MODEL_CACHE, int8=True)  # before the daemons start: they share this cache
    fp32, int8 = BareOrt(MODEL / "model.onnx"), BareOrt(MODEL / "model.int8.onnx")
    v32, v8 = fp32.embed(texts), int8.embed(texts)
    cos = (v32 * v8).sum(1)
    tokens = sum(min(len(e.ids), 256) for e in fp32.tokenizer.encode_batch(texts))
    res: dict = {"texts": len(texts), "tokens": tokens, "tokens_per_text": tokens / len(texts), "clients": args.clients,
                 "cpu": cpu_facts(), "int8_cosine_to_fp32": {"min": float(cos.min()), "mean": float(cos.mean())}}
    print(f"{len(texts)} CISI abstracts, {tokens / len(texts):.0f} tokens each on average; int8 cosine to fp32: "
          f"min {cos.min():.4f}, mean {cos.mean():.4f}", flush=True)

    peers: dict = {}
    try:
        if not args.skip_peers:
            from peer_models import fastembed_model_dir
            from peer_process import PeerProcess
            env = {"RAGD_BENCH_FASTEMBED_DIR": str(fastembed_model_dir())}
            peers = {"st": PeerProcess(args.peer_python, env=env), "fe": PeerProcess(args.peer_python, env=env)}
            res["peer_versions"] = peers["st"].call("hello")
        with common.daemon({"RAGD_MODEL_PRECISION": "fp32"}) as (a32, p32), \
                common.daemon({"RAGD_MODEL_PRECISION": "int8"}) as (a8, p8):
            for a in (a32, a8):
                with RagClient(a) as c:
                    c.wait_ready()
                    c.embed(texts[:32])
            def bare(embedder):
                return lambda: measured(lambda: embedder.embed(texts), len(texts), [])

            def grpc(address, pid, n, clients):
                return lambda: measured(lambda: asyncio.run(ragd_throughput(address, texts[:n], clients)), n, [pid])

            systems = {
                "ort_fp32": bare(fp32), "ort_int8": bare(int8),
                "ragd_fp32": grpc(a32, p32.pid, len(texts), args.clients),
                "ragd_int8": grpc(a8, p8.pid, len(texts), args.clients),
                # one client sends its texts one by one: a quarter of them keeps the round short
                "ragd_fp32_1": grpc(a32, p32.pid, len(texts) // 4, 1),
            }
            if peers:
                systems["st"] = lambda: peers["st"].call("embed", embedder="sentence-transformers", texts=texts)
                systems["fastembed"] = lambda: peers["fe"].call("embed", embedder="fastembed", texts=texts)
            rounds = interleave.run_rounds(args.rounds, systems, log=lambda m: print(m, flush=True))
            # 12-word query latency, interleaved query by query (A B C, C B A, ...).
            clients = {name: RagClient(address, timeout=30) for name, address in (("ragd_fp32", a32),
                                                                                   ("ragd_int8", a8))}
            one = {name: (lambda c=c: ms(lambda: c.embed([QUERY]))) for name, c in clients.items()}
            one["ort_fp32"] = lambda: ms(lambda: fp32.embed([QUERY]))
            one["ort_int8"] = lambda: ms(lambda: int8.embed([QUERY]))
            if peers:
                # The peer's encode of the query, timed in its own process.
                one["st"] = lambda: 1000 * peers["st"].call("embed", embedder="sentence-transformers",
                                                            texts=[QUERY])["seconds"]
                one["fastembed"] = lambda: 1000 * peers["fe"].call("embed", embedder="fastembed",
                                                                   texts=[QUERY])["seconds"]
            lat = latency_rounds(one, args.latency_samples)
            for c in clients.values():
                c.close()
    finally:
        for p in peers.values():
            p.close()

    med = {k: interleave.median(interleave.values(v, "texts_per_s")) for k, v in rounds.items()}
    pairs = [("ragd_fp32", "fastembed"), ("ragd_fp32", "st"), ("ragd_fp32", "ort_fp32"), ("ragd_int8", "ort_fp32"),
             ("ragd_int8", "ragd_fp32"), ("ort_int8", "ort_fp32"), ("fastembed", "ort_fp32"), ("st", "ort_fp32"),
             ("ragd_int8", "fastembed"), ("ragd_fp32_1", "st")]
    ratios = {f"{a}/{b}": interleave.ratio_of(rounds[a], rounds[b], "texts_per_s")
              for a, b in pairs if a in rounds and b in rounds}
    cpu_ratios = {f"{a}/{b}": interleave.ratio_of(rounds[a], rounds[b], "texts_per_cpu_s")
                  for a, b in pairs if a in rounds and b in rounds}
    med_cpu = {k: interleave.median(interleave.values(v, "texts_per_cpu_s")) for k, v in rounds.items()}
    res.update({"rounds": rounds, "texts_per_s": med,
                "tokens_per_s": {k: v * tokens / len(texts) for k, v in med.items()},
                "ratios": ratios, "texts_per_cpu_s": med_cpu, "ratios_per_cpu_s": cpu_ratios,
                "latency_12_words": lat,
                "targets": {"ragd_fp32/fastembed": ">= 1.2",
                            "ragd_int8/ort_fp32": ">= 1.5 (with nDCG@10 loss < 0.005)"},
                "load_average": os.getloadavg()})
    print(f"\n{'system':14}{'texts/s':>10}{'tokens/s':>10}{'texts/CPU-s':>12}   12-word query p50 / p99 ms")
    for k, v in med.items():
        ql = lat.get(k, {})
        print(f"{k:14}{v:10.1f}{v * tokens / len(texts):10.0f}{med_cpu[k] or float('nan'):12.1f}   "
              f"{ql.get('p50_ms', float('nan')):.2f} / {ql.get('p99_ms', float('nan')):.2f}")
    print(f"{'ratio':24} {'texts/s':>22} {'texts per CPU-second':>24}")
    for k, r in ratios.items():
        print(f"{k:24} {interleave.fmt_ratio(r):>22} {interleave.fmt_ratio(cpu_ratios[k]):>24}")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a1, a3, a2) = plt.subplots(1, 3, figsize=(17, 4.2))
    order = [k for k in ("st", "fastembed", "ort_fp32", "ragd_fp32_1", "ragd_fp32", "ort_int8", "ragd_int8")
             if k in med]
    labels = {"st": "sentence-\ntransformers", "fastembed": "fastembed", "ort_fp32": "bare ORT fp32\n(ceiling)",
              "ragd_fp32_1": "ragd fp32\n1 client", "ragd_fp32": f"ragd fp32\n{args.clients} clients",
              "ort_int8": "bare ORT\nint8", "ragd_int8": f"ragd int8\n{args.clients} clients"}
    colors = ["grey" if k in ("st", "fastembed") else "tab:orange" if k.startswith("ort") else "tab:blue"
              for k in order]
    a1.bar([labels[k] for k in order], [med[k] for k in order], color=colors)
    for i, k in enumerate(order):
        lo = min(interleave.values(rounds[k], "texts_per_s"))
        hi = max(interleave.values(rounds[k], "texts_per_s"))
        a1.errorbar(i, med[k], yerr=[[med[k] - lo], [hi - med[k]]], color="black", capsize=3)
        a1.text(i, hi, f"{med[k]:.0f}", ha="center", va="bottom", fontsize=8)
    a1.set_ylabel(f"texts/s, median of {args.rounds} rounds (bars: spread)")
    a1.set_title(f"{len(texts)} CISI abstracts ({tokens / len(texts):.0f} tokens), CPU, interleaved", fontsize=9)
    a1.tick_params(axis="x", labelsize=7)
    a3.bar([labels[k] for k in order], [med_cpu[k] or 0 for k in order], color=colors)
    for i, k in enumerate(order):
        a3.text(i, med_cpu[k] or 0, f"{med_cpu[k] or 0:.0f}", ha="center", va="bottom", fontsize=8)
    a3.set_ylabel("texts per CPU-second (all threads), median")
    a3.set_title("Work per CPU-second (independent of machine load)", fontsize=9)
    a3.tick_params(axis="x", labelsize=7)
    names = [k for k in ("st", "fastembed", "ort_fp32", "ragd_fp32", "ort_int8", "ragd_int8") if k in lat]
    a2.bar([labels[k] for k in names], [lat[k]["p50_ms"] for k in names],
           color=["grey" if k in ("st", "fastembed") else "tab:orange" if k.startswith("ort") else "tab:blue"
                  for k in names])
    a2.set_ylabel("ms, p50 (lower is better)")
    a2.set_title("12-word query latency", fontsize=9)
    a2.tick_params(axis="x", labelsize=7)
    common.write("embed_throughput", res, fig)


def measured(fn, texts: int, pids: list[int]) -> dict:
    """Texts per second of wall clock and per CPU-second: this process (the bare runtime, or the
    gRPC client) plus the daemon `pids`. On a busy machine the first is the share of the cores
    a system got; the second is what it does with them."""
    def cpu():
        return loadgen.cpu_seconds(tree=False) + sum(loadgen.cpu_seconds(p) for p in pids)
    c0, t0 = cpu(), time.perf_counter()
    fn()
    seconds, cpu_s = time.perf_counter() - t0, cpu() - c0
    return {"texts_per_s": texts / seconds, "cpu_s": cpu_s, "texts_per_cpu_s": texts / cpu_s if cpu_s else None}


if __name__ == "__main__":
    main()
