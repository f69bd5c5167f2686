"""Old-style filters (no grants) give exactly the results they gave before grants
existed: the admitted chunks of 120 seeded filters and the pages of every search
mode, compared with tests/data/filter_regression.json, which was written by the
code before the grants change (commit 52dcb99) from this very corpus and these
very filters.

The corpus is tests/test_permissions.py's random_doc (unchanged since; changing
it changes this golden file's inputs, which this test would report) and the
filter draw below a frozen copy of the hypothesis strategy used then: do not
change either, or the golden file no longer matches its inputs.

    python tests/test_filter_regression.py --write   # rewrite the golden file (only
                                                     # if an intended change says so)
"""
from __future__ import annotations

import hashlib
import json
import random
import sys
from dataclasses import replace
from itertools import groupby
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_permissions import WORDS, Harness, random_doc  # noqa: E402

from ragd.domain import Filter, MetadataRange, SearchMode  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "data" / "filter_regression.json"
QUERIES = ["alpha comet river", "ERR_CONN_42", "stone", "mail_handler.rb forest"]
TOP_K = 12
MODES = [SearchMode.VECTOR, SearchMode.KEYWORD, SearchMode.HYBRID, SearchMode.AUTO]


def frozen_filter(rng: random.Random) -> Filter:
    def some(values, k):
        return rng.sample(values, rng.randint(0, k))
    after = rng.choice([None, rng.randint(0, 1000) * 1_000_000])
    before = rng.choice([None, rng.randint(0, 1000) * 1_000_000])
    return Filter(project_ids=some(range(1, 8), 3), types=some(["issue", "journal", "wiki", "news", "nothing"], 2),
                  private_project_ids=some(range(1, 7), 2), user_id=rng.choice([0, rng.randint(1, 9)]),
                  all_private=rng.random() < 0.2,
                  metadata_equals=rng.choice([{}, {}, {"tracker": "bug"}, {"tracker": "support"}]),
                  metadata_ranges=rng.choice([[], [], [MetadataRange("prio", gte=2, lte=4)]]),
                  updated_after_us=after, updated_before_us=before,
                  exclude_ids=[f"issue:{rng.randrange(50)}" for _ in range(rng.randint(0, 3))])


def build(path: Path) -> Harness:
    rng = random.Random(20261124)
    h = Harness(path)
    docs = [random_doc(rng, i) for i in range(400)]
    for i in range(0, len(docs), 50):
        h.upsert(docs[i:i + 50])
    flips = [replace(d, is_private=not d.is_private, project_id=rng.randint(1, 6), metadata=dict(d.metadata),
                     viewer_ids=list(d.viewer_ids), text=d.text + " " + rng.choice(WORDS))
             for d in rng.sample(docs, 80)]
    h.upsert(flips)
    h.delete([d.id for d in rng.sample(docs, 30)])
    return h


def observe(h: Harness) -> list[dict]:
    rng = random.Random(7)
    cols = h.collections.get("c").columns
    out = []
    for n in range(120):
        flt = frozen_filter(rng)
        mask = cols.mask(flt)
        admitted = np.flatnonzero(mask) if mask is not None else np.arange(cols.size)
        # repr of the fields of then (later fields, unset here, left out)
        entry = {"filter": repr(flt).replace(", grants=[], group_ids=[])", ")"), "admitted": len(admitted),
                 "mask_sha": hashlib.sha256(np.asarray(admitted, np.int64).tobytes()).hexdigest()[:16]}
        if n % 4 == 0:  # pages for a quarter of them: every mode, grouped and not
            pages = {}
            for q in QUERIES:
                for mode in MODES:
                    for group in (False, True):
                        res = h.search(q, mode, replace(flt, exclude_ids=list(flt.exclude_ids)), top_k=TOP_K,
                                       group=group)
                        pages[f"{q}|{mode.name}|{group}"] = [
                            [x.document.id, x.chunk_id, round(x.score, 4)] for x in res.hits]
            entry["pages"] = pages
        out.append(entry)
    return out


def tie_groups(page: list) -> list:
    """A page as its runs of equal scores, each run a set of (document, chunk): the
    same hits with the same scores in the same order, except that hits tied on score
    may come in any order (BM25 ties are common; tantivy breaks them by its internal
    document order, which depends on how the keyword index was written, not on the
    filter). A full page's last run may be cut anywhere inside the tie, so it is
    compared by its scores alone."""
    runs = [(score, {(h[0], h[1]) for h in run}) for score, run in groupby(page, key=lambda h: round(h[2], 4))]
    if len(page) == TOP_K and runs:
        runs[-1] = (runs[-1][0], len(runs[-1][1]))
    return runs


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    h = build(tmp_path_factory.mktemp("regression"))
    yield h
    h.close()


def test_old_style_filters_give_todays_results(harness):
    golden = json.loads(GOLDEN.read_text())
    got = observe(harness)
    assert len(got) == len(golden) == 120
    pages = 0
    for want, have in zip(golden, got):
        assert have["filter"] == want["filter"]  # the frozen draw is unchanged
        assert (have["admitted"], have["mask_sha"]) == (want["admitted"], want["mask_sha"]), want["filter"]
        for key, hits in want.get("pages", {}).items():
            assert tie_groups(have["pages"][key]) == tie_groups(hits), (key, want["filter"])
            assert np.allclose([h[2] for h in have["pages"][key]], [h[2] for h in hits], atol=1e-3)
            pages += 1
    assert pages == 30 * len(QUERIES) * len(MODES) * 2
    print(f"old-style filters: {len(golden)} masks and {pages} pages identical to the pre-grants code")


if __name__ == "__main__" and "--write" in sys.argv:
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        h = build(Path(tmp))
        try:
            data = observe(h)
        finally:
            h.close()
    # One filter per line: a diff shows which filter changed.
    GOLDEN.write_text("[\n" + ",\n".join(json.dumps(e, sort_keys=True, separators=(",", ":")) for e in data)
                      + "\n]\n")
    print(f"wrote {GOLDEN} ({len(data)} filters)")
