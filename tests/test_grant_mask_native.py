"""FilterColumns.mask for filters with grants (the ragd._native.grant_mask kernel,
numpy for metadata and exclude_ids) against FilterColumns._grant_mask_numpy (grant
by grant in numpy) and against the contract oracle (tests/permission_oracle.py,
written from the proto): the same mask on random columns, grants and principals,
through writes, rewrites, deletes and a snapshot round trip; and the binding's
argument checks (ValueError, not a crash)."""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from permission_oracle import may_see

from ragd import _native
from ragd.domain import Document, Filter, Grant, MetadataRange, Visibility
from ragd.index.columns import FilterColumns, decode_state, encode_state

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
TYPES = ["issue", "journal", "wiki", "news"]


def random_doc(rng: random.Random, i: int, projects, principals) -> Document:
    kind = rng.choice(TYPES)
    return Document(id=f"d{i}", text="x", project_id=rng.choice(projects), type=kind,
                    is_private=rng.random() < 0.3, author_id=rng.choice(principals[:8]),
                    updated_at_us=rng.choice([0, rng.randint(0, 100), I64_MAX, I64_MIN]),
                    metadata={"prio": str(rng.randint(1, 5))} if rng.random() < 0.5 else {},
                    viewer_ids=rng.sample(principals[:8], rng.randint(0, 1)),
                    tracker_id=rng.choice([0, 1, 2, 3, 2**40]),
                    # up to four owners (past two: the inverted map), zeros (nobody) and repeats
                    owner_ids=[rng.choice([0, *principals]) for _ in range(rng.choice([0, 1, 2, 2, 3, 4]))],
                    private_note=kind == "journal" and rng.random() < 0.4)


class World:
    """Columns written, rewritten and deleted as the engine does, with the documents they hold."""

    def __init__(self, rng: random.Random, docs: int, projects, principals):
        self.cols = FilterColumns()
        self.docs: dict[int, Document] = {}  # chunk id -> current document
        next_id, live = 0, {}
        for i in range(docs):
            doc = random_doc(rng, i, projects, principals)
            ids = list(range(next_id, next_id + rng.randint(1, 3)))
            next_id += len(ids)
            self.cols.set_chunks(ids, doc)
            live[doc.id] = ids
            self.docs.update(dict.fromkeys(ids, doc))
        for doc_id in rng.sample(sorted(live), len(live) // 6):  # deleted
            ids = live.pop(doc_id)
            self.cols.clear_chunks(ids)
            for cid in ids:
                del self.docs[cid]
        for doc_id in rng.sample(sorted(live), len(live) // 6):  # rewritten: moved, privacy and owners changed
            old = live.pop(doc_id)
            self.cols.clear_chunks(old)
            for cid in old:
                del self.docs[cid]
            doc = random_doc(rng, int(doc_id[1:]), projects, principals)
            ids = list(range(next_id, next_id + 2))
            next_id += 2
            self.cols.set_chunks(ids, doc)
            live[doc_id] = ids
            self.docs.update(dict.fromkeys(ids, doc))


def random_grants_filter(rng: random.Random, projects, principals) -> Filter:
    def pick(seq, lo, hi):
        return rng.sample(list(seq), rng.randint(lo, min(hi, len(seq))))
    grants = [Grant(types=pick([*TYPES, "zzz"], 1, 3), project_ids=pick(projects, 1, 3),
                    visibility=rng.choice(list(Visibility)), tracker_ids=pick([0, 1, 2, 3, 2**40, 9], 0, 2),
                    private_notes=rng.random() < 0.4)
              for _ in range(rng.randint(1, 6))]
    return Filter(grants=grants, user_id=rng.choice([0, *principals[:8], 99]),
                  group_ids=pick(principals[8:], 0, 2),
                  project_ids=pick(projects, 0, 2) if rng.random() < 0.2 else [],
                  types=pick(TYPES, 0, 2) if rng.random() < 0.2 else [],
                  metadata_ranges=[MetadataRange("prio", gte=2)] if rng.random() < 0.15 else [],
                  updated_after_us=rng.choice([None, None, 30, I64_MIN, 2**70]),
                  updated_before_us=rng.choice([None, None, 70, I64_MAX]),
                  exclude_ids=[f"d{rng.randint(0, 40)}"] if rng.random() < 0.2 else [])


def check(world: World, flt: Filter) -> np.ndarray:
    got, ref = world.cols.mask(flt), world.cols._mask_numpy(flt)  # noqa: SLF001
    assert got.dtype == np.bool_ and got.shape == (world.cols.size,)
    assert np.array_equal(got, ref), (flt, np.flatnonzero(got != ref)[:10])
    want = np.zeros(world.cols.size, bool)
    for cid, doc in world.docs.items():
        want[cid] = may_see(doc, flt)
    assert np.array_equal(got, want), (flt, np.flatnonzero(got != want)[:10])
    return got


@pytest.mark.parametrize("projects,principals", [
    (list(range(1, 7)), list(range(1, 13))),                                       # compact ids: tables
    ([1, 5, 10**6, 2**40, -(2**40), I64_MAX], [3, 7, 2**33, 5, 9, 11, 13, 1, 2**50, 2**51, 17, 19]),  # spread
], ids=["compact", "spread"])
def test_grant_mask_equals_numpy_and_the_oracle(projects, principals):
    rng = random.Random(15)
    for _ in range(6):
        world = World(rng, rng.randint(1, 100), projects, principals)
        for _ in range(60):
            check(world, random_grants_filter(rng, projects, principals))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), docs=st.integers(0, 40))
def test_grant_mask_hypothesis(seed, docs):
    rng = random.Random(seed)
    projects, principals = list(range(0, 5)), list(range(1, 13))
    world = World(rng, docs, projects, principals)
    for _ in range(8):
        check(world, random_grants_filter(rng, projects, principals))


def test_grant_rules_one_by_one():
    cols = FilterColumns()
    docs = [Document(id="pub", text="x", project_id=1, type="issue", tracker_id=1, owner_ids=[5]),
            Document(id="priv", text="x", project_id=1, type="issue", is_private=True, tracker_id=2, author_id=8,
                     owner_ids=[8, 0]),
            Document(id="priv-group", text="x", project_id=1, type="issue", is_private=True, tracker_id=1,
                     owner_ids=[8, 30]),  # assigned to group 30
            Document(id="note", text="x", project_id=1, type="journal", tracker_id=1, author_id=6,
                     private_note=True, owner_ids=[5]),
            Document(id="many", text="x", project_id=2, type="issue", is_private=True, tracker_id=1,
                     owner_ids=[1, 2, 3, 7]),  # owner 7 only in the extra map
            Document(id="wiki", text="x", project_id=2, type="wiki")]
    for i, d in enumerate(docs):
        cols.set_chunks([i], d)

    def admitted(**kw):
        got = cols.mask(Filter(**kw))
        assert np.array_equal(got, cols._mask_numpy(Filter(**kw)))  # noqa: SLF001
        return [d.id for d, ok in zip(docs, got) if ok]

    issue = ["issue", "journal"]
    assert admitted(grants=[Grant(issue, [1, 2], Visibility.ALL)]) == ["pub", "priv", "priv-group", "many"]
    assert admitted(grants=[Grant(issue, [1, 2], Visibility.ALL, private_notes=True)]) == [
        "pub", "priv", "priv-group", "note", "many"]
    assert admitted(grants=[Grant(issue, [1, 2], Visibility.DEFAULT)], user_id=8) == ["pub", "priv", "priv-group"]
    assert admitted(grants=[Grant(issue, [1, 2], Visibility.DEFAULT)], user_id=9, group_ids=[30]) == [
        "pub", "priv-group"]
    assert admitted(grants=[Grant(issue, [1, 2], Visibility.OWN)], user_id=7) == ["many"]
    assert admitted(grants=[Grant(issue, [1, 2], Visibility.OWN)], user_id=5) == ["pub"]  # the note is private
    assert admitted(grants=[Grant(issue, [1, 2], Visibility.OWN)], user_id=6, group_ids=[5]) == ["pub", "note"]
    assert admitted(grants=[Grant(issue, [1, 2], Visibility.ALL, tracker_ids=[2])]) == ["priv"]
    assert admitted(grants=[Grant(["wiki"], [2], Visibility.ALL), Grant(["issue"], [1], Visibility.DEFAULT)]) == [
        "pub", "wiki"]
    assert admitted(grants=[Grant(issue, [1, 2], Visibility.ALL)], project_ids=[2]) == ["many"]  # narrowed
    assert admitted(grants=[Grant(["nothing"], [1, 2], Visibility.ALL)]) == []
    assert admitted(grants=[Grant(issue, [1, 2], Visibility.DEFAULT)], user_id=0, group_ids=[0]) == ["pub"]
    # A rewrite drops the extra owners of the old rows
    cols.clear_chunks([4])
    cols.set_chunks([6], Document(id="many", text="x", project_id=2, type="issue", is_private=True, owner_ids=[1]))
    docs.append(Document(id="many", text="x", project_id=2, type="issue", is_private=True, owner_ids=[1]))
    docs[4] = Document(id="deleted", text="x")
    assert admitted(grants=[Grant(issue, [2], Visibility.OWN)], user_id=7) == []
    assert admitted(grants=[Grant(issue, [2], Visibility.OWN)], user_id=1) == ["many"]


def test_grant_columns_survive_a_snapshot():
    rng = random.Random(5)
    projects, principals = list(range(1, 7)), list(range(1, 13))
    world = World(rng, 150, projects, principals)
    assert world.cols._owners_extra  # noqa: SLF001  (the extra owners are exercised)
    restored = FilterColumns.from_state(decode_state(*encode_state(world.cols.export_state())))
    for _ in range(60):
        flt = random_grants_filter(rng, projects, principals)
        assert np.array_equal(world.cols.mask(flt), restored.mask(flt))
    # clear_chunks on the restored copy drops extra owners too (the per-chunk view is rebuilt)
    cid = next(iter(next(iter(restored._owners_extra.values()))))  # noqa: SLF001
    restored.clear_chunks([cid])
    assert all(cid not in s for s in restored._owners_extra.values())  # noqa: SLF001


def test_a_large_table_and_the_grant_by_grant_fallback_agree():
    rng = np.random.default_rng(7)
    n = 30_000
    cols = FilterColumns()
    cols._ensure(n)  # noqa: SLF001
    cols.alive[:] = True
    cols.project[:] = rng.integers(0, 3000, n)
    cols.type_code[:] = rng.integers(0, 4, n, dtype=np.int32)
    cols.owner0[:] = rng.integers(0, 100, n)
    cols.gflags[:] = rng.integers(0, 2, n) | (rng.integers(0, 2, n) * 4)
    cols._types = {t: i for i, t in enumerate(TYPES)}  # noqa: SLF001
    cols._fill_codes(rng.integers(0, 50, n))  # noqa: SLF001
    # 1,000 grants with distinct tracker lists: the compiled table would be too large
    grants = [Grant(["issue", "journal"], rng.choice(3000, 3, replace=False).tolist(), Visibility(1 + g % 3),
                    tracker_ids=[g % 50, (g * 7) % 50], private_notes=bool(g % 2)) for g in range(1000)]
    flt = Filter(grants=grants, user_id=3, group_ids=[4, 5])
    got = cols.mask(flt)
    assert np.array_equal(got, cols._mask_numpy(flt))  # noqa: SLF001
    views = cols._views  # noqa: SLF001
    small = np.empty(n, bool)
    args = _args(cols, flt)
    _native.grant_mask(small, *[views[i] for i in (0, 1, 2, 4, 5, 7, 8, 9, 10, 11)], **args, max_table=0)
    assert np.array_equal(got, small) and got.any()


def _args(cols: FilterColumns, flt: Filter) -> dict:
    captured = {}
    real = _native.grant_mask

    def spy(out, *columns, **kw):
        captured.update(kw)
        return real(out, *columns, **kw)
    _native.grant_mask = spy
    try:
        cols.compute_mask(flt)  # mask() may answer from its cache without the kernel
    finally:
        _native.grant_mask = real
    return captured


# --------------------------------------------------------------- argument checks

def arrays(n: int = 4) -> dict:
    return {"out": np.empty(n, bool), "alive": np.ones(n, bool), "project": np.arange(n, dtype=np.int64),
            "type_code": np.zeros(n, np.int32), "author": np.zeros(n, np.int64),
            "updated": np.zeros(n, np.int64), "key": (np.arange(n, dtype=np.uint32) << 12),
            "tracker_code": np.zeros(n, np.int32), "owner0": np.zeros(n, np.int64),
            "owner1": np.zeros(n, np.int64), "flags": np.zeros(n, np.uint8)}


def grant_kw(**over) -> dict:
    kw = {"project_of_code": np.arange(4, dtype=np.int64), "tracker_of_code": np.zeros(1, np.int64),
          "visibility": np.array([1], np.int32), "private_notes": np.array([False]),
          "any_tracker": np.array([True]), "types": np.array([0], np.int64), "types_ends": np.array([1], np.int64),
          "projects": np.array([0, 2], np.int64), "projects_ends": np.array([2], np.int64),
          "trackers": np.zeros(0, np.int64), "trackers_ends": np.array([0], np.int64)}
    kw.update(over)
    return kw


def call(kw: dict | None = None, **cols):
    a = {**arrays(), **cols}
    _native.grant_mask(*a.values(), **(kw if kw is not None else grant_kw()))
    return a["out"]


def test_binding_runs():
    assert call().tolist() == [True, False, True, False]
    assert call(grant_kw(visibility=np.array([3], np.int32)), owner1=np.array([0, 0, 7, 0], np.int64)).tolist() == [
        False] * 4
    kw = grant_kw(visibility=np.array([3], np.int32), principals=np.array([7], np.int64), user_id=7)
    assert call(kw, owner1=np.array([0, 0, 7, 0], np.int64)).tolist() == [False, False, True, False]


@pytest.mark.parametrize("name", ["alive", "project", "type_code", "author", "updated", "key", "tracker_code",
                                  "owner0", "owner1", "flags"])
@pytest.mark.parametrize("bad", ["dtype", "short", "2d", "strided"])
def test_bad_columns_raise_value_error(name, bad):
    good = arrays()[name]
    wrong = {"dtype": good.astype(np.float64), "short": good[:3], "2d": good.reshape(2, 2),
             "strided": np.concatenate([good, good])[::2]}[bad]
    with pytest.raises(ValueError, match=name):
        call(**{name: wrong})


@pytest.mark.parametrize("over", [
    {"visibility": np.array([0], np.int32)}, {"visibility": np.array([4], np.int32)},
    {"visibility": np.array([1], np.int64)}, {"private_notes": np.array([False, True])},
    {"types_ends": np.array([2], np.int64)}, {"projects_ends": np.array([-1], np.int64)},
    {"trackers_ends": np.array([0, 0], np.int64)}, {"own_rows": np.array([4], np.int64)},
    {"own_rows": np.array([-1], np.int64)}, {"principals": np.array([1], np.int32)},
    {"project_of_code": np.arange(4, dtype=np.int32)}, {"tracker_of_code": np.zeros((1, 1), np.int64)},
])
def test_bad_grant_arrays_raise_value_error(over):
    with pytest.raises(ValueError):
        call(grant_kw(**over))


def test_overlapping_out_raises_value_error():
    shared = np.zeros(4, np.uint8)
    with pytest.raises(ValueError, match="overlaps flags"):
        call(out=shared, flags=shared)
