"""The data directory: where everything lives, and its backup and restore.

  DATA_DIR/
    store/                          LMDB: the source of truth (ragd.store)
    index/collection-<id>.snap      vector index snapshot \\ derived: rebuilt from
    index/collection-<id>.cols      filter columns         > store/ when missing
    keyword/<id>/                   tantivy index + ragd-seq  /
    models/<name>/                  provisioned embedding models

A backup is a directory with the same layout (store/ and index/, plus
BACKUP.json); the keyword indexes are left out and rebuilt from the store on
the first start after a restore.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ragd.index.snapshot import SnapshotPaths

if TYPE_CHECKING:  # import-light: the CLI's restore and model commands use the layout
    from ragd.engine.collection import Collections
    from ragd.store.lmdb_store import Store


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def index(self) -> Path:
        return self.root / "index"

    @property
    def keyword(self) -> Path:
        return self.root / "keyword"

    @property
    def models(self) -> Path:
        return self.root / "models"

    def snapshot_paths(self, coll_id: int) -> SnapshotPaths:
        base = self.index / f"collection-{coll_id}"
        return SnapshotPaths(index=base.with_suffix(".snap"), columns=base.with_suffix(".cols"),
                             rerank=base.with_suffix(".rerank"))

    def keyword_dir(self, coll_id: int) -> Path:
        return self.keyword / str(coll_id)

    @property
    def state_dirs(self) -> tuple[Path, ...]:
        """Everything that belongs to one store's history: the store and what is derived from it."""
        return (self.store, self.index, self.keyword)


def backup(store: Store, collections: Collections, dest: Path) -> tuple[int, int]:
    """A consistent backup of a data dir's state into `dest` (which must not exist):
    every index snapshot first, then a compacted copy of LMDB. Each snapshot's
    sequence is <= the copy's, so a daemon started on the restored dir replays
    the log after each snapshot and agrees with LMDB exactly. Returns (sequence
    of the LMDB copy, bytes written)."""
    dest = Path(dest)
    if dest.exists():
        raise FileExistsError(f"{dest} exists")
    tmp = DataDir(dest.with_name(dest.name + ".partial"))
    shutil.rmtree(tmp.root, ignore_errors=True)
    tmp.index.mkdir(parents=True)
    size = 0
    for coll in collections:
        size += coll.keeper.snapshot(tmp.snapshot_paths(coll.meta.id))
    seq, lmdb_bytes = store.backup(tmp.store)
    (tmp.root / "BACKUP.json").write_text(json.dumps({"sequence": seq, "created": time.time(),
                                                       "collections": collections.names()}) + "\n")
    os.replace(tmp.root, dest)  # a backup directory exists only once complete
    return seq, size + lmdb_bytes


def restore(backup_dir: Path, data_dir: Path, force: bool = False) -> int:
    """Bring a backup back into `data_dir` (daemon stopped); returns its sequence.
    The data dir's store and everything derived from it (index, keyword) are moved
    aside (with force) rather than deleted: a derived index of another history must
    never be replayed onto the restored store."""
    src, dst = DataDir(Path(backup_dir)), DataDir(Path(data_dir))
    manifest = json.loads((src.root / "BACKUP.json").read_text())
    if not (src.store / "data.mdb").exists():
        raise FileNotFoundError(f"{src.root} holds no store/data.mdb")
    dst.root.mkdir(parents=True, exist_ok=True)
    present = [p for p in dst.state_dirs if p.exists()]
    if present and not force:
        raise FileExistsError(f"{dst.root} already holds {', '.join(p.name for p in present)} (use --force)")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for p in present:
        p.rename(p.with_name(f"{p.name}.before-restore-{stamp}"))
    shutil.copytree(src.store, dst.store)
    shutil.copytree(src.index, dst.index)
    return int(manifest["sequence"])
