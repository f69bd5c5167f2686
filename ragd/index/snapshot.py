"""Index snapshot files: written atomically (temp file, fsync, rename, fsync dir),
verified on read (magic, sizes, CRC32), so a torn or corrupt file is detected and
the caller rebuilds from LMDB instead of serving a wrong index.

Layout: b"RAGDIDX1", u64 header length, JSON header {seq, kind, dim, trained_n,
index_bytes, state_bytes, crc32, ...}, serialized FAISS index, id-state bytes.

Named-array files (write_arrays/read_arrays; the filter columns, the re-rank
copy): the same framing with another magic, a JSON header listing each array's
name, dtype and byte length, then the arrays' bytes, one CRC32 over all of them.
MappedArrays maps such a file instead of reading it: opening it reads the header
alone (and checks the size), the arrays are views over a private mapping, and
the checksum is verified later, when the caller chooses (ragd.index.rerank_copy
verifies in the background and uses the rows only once it passed).
"""
from __future__ import annotations

import json
import mmap
import os
import struct
import threading
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"RAGDIDX1"
_U64 = struct.Struct("<Q")


class SnapshotError(ValueError):
    pass


@dataclass(frozen=True)
class SnapshotPaths:
    """Where one collection's snapshot files go (ragd.engine.datadir lays them out)."""
    index: Path    # the vector index (write/read)
    columns: Path  # the filter columns saved with it (write_arrays/read_arrays)
    rerank: Path | None = None  # the IVF-PQ re-rank copy saved with it (ragd.index.rerank_copy)


def write(path: Path, header: dict, blob: np.ndarray, states: np.ndarray) -> int:
    """Atomically replace `path`; returns the bytes written."""
    blob = np.ascontiguousarray(blob, dtype=np.uint8)
    states = np.ascontiguousarray(states, dtype=np.uint8)
    crc = zlib.crc32(states.data, zlib.crc32(blob.data))
    head = json.dumps({**header, "index_bytes": int(blob.nbytes), "state_bytes": int(states.nbytes),
                       "crc32": crc}).encode()
    return _write_atomic(path, MAGIC, head, [blob, states])


def _write_atomic(path: Path, magic: bytes, head: bytes, parts: list[np.ndarray]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(magic)
        f.write(_U64.pack(len(head)))
        f.write(head)
        for part in parts:
            f.write(part.data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return 16 + len(head) + sum(p.nbytes for p in parts)


ARRAYS_MAGIC = b"RAGDARR1"


def write_arrays(path: Path, header: dict, arrays: Mapping[str, np.ndarray | Sequence[np.ndarray]]) -> int:
    """Atomically replace `path` with named 1-d arrays and a JSON header; returns bytes written.
    An array may be given as a list of parts of one dtype, written one after the other
    (a re-rank copy held in two segments is saved without joining them in memory)."""
    parts, specs, crc = [], [], 0
    for name, value in arrays.items():
        pieces = [value] if isinstance(value, np.ndarray) else list(value)
        if not pieces:
            raise ValueError(f"array {name!r}: no parts")
        dtype, nbytes = np.asarray(pieces[0]).dtype, 0
        for piece in pieces:
            arr = np.ascontiguousarray(piece)
            if arr.ndim != 1 or arr.dtype.hasobject or arr.dtype != dtype:
                raise ValueError(f"array {name!r}: only flat numeric arrays (parts of one dtype)")
            raw = arr.view(np.uint8)
            crc = zlib.crc32(raw.data, crc)
            parts.append(raw)
            nbytes += int(raw.nbytes)
        specs.append([name, dtype.str, nbytes])
    head = json.dumps({**header, "arrays": specs, "crc32": crc}).encode()
    return _write_atomic(path, ARRAYS_MAGIC, head, parts)


def _read_framed(path: Path, magic: bytes, what: str, fields):
    """The framing both readers share: checks magic, header and total size.
    `fields(header)` -> (parsed fields, payload bytes); returns
    (file bytes, header, parsed fields, payload offset)."""
    data = np.fromfile(path, dtype=np.uint8)
    if len(data) < 16 or data[:8].tobytes() != magic:
        raise SnapshotError(f"not a {what} (bad magic)")
    n = _U64.unpack(data[8:16].tobytes())[0]
    try:
        header = json.loads(data[16:16 + n].tobytes())
        parsed, payload = fields(header)
    except (ValueError, KeyError, TypeError) as exc:
        raise SnapshotError(f"bad header: {exc}") from None
    at = 16 + n
    if len(data) != at + payload:
        raise SnapshotError(f"size {len(data)} != {at + payload} (truncated?)")
    return data, header, parsed, at


def _array_fields(header):
    specs = [(str(name), np.dtype(dt), int(size)) for name, dt, size in header["arrays"]]
    return specs, sum(size for _, _, size in specs)


def read_arrays(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(header, named arrays) of a write_arrays file; raises SnapshotError when torn or corrupt."""
    data, header, specs, at = _read_framed(path, ARRAYS_MAGIC, "ragd arrays file", _array_fields)
    arrays, crc = {}, 0
    for name, dt, size in specs:
        raw = data[at:at + size]
        crc = zlib.crc32(raw.data, crc)
        if size % dt.itemsize:
            raise SnapshotError(f"array {name!r}: {size} bytes is not a multiple of {dt}")
        arrays[name] = raw.view(dt)
        at += size
    if crc != header.get("crc32"):
        raise SnapshotError("checksum mismatch")
    return header, arrays


def read(path: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    """(header, index bytes, id states); raises SnapshotError when torn or corrupt."""
    def fields(header):
        ib, sb = int(header["index_bytes"]), int(header["state_bytes"])
        return ib, ib + sb
    data, header, ib, at = _read_framed(path, MAGIC, "ragd index snapshot", fields)
    blob, states = data[at:at + ib], data[at + ib:]
    if zlib.crc32(states.data, zlib.crc32(blob.data)) != header.get("crc32"):
        raise SnapshotError("checksum mismatch")
    return header, blob, states


class MappedArrays:
    """A write_arrays file mapped instead of read: opening it reads the framing and
    header alone and checks the total size (so a truncated file is refused at once);
    `arrays` are views over a private, copy-on-write mapping (writes stay in this
    process, the file is never changed), paged in from the page cache or the disk
    as they are touched. The checksum is NOT checked on open: `verify` reads the
    file once through a second, read-only mapping of the same file (the inode that
    was opened, even if a newer snapshot has since been renamed over the path) and
    says whether it matches; until it has, the caller must not trust the arrays."""

    def __init__(self, path: Path):
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            start = f.read(16)
            if len(start) < 16 or start[:8] != ARRAYS_MAGIC:
                raise SnapshotError("not a ragd arrays file (bad magic)")
            n = _U64.unpack(start[8:16])[0]
            if 16 + n > size:
                raise SnapshotError(f"size {size} is shorter than its header (truncated?)")
            try:
                self.header = json.loads(f.read(n))
                specs, payload = _array_fields(self.header)
            except (ValueError, KeyError, TypeError) as exc:
                raise SnapshotError(f"bad header: {exc}") from None
            at = 16 + n
            if size != at + payload:
                raise SnapshotError(f"size {size} != {at + payload} (truncated?)")
            private = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)
            self._check: mmap.mmap | None = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ)
        self._span = (at, size)
        self.nbytes = payload
        self.arrays: dict[str, np.ndarray] = {}
        for name, dt, nbytes in specs:
            if nbytes % dt.itemsize:
                raise SnapshotError(f"array {name!r}: {nbytes} bytes is not a multiple of {dt}")
            self.arrays[name] = np.frombuffer(private, dtype=dt, count=nbytes // dt.itemsize, offset=at)
            at += nbytes

    def verify(self, stop: threading.Event | None = None, block: int = 8 << 20) -> bool | None:
        """Whether the file's arrays match its CRC32 (None: `stop` was set first). Reads in
        blocks; zlib releases the GIL on each, so searches run alongside. Call once."""
        check = self._check
        if check is None:
            raise RuntimeError("verify() runs once")
        crc = 0
        view = memoryview(check)
        try:
            at, end = self._span
            while at < end:
                if stop is not None and stop.is_set():
                    return None
                part = view[at:min(at + block, end)]
                try:
                    crc = zlib.crc32(part, crc)
                finally:
                    part.release()
                at += block
        finally:
            view.release()
            check.close()
            self._check = None
        return crc == self.header.get("crc32")
