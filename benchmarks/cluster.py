"""Cluster mode against the single-process daemon, on one corpus (CISI abstracts).

Measured, interleaved (single, 1 worker, 2 workers; then again) so the shared
machine's load falls on every configuration alike:
  - ingest documents/s, end to end: from the first Upsert to the last write
    searchable (single: the last ack, which is durable and searchable; cluster: the
    last position applied on the replica, asked with Search.min_sequence);
  - replication lag under that load: for each acknowledged batch, the time from its
    ack to a Search with min_sequence = its position answering on the replica
    (read-your-writes latency), p50/p99;
  - a replica's apply rate alone (frozen while the workers fill the embedded stream);
  - search QPS from 1 vs 2 replicas (8 client threads, HYBRID queries, round robin; the
    search cache off, so every query is embedded and searched).

This machine has 2 cores shared by the team: two workers share the cores one worker
already uses, so scaling shows as per-worker efficiency (docs/s of 2 workers / (2 x
docs/s of 1)), and two replicas on one box share its CPU. The paper estimate for N
machines is printed and written with its assumptions.

    python benchmarks/cluster.py [--docs 300] [--rounds 2] [--qps-seconds 10]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the cluster's process helpers
import grpc  # noqa: E402
from cluster_procs import COLL, Redis, Replica, Worker, kill_all  # noqa: E402
from common import MODEL_CACHE, cisi, write  # noqa: E402
from conftest import Daemon  # noqa: E402

from ragd.v1 import ragd_pb2 as pb  # noqa: E402

BATCH = 50
QUERIES = list(cisi.queries().values())[:40]


def corpus(n: int) -> list[dict]:
    base = cisi.documents()
    return [{"id": f"doc:{i}", "title": base[i % len(base)]["title"], "text": base[i % len(base)]["text"],
             "project_id": 1, "type": "issue", "version": 1} for i in range(n)]


def requests(docs: list[dict]) -> list[pb.UpsertRequest]:
    return [pb.UpsertRequest(collection=COLL, wait=True, documents=[pb.Document(**d) for d in docs[i:i + BATCH]])
            for i in range(0, len(docs), BATCH)]


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else 0.0


def ingest_single(root: Path, docs: list[dict]) -> dict:
    d = Daemon(root / "single", MODEL_CACHE, {"RAGD_SERVER_METRICS_LISTEN": ""}).start()
    try:
        rep = Replica(d, "single")
        rep.channel = grpc.insecure_channel(d.address)
        from ragd.v1 import ragd_pb2_grpc
        rep.stub = ragd_pb2_grpc.RagServiceStub(rep.channel)
        t0 = time.perf_counter()
        for req in requests(docs):
            rep.stub.Upsert(req, timeout=600)
        secs = time.perf_counter() - t0
        rep.channel.close()
        return {"docs_per_s": len(docs) / secs, "seconds": secs, "lag_p50_s": 0.0, "lag_p99_s": 0.0}
    finally:
        d.stop()


class Cluster:
    def __init__(self, root: Path, workers: int, replicas: int = 1):
        (root / "redis").mkdir(parents=True)
        self.redis = Redis(root / "redis").start()
        # Default cluster.worker_batch: a worker takes a bulk write of BATCH documents alone, so
        # two workers share the writes (before 2026-11-30 the first to read took every waiting one).
        env = {"RAGD_CLUSTER_REDIS_URL": self.redis.url, "RAGD_SERVER_METRICS_LISTEN": "",
               "RAGD_CLUSTER_READ_WAIT_S": "30"}
        self.env = env
        self.root = root
        # The machine's cores shared among the workers (one worker: 2 intra-op threads, two: 1 each).
        threads = str(max(1, 2 // workers))
        self.workers = [Worker(root / f"w{i}", MODEL_CACHE, {**env, "RAGD_MODEL_THREADS": threads})
                        for i in range(workers)]
        # The QPS replicas answer with the search cache off: the 40 queries repeat, and cached
        # pages would measure the cache, not the replica.
        cache = {"RAGD_CACHE_ENABLED": "false"} if replicas > 1 else {}
        self.replicas = [Replica(Daemon(root / f"r{i}", MODEL_CACHE, {**env, **cache,
                                                                      "RAGD_CLUSTER_REPLICA_NAME": f"r{i}"}),
                                 f"r{i}") for i in range(replicas)]

    def close(self) -> None:
        kill_all(self.replicas, self.workers, self.redis)


def ingest_cluster(root: Path, docs: list[dict], workers: int) -> dict:
    c = Cluster(root, workers)
    try:
        for w in c.workers:
            w.start()
        rep = c.replicas[0].start()
        lags: list[float] = []
        acked: list[tuple[int, float]] = []
        done = threading.Event()

        def check():  # read-your-writes latency of each acknowledged batch, in order
            i = 0
            while not (done.is_set() and i >= len(acked)):
                if i >= len(acked):
                    time.sleep(0.005)
                    continue
                seq, t_ack = acked[i]
                i += 1
                rep.reach(seq)  # Search with min_sequence, asked again while the replica is behind
                lags.append(time.perf_counter() - t_ack)

        checker = threading.Thread(target=check)
        t0 = time.perf_counter()
        checker_started = False
        for req in requests(docs):
            resp = rep.stub.Upsert(req, timeout=600)
            acked.append((resp.sequence, time.perf_counter()))
            if not checker_started:
                checker.start()
                checker_started = True
        done.set()
        checker.join()
        secs = time.perf_counter() - t0
        return {"docs_per_s": len(docs) / secs, "seconds": secs, "lag_p50_s": pct(lags, 50),
                "lag_p99_s": pct(lags, 99)}
    finally:
        c.close()


def short_corpus(n: int) -> list[dict]:
    """n one-chunk documents (a title and one sentence, like an issue's note): cheap to embed,
    so the embedded stream for the apply rate fills quickly."""
    base = cisi.documents()
    return [{"id": f"note:{i}", "title": base[i % len(base)]["title"],
             "text": base[i % len(base)]["text"].split(". ")[0][:200] or base[i % len(base)]["title"],
             "project_id": 1, "type": "issue", "version": 1} for i in range(n)]


def replica_apply_rate(root: Path, docs: list[dict]) -> dict:
    """A replica's apply rate alone: it starts (SERVING, following, at position 0) and is
    frozen (SIGSTOP); a front appends the writes and 2 workers embed them all; then it is
    thawed (SIGCONT) and timed until it has applied the head (a Search with min_sequence,
    which the replica answers as soon as it gets there). Its start-up is not counted."""
    import os
    import signal
    c = Cluster(root, 2)
    try:
        for w in c.workers:
            w.start()
        r = c.redis.client()
        rep = c.replicas[0].start()
        os.kill(rep.daemon.proc.pid, signal.SIGSTOP)
        head = 0
        front = Replica(Daemon(root / "front", MODEL_CACHE, {**c.env, "RAGD_CLUSTER_REPLICA_NAME": "front"}),
                        "front").start()
        try:
            for req in requests(docs):
                head = front.stub.Upsert(req, timeout=600).sequence
        finally:
            front.kill()
        r.hdel(f"ragd:replicas:{COLL}", "front")
        while r.xlen(f"ragd:elog:{COLL}") < head:  # the workers' signal: every write embedded
            time.sleep(0.05)
        t0 = time.perf_counter()
        os.kill(rep.daemon.proc.pid, signal.SIGCONT)
        rep.reach(head)
        secs = time.perf_counter() - t0
        chunks = rep.stats().chunks
        return {"docs": len(docs), "chunks": chunks, "entries": head, "seconds": secs,
                "docs_per_s": len(docs) / secs, "chunks_per_s": chunks / secs}
    finally:
        c.close()


def search_qps(reps: list[Replica], seconds: float, threads: int = 8) -> float:
    count = [0] * threads
    stop = time.perf_counter() + seconds

    def run(k: int):
        i = k
        while time.perf_counter() < stop:
            rep = reps[i % len(reps)]
            rep.stub.Search(pb.SearchRequest(collection=COLL, query=QUERIES[i % len(QUERIES)], top_k=10,
                                             mode=pb.SEARCH_MODE_HYBRID), timeout=60)
            count[k] += 1
            i += 1

    ts = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(count) / seconds


def main() -> None:
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # run the clean-ups (stop every process started)
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--qps-seconds", type=float, default=10.0)
    ap.add_argument("--apply-docs", type=int, default=2000, help="one-chunk documents for the replica's apply rate")
    args = ap.parse_args()
    docs = corpus(args.docs)
    with open("/proc/loadavg") as fh:
        load_before = fh.read().split()[:3]
    runs: dict[str, list[dict]] = {"single": [], "cluster_1_worker": [], "cluster_2_workers": []}
    with tempfile.TemporaryDirectory(prefix="ragd-cluster-bench-") as tmp:
        root = Path(tmp)
        for rnd in range(args.rounds):  # interleaved: A B C, A B C
            runs["single"].append(ingest_single(root / f"s{rnd}", docs))
            runs["cluster_1_worker"].append(ingest_cluster(root / f"c1-{rnd}", docs, 1))
            runs["cluster_2_workers"].append(ingest_cluster(root / f"c2-{rnd}", docs, 2))
            for k, v in runs.items():
                print(f"round {rnd}: {k}: {v[-1]['docs_per_s']:.1f} docs/s, lag p50 {v[-1]['lag_p50_s']:.2f} s "
                      f"p99 {v[-1]['lag_p99_s']:.2f} s", flush=True)
        apply = replica_apply_rate(root / "apply", short_corpus(args.apply_docs))
        print(f"replica apply alone: {apply['docs_per_s']:.0f} docs/s, {apply['chunks_per_s']:.0f} chunks/s "
              f"({apply['docs']} one-chunk documents in {apply['entries']} writes)", flush=True)
        # Search QPS: a cluster of 2 replicas holding the corpus; 1 vs 2 replicas, interleaved.
        c = Cluster(root / "qps", 2, replicas=2)
        try:
            for w in c.workers:
                w.start()
            for r in c.replicas:
                r.start()
            head = 0
            for req in requests(docs):
                head = c.replicas[0].stub.Upsert(req, timeout=600).sequence
            for r in c.replicas:
                r.reach(head)
            chunks_per_doc = c.replicas[0].stats().chunks / len(docs)
            for w in c.workers:
                w.stop()
            qps: dict[str, list[float]] = {"1_replica": [], "2_replicas": []}
            for _ in range(args.rounds):
                qps["1_replica"].append(search_qps(c.replicas[:1], args.qps_seconds))
                qps["2_replicas"].append(search_qps(c.replicas, args.qps_seconds))
                print(f"search QPS: 1 replica {qps['1_replica'][-1]:.1f}, 2 replicas {qps['2_replicas'][-1]:.1f}",
                      flush=True)
        finally:
            c.close()
    with open("/proc/loadavg") as fh:
        load_after = fh.read().split()[:3]

    med = {k: statistics.median(r["docs_per_s"] for r in v) for k, v in runs.items()}
    spread = {k: [min(r["docs_per_s"] for r in v), max(r["docs_per_s"] for r in v)] for k, v in runs.items()}
    w1, w2 = med["cluster_1_worker"], med["cluster_2_workers"]
    efficiency = w2 / (2 * w1)
    qmed = {k: statistics.median(v) for k, v in qps.items()}
    # Paper estimate for N worker machines of this machine's kind (assumptions in the JSON).
    # The replicas' ceiling in documents of the ingest corpus: their apply rate in chunks/s over
    # that corpus's chunks per document.
    ceiling = apply["chunks_per_s"] / chunks_per_doc
    estimate = {str(n): min(n * w1, ceiling) for n in (1, 2, 4, 8, 16, 32, 64)}
    data = {
        "docs": args.docs, "rounds": args.rounds, "batch": BATCH,
        "search_cache": "off (QPS replicas)", "load_before": load_before, "load_after": load_after,
        "ingest_docs_per_s": runs, "median_docs_per_s": med, "spread_docs_per_s": spread,
        "cluster_vs_single": {"1_worker": w1 / med["single"], "2_workers": w2 / med["single"]},
        "per_worker_efficiency_2_workers": efficiency,
        "replication_lag_s": {k: {"p50": statistics.median(r["lag_p50_s"] for r in v),
                                  "p99": max(r["lag_p99_s"] for r in v)} for k, v in runs.items() if k != "single"},
        "replica_apply_alone": apply, "chunks_per_doc": chunks_per_doc, "replica_ceiling_docs_per_s": ceiling,
        "search_qps": qps, "median_search_qps": qmed,
        "estimate_docs_per_s_with_n_worker_machines": estimate,
        "estimate_assumptions": [
            "each worker machine is like this one and runs one worker using all its cores: it embeds at the "
            "1-worker rate measured here (embedding dominates a worker's time; chunking is ~1%)",
            "workers share nothing but Redis: N machines give N x that rate until another part saturates",
            "a replica applies the embedded stream at the 'replica_apply_alone' rate in chunks/s (one LMDB fsync "
            "per entry of 50 documents, FAISS and tantivy adds; measured on one-chunk documents, counted in chunks "
            "and divided by the ingest corpus's chunks per document); every replica applies every write, so the "
            "cluster's ingest ceiling is that rate ('replica_ceiling_docs_per_s'), whatever N",
            "Redis: one XADD + XACK per 50 documents (a few hundred KB of vectors); a single Redis handles tens "
            "of thousands of such commands per second, far above the ceiling above",
            "search QPS scales with replicas on separate machines (each holds the whole collection); here two "
            "replicas share 2 cores, so the measured ratio shows the CPU limit, not the design's",
        ],
        "limits": "2 shared cores (load average in load_before/after): two workers, or two replicas, compete for "
                  "the same cores, so scaling is shown as per-worker efficiency, not as a speed-up",
    }
    print(f"ingest docs/s (median of {args.rounds}): single {med['single']:.1f}, 1 worker {w1:.1f}, 2 workers "
          f"{w2:.1f} (per-worker efficiency {efficiency:.2f}); replica apply alone {apply['chunks_per_s']:.0f} "
          f"chunks/s = {ceiling:.0f} docs/s of this corpus ({chunks_per_doc:.1f} chunks/doc); "
          f"search QPS 1 replica {qmed['1_replica']:.1f}, 2 replicas {qmed['2_replicas']:.1f}")
    print("paper estimate (docs/s with N worker machines): " +
          ", ".join(f"{n}: {v:.0f}" for n, v in estimate.items()))

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(14, 4))
    names = list(runs)
    a1.bar(names, [med[k] for k in names], yerr=[[med[k] - spread[k][0] for k in names],
                                                 [spread[k][1] - med[k] for k in names]], capsize=4)
    a1.set_ylabel("documents/s (end to end)")
    a1.set_title(f"ingest, {args.docs} CISI abstracts, 2 cores")
    lag_names = [k for k in names if k != "single"]
    a2.bar([f"{k} p50" for k in lag_names] + [f"{k} p99" for k in lag_names],
           [data["replication_lag_s"][k]["p50"] for k in lag_names] +
           [data["replication_lag_s"][k]["p99"] for k in lag_names])
    a2.set_ylabel("ack -> searchable on the replica (s)")
    a2.tick_params(axis="x", labelrotation=20)
    a3.bar(list(qmed), list(qmed.values()))
    a3.set_ylabel("search QPS (8 threads, HYBRID, no cache)")
    write("cluster", data, fig)


if __name__ == "__main__":
    main()
