"""The engine facade the API layer talks to: lifecycle (open the store, load the
model, rebuild indexes) and async entry points that run the CPU-bound work
(tokenising, ONNX inference, FAISS, fsync) on a thread pool, so the event loop
stays free to accept calls. ONNX Runtime, FAISS and LMDB release the GIL.
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from tokenizers import Tokenizer

from ragd import __version__
from ragd.config import Config
from ragd.domain import CollectionStats, Document, DocumentRef, Filter, SearchQuery, SearchResult, Timings, WriteResult
from ragd.embed.onnx_embedder import OnnxEmbedder, cuda_requested
from ragd.embed.provision import provision_model
from ragd.engine import validate
from ragd.engine.batcher import BlockingEmbedder, EmbedBatcher
from ragd.engine.cache import SearchCache
from ragd.engine.chunking import Chunker
from ragd.engine.collection import Collection, backup, get_collection, set_index_context
from ragd.engine.ingest import Ingestor
from ragd.engine.jobs import JobRunner
from ragd.engine.search import Searcher, SearchSettings
from ragd.errors import Unavailable
from ragd.index import keyword as keyword_index
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
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    return Chunker(mode=c.mode, chunk_size=size, chunk_overlap=overlap, tokenizer=tokenizer, max_tokens=max_tokens)


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


class Engine:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.limits = cfg.limits
        self.ready = False
        self.started = time.time()
        self.store: Store | None = None
        self.embedder: OnnxEmbedder | None = None
        self.collections: dict[str, Collection] = {}
        self._write_lock = threading.Lock()
        # Request work (chunking, LMDB, FAISS) and model work have separate pools:
        # request threads block on the batcher, which needs an inference thread.
        self._pool = ThreadPoolExecutor(max_workers=max(8, (os.cpu_count() or 2) * 4),
                                        thread_name_prefix="ragd-engine")
        # Tokenising a query must not wait behind an inference: its own small pool.
        self._tokenize_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ragd-tokenize")
        self._infer_pool: ThreadPoolExecutor | None = None  # sized in load(), one thread per inference worker
        self.inference_workers = 1
        self.max_pad_fraction = 1.0
        self.max_batch_tokens = 8192
        self.batcher: EmbedBatcher | None = None
        self.jobs: JobRunner | None = None

    # ------------------------------------------------------------ lifecycle

    def load(self) -> None:
        """Blocking: provision/load the model, open LMDB, rebuild every collection's index."""
        t0 = time.perf_counter()
        data = self.cfg.data_path
        model_dir = data / "models" / self.cfg.model.name
        if not (model_dir / "manifest.json").exists():
            log.info("model %s not provisioned under %s; provisioning it (offline)", self.cfg.model.name, model_dir)
            model_dir = provision_model(data / "models", self.cfg.model.source or None)
        cuda = cuda_requested(self.cfg.model.device)
        self.inference_workers, threads = inference_plan(self.cfg, cuda, os.cpu_count() or 1)
        pad = self.cfg.batching.max_pad_fraction
        self.max_pad_fraction = pad if pad >= 0 else (0.5 if cuda else 0.1)
        self.max_batch_tokens = batch_token_cap(self.cfg, cuda)
        self._infer_pool = ThreadPoolExecutor(max_workers=self.inference_workers, thread_name_prefix="ragd-infer")
        self.embedder = OnnxEmbedder(model_dir, device=self.cfg.model.device, intra_op_threads=threads)
        log.info("model %s loaded (%d-d, provider %s, %d inference workers x %s intra-op threads)",
                 self.embedder.name, self.embedder.dimension, self.embedder.provider, self.inference_workers,
                 threads or "auto")
        self.chunker = build_chunker(self.cfg, model_dir, self.embedder.max_tokens)
        # Warm the session: the first run allocates ONNX Runtime's buffers.
        self.embedder.embed(["warm up"])
        self.store = Store(data / "store", int(self.cfg.store.map_size_gb * (1 << 30)))
        set_index_context(self.store, index_context_from(self.cfg, data / "index", self._write_lock))
        keyword_index.bind(self.store, data / "keyword")  # BM25 indexes, derived from LMDB like FAISS
        for name, meta in self.store.collections().items():
            if meta.dim != self.embedder.dimension:
                raise RuntimeError(f"collection {name!r} holds {meta.dim}-d vectors of model {meta.model!r}, "
                                   f"but model {self.embedder.name!r} is {self.embedder.dimension}-d; "
                                   "start with that model or use a new data dir")
            t1 = time.perf_counter()
            self.collections[name] = Collection.load(self.store, meta)
            log.info("collection %s: %d documents, %d chunks, indexes ready in %.0f ms",
                     name, meta.docs, meta.chunks, _ms(t1))
        log.info("engine loaded in %.1f s", _ms(t0) / 1000)

    async def start(self) -> None:
        """After load(), on the event loop: start the micro-batcher and accept calls."""
        b = self.cfg.batching
        self.batcher = EmbedBatcher(self.embedder, self._infer_pool, tokenize_executor=self._tokenize_pool,
                                    workers=self.inference_workers, max_pad_fraction=self.max_pad_fraction,
                                    max_batch_tokens=self.max_batch_tokens,
                                    max_batch_texts=b.max_batch_texts, max_queue_tokens=b.max_queue_tokens)
        self.batcher.start()
        loop = asyncio.get_running_loop()
        # Unary calls fail fast with RESOURCE_EXHAUSTED when the queue is full;
        # streams and jobs wait for room, which slows their producers down.
        self.ingestor = Ingestor(self.store, BlockingEmbedder(self.batcher, loop, wait=False), self.chunker,
                                 self.collections, self._write_lock, self.embedder.name)
        self.stream_ingestor = Ingestor(self.store, BlockingEmbedder(self.batcher, loop, wait=True), self.chunker,
                                        self.collections, self._write_lock, self.embedder.name)
        c, sc = self.cfg.cache, self.cfg.search
        self.cache = SearchCache(enabled=c.enabled, max_pages=c.max_pages, max_embeddings=c.max_embeddings,
                                 ttl_s=c.ttl_s, model=f"{self.embedder.name}:{self.embedder.sha256}",
                                 redis_url=c.redis_url, redis_prefix=c.redis_prefix,
                                 redis_timeout_s=c.redis_timeout_s)
        self.searcher = Searcher(self.store, BlockingEmbedder(self.batcher, loop, wait=False, urgent=True),
                                 self.collections,
                                 SearchSettings(fusion=sc.fusion, rrf_k=sc.rrf_k,
                                                hybrid_candidates=sc.hybrid_candidates,
                                                vector_weight=sc.vector_weight, keyword_weight=sc.keyword_weight,
                                                auto_max_words=sc.auto_max_words, highlights=sc.highlights),
                                 self.cache)
        j = self.cfg.jobs
        self.jobs = JobRunner(JobStore(self.store), self.stream_ingestor, self._run_blocking,
                              batch_size=j.batch_size, max_attempts=j.max_attempts, backoff_s=j.retry_backoff_s)
        self.ready = True
        self.jobs.start()

    async def stop(self) -> None:
        self.ready = False
        if self.jobs is not None:
            await self.jobs.stop()  # the batch in flight commits atomically or not at all
        if self.batcher is not None:
            await self.batcher.stop()

    def close(self) -> None:
        self.ready = False
        self._pool.shutdown(wait=True)
        for coll in list(self.collections.values()):
            coll.close(snapshot=self.store is not None)  # final index snapshot
        if self._infer_pool is not None:
            self._infer_pool.shutdown(wait=True)
        self._tokenize_pool.shutdown(wait=True)
        with self._write_lock:
            if self.store is not None:
                self.store.close()
                self.store = None

    async def _run(self, fn, *args, **kwargs):
        if not self.ready:
            raise Unavailable("ragd is loading (model and indexes); retry shortly")
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
        ingestor = self.stream_ingestor if stream else self.ingestor
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

    async def submit_job(self, collection: str, docs: list[Document]) -> dict:
        """Upsert(wait=false): validate now (nothing is queued on bad input), then enqueue durably."""
        name = validate.collection_name(collection)
        validate.documents(docs, self.limits)
        if not self.ready:
            raise Unavailable("ragd is loading; retry shortly")
        return await self.jobs.submit(name, docs)

    def get_job(self, job_id: str) -> dict:
        validate.job_id(job_id)
        if not self.ready:
            raise Unavailable("ragd is loading; retry shortly")
        return self.jobs.get(job_id)

    def watch_job(self, job_id: str):
        validate.job_id(job_id)
        if not self.ready:
            raise Unavailable("ragd is loading; retry shortly")
        return self.jobs.watch(job_id)

    async def delete(self, collection: str, refs: list[DocumentRef]) -> WriteResult:
        t0 = time.perf_counter()
        name = validate.collection_name(collection)
        validate.refs(refs, self.limits)
        acks, seq = await self._run(self.ingestor.delete, name, refs)
        return WriteResult(acks=acks, sequence=seq, timings=Timings(total_ms=_ms(t0)))

    # ------------------------------------------------------------ reads

    async def search(self, q: SearchQuery) -> SearchResult:
        t0 = time.perf_counter()
        q.collection = validate.collection_name(q.collection)
        validate.query_text(q.query, self.limits)
        q.top_k = validate.top_k(q.top_k, self.limits)
        validate.min_score(q.min_score)
        validate.filter_(q.filter)
        result = await self._run(self.searcher.search, q)
        result.timings.total_ms = _ms(t0)
        return result

    async def similar(self, collection: str, doc_id: str, top_k: int, flt: Filter,
                      min_score: float) -> SearchResult:
        t0 = time.perf_counter()
        name = validate.collection_name(collection)
        validate.document_id(doc_id, "document_id", self.limits)
        top_k = validate.top_k(top_k, self.limits)
        validate.min_score(min_score)
        validate.filter_(flt)
        result = await self._run(self.searcher.similar, name, doc_id, top_k, flt, min_score)
        result.timings.total_ms = _ms(t0)
        return result

    async def embed(self, texts: list[str]):
        t0 = time.perf_counter()
        validate.embed_texts(texts, self.limits)
        if not self.ready:
            raise Unavailable("ragd is loading (model and indexes); retry shortly")
        out = await self.batcher.embed(texts, urgent=True)
        return out, Timings(tokenize_ms=out.tokenize_ms, queue_ms=out.queue_ms, embed_ms=out.inference_ms,
                            total_ms=_ms(t0))

    async def snapshot(self, name: str) -> tuple[str, int, int]:
        """A consistent backup of the data dir into server.backup_dir/`name` (a new
        directory; never a caller-chosen path): (path, sequence, bytes)."""
        backup_dir = Path(self.cfg.server.backup_dir) if self.cfg.server.backup_dir else self.cfg.data_path / "backups"
        dest = backup_target(backup_dir, name)
        seq, size = await self._run(backup, self.store, self.collections, dest)
        return str(dest.resolve()), seq, size

    def stats(self, collection: str = "") -> list[CollectionStats]:
        if not self.ready:
            raise Unavailable("ragd is loading; retry shortly")
        names = [validate.collection_name(collection)] if collection else sorted(self.collections)
        seq = self.store.sequence()
        out = []
        for name in names:
            coll = get_collection(self.collections, name)
            m = coll.meta
            out.append(CollectionStats(name=name, documents=m.docs, chunks=m.chunks, index_kind=coll.index.kind,
                                       index_vectors=coll.index.ntotal, tombstones=m.tombstones,
                                       sequence=seq, dimension=m.dim))
        return out

    def model_info(self) -> dict:
        e = self.embedder
        if e is None:
            return {"name": self.cfg.model.name}
        return {"name": e.name, "dimension": e.dimension, "max_tokens": e.max_tokens,
                "provider": e.provider, "sha256": e.sha256}

    @property
    def version(self) -> str:
        return __version__

    def uptime_s(self) -> float:
        return time.time() - self.started

    def disk_bytes(self) -> int:
        return self.store.disk_bytes() if self.store else 0

