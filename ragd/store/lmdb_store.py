"""LMDB: the source of truth for documents, chunks, vectors and the op log.

One environment under DATA_DIR/store holds named databases:
  meta         b"seq" -> last op-log sequence (u64), b"next_collection" -> u32,
               b"pos/" + collection name -> msgpack LogPosition (cluster mode: the
               streams applied, committed with the writes they applied)
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
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import lmdb
import numpy as np

from ragd.errors import ResourceExhausted
from ragd.store.records import (
    ChunkRecord,
    CollectionMeta,
    DocRecord,
    LogPosition,
    OpLogEntry,
    decode_chunk,
    decode_collection,
    decode_doc,
    decode_entry,
    decode_position,
    encode_chunk,
    encode_collection,
    encode_doc,
    encode_entry,
    encode_position,
)

__all__ = ["ChunkRecord", "CollectionMeta", "DocRecord", "LogPosition", "OpLogEntry", "Store", "WriteTxn",
           "read_positions"]

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_DBS = ("meta", "collections", "docs", "chunks", "vectors", "oplog", "jobs", "job_docs")
_POS = b"pos/"


def _positions(txn: lmdb.Transaction, meta_db) -> dict[str, LogPosition]:
    out = {}
    cur = txn.cursor(db=meta_db)
    if cur.set_range(_POS):
        for k, v in cur:
            k = bytes(k)
            if not k.startswith(_POS):
                break
            out[k[len(_POS):].decode()] = decode_position(v)
    return out


def read_positions(store_dir: Path) -> dict[str, LogPosition]:
    """The stream positions held by a store directory that no process has open (a backup)."""
    env = lmdb.open(str(store_dir), readonly=True, max_dbs=len(_DBS), lock=False)
    try:
        with env.begin() as txn:
            return _positions(txn, env.open_db(b"meta", txn=txn, create=False))
    finally:
        env.close()


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
    """The store's reads hand out typed records (ragd.store.records); writes go
    through one WriteTxn per durable transaction."""

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
        """A named database handle, for the store's own modules that keep tables (jobs)."""
        return self._db[name]

    def close(self) -> None:
        self.env.sync(True)
        self.env.close()

    # ------------------------------------------------------------ reads

    def sequence(self) -> int:
        with self.env.begin() as txn:
            return self._sequence(txn)

    def _sequence(self, txn: lmdb.Transaction) -> int:
        raw = txn.get(b"seq", db=self._db["meta"])
        return _U64.unpack(raw)[0] if raw else 0

    def collections(self) -> dict[str, CollectionMeta]:
        with self.env.begin() as txn:
            return {bytes(k).decode(): decode_collection(bytes(k).decode(), v)
                    for k, v in txn.cursor(db=self._db["collections"])}

    def get_doc(self, coll: int, doc_id: str) -> DocRecord | None:
        with self.env.begin() as txn:
            raw = txn.get(_U32.pack(coll) + doc_id.encode(), db=self._db["docs"])
            return decode_doc(doc_id, raw) if raw else None

    def get_docs(self, coll: int, doc_ids: Iterable[str]) -> dict[str, DocRecord]:
        prefix = _U32.pack(coll)
        out = {}
        with self.env.begin() as txn:
            for doc_id in doc_ids:
                raw = txn.get(prefix + doc_id.encode(), db=self._db["docs"])
                if raw is not None:
                    out[doc_id] = decode_doc(doc_id, raw)
        return out

    def iter_docs(self, coll: int, after: str = "") -> Iterator[DocRecord]:
        """Every document record of a collection (tombstones included), in id order;
        `after`: start past this id (ListDocuments paging)."""
        prefix = _U32.pack(coll)
        start = prefix + after.encode()
        with self.env.begin() as txn:
            cur = txn.cursor(db=self._db["docs"])
            if cur.set_range(start):
                for k, v in cur:
                    k = bytes(k)
                    if not k.startswith(prefix):
                        break
                    if after and k == start:
                        continue
                    yield decode_doc(k[4:].decode(), v)

    def get_chunks(self, coll: int, chunk_ids: Iterable[int]) -> list[ChunkRecord | None]:
        prefix = _U32.pack(coll)
        out: list[ChunkRecord | None] = []
        with self.env.begin() as txn:
            for cid in chunk_ids:
                raw = txn.get(prefix + _U64.pack(int(cid)), db=self._db["chunks"])
                out.append(None if raw is None else decode_chunk(int(cid), raw))
        return out

    def get_vectors(self, coll: int, chunk_ids: Sequence[int] | np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
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
            seq = self._sequence(txn)
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

    def iter_oplog(self, after: int = 0) -> Iterator[OpLogEntry]:
        """Op-log entries with sequence > after, in order (every collection's)."""
        with self.env.begin() as txn:
            cur = txn.cursor(db=self._db["oplog"])
            if cur.set_range(_U64.pack(after + 1)):
                for k, v in cur:
                    yield decode_entry(_U64.unpack(bytes(k))[0], v)

    def positions(self) -> dict[str, LogPosition]:
        """Cluster mode: each collection's stream position (by collection name)."""
        with self.env.begin() as txn:
            return _positions(txn, self._db["meta"])

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

    # ------------------------------------------------------------ backups

    def backup(self, dest: Path) -> tuple[int, int]:
        """A consistent, compacted copy of the environment into the directory `dest`
        (which must not exist); returns (sequence it contains, bytes written)."""
        dest.mkdir(parents=True)
        # copy() runs its own read transaction: read the sequence back from the copy.
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
    """One write transaction. On commit it appends one op-log entry per collection
    whose chunks it changed (`entries`, with `sequence` the last one's)."""

    def __init__(self, store: Store, txn: lmdb.Transaction):
        self._s = store
        self._txn = txn
        self._db = store._db
        self._added: dict[int, list[int]] = {}
        self._removed: dict[int, list[int]] = {}
        self._metas: dict[str, CollectionMeta] = {}
        self.entries: list[OpLogEntry] = []
        self.sequence = 0

    @property
    def txn(self) -> lmdb.Transaction:
        """The raw transaction, for the store's own tables (job progress) that commit with this write."""
        return self._txn

    def collection(self, name: str, dim: int, model: str, create: bool) -> CollectionMeta | None:
        if name in self._metas:
            return self._metas[name]
        raw = self._txn.get(name.encode(), db=self._db["collections"])
        if raw is not None:
            meta = decode_collection(name, raw)
        elif not create:
            return None
        else:
            nxt_raw = self._txn.get(b"next_collection", db=self._db["meta"])
            nxt = _U32.unpack(nxt_raw)[0] if nxt_raw else 1
            self._txn.put(b"next_collection", _U32.pack(nxt + 1), db=self._db["meta"])
            meta = CollectionMeta(name=name, id=nxt, dim=dim, model=model)
        self._metas[name] = meta
        return meta

    def put_position(self, collection: str, pos: LogPosition) -> None:
        """Record the streams position this write brings a collection to (cluster mode)."""
        self._txn.put(_POS + collection.encode(), encode_position(pos), db=self._db["meta"])

    def get_doc(self, meta: CollectionMeta, doc_id: str) -> DocRecord | None:
        raw = self._txn.get(_U32.pack(meta.id) + doc_id.encode(), db=self._db["docs"])
        return decode_doc(doc_id, raw) if raw else None

    def put_doc(self, meta: CollectionMeta, rec: DocRecord) -> None:
        self._txn.put(_U32.pack(meta.id) + rec.id.encode(), encode_doc(rec), db=self._db["docs"])

    def delete_doc(self, meta: CollectionMeta, doc_id: str) -> None:
        self._txn.delete(_U32.pack(meta.id) + doc_id.encode(), db=self._db["docs"])

    def add_chunks(self, meta: CollectionMeta, doc_id: str, spans: Sequence[tuple[int, int]],
                   texts: Sequence[str], vectors: np.ndarray) -> list[int]:
        """Store chunks and their vectors under fresh ids; returns the ids."""
        prefix = _U32.pack(meta.id)
        first = meta.next_chunk
        meta.next_chunk += len(texts)
        ids = list(range(first, meta.next_chunk))
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        for cid, (start, end), text, vec in zip(ids, spans, texts, vectors):
            key = prefix + _U64.pack(cid)
            self._txn.put(key, encode_chunk(doc_id, start, end, text), db=self._db["chunks"])
            self._txn.put(key, vec.tobytes(), db=self._db["vectors"])
        meta.chunks += len(ids)
        self._added.setdefault(meta.id, []).extend(ids)
        return ids

    def replace_vectors(self, meta: CollectionMeta, chunk_ids, vectors: np.ndarray) -> None:
        """Overwrite the vectors of existing chunks (a collection re-embedded with another
        model, ragd.engine.reindex); chunks and the op log are untouched."""
        prefix = _U32.pack(meta.id)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        for cid, vec in zip(chunk_ids, vectors):
            self._txn.put(prefix + _U64.pack(int(cid)), vec.tobytes(), db=self._db["vectors"])

    def remove_chunks(self, meta: CollectionMeta, chunk_ids: Sequence[int]) -> None:
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
            self._txn.put(meta.name.encode(), encode_collection(meta), db=self._db["collections"])
        seq = self._s._sequence(self._txn)
        for coll in sorted(set(self._added) | set(self._removed)):
            seq += 1
            entry = OpLogEntry(seq, coll, tuple(self._added.get(coll, ())), tuple(self._removed.get(coll, ())))
            self._txn.put(_U64.pack(seq), encode_entry(entry), db=self._db["oplog"])
            self.entries.append(entry)
        self._txn.put(b"seq", _U64.pack(seq), db=self._db["meta"])
        self.sequence = seq
