"""Interleaved measurement: ragd and its peers in alternating rounds of one run.

The machines this runs on are shared: their speed changes from minute to minute
(one earlier harness run had ragd at 0.93-1.03x a peer, another at 1.8-2.2x, because
the peers were measured after ragd). So every system is measured once per round,
and the order is reversed every other round (A B C, C B A, A B C ...: a load that
rises or falls steadily hits every system alike). A ratio is taken within each
round, between measurements minutes apart at most, and reported as the median over
the rounds with its spread (lowest and highest round).
"""
from __future__ import annotations

import statistics
from collections.abc import Callable


def run_rounds(rounds: int, systems: dict[str, Callable[[], dict]], log=None) -> dict[str, list[dict]]:
    """{name: [result of round 1, round 2, ...]}: each callable once per round, alternating order."""
    names = list(systems)
    out: dict[str, list[dict]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            out[name].append(systems[name]())
            if log:
                log(f"round {r + 1}/{rounds} {name}: {summary_line(out[name][-1])}")
    return out


def summary_line(res: dict) -> str:
    if "qps" in res:
        return f"{res['qps']:.1f} q/s p50 {res.get('p50_ms', 0):.1f} ms p99 {res.get('p99_ms', 0):.1f} ms"
    keys = [k for k in ("texts_per_s", "tokens_per_s", "docs_per_s") if k in res]
    return ", ".join(f"{k} {res[k]:.1f}" for k in keys) or str(res)[:120]


def values(results: list[dict], key: str) -> list[float]:
    return [r[key] for r in results if r.get(key) is not None]


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def ratio(ours: list[float], theirs: list[float]) -> dict | None:
    """Per-round ratios ours/theirs (same round index), their median and spread."""
    pairs = [(a, b) for a, b in zip(ours, theirs) if a is not None and b]
    if not pairs:
        return None
    rs = sorted(a / b for a, b in pairs)
    return {"median": statistics.median(rs), "min": rs[0], "max": rs[-1], "rounds": len(rs), "per_round": rs}


def ratio_of(ours: list[dict], theirs: list[dict], key: str) -> dict | None:
    if len(ours) != len(theirs):
        raise ValueError(f"rounds differ: {len(ours)} vs {len(theirs)}")
    return ratio([r.get(key) for r in ours], [r.get(key) for r in theirs])


def fmt_ratio(r: dict | None) -> str:
    """'1.23x (1.10-1.31)': median over rounds (lowest-highest round)."""
    if not r:
        return "n/a"
    if r["rounds"] == 1:
        return f"{r['median']:.2f}x (1 round)"
    return f"{r['median']:.2f}x ({r['min']:.2f}-{r['max']:.2f})"
