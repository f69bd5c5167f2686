"""Index snapshot files: written atomically (temp file, fsync, rename, fsync dir),
verified on read (magic, sizes, CRC32), so a torn or corrupt file is detected and
the caller rebuilds from LMDB instead of serving a wrong index.

Layout: b"RAGDIDX1", u64 header length, JSON header {seq, kind, dim, trained_n,
index_bytes, state_bytes, crc32, ...}, serialized FAISS index, id-state bytes.
"""
from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np

MAGIC = b"RAGDIDX1"
_U64 = struct.Struct("<Q")


class SnapshotError(ValueError):
    pass


def write(path: Path, header: dict, blob: np.ndarray, states: np.ndarray) -> int:
    """Atomically replace `path`; returns the bytes written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = np.ascontiguousarray(blob, dtype=np.uint8)
    states = np.ascontiguousarray(states, dtype=np.uint8)
    crc = zlib.crc32(states, zlib.crc32(blob))
    head = json.dumps({**header, "index_bytes": int(blob.nbytes), "state_bytes": int(states.nbytes),
                       "crc32": crc}).encode()
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(MAGIC)
        f.write(_U64.pack(len(head)))
        f.write(head)
        f.write(memoryview(blob))
        f.write(memoryview(states))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return 16 + len(head) + blob.nbytes + states.nbytes


def read(path: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    """(header, index bytes, id states); raises SnapshotError when torn or corrupt."""
    data = np.fromfile(path, dtype=np.uint8)
    if len(data) < 16 or data[:8].tobytes() != MAGIC:
        raise SnapshotError("not a ragd index snapshot (bad magic)")
    n = _U64.unpack(data[8:16].tobytes())[0]
    try:
        header = json.loads(data[16:16 + n].tobytes())
        ib, sb = int(header["index_bytes"]), int(header["state_bytes"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SnapshotError(f"bad header: {exc}") from None
    at = 16 + n
    if len(data) != at + ib + sb:
        raise SnapshotError(f"size {len(data)} != {at + ib + sb} (truncated?)")
    blob, states = data[at:at + ib], data[at + ib:]
    if zlib.crc32(states, zlib.crc32(blob)) != header.get("crc32"):
        raise SnapshotError("checksum mismatch")
    return header, blob, states
