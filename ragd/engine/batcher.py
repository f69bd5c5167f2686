"""Dynamic micro-batching of embedding work, shared by every RPC.

Requests from concurrent callers (a query from Search, 300 chunks from an
Upsert, texts from Embed) are tokenised off the event loop, queued, and packed
into batches by a token budget, as text-embeddings-inference does:

- a batch holds at most `max_batch_tokens` padded tokens (rows x longest row)
  and `max_batch_texts` rows, and at most `max_pad_fraction` of its tokens are
  padding: on a CPU a padded position costs as much as a real token and
  batching itself buys little, so 16 queries of mixed length run faster as a
  few length-matched batches than as one padded batch (measured in process on
  2 cores, 16 callers of CISI abstracts: real/padded tokens 0.67 -> 0.95 and
  57 -> 86 texts/s with a cap of 0.1);
- the texts waiting at the head of the queue are sorted by length before they
  are cut into batches, so a batch pads little (padding is where CPU time goes);
- up to `workers` inferences run at once (default one, on every core; see
  engine.inference_plan for the measurements) while the event loop assembles
  the next batch;
- tokenisation has its own executor, so it never waits behind an inference;
- interactive requests (queries, Embed) have their own lane and run before the
  next bulk (ingestion) batch, so a search waits at most for the batch running;
- texts of a caller that went away (its future cancelled) are dropped before
  they reach the model;
- the queue is bounded in tokens: `submit(..., wait=False)` fails at once with
  ResourceExhausted (and a retry hint), `wait=True` waits for room, which is how
  streams and jobs slow their producers down instead of growing memory.
"""
from __future__ import annotations

import asyncio
import collections
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from ragd.engine.tasks import cancel_and_wait
from ragd.errors import ResourceExhausted, Unavailable


@dataclass
class EmbedOutput:
    vectors: np.ndarray  # float32 [n, dim], in input order
    token_counts: np.ndarray  # int32 [n]
    truncated: np.ndarray  # bool [n]
    tokenize_ms: float = 0.0
    queue_ms: float = 0.0  # from enqueue to the start of this request's first batch
    inference_ms: float = 0.0  # wall time of the batches that carried this request


@dataclass(eq=False)
class _Request:
    tokens: list
    future: asyncio.Future
    out: EmbedOutput
    enqueued: float
    remaining: int
    started: bool = False
    cost: int = 0  # tokens held in the queue, released when done


@dataclass(order=True)
class _Item:
    length: int
    seq: int
    request: _Request = field(compare=False)
    row: int = field(compare=False)


class EmbedBatcher:
    def __init__(self, embedder, executor: Executor, *, tokenize_executor: Executor | None = None,
                 workers: int = 1, max_batch_tokens: int = 8192, max_batch_texts: int = 64,
                 max_pad_fraction: float = 1.0, max_queue_tokens: int = 262144):
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if not 0.0 <= max_pad_fraction <= 1.0:
            raise ValueError("max_pad_fraction must be between 0 and 1")
        self.max_pad_fraction = max_pad_fraction
        self.embedder = embedder
        self.executor = executor  # inference; needs at least `workers` threads
        self.tokenize_executor = tokenize_executor or executor
        self.workers = workers
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_texts = max_batch_texts
        self.max_queue_tokens = max_queue_tokens
        self._queue: collections.deque[_Request] = collections.deque()  # bulk: ingestion, jobs
        self._urgent: collections.deque[_Request] = collections.deque()  # interactive: queries, Embed
        self._queued_tokens = 0
        self._seq = 0
        # asyncio primitives bind to the running loop on first use (Python >= 3.10).
        self._wakeup = asyncio.Event()
        self._room = asyncio.Event()  # set whenever queued tokens are released
        self._task: asyncio.Task | None = None
        self._slots = asyncio.Semaphore(self.workers)  # one per inference allowed in flight
        self._inflight: set[asyncio.Task] = set()
        self._unresolved: set[_Request] = set()  # queued or in a batch, future not yet set
        self._stopped = False
        self.batches_run = 0  # counters for metrics and tests
        self.rows_run = 0
        self.real_tokens = 0
        self.padded_tokens = 0
        self.inference_s = 0.0

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._worker(), name="ragd-embed-batcher")

    async def stop(self) -> None:
        """Stop the worker and fail every caller still waiting (UNAVAILABLE), so
        no thread blocked in BlockingEmbedder.embed waits forever at shutdown."""
        self._stopped = True
        await cancel_and_wait(self._task)
        for task in list(self._inflight):
            await cancel_and_wait(task)
        for req in list(self._unresolved):
            if not req.future.done():
                req.future.set_exception(Unavailable("ragd is shutting down; retry on another replica or later"))
        self._unresolved.clear()
        self._room.set()

    @property
    def queued_tokens(self) -> int:
        return self._queued_tokens

    # ------------------------------------------------------------ callers

    async def embed(self, texts: list[str], *, wait: bool = False, urgent: bool = False) -> EmbedOutput:
        """Vectors for `texts` (input order). wait=False: ResourceExhausted when the queue is full.
        urgent=True: an interactive request (a query), run before the next bulk batch."""
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        tokens = await loop.run_in_executor(self.tokenize_executor, self.embedder.tokenize, texts)
        tokenize_ms = (time.perf_counter() - t0) * 1000
        counts = np.fromiter((len(t) for t in tokens), dtype=np.int32, count=len(tokens))
        cost = int(counts.sum())
        if self._stopped:
            raise Unavailable("ragd is shutting down; retry on another replica or later")
        await self._reserve(cost, wait)
        out = EmbedOutput(vectors=np.empty((len(tokens), self.embedder.dimension), dtype=np.float32),
                          token_counts=counts,
                          truncated=np.fromiter((t.truncated for t in tokens), dtype=np.bool_, count=len(tokens)),
                          tokenize_ms=tokenize_ms)
        req = _Request(tokens=tokens, future=loop.create_future(), out=out, enqueued=time.perf_counter(),
                       remaining=len(tokens), cost=cost)
        if not tokens:
            self._release(req)
            return out
        (self._urgent if urgent else self._queue).append(req)
        self._unresolved.add(req)
        req.future.add_done_callback(lambda _: self._unresolved.discard(req))
        self._wakeup.set()
        try:
            return await asyncio.shield(req.future)
        except asyncio.CancelledError:
            # The caller went away: its texts are skipped when their batch is cut.
            req.future.cancel()
            raise

    async def _reserve(self, cost: int, wait: bool) -> None:
        # A request larger than the whole queue is admitted alone rather than never.
        def fits() -> bool:
            return self._queued_tokens == 0 or self._queued_tokens + cost <= self.max_queue_tokens
        while not fits():
            if self._stopped:
                raise Unavailable("ragd is shutting down; retry on another replica or later")
            if not wait:
                raise ResourceExhausted(
                    f"embedding queue full ({self._queued_tokens} tokens waiting); retry shortly",
                    retry_after_s=0.2 + self._queued_tokens / 20000)
            self._room.clear()
            await self._room.wait()
        self._queued_tokens += cost

    def _release(self, req: _Request) -> None:
        self._queued_tokens -= req.cost
        req.cost = 0
        self._room.set()

    # ------------------------------------------------------------ worker

    def _next_batches(self, queue: collections.deque) -> list[list[_Item]]:
        """Cut the head of `queue` into length-sorted batches under the token budget."""
        pool: list[_Item] = []
        budget = self.max_batch_tokens * 4  # sort a few batches' worth at a time: FIFO across pools
        pooled = 0
        while queue and pooled < budget:
            req = queue.popleft()
            if req.future.done():  # the caller went away while queued: give its room back
                self._release(req)
                continue
            for row, tok in enumerate(req.tokens):
                self._seq += 1
                pool.append(_Item(len(tok), self._seq, req, row))
                pooled += len(tok)
        pool.sort()
        batches: list[list[_Item]] = []
        batch: list[_Item] = []
        real = 0
        for item in pool:  # ascending length: the new item is the longest
            padded = (len(batch) + 1) * item.length
            if batch and (len(batch) + 1 > self.max_batch_texts or padded > self.max_batch_tokens
                          or padded - real - item.length > self.max_pad_fraction * padded):
                batches.append(batch)
                batch, real = [], 0
            batch.append(item)
            real += item.length
        if batch:
            batches.append(batch)
        return batches

    async def _worker(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._urgent or self._queue:
                pending = collections.deque(self._next_batches(self._queue))
                while pending or self._urgent:
                    # Interactive requests (queries) go before the next bulk batch:
                    # one waits at most for the batches already running.
                    if self._urgent:
                        for batch in self._next_batches(self._urgent):
                            await self._launch(batch)
                        continue
                    await self._launch(pending.popleft())

    async def _launch(self, batch: list[_Item]) -> None:
        """Start `batch` as soon as an inference slot is free (without waiting for it to finish)."""
        await self._slots.acquire()
        task = asyncio.get_running_loop().create_task(self._run_batch(batch))
        self._inflight.add(task)

        def done(t: asyncio.Task) -> None:
            self._inflight.discard(t)
            self._slots.release()
        task.add_done_callback(done)

    def _row_done(self, req: _Request) -> bool:
        """Count one row of `req` as finished; True (and its queue room released) when it was the last."""
        req.remaining -= 1
        if req.remaining == 0:
            self._release(req)
            return True
        return False

    async def _run_batch(self, batch: list[_Item]) -> None:
        live = []
        for it in batch:
            if it.request.future.done():  # caller gone (or failed by another batch): skip the row
                self._row_done(it.request)
            else:
                live.append(it)
        if not live:
            return
        now = time.perf_counter()
        for it in live:
            if not it.request.started:
                it.request.started = True
                it.request.out.queue_ms = (now - it.request.enqueued) * 1000
        padded = self.embedder.pad([it.request.tokens[it.row] for it in live])
        try:
            vectors = await asyncio.get_running_loop().run_in_executor(self.executor, self.embedder.run, padded)
        except Exception as exc:  # noqa: BLE001 - delivered to every caller of the batch
            for it in live:
                if not it.request.future.done():
                    it.request.future.set_exception(exc)
                self._row_done(it.request)
            return
        ms = (time.perf_counter() - now) * 1000
        self.batches_run += 1
        self.rows_run += len(live)
        self.real_tokens += int(padded.attention_mask.sum())
        self.padded_tokens += padded.attention_mask.size
        self.inference_s += ms / 1000
        touched = {}
        for it, vec in zip(live, vectors):
            it.request.out.vectors[it.row] = vec
            touched[id(it.request)] = it.request
            if self._row_done(it.request) and not it.request.future.done():
                it.request.out.inference_ms += ms
                it.request.future.set_result(it.request.out)
        for req in touched.values():
            if not req.future.done():
                req.out.inference_ms += ms


class BlockingEmbedder:
    """The batcher seen from a worker thread (search, ingestion): `embed(texts)`
    blocks that thread, not the event loop, until the batched vectors arrive.
    Other attributes (dimension, name, max_tokens, ...) are the model's."""

    def __init__(self, batcher: EmbedBatcher, loop: asyncio.AbstractEventLoop, *, wait: bool,
                 urgent: bool = False):
        self._batcher = batcher
        self._loop = loop
        self._wait = wait
        self._urgent = urgent

    def embed(self, texts) -> EmbedOutput:
        return asyncio.run_coroutine_threadsafe(
            self._batcher.embed(list(texts), wait=self._wait, urgent=self._urgent), self._loop).result()

    def __getattr__(self, name):
        return getattr(self._batcher.embedder, name)
