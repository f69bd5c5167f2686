"""The derived-index protocol (ragd.index.derived) on a real store: an index plugged
into a collection gets every live write and is recovered on start exactly like the
built-in ones (loaded at its own sequence and replayed, rebuilt when missing,
unusable or ahead of the store); and snapshots are triggered by each collection's
own writes, not by other collections'."""
from __future__ import annotations

import json
from pathlib import Path

from test_restart_columns import World

from ragd.index import snapshot as snapfile
from ragd.index.derived import Change
from ragd.index.lifecycle import IndexContext
from ragd.store.lmdb_store import CollectionMeta, Store


class ChunkProjects:
    """A derived index a later feature might add: chunk id -> project id, saved as JSON
    with the sequence it reflects when asked (save)."""
    label = "chunk projects"

    def __init__(self, store: Store, meta: CollectionMeta, path: Path):
        self.store, self.meta, self.path = store, meta, path
        self.projects: dict[int, int] = {}
        self.sequence = 0
        self.applied: list[int] = []  # sequences of the changes applied, live or replayed

    def load(self) -> int | None:
        if not self.path.exists():
            return None
        data = json.loads(self.path.read_text())
        self.projects = {int(k): v for k, v in data["projects"].items()}
        self.sequence = data["seq"]
        return self.sequence

    def rebuild(self) -> int:
        self.sequence = self.store.sequence()
        self.projects = {cid: rec.document.project_id for rec in self.store.iter_docs(self.meta.id)
                         if rec.document is not None for cid in rec.chunk_ids}
        return self.sequence

    def apply(self, change: Change) -> None:
        for cid in change.removed:
            self.projects.pop(cid, None)
        for part in change.documents:
            for cid in part.chunk_ids:
                self.projects[cid] = part.document.project_id
        self.sequence = change.seq
        self.applied.append(change.seq)

    def save(self) -> None:
        self.path.write_text(json.dumps({"seq": self.sequence, "projects": self.projects}))


def truth(store: Store, coll_id: int) -> dict[int, int]:
    return {cid: rec.document.project_id for rec in store.iter_docs(coll_id)
            if rec.document is not None for cid in rec.chunk_ids}


def entries_after(store: Store, coll_id: int, seq: int) -> list[int]:
    return [e.seq for e in store.iter_oplog(seq) if e.collection == coll_id]


def test_a_plugged_in_derived_index_is_recovered_and_replayed_like_the_others(tmp_path):
    made: list[ChunkProjects] = []

    def plug(store, meta):
        made.append(ChunkProjects(store, meta, tmp_path / f"projects-{meta.id}.json"))
        return made[-1]

    w = World(tmp_path, extra=[plug])
    w.upsert([f"d{i}" for i in range(60)])
    w.random_ops(30)
    coll = w.collections.get("default")
    plugged = made[-1]
    # The live write path reached it: every committed write, as its own change.
    assert plugged.projects == truth(w.store, coll.meta.id)
    assert plugged.applied == entries_after(w.store, coll.meta.id, plugged.applied[0] - 1)

    # Saved at the same sequence as an index snapshot; writes after both; a crash.
    coll.keeper.snapshot()
    plugged.save()
    saved = plugged.sequence
    w.random_ops(40)
    after = entries_after(w.store, coll.meta.id, saved)
    assert after
    coll = w.restart(crash=True)
    plugged = made[-1]
    rec = coll.recovery["chunk projects"]
    assert (rec.source, rec.replayed) == (f"loaded at sequence {saved}", len(after))
    assert plugged.applied == after  # in order, each once
    assert coll.recovery["vector index"].replayed == len(after)  # snapshotted at the same point: the same entries
    assert plugged.projects == truth(w.store, coll.meta.id)

    # Writes on top of the replayed state (the live path again), then its copy is gone: rebuilt.
    w.random_ops(10)
    assert plugged.projects == truth(w.store, coll.meta.id)
    plugged.path.unlink()
    coll = w.restart(crash=True)
    assert coll.recovery["chunk projects"].source == "rebuilt from LMDB"
    assert made[-1].projects == truth(w.store, coll.meta.id)

    # Unusable, or ahead of the store (a store restored under it): refused by the driver, rebuilt.
    ahead = json.dumps({"seq": w.store.sequence() + 10, "projects": {"0": 99}})
    for content, reason in (("{not json", "copy unusable"), (ahead, "ahead of the store")):
        made[-1].path.write_text(content)
        coll = w.restart(crash=True)
        rec = coll.recovery["chunk projects"]
        assert (rec.source, rec.reason) == ("rebuilt from LMDB", reason)
        assert made[-1].projects == truth(w.store, coll.meta.id)
    w.crash()


def test_snapshots_are_due_by_each_collections_own_writes(tmp_path):
    ctx = IndexContext(background=False, snapshot_every_ops=5, snapshot_every_s=1e9)
    w = World(tmp_path, ctx=ctx)
    w.upsert(["a0"], name="a")
    w.upsert(["b0"], name="b")
    a, b = w.collections.get("a"), w.collections.get("b")
    a.keeper.snapshot()
    b.keeper.snapshot()
    a_seq = a.keeper.snapshot_seq
    # Writes to b alone move the store's sequence well past a's snapshot...
    for i in range(8):
        w.upsert([f"b{i}"], name="b")
    a.keeper.maintain()
    b.keeper.maintain()
    # ...but a has not changed: no snapshot of it, due or at shutdown.
    assert a.keeper.snapshot_seq == a_seq
    assert snapfile.read(a.keeper.paths.index)[0]["seq"] == a_seq
    assert b.keeper.snapshot_seq == w.store.sequence()
    a.keeper.close(snapshot=True)
    assert snapfile.read(a.keeper.paths.index)[0]["seq"] == a_seq
    # Its own writes count: four are not due yet, the fifth is.
    a = w.restart(crash=True, name="a")
    assert a.recovery["vector index"].source == f"loaded at sequence {a_seq}"
    for i in range(4):
        w.upsert([f"a{i + 1}"], name="a")
    a.keeper.maintain()
    assert a.keeper.snapshot_seq == a_seq
    w.upsert(["a9"], name="a")
    a.keeper.maintain()
    assert a.keeper.snapshot_seq == w.store.sequence()
    w.crash()
