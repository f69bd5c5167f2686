"""Filter columns persisted with the index snapshot: a restart that loads them (and
replays the op log after them) admits exactly what a rebuild from the LMDB
documents admits, for every filter; an unusable columns file falls back to the
rebuild. Real Collection on a real LMDB store, through the daemon's write path
(Ingestor.commit / delete); the last test runs a real daemon."""
from __future__ import annotations

import logging
import random
import signal

import numpy as np
import pytest

from ragd.domain import Document, DocumentRef, Filter, MetadataRange
from ragd.engine.collection import Collection, Collections
from ragd.engine.datadir import DataDir
from ragd.engine.ingest import Ingestor, PreparedDoc
from ragd.index.columns import FilterColumns
from ragd.index.columns_keeper import ColumnsKeeper
from ragd.index.lifecycle import IndexContext
from ragd.index.vector_index import IndexSettings
from ragd.store.lmdb_store import Store

DIM = 8
PROJECTS = [1, 2, 3, 4, 5]
TYPES = ["issue", "wiki", "news"]


class _Dim:
    dimension = DIM


class World:
    """A store + collection written through the daemon's code, restartable in-process."""

    def __init__(self, tmp_path, seed: int = 3, ctx: IndexContext | None = None, extra=()):
        self.path = tmp_path
        self.rng = random.Random(seed)
        self.nprng = np.random.default_rng(seed)
        self.versions: dict[str, int] = {}
        self._ctx = ctx  # reused by every (re)open
        self.extra = extra  # further derived index factories (ragd.engine.collection.DerivedFactory)
        self.open()

    def open(self) -> None:
        self.store = Store(self.path / "store", 1 << 30)
        self.ctx = self._ctx or IndexContext(settings=IndexSettings(), background=False)
        self.collections = Collections(self.store, self.ctx, DataDir(self.path), self.extra)
        for meta in self.store.collections().values():
            self.collections.open(meta)
        self.ing = Ingestor(self.store, _Dim(), None, self.collections, "test-model")

    def crash(self) -> None:
        """Stop without a final snapshot (what SIGKILL leaves behind: LMDB is durable)."""
        for coll in self.collections:
            coll.keeper.close(snapshot=False)
            coll.keyword.close(commit=False)
        self.store.close()

    def restart(self, crash: bool = True, name: str = "default") -> Collection:
        if crash:
            self.crash()
        else:
            self.collections.close()
            self.store.close()
        self.open()
        return self.collections.get(name)

    def doc(self, doc_id: str) -> Document:
        r = self.rng
        private = r.random() < 0.3
        version = self.versions.get(doc_id, 0) + 1
        self.versions[doc_id] = version
        return Document(id=doc_id, text="x", title=f"t {doc_id}", project_id=r.choice(PROJECTS),
                        type=r.choice(TYPES), is_private=private, author_id=r.randint(1, 6),
                        updated_at_us=r.randint(0, 100), version=version,
                        metadata={k: v for k, v in (("tracker", r.choice(["bug", "feature"])),
                                                    ("prio", str(r.randint(1, 5)))) if r.random() < 0.7},
                        viewer_ids=r.sample(range(1, 7), r.randint(0, 2)))

    def upsert(self, ids: list[str], name: str = "default") -> None:
        prepared = []
        for doc_id in ids:
            n = self.rng.randint(1, 4)
            vecs = self.nprng.standard_normal((n, DIM)).astype(np.float32)
            prepared.append(PreparedDoc(doc=self.doc(doc_id), spans=[(0, 1)] * n,
                                        texts=[f"chunk {doc_id} {i}" for i in range(n)], vectors=vecs))
        self.ing.commit(name, prepared)

    def delete(self, ids: list[str], versioned: bool) -> None:
        refs = []
        for doc_id in ids:
            v = 0
            if versioned:
                v = self.versions.get(doc_id, 0) + 1
                self.versions[doc_id] = v
            refs.append(DocumentRef(doc_id, v))
        self.ing.delete("default", refs)

    def random_ops(self, rounds: int) -> None:
        r = self.rng
        for _ in range(rounds):
            op = r.random()
            if op < 0.5:  # new documents and re-upserts (new chunk ids, other attributes)
                ids = [f"d{r.randint(0, 150)}" for _ in range(r.randint(1, 5))]
                self.upsert(ids)  # may repeat an id inside one batch
            elif op < 0.75:
                self.delete([f"d{r.randint(0, 150)}" for _ in range(r.randint(1, 3))], versioned=r.random() < 0.5)
            else:
                self.upsert([f"d{r.randint(0, 150)}"])


def random_filters(seed: int, n: int = 250) -> list[Filter]:
    rng = random.Random(seed)
    out = [Filter(), Filter(all_private=True)]
    for _ in range(n):
        out.append(Filter(project_ids=rng.sample(PROJECTS, rng.randint(0, 3)),
                          types=rng.sample(TYPES + ["zzz"], rng.randint(0, 2)),
                          private_project_ids=rng.sample(PROJECTS, rng.randint(0, 2)),
                          user_id=rng.choice([0, rng.randint(1, 6)]), all_private=rng.random() < 0.1,
                          metadata_equals={"tracker": "bug"} if rng.random() < 0.3 else {},
                          metadata_ranges=[MetadataRange("prio", gte=2, lte=4)] if rng.random() < 0.3 else [],
                          updated_after_us=rng.choice([None, 30]), updated_before_us=rng.choice([None, 70]),
                          exclude_ids=[f"d{rng.randint(0, 150)}"] if rng.random() < 0.3 else []))
    return out


def admitted(cols, flt: Filter) -> set[int]:
    mask = cols.mask(flt)
    return set(np.flatnonzero(cols.alive if mask is None else mask).tolist())


def rebuild_filter_columns(store: Store, meta) -> FilterColumns:
    keeper = ColumnsKeeper(store, meta)
    keeper.rebuild()
    return keeper.columns


def assert_same_as_rebuild(store: Store, coll: Collection, seed: int) -> None:
    rebuilt = rebuild_filter_columns(store, coll.meta)
    loaded = coll.columns
    alive = set(np.flatnonzero(rebuilt.alive).tolist())
    assert set(np.flatnonzero(loaded.alive).tolist()) == alive
    # Grouping by document (doc_ord) names the same document for every live chunk.
    for cid in alive:
        assert loaded.doc_ids[loaded.doc_ord[cid]] == rebuilt.doc_ids[rebuilt.doc_ord[cid]]
    assert loaded.private_count == rebuilt.private_count
    for flt in random_filters(seed):
        assert admitted(loaded, flt) == admitted(rebuilt, flt), flt
    # And the live index holds exactly the live chunks.
    assert set(coll.index.live_ids().tolist()) == alive


def test_restart_with_persisted_columns_and_ops_past_the_snapshot_equals_a_rebuild(tmp_path):
    w = World(tmp_path)
    w.upsert([f"d{i}" for i in range(120)])
    w.random_ops(40)
    coll = w.collections.get("default")
    coll.keeper.snapshot()  # index + filter columns at this sequence
    snap_seq = coll.columns_keeper.saved_seq
    assert snap_seq == w.store.sequence() and (tmp_path / "index" / f"collection-{coll.meta.id}.cols").exists()

    # Clean restart: columns from the file alone.
    coll = w.restart(crash=False)
    assert coll.recovery["filter columns"].note == f"loaded at sequence {snap_seq} + 0 op-log entries"
    assert_same_as_rebuild(w.store, coll, seed=1)

    # Writes past the snapshot, then a crash: columns from the file + op-log replay.
    w.random_ops(80)
    assert w.store.sequence() > snap_seq
    coll = w.restart(crash=True)
    rec = coll.recovery["filter columns"]
    assert rec.source == f"loaded at sequence {snap_seq}" and rec.replayed > 0, rec
    assert_same_as_rebuild(w.store, coll, seed=2)

    # Writes on top of the replayed columns (the live path), another crash, again.
    w.random_ops(30)
    coll = w.restart(crash=True)
    assert_same_as_rebuild(w.store, coll, seed=3)


def test_columns_file_written_again_after_a_rebuild_at_start(tmp_path):
    """A start that rebuilt the columns (no file) saves them on the next maintenance round."""
    w = World(tmp_path)
    w.upsert([f"d{i}" for i in range(50)])
    coll = w.collections.get("default")
    coll.keeper.snapshot()
    cols = tmp_path / "index" / f"collection-{coll.meta.id}.cols"
    cols.unlink()
    coll = w.restart(crash=True)
    assert coll.recovery["filter columns"].note == "rebuilt from LMDB + 0 op-log entries"
    assert coll.columns_keeper.saved_seq == -1
    coll.keeper.maintain()
    assert cols.exists() and coll.columns_keeper.saved_seq == w.store.sequence()
    coll = w.restart(crash=True)
    assert coll.recovery["filter columns"].source.startswith("loaded at sequence")
    assert_same_as_rebuild(w.store, coll, seed=4)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "other_collection", "ahead_of_store"])
def test_unusable_columns_file_falls_back_to_a_rebuild(tmp_path, caplog, damage):
    w = World(tmp_path)
    w.upsert([f"d{i}" for i in range(60)])
    w.random_ops(20)
    coll = w.collections.get("default")
    coll.keeper.snapshot()
    w.random_ops(10)
    path = tmp_path / "index" / f"collection-{coll.meta.id}.cols"
    w.crash()
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[-5] ^= 0xFF
    elif damage == "garbage":
        data = bytearray(b"not a columns file at all")
    path.write_bytes(bytes(data))
    if damage in ("other_collection", "ahead_of_store"):
        from ragd.index.columns_keeper import save_columns
        store = Store(tmp_path / "store", 1 << 30)
        state = rebuild_filter_columns(store, coll.meta).export_state()
        seq = store.sequence()
        store.close()
        if damage == "other_collection":
            save_columns(path, state, seq, coll.meta.id + 1)
        else:
            save_columns(path, state, seq + 5, coll.meta.id)
    caplog.set_level(logging.WARNING, logger="ragd.index")
    w.open()
    coll = w.collections.get("default")
    rec = coll.recovery["filter columns"]
    assert rec.source == "rebuilt from LMDB"
    assert rec.reason == ("ahead of the store" if damage == "ahead_of_store" else "copy unusable")
    assert any("filter columns" in r.getMessage() and "unusable" in r.getMessage() for r in caplog.records)
    assert_same_as_rebuild(w.store, coll, seed=5)


def test_backup_carries_the_columns_file(tmp_path):
    from ragd.engine.datadir import backup, restore
    w = World(tmp_path / "a")
    w.upsert([f"d{i}" for i in range(40)])
    w.random_ops(10)
    backup(w.store, w.collections, tmp_path / "bk")
    coll_id = w.collections.get("default").meta.id
    assert (tmp_path / "bk" / "index" / f"collection-{coll_id}.cols").exists()
    w.crash()
    restore(tmp_path / "bk", tmp_path / "b")
    w2 = World(tmp_path / "b")
    coll = w2.collections.get("default")
    assert coll.recovery["filter columns"].source.startswith("loaded at sequence")
    assert_same_as_rebuild(w2.store, coll, seed=6)
    w2.crash()


def test_daemon_restart_after_sigkill_gives_the_same_filtered_results(daemon):
    """A real daemon: filtered searches answered after a SIGKILL restart (columns file +
    op-log replay) equal those answered before the kill, and those after a restart that
    rebuilt the columns from LMDB (file removed)."""
    import cisi

    from ragd_client import RagClient
    d = daemon()
    docs = []
    for i, doc in enumerate(cisi.documents()[:40]):
        docs.append({"id": f"doc:{i}", "title": doc["title"], "text": doc["text"][:400], "project_id": i % 4,
                     "type": ["issue", "wiki"][i % 2], "is_private": i % 5 == 0, "author_id": i % 3,
                     "metadata": {"tracker": ["bug", "feature"][i % 2]}, "version": 1})
    with RagClient(d.address, timeout=300) as c:
        c.upsert(docs[:25])
    assert d.stop(signal.SIGTERM) == 0  # final snapshot: index + filter columns
    d.start()
    with RagClient(d.address, timeout=300) as c:
        c.upsert(docs[25:])  # past the snapshot
        moved = [{**docs[3], "project_id": 9, "is_private": False, "version": 2}]
        c.upsert(moved)
        c.delete(["doc:7", "doc:8"])
    filters = [{"project_ids": [0, 1]}, {"project_ids": [9]}, {"types": ["wiki"], "all_private": True},
               {"user_id": 1}, {"private_project_ids": [0]}, {"metadata_equals": {"tracker": "bug"}},
               {"exclude_ids": ["doc:1", "doc:2"]}, {}]
    queries = ["information retrieval", "library classification", "citation analysis"]

    def answers():
        out = []
        with RagClient(d.address, timeout=120) as c:
            for q in queries:
                for f in filters:
                    for mode in ("vector", "keyword"):
                        hits = c.search(q, top_k=50, filter=f,
                                        mode=mode).hits
                        out.append(sorted(h.document_id for h in hits))
        return out

    before = answers()
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(30)
    d.start()
    assert "filter columns loaded at sequence" in d.log().rsplit("listening on", 1)[-1]
    after_kill = answers()
    assert after_kill == before
    assert d.stop(signal.SIGTERM) == 0
    for f in (d.data_dir / "index").glob("*.cols"):
        f.unlink()
    d.start()
    assert "filter columns rebuilt from LMDB" in d.log().rsplit("listening on", 1)[-1]
    assert answers() == before
    assert d.stop() == 0


def test_index_snapshot_ahead_of_the_store_is_rebuilt(tmp_path, caplog):
    # A store brought back without its index dir (an old LMDB copy beside a
    # newer snapshot): the snapshot holds chunks the store no longer has and
    # the op log cannot take them back, so the index is rebuilt from LMDB.
    import shutil

    w = World(tmp_path)
    w.upsert([f"d{i}" for i in range(60)])
    w.random_ops(10)
    w.crash()
    shutil.copytree(tmp_path / "store", tmp_path / "old-store")
    w.open()
    w.random_ops(25)
    w.collections.get("default").keeper.snapshot()
    w.crash()
    shutil.rmtree(tmp_path / "store")
    shutil.copytree(tmp_path / "old-store", tmp_path / "store")
    caplog.set_level(logging.WARNING)
    w.open()
    coll = w.collections.get("default")
    for label in ("vector index", "filter columns"):
        assert (coll.recovery[label].source, coll.recovery[label].reason) == ("rebuilt from LMDB", "ahead of the store")
    assert any("ahead of the store" in r.getMessage() for r in caplog.records)
    assert_same_as_rebuild(w.store, coll, seed=9)
