"""The engine facade the API layer talks to: lifecycle (open the store, load the
model, rebuild indexes) and async entry points that run the CPU-bound work
(tokenising, ONNX inference, FAISS, fsync) on a thread pool, so the event loop
stays free to accept calls. ONNX Runtime, FAISS and LMDB release the GIL.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

from tokenizers import Tokenizer

from ragd import __version__
from ragd.answer.chat import ChatClient, ChatSettings, read_api_key
from ragd.answer.pipeline import Answerer, AnswerSettings
from ragd.answer.types import AnswerEvent, AnswerQuery
from ragd.cluster.replica import Follower
from ragd.cluster.snapshots import register_snapshot
from ragd.cluster.streams import Keys, default_replica_name
from ragd.cluster.writelog import WriteLog
from ragd.config import Config
from ragd.domain import (
    Ack,
    AckStatus,
    CollectionStats,
    Document,
    DocumentInfo,
    DocumentRef,
    Filter,
    Job,
    ModelInfo,
    SearchQuery,
    SearchResult,
    Timings,
    WriteResult,
)
from ragd.embed.catalog import family
from ragd.embed.onnx_embedder import OnnxEmbedder, cuda_requested, open_embedder
from ragd.embed.provision import provision_model, remove_stale_staging
from ragd.embed.quantize import ensure_int8_variant, needs_int8
from ragd.engine import router, validate
from ragd.engine.batcher import BlockingEmbedder, EmbedBatcher, EmbedOutput
from ragd.engine.cache import SearchCache
from ragd.engine.chunking import Chunker
from ragd.engine.collection import Collections
from ragd.engine.datadir import DataDir, backup
from ragd.engine.ingest import Ingestor, chunk_documents
from ragd.engine.jobs import JobRunner
from ragd.engine.reindex import Reindexer
from ragd.engine.search import Searcher, SearchSettings
from ragd.errors import InvalidArgument, Unavailable
from ragd.index.lifecycle import index_context_from
from ragd.security.paths import backup_target
from ragd.store.jobs import JobStore
from ragd.store.lmdb_store import Store

log = logging.getLogger("ragd.engine")


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


def build_chunker(cfg: Config, model_dir: Path, max_tokens: int) -> Chunker:
    """Chars mode (LangChain's chunks, measured as good as token mode on CISI; see
    ragd/engine/chunking.py) with the model's tokenizer as a guard: a chunk that,
    with its title in front, would exceed the model's max length is re-split by
    tokens instead of being silently truncated."""
    c = cfg.chunking
    size = c.size or None  # 0 and -1 mean "the mode's default" (ragd/config.py)
    overlap = None if c.overlap < 0 else c.overlap
    if not (model_dir / "tokenizer.json").exists():
        # A string-input model tokenizes inside its graph: chunks are sized in characters only.
        if c.mode == "tokens":
            raise ValueError(f"chunking.mode tokens needs the model's tokenizer.json, which {model_dir.name} "
                             "does not have (it takes strings); use chunking.mode chars")
        return Chunker(mode="chars", chunk_size=size, chunk_overlap=overlap)
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    mode: Literal["chars", "tokens"] = "tokens" if c.mode == "tokens" else "chars"  # validated by ragd.config
    return Chunker(mode=mode, chunk_size=size, chunk_overlap=overlap, tokenizer=tokenizer, max_tokens=max_tokens)


def model_source(cfg: Config) -> str | None:
    """What to provision model.name from: model.source, else the family model.name names
    (ragd/embed/catalog.py), else None (the bundled default model)."""
    if cfg.model.source:
        return cfg.model.source
    return cfg.model.name if family(cfg.model.name) is not None else None


def inference_plan(cfg: Config, cuda: bool, cores: int) -> tuple[int, int | None]:
    """(inference workers, intra-op threads per inference; None = ONNX Runtime's default).

    Measured on 2 CPU cores, CISI abstracts over gRPC Embed: 1 worker x 2
    threads gives 77-82 texts/s for one caller and 78-83 for 16; 2 workers x
    1 thread give 43 and 81-84. Batches of length-matched texts (see
    max_pad_fraction) were what mattered, so one worker on every core is the
    default, and the threads follow the workers when set.
    """
    workers = cfg.batching.inference_workers
    threads = cfg.model.threads or (None if cuda or workers == 1 else max(1, cores // workers))
    return workers, threads


def batch_token_cap(cfg: Config, cuda: bool) -> int:
    """Padded tokens per inference batch: batching.max_batch_tokens, or when 0
    1024 on a CPU and 8192 on CUDA.

    Measured on 2 CPU cores (all-MiniLM-L6-v2, ONNX Runtime, one batch at a
    time): tokens/s peaks at 300-1000 padded tokens (15.8-16.2k for rows of
    40 and 110 tokens, 14.9k for rows of 256) and falls beyond 4096 (14.2k at
    7040, 13.6k at 8192), while one batch takes 60-70 ms at 1024 tokens and
    500-600 ms at 8192. An inference cannot be interrupted, so a query that
    arrives during a bulk batch waits for it: the cap is what bounds search
    latency while documents are indexed. A GPU gains from big batches.
    """
    return cfg.batching.max_batch_tokens or (8192 if cuda else 1024)


def build_answerer(cfg: Config, retrieve) -> Answerer:
    """The Answer pipeline over `retrieve` (the engine's search); without answer.model_url it
    refuses every call with FAILED_PRECONDITION, and Search is unaffected either way."""
    a = cfg.answer
    chat = None
    if a.model_url:
        chat = ChatClient(ChatSettings(
            url=a.model_url, model=a.model, api_key=read_api_key(a.api_key_file, a.api_key_env),
            max_tokens_field=a.max_tokens_field, extra_body=json.loads(a.extra_body) if a.extra_body else {},
            connect_timeout_s=a.connect_timeout_s, read_timeout_s=a.read_timeout_s, retries=a.retries,
            retry_backoff_s=a.retry_backoff_s, max_concurrency=a.max_concurrency, max_waiting=a.max_waiting))
        log.info("answers from %s (model %s)%s", a.model_url, a.model or "the server's default",
                 ", HyDE on for complex questions" if a.hyde else "")
    settings = AnswerSettings(top_k=a.top_k, max_top_k=a.max_top_k, max_context_chars=a.max_context_chars,
                              max_tokens=a.max_tokens, max_tokens_limit=a.max_tokens_limit,
                              temperature=a.temperature, hyde=a.hyde, hyde_max_tokens=a.hyde_max_tokens)
    return Answerer(settings, chat, retrieve)


@dataclass
class ModelRuntime:
    """A loaded model and its micro-batcher, seen three ways by the worker threads."""
    embedder: OnnxEmbedder
    chunker: Chunker
    batcher: EmbedBatcher
    query: BlockingEmbedder  # searches: interactive lane, the query prefix
    unary: BlockingEmbedder  # Upsert: fails fast when the queue is full
    bulk: BlockingEmbedder  # streams, jobs, re-embedding: wait for room


@dataclass
class _Loaded:
    """What load() brings up (blocking, off the event loop)."""
    store: Store
    embedder: OnnxEmbedder
    chunker: Chunker
    collections: Collections
    infer_pool: ThreadPoolExecutor


@dataclass
class _Cluster:
    """Cluster mode's parts of a `ragd serve`: the write log it appends to, and the
    follower that applies the embedded stream to this replica (ragd.cluster)."""
    writelog: WriteLog
    follower: Follower


@dataclass
class _Serving:
    """What start() adds on the event loop; there exactly while calls are served."""
    loaded: _Loaded
    batcher: EmbedBatcher
    ingestor: Ingestor         # unary calls: RESOURCE_EXHAUSTED when the embedding queue is full
    stream_ingestor: Ingestor  # streams and jobs: wait for room, which slows their producers down
    searcher: Searcher
    jobs: JobRunner
    cluster: _Cluster | None = None


class Engine:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.limits = cfg.limits
        self._stopping = False
        self.started = time.time()
        self.layout = DataDir(cfg.data_path)
        self._loaded: _Loaded | None = None
        self._serving: _Serving | None = None
        self._write_lock = threading.Lock()
        # Request work (chunking, LMDB, FAISS) and model work have separate pools:
        # request threads block on the batcher, which needs an inference thread.
        self._pool = ThreadPoolExecutor(max_workers=max(8, (os.cpu_count() or 2) * 4),
                                        thread_name_prefix="ragd-engine")
        # Tokenising a query must not wait behind an inference: its own small pool.
        self._tokenize_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ragd-tokenize")
        self.inference_workers = 1
        self.max_pad_fraction = 1.0
        self.max_batch_tokens = 8192
        self.answerer: Answerer | None = None
        # Every loaded model by name: the served one (model.name), plus models loaded to
        # re-embed a collection (ragd.engine.reindex); a collection is served by its own.
        self.runtimes: dict[str, ModelRuntime] = {}
        self._runtime_lock: asyncio.Lock | None = None
        self.reindexer = Reindexer(self)

    # ------------------------------------------------------------ lifecycle

    def load(self) -> None:
        """Blocking: provision/load the model, open LMDB, open every collection's indexes."""
        t0 = time.perf_counter()
        layout = self.layout
        for stale in remove_stale_staging(layout.models):
            log.warning("removed %s: a model provisioning interrupted by a kill", stale)
        model_dir = layout.models / self.cfg.model.name
        cuda = cuda_requested(self.cfg.model.device)
        int8 = needs_int8(self.cfg.model.precision, cuda)
        if not (model_dir / "manifest.json").exists():
            log.info("model %s not provisioned under %s; provisioning it (offline)", self.cfg.model.name, model_dir)
            model_dir = provision_model(layout.models, model_source(self.cfg), int8=int8,
                                        packages=self.cfg.model.packages_dir or None)
        elif int8:
            ensure_int8_variant(model_dir)
        self.inference_workers, threads = inference_plan(self.cfg, cuda, os.cpu_count() or 1)
        pad = self.cfg.batching.max_pad_fraction
        self.max_pad_fraction = pad if pad >= 0 else (0.5 if cuda else 0.1)
        self.max_batch_tokens = batch_token_cap(self.cfg, cuda)
        embedder = open_embedder(model_dir, device=self.cfg.model.device, intra_op_threads=threads,
                                 precision=self.cfg.model.precision, spin_wait=self.cfg.model.spin_wait)
        log.info("model %s loaded (%d-d, %s, provider %s, %d inference workers x %s intra-op threads)",
                 embedder.name, embedder.dimension, embedder.variant, embedder.provider, self.inference_workers,
                 threads or "auto")
        chunker = build_chunker(self.cfg, model_dir, embedder.max_tokens)
        # Warm the session: the first run allocates ONNX Runtime's buffers.
        embedder.embed(["warm up"])
        store = Store(layout.store, int(self.cfg.store.map_size_gb * (1 << 30)))
        collections = Collections(store, index_context_from(self.cfg, self._write_lock), layout)
        try:
            for name, meta in store.collections().items():
                if meta.model != embedder.name or meta.dim != embedder.dimension:
                    # Served, but refused for anything that embeds (collection.require_model).
                    log.warning("collection %s was built with model %s (%d-d), not %s: its writes and "
                                "VECTOR/HYBRID searches are refused until it is re-embedded (ragd reindex)",
                                name, meta.model, meta.dim, embedder.name)
                t1 = time.perf_counter()
                collections.open(meta)
                log.info("collection %s: %d documents, %d chunks, indexes ready in %.0f ms",
                         name, meta.docs, meta.chunks, _ms(t1))
        except BaseException:
            collections.close(snapshot=False)
            store.close()
            raise
        self._loaded = _Loaded(store, embedder, chunker, collections, ThreadPoolExecutor(
            max_workers=self.inference_workers, thread_name_prefix="ragd-infer"))
        # Reads the model server's API key: a missing key file fails start-up here, with the option named.
        self.answerer = build_answerer(self.cfg, self.search)
        log.info("engine loaded in %.1f s", _ms(t0) / 1000)

    async def start(self) -> None:
        """After load(), on the event loop: start the micro-batcher and accept calls."""
        ld = self._loaded
        if ld is None:
            raise RuntimeError("Engine.start() before load()")
        b = self.cfg.batching
        batcher = EmbedBatcher(ld.embedder, ld.infer_pool, tokenize_executor=self._tokenize_pool,
                               workers=self.inference_workers, max_pad_fraction=self.max_pad_fraction,
                               max_batch_tokens=self.max_batch_tokens,
                               max_batch_texts=b.max_batch_texts, max_queue_tokens=b.max_queue_tokens)
        batcher.start()
        loop = asyncio.get_running_loop()
        model = ld.embedder.name
        self._runtime_lock = asyncio.Lock()
        self.runtimes[model] = self._runtime(ld.embedder, ld.chunker, batcher, loop)
        ingestor = Ingestor(ld.store, BlockingEmbedder(batcher, loop, wait=False), ld.chunker, ld.collections, model)
        stream_ingestor = Ingestor(ld.store, BlockingEmbedder(batcher, loop, wait=True), ld.chunker,
                                   ld.collections, model)
        c, sc = self.cfg.cache, self.cfg.search
        cache = SearchCache(enabled=c.enabled, max_pages=c.max_pages, max_embeddings=c.max_embeddings,
                            ttl_s=c.ttl_s, model=f"{model}:{ld.embedder.sha256}", redis_url=c.redis_url,
                            redis_prefix=c.redis_prefix, redis_timeout_s=c.redis_timeout_s)
        ingestor.runtime_for = self._unary_for
        stream_ingestor.runtime_for = self._bulk_for
        searcher = Searcher(ld.store, BlockingEmbedder(batcher, loop, wait=False, urgent=True, is_query=True),
                            ld.collections,
                            SearchSettings(fusion=sc.fusion, rrf_k=sc.rrf_k, hybrid_candidates=sc.hybrid_candidates,
                                           vector_weight=sc.vector_weight, keyword_weight=sc.keyword_weight,
                                           auto_max_words=sc.auto_max_words, highlights=sc.highlights),
                            cache)
        searcher.embedder_for = self._query_for
        j = self.cfg.jobs
        jobs = JobRunner(JobStore(ld.store), stream_ingestor, self._run_blocking, batch_size=j.batch_size,
                         max_attempts=j.max_attempts, backoff_s=j.retry_backoff_s, retention_s=j.retention_s)
        cluster = self._start_cluster(ld) if self.cfg.cluster.redis_url else None
        self._serving = _Serving(ld, batcher, ingestor, stream_ingestor, searcher, jobs, cluster)
        jobs.start()

    def _start_cluster(self, ld: _Loaded) -> _Cluster:
        c = self.cfg.cluster
        keys = Keys(c.prefix)
        name = c.replica_name or default_replica_name(self.cfg.data_path)
        # The follower's ingestor never embeds: the entries it applies carry their vectors.
        applier = Ingestor(ld.store, ld.embedder, ld.chunker, ld.collections, ld.embedder.name)
        follower = Follower(c, name, ld.store, applier, f"{ld.embedder.name}:{ld.embedder.sha256}")
        follower.start()
        log.info("cluster mode: writes go to the write log at %s; replica %s follows the embedded streams",
                 c.redis_url, name)
        return _Cluster(WriteLog(c.redis_url, keys, c.redis_timeout_s), follower)

    @property
    def follower(self) -> Follower | None:
        """Cluster mode: the replica's follower of the embedded streams (its figures feed /metrics)."""
        s = self._serving
        return s.cluster.follower if s is not None and s.cluster is not None else None

    @property
    def clustered(self) -> bool:
        """Cluster mode (cluster.redis_url set): writes are appended to the write log."""
        return bool(self.cfg.cluster.redis_url)

    async def stop(self) -> None:
        self._stopping = True
        await self.reindexer.stop()  # an unfinished re-embedding leaves the collection as it was
        if self._serving is not None:
            await self._serving.jobs.stop()  # the batch in flight commits atomically or not at all
            for runtime in list(self.runtimes.values()):
                if runtime.batcher is not self._serving.batcher:
                    await runtime.batcher.stop()
            await self._serving.batcher.stop()
            cluster = self._serving.cluster
            if cluster is not None:  # the entry being applied commits (with its position) or not at all
                await asyncio.get_running_loop().run_in_executor(None, cluster.follower.stop)
                cluster.writelog.close()
        if self.answerer is not None and self.answerer.chat is not None:
            await self.answerer.chat.close()

    def close(self) -> None:
        self._stopping = True
        self._pool.shutdown(wait=True)
        ld, self._loaded = self._loaded, None
        if ld is not None:
            ld.collections.close(snapshot=True)  # final index snapshots
            ld.infer_pool.shutdown(wait=True)
        self._tokenize_pool.shutdown(wait=True)
        if ld is not None:
            with self._write_lock:
                ld.store.close()

    @property
    def ready(self) -> bool:
        """Serving calls: the model and the indexes are loaded and the engine is not
        stopping. The one readiness test (check_ready, /metrics' ragd_ready)."""
        return self._serving is not None and not self._stopping

    def check_ready(self) -> _Serving:
        """The readiness check of every call: UNAVAILABLE until the model and the
        indexes are loaded (health says NOT_SERVING meanwhile), and again once stopping."""
        serving = self._serving
        if serving is None or self._stopping:
            raise Unavailable("ragd is loading (model and indexes) or stopping; retry shortly")
        return serving

    @property
    def batcher(self) -> EmbedBatcher | None:
        """The micro-batcher once serving (its counters feed /metrics)."""
        return self._serving.batcher if self._serving is not None else None

    async def _run(self, fn, *args, **kwargs):
        self.check_ready()
        return await self._run_blocking(fn, *args, **kwargs)

    async def _run_blocking(self, fn, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(self._pool, partial(fn, *args, **kwargs))

    # ------------------------------------------------------------ writes

    async def upsert(self, collection: str, docs: list[Document], *, stream: bool = False,
                     after: asyncio.Future | None = None) -> WriteResult:
        """Validate, chunk and embed, then commit. `after`: a previous write of the
        same stream that must commit first (streams pipeline but apply in order)."""
        t0 = time.perf_counter()
        name = validate.collection_name(collection)
        validate.documents(docs, self.limits)
        serving = self.check_ready()
        if serving.cluster is not None:
            return await self._append_upsert(serving, name, docs, after, t0)
        ingestor = serving.stream_ingestor if stream else serving.ingestor
        timings = Timings()
        t1 = time.perf_counter()
        prepared = await self._run(ingestor.prepare, name, docs)
        timings.embed_ms = _ms(t1)
        if after is not None:
            await after  # raises if the earlier write failed: this one must not commit
        t2 = time.perf_counter()
        acks, seq = await self._run(ingestor.commit, name, prepared)
        timings.store_ms = _ms(t2)
        timings.total_ms = _ms(t0)
        return WriteResult(acks=acks, sequence=seq, timings=timings)

    async def _append_upsert(self, serving: _Serving, name: str, docs: list[Document],
                             after: asyncio.Future | None, t0: float) -> WriteResult:
        """Cluster mode: validate (normalise and chunk: bad input fails this call, naming
        the document), then append to the write log; acks are QUEUED with the chunks
        the chunker made, and the result's sequence is the write's position."""
        assert serving.cluster is not None
        prepared = await self._run(chunk_documents, serving.loaded.chunker, docs)
        if after is not None:
            await after  # stream order is write-log order
        t1 = time.perf_counter()
        seq = await self._run(serving.cluster.writelog.upsert, name, [p.doc for p in prepared])
        acks = [Ack(p.doc.id, AckStatus.QUEUED, p.doc.version, len(p.texts)) for p in prepared]
        return WriteResult(acks=acks, sequence=seq, timings=Timings(store_ms=_ms(t1), total_ms=_ms(t0)))

    async def submit_job(self, collection: str, docs: list[Document]) -> Job:
        """Upsert(wait=false): validate now (nothing is queued on bad input), then enqueue durably."""
        name = validate.collection_name(collection)
        validate.documents(docs, self.limits)
        return await self.check_ready().jobs.submit(name, docs)

    def get_job(self, job_id: str) -> Job:
        validate.job_id(job_id)
        return self.check_ready().jobs.get(job_id)

    def watch_job(self, job_id: str):
        validate.job_id(job_id)
        return self.check_ready().jobs.watch(job_id)

    async def delete(self, collection: str, refs: list[DocumentRef]) -> WriteResult:
        t0 = time.perf_counter()
        name = validate.collection_name(collection)
        validate.refs(refs, self.limits)
        serving = self.check_ready()
        if serving.cluster is not None:
            seq = await self._run(serving.cluster.writelog.delete, name, refs)
            acks = [Ack(r.id, AckStatus.QUEUED, r.version) for r in refs]
            return WriteResult(acks=acks, sequence=seq, timings=Timings(total_ms=_ms(t0)))
        acks, seq = await self._run(serving.ingestor.delete, name, refs)
        return WriteResult(acks=acks, sequence=seq, timings=Timings(total_ms=_ms(t0)))

    # ------------------------------------------------------------ reads

    async def search(self, q: SearchQuery) -> SearchResult:
        t0 = time.perf_counter()
        q.collection = validate.collection_name(q.collection)
        validate.query_text(q.query, self.limits)
        q.top_k = validate.top_k(q.top_k, self.limits)
        validate.min_score(q.min_score)
        validate.search_params(q.nprobe, q.rerank_factor)
        validate.filter_(q.filter)
        if q.min_sequence:
            await self._reach(q.collection, q.min_sequence)
        result = await self._run(self.check_ready().searcher.search, q)
        result.timings.total_ms = _ms(t0)
        return result

    def applied_sequence(self, collection: str) -> int:
        """Writes applied here up to this sequence: the collection's write-log position in
        cluster mode, else the op-log sequence (every acknowledged write is applied)."""
        serving = self.check_ready()
        if serving.cluster is not None:
            return serving.cluster.follower.applied(collection)
        return serving.loaded.store.sequence()

    async def _reach(self, collection: str, seq: int) -> None:
        """Read your writes: wait (cluster.read_wait_s at most) until `seq` is applied here."""
        serving = self.check_ready()
        if serving.cluster is None:
            have = serving.loaded.store.sequence()
            if have < seq:  # an acknowledged write is applied: the sequence is another daemon's
                raise Unavailable(f"min_sequence {seq}: this daemon is at sequence {have}")
            return
        follower = serving.cluster.follower
        if not await self._run(follower.wait, collection, seq, self.cfg.cluster.read_wait_s):
            raise Unavailable(f"min_sequence {seq}: this replica has applied {collection!r} up to "
                              f"{follower.applied(collection)} after {self.cfg.cluster.read_wait_s:g} s; "
                              "retry, or ask another replica")

    async def similar(self, collection: str, doc_id: str, top_k: int, flt: Filter,
                      min_score: float) -> SearchResult:
        t0 = time.perf_counter()
        name = validate.collection_name(collection)
        validate.document_id(doc_id, "document_id", self.limits)
        top_k = validate.top_k(top_k, self.limits)
        validate.min_score(min_score)
        validate.filter_(flt)
        result = await self._run(self.check_ready().searcher.similar, name, doc_id, top_k, flt, min_score)
        result.timings.total_ms = _ms(t0)
        return result

    async def answer(self, q: AnswerQuery, deadline: float | None = None) -> AsyncIterator[AnswerEvent]:
        """Answer events for the question (ragd.answer.pipeline); `deadline`: absolute loop.time() or None.
        Retrieval is self.search, so the filter is validated and applied exactly as for Search."""
        self.check_ready()
        if self.answerer is None:  # built by load(), which precedes serving
            raise Unavailable("ragd is loading (model and indexes); retry shortly")
        q.collection = validate.collection_name(q.collection)
        validate.query_text(q.question, self.limits, field="question")
        self.answerer.validate(q)
        validate.filter_(q.filter)
        async for event in self.answerer.run(q, expand=router.is_complex(q.question), deadline=deadline):
            yield event

    async def embed(self, texts: list[str], is_query: bool = False) -> tuple[EmbedOutput, Timings]:
        """Vectors as ragd stores them (passages) or searches with them (is_query): the
        model's declared prefix is applied either way."""
        t0 = time.perf_counter()
        validate.embed_texts(texts, self.limits)
        out = await self.check_ready().batcher.embed(texts, urgent=True, is_query=is_query)
        return out, Timings(tokenize_ms=out.tokenize_ms, queue_ms=out.queue_ms, embed_ms=out.inference_ms,
                            total_ms=_ms(t0))

    async def snapshot(self, name: str) -> tuple[str, int, int]:
        """A consistent backup of the data dir into server.backup_dir/`name` (a new
        directory; never a caller-chosen path): (path, sequence, bytes)."""
        backup_dir = Path(self.cfg.server.backup_dir) if self.cfg.server.backup_dir else self.cfg.data_path / "backups"
        serving = self.check_ready()
        ld = serving.loaded
        dest = backup_target(backup_dir, name)
        seq, size = await self._run(backup, ld.store, ld.collections, dest)
        if serving.cluster is not None:
            # Registered, so the streams are kept from the backup's positions on: a new
            # replica restored from it catches up from there.
            await self._run(register_snapshot, serving.cluster.writelog.redis, Keys(self.cfg.cluster.prefix),
                            dest.resolve())
        return str(dest.resolve()), seq, size

    # ------------------------------------------------------------ models

    def _runtime(self, embedder, chunker, batcher, loop) -> ModelRuntime:
        return ModelRuntime(embedder, chunker, batcher,
                            query=BlockingEmbedder(batcher, loop, wait=False, urgent=True, is_query=True),
                            unary=BlockingEmbedder(batcher, loop, wait=False),
                            bulk=BlockingEmbedder(batcher, loop, wait=True))

    def _query_for(self, model: str):
        r = self.runtimes.get(model)
        return r.query if r is not None else None

    def _unary_for(self, model: str):
        r = self.runtimes.get(model)
        return (r.unary, r.chunker) if r is not None else None

    def _bulk_for(self, model: str):
        r = self.runtimes.get(model)
        return (r.bulk, r.chunker) if r is not None else None

    async def ensure_runtime(self, name: str) -> ModelRuntime:
        """Load model `name` beside the served one (provisioned offline when it is a model
        family whose package was fetched). Raises InvalidArgument when it cannot be had."""
        ld = self.check_ready().loaded
        assert self._runtime_lock is not None
        async with self._runtime_lock:
            if name in self.runtimes:
                return self.runtimes[name]
            embedder, chunker = await self._run_blocking(self._load_model, name)
            b = self.cfg.batching
            batcher = EmbedBatcher(embedder, ld.infer_pool, tokenize_executor=self._tokenize_pool,
                                   workers=self.inference_workers, max_pad_fraction=self.max_pad_fraction,
                                   max_batch_tokens=self.max_batch_tokens, max_batch_texts=b.max_batch_texts,
                                   max_queue_tokens=b.max_queue_tokens)
            batcher.start()
            runtime = self._runtime(embedder, chunker, batcher, asyncio.get_running_loop())
            self.runtimes[name] = runtime
            log.info("model %s loaded beside %s (%d-d, %s)", name, ld.embedder.name, embedder.dimension,
                     embedder.variant)
            return runtime

    def _load_model(self, name: str):
        from ragd.embed.errors import ModelError
        models = self.layout.models
        model_dir = models / name
        try:
            if not (model_dir / "manifest.json").exists():
                if family(name) is None:
                    raise ModelError(f"{model_dir} is not provisioned and {name!r} is no model family ragd knows")
                model_dir = provision_model(models, name, packages=self.cfg.model.packages_dir or None)
            m = self.cfg.model
            embedder = open_embedder(model_dir, device=m.device, intra_op_threads=m.threads or None,
                                     precision=m.precision, spin_wait=m.spin_wait)
        except ModelError as exc:
            raise InvalidArgument("model", str(exc)) from None
        return embedder, build_chunker(self.cfg, model_dir, embedder.max_tokens)

    async def reindex(self, collection: str, model: str):
        """Start (or report) re-embedding `collection` with `model` in the background."""
        name = validate.collection_name(collection)
        model = validate.model_name(model)
        self.check_ready()
        return await self.reindexer.start(name, model)

    def stats(self, collection: str = "") -> list[CollectionStats]:
        ld = self.check_ready().loaded
        names = [validate.collection_name(collection)] if collection else ld.collections.names()
        seq = ld.store.sequence()
        out = []
        for name in names:
            coll = ld.collections.get(name)
            m = coll.meta
            out.append(CollectionStats(name=name, documents=m.docs, chunks=m.chunks, index_kind=coll.index.kind,
                                       index_vectors=coll.index.ntotal, tombstones=m.tombstones,
                                       sequence=seq, dimension=m.dim, applied_sequence=self.applied_sequence(name)))
        return out

    async def list_documents(self, collection: str, page_size: int, after: str, types: list[str],
                             project_ids: list[int]) -> tuple[list[DocumentInfo], str]:
        """One page of stored documents (tombstones skipped) in id order, and the
        token of the next page ("" after the last)."""
        name = validate.collection_name(collection)
        size = validate.page_size(page_size)
        if after:
            validate.document_id(after, "page_token", self.limits)
        ld = self.check_ready().loaded
        coll = ld.collections.get(name)
        return await self._run(_list_page, ld.store, coll.meta.id, size, after, set(types), set(project_ids))

    def model_info(self) -> ModelInfo:
        if self._loaded is None:
            return ModelInfo(name=self.cfg.model.name)
        e = self._loaded.embedder
        return ModelInfo(name=e.name, dimension=e.dimension, max_tokens=e.max_tokens, provider=e.provider,
                         sha256=e.sha256)

    @property
    def stream_depth(self) -> int:
        """Messages of one IndexStream/SearchStream worked on at once (server.stream_depth)."""
        return self.cfg.server.stream_depth

    @property
    def version(self) -> str:
        return __version__

    def uptime_s(self) -> float:
        return time.time() - self.started

    def sequence(self) -> int:
        """Op-log sequence of the last committed write."""
        return self._loaded.store.sequence() if self._loaded else 0

    def disk_bytes(self) -> int:
        return self._loaded.store.disk_bytes() if self._loaded else 0


def _list_page(store: Store, coll_id: int, size: int, after: str, types: set[str],
               project_ids: set[int]) -> tuple[list[DocumentInfo], str]:
    page: list[DocumentInfo] = []
    last = ""
    for rec in store.iter_docs(coll_id, after):
        if len(page) == size:
            return page, last  # there is at least one more record after `last`
        last = rec.id
        doc = rec.document
        if doc is None or (types and doc.type not in types) or (project_ids and doc.project_id not in project_ids):
            continue
        page.append(DocumentInfo(id=rec.id, type=doc.type, project_id=doc.project_id, version=rec.version,
                                 updated_at_us=doc.updated_at_us, chunks=len(rec.chunk_ids)))
    return page, ""
