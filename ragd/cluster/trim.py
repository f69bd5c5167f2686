"""Trimming the cluster's streams, run by every replica now and then (idempotent).

The embedded stream of a collection is trimmed only below every registered
replica's position and the position of each of the newest cluster.keep_snapshots
snapshots, so any replica can resume and a new one can start from any kept
snapshot. A replica gone for good keeps its entry (and so the stream) until
`ragd cluster forget NAME`. The write log is trimmed below the workers' oldest
pending entry: what is older was embedded and acknowledged.
"""
from __future__ import annotations

import json
import logging

from ragd.cluster import streams
from ragd.cluster.streams import GROUP, Keys

log = logging.getLogger("ragd.cluster")


def kept_snapshots(r, keys: Keys, keep: int) -> list[dict]:
    snaps = [json.loads(v) | {"path": streams.as_str(k)} for k, v in r.hgetall(keys.snapshots).items()]
    snaps.sort(key=lambda s: s["at"], reverse=True)
    return snaps[:keep]


def _next_id(stream_id: str) -> str:
    ms, n = streams.id_tuple(stream_id)
    return f"{ms}-{n + 1}"


def trim(r, keys: Keys, names: list[str], keep_snapshots: int) -> dict[str, tuple[int, int]]:
    """Trim every collection's streams; returns entries removed per collection (elog, wlog)."""
    snaps = kept_snapshots(r, keys, keep_snapshots)
    out = {}
    for c in names:
        marks = [json.loads(v)["stream_id"] for v in r.hgetall(keys.replicas(c)).values()]
        marks += [s["positions"].get(c, "0-0") for s in snaps]
        removed_e = removed_w = 0
        if marks:
            floor = min(marks, key=streams.id_tuple)
            if floor != "0-0":
                # Record the floor first: a replica behind it learns it cannot catch up.
                old = r.get(keys.trimmed(c))
                if old is None or streams.id_tuple(old.decode()) < streams.id_tuple(floor):
                    r.set(keys.trimmed(c), floor)
                removed_e = r.xtrim(keys.elog(c), minid=floor, approximate=False)
        try:
            group = next((g for g in r.xinfo_groups(keys.wlog(c)) if streams.as_str(g["name"]) == GROUP), None)
        except Exception:  # noqa: BLE001 - no write log yet
            group = None
        if group is not None:
            if int(group["pending"]):
                floor_w = streams.as_str(r.xpending(keys.wlog(c), GROUP)["min"])
            else:
                floor_w = _next_id(streams.as_str(group["last-delivered-id"]))
            removed_w = r.xtrim(keys.wlog(c), minid=floor_w, approximate=False)
        if removed_e or removed_w:
            log.info("collection %s: trimmed %d embedded and %d write-log entries", c, removed_e, removed_w)
        out[c] = (removed_e, removed_w)
    return out
