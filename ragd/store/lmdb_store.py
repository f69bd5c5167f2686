"""LMDB: the source of truth for documents, chunks, vectors and the op log.

One environment under DATA_DIR/store holds named databases:
  meta         b"seq" -> last op-log sequence (u64), b"next_collection" -> u32
  collections  name (utf-8) -> msgpack {id, dim, model, next_chunk, docs, chunks}
  docs         coll(u32) + doc id (utf-8) -> msgpack document record
  chunks       coll(u32) + chunk id (u64) -> msgpack {d: doc id, s: start, e: end, t: text}
  vectors      coll(u32) + chunk id (u64) -> float32 bytes (dimension x 4)
  oplog        seq (u64) -> msgpack {c: coll, a: [chunk ids added], r: [chunk ids removed]}
  jobs, job_docs   asynchronous ingestion jobs (see ragd/store/jobs.py)

Every write is one LMDB transaction committed with sync (the environment is
opened with sync=True), so a write is durable before ragd acknowledges it, and
a crash leaves either all of a batch or none of it. Big-endian integer keys
keep cursors in id order. This module knows nothing of FAISS or protobuf.
"""
from __future__ import annotations

import shutil
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import lmdb
import msgpack
import numpy as np

from ragd.errors import ResourceExhausted

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_DBS = ("meta", "collections", "docs", "chunks", "vectors", "oplog", "jobs", "job_docs")


def _pack(obj) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def _unpack(data) -> dict:
    return msgpack.unpackb(bytes(data), raw=False, strict_map_key=False)


@dataclass
class CollectionMeta:
    name: str
    id: int
    dim: int
    model: str
    next_chunk: int = 0
    docs: int = 0
    chunks: int = 0
    tombstones: int = 0  # versioned-delete markers kept to stop resurrection

    def to_record(self) -> dict:
        return {"id": self.id, "dim": self.dim, "model": self.model, "next_chunk": self.next_chunk,
                "docs": self.docs, "chunks": self.chunks, "tombstones": self.tombstones}

    @classmethod
    def from_record(cls, name: str, rec: dict) -> CollectionMeta:
        return cls(name=name, id=rec["id"], dim=rec["dim"], model=rec["model"],
                   next_chunk=rec["next_chunk"], docs=rec["docs"], chunks=rec["chunks"],
                   tombstones=rec.get("tombstones", 0))


@dataclass
class ChunkRecord:
    chunk_id: int
    doc_id: str
    start: int
    end: int
    text: str


class StoreError(RuntimeError):
    """The store cannot be opened; start-up stops with this message."""


def _disk_full(exc: lmdb.Error, path: Path) -> bool:
    """LMDB reports a write that found no room as ENOSPC, or as EIO when the write
    came back short: EIO counts as a full disk when the filesystem is nearly full."""
    text = str(exc)
    if "No space left" in text or "Disk quota exceeded" in text or "File too large" in text:
        return True
    if "Input/output error" in text:
        try:
            return shutil.disk_usage(path).free < 16 * 1024 * 1024
        except OSError:
            return False
    return False


class Store:
    def __init__(self, path: Path, map_size_bytes: int):
        path.mkdir(parents=True, exist_ok=True)
        self.path, self.map_size_bytes = path, map_size_bytes
        # sync/metasync on: commit returns only after fsync (durable acks).
        # readahead off: random access to vectors and chunks, the OS should not prefetch.
        try:
            self.env = lmdb.open(str(path), map_size=map_size_bytes, max_dbs=len(_DBS),
                                 sync=True, metasync=True, readahead=False, max_readers=512)
            self._db = {name: self.env.open_db(name.encode()) for name in _DBS}
        except lmdb.Error as exc:
            # Refuse to start rather than serve an empty index over a store that
            # exists but cannot be read (a supervisor's restart loop would get the same).
            raise StoreError(f"cannot open the LMDB store in {path}: {exc}. It is unreadable or corrupt: "
                             "restore a backup (`ragd restore`), or move the directory aside to start "
                             "empty") from None

    def db(self, name: str):
        """A named database handle, for modules that keep their own tables (jobs)."""
        return self._db[name]

    def close(self) -> None:
        self.env.sync(True)
        self.env.close()

    # ------------------------------------------------------------ reads

    def sequence(self) -> int:
        with self.env.begin() as txn:
            raw = txn.get(b"seq", db=self._db["meta"])
            return _U64.unpack(raw)[0] if raw else 0

    def collections(self) -> dict[str, CollectionMeta]:
        with self.env.begin() as txn:
            return {bytes(k).decode(): CollectionMeta.from_record(bytes(k).decode(), _unpack(v))
                    for k, v in txn.cursor(db=self._db["collections"])}

    def get_doc(self, coll: int, doc_id: str) -> dict | None:
        with self.env.begin() as txn:
            raw = txn.get(_U32.pack(coll) + doc_id.encode(), db=self._db["docs"])
            return _unpack(raw) if raw else None

    def get_chunks(self, coll: int, chunk_ids) -> list[ChunkRecord | None]:
        prefix = _U32.pack(coll)
        out: list[ChunkRecord | None] = []
        with self.env.begin() as txn:
            for cid in chunk_ids:
                raw = txn.get(prefix + _U64.pack(int(cid)), db=self._db["chunks"])
                if raw is None:
                    out.append(None)
                else:
                    rec = _unpack(raw)
                    out.append(ChunkRecord(int(cid), rec["d"], rec["s"], rec["e"], rec["t"]))
        return out

    def get_docs(self, coll: int, doc_ids) -> dict[str, dict]:
        prefix = _U32.pack(coll)
        out = {}
        with self.env.begin() as txn:
            for doc_id in doc_ids:
                raw = txn.get(prefix + doc_id.encode(), db=self._db["docs"])
                if raw is not None:
                    out[doc_id] = _unpack(raw)
        return out

    def get_vectors(self, coll: int, chunk_ids, dim: int) -> np.ndarray:
        prefix = _U32.pack(coll)
        out = np.empty((len(chunk_ids), dim), dtype=np.float32)
        with self.env.begin(buffers=True) as txn:
            for i, cid in enumerate(chunk_ids):
                out[i] = np.frombuffer(txn.get(prefix + _U64.pack(int(cid)), db=self._db["vectors"]),
                                       dtype=np.float32)
        return out

    def iter_docs(self, coll: int) -> Iterator[tuple[str, dict]]:
        prefix = _U32.pack(coll)
        with self.env.begin() as txn:
            cur = txn.cursor(db=self._db["docs"])
            if cur.set_range(prefix):
                for k, v in cur:
                    k = bytes(k)
                    if not k.startswith(prefix):
                        break
                    yield k[4:].decode(), _unpack(v)

    def load_vectors(self, coll: int, dim: int, count_hint: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """All vectors of a collection as (chunk ids int64 [n], vectors float32 [n, dim])."""
        prefix = _U32.pack(coll)
        ids = np.empty(max(count_hint, 16), dtype=np.int64)
        vecs = np.empty((len(ids), dim), dtype=np.float32)
        n = 0
        with self.env.begin(buffers=True) as txn:
            cur = txn.cursor(db=self._db["vectors"])
            if cur.set_range(prefix):
                for k, v in cur:
                    if bytes(k[:4]) != prefix:
                        break
                    if n == len(ids):
                        ids = np.resize(ids, 2 * n)
                        vecs = np.resize(vecs, (2 * n, dim))
                    ids[n] = _U64.unpack(bytes(k[4:12]))[0]
                    vecs[n] = np.frombuffer(v, dtype=np.float32)
                    n += 1
        return ids[:n].copy(), vecs[:n].copy()

    def iter_oplog(self, after: int = 0) -> Iterator[tuple[int, dict]]:
        """Op-log entries with sequence > after, in order: (seq, {c, a, r})."""
        with self.env.begin() as txn:
            cur = txn.cursor(db=self._db["oplog"])
            if cur.set_range(_U64.pack(after + 1)):
                for k, v in cur:
                    yield _U64.unpack(bytes(k))[0], _unpack(v)

    def disk_bytes(self) -> int:
        info = self.env.info()
        stat = self.env.stat()
        return int(info["last_pgno"] + 1) * int(stat["psize"])

    # ------------------------------------------------------------ writes

    @contextmanager
    def write(self) -> Iterator[WriteTxn]:
        """One durable transaction; commits (fsync) on normal exit, aborts on exception.

        A full map or a full disk aborts the transaction (nothing of it is written)
        and raises ResourceExhausted naming the cause: the caller's write was not
        acknowledged, reads go on, and writes resume once there is room (a freed
        disk needs no restart; a bigger map, store.map_size_gb, does)."""
        txn = self.env.begin(write=True)
        w = WriteTxn(self, txn)
        try:
            yield w
            w._finish()
            txn.commit()
        except lmdb.MapFullError:
            txn.abort()
            raise ResourceExhausted(
                f"storage full: the LMDB map of {self.path} is full (store.map_size_gb = "
                f"{self.map_size_bytes / (1 << 30):g}); nothing of this write was stored. Raise "
                "store.map_size_gb and restart, or delete documents", retry_after_s=30.0) from None
        except lmdb.Error as exc:
            txn.abort()
            if _disk_full(exc, self.path):
                raise ResourceExhausted(
                    f"disk full: no space left on the filesystem of {self.path} ({exc}); nothing of this "
                    "write was stored. Writes resume by themselves once space is freed", retry_after_s=5.0) from None
            raise
        except BaseException:
            txn.abort()
            raise

    # ------------------------------------------------------------ index support (snapshots, re-rank)

    def get_vectors_found(self, coll: int, chunk_ids, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """Vectors of chunk ids as (float32 [n, dim], found bool [n]); a missing id was deleted."""
        prefix = _U32.pack(coll)
        out = np.zeros((len(chunk_ids), dim), dtype=np.float32)
        found = np.zeros(len(chunk_ids), dtype=bool)
        with self.env.begin(buffers=True) as txn:
            get = txn.get
            db = self._db["vectors"]
            for i, cid in enumerate(chunk_ids):
                raw = get(prefix + _U64.pack(int(cid)), db=db)
                if raw is not None:
                    out[i] = np.frombuffer(raw, dtype=np.float32)
                    found[i] = True
        return out, found

    def scan_vectors(self, coll: int, dim: int, batch: int = 65536) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """All vectors of a collection in one read transaction (a consistent cut), in
        batches of (sequence of that cut, chunk ids int64, vectors float32)."""
        prefix = _U32.pack(coll)
        with self.env.begin(buffers=True) as txn:
            raw = txn.get(b"seq", db=self._db["meta"])
            seq = _U64.unpack(raw)[0] if raw else 0
            ids = np.empty(batch, dtype=np.int64)
            vecs = np.empty((batch, dim), dtype=np.float32)
            n = 0
            cur = txn.cursor(db=self._db["vectors"])
            if cur.set_range(prefix):
                for k, v in cur:
                    if bytes(k[:4]) != prefix:
                        break
                    ids[n] = _U64.unpack(bytes(k[4:12]))[0]
                    vecs[n] = np.frombuffer(v, dtype=np.float32)
                    n += 1
                    if n == batch:
                        yield seq, ids.copy(), vecs.copy()
                        n = 0
            yield seq, ids[:n].copy(), vecs[:n].copy()

    def backup(self, dest: Path) -> tuple[int, int]:
        """A consistent, compacted copy of the environment into the directory `dest`
        (which must not exist); returns (sequence it contains, bytes written)."""
        dest.mkdir(parents=True)
        with self.env.begin() as txn:
            raw = txn.get(b"seq", db=self._db["meta"])
            seq = _U64.unpack(raw)[0] if raw else 0
            # copy() runs its own read transaction; taking it while ours is open
            # sees the same or a later commit, so read the sequence back from the copy.
        self.env.copy(str(dest), compact=True)
        copied = lmdb.open(str(dest), readonly=True, max_dbs=len(_DBS), lock=False)
        try:
            with copied.begin() as txn:
                raw = txn.get(b"seq", db=copied.open_db(b"meta", txn=txn, create=False))
                seq = _U64.unpack(raw)[0] if raw else 0
        finally:
            copied.close()
        size = sum(p.stat().st_size for p in dest.iterdir() if p.is_file())
        return seq, size


class WriteTxn:
    def __init__(self, store: Store, txn: lmdb.Transaction):
        self._s = store
        self._txn = txn
        self._db = store._db
        self._added: dict[int, list[int]] = {}
        self._removed: dict[int, list[int]] = {}
        self._metas: dict[str, CollectionMeta] = {}
        self.sequence = 0

    @property
    def txn(self) -> lmdb.Transaction:
        """The raw transaction, so other tables (job progress) commit atomically with this write."""
        return self._txn

    def collection(self, name: str, dim: int, model: str, create: bool) -> CollectionMeta | None:
        if name in self._metas:
            return self._metas[name]
        raw = self._txn.get(name.encode(), db=self._db["collections"])
        if raw is not None:
            meta = CollectionMeta.from_record(name, _unpack(raw))
        elif not create:
            return None
        else:
            nxt_raw = self._txn.get(b"next_collection", db=self._db["meta"])
            nxt = _U32.unpack(nxt_raw)[0] if nxt_raw else 1
            self._txn.put(b"next_collection", _U32.pack(nxt + 1), db=self._db["meta"])
            meta = CollectionMeta(name=name, id=nxt, dim=dim, model=model)
        self._metas[name] = meta
        return meta

    def get_doc(self, meta: CollectionMeta, doc_id: str) -> dict | None:
        raw = self._txn.get(_U32.pack(meta.id) + doc_id.encode(), db=self._db["docs"])
        return _unpack(raw) if raw else None

    def put_doc(self, meta: CollectionMeta, doc_id: str, record: dict) -> None:
        self._txn.put(_U32.pack(meta.id) + doc_id.encode(), _pack(record), db=self._db["docs"])

    def delete_doc(self, meta: CollectionMeta, doc_id: str) -> None:
        self._txn.delete(_U32.pack(meta.id) + doc_id.encode(), db=self._db["docs"])

    def add_chunks(self, meta: CollectionMeta, doc_id: str, spans, texts, vectors: np.ndarray) -> list[int]:
        """Store chunks and their vectors under fresh ids; returns the ids."""
        prefix = _U32.pack(meta.id)
        first = meta.next_chunk
        meta.next_chunk += len(texts)
        ids = list(range(first, meta.next_chunk))
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        for cid, (start, end), text, vec in zip(ids, spans, texts, vectors):
            key = prefix + _U64.pack(cid)
            self._txn.put(key, _pack({"d": doc_id, "s": start, "e": end, "t": text}), db=self._db["chunks"])
            self._txn.put(key, vec.tobytes(), db=self._db["vectors"])
        meta.chunks += len(ids)
        self._added.setdefault(meta.id, []).extend(ids)
        return ids

    def remove_chunks(self, meta: CollectionMeta, chunk_ids) -> None:
        prefix = _U32.pack(meta.id)
        for cid in chunk_ids:
            key = prefix + _U64.pack(cid)
            self._txn.delete(key, db=self._db["chunks"])
            self._txn.delete(key, db=self._db["vectors"])
        meta.chunks -= len(chunk_ids)
        self._removed.setdefault(meta.id, []).extend(chunk_ids)

    def _finish(self) -> None:
        if not self._metas:
            return
        for meta in self._metas.values():
            self._txn.put(meta.name.encode(), _pack(meta.to_record()), db=self._db["collections"])
        raw = self._txn.get(b"seq", db=self._db["meta"])
        seq = _U64.unpack(raw)[0] if raw else 0
        for coll in sorted(set(self._added) | set(self._removed)):
            seq += 1
            self._txn.put(_U64.pack(seq), _pack({"c": coll, "a": self._added.get(coll, []),
                                                 "r": self._removed.get(coll, [])}), db=self._db["oplog"])
        self._txn.put(b"seq", _U64.pack(seq), db=self._db["meta"])
        self.sequence = seq
