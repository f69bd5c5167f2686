"""Candidate hot loops for ragd._native (issue #4): measured in their numpy /
Python form against a compiled single-pass kernel, on realistic sizes.

    flock /tmp/ragd-bench.lock python benchmarks/hot_loops.py   # -> benchmarks/results/hot_loops.{json,png}

The rule (issue #4): a loop moves into ragd._native only when it dominates a
request and the compiled form measures at least 5x faster than the numpy form.

1. Permission-filter mask (ragd/index/columns.py FilterColumns.mask) over
   100k and 1M chunk rows, 1,000 projects, 8 types, 5% private chunks, a filter
   of 100 allowed projects + 2 types + private visibility (20 projects where
   the user may see private documents, plus their own and those they are a
   viewer of): the filter of a typical RedMica user. Both forms run through
   FilterColumns: mask() (the one-pass kernel ragd._native.filter_mask, the
   form the daemon uses since this measurement) and _mask_numpy() (the numpy
   form it replaced, kept as the tests' reference); `kernel_ms` is the
   native call alone, without mask()'s argument building. Both forms' masks are
   checked equal before timing.
2. Grant mask (filters with grants, proto ragd.v1.Grant; FilterColumns.mask ->
   ragd._native.grant_mask) over the same columns plus trackers (6), owners (an
   author and an assignee among 5,000 users and 20 groups) and private notes (3%
   of rows), for a user in 200 projects with 1, 10 and 200 grants (1: one role in
   100 projects; 10: ten role profiles over 200 projects, three tracker-limited,
   visibilities mixed; 200: every project its own grant, trackers, visibilities
   and private notes mixed: the worst case for the compiled tables), beside
   today's mask (case 1's filter, without grants), interleaved A B A B in one
   process: `ratio` is the grant mask's time over today's per round (median and
   spread over the rounds). The numpy form (grant by grant, the tests' reference)
   is timed for 1 and 10 grants. Masks are checked equal to the numpy form first.
3. Highlight extraction (ragd/index/keyword.py KeywordIndex.highlight, called
   by ragd/engine/search.py for every hit): one page of 10 hits of 500
   characters for a 3-word query. Its work is tantivy's analyzer (Rust:
   lowercase + Snowball stemmer) per word; a C++ port would have to reproduce
   that stemmer exactly, so the measurement here says whether the loop matters
   at all per request.

Time is the best of several repeats of the process's CPU time per call.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cisi, write  # noqa: E402

from ragd import _native  # noqa: E402
from ragd.domain import Filter, Grant, Visibility  # noqa: E402
from ragd.index.columns import FilterColumns  # noqa: E402

PROJECTS, TYPES, PRIVATE_SHARE = 1000, 8, 0.05
ALLOWED, PRIVATE_ALLOWED = 100, 20

def cpu_best(fn, repeats: int, inner: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(inner):
            fn()
        best = min(best, (time.process_time() - start) / inner)
    return best


def columns(n: int, rng: np.random.Generator) -> FilterColumns:
    cols = FilterColumns()
    cols._ensure(n)  # noqa: SLF001  (filled column by column: set_chunks per document would take minutes)
    cols.alive[:] = rng.random(n) > 0.02  # some deleted chunks
    # Skewed as real instances are: a few big projects hold most issues.
    cols.project[:] = np.minimum(rng.zipf(1.3, n), PROJECTS) - 1
    cols.type_code[:] = rng.integers(0, TYPES, n, dtype=np.int32)
    cols.private[:] = rng.random(n) < PRIVATE_SHARE
    cols.author[:] = rng.integers(1, 5000, n)
    cols.updated[:] = rng.integers(0, 10**15, n)
    cols._types = {f"type{i}": i for i in range(TYPES)}  # noqa: SLF001
    cols.private_count = int(cols.private.sum())
    # User 42 is a viewer of 2% of the private chunks (issues shared with them).
    private_rows = np.flatnonzero(cols.private)
    cols._viewers = {42: set(rng.choice(private_rows, len(private_rows) // 50, replace=False).tolist())}  # noqa: SLF001
    return cols


def filter_case(n: int, rng: np.random.Generator) -> dict:
    cols = columns(n, rng)
    flt = Filter(project_ids=sorted(rng.choice(PROJECTS, ALLOWED, replace=False).tolist()),
                 types=["type0", "type3"],
                 private_project_ids=sorted(rng.choice(PROJECTS, PRIVATE_ALLOWED, replace=False).tolist()),
                 user_id=42)
    expected = cols._mask_numpy(flt)  # noqa: SLF001
    assert np.array_equal(cols.mask(flt), expected)

    # The kernel alone: mask()'s per-request argument building done once, outside.
    out = np.empty(n, bool)
    args = (out, cols.alive, cols.project, cols.type_code, cols.private, cols.author, cols.updated)
    viewers = cols._viewers[42]  # noqa: SLF001
    kw = {"projects": np.asarray(flt.project_ids, np.int64), "types": np.asarray([0, 3], np.int32),
          "private_check": True, "private_projects": np.asarray(flt.private_project_ids, np.int64), "user_id": 42,
          "viewer_rows": np.fromiter(viewers, np.int64, len(viewers))}
    _native.filter_mask(*args, **kw)
    assert np.array_equal(out, expected)

    inner = max(1, 200_000 // n)
    numpy_s = cpu_best(lambda: cols._mask_numpy(flt), 15, inner)  # noqa: SLF001
    native_s = cpu_best(lambda: cols.mask(flt), 15, inner)
    kernel_s = cpu_best(lambda: _native.filter_mask(*args, **kw), 15, inner)
    return {"rows": n, "admitted": int(expected.sum()), "viewer_rows": len(viewers),
            "numpy_ms": round(numpy_s * 1e3, 3), "native_ms": round(native_s * 1e3, 3),
            "kernel_ms": round(kernel_s * 1e3, 3), "speedup": round(numpy_s / native_s, 2)}


TRACKERS, USERS, GROUPS = 6, 5000, 20


def add_grant_columns(cols: FilterColumns, rng: np.random.Generator) -> None:
    n = cols.size
    cols._fill_codes(rng.integers(1, TRACKERS + 1, n))  # noqa: SLF001  (key and tracker codes)
    cols.owner0[:] = rng.integers(1, USERS, n)                       # the author
    assignee = rng.random(n) < 0.6
    cols.owner1[:] = np.where(assignee, np.where(rng.random(n) < 0.2, rng.integers(USERS, USERS + GROUPS, n),
                                                 rng.integers(1, USERS, n)), 0)
    journal = cols.type_code == 1
    cols.gflags[:] = cols.private.astype(np.uint8) | np.where(journal & (rng.random(n) < 0.03), 4, 0).astype(np.uint8)


def grant_filters(rng: np.random.Generator) -> dict[int, Filter]:
    member = sorted(rng.choice(PROJECTS, 200, replace=False).tolist())
    vis = list(Visibility)
    types = ["type0", "type1"]  # issues and journals
    one = Filter(user_id=42, group_ids=[USERS + 3],
                 grants=[Grant(types, member[:100], Visibility.DEFAULT, [], False)])
    ten = Filter(user_id=42, group_ids=[USERS + 3, USERS + 7], grants=[
        Grant(types, member[g * 20:(g + 1) * 20], vis[g % 3], [1, 2] if g % 4 == 1 else [], g % 2 == 0)
        for g in range(10)])
    many = Filter(user_id=42, group_ids=[USERS + 3, USERS + 7], grants=[
        Grant(types, [p], vis[i % 3], sorted(rng.choice(np.arange(1, TRACKERS + 1), 2, replace=False).tolist())
              if i % 3 == 0 else [], i % 2 == 0) for i, p in enumerate(member)])
    return {1: one, 10: ten, 200: many}


def interleaved(fns: dict, rounds: int, inner: int) -> dict[str, list[float]]:
    """Per-round CPU ms per call of each function, the functions taking turns (A B A B)."""
    out: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            out[name].append(cpu_best(fn, 1, inner) * 1e3)
    return out


def spread(xs) -> dict:
    xs = np.asarray(xs)
    return {"median": round(float(np.median(xs)), 3), "min": round(float(xs.min()), 3),
            "max": round(float(xs.max()), 3)}


def grant_case(n: int, rng: np.random.Generator) -> dict:
    cols = columns(n, rng)
    add_grant_columns(cols, rng)
    today = Filter(project_ids=sorted(rng.choice(PROJECTS, ALLOWED, replace=False).tolist()),
                   types=["type0", "type3"],
                   private_project_ids=sorted(rng.choice(PROJECTS, PRIVATE_ALLOWED, replace=False).tolist()),
                   user_id=42)
    out = {"rows": n, "cases": []}
    inner = max(1, 200_000 // n)
    for count, flt in grant_filters(rng).items():
        expected = cols._mask_numpy(flt)  # noqa: SLF001
        got = cols.mask(flt)
        assert np.array_equal(got, expected), count
        fns = {"today": lambda: cols.mask(today), "grants": lambda flt=flt: cols.mask(flt)}
        if count <= 10:
            fns["numpy"] = lambda flt=flt: cols._mask_numpy(flt)  # noqa: SLF001
        times = interleaved(fns, 15, inner)
        ratios = [g / t for g, t in zip(times["grants"], times["today"])]
        case = {"grants": count, "admitted": int(got.sum()), "today_ms": spread(times["today"]),
                "grant_ms": spread(times["grants"]), "ratio": spread(ratios)}
        if "numpy" in times:
            case["numpy_ms"] = spread(times["numpy"])
        out["cases"].append(case)
    return out


def highlight_case() -> dict:
    from ragd.engine.chunking import Chunker
    from ragd.index.keyword import KeywordIndex, QueryTerms, analyzer

    an = analyzer()
    chunks = Chunker().chunk_many([d["text"] for d in cisi.documents()[:200]]).texts
    page = chunks[:10]
    qt = QueryTerms("information retrieval systems", an)
    index = KeywordIndex.__new__(KeywordIndex)  # highlight needs only the analyzer
    index.analyzer = an
    per_page = cpu_best(lambda: [index.highlight(qt, t) for t in page], 15, 20)
    words = sum(len(t.split()) for t in page)
    return {"hits": len(page), "chars": sum(len(t) for t in page), "words": words,
            "ms_per_page": round(per_page * 1e3, 3), "us_per_word": round(per_page / words * 1e6, 3),
            "spans": sum(len(index.highlight(qt, t)) for t in page)}


def main() -> None:
    rng = np.random.default_rng(4)
    random.seed(4)
    filters = [filter_case(n, rng) for n in (100_000, 1_000_000)]
    for f in filters:
        print(f"filter mask {f['rows']:>9,} rows: numpy {f['numpy_ms']:.3f} ms  ragd._native {f['native_ms']:.3f} ms"
              f" (kernel alone {f['kernel_ms']:.3f} ms)  -> {f['speedup']}x  ({f['admitted']:,} admitted)")
    grants = [grant_case(n, rng) for n in (100_000, 1_000_000)]
    for g in grants:
        for c in g["cases"]:
            numpy_ms = f"  numpy {c['numpy_ms']['median']:.2f} ms" if "numpy_ms" in c else ""
            print(f"grant mask {g['rows']:>9,} rows, {c['grants']:>3} grants: {c['grant_ms']['median']:.3f} ms "
                  f"[{c['grant_ms']['min']:.3f}-{c['grant_ms']['max']:.3f}]  "
                  f"today's mask {c['today_ms']['median']:.3f} ms"
                  f"  ratio {c['ratio']['median']:.2f}x [{c['ratio']['min']:.2f}-{c['ratio']['max']:.2f}]{numpy_ms}"
                  f"  ({c['admitted']:,} admitted)")
    hl = highlight_case()
    print(f"highlight: {hl['hits']} hits, {hl['words']} words: {hl['ms_per_page']:.3f} ms per page"
          f" ({hl['us_per_word']} us per word)")
    decisions = {
        "filter_mask": ("moved: FilterColumns.mask uses ragd._native.filter_mask"
                        if min(f["speedup"] for f in filters) >= 5
                        else "below 5x: move FilterColumns.mask back to numpy"),
        "highlight": "keep Python/tantivy (stemmer is tantivy's; see ms_per_page against a search's latency)",
    }
    print(decisions)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, c, b) = plt.subplots(1, 3, figsize=(16, 4.5), gridspec_kw={"width_ratios": [2, 3, 1]})
    labels = [f"{f['rows']:,} rows" for f in filters]
    xs = np.arange(len(filters))
    for off, key, name, color in ((-0.2, "numpy_ms", "numpy (FilterColumns._mask_numpy)", "#e69138"),
                                  (0.2, "native_ms", "ragd._native kernel (FilterColumns.mask)", "#1f5fa8")):
        bars = a.bar(xs + off, [f[key] for f in filters], 0.4, label=name, color=color)
        a.bar_label(bars, fmt="%.2f", fontsize=8)
    a.set_xticks(xs, [f"{lab}\n{f['speedup']}x" for lab, f in zip(labels, filters)])
    a.set_ylabel("ms per filter (CPU, best of repeats)")
    a.set_yscale("log")
    a.set_title(f"Permission mask: {ALLOWED} projects, 2 types, private visibility (+ viewers)", fontsize=9)
    a.legend(fontsize=8)
    labels, today_ms, grant_ms = [], [], []
    for g in grants:
        for case in g["cases"]:
            labels.append(f"{g['rows'] // 1000:,}k rows\n{case['grants']} grants\n{case['ratio']['median']:.2f}x")
            today_ms.append(case["today_ms"]["median"])
            grant_ms.append(case["grant_ms"]["median"])
    xs = np.arange(len(labels))
    for off, vals, name, color in ((-0.2, today_ms, "today's mask (no grants)", "#999999"),
                                   (0.2, grant_ms, "grant mask (ragd._native.grant_mask)", "#1f5fa8")):
        bars = c.bar(xs + off, vals, 0.4, label=name, color=color)
        c.bar_label(bars, fmt="%.2f", fontsize=7)
    c.set_xticks(xs, labels, fontsize=7)
    c.set_yscale("log")
    c.set_ylabel("ms per filter (CPU, median of interleaved rounds)")
    c.set_title("Grant mask beside today's mask (ratio: median per round)", fontsize=9)
    c.legend(fontsize=8)
    b.bar(["highlight, 10 hits"], [hl["ms_per_page"]], color="#6aa84f")
    b.set_ylabel("ms per page of hits")
    b.set_title(f"Highlight extraction ({hl['words']} words, tantivy analyzer per word)", fontsize=9)
    fig.tight_layout()
    write("hot_loops", {"filter_mask": filters, "grant_mask": grants, "highlight": hl, "decisions": decisions,
                        "setup": {"projects": PROJECTS, "types": TYPES, "private_share": PRIVATE_SHARE,
                                  "allowed_projects": ALLOWED, "private_projects": PRIVATE_ALLOWED}}, fig)


if __name__ == "__main__":
    main()
