"""Rank fusion of the vector and keyword result lists (HYBRID mode).

Reciprocal rank fusion (Cormack et al. 2009): score(d) = sum over lists of
w_list / (k + rank_list(d)), rank from 1. It needs no score calibration between
cosine similarity and BM25, which live on unrelated scales; benchmarks/quality.py
measures it against the alternatives on CISI (see design.md / README).
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence


def rrf(lists: Sequence[Sequence[Hashable]], k: float = 60.0,
        weights: Sequence[float] | None = None) -> list[tuple[Hashable, float]]:
    """Fused (key, score) best first; ties keep the order of first appearance."""
    weights = weights or [1.0] * len(lists)
    scores: dict[Hashable, float] = {}
    for keys, w in zip(lists, weights):
        for rank, key in enumerate(keys, start=1):
            scores[key] = scores.get(key, 0.0) + w / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


def dedupe_by(pairs: Sequence[tuple[int, float]], group_of) -> list[tuple[int, float]]:
    """Keep the first (best) chunk of each group, in order."""
    seen: set = set()
    out = []
    for cid, score in pairs:
        g = group_of(cid)
        if g not in seen:
            seen.add(g)
            out.append((cid, score))
    return out


def relative_score(lists: Sequence[Sequence[tuple[Hashable, float]]],
                   weights: Sequence[float] | None = None) -> list[tuple[Hashable, float]]:
    """Convex combination of min-max normalised scores ("relative score fusion", Weaviate's
    default hybrid since 1.24): each list's scores are mapped to [0, 1] (best = 1, worst of
    the list = 0), weighted, and summed; a key missing from a list gets 0 from it. Unlike
    RRF it keeps how far apart the scores are, not just their order."""
    weights = weights or [1.0] * len(lists)
    total = sum(weights) or 1.0
    scores: dict[Hashable, float] = {}
    for pairs, w in zip(lists, weights):
        if not pairs:
            continue
        values = [s for _, s in pairs]
        hi, lo = max(values), min(values)
        for key, s in pairs:
            norm = (s - lo) / (hi - lo) if hi > lo else 1.0
            scores[key] = scores.get(key, 0.0) + (w / total) * norm
    return sorted(scores.items(), key=lambda kv: -kv[1])
