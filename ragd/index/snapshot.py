"""Index snapshot files: written atomically (temp file, fsync, rename, fsync dir),
verified on read (magic, sizes, CRC32), so a torn or corrupt file is detected and
the caller rebuilds from LMDB instead of serving a wrong index.

Layout: b"RAGDIDX1", u64 header length, JSON header {seq, kind, dim, trained_n,
index_bytes, state_bytes, crc32, ...}, serialized FAISS index, id-state bytes.

Named-array files (write_arrays/read_arrays; the filter columns): the same
framing with another magic, a JSON header listing each array's name, dtype,
shape and byte length, then the arrays' bytes, one CRC32 over all of them.
"""
from __future__ import annotations

import json
import os
import struct
import zlib
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


def write_arrays(path: Path, header: dict, arrays: dict[str, np.ndarray]) -> int:
    """Atomically replace `path` with named 1-d arrays and a JSON header; returns bytes written."""
    parts, specs, crc = [], [], 0
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        if arr.ndim != 1 or arr.dtype.hasobject:
            raise ValueError(f"array {name!r}: only flat numeric arrays")
        raw = arr.view(np.uint8)
        crc = zlib.crc32(raw.data, crc)
        parts.append(raw)
        specs.append([name, arr.dtype.str, int(raw.nbytes)])
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


def read_arrays(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(header, named arrays) of a write_arrays file; raises SnapshotError when torn or corrupt."""
    def fields(header):
        specs = [(str(name), np.dtype(dt), int(size)) for name, dt, size in header["arrays"]]
        return specs, sum(size for _, _, size in specs)
    data, header, specs, at = _read_framed(path, ARRAYS_MAGIC, "ragd arrays file", fields)
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
