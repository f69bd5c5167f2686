"""Asynchronous ingestion jobs against real daemons: durable, resumable, exactly once."""
from __future__ import annotations

import random
import time

import cisi
import pytest

from ragd import _native
from ragd.engine.chunking import Chunker
from ragd_client import InvalidArgument, NotFound, RagClient


def wait_finished(client: RagClient, job_id: str, timeout: float = 300):
    last = None
    for job in client.watch_job(job_id, timeout=timeout):
        last = job
    assert last is not None and last.finished, last
    return last


def expected_chunks(docs) -> int:
    chunker = Chunker()
    return sum(len(chunker.chunk(_native.normalize_text(d["text"].encode()))) for d in docs)


def test_job_killed_mid_run_resumes_and_applies_every_document_once(daemon):
    d = daemon(env={"RAGD_JOBS_BATCH_SIZE": "16"})
    docs = cisi.documents()[:400]
    with RagClient(d.address, timeout=60) as c:
        result = c.upsert(docs, wait=False)
        assert result.job_id and {a.status for a in result.acks} == {"queued"}
        deadline = time.monotonic() + 300
        while c.get_job(result.job_id).done < 48:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    d.kill()  # SIGKILL, mid-job
    d.start()
    with RagClient(d.address, timeout=60) as c:
        job = wait_finished(c, result.job_id)
        assert (job.state, job.total, job.done, job.failed) == ("succeeded", 400, 400, 0)
        stats = c.stats().collections[0]
        # Exactly once: no document's chunks were added twice.
        assert stats.documents == 400
        assert stats.chunks == stats.index_vectors == expected_chunks(docs)
        assert c.search(docs[123]["title"], top_k=1, filter={"all_private": True}).hits


def test_poisoned_document_fails_after_three_attempts_and_the_rest_succeed(daemon):
    d = daemon(env={"RAGD_JOBS_RETRY_BACKOFF_S": "0.05"})
    docs = [{"id": f"n{i}", "text": f"note {i} about the mail server"} for i in range(20)]
    # Passes validation (not whitespace) but holds nothing indexable: control characters
    # only, as binary attachment text sometimes does.
    docs[7] = {"id": "poison", "text": "\x00\x01\x02\x03"}
    with RagClient(d.address, timeout=60) as c:
        job_id = c.upsert(docs, wait=False).job_id
        job = wait_finished(c, job_id)
        assert (job.state, job.done, job.failed) == ("partial", 19, 1)
        assert job.errors[0].document_id == "poison" and job.errors[0].attempts == 3
        assert "no indexable text" in job.errors[0].error
        assert c.stats().collections[0].documents == 19
        with pytest.raises(NotFound):
            c.get_job("no-such-job")
        with pytest.raises(InvalidArgument, match=r"documents\[0\].text"):
            c.upsert([{"id": "x", "text": " "}], wait=False)  # bad input is refused, not queued


def test_reordered_and_duplicated_versioned_writes_converge(daemon):
    d = daemon()
    rng = random.Random(3)
    n_docs, n_versions = 12, 4
    ops = []
    for i in range(n_docs):
        for v in range(1, n_versions + 1):
            ops.append(("upsert", i, v))
        if i % 3 == 0:
            ops.append(("delete", i, n_versions + 1))  # the newest operation on every third doc
    ops = ops + rng.sample(ops, len(ops) // 2)  # duplicates
    rng.shuffle(ops)

    def doc(i, v):
        return {"id": f"doc{i}", "text": f"document {i} revision {v} text", "version": v, "metadata": {"doc": str(i)}}

    with RagClient(d.address, timeout=60) as c:
        jobs = []
        for kind, i, v in ops:
            if kind == "delete":
                c.delete([f"doc{i}"], versions={f"doc{i}": v})
            elif rng.random() < 0.5:
                c.upsert([doc(i, v)])
            else:  # through the job queue: applied later, in another order
                jobs.append(c.upsert([doc(i, v)], wait=False).job_id)
        for job_id in jobs:
            assert wait_finished(c, job_id).state == "succeeded"
        for i in range(n_docs):
            hits = c.search(f"document {i}", top_k=5, filter={"metadata_equals": {"doc": str(i)}}).hits
            if i % 3 == 0:
                assert hits == [], i
            else:
                assert [h.text for h in hits] == [f"document {i} revision {n_versions} text"], i
        assert c.stats().collections[0].documents == n_docs - len(range(0, n_docs, 3))


def test_finished_jobs_are_pruned_after_jobs_retention_s(daemon):
    d = daemon(env={"RAGD_JOBS_RETENTION_S": "1"})
    docs = [{"id": f"r{i}", "text": f"note {i} about the backup schedule"} for i in range(5)]
    with RagClient(d.address, timeout=60) as c:
        job_id = c.upsert(docs, wait=False).job_id
        deadline = time.monotonic() + 120
        while True:  # the job record goes once finished and a second old; its documents stay
            try:
                c.get_job(job_id)
            except NotFound:
                break
            assert time.monotonic() < deadline, "job record never pruned"
            time.sleep(0.1)
        assert c.stats().collections[0].documents == 5
    assert "pruned 1 jobs finished more than 1 s ago" in d.log()
