"""The write log's front: a validated write is appended to its collection's stream
before it is acknowledged, and the acknowledgement carries its position.

Durability is Redis's (README: cluster mode): with `appendonly yes` and
`appendfsync always` Redis fsyncs its AOF before it replies, so an acknowledged
write survives a crash of Redis or of its machine; with `appendfsync everysec`
(Redis's default) a crash of Redis's machine may lose the last second of
acknowledged writes (a crash of Redis alone loses nothing: the kernel has the
data); with `no` the kernel decides when (up to ~30 s on Linux).
"""
from __future__ import annotations

import threading

from ragd.cluster import streams
from ragd.cluster.streams import DELETE, UPSERT, Keys
from ragd.domain import Document, DocumentRef
from ragd.errors import Unavailable


class WriteLog:
    def __init__(self, url: str, keys: Keys, timeout_s: float):
        self.url = url
        self.keys = keys
        self.redis = streams.connect(url, timeout_s)
        self._append = self.redis.register_script(streams.APPEND_LUA)
        self._grouped: set[str] = set()
        self._lock = threading.Lock()

    def _call(self, collection: str, op: str, body: bytes) -> int:
        k = self.keys
        try:
            if collection not in self._grouped:
                # The workers' group exists before the first entry, so no worker that
                # starts later can miss an entry by creating it at the stream's end.
                streams.ensure_group(self.redis, k, collection)
                with self._lock:
                    self._grouped.add(collection)
            seq, _ = self._append(keys=[k.wlog(collection), k.wseq(collection), k.collections],
                                  args=[collection, op, body])
        except streams.redis_errors() as exc:
            raise Unavailable(f"the write log (Redis at {self.url}) is unreachable ({exc}); nothing was written, "
                              "retry") from None
        return int(seq)

    def upsert(self, collection: str, docs: list[Document]) -> int:
        """Append an upsert (documents normalised and validated); returns its position."""
        return self._call(collection, UPSERT, streams.encode_write_body(UPSERT, docs=docs))

    def delete(self, collection: str, refs: list[DocumentRef]) -> int:
        return self._call(collection, DELETE, streams.encode_write_body(DELETE, refs=refs))

    def close(self) -> None:
        self.redis.close()
