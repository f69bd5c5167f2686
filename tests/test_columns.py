"""Filter columns: masks agree with the independent permission oracle, in both
forms (mask: the ragd._native kernel plus numpy; _mask_numpy: numpy alone)."""
import random

import numpy as np
import pytest
from permission_oracle import may_see

from ragd.domain import Document, Filter, MetadataRange
from ragd.index.columns import FilterColumns


def test_masks_match_the_oracle_on_random_documents_and_filters():
    rng = random.Random(7)
    cols = FilterColumns()
    docs, chunk_doc = [], []
    next_id = 0
    for i in range(400):
        doc = Document(id=f"d{i}", text="x", project_id=rng.randint(1, 6), type=rng.choice(["issue", "wiki", "news"]),
                       is_private=rng.random() < 0.3, author_id=rng.randint(1, 8), updated_at_us=rng.randint(0, 100),
                       metadata={"tracker": rng.choice(["bug", "feature"]), "prio": str(rng.randint(1, 5))},
                       viewer_ids=rng.sample(range(1, 9), rng.randint(0, 2)))
        n = rng.randint(1, 3)
        ids = list(range(next_id, next_id + n))
        next_id += n
        cols.set_chunks(ids, doc)
        docs.append(doc)
        chunk_doc += [doc] * n
    # Delete some documents' chunks: they must never be admitted again.
    dead = set(rng.sample(range(next_id), 50))
    cols.clear_chunks(sorted(dead))
    for _ in range(300):
        f = Filter(project_ids=rng.sample(range(1, 7), rng.randint(0, 3)),
                   types=rng.sample(["issue", "wiki", "news", "zzz"], rng.randint(0, 2)),
                   private_project_ids=rng.sample(range(1, 7), rng.randint(0, 2)),
                   user_id=rng.choice([0, rng.randint(1, 8)]), all_private=rng.random() < 0.1,
                   metadata_equals={"tracker": "bug"} if rng.random() < 0.3 else {},
                   metadata_ranges=[MetadataRange("prio", gte=2, lte=4)] if rng.random() < 0.3 else [],
                   updated_after_us=rng.choice([None, 30]), updated_before_us=rng.choice([None, 70]),
                   exclude_ids=[f"d{rng.randint(0, 399)}"] if rng.random() < 0.3 else [])
        for form in (cols.mask, cols._mask_numpy):  # noqa: SLF001
            mask = form(f)
            got = np.ones(next_id, bool) if mask is None else mask
            for cid, doc in enumerate(chunk_doc):
                if cid in dead:
                    assert mask is None or not got[cid]
                else:
                    assert got[cid] == may_see(doc, f), (form.__name__, cid, doc, f)


def test_searches_alongside_a_writer_never_see_a_private_chunk_half_written():
    # Searches take no lock while the (single) writer extends the columns; the
    # native kernel reads them without the GIL. Every mask a reader computes must
    # admit no private chunk of someone else, and never fail on columns of
    # different lengths, however the writer's steps interleave with it.
    import threading
    cols = FilterColumns()
    truth: dict[int, bool] = {}  # chunk id -> private, recorded before the write
    stop = threading.Event()
    errors: list[BaseException] = []
    leaks: list[int] = []

    def writer():
        next_id = 0
        for i in range(3000):
            ids = list(range(next_id, next_id + 1 + i % 7))
            next_id = ids[-1] + 1
            private = i % 2 == 0
            for cid in ids:
                truth[cid] = private
            cols.set_chunks(ids, Document(id=f"d{i}", text="x", project_id=1 + i % 3, type="issue",
                                          is_private=private, author_id=1, viewer_ids=[5] if private else []))
            if i % 50 == 49:
                cols.clear_chunks(ids[:1])
        stop.set()

    def reader(flt):
        try:
            while not stop.is_set():
                mask = cols.mask(flt)
                admitted = np.flatnonzero(mask) if mask is not None else np.arange(cols.size)
                leaks.extend(int(c) for c in admitted if truth.get(int(c), True))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    readers = [threading.Thread(target=reader, args=(f,)) for f in
               (Filter(user_id=2), Filter(user_id=2, project_ids=[1, 2]), Filter(user_id=2, types=["issue"]))]
    for t in readers:
        t.start()
    writer()
    for t in readers:
        t.join()
    assert not errors, errors[0]
    assert not leaks, f"private chunks admitted for user 2: {sorted(set(leaks))[:10]}"
    assert cols.size == max(truth) + 1


def _filled(seed: int) -> FilterColumns:
    rng = random.Random(seed)
    cols = FilterColumns()
    for i in range(300):
        doc = Document(id=f"d{i}", text="x", project_id=rng.randint(1, 4), type="issue",
                       is_private=rng.random() < 0.3, author_id=rng.randint(1, 8),
                       metadata={"tracker": rng.choice(["bug", "feature"]), "prio": str(rng.randint(1, 5))},
                       viewer_ids=rng.sample(range(1, 9), rng.randint(0, 2)))
        cols.set_chunks([2 * i, 2 * i + 1], doc)
    return cols


def test_a_start_builds_the_metadata_maps_in_a_thread_and_only_their_readers_wait():
    import threading

    from ragd.index.columns import decode_state, encode_state
    cols = _filled(11)
    state = decode_state(*encode_state(cols.export_state()), lazy=True)
    build, started, release = state["metadata"], threading.Event(), threading.Event()

    def held():  # the real build, held until the test has searched without it
        started.set()
        assert release.wait(60)
        return build()

    state["metadata"] = held
    back = FilterColumns.from_state(state)
    back.start_metadata()  # as Collection.open does once the indexes are open
    try:
        assert started.wait(60)
        plain = Filter(project_ids=[1, 2], user_id=3, private_project_ids=[2])
        assert np.array_equal(back.mask(plain), cols.compute_mask(plain))  # answered while the build is held
        assert back._meta_thread.is_alive()  # noqa: SLF001 - still held: that search did not wait for it
        by_meta = Filter(project_ids=[1, 2, 3], metadata_equals={"tracker": "bug"},
                         metadata_ranges=[MetadataRange("prio", gte=2, lte=4)])
        got: dict = {}
        reader = threading.Thread(target=lambda: got.setdefault("mask", back.mask(by_meta)))
        reader.start()
        release.set()
        reader.join(60)
        assert np.array_equal(got["mask"], cols.compute_mask(by_meta))  # waited for the maps, then exact
    finally:
        release.set()
    for c in (cols, back):  # writes after the start reach the maps as before
        c.clear_chunks([0, 1, 2, 3])
        c.set_chunks([600, 601], Document(id="new", text="x", project_id=1, type="issue", metadata={"tracker": "bug"}))
    assert np.array_equal(back.mask(by_meta), cols.compute_mask(by_meta))


def test_a_metadata_build_that_fails_fails_the_metadata_filters_not_the_others():
    from ragd.index.columns import decode_state, encode_state
    cols = _filled(12)
    state = decode_state(*encode_state(cols.export_state()), lazy=True)

    def broken():
        raise MemoryError("no room for the maps")

    state["metadata"] = broken
    back = FilterColumns.from_state(state)
    plain = Filter(project_ids=[1, 2], user_id=3)
    assert np.array_equal(back.mask(plain), cols.compute_mask(plain))
    with pytest.raises(RuntimeError, match="metadata not loaded"):  # never an answer from maps never built
        back.mask(Filter(metadata_equals={"tracker": "bug"}))
