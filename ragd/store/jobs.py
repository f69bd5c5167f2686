"""Durable job queue for asynchronous ingestion, in the store's LMDB environment.

  jobs      job id (utf-8) -> job record (ragd.store.records.encode_job)
  job_docs  job id + u32 position -> queued document (deleted once processed)

A job's documents and its record are written in one synced transaction before
the client gets the job id. Progress (`processed`, counts) is written in the
same transaction as the documents it covers (see JobStore.advance), so after a
crash a job resumes exactly where its last durable batch ended: each document
is applied once. Finished jobs are kept for a while, so clients can read their
outcome, and then pruned (JobStore.prune).
"""
from __future__ import annotations

import struct
import time
import uuid
from collections.abc import Callable, Sequence

from ragd.domain import Document, Job, JobError, JobState
from ragd.store.lmdb_store import Store, WriteTxn
from ragd.store.records import decode_job, decode_job_doc, encode_job, encode_job_doc

_U32 = struct.Struct(">I")

# Stop recording per-document errors past this many (the counts stay exact).
MAX_ERRORS = 100


def _doc_key(job_id: str, pos: int) -> bytes:
    return job_id.encode() + b"\x00" + _U32.pack(pos)


class JobStore:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time):
        self.env = store.env
        self.jobs = store.db("jobs")
        self.docs = store.db("job_docs")
        self.clock = clock  # wall clock: job times are shown to people and compared across restarts

    def create(self, collection: str, docs: Sequence[Document]) -> Job:
        now = self.clock()
        job = Job(id=uuid.uuid4().hex, collection=collection, state=JobState.QUEUED, total=len(docs),
                  created=now, updated=now)
        with self.env.begin(write=True) as txn:
            for pos, doc in enumerate(docs):
                txn.put(_doc_key(job.id, pos), encode_job_doc(doc), db=self.docs)
            txn.put(job.id.encode(), encode_job(job), db=self.jobs)
        return job

    def get(self, job_id: str) -> Job | None:
        with self.env.begin() as txn:
            raw = txn.get(job_id.encode(), db=self.jobs)
            return decode_job(raw) if raw else None

    def unfinished(self) -> list[Job]:
        """Jobs to run, oldest first."""
        with self.env.begin() as txn:
            jobs = [decode_job(v) for _, v in txn.cursor(db=self.jobs)]
        return sorted((j for j in jobs if not j.state.finished), key=lambda j: j.created)

    def docs_from(self, job: Job, count: int) -> list[Document]:
        """The next `count` unprocessed documents of the job, in order."""
        out = []
        with self.env.begin() as txn:
            for pos in range(job.processed, min(job.processed + count, job.total)):
                raw = txn.get(_doc_key(job.id, pos), db=self.docs)
                if raw is None:  # deleted only with the progress that covers it: a bug if missing
                    raise KeyError(f"job {job.id}: queued document {pos} is missing")
                out.append(decode_job_doc(raw))
        return out

    def advance(self, w: WriteTxn, job: Job, processed: int, done: int, errors: Sequence[JobError] = ()) -> None:
        """Record progress inside the caller's write (the one that wrote the documents)."""
        self._advance(w.txn, job, processed, done, errors)

    def _advance(self, txn, job: Job, processed: int, done: int, errors: Sequence[JobError]) -> None:
        for pos in range(job.processed, job.processed + processed):
            txn.delete(_doc_key(job.id, pos), db=self.docs)
        job.processed += processed
        job.done += done
        job.failed += len(errors)
        job.attempts = 0
        room = MAX_ERRORS - len(job.errors)
        job.errors.extend(list(errors)[:max(room, 0)])
        if job.processed >= job.total:
            job.state = (JobState.SUCCEEDED if job.failed == 0 else JobState.FAILED if job.done == 0
                         else JobState.PARTIAL)
        else:
            job.state = JobState.RUNNING
        job.updated = self.clock()
        txn.put(job.id.encode(), encode_job(job), db=self.jobs)

    def save(self, job: Job) -> None:
        """Persist fields that change without documents (attempt counter, state)."""
        job.updated = self.clock()
        with self.env.begin(write=True) as txn:
            txn.put(job.id.encode(), encode_job(job), db=self.jobs)

    def fail_next(self, job: Job, doc_id: str, error: str) -> None:
        """Give up on the job's next document: mark it failed and move on."""
        with self.env.begin(write=True) as txn:
            self._advance(txn, job, 1, 0, [JobError(doc_id, error, job.attempts)])

    def prune(self, retention_s: float) -> int:
        """Delete jobs finished more than `retention_s` seconds ago; returns how many.
        (A finished job has no queued documents left: each was deleted as it was processed.)"""
        cutoff = self.clock() - retention_s
        with self.env.begin(write=True) as txn:
            old = [k for k, v in txn.cursor(db=self.jobs)
                   if (job := decode_job(v)).state.finished and job.updated < cutoff]
            for key in old:
                txn.delete(key, db=self.jobs)
        return len(old)
