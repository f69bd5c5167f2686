"""Asynchronous ingestion: Upsert(wait=false) enqueues a durable job; a worker
chunks, embeds and indexes its documents in batches and reports progress.

- A batch's documents and the job's progress commit in one LMDB transaction,
  so a job killed at any point resumes after its last durable batch and every
  document is applied exactly once.
- When a batch fails, its documents are retried one at a time; a document that
  fails `max_attempts` times (with exponential backoff between tries, the
  attempt count itself durable) is marked failed with the reason, and the job
  goes on with the rest.
- Jobs run oldest first; their embedding shares the micro-batcher with live
  traffic, waiting for room rather than failing when the queue is full.
- A finished job's record is kept `retention_s` seconds (GetJob answers with its
  outcome), then pruned: at start, after each job, and every retention_s / 4
  (at most hourly) while idle.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging

from ragd.domain import Document, Job
from ragd.engine.ingest import Ingestor
from ragd.engine.tasks import cancel_and_wait
from ragd.errors import NotFound
from ragd.store.jobs import JobStore
from ragd.store.lmdb_store import WriteTxn

log = logging.getLogger("ragd.jobs")


class JobRunner:
    def __init__(self, jobs: JobStore, ingestor: Ingestor, run, *, batch_size: int = 32,
                 max_attempts: int = 3, backoff_s: float = 0.5, retention_s: float = 7 * 86400.0):
        self.jobs = jobs
        self.ingestor = ingestor
        self._run = run  # engine's "run this blocking function on the request pool"
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.retention_s = retention_s  # 0: keep finished jobs forever
        self._wakeup = asyncio.Event()
        self._changed = asyncio.Condition()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="ragd-jobs")
        self._wakeup.set()  # resume jobs left unfinished by the last run

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def submit(self, collection: str, docs: list[Document]) -> Job:
        job = await self._run(self.jobs.create, collection, docs)
        self._wakeup.set()
        return job

    def get(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"job_id: no job {job_id!r} (finished jobs are kept jobs.retention_s seconds)")
        return job

    async def watch(self, job_id: str):
        """Yields the job now and after every change, until it is finished."""
        last = None
        while True:
            job = self.get(job_id)
            if job.updated != last:
                last = job.updated
                yield job
            if job.state.finished:
                return
            async with self._changed:
                try:
                    await asyncio.wait_for(self._changed.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _loop(self) -> None:
        while True:
            await self._prune()
            try:
                await asyncio.wait_for(self._wakeup.wait(), self._prune_every_s())
            except asyncio.TimeoutError:
                continue
            self._wakeup.clear()
            for job in await self._run(self.jobs.unfinished):
                try:
                    await self._run_job(job)
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - a bug must not stop every later job
                    log.exception("job %s stopped by an internal error; it resumes on restart", job.id)

    def _prune_every_s(self) -> float | None:
        return min(max(self.retention_s / 4, 1.0), 3600.0) if self.retention_s > 0 else None

    async def _prune(self) -> None:
        if self.retention_s <= 0:
            return
        try:
            pruned = await self._run(self.jobs.prune, self.retention_s)
        except Exception:  # noqa: BLE001 - pruning is housekeeping: retried on the next round
            log.exception("pruning finished jobs failed")
            return
        if pruned:
            log.info("pruned %d jobs finished more than %.0f s ago", pruned, self.retention_s)

    @staticmethod
    def _refresh(job: Job, latest: Job | None) -> None:
        """Adopt the progress last committed (after a failed attempt)."""
        if latest is not None:
            for f in dataclasses.fields(Job):
                setattr(job, f.name, getattr(latest, f.name))

    async def _run_job(self, job: Job) -> None:
        # After a failed batch its range is processed one document at a time; a
        # job resumed with a pending attempt count starts with that document.
        solo_until = job.processed + (1 if job.attempts else 0)
        while not job.state.finished:
            if job.processed >= solo_until:
                docs = await self._run(self.jobs.docs_from, job, self.batch_size)
                try:
                    await self._apply(job, docs)
                    continue
                except Exception as exc:  # noqa: BLE001 - narrowed down document by document
                    log.warning("job %s: batch at %d failed (%s); retrying its documents one by one",
                                job.id, job.processed, exc)
                    self._refresh(job, self.jobs.get(job.id))
                    solo_until = job.processed + len(docs)
            doc = (await self._run(self.jobs.docs_from, job, 1))[0]
            await self._apply_one_with_retries(job, doc)
        await self._prune()

    async def _apply(self, job: Job, docs: list[Document]) -> None:
        prepared = await self._run(self.ingestor.prepare, job.collection, docs)

        def progress(w: WriteTxn, acks) -> None:
            self.jobs.advance(w, job, len(docs), len(acks))
        await self._run(self.ingestor.commit, job.collection, prepared, progress)
        await self._notify()

    async def _apply_one_with_retries(self, job: Job, doc: Document) -> None:
        try:
            await self._apply(job, [doc])
            return
        except Exception as exc:  # noqa: BLE001 - counted, retried, then reported in the job
            self._refresh(job, self.jobs.get(job.id))
            job.attempts += 1
            if job.attempts >= self.max_attempts:
                log.warning("job %s: document %r failed %d times, giving up: %s",
                            job.id, doc.id, job.attempts, exc)
                await self._run(self.jobs.fail_next, job, doc.id, str(exc))
                await self._notify()
                return
            await self._run(self.jobs.save, job)
            await self._notify()
        await asyncio.sleep(self.backoff_s * 2 ** (job.attempts - 1))
