"""gRPC load generator for a running ragd (Python asyncio, one channel, N concurrent clients).

Each of N client coroutines sends Search calls back to back for a fixed window;
QPS, p50/p95/p99 (client side, gRPC round trip included) and errors per level.
`--mixed` also streams document updates (IndexStream) while the searches run.

    python benchmarks/load.py --address 127.0.0.1:50051 [--concurrency 1 8 32 128] [--seconds 10]
        [--collection default] [--mode vector] [--mixed]

Queries are the CISI queries (real text). Note: the client shares the machine's cores
with the daemon; at 128 clients the Python client's own CPU is part of what is measured.
Used by benchmarks/harness.py (functions `search_load`, `mixed_load`).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "clients" / "python"))
sys.path.insert(0, str(REPO / "tests"))

from ragd.v1 import ragd_pb2 as pb  # noqa: E402
from ragd_client import AsyncRagClient, _convert  # noqa: E402


def summarize(lat_ms: list[float], seconds: float, errors: int = 0, server_ms: list[float] | None = None,
              parts: dict[str, list[float]] | None = None) -> dict:
    lat = np.sort(np.asarray(lat_ms, dtype=np.float64))
    if lat.size == 0:
        return {"qps": 0.0, "n": 0, "errors": errors}
    r = {"qps": lat.size / seconds, "n": int(lat.size), "errors": errors,
         "p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)),
         "p99_ms": float(np.percentile(lat, 99)), "mean_ms": float(lat.mean())}
    if server_ms:
        r["server_mean_ms"] = float(np.mean(server_ms))
    for name, xs in (parts or {}).items():  # the daemon's own timings: where the time goes
        if xs:
            r[f"server_{name}_mean_ms"] = float(np.mean(xs))
    return r


async def _clients(client: AsyncRagClient, queries, concurrency: int, seconds: float, search_kw: dict) -> dict:
    lat: list[float] = []
    server: list[float] = []
    parts: dict[str, list[float]] = {"queue": [], "embed": [], "search": []}
    errors = [0]
    stop = time.perf_counter() + seconds

    async def one(k: int) -> None:
        i = k
        while time.perf_counter() < stop:
            q = queries[i % len(queries)]
            i += concurrency
            t0 = time.perf_counter()
            try:
                r = await client.search(q, **search_kw)
            except Exception:  # noqa: BLE001 - counted, never hidden
                errors[0] += 1
                await asyncio.sleep(0.01)
                continue
            lat.append((time.perf_counter() - t0) * 1000)
            server.append(r.timings.total_ms)
            for name in parts:
                parts[name].append(getattr(r.timings, f"{name}_ms", 0.0))

    t0 = time.perf_counter()
    await asyncio.gather(*(one(k) for k in range(concurrency)))
    return summarize(lat, time.perf_counter() - t0, errors[0], server, parts)


async def search_load(address: str, queries, concurrency_levels, seconds: float, **search_kw) -> dict:
    """{str(c): summary} for each concurrency level, one channel shared by the clients."""
    out = {}
    async with AsyncRagClient(address, timeout=120) as client:
        await client.search(queries[0], **search_kw)  # warm the channel
        for c in concurrency_levels:
            out[str(c)] = await _clients(client, queries, c, seconds, search_kw)
            r = out[str(c)]
            print(f"ragd c={c}: {r['qps']:.1f} qps p50 {r.get('p50_ms', 0):.1f} ms p99 {r.get('p99_ms', 0):.1f} ms"
                  f" errors {r['errors']}", flush=True)
    return out


async def mixed_load(address: str, queries, docs, concurrency: int, seconds: float, batch: int = 16, depth: int = 4,
                     collection: str = "default", **search_kw) -> dict:
    """Searches at `concurrency` while one writer streams re-versioned documents (real re-embedding)."""
    async with AsyncRagClient(address, timeout=120, collection=collection) as client:
        stop = time.perf_counter() + seconds
        written = [0, 0]  # docs, chunks
        write_lat: list[float] = []

        # At most `depth` batches in flight: the writer keeps the daemon busy without queueing
        # minutes of work in the stream (a sync generator would be drained at once by grpc.aio).
        room = asyncio.Semaphore(depth)

        async def batches():
            i, rnd = 0, 1
            while time.perf_counter() < stop:
                part = docs[i:i + batch]
                if not part:
                    i, rnd = 0, rnd + 1
                    continue
                i += batch
                try:  # bounded, but never a deadlock if the daemon reads ahead before acking
                    await asyncio.wait_for(room.acquire(), 2.0)
                except asyncio.TimeoutError:
                    pass
                yield pb.IndexStreamRequest(collection=collection, documents=[
                    _convert.document_pb({**d, "version": d.get("version", 1) + 1000 * rnd,
                                          "text": d["text"] + f"\n\n(edited {rnd})"}) for d in part])

        async def writer():
            t_last = time.perf_counter()
            # The stub directly: AsyncRagClient.index_stream takes a plain iterable of batches.
            async for resp in client._stub.IndexStream(batches(), timeout=seconds * 20 + 60):
                res = _convert.write_result(resp)
                room.release()
                now = time.perf_counter()
                write_lat.append((now - t_last) * 1000)
                t_last = now
                written[0] += len(res.acks)
                written[1] += sum(a.chunks for a in res.acks)

        t0 = time.perf_counter()
        w = asyncio.create_task(writer())
        search = await _clients(client, queries, concurrency, seconds, {**search_kw, "collection": collection})
        await w
        total = time.perf_counter() - t0
    return {"concurrency": concurrency, "search": search,
            "write": {"docs": written[0], "chunks": written[1], "docs_per_s": written[0] / total,
                      "batch": batch, "depth": depth,
                      "batch_interval_p50_ms": float(np.median(write_lat)) if write_lat else None}}


def main() -> None:
    import cisi
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--address", default="127.0.0.1:50051")
    ap.add_argument("--collection", default="default")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--mode", default="vector", choices=["auto", "vector", "keyword", "hybrid"])
    ap.add_argument("--mixed", action="store_true", help="also searches at 8 clients while indexing CISI")
    args = ap.parse_args()
    queries = list(cisi.queries().values())
    kw = {"top_k": 10, "mode": args.mode, "collection": args.collection, "filter": {"all_private": True}}
    out = {"load": asyncio.run(search_load(args.address, queries, args.concurrency, args.seconds, **kw))}
    if args.mixed:
        docs = [{**d, "version": 1} for d in cisi.documents() if d["text"]]
        kw.pop("collection")
        out["mixed"] = asyncio.run(mixed_load(args.address, queries, docs, 8, args.seconds,
                                              collection=args.collection, **kw))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
