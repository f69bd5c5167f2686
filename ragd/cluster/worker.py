"""`ragd worker`: a stateless embedding worker of the cluster.

It reads the write logs as a member of the consumer group "workers" (so each entry
goes to one worker), chunks and embeds each write once, and in one Redis
transaction (MULTI/EXEC) appends the result to the collection's embedded stream and
acknowledges the entry (XACK). A worker killed mid-batch leaves its entries pending
in the group; once they have been idle for cluster.claim_idle_s another worker
claims them (XAUTOCLAIM) and does them again. Nothing lives in a worker but the
model: scale by running more of them, on CPU or GPU.

A write whose documents cannot be chunked (the front validated them, so this
means the worker runs another version) is handed on as FAILED, so its position is
accounted for and replicas move past it. Any other failure (the model, Redis)
leaves the batch pending: it is retried once claim_idle_s has passed.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass

from ragd.cluster import streams
from ragd.cluster.streams import DELETE, FAILED, GROUP, UPSERT, EmbeddedDoc, EmbeddedEntry, Keys, WriteEntry
from ragd.config import Config
from ragd.engine.ingest import chunk_documents, embed_prepared

log = logging.getLogger("ragd.worker")

# Documents embedded per call: small writes (one issue each, as Redmine's hooks send them) are
# grouped; a big one is a call of its own. Each call's entries are handed on and acknowledged
# before the next, so a loaded machine never holds entries longer than one call.
EMBED_DOCS = 64


def _parts(entries: list[WriteEntry], max_docs: int) -> list[list[WriteEntry]]:
    """Consecutive entries in groups of at most max_docs documents (an entry is never split)."""
    parts: list[list[WriteEntry]] = []
    docs = 0
    for e in entries:
        n = max(1, len(e.docs))
        if parts and docs + n <= max_docs:
            parts[-1].append(e)
            docs += n
        else:
            parts.append([e])
            docs = n
    return parts


@dataclass
class WorkerStats:
    entries: int = 0
    documents: int = 0
    chunks: int = 0
    claimed: int = 0
    failed: int = 0
    embed_s: float = 0.0


class Worker:
    def __init__(self, cfg: Config, embedder, chunker, model_id: str, name: str = ""):
        c = cfg.cluster
        self.cfg = c
        self.keys = Keys(c.prefix)
        self.embedder = embedder
        self.chunker = chunker
        self.model_id = model_id
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.redis = streams.connect(c.redis_url, c.redis_timeout_s)
        self.stats = WorkerStats()
        self.stop = threading.Event()
        self._grouped: set[str] = set()

    def process(self, c: str, entries: list[WriteEntry]) -> list[EmbeddedEntry]:
        """Chunk and embed a batch of one collection's writes (their chunks in one embedding call)."""
        out: list[EmbeddedEntry] = []
        upserts: list[tuple[WriteEntry, list]] = []
        for w in entries:
            if w.op == DELETE:
                out.append(EmbeddedEntry(w.seq, w.stream_id, DELETE, refs=w.refs))
                continue
            try:
                upserts.append((w, chunk_documents(self.chunker, w.docs)))
            except Exception as exc:  # noqa: BLE001 - validated by the front: reported, never retried forever
                out.append(self._failed(w, exc))
        prepared = [p for _, ps in upserts for p in ps]
        t0 = time.perf_counter()
        embed_prepared(self.embedder, prepared)
        self.stats.embed_s += time.perf_counter() - t0
        for w, ps in upserts:
            docs = [EmbeddedDoc(p.doc, p.spans, p.texts, p.vectors, p.truncated) for p in ps]
            out.append(EmbeddedEntry(w.seq, w.stream_id, UPSERT, model=self.model_id, docs=docs))
            self.stats.documents += len(ps)
            self.stats.chunks += sum(len(p.texts) for p in ps)
        out.sort(key=lambda e: streams.id_tuple(e.write_id))  # hand them on in write-log order
        return out

    def _failed(self, w: WriteEntry, exc: Exception) -> EmbeddedEntry:
        self.stats.failed += 1
        log.error("write %d (%s) failed: %s", w.seq, w.stream_id, exc)
        return EmbeddedEntry(w.seq, w.stream_id, FAILED, error=str(exc))

    def hand_on(self, c: str, results: list[EmbeddedEntry]) -> None:
        """Append the results and acknowledge their write-log entries, atomically."""
        pipe = self.redis.pipeline(transaction=True)
        for e in results:
            pipe.xadd(self.keys.elog(c), streams.encode_embedded(e))
        pipe.xack(self.keys.wlog(c), GROUP, *[e.write_id for e in results])
        pipe.execute()
        self.stats.entries += len(results)

    def read_new(self, names: list[str], batches: dict[str, list[WriteEntry]]) -> None:
        """Take new entries one at a time while this worker holds fewer than cluster.worker_batch
        entries and fewer than half an embedding call's documents: one-document writes (Redmine's
        hooks) are gathered into one call, and a bulk write (a reindex's 50-1000 documents) is
        taken alone, leaving the entries behind it to other workers instead of holding them."""
        prefix = len(self.keys.wlog(""))
        wanted = {self.keys.wlog(c): ">" for c in names}
        taken = docs = 0
        block: int | None = 500  # the first read waits for work; the next ones only take what is there
        while taken < self.cfg.worker_batch and docs < EMBED_DOCS // 2:
            reply = self.redis.xreadgroup(GROUP, self.name, wanted, count=1, block=block)
            if not reply:
                return
            for stream, entries in reply:
                c = streams.as_str(stream)[prefix:]
                for sid, f in entries:
                    w = streams.decode_write(sid, f)
                    batches.setdefault(c, []).append(w)
                    taken += 1
                    docs += max(1, len(w.docs))
            block = None

    def step(self) -> int:
        """One round: claim entries idle too long in a dead worker's hands, else read new
        ones; process and hand them on. Returns entries handled."""
        r = self.redis
        names = streams.collections(r, self.keys)
        for c in names:
            if c not in self._grouped:
                streams.ensure_group(r, self.keys, c)
                self._grouped.add(c)
        batches: dict[str, list[WriteEntry]] = {}
        idle_ms = int(self.cfg.claim_idle_s * 1000)
        for c in names:
            _next, claimed, deleted = r.xautoclaim(self.keys.wlog(c), GROUP, self.name, idle_ms, "0-0",
                                                   count=self.cfg.worker_batch)[:3]
            if deleted:  # trimmed away while pending: nothing left to do for them
                r.xack(self.keys.wlog(c), GROUP, *deleted)
            if claimed:
                self.stats.claimed += len(claimed)
                log.info("claimed %d write-log entries of %s idle for %.0f s in another worker's hands",
                         len(claimed), c, self.cfg.claim_idle_s)
                batches[c] = [streams.decode_write(sid, f) for sid, f in claimed]
        if not batches and names:
            self.read_new(names, batches)
        elif not names:
            self.stop.wait(0.5)
        n = 0
        for c, entries in batches.items():
            parts = _parts(entries, EMBED_DOCS)
            for i, part in enumerate(parts):
                if self.stop.is_set():
                    return n  # unacknowledged: claimed by another worker (or this one, restarted)
                if i:
                    # Still ours: reset the idle time of the entries not done yet, so no other
                    # worker claims them while this one works through the batch.
                    rest = [e.stream_id for p in parts[i:] for e in p]
                    r.xclaim(self.keys.wlog(c), GROUP, self.name, 0, rest, justid=True)
                self.hand_on(c, self.process(c, part))
                n += len(part)
        return n

    def run(self) -> int:
        log.info("worker %s: embedding for the cluster at %s (group %s)", self.name, self.cfg.redis_url, GROUP)
        backoff, connected = 0.1, True
        while not self.stop.is_set():
            try:
                self.step()
                if not connected:
                    log.info("worker %s: Redis reachable again", self.name)
                backoff, connected = 0.1, True
            except streams.redis_errors() as exc:
                if connected:
                    log.warning("worker %s: Redis unreachable (%s); retrying", self.name, exc)
                connected = False
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)
            except Exception:  # noqa: BLE001 - the batch stays pending and is claimed again later
                log.exception("worker %s: a batch failed; it is retried after cluster.claim_idle_s", self.name)
                self.stop.wait(1.0)
        log.info("worker %s stopped: %d entries (%d documents, %d chunks), %d claimed from others, %d failed",
                 self.name, self.stats.entries, self.stats.documents, self.stats.chunks, self.stats.claimed,
                 self.stats.failed)
        self.redis.close()
        return 0


def run_worker(cfg: Config) -> int:
    """Load the model (provisioning it under DATA_DIR/models when missing) and work until SIGTERM/SIGINT."""
    from ragd.embed.onnx_embedder import OnnxEmbedder
    from ragd.embed.provision import provision_model
    from ragd.engine.datadir import DataDir
    from ragd.engine.engine import build_chunker
    if not cfg.cluster.redis_url:
        log.error("ragd worker needs cluster.redis_url (RAGD_CLUSTER_REDIS_URL)")
        return 2
    models = DataDir(cfg.data_path).models
    model_dir = models / cfg.model.name
    if not (model_dir / "manifest.json").exists():
        model_dir = provision_model(models, cfg.model.source or None)
    embedder = OnnxEmbedder(model_dir, device=cfg.model.device, intra_op_threads=cfg.model.threads or None)
    chunker = build_chunker(cfg, model_dir, embedder.max_tokens)
    embedder.embed(["warm up"])
    worker = Worker(cfg, embedder, chunker, f"{embedder.name}:{embedder.sha256}")
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stop.set())
    return worker.run()
