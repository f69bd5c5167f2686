"""Durable job queue for asynchronous ingestion, in the store's LMDB environment.

  jobs      job id (utf-8) -> msgpack job record
  job_docs  job id + u32 position -> msgpack document record (deleted once processed)

A job's documents and its record are written in one synced transaction before
the client gets the job id. Progress (`next`, counts) is written in the same
transaction as the documents it covers (see JobStore.advance), so after a crash
a job resumes exactly where its last durable batch ended: each document is
applied once.
"""
from __future__ import annotations

import struct
import time
import uuid

import lmdb
import msgpack

from ragd.store.lmdb_store import Store

_U32 = struct.Struct(">I")

QUEUED, RUNNING, SUCCEEDED, PARTIAL, FAILED = "queued", "running", "succeeded", "partial", "failed"
FINISHED = (SUCCEEDED, PARTIAL, FAILED)
# Stop recording per-document errors past this many (the counts stay exact).
MAX_ERRORS = 100


def _pack(obj) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def _unpack(data) -> dict:
    return msgpack.unpackb(bytes(data), raw=False, strict_map_key=False)


def _doc_key(job_id: str, pos: int) -> bytes:
    return job_id.encode() + b"\x00" + _U32.pack(pos)


class JobStore:
    def __init__(self, store: Store):
        self.env = store.env
        self.jobs = store.db("jobs")
        self.docs = store.db("job_docs")

    def create(self, collection: str, docs: list[dict]) -> dict:
        now = time.time()
        job = {"id": uuid.uuid4().hex, "collection": collection, "state": QUEUED, "total": len(docs),
               "done": 0, "failed": 0, "next": 0, "attempts": 0, "errors": [], "created": now, "updated": now}
        with self.env.begin(write=True) as txn:
            for pos, doc in enumerate(docs):
                txn.put(_doc_key(job["id"], pos), _pack(doc), db=self.docs)
            txn.put(job["id"].encode(), _pack(job), db=self.jobs)
        return job

    def get(self, job_id: str) -> dict | None:
        with self.env.begin() as txn:
            raw = txn.get(job_id.encode(), db=self.jobs)
            return _unpack(raw) if raw else None

    def unfinished(self) -> list[dict]:
        """Jobs to run, oldest first."""
        with self.env.begin() as txn:
            jobs = [_unpack(v) for _, v in txn.cursor(db=self.jobs)]
        return sorted((j for j in jobs if j["state"] not in FINISHED), key=lambda j: j["created"])

    def docs_from(self, job: dict, count: int) -> list[dict]:
        """The next `count` unprocessed documents of the job, in order."""
        with self.env.begin() as txn:
            out = []
            for pos in range(job["next"], min(job["next"] + count, job["total"])):
                out.append(_unpack(txn.get(_doc_key(job["id"], pos), db=self.docs)))
            return out

    def advance(self, txn: lmdb.Transaction, job: dict, processed: int, done: int,
                errors: list[dict] = ()) -> None:
        """Record progress inside the caller's transaction (the one that wrote the documents)."""
        for pos in range(job["next"], job["next"] + processed):
            txn.delete(_doc_key(job["id"], pos), db=self.docs)
        job["next"] += processed
        job["done"] += done
        job["failed"] += len(errors)
        job["attempts"] = 0
        room = MAX_ERRORS - len(job["errors"])
        job["errors"].extend(list(errors)[:max(room, 0)])
        if job["next"] >= job["total"]:
            job["state"] = (SUCCEEDED if job["failed"] == 0 else FAILED if job["done"] == 0 else PARTIAL)
        else:
            job["state"] = RUNNING
        job["updated"] = time.time()
        txn.put(job["id"].encode(), _pack(job), db=self.jobs)

    def save(self, job: dict) -> None:
        """Persist fields that change without documents (attempt counter, state)."""
        job["updated"] = time.time()
        with self.env.begin(write=True) as txn:
            txn.put(job["id"].encode(), _pack(job), db=self.jobs)

    def fail_next(self, job: dict, doc_id: str, error: str) -> None:
        """Give up on the job's next document: mark it failed and move on."""
        with self.env.begin(write=True) as txn:
            self.advance(txn, job, 1, 0, [{"document_id": doc_id, "error": error, "attempts": job["attempts"]}])

