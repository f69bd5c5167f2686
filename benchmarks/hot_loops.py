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
2. Highlight extraction (ragd/index/keyword.py KeywordIndex.highlight, called
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
from ragd.domain import Filter  # noqa: E402
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

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.5))
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
    b.bar(["highlight, 10 hits"], [hl["ms_per_page"]], color="#6aa84f")
    b.set_ylabel("ms per page of hits")
    b.set_title(f"Highlight extraction ({hl['words']} words, tantivy analyzer per word)", fontsize=9)
    fig.tight_layout()
    write("hot_loops", {"filter_mask": filters, "highlight": hl, "decisions": decisions,
                        "setup": {"projects": PROJECTS, "types": TYPES, "private_share": PRIVATE_SHARE,
                                  "allowed_projects": ALLOWED, "private_projects": PRIVATE_ALLOWED}}, fig)


if __name__ == "__main__":
    main()
