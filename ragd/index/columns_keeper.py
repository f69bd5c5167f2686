"""The filter columns (ragd.index.columns) as a derived index: saved to a file
beside each index snapshot with the op-log sequence they reflect, loaded from
it at start (the op log after it is replayed by ragd.index.derived), rebuilt
from the LMDB documents when the file is missing or unusable."""
from __future__ import annotations

import time
from pathlib import Path

from ragd.index import columns as columns_mod
from ragd.index import snapshot as snapfile
from ragd.index.columns import FilterColumns
from ragd.index.derived import Change, StoreReader
from ragd.store.records import CollectionMeta

COLUMNS_FORMAT = 2  # bump when FilterColumns' state changes shape: old files are rebuilt
# (2: the grant columns tracker, owner0, owner1, gflags and the extra owners)


class ColumnsKeeper:
    label = "filter columns"

    def __init__(self, store: StoreReader, meta: CollectionMeta, path: Path | None = None):
        self.store = store
        self.meta = meta
        self.path = path             # None: never saved (rebuilt on every start)
        self.columns = FilterColumns()
        self.sequence = 0            # op-log sequence the columns reflect
        self.saved_seq = -1          # sequence of the file on disk (-1: none, or older than the columns)

    def load(self) -> int | None:
        if self.path is None or not self.path.exists():
            return None
        self.columns, seq = load_columns(self.path, self.meta.id)
        self.sequence = self.saved_seq = seq
        return seq

    def start(self) -> None:
        """After the collection's indexes are open: build the metadata maps a load left."""
        self.columns.start_metadata()

    def rebuild(self) -> int:
        seq = self.store.sequence()  # before the scan: replaying what it already saw is harmless
        cols = FilterColumns()
        for rec in self.store.iter_docs(self.meta.id):
            if rec.document is not None:
                cols.set_chunks(rec.chunk_ids, rec.document)
        self.columns, self.sequence, self.saved_seq = cols, seq, -1
        return seq

    def apply(self, change: Change) -> None:
        self.columns.clear_chunks(change.removed)
        for part in change.documents:
            self.columns.set_chunks(part.chunk_ids, part.document)
        self.sequence = change.seq

    # Saving: capture() under the engine's write lock (a consistent cut with the
    # index snapshot), save() after it is released.

    def capture(self) -> dict:
        return self.columns.export_state()

    def save(self, path: Path, state: dict, seq: int, record: bool = True) -> int:
        """Write a captured state with the sequence it reflects (atomic); returns bytes
        written. record: it is this collection's own file (not a backup copy)."""
        size = save_columns(path, state, seq, self.meta.id)
        if record:
            self.saved_seq = seq
        return size


def save_columns(path: Path, state: dict, seq: int, coll_id: int) -> int:
    """Write FilterColumns.export_state() with the op-log sequence it reflects (atomic)."""
    header, arrays = columns_mod.encode_state(state)
    header.update(format=COLUMNS_FORMAT, seq=seq, collection=coll_id, written_at=time.time())
    return snapfile.write_arrays(path, header, arrays)


def load_columns(path: Path, coll_id: int) -> tuple[FilterColumns, int]:
    """(columns, sequence they reflect) from a columns file; raises on anything
    unusable: torn or corrupt, another format or collection."""
    header, arrays = snapfile.read_arrays(path)
    if header.get("format") != COLUMNS_FORMAT:
        raise snapfile.SnapshotError(f"format {header.get('format')}, expected {COLUMNS_FORMAT}")
    if int(header.get("collection", -1)) != coll_id:
        raise snapfile.SnapshotError("columns of another collection")
    try:
        state = columns_mod.decode_state(header, arrays, lazy=True)  # metadata maps built in a thread
        return FilterColumns.from_state(state), int(header["seq"])
    except (KeyError, ValueError, TypeError) as exc:
        raise snapfile.SnapshotError(f"malformed columns: {exc!r}") from None
