"""Candidate hot loops for ragd._native (issue #4): measured in their numpy /
Python form against a compiled single-pass kernel, on realistic sizes.

    flock /tmp/ragd-bench.lock python benchmarks/hot_loops.py   # -> benchmarks/results/hot_loops.{json,png}

The rule (issue #4): a loop moves into ragd._native only when it dominates a
request and the compiled form measures at least 5x faster than the numpy form.

1. Permission-filter mask (ragd/index/columns.py FilterColumns.mask) over
   100k and 1M chunk rows, 1,000 projects, 8 types, 5% private chunks, a filter
   of 100 allowed projects + 2 types + private visibility (20 projects where
   the user may see private documents, plus their own): the filter of a typical
   RedMica user. The numpy form is the real FilterColumns.mask. The compiled
   form is a prototype of the best a kernel can do: one fused pass with
   lookup tables for projects and types (g++ -O3, called through ctypes; the
   script compiles it into a temporary directory, so it needs g++, as
   building ragd does).
2. Highlight extraction (ragd/index/keyword.py KeywordIndex.highlight, called
   by ragd/engine/search.py for every hit): one page of 10 hits of 500
   characters for a 3-word query. Its work is tantivy's analyzer (Rust:
   lowercase + Snowball stemmer) per word; a C++ port would have to reproduce
   that stemmer exactly, so the measurement here says whether the loop matters
   at all per request.

Time is the best of several repeats of the process's CPU time per call.
"""

from __future__ import annotations

import ctypes
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cisi, write  # noqa: E402

from ragd.domain import Filter  # noqa: E402
from ragd.index.columns import FilterColumns  # noqa: E402

PROJECTS, TYPES, PRIVATE_SHARE = 1000, 8, 0.05
ALLOWED, PRIVATE_ALLOWED = 100, 20

KERNEL = r"""
#include <cstdint>
#include <cstddef>
// The fused mask: alive & project allowed & type allowed & (public | private
// visible: project in private_ok, or own document). Lookup tables, one pass.
extern "C" void filter_mask(size_t n, const bool* alive, const int64_t* project, const int32_t* type_code,
                            const bool* priv, const int64_t* author, const uint8_t* project_ok, size_t n_projects,
                            const uint8_t* type_ok, size_t n_types, const uint8_t* private_ok, int64_t user,
                            bool* out) {
  for (size_t i = 0; i < n; ++i) {
    const uint64_t p = static_cast<uint64_t>(project[i]);
    const uint64_t t = static_cast<uint64_t>(type_code[i]);
    const bool in_project = p < n_projects && project_ok[p];
    const bool in_type = t < n_types && type_ok[t];
    const bool visible = !priv[i] || (p < n_projects && private_ok[p]) || author[i] == user;
    out[i] = alive[i] & in_project & in_type & visible;
  }
}
"""


def cpu_best(fn, repeats: int, inner: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(inner):
            fn()
        best = min(best, (time.process_time() - start) / inner)
    return best


def build_kernel(tmp: Path):
    src, lib = tmp / "kernel.cpp", tmp / "kernel.so"
    src.write_text(KERNEL)
    subprocess.run(["g++", "-O3", "-march=x86-64-v2" if sys.platform == "linux" else "-O3", "-shared", "-fPIC",
                    str(src), "-o", str(lib)], check=True)
    k = ctypes.CDLL(str(lib)).filter_mask
    k.restype = None
    return k


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
    return cols


def filter_case(n: int, rng: np.random.Generator, kernel) -> dict:
    cols = columns(n, rng)
    flt = Filter(project_ids=sorted(rng.choice(PROJECTS, ALLOWED, replace=False).tolist()),
                 types=["type0", "type3"],
                 private_project_ids=sorted(rng.choice(PROJECTS, PRIVATE_ALLOWED, replace=False).tolist()),
                 user_id=42)
    expected = cols.mask(flt)

    def compiled() -> np.ndarray:
        # Table building counts: it is per request.
        project_ok = np.zeros(PROJECTS, np.uint8)
        project_ok[flt.project_ids] = 1
        private_ok = np.zeros(PROJECTS, np.uint8)
        private_ok[flt.private_project_ids] = 1
        type_ok = np.zeros(TYPES, np.uint8)
        type_ok[[cols._types[t] for t in flt.types]] = 1  # noqa: SLF001
        out = np.empty(n, bool)
        ptr = lambda a: a.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
        kernel(ctypes.c_size_t(n), ptr(cols.alive), ptr(cols.project), ptr(cols.type_code), ptr(cols.private),
               ptr(cols.author), ptr(project_ok), ctypes.c_size_t(PROJECTS), ptr(type_ok), ctypes.c_size_t(TYPES),
               ptr(private_ok), ctypes.c_int64(flt.user_id), ptr(out))
        return out

    assert np.array_equal(compiled(), expected)
    inner = max(1, 200_000 // n)
    numpy_s = cpu_best(lambda: cols.mask(flt), 15, inner)
    compiled_s = cpu_best(compiled, 15, inner)
    return {"rows": n, "admitted": int(expected.sum()), "numpy_ms": round(numpy_s * 1e3, 3),
            "compiled_ms": round(compiled_s * 1e3, 3), "speedup": round(numpy_s / compiled_s, 2)}


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
    with tempfile.TemporaryDirectory(prefix="ragd-hot-") as tmp:
        kernel = build_kernel(Path(tmp))
        filters = [filter_case(n, rng, kernel) for n in (100_000, 1_000_000)]
    for f in filters:
        print(f"filter mask {f['rows']:>9,} rows: numpy {f['numpy_ms']:.3f} ms  fused C++ {f['compiled_ms']:.3f} ms"
              f"  -> {f['speedup']}x  ({f['admitted']:,} admitted)")
    hl = highlight_case()
    print(f"highlight: {hl['hits']} hits, {hl['words']} words: {hl['ms_per_page']:.3f} ms per page"
          f" ({hl['us_per_word']} us per word)")
    decisions = {
        "filter_mask": "move" if min(f["speedup"] for f in filters) >= 5 else "keep numpy",
        "highlight": "keep Python/tantivy (stemmer is tantivy's; see ms_per_page against a search's latency)",
    }
    print(decisions)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.5))
    labels = [f"{f['rows']:,} rows" for f in filters]
    xs = np.arange(len(filters))
    for off, key, name, color in ((-0.2, "numpy_ms", "numpy (FilterColumns.mask)", "#e69138"),
                                  (0.2, "compiled_ms", "fused C++ pass (prototype)", "#1f5fa8")):
        bars = a.bar(xs + off, [f[key] for f in filters], 0.4, label=name, color=color)
        a.bar_label(bars, fmt="%.2f", fontsize=8)
    a.set_xticks(xs, [f"{lab}\n{f['speedup']}x" for lab, f in zip(labels, filters)])
    a.set_ylabel("ms per filter (CPU, best of repeats)")
    a.set_title(f"Permission mask: {ALLOWED} projects, 2 types, private visibility", fontsize=9)
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
