"""The cluster's Redis keys and the typed entries of its two streams.

Per collection C (every key starts with cluster.prefix, "ragd:" by default):
  wlog:C        the write log: validated writes, in the order they were acknowledged
  wseq:C        the write log's sequence counter (a write's position is its value)
  elog:C        the embedded stream: each write chunked and embedded (or a delete),
                in the order workers finished them
  replicas:C    hash: replica name -> JSON {stream_id, applied, at, lag_s}: each
                replica's position, published by the replica (trimming, status, lag)
  trimmed:C     the embedded stream holds no entry below this id (a replica behind it
                cannot catch up and must start from a snapshot)
and for the cluster:
  collections   set of collection names with a write log
  snapshots     hash: snapshot path -> JSON {at, positions: {C: stream_id}}
The workers' consumer group on every wlog:C is named "workers".

A write is appended by one Lua script (INCR the counter, XADD the entry, SADD the
collection), which Redis runs atomically and writes to its AOF as one
transaction: an acknowledged position always names exactly one entry.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import socket
from dataclasses import dataclass, field
from pathlib import Path

import msgpack
import numpy as np

from ragd.domain import Document, DocumentRef

log = logging.getLogger("ragd.cluster")

GROUP = "workers"

UPSERT, DELETE, FAILED = "u", "d", "f"


@dataclass(frozen=True)
class Keys:
    prefix: str = "ragd:"

    def wlog(self, c: str) -> str:
        return f"{self.prefix}wlog:{c}"

    def wseq(self, c: str) -> str:
        return f"{self.prefix}wseq:{c}"

    def elog(self, c: str) -> str:
        return f"{self.prefix}elog:{c}"

    def replicas(self, c: str) -> str:
        return f"{self.prefix}replicas:{c}"

    def trimmed(self, c: str) -> str:
        return f"{self.prefix}trimmed:{c}"

    @property
    def collections(self) -> str:
        return f"{self.prefix}collections"

    @property
    def snapshots(self) -> str:
        return f"{self.prefix}snapshots"


def connect(url: str, timeout_s: float):
    """A Redis client for the cluster's streams. No automatic retries: a failed call
    surfaces at once (a write then answers UNAVAILABLE; the loops back off and retry),
    and a retried append could write a second entry."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=min(timeout_s, 2.0),
                                retry=Retry(NoBackoff(), 0), health_check_interval=30)


def redis_errors() -> tuple[type[Exception], ...]:
    import redis
    return (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, redis.ReadOnlyError)


def collections(r, keys: Keys) -> list[str]:
    return sorted(m.decode() for m in r.smembers(keys.collections))


def ensure_group(r, keys: Keys, c: str) -> None:
    """The workers' group on a write log, reading it from its start (created once)."""
    import redis
    try:
        r.xgroup_create(keys.wlog(c), GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def default_replica_name(data_dir: Path) -> str:
    return f"{socket.gethostname()}:{data_dir.resolve()}"


def id_ms(stream_id: str) -> int:
    """The Redis clock (ms) at which a stream entry was added."""
    return int(stream_id.split("-", 1)[0])


def id_tuple(stream_id: str) -> tuple[int, int]:
    ms, _, n = stream_id.partition("-")
    return int(ms), int(n or 0)


def _pack(obj) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def _unpack(data: bytes):
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def as_str(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# ---------------------------------------------------------------- the write log

@dataclass
class WriteEntry:
    """One acknowledged write: documents to upsert, or references to delete."""
    seq: int
    op: str                                   # UPSERT or DELETE
    docs: list[Document] = field(default_factory=list)
    refs: list[DocumentRef] = field(default_factory=list)
    stream_id: str = ""


def encode_write_body(op: str, docs: list[Document] = (), refs: list[DocumentRef] = ()) -> bytes:  # type: ignore[assignment]
    if op == UPSERT:
        return _pack([dataclasses.asdict(d) for d in docs])
    return _pack([[r.id, r.version] for r in refs])


def decode_write(stream_id, fields: dict) -> WriteEntry:
    f = {as_str(k): v for k, v in fields.items()}
    op = as_str(f["op"])
    body = _unpack(f["b"])
    entry = WriteEntry(seq=int(f["seq"]), op=op, stream_id=as_str(stream_id))
    if op == UPSERT:
        entry.docs = [Document(**d) for d in body]
    else:
        entry.refs = [DocumentRef(i, v) for i, v in body]
    return entry


# INCR + XADD + SADD in one script: atomic, and one transaction in the AOF.
APPEND_LUA = """
local seq = redis.call('INCR', KEYS[2])
local id = redis.call('XADD', KEYS[1], '*', 'seq', seq, 'op', ARGV[2], 'b', ARGV[3])
redis.call('SADD', KEYS[3], ARGV[1])
return {seq, id}
"""


# ---------------------------------------------------------------- the embedded stream

@dataclass
class EmbeddedDoc:
    doc: Document
    spans: list[tuple[int, int]]
    texts: list[str]
    vectors: np.ndarray
    truncated: bool = False


@dataclass
class EmbeddedEntry:
    """A write as workers hand it to the replicas: chunks and vectors, or the delete,
    or the reason it failed (so every position is accounted for)."""
    seq: int
    write_id: str                             # the write-log entry (its time: the write's)
    op: str                                   # UPSERT, DELETE or FAILED
    model: str = ""                           # model name:sha256 the vectors come from
    docs: list[EmbeddedDoc] = field(default_factory=list)
    refs: list[DocumentRef] = field(default_factory=list)
    error: str = ""
    stream_id: str = ""


def encode_embedded(e: EmbeddedEntry) -> dict[str, bytes | str | int]:
    if e.op == UPSERT:
        body = _pack({"m": e.model, "d": [
            {"doc": dataclasses.asdict(d.doc), "s": [list(s) for s in d.spans], "t": d.texts,
             "v": np.ascontiguousarray(d.vectors, dtype=np.float32).tobytes(), "n": int(d.vectors.shape[0]),
             "tr": d.truncated} for d in e.docs]})
    elif e.op == DELETE:
        body = _pack([[r.id, r.version] for r in e.refs])
    else:
        body = _pack(e.error)
    return {"seq": e.seq, "w": e.write_id, "op": e.op, "b": body}


def decode_embedded(stream_id, fields: dict) -> EmbeddedEntry:
    f = {as_str(k): v for k, v in fields.items()}
    op = as_str(f["op"])
    e = EmbeddedEntry(seq=int(f["seq"]), write_id=as_str(f["w"]), op=op, stream_id=as_str(stream_id))
    body = _unpack(f["b"])
    if op == UPSERT:
        e.model = body["m"]
        for d in body["d"]:
            vecs = np.frombuffer(d["v"], dtype=np.float32).reshape(d["n"], -1) if d["n"] else \
                np.zeros((0, 0), np.float32)
            e.docs.append(EmbeddedDoc(Document(**d["doc"]), [(int(a), int(b)) for a, b in d["s"]], list(d["t"]),
                                      vecs, bool(d["tr"])))
    elif op == DELETE:
        e.refs = [DocumentRef(i, v) for i, v in body]
    else:
        e.error = str(body)
    return e


# ---------------------------------------------------------------- positions published in Redis

@dataclass
class ReplicaState:
    """A replica's position as it publishes it (cluster status, trimming, lag)."""
    name: str
    stream_id: str
    applied: int
    at: float          # when it published this (unix seconds)
    lag_s: float = 0.0  # seconds behind the newest write it knew of

    def to_json(self) -> str:
        return json.dumps({"stream_id": self.stream_id, "applied": self.applied, "at": self.at, "lag_s": self.lag_s})

    @classmethod
    def from_json(cls, name: str, raw) -> ReplicaState:
        d = json.loads(raw)
        return cls(name, d["stream_id"], int(d["applied"]), float(d["at"]), float(d.get("lag_s", 0.0)))
