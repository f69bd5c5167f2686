"""Thread-based load and recall helpers shared by the peers' process and the harness's
in-process index measurement (pure Python + numpy: importable from either virtualenv)."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np


def stats(lat_ms, seconds: float, errors: int = 0) -> dict:
    lat = np.sort(np.asarray(lat_ms, dtype=np.float64))
    if lat.size == 0:
        return {"qps": 0.0, "n": 0, "errors": errors}
    return {"qps": lat.size / seconds, "n": int(lat.size), "errors": errors,
            "p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)),
            "p99_ms": float(np.percentile(lat, 99)), "mean_ms": float(lat.mean())}


def run_threads(fn, n_items: int, concurrency: int, seconds: float) -> dict:
    """`concurrency` threads, each calling fn(i) back to back for `seconds` (i cycles over
    the items, each thread starting at its own offset); QPS and latency percentiles."""
    lat: list[float] = []
    errors = [0]
    first_error: list[str] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds
    t_start = time.perf_counter()

    def worker(k: int) -> None:
        i, mine = k, []
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            try:
                fn(i % n_items)
            except Exception as exc:  # noqa: BLE001 - counted and reported, never hidden
                with lock:
                    errors[0] += 1
                    if not first_error:
                        first_error.append(repr(exc))
            else:
                mine.append((time.perf_counter() - t0) * 1000)
            i += concurrency
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out = stats(lat, time.perf_counter() - t_start, errors[0])
    if first_error:
        out["first_error"] = first_error[0]
    return out


def exact_topk(vectors: np.ndarray, qvectors: np.ndarray, mask: np.ndarray | None, k: int) -> np.ndarray:
    """Rows of the exact top-k by inner product among the rows the mask admits."""
    scores = qvectors @ vectors.T
    if mask is not None:
        scores[:, ~mask] = -np.inf
    return np.argsort(-scores, axis=1)[:, :k]


def sweep(search, qvectors: np.ndarray, truth: np.ndarray, k: int) -> dict:
    """recall@k against `truth` and single-thread latency of search(vector) -> row ids."""
    lat, hits = [], 0
    for i, v in enumerate(qvectors):
        t0 = time.perf_counter()
        ids = search(v)
        lat.append((time.perf_counter() - t0) * 1000)
        hits += len(set(ids) & set(truth[i].tolist()))
    return {"recall_at_10": hits / (k * len(qvectors)), **stats(lat, sum(lat) / 1000)}


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int | None = None, tree: bool = True) -> float:
    """CPU time (user + system, every thread) a process has used, and with tree=True that
    of its live descendants too (Milvus Lite's server is a child of its client's process).
    On a shared machine wall-clock throughput measures the share of the cores a process got;
    work per CPU-second does not depend on how busy the machine is."""
    pid = os.getpid() if pid is None else pid
    procs = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
        procs[int(stat.parent.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK)
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        if p in procs:
            total += procs[p][1]
        if tree:
            todo.extend(c for c, (ppid, _) in procs.items() if ppid == p)
    return total
