"""The cost of security: search QPS and p99 at 8 clients, auth + TLS on vs off.

Two daemons hold the same CISI documents: one plain, one with bearer tokens and
TLS (a throw-away CA). Windows of search load alternate between them (A B A B,
one channel per daemon, made once, so the TLS handshake is not what is timed;
each call still pays encryption and the token check). Each pair gives a ratio
(secure / plain); the median and the spread (min, max) of those ratios are the
result. Queries repeat (CISI's 112), so after the first round most answers come
from the page cache: the daemon's own work is small and the ratio shows the
per-call cost of security at its most visible.

    python benchmarks/security_cost.py [--docs 400] [--rounds 6] [--seconds 5] [--clients 8]

Writes benchmarks/results/security_cost.json and .png.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common, load  # noqa: E402
from benchmarks.common import cisi  # noqa: E402


def loadavg() -> float:
    return os.getloadavg()[0]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args(argv)
    from ragd_client import RagClient

    docs = [d for d in cisi.documents() if d["text"]][: args.docs]
    queries = list(cisi.queries().values())
    kw = {"top_k": 10, "mode": "vector", "filter": {"all_private": True}}
    with tempfile.TemporaryDirectory(prefix="ragd-secbench-") as tmp:
        secure_env = common.secure_env(Path(tmp))
        creds = {"token": secure_env["RAGD_TOKEN"], "ca_file": secure_env["RAGD_CA_FILE"]}
        daemon_env = {k: v for k, v in secure_env.items() if k not in ("RAGD_TOKEN", "RAGD_CA_FILE")}
        with common.daemon() as (plain, _), common.daemon(daemon_env) as (secure, _):
            for address, ckw in ((plain, {}), (secure, creds)):
                with RagClient(address, timeout=600, stream_timeout=None, **ckw) as c:
                    c.wait_ready(600)
                    for _ in c.index_stream(docs[i:i + 64] for i in range(0, len(docs), 64)):
                        pass
            rounds = []
            for r in range(args.rounds):
                pair = {}
                for name, address, ckw in (("off", plain, {}), ("on", secure, creds)):
                    res = asyncio.run(load.search_load(address, queries, [args.clients], args.seconds,
                                                       client_kw=ckw, **kw))[str(args.clients)]
                    pair[name] = {**res, "load": loadavg()}
                rounds.append(pair)
                print(f"round {r}: off {pair['off']['qps']:.1f} qps p99 {pair['off']['p99_ms']:.1f} ms | "
                      f"on {pair['on']['qps']:.1f} qps p99 {pair['on']['p99_ms']:.1f} ms | load {loadavg():.1f}",
                      flush=True)
    qps = [p["on"]["qps"] / p["off"]["qps"] for p in rounds]
    p99 = [p["on"]["p99_ms"] / p["off"]["p99_ms"] for p in rounds]
    errors = sum(p[k]["errors"] for p in rounds for k in ("off", "on"))
    summary = {"qps_ratio_median": statistics.median(qps), "qps_ratio_min": min(qps), "qps_ratio_max": max(qps),
               "p99_ratio_median": statistics.median(p99), "p99_ratio_min": min(p99), "p99_ratio_max": max(p99),
               "off_qps_median": statistics.median(p["off"]["qps"] for p in rounds),
               "on_qps_median": statistics.median(p["on"]["qps"] for p in rounds),
               "off_p99_ms_median": statistics.median(p["off"]["p99_ms"] for p in rounds),
               "on_p99_ms_median": statistics.median(p["on"]["p99_ms"] for p in rounds),
               "errors": errors, "load_min": min(p[k]["load"] for p in rounds for k in p),
               "load_max": max(p[k]["load"] for p in rounds for k in p)}
    print(f"auth+TLS on / off at {args.clients} clients: QPS x{summary['qps_ratio_median']:.2f} "
          f"({summary['qps_ratio_min']:.2f}-{summary['qps_ratio_max']:.2f}), p99 x{summary['p99_ratio_median']:.2f} "
          f"({summary['p99_ratio_min']:.2f}-{summary['p99_ratio_max']:.2f}); load {summary['load_min']:.1f}-"
          f"{summary['load_max']:.1f}; errors {errors}")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    xs = range(len(rounds))
    a.plot(xs, [p["off"]["qps"] for p in rounds], "o-", label="off")
    a.plot(xs, [p["on"]["qps"] for p in rounds], "s-", label="auth + TLS")
    a.set(xlabel="round (interleaved)", ylabel="QPS", title=f"search QPS, {args.clients} clients")
    a.legend()
    b.plot(xs, [p["off"]["p99_ms"] for p in rounds], "o-", label="off")
    b.plot(xs, [p["on"]["p99_ms"] for p in rounds], "s-", label="auth + TLS")
    b.set(xlabel="round (interleaved)", ylabel="p99 ms", title="search p99")
    b.legend()
    common.write("security_cost", {"settings": vars(args), "summary": summary, "rounds": rounds,
                                   "when": time.strftime("%Y-%m-%d %H:%M:%S")}, fig)


if __name__ == "__main__":
    main()
