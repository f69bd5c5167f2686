"""An index replica: `ragd serve` in cluster mode follows every collection's embedded
stream and applies it, in stream order, to its own LMDB + FAISS + tantivy.

Each entry goes through the ingestor's commit/delete, the one write path: one LMDB
transaction holding the documents, chunks and vectors and the collection's new
stream position (ragd.store.records.LogPosition), then the op-log Change applied to
every derived index (ragd.index.derived), as a replay would. A replica killed at
any point restarts after exactly what its LMDB holds: nothing applied twice,
nothing skipped. A write embedded twice (a worker that stalled past
cluster.claim_idle_s while another redid its entry) is recognised by its write-log
sequence and skipped.

Entries reach the embedded stream in the order workers finish them, so two writes
of one document handled by two workers may be applied in either order; versions
decide (an older version is STALE, as in single-machine mode), and every replica
applies the same stream in the same order, so replicas always agree.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ragd.cluster import streams
from ragd.cluster.streams import DELETE, UPSERT, EmbeddedEntry, Keys, ReplicaState
from ragd.cluster.trim import trim
from ragd.config import ClusterConfig
from ragd.engine.ingest import Ingestor, PreparedDoc
from ragd.store.lmdb_store import LogPosition, Store

log = logging.getLogger("ragd.cluster")

# Seconds from a write's append to its application here (read-your-writes, lag).
DELAY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class StreamGone(RuntimeError):
    """The stream no longer holds what this replica needs next (trimmed past it, or
    Redis lost entries it already applied): it must start again from a snapshot."""


class Follower:
    def __init__(self, cfg: ClusterConfig, name: str, store: Store, ingestor: Ingestor, model_id: str):
        self.cfg = cfg
        self.name = name
        self.keys = Keys(cfg.prefix)
        self.store = store
        self.ingestor = ingestor
        self.model_id = model_id
        self.positions: dict[str, LogPosition] = store.positions()
        self.heads: dict[str, int] = {}        # newest write-log sequence seen per collection
        self.write_ms: dict[str, int] = {}     # append time (Redis clock, ms) of the last write applied
        self.broken: dict[str, str] = {}       # collection -> why this replica cannot follow it
        self.delays = [0] * (len(DELAY_BUCKETS) + 1)  # histogram of append -> applied, seconds
        self.delay_sum = 0.0
        self.applied_entries = 0
        self.duplicates = 0
        self.connected = False
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._checked: set[str] = set()
        self._last_publish = 0.0
        self._last_trim = time.monotonic()
        self.redis = streams.connect(cfg.redis_url, cfg.redis_timeout_s)

    # ------------------------------------------------------------ reads (any thread)

    def applied(self, collection: str) -> int:
        pos = self.positions.get(collection)
        return pos.applied if pos else 0

    def wait(self, collection: str, seq: int, timeout: float) -> bool:
        """Block until every write up to `seq` of the collection is applied here."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.applied(collection) < seq:
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    return False
                self._cond.wait(left)
        return True

    # ------------------------------------------------------------ the loop

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ragd-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        self.redis.close()

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                self.step()
                backoff = 0.1
                if not self.connected:
                    log.info("replica %s: following the cluster's streams at %s", self.name, self.cfg.redis_url)
                    self.connected = True
            except streams.redis_errors() as exc:
                if self.connected:
                    log.warning("replica %s: Redis unreachable (%s); serving what is applied, retrying",
                                self.name, exc)
                self.connected = False
                self._checked.clear()  # a restarted Redis is checked again
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)
            except Exception:  # noqa: BLE001 - keep serving reads; retry the entry
                log.exception("replica %s: applying the embedded stream failed; retrying", self.name)
                self._stop.wait(1.0)

    def step(self) -> None:
        """One round: read what each followed collection's stream holds after this
        replica's position (blocking briefly when nothing is new), apply it, publish."""
        r = self.redis
        names = streams.collections(r, self.keys)
        for c in names:
            self.positions.setdefault(c, LogPosition())
            if c not in self._checked and c not in self.broken:
                self._check(c)
                self._checked.add(c)
        follow = {self.keys.elog(c): self.positions[c].stream_id for c in names if c not in self.broken}
        if follow:
            reply = r.xread(follow, count=self.cfg.apply_batch, block=500)
        else:
            self._stop.wait(0.5)
            reply = []
        prefix = len(self.keys.elog(""))
        for stream, entries in reply:
            c = streams.as_str(stream)[prefix:]
            for sid, fields in entries:
                if self._stop.is_set():
                    return
                self.apply(c, streams.decode_embedded(sid, fields))
        now = time.monotonic()
        if now - self._last_publish >= 1.0 or not reply:
            self.publish(names)
            self._last_publish = now
        if self.cfg.trim_every_s and now - self._last_trim >= self.cfg.trim_every_s:
            self._last_trim = now
            trim(r, self.keys, names, self.cfg.keep_snapshots)

    def _check(self, c: str) -> None:
        """Before following a collection: the stream still holds everything after this
        replica's position, and Redis has not lost entries this replica applied."""
        pos = self.positions[c]
        raw = self.redis.get(self.keys.trimmed(c))
        if raw and streams.id_tuple(pos.stream_id) < streams.id_tuple(raw.decode()):
            self._break(c, f"the embedded stream was trimmed to {raw.decode()}, past this replica's position "
                           f"{pos.stream_id}: start this replica from a recent snapshot (`ragd restore`)")
            return
        if pos.stream_id != "0-0":
            try:
                last = streams.as_str(self.redis.xinfo_stream(self.keys.elog(c))["last-generated-id"])
            except Exception:  # noqa: BLE001 - no such stream
                last = "0-0"
            if streams.id_tuple(last) < streams.id_tuple(pos.stream_id):
                self._break(c, f"Redis's embedded stream ends at {last}, before this replica's position "
                               f"{pos.stream_id}: Redis lost acknowledged entries (appendfsync?); rebuild the "
                               "cluster's replicas from a snapshot")

    def _break(self, c: str, why: str) -> None:
        self.broken[c] = why
        log.error("replica %s: collection %s: %s", self.name, c, why)

    def apply(self, c: str, e: EmbeddedEntry) -> None:
        """Apply one embedded entry (or skip a duplicate) with its position, in one transaction."""
        pos = self.positions[c]
        new = LogPosition(e.stream_id, pos.applied, list(pos.above))
        duplicate = pos.has(e.seq)
        new.add(e.seq)

        def record(w, _acks) -> None:
            w.put_position(c, new)

        if duplicate:
            self.duplicates += 1
            self._commit_position(record)
        elif e.op == UPSERT:
            if e.model != self.model_id:
                self._break(c, f"entry {e.stream_id} was embedded by model {e.model}, this replica serves "
                               f"{self.model_id}: run workers and replicas on one model")
                return
            prepared = [PreparedDoc(doc=d.doc, spans=list(d.spans), texts=d.texts, vectors=d.vectors,
                                    truncated=d.truncated) for d in e.docs]
            self.ingestor.commit(c, prepared, on_commit=record)
        elif e.op == DELETE:
            self.ingestor.delete(c, e.refs, create=True, on_commit=record)
        else:
            log.error("replica %s: collection %s: write %d failed in a worker (%s); nothing to apply",
                      self.name, c, e.seq, e.error)
            self._commit_position(record)
        with self._cond:
            self.positions[c] = new
            self._cond.notify_all()
        self.heads[c] = max(self.heads.get(c, 0), e.seq)
        if not duplicate:
            self.applied_entries += 1
            self.write_ms[c] = streams.id_ms(e.write_id)
            delay = max(0.0, time.time() - self.write_ms[c] / 1000)
            self.delay_sum += delay
            i = next((i for i, b in enumerate(DELAY_BUCKETS) if delay <= b), len(DELAY_BUCKETS))
            self.delays[i] += 1

    def _commit_position(self, record: Callable) -> None:
        with self.ingestor.write_lock, self.store.write() as w:
            record(w, [])

    # ------------------------------------------------------------ publishing

    def lag(self, c: str) -> tuple[int, float]:
        """(writes acknowledged but not applied here, seconds behind) for a collection."""
        behind = max(0, self.heads.get(c, 0) - self.applied(c))
        if not behind:
            return 0, 0.0
        last = self.write_ms.get(c)
        return behind, (max(0.0, time.time() - last / 1000) if last else 0.0)

    def publish(self, names: list[str]) -> None:
        """Each collection's position and lag into Redis (trimming and `ragd cluster status` read them)."""
        r = self.redis
        pipe = r.pipeline(transaction=False)
        for c in names:
            pipe.get(self.keys.wseq(c))
        for c, head in zip(names, pipe.execute()):
            self.heads[c] = max(self.heads.get(c, 0), int(head or 0))
        pipe = r.pipeline(transaction=False)
        now = time.time()
        for c in names:
            pos = self.positions[c]
            state = ReplicaState(self.name, pos.stream_id, pos.applied, now, self.lag(c)[1])
            pipe.hset(self.keys.replicas(c), self.name, state.to_json())
        pipe.execute()
