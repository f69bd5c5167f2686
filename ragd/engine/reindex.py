"""Re-embed a collection with another model in the background, without downtime.

`ragd reindex COLLECTION --model NAME` (the Reindex RPC) loads the model beside the one the
daemon serves (offline, from DATA_DIR/models or a fetched family package) and re-embeds
every chunk of the collection with it, in bulk batches that yield to queries. Until the
new vectors are complete, searches and writes keep going to the old ones (the collection's
recorded model embeds its queries and new passages). Then, under the write lock, the chunks
written meanwhile are embedded too, the new vectors replace the old ones in one LMDB
transaction that also records the new model, the collection's indexes are rebuilt from
LMDB, and the collection object is swapped: a search sees either the old collection
(old model, old vectors) or the new one (new model, new vectors), never a mix.

The chunks are kept as they are (their texts and ids: highlights, filters and the keyword
index stay valid); only vectors change. A chunk longer than the new model's max tokens is
truncated by it, as any text is (chunks sized for all-MiniLM-L6-v2's 256 tokens fit the 512
of BGE and E5).

Crash safety: the new vectors live in memory until the switch, which is one LMDB
transaction; the index snapshot of the collection is deleted first, so a restart rebuilds
the vector index from whatever LMDB holds. A crash before the switch leaves the collection
on its old model and vectors, unchanged: run the reindex again (it starts over). Memory:
4 x dimension bytes per chunk (1.5 GB for a million 384-d chunks).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from ragd.engine.ingest import embedding_text
from ragd.errors import FailedPrecondition, InvalidArgument

log = logging.getLogger("ragd.reindex")

_BATCH_DOCS = 64


@dataclass
class ReindexState:
    collection: str
    source: str  # the model the collection was built with
    target: str
    state: str = "running"  # running, done, failed
    documents_done: int = 0
    documents_total: int = 0
    chunks: int = 0
    error: str = ""
    started: float = field(default_factory=time.time)
    finished: float = 0.0


class Reindexer:
    """One background re-embedding per collection at a time (engine-owned)."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.states: dict[str, ReindexState] = {}
        self._tasks: dict[str, asyncio.Task] = {}

    async def start(self, name: str, model: str) -> ReindexState:
        """Start re-embedding `name` with `model`, or report the one running/finished for it."""
        coll = self.engine.check_ready().loaded.collections.get(name)
        state = self.states.get(name)
        if state is not None and (state.state == "running" or (state.target == model and coll.meta.model == model)):
            if state.target != model:
                raise FailedPrecondition(f"collection {name!r} is being re-embedded with {state.target!r} already")
            return state
        if coll.meta.model == model:
            state = ReindexState(name, model, model, state="done", documents_done=coll.meta.docs,
                                 documents_total=coll.meta.docs, finished=time.time())
            self.states[name] = state
            return state
        await self.engine.ensure_runtime(model)  # fails fast (NOT_FOUND-like) when it cannot be loaded
        try:  # the old model keeps answering searches meanwhile, when it can be loaded
            await self.engine.ensure_runtime(coll.meta.model)
        except Exception as exc:  # noqa: BLE001 - its searches were refused already; go on
            log.warning("collection %s: its model %s cannot be loaded (%s); its VECTOR searches stay refused "
                        "until the re-embedding completes", name, coll.meta.model, exc)
        state = ReindexState(name, coll.meta.model, model, documents_total=coll.meta.docs)
        self.states[name] = state
        self._tasks[name] = asyncio.get_running_loop().create_task(self._run(state), name=f"ragd-reindex-{name}")
        return state

    async def stop(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        for task in list(self._tasks.values()):
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass

    async def _run(self, state: ReindexState) -> None:
        t0 = time.perf_counter()
        try:
            runtime = self.engine.runtimes[state.target]
            shadow = await self.engine._run_blocking(self._embed_all, state, runtime.bulk)
            await self.engine._run_blocking(self._switch, state, runtime.bulk, shadow)
            state.state = "done"
            log.info("collection %s re-embedded with %s: %d documents, %d chunks in %.1f s", state.collection,
                     state.target, state.documents_done, state.chunks, time.perf_counter() - t0)
        except asyncio.CancelledError:
            state.state, state.error = "failed", "the daemon stopped; run the reindex again"
            raise
        except Exception as exc:  # noqa: BLE001 - reported through the RPC and the log
            log.exception("re-embedding collection %s with %s failed", state.collection, state.target)
            state.state, state.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            state.finished = time.time()
            self._tasks.pop(state.collection, None)

    # ------------------------------------------------------------ worker threads

    def _texts(self, coll, docs: list) -> tuple[list[int], list[str]]:
        """(chunk ids, texts as ingestion embedded them) of some documents' current chunks."""
        ld = self.engine.check_ready().loaded
        ids = [int(c) for rec in docs for c in rec.chunk_ids]
        titles = {rec.id: rec.document.title for rec in docs}
        chunks = ld.store.get_chunks(coll.meta.id, ids)
        pairs = [(c.chunk_id, embedding_text(titles.get(c.doc_id, ""), c.text)) for c in chunks if c is not None]
        return [i for i, _ in pairs], [t for _, t in pairs]

    def _embed_all(self, state: ReindexState, embedder) -> dict[int, np.ndarray]:
        ld = self.engine.check_ready().loaded
        coll = ld.collections.get(state.collection)
        shadow: dict[int, np.ndarray] = {}
        batch: list = []

        def flush() -> None:
            ids, texts = self._texts(coll, batch)
            if texts:
                vectors = embedder.embed(texts).vectors
                shadow.update(zip(ids, vectors))
            state.documents_done += len(batch)
            batch.clear()

        for rec in ld.store.iter_docs(coll.meta.id):
            if rec.deleted or not rec.chunk_ids:
                continue
            batch.append(rec)
            if len(batch) >= _BATCH_DOCS:
                flush()
        flush()
        return shadow

    def _switch(self, state: ReindexState, embedder, shadow: dict[int, np.ndarray]) -> None:
        ld = self.engine.check_ready().loaded
        collections = ld.collections
        with collections.write_lock:
            old = collections.get(state.collection)
            live = [rec for rec in ld.store.iter_docs(old.meta.id) if not rec.deleted and rec.chunk_ids]
            # Written while the bulk pass ran: embedded now, with the write lock held.
            missing = [rec for rec in live if any(int(c) not in shadow for c in rec.chunk_ids)]
            for start in range(0, len(missing), _BATCH_DOCS):
                ids, texts = self._texts(old, missing[start:start + _BATCH_DOCS])
                if texts:
                    shadow.update(zip(ids, embedder.embed(texts).vectors))
            ids = [int(c) for rec in live for c in rec.chunk_ids]
            dim = int(embedder.dimension)
            # The old snapshot holds the old vectors: gone before LMDB changes, so a crash
            # at any point rebuilds the vector index from what LMDB holds.
            old.close(snapshot=False)
            if collections.layout is not None:
                old_paths = collections.layout.snapshot_paths(old.meta.id)
                old_paths.index.unlink(missing_ok=True)
                if old_paths.rerank is not None:
                    old_paths.rerank.unlink(missing_ok=True)
            with ld.store.write() as w:
                meta = w.collection(state.collection, dim, state.target, create=False)
                if meta is None or meta.id != old.meta.id:
                    raise InvalidArgument("collection", f"{state.collection!r} changed during the re-embedding")
                w.replace_vectors(meta, ids, np.stack([shadow[i] for i in ids]) if ids else
                                  np.empty((0, dim), np.float32))
                meta.model, meta.dim = state.target, dim
            new = collections.swap(meta)  # searches see the old collection or the new one
            new.generation = max(new.generation, old.generation) + 1  # cached pages of the old model are dead
            state.chunks = len(ids)
            state.documents_done = len(live)
            state.documents_total = len(live)
