"""The cluster's state read from Redis: what `ragd cluster status` prints and what
each replica's /metrics exports (stream lengths, the workers' backlog and pending
entries per consumer, every replica's position and lag)."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from ragd.cluster import streams
from ragd.cluster.streams import GROUP, Keys, ReplicaState


@dataclass
class ConsumerState:
    name: str
    pending: int
    idle_s: float


@dataclass
class CollectionState:
    name: str
    head: int                      # write-log sequence of the newest write
    write_log_length: int          # entries kept in the write log
    embedded_length: int           # entries kept in the embedded stream
    undelivered: int               # write-log entries no worker has taken yet
    pending: int                   # taken by a worker, not yet embedded and acknowledged
    consumers: list[ConsumerState] = field(default_factory=list)
    replicas: list[ReplicaState] = field(default_factory=list)
    trimmed_to: str = ""

    @property
    def backlog(self) -> int:
        """Writes waiting for a worker or in a worker's hands (what workers scale on)."""
        return self.undelivered + self.pending


def collection_state(r, keys: Keys, c: str) -> CollectionState:
    pipe = r.pipeline(transaction=False)
    pipe.get(keys.wseq(c))
    pipe.xlen(keys.wlog(c))
    pipe.xlen(keys.elog(c))
    pipe.hgetall(keys.replicas(c))
    pipe.get(keys.trimmed(c))
    head, wlen, elen, reps, trimmed = pipe.execute()
    st = CollectionState(c, int(head or 0), wlen, elen, 0, 0, trimmed_to=streams.as_str(trimmed) if trimmed else "")
    st.replicas = sorted((ReplicaState.from_json(streams.as_str(k), v) for k, v in reps.items()), key=lambda s: s.name)
    try:
        groups = r.xinfo_groups(keys.wlog(c))
    except Exception:  # noqa: BLE001 - no write log yet
        groups = []
    for g in groups:
        if streams.as_str(g["name"]) != GROUP:
            continue
        st.pending = int(g["pending"])
        lag = g.get("lag")
        if lag is None:
            # Redis 7 reports the group's lag (entries not yet delivered) unless entries were deleted
            # after the group's last delivery; then count them (at most 100,000).
            last = streams.as_str(g["last-delivered-id"])
            lag = len(r.xrange(keys.wlog(c), min=f"({last}", count=100_000))
        st.undelivered = int(lag)
        for cons in r.xinfo_consumers(keys.wlog(c), GROUP):
            st.consumers.append(ConsumerState(streams.as_str(cons["name"]), int(cons["pending"]),
                                              int(cons["idle"]) / 1000))
    return st


def cluster_state(r, keys: Keys) -> list[CollectionState]:
    return [collection_state(r, keys, c) for c in streams.collections(r, keys)]


def snapshots(r, keys: Keys) -> list[dict]:
    out = [json.loads(v) | {"path": streams.as_str(k)} for k, v in r.hgetall(keys.snapshots).items()]
    return sorted(out, key=lambda s: s["at"])


def render(states: list[CollectionState], snaps: list[dict], now: float | None = None) -> str:
    now = time.time() if now is None else now
    lines = []
    for st in states:
        lines.append(f"collection {st.name}: {st.head} writes; write log {st.write_log_length} entries kept, "
                     f"embedded stream {st.embedded_length}" + (f" (trimmed to {st.trimmed_to})" if st.trimmed_to
                                                                else ""))
        lines.append(f"  workers: {st.undelivered} writes waiting, {st.pending} in progress")
        for cons in st.consumers:
            lines.append(f"    {cons.name}: {cons.pending} pending, idle {cons.idle_s:.1f} s")
        for rep in st.replicas:
            lines.append(f"  replica {rep.name}: applied {rep.applied} ({max(0, st.head - rep.applied)} behind, "
                         f"{rep.lag_s:.1f} s), stream at {rep.stream_id}, seen {now - rep.at:.1f} s ago")
    for s in snaps:
        lines.append(f"snapshot {s['path']}: taken {now - s['at']:.0f} s ago at " +
                     ", ".join(f"{c} {p}" for c, p in sorted(s["positions"].items())))
    return "\n".join(lines) if lines else "no collections in the cluster yet"
