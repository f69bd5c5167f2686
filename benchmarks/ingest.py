"""Ingestion throughput: ragd over IndexStream vs the RedMica design's in-process stack.

One run, same Redmine-like corpus (benchmarks/corpus.py: short issues, notes,
long wiki pages): ragd end to end (gRPC IndexStream, acks when durable and
searchable: chunking in C++, micro-batched ONNX Runtime, LMDB fsync, FAISS)
against LangChain's splitter + sentence-transformers + FAISS in one process
with no network and no durability (benchmarks/peers/st_stack_ingest.py, in the
peers' virtualenv: benchmarks/setup_peers.sh). Prints documents/s, chunks/s and
the ratio; writes benchmarks/results/ingest.{json,png}.

    python benchmarks/ingest.py [--docs 1000] [--peer-python .venv-peers/bin/python]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import common
from corpus import redmine_corpus

from ragd_client import RagClient


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=64, help="documents per IndexStream message")
    ap.add_argument("--peer-python", default=str(common.REPO / ".venv-peers/bin/python"))
    args = ap.parse_args()
    docs = redmine_corpus(args.docs)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(docs, fh)
    out = subprocess.run([args.peer_python, str(Path(__file__).parent / "peers" / "st_stack_ingest.py"), fh.name],
                         capture_output=True, text=True, check=True)
    peer = json.loads(out.stdout.strip().splitlines()[-1])
    with common.daemon() as (address, _):
        with RagClient(address, stream_timeout=None) as c:
            c.wait_ready()
            c.embed(["warm up"])
            t0 = time.perf_counter()
            chunks = acked = 0
            batches = (docs[i:i + args.batch] for i in range(0, len(docs), args.batch))
            for result in c.index_stream(batches, collection="bench"):
                acked += len(result.acks)
                chunks += sum(a.chunks for a in result.acks)
            seconds = time.perf_counter() - t0
    assert acked == len(docs)
    ragd = {"docs_per_s": len(docs) / seconds, "chunks_per_s": chunks / seconds, "chunks": chunks,
            "seconds": seconds}
    kinds = {k: sum(d["type"] == k for d in docs) for k in ("issue", "journal", "wiki")}
    result = {"docs": len(docs), "mix": kinds, "ragd": ragd, "st_langchain_faiss": peer,
              "ratio_docs_per_s": ragd["docs_per_s"] / peer["docs_per_s"], "target_ratio": ">= 2.0",
              "note": "both embed each chunk with its document title in front (peers/same_work.py)"}
    print(f"corpus: {len(docs)} documents {kinds}")
    print(f"{'':44}{'docs/s':>9}{'chunks/s':>10}{'chunks':>8}")
    print(f"{'sentence-transformers + LangChain + FAISS':44}{peer['docs_per_s']:9.1f}{peer['chunks_per_s']:10.1f}"
          f"{peer['chunks']:8d}")
    print(f"{'ragd IndexStream (durable, searchable acks)':44}{ragd['docs_per_s']:9.1f}{ragd['chunks_per_s']:10.1f}"
          f"{ragd['chunks']:8d}")
    print(f"ratio ragd/peer: {result['ratio_docs_per_s']:.2f}x documents/s (target >= 2.0)")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    vals = [peer["docs_per_s"], ragd["docs_per_s"]]
    ax.bar(["ST + LangChain + FAISS\n(in process)", "ragd IndexStream\n(gRPC, durable)"], vals,
           color=["grey", "tab:blue"])
    for i, v in enumerate(vals):
        ax.text(i, v, f"{v:.1f}", ha="center", va="bottom")
    ax.set_ylabel("documents/s (higher is better)")
    ax.set_title(f"Ingestion, {len(docs)} Redmine-like documents, CPU")
    common.write("ingest", result, fig)


if __name__ == "__main__":
    main()
