"""FilterColumns.mask (the ragd._native kernel for projects, types, private
visibility and updated_at, numpy for the rest) against FilterColumns._mask_numpy
(the numpy form): the same mask, bit for bit, on random and edge-case columns and
filters; and ragd._native.filter_mask's argument checks (ValueError, not a crash)."""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ragd import _native
from ragd.domain import Document, Filter, MetadataRange
from ragd.index.columns import FilterColumns, decode_state, encode_state

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
TYPES = ["issue", "wiki", "news", "forum"]


def assert_same(cols: FilterColumns, flt: Filter) -> np.ndarray | None:
    got, want = cols.mask(flt), cols._mask_numpy(flt)  # noqa: SLF001
    if want is None:
        assert got is None, flt
        return None
    assert got is not None, flt
    assert got.dtype == want.dtype == np.bool_ and got.shape == want.shape == (cols.size,)
    assert np.array_equal(got, want), (flt, np.flatnonzero(got != want)[:10])
    return got


def random_columns(rng: random.Random, docs: int, projects, users=range(1, 9)) -> FilterColumns:
    """Documents written, rewritten and deleted through set_chunks/clear_chunks, as the engine does."""
    cols = FilterColumns()
    next_id, live = 0, {}
    for i in range(docs):
        doc = Document(id=f"d{i}", text="x", project_id=rng.choice(projects), type=rng.choice(TYPES[:3]),
                       is_private=rng.random() < 0.3, author_id=rng.choice(users),
                       updated_at_us=rng.choice([0, rng.randint(0, 100), I64_MAX, I64_MIN]),
                       metadata={"tracker": rng.choice(["bug", "feature"]), "prio": str(rng.randint(1, 5))},
                       viewer_ids=rng.sample(list(users), rng.randint(0, 2)))
        ids = list(range(next_id, next_id + rng.randint(1, 3)))
        next_id += len(ids)
        cols.set_chunks(ids, doc)
        live[doc.id] = ids
    for doc_id in rng.sample(sorted(live), len(live) // 8):  # deleted documents: tombstoned rows
        cols.clear_chunks(live.pop(doc_id))
    for doc_id in rng.sample(sorted(live), len(live) // 8):  # rewritten: old rows cleared, new ones set
        cols.clear_chunks(live.pop(doc_id))
        ids = list(range(next_id, next_id + 2))
        next_id += 2
        cols.set_chunks(ids, Document(id=doc_id, text="y", project_id=rng.choice(projects), type="wiki",
                                      is_private=True, author_id=rng.choice(users), viewer_ids=[1]))
    return cols


def random_filter(rng: random.Random, projects, users=range(1, 9)) -> Filter:
    pick = lambda seq, k: rng.sample(list(seq), rng.randint(0, min(k, len(seq))))  # noqa: E731
    return Filter(project_ids=pick(projects, 3), types=pick([*TYPES, "zzz"], 2),
                  private_project_ids=pick(projects, 2),
                  user_id=rng.choice([0, rng.choice(users), 99]), all_private=rng.random() < 0.1,
                  metadata_equals={"tracker": "bug"} if rng.random() < 0.2 else {},
                  metadata_ranges=[MetadataRange("prio", gte=2, lte=4)] if rng.random() < 0.2 else [],
                  updated_after_us=rng.choice([None, None, 30, I64_MIN, I64_MAX, 2**70]),
                  updated_before_us=rng.choice([None, None, 70, I64_MAX, I64_MIN, -(2**70)]),
                  exclude_ids=[f"d{rng.randint(0, 99)}"] if rng.random() < 0.2 else [])


@pytest.mark.parametrize("projects", [list(range(1, 7)),  # compact ids: lookup tables
                                      [1, 5, 10**6, 2**40, -(2**40), I64_MAX, I64_MIN]],  # spread: sorted sets
                         ids=["compact", "spread"])
def test_native_mask_equals_numpy_on_random_columns(projects):
    rng = random.Random(11)
    for _ in range(8):
        cols = random_columns(rng, rng.randint(1, 120), projects)
        for _ in range(80):
            assert_same(cols, random_filter(rng, projects))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), docs=st.integers(0, 40), n_projects=st.integers(1, 6),
       spread=st.booleans())
def test_native_mask_equals_numpy_hypothesis(seed, docs, n_projects, spread):
    rng = random.Random(seed)
    projects = [rng.choice([rng.randint(0, 10), rng.randint(I64_MIN, I64_MAX)]) if spread else rng.randint(0, 10)
                for _ in range(n_projects)]
    cols = random_columns(rng, docs, projects)
    for _ in range(10):
        assert_same(cols, random_filter(rng, projects + [rng.randint(-5, 20)]))


def test_every_condition_at_once():
    rng = random.Random(2)
    cols = random_columns(rng, 300, list(range(1, 7)))
    for user in range(0, 9):
        flt = Filter(project_ids=[1, 2, 3, 4], types=["issue", "wiki"], private_project_ids=[2], user_id=user,
                     metadata_equals={"tracker": "bug"}, metadata_ranges=[MetadataRange("prio", gte=2)],
                     updated_after_us=10, updated_before_us=90, exclude_ids=["d3", "d7", "nope"])
        assert_same(cols, flt)


def test_empty_columns():
    cols = FilterColumns()
    assert cols.mask(Filter(all_private=True)) is None
    for flt in (Filter(), Filter(project_ids=[1]), Filter(types=["issue"]), Filter(updated_after_us=0),
                Filter(exclude_ids=["d1"]), Filter(metadata_equals={"a": "b"})):
        got = assert_same(cols, flt)
        assert got.shape == (0,)  # bounded at the rows that exist: none


def test_no_project_filter_and_no_private_rows():
    cols = FilterColumns()
    for i in range(10):
        cols.set_chunks([i], Document(id=f"d{i}", text="x", project_id=i % 3, type="issue", updated_at_us=i))
    cols.clear_chunks([4])
    assert cols.mask(Filter(all_private=True)) is None  # no condition at all: every chunk
    # No private rows: visibility checks nothing, but the mask is bounded at the rows
    # that exist now, so a private chunk committed during the search stays out.
    for flt in (Filter(), Filter(user_id=3)):
        assert assert_same(cols, flt).tolist() == [i != 4 for i in range(10)]
    assert_same(cols, Filter(user_id=3, updated_after_us=5))
    got = assert_same(cols, Filter(types=["issue"]))
    assert got.tolist() == [i != 4 for i in range(10)]  # only the deleted row is out
    got = assert_same(cols, Filter(types=["zzz"]))  # an unknown type admits nothing
    assert not got.any()


def test_private_visibility_paths():
    cols = FilterColumns()
    cols.set_chunks([0], Document(id="pub", text="x", project_id=1))
    cols.set_chunks([1], Document(id="own", text="x", project_id=1, is_private=True, author_id=7))
    cols.set_chunks([2], Document(id="shared", text="x", project_id=1, is_private=True, author_id=8,
                                  viewer_ids=[7]))
    cols.set_chunks([3], Document(id="proj", text="x", project_id=2, is_private=True, author_id=8))
    cases = [(Filter(), [1, 0, 0, 0]), (Filter(user_id=7), [1, 1, 1, 0]), (Filter(user_id=8), [1, 0, 1, 1]),
             (Filter(private_project_ids=[2]), [1, 0, 0, 1]), (Filter(all_private=True), None),
             (Filter(user_id=2**70), [1, 0, 0, 0]), (Filter(user_id=7, project_ids=[2]), [0, 0, 0, 0])]
    for flt, want in cases:
        got = assert_same(cols, flt)
        assert (None if got is None else got.astype(int).tolist()) == want, flt
    cols.clear_chunks([2])  # a deleted viewer row stays out, though the user is still its viewer
    assert assert_same(cols, Filter(user_id=7)).astype(int).tolist() == [1, 1, 0, 0]


def test_columns_restored_from_a_snapshot():
    rng = random.Random(5)
    cols = random_columns(rng, 200, list(range(1, 7)))
    restored = FilterColumns.from_state(decode_state(*encode_state(cols.export_state())))
    for _ in range(100):
        flt = random_filter(rng, list(range(1, 7)))
        a, b = cols.mask(flt), restored.mask(flt)
        assert (a is None and b is None) or np.array_equal(a, b)
        assert_same(restored, flt)


def test_large_columns_from_arrays():
    # Columns filled directly at a realistic size (as the benchmark does).
    n, rng = 50_000, np.random.default_rng(3)
    cols = FilterColumns()
    cols._ensure(n)  # noqa: SLF001
    cols.alive[:] = rng.random(n) > 0.02
    cols.project[:] = np.minimum(rng.zipf(1.3, n), 1000) - 1
    cols.type_code[:] = rng.integers(0, 8, n, dtype=np.int32)
    cols.private[:] = rng.random(n) < 0.05
    cols.author[:] = rng.integers(1, 50, n)
    cols.updated[:] = rng.integers(0, 10**15, n)
    cols._types = {f"type{i}": i for i in range(8)}  # noqa: SLF001
    cols.private_count = int(cols.private.sum())
    cols._viewers = {42: set(rng.choice(n, 300, replace=False).tolist())}  # noqa: SLF001
    for _ in range(20):
        assert_same(cols, Filter(project_ids=rng.choice(1000, 100, replace=False).tolist(),
                                 types=["type0", "type3"], private_project_ids=rng.choice(1000, 20).tolist(),
                                 user_id=int(rng.choice([0, 42, 7])), updated_after_us=int(rng.integers(0, 10**15))))


# --------------------------------------------------------------- argument checks

def arrays(n: int = 4) -> dict:
    return {"out": np.empty(n, bool), "alive": np.ones(n, bool), "project": np.arange(n, dtype=np.int64),
            "type_code": np.zeros(n, np.int32), "private": np.zeros(n, bool), "author": np.zeros(n, np.int64),
            "updated": np.zeros(n, np.int64)}


def call(kw: dict | None = None, **args):
    a = {**arrays(), **args}
    _native.filter_mask(*a.values(), **(kw or {}))
    return a["out"]


@pytest.mark.parametrize("name", ["alive", "project", "type_code", "private", "author", "updated"])
@pytest.mark.parametrize("bad", ["dtype", "short", "long", "2d", "strided", "scalar"])
def test_bad_columns_raise_value_error(name, bad):
    good = arrays()[name]
    wrong = {"dtype": good.astype(np.float64 if good.dtype != np.float64 else np.int64),
             "short": good[:3], "long": np.concatenate([good, good[:1]]), "2d": good.reshape(2, 2),
             "strided": np.concatenate([good, good])[::2], "scalar": good[0:1].reshape(())}[bad]
    with pytest.raises(ValueError, match=name):
        call(**{name: wrong})


@pytest.mark.parametrize("out", [np.empty(4, np.int64), np.empty(3, bool), np.empty((2, 2), bool),
                                 np.empty(8, bool)[::2]])
def test_bad_out_raises_value_error(out):
    with pytest.raises(ValueError, match="out|rows"):
        call(out=out)


def test_read_only_out_and_overlap_raise_value_error():
    out = np.empty(4, bool)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        call(out=out)
    shared = np.ones(4, bool)
    with pytest.raises(ValueError, match="overlaps alive"):
        call(out=shared, alive=shared)


def test_uint8_out_and_read_only_columns_are_accepted():
    out = np.full(4, 9, np.uint8)
    alive = np.array([1, 0, 1, 1], bool)
    alive.flags.writeable = False
    call(out=out, alive=alive, kw={"projects": np.array([0, 1, 2], np.int64)})
    assert out.tolist() == [1, 0, 1, 0]


@pytest.mark.parametrize("kw", [{"projects": np.array([1.0])}, {"projects": np.array([[1]], np.int64)},
                                {"types": np.array([1], np.int64)}, {"private_projects": np.array([1], np.int32)},
                                {"private_check": True, "viewer_rows": np.array([4], np.int64)},
                                {"private_check": True, "viewer_rows": np.array([-1], np.int64)},
                                {"viewer_rows": np.array([0], np.int32)}])
def test_bad_filter_arrays_raise_value_error(kw):
    with pytest.raises(ValueError):
        call(kw)


def test_out_of_range_integers_raise_type_error_not_crash():
    with pytest.raises(TypeError):
        call({"updated_min": 2**64})
    with pytest.raises(TypeError):
        call({"projects": [1, 2]})  # a list is not an array
