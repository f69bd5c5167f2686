"""Embedding throughput and latency: ragd end to end over gRPC vs sentence-transformers.

Same texts (real CISI abstracts), same machine, one run. ragd: the Embed RPC
with 1 and 16 concurrent clients, one text per request (the micro-batcher must
merge them), against sentence-transformers `encode()` in-process on CPU (its
own virtualenv: benchmarks/setup_peers.sh). Also the single-query latency of a
12-word query. Prints texts/s, tokens/s and ratios; writes
benchmarks/results/embed_throughput.{json,png}.

    python benchmarks/embed_throughput.py [--texts 512] [--peer-python .venv-peers/bin/python]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import common

from ragd_client import AsyncRagClient, RagClient

QUERY = "why does the nightly backup job fail after the database server upgrade"  # 12 words


async def ragd_throughput(address: str, texts: list[str], clients: int) -> tuple[float, int]:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for t in texts:
        queue.put_nowait(t)
    tokens = 0

    async def worker():
        nonlocal tokens
        async with AsyncRagClient(address, timeout=120) as c:
            while not queue.empty():
                r = await c.embed([queue.get_nowait()])
                tokens += sum(r.tokens)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return len(texts) / (time.perf_counter() - t0), tokens


def ragd_latency(address: str, samples: int) -> list[float]:
    with RagClient(address, timeout=30) as c:
        for _ in range(10):
            c.embed([QUERY])
        lat = []
        for _ in range(samples):
            t0 = time.perf_counter()
            c.embed([QUERY])
            lat.append((time.perf_counter() - t0) * 1000)
    return sorted(lat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=512)
    ap.add_argument("--peer-python", default=str(common.REPO / ".venv-peers/bin/python"))
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best of each is kept")
    ap.add_argument("--latency-samples", type=int, default=200)
    args = ap.parse_args()
    texts = [d["text"] for d in common.cisi.documents()[: args.texts]]
    assert len(QUERY.split()) == 12

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(texts, fh)
    from dataclasses import asdict

    from ragd.config import Config
    results: dict = {"texts": len(texts), "query_words": 12,
                     "ragd_settings": {"batching": asdict(Config().batching), "model_threads": Config().model.threads,
                                       "note": "defaults; max_pad_fraction -1 and max_batch_tokens 0 = auto "
                                               "(0.1 and 1024 on CPU)"}}
    with common.daemon() as (address, _):
        with RagClient(address) as c:
            c.wait_ready()
            c.embed(texts[:32])  # warm-up
        best = {1: 0.0, 16: 0.0}
        peer = None
        tokens = 0
        for _ in range(args.rounds):
            # Alternate peer and ragd, so that noise from the shared machine hits both.
            out = subprocess.run([args.peer_python, str(Path(__file__).parent / "peers" / "st_encode.py"), fh.name,
                                  "--query", QUERY, "--rounds", "1", "--latency-samples", "50"],
                                 capture_output=True, text=True, check=True)
            run = json.loads(out.stdout.strip().splitlines()[-1])
            if peer is None or run["texts_per_s"] > peer["texts_per_s"]:
                peer = run
            for clients in (1, 16):
                tps, tokens = asyncio.run(ragd_throughput(address, texts, clients))
                best[clients] = max(best[clients], tps)
        lat = ragd_latency(address, args.latency_samples)
    tokens_per_text = tokens / len(texts)
    results.update({
        "ragd": {"texts_per_s_1_client": best[1], "texts_per_s_16_clients": best[16],
                 "tokens_per_s_16_clients": best[16] * tokens_per_text,
                 "latency_p50_ms": statistics.median(lat), "latency_p99_ms": lat[int(0.99 * (len(lat) - 1))]},
        "sentence_transformers": {**peer, "tokens_per_s": peer["texts_per_s"] * tokens_per_text},
        "ratio_16_clients": best[16] / peer["texts_per_s"], "ratio_1_client": best[1] / peer["texts_per_s"],
        "targets": {"ratio_16_clients": ">= 2.0", "latency_p50_ms": "<= 10"},
    })
    r, p = results["ragd"], results["sentence_transformers"]
    print(f"texts: {len(texts)} CISI abstracts, {tokens_per_text:.0f} tokens each on average")
    print(f"{'':34}{'texts/s':>10}{'tokens/s':>10}")
    print(f"{'sentence-transformers encode()':34}{p['texts_per_s']:10.1f}{p['tokens_per_s']:10.0f}")
    one = r['texts_per_s_1_client']
    print(f"{'ragd gRPC Embed, 1 client':34}{one:10.1f}{one * tokens_per_text:10.0f}")
    print(f"{'ragd gRPC Embed, 16 clients':34}{r['texts_per_s_16_clients']:10.1f}{r['tokens_per_s_16_clients']:10.0f}")
    print(f"ratio ragd/sentence-transformers: {results['ratio_1_client']:.2f}x (1 client), "
          f"{results['ratio_16_clients']:.2f}x (16 clients; target >= 2.0)")
    print(f"12-word query latency: ragd p50 {r['latency_p50_ms']:.2f} ms, p99 {r['latency_p99_ms']:.2f} ms "
          f"(target p50 <= 10); sentence-transformers encode p50 {p['latency_p50_ms']:.2f} ms")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    names = ["sentence-transformers", "ragd, 1 client", "ragd, 16 clients"]
    vals = [p["texts_per_s"], r["texts_per_s_1_client"], r["texts_per_s_16_clients"]]
    a1.bar(names, vals, color=["grey", "tab:blue", "tab:blue"])
    a1.set_ylabel("texts/s (higher is better)")
    a1.set_title(f"Throughput, {len(texts)} CISI abstracts, CPU")
    for i, v in enumerate(vals):
        a1.text(i, v, f"{v:.0f}", ha="center", va="bottom")
    a2.bar(["sentence-transformers\nencode()", "ragd Embed\n(gRPC)"], [p["latency_p50_ms"], r["latency_p50_ms"]],
           color=["grey", "tab:blue"])
    a2.set_ylabel("ms, p50 (lower is better)")
    a2.set_title("12-word query latency")
    common.write("embed_throughput", results, fig)


if __name__ == "__main__":
    main()
