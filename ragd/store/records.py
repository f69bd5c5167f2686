"""Typed records of the LMDB store and their msgpack encoding.

This module is the only place that knows the on-disk record keys; everything
outside ragd/store sees the dataclasses below. Short keys, because a store
holds millions of records. The encoding is the on-disk format: a reader accepts
every record an earlier version wrote, so a field added later is read with its
default when the key is absent (see _DOC_KEYS).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import msgpack

from ragd.domain import Document, Job, JobError, JobState


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data: bytes | memoryview) -> Any:
    return msgpack.unpackb(bytes(data), raw=False, strict_map_key=False)


# ---------------------------------------------------------------- collections

@dataclass(slots=True)
class CollectionMeta:
    """One collection: its LMDB id, the vectors it holds, its counters."""
    name: str
    id: int
    dim: int
    model: str
    next_chunk: int = 0
    docs: int = 0
    chunks: int = 0
    tombstones: int = 0  # versioned-delete markers kept to stop resurrection


def encode_collection(meta: CollectionMeta) -> bytes:
    return pack({"id": meta.id, "dim": meta.dim, "model": meta.model, "next_chunk": meta.next_chunk,
                 "docs": meta.docs, "chunks": meta.chunks, "tombstones": meta.tombstones})


def decode_collection(name: str, raw: bytes | memoryview) -> CollectionMeta:
    rec = unpack(raw)
    return CollectionMeta(name=name, id=rec["id"], dim=rec["dim"], model=rec["model"],
                          next_chunk=rec["next_chunk"], docs=rec["docs"], chunks=rec["chunks"],
                          tombstones=rec.get("tombstones", 0))


# ---------------------------------------------------------------- documents

@dataclass(slots=True)
class DocRecord:
    """A document as LMDB holds it: its fields and the ids of its current chunks,
    or a tombstone (`document` None): a versioned delete that keeps an older
    upsert arriving later from bringing the document back."""
    id: str
    version: int
    chunk_ids: list[int] = field(default_factory=list)
    document: Document | None = None

    @property
    def deleted(self) -> bool:
        return self.document is None

    @classmethod
    def live(cls, doc: Document, chunk_ids: list[int]) -> DocRecord:
        return cls(doc.id, doc.version, list(chunk_ids), doc)

    @classmethod
    def tombstone(cls, doc_id: str, version: int) -> DocRecord:
        return cls(doc_id, version)


# Document field -> record key, as first written: every live record has them.
_DOC_KEYS = (("version", "v"), ("title", "ti"), ("text", "tx"), ("project_id", "p"), ("type", "ty"),
             ("is_private", "pr"), ("author_id", "a"), ("updated_at_us", "u"), ("metadata", "m"),
             ("viewer_ids", "vw"))
# Fields added to Document later: written only when not at their default (records
# of documents without them stay as they were), read back as the default when absent.
# The fields permission grants read (tracker, owners, private note; ragd 0.2).
_LATER_DOC_KEYS: tuple[tuple[str, str], ...] = (("tracker_id", "tr"), ("owner_ids", "ow"), ("private_note", "pn"))
_DEFAULTS = Document(id="", text="")


def encode_doc(rec: DocRecord) -> bytes:
    if rec.document is None:
        return pack({"v": rec.version, "del": True, "c": []})
    doc = rec.document
    out = {key: getattr(doc, name) for name, key in _DOC_KEYS}
    out.update((key, getattr(doc, name)) for name, key in _LATER_DOC_KEYS
               if getattr(doc, name) != getattr(_DEFAULTS, name))
    out["c"] = list(rec.chunk_ids)
    return pack(out)


def decode_doc(doc_id: str, raw: bytes | memoryview) -> DocRecord:
    rec = unpack(raw)
    if rec.get("del"):
        return DocRecord.tombstone(doc_id, rec["v"])
    doc = Document(id=doc_id, **{name: rec[key] for name, key in (*_DOC_KEYS, *_LATER_DOC_KEYS) if key in rec})
    return DocRecord(doc_id, doc.version, list(rec["c"]), doc)


# ---------------------------------------------------------------- chunks and the op log

@dataclass(frozen=True, slots=True)
class ChunkRecord:
    chunk_id: int
    doc_id: str
    start: int
    end: int
    text: str


def encode_chunk(doc_id: str, start: int, end: int, text: str) -> bytes:
    return pack({"d": doc_id, "s": start, "e": end, "t": text})


def decode_chunk(chunk_id: int, raw: bytes | memoryview) -> ChunkRecord:
    rec = unpack(raw)
    return ChunkRecord(chunk_id, rec["d"], rec["s"], rec["e"], rec["t"])


@dataclass(frozen=True, slots=True)
class OpLogEntry:
    """One committed write to one collection: the chunk ids it added and removed.
    A chunk id is never reused, so an id in both lists was added and removed by
    the same write; an added id may also be gone since (removed by a later entry)."""
    seq: int
    collection: int
    added: tuple[int, ...]
    removed: tuple[int, ...]


def encode_entry(entry: OpLogEntry) -> bytes:
    return pack({"c": entry.collection, "a": list(entry.added), "r": list(entry.removed)})


def decode_entry(seq: int, raw: bytes | memoryview) -> OpLogEntry:
    rec = unpack(raw)
    return OpLogEntry(seq, rec["c"], tuple(rec["a"]), tuple(rec["r"]))


# ---------------------------------------------------------------- cluster positions

@dataclass(slots=True)
class LogPosition:
    """How far a replica has applied one collection's streams (cluster mode), written
    in the LMDB transaction of each write it applies, so the write and the position
    commit together: a replica restarted or copied resumes after exactly what it holds.

    `stream_id`: the last embedded-stream entry read ("0-0": none). `applied`: every
    write-log sequence up to it is applied. `above`: sequences beyond `applied` already
    applied (embedded entries arrive in the order workers finish them, not in write-log
    order); a sequence seen again (a write embedded twice) is skipped."""
    stream_id: str = "0-0"
    applied: int = 0
    above: list[int] = field(default_factory=list)

    def has(self, seq: int) -> bool:
        return seq <= self.applied or seq in self.above

    def add(self, seq: int) -> None:
        if self.has(seq):
            return
        above = set(self.above)
        above.add(seq)
        while self.applied + 1 in above:
            self.applied += 1
            above.discard(self.applied)
        self.above = sorted(above)


def encode_position(pos: LogPosition) -> bytes:
    return pack({"e": pos.stream_id, "w": pos.applied, "a": list(pos.above)})


def decode_position(raw: bytes | memoryview) -> LogPosition:
    rec = unpack(raw)
    return LogPosition(rec["e"], rec["w"], list(rec["a"]))


# ---------------------------------------------------------------- jobs

def encode_job(job: Job) -> bytes:
    return pack({"id": job.id, "collection": job.collection, "state": job.state.value, "total": job.total,
                 "done": job.done, "failed": job.failed, "next": job.processed, "attempts": job.attempts,
                 "errors": [{"document_id": e.document_id, "error": e.error, "attempts": e.attempts}
                            for e in job.errors],
                 "created": job.created, "updated": job.updated})


def decode_job(raw: bytes | memoryview) -> Job:
    rec = unpack(raw)
    return Job(id=rec["id"], collection=rec["collection"], state=JobState(rec["state"]), total=rec["total"],
               done=rec["done"], failed=rec["failed"], processed=rec["next"], attempts=rec["attempts"],
               errors=[JobError(e["document_id"], e["error"], e["attempts"]) for e in rec["errors"]],
               created=rec["created"], updated=rec["updated"])


_DOC_FIELDS = frozenset(f.name for f in dataclasses.fields(Document))


def encode_job_doc(doc: Document) -> bytes:
    # A queued document keeps Document's field names (the format jobs always used).
    return pack(dataclasses.asdict(doc))


def decode_job_doc(raw: bytes | memoryview) -> Document:
    rec = unpack(raw)
    return Document(**{k: v for k, v in rec.items() if k in _DOC_FIELDS})
