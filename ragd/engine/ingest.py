"""Ingestion: normalise -> chunk -> embed (no lock held), then one durable
LMDB transaction and the in-memory index update (under the write lock).

Version rules (design.md): an upsert older than the stored version (or than a
versioned delete's tombstone) is STALE and ignored; the same version is a
no-op (UNCHANGED); version 0 is unversioned and always applied.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ragd import _native
from ragd.domain import Ack, AckStatus, Document, DocumentRef
from ragd.engine.chunking import TextError
from ragd.engine.collection import Collections, require_model
from ragd.errors import InvalidArgument, Unavailable
from ragd.index.derived import Change, DocChunks
from ragd.store.lmdb_store import CollectionMeta, DocRecord, Store, WriteTxn


@dataclass
class PreparedDoc:
    doc: Document  # text normalised
    spans: list[tuple[int, int]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    vectors: np.ndarray | None = None
    truncated: bool = False
    skip: AckStatus | None = None  # decided by the version pre-check
    model: str = ""  # the model that embedded it (the collection's, checked again at commit)


def version_verdict(stored: DocRecord | None, version: int) -> AckStatus | None:
    """None when the write applies, else the ack status that explains why not."""
    if stored is None or version == 0:
        return None
    if version < stored.version:
        return AckStatus.STALE
    if version == stored.version:
        return AckStatus.STALE if stored.deleted else AckStatus.UNCHANGED
    return None


def embedding_text(title: str, chunk: str) -> str:
    # Every chunk carries its document's title: an issue's subject is its most
    # informative sentence, and a chunk from the middle of a long description
    # would otherwise lose what it is about.
    return f"{title}\n{chunk}" if title else chunk


def chunk_documents(chunker, docs: list[Document], skips: Sequence[AckStatus | None] = ()) -> list[PreparedDoc]:
    """Normalise and chunk documents (those not skipped by a version verdict). Raises
    InvalidArgument naming the document on bad input: everything that can fail on bad
    input happens here, before any write (a cluster's front runs it to validate a
    write before appending it to the write log; the worker runs it again)."""
    prepared: list[PreparedDoc] = []
    for i, doc in enumerate(docs):
        try:
            doc.text = _native.normalize_text(doc.text.encode("utf-8"))
        except (UnicodeEncodeError, ValueError) as exc:
            raise InvalidArgument(f"documents[{i}].text", f"not valid UTF-8 ({exc})") from None
        prepared.append(PreparedDoc(doc=doc, skip=skips[i] if skips else None))
    # One native call chunks every document of the batch (one GIL release, no
    # Python object per chunk but its text): issues and notes are small, and a
    # call per document cost more than the splitting itself.
    todo_at = [i for i, p in enumerate(prepared) if p.skip is None]
    try:
        batch = chunker.chunk_many([prepared[i].doc.text for i in todo_at],
                                   embed_prefixes=[embedding_text(prepared[i].doc.title, "") for i in todo_at])
    except TextError as exc:  # names the k-th document chunked
        raise InvalidArgument(f"documents[{todo_at[exc.index]}].text", exc.reason) from None
    for k, i in enumerate(todo_at):
        if batch.count(k) == 0:
            raise InvalidArgument(f"documents[{i}].text", "no indexable text after normalisation")
        prepared[i].spans = batch.spans(k)
        prepared[i].texts = batch.texts_of(k)
    return prepared


def embed_prepared(embedder, prepared: Sequence[PreparedDoc]) -> None:
    """Embed the chunks of every prepared document not skipped, in one call."""
    todo = [p for p in prepared if p.skip is None]
    if not todo:
        return
    inputs = [embedding_text(p.doc.title, t) for p in todo for t in p.texts]
    result = embedder.embed(inputs)
    at = 0
    for p in todo:
        n = len(p.texts)
        p.vectors = result.vectors[at:at + n]
        p.truncated = bool(np.any(result.truncated[at:at + n]))
        at += n


class Ingestor:
    def __init__(self, store: Store, embedder, chunker, collections: Collections, model_name: str):
        self.store = store
        self.embedder = embedder
        self.chunker = chunker
        self.collections = collections
        self.write_lock = collections.write_lock
        self.model_name = model_name
        # model name -> (embedder, chunker) of another loaded model, for collections built
        # with it (re-embedded ones, ragd.engine.reindex); None: only this ingestor's model.
        self.runtime_for: Callable[[str], tuple | None] | None = None

    def prepare(self, name: str, docs: list[Document]) -> list[PreparedDoc]:
        """Everything that can fail on bad input happens here, before any write."""
        coll = self.collections.find(name)
        embedder, chunker, model = self.embedder, self.chunker, self.model_name
        if coll is not None:
            if coll.meta.model != model and self.runtime_for is not None:
                runtime = self.runtime_for(coll.meta.model)
                if runtime is not None:
                    (embedder, chunker), model = runtime, coll.meta.model
            require_model(coll.meta, model, embedder.dimension, "write to")
        stored = self.store.get_docs(coll.meta.id, [d.id for d in docs]) if coll else {}
        prepared = chunk_documents(chunker, docs, [version_verdict(stored.get(d.id), d.version) for d in docs])
        for p in prepared:
            p.model = model
        embed_prepared(embedder, prepared)
        return prepared

    def _apply(self, meta: CollectionMeta, w: WriteTxn, parts: Sequence[tuple[DocChunks, np.ndarray]] = ()) -> int:
        """After the commit: make the write searchable (creating the collection on its
        first write); returns the write's sequence."""
        coll = self.collections.find(meta.name)
        if coll is None:
            coll = self.collections.create(meta)  # built from LMDB, this write included
        coll.meta = meta
        for entry in w.entries:  # at most one: a write touches one collection
            coll.apply(Change.of_write(entry, parts))
        return w.sequence or self.store.sequence()

    def commit(self, name: str, prepared: list[PreparedDoc],
               on_commit: Callable[[WriteTxn, list[Ack]], None] | None = None) -> tuple[list[Ack], int]:
        """Write prepared documents in one durable transaction, then make them searchable.
        `on_commit(write_txn, acks)` runs inside the transaction (job progress)."""
        with self.write_lock:
            parts: list[tuple[DocChunks, np.ndarray]] = []
            acks: list[Ack] = []
            with self.store.write() as w:
                meta = w.collection(name, self.embedder.dimension, self.model_name, create=True)
                assert meta is not None
                # Prepared by another path (a cluster replica applying a worker's vectors): this model's.
                used = (prepared[0].model if prepared else "") or self.model_name
                if meta.model != used:  # prepare() checked it: the collection was re-embedded since
                    raise Unavailable(f"collection {name!r} was re-embedded with model {meta.model!r} while "
                                      "this write was prepared; retry it")
                for p in prepared:
                    doc = p.doc
                    stored = w.get_doc(meta, doc.id)
                    # Re-check under the lock: another writer may have won since prepare().
                    verdict = version_verdict(stored, doc.version)
                    if verdict is not None or p.skip is not None:
                        status = verdict or p.skip
                        assert status is not None
                        acks.append(Ack(doc.id, status, stored.version if stored else doc.version,
                                        len(stored.chunk_ids) if stored else 0))
                        continue
                    if stored is not None:
                        if stored.deleted:
                            meta.tombstones -= 1
                        else:
                            w.remove_chunks(meta, stored.chunk_ids)
                            meta.docs -= 1
                    assert p.vectors is not None  # set by prepare() for every document it did not skip
                    new_ids = w.add_chunks(meta, doc.id, p.spans, p.texts, p.vectors)
                    w.put_doc(meta, DocRecord.live(doc, new_ids))
                    meta.docs += 1
                    parts.append((DocChunks(doc, new_ids, p.texts), p.vectors))
                    acks.append(Ack(doc.id, AckStatus.INDEXED, doc.version, len(new_ids), truncated=p.truncated))
                if on_commit is not None:
                    on_commit(w, acks)
            return acks, self._apply(meta, w, parts)

    def delete(self, name: str, refs: list[DocumentRef], create: bool = False,
               on_commit: Callable[[WriteTxn, list[Ack]], None] | None = None) -> tuple[list[Ack], int]:
        """`create`: a collection never written is created by the delete (a replica applying
        a versioned delete that overtook the document's first upsert keeps its tombstone)."""
        with self.write_lock:
            coll = None if create else self.collections.get(name)
            acks: list[Ack] = []
            with self.store.write() as w:
                if coll is None:
                    meta = w.collection(name, self.embedder.dimension, self.model_name, create=True)
                else:
                    meta = w.collection(name, coll.meta.dim, coll.meta.model, create=False)
                assert meta is not None  # collections are never dropped
                for ref in refs:
                    stored = w.get_doc(meta, ref.id)
                    if stored is not None and ref.version and stored.version > ref.version:
                        acks.append(Ack(ref.id, AckStatus.STALE, stored.version))
                        continue
                    live = stored is not None and not stored.deleted
                    if stored is not None and live:
                        w.remove_chunks(meta, stored.chunk_ids)
                        meta.docs -= 1
                    if ref.version:
                        if stored is None or live:
                            meta.tombstones += 1
                        w.put_doc(meta, DocRecord.tombstone(ref.id, ref.version))
                    elif stored is not None:
                        if not live:
                            meta.tombstones -= 1
                        w.delete_doc(meta, ref.id)
                    acks.append(Ack(ref.id, AckStatus.DELETED if live else AckStatus.NOT_FOUND, ref.version))
                if on_commit is not None:
                    on_commit(w, acks)
            return acks, self._apply(meta, w)
