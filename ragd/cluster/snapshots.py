"""Snapshots in cluster mode: a backup (Snapshot RPC) holds each collection's stream
position in its LMDB copy (committed with the writes, ragd.store.records.LogPosition).
Registered here, the position keeps the embedded stream from being trimmed past it,
so a replica restored from the backup (`ragd restore`, then `ragd serve`) resumes
exactly after what the backup holds."""
from __future__ import annotations

import json
import time
from pathlib import Path

from ragd.cluster.streams import Keys
from ragd.engine.datadir import DataDir
from ragd.store.lmdb_store import read_positions


def register_snapshot(r, keys: Keys, backup_dir: Path) -> dict[str, str]:
    """Record a backup's stream positions in Redis; returns them (collection -> stream id)."""
    positions = {c: p.stream_id for c, p in read_positions(DataDir(backup_dir).store).items()}
    r.hset(keys.snapshots, str(backup_dir), json.dumps({"at": time.time(), "positions": positions}))
    return positions


def forget_snapshot(r, keys: Keys, backup_dir: str) -> bool:
    return bool(r.hdel(keys.snapshots, backup_dir))
