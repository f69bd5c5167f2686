"""The micro-batcher with the real model, in process."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from ragd.embed.onnx_embedder import OnnxEmbedder
from ragd.engine.batcher import EmbedBatcher
from ragd.errors import ResourceExhausted


@pytest.fixture(scope="module")
def embedder(models_dir):
    return OnnxEmbedder(models_dir / "all-MiniLM-L6-v2", device="cpu")


def run(coro):
    return asyncio.run(coro)


async def _with_batcher(embedder, fn, **kw):
    pool = ThreadPoolExecutor(2)
    b = EmbedBatcher(embedder, pool, **kw)
    b.start()
    try:
        return await fn(b)
    finally:
        await b.stop()
        pool.shutdown()


def test_concurrent_callers_share_batches_and_get_their_own_vectors(embedder):
    texts = [f"issue {i}: the backup job failed on server {i % 7}" for i in range(32)]
    direct = embedder.embed(texts).vectors

    async def go(b):
        outs = await asyncio.gather(*(b.embed([t]) for t in texts))
        return outs, b.batches_run
    outs, batches = run(_with_batcher(embedder, go))
    got = np.vstack([o.vectors for o in outs])
    assert np.min(np.sum(got * direct, axis=1)) > 0.9999
    assert batches < len(texts) / 2, batches  # merged, not one inference per caller


def test_one_request_keeps_input_order_across_length_sorted_batches(embedder):
    texts = ["short", "a much longer text " * 30, "mid length text here", "x", "another " * 300]

    async def go(b):
        return await b.embed(texts)
    out = run(_with_batcher(embedder, go, max_batch_tokens=300, max_batch_texts=2))
    direct = embedder.embed(texts)
    assert np.min(np.sum(out.vectors * direct.vectors, axis=1)) > 0.9999
    assert out.token_counts.tolist() == direct.token_counts.tolist()
    assert out.truncated.tolist() == [False, False, False, False, True]


def test_full_queue_fails_fast_or_waits(embedder):
    big = ["word " * 200] * 40  # ~8000 tokens

    async def go(b):
        first = asyncio.ensure_future(b.embed(big))
        await asyncio.sleep(0.05)  # tokenised and queued
        with pytest.raises(ResourceExhausted) as err:
            await b.embed(big)
        assert err.value.retry_after_s > 0
        waited = await b.embed(big, wait=True)  # admitted once the first is done
        await first
        return waited
    out = run(_with_batcher(embedder, go, max_queue_tokens=10000))
    assert out.vectors.shape == (40, 384)


def test_cancelled_caller_is_dropped_before_inference(embedder):
    async def go(b):
        first = asyncio.ensure_future(b.embed(["long text " * 100] * 64))
        await asyncio.sleep(0.05)
        victim = asyncio.ensure_future(b.embed(["never embedded"] * 10))
        await asyncio.sleep(0.01)
        victim.cancel()
        await first
        await asyncio.sleep(0.05)
        return b.rows_run, b.queued_tokens
    rows, queued = run(_with_batcher(embedder, go, max_batch_tokens=4096))
    assert rows == 64
    assert queued == 0


def test_stop_fails_waiting_callers_instead_of_leaving_them_blocked(embedder):
    async def go():
        pool = ThreadPoolExecutor(2)
        b = EmbedBatcher(embedder, pool, max_batch_tokens=2048)
        b.start()
        waiting = [asyncio.ensure_future(b.embed(["long text " * 100] * 32)) for _ in range(3)]
        await asyncio.sleep(0.05)
        await b.stop()
        results = await asyncio.gather(*waiting, return_exceptions=True)
        pool.shutdown()
        return results
    from ragd.errors import Unavailable
    results = run(go())
    assert any(isinstance(r, Unavailable) for r in results)
    assert all(isinstance(r, (Unavailable,)) or r.vectors.shape == (32, 384) for r in results)


def test_interactive_request_overtakes_queued_bulk_work(embedder):
    async def go(b):
        bulk = asyncio.ensure_future(b.embed(["a long ingested chunk of text " * 40] * 192))
        await asyncio.sleep(0.05)  # bulk tokenised, queued and running
        query = await b.embed(["where is the backup log"], urgent=True)
        bulk_done_then = bulk.done()
        out = await bulk
        return query, bulk_done_then, out
    query, bulk_done_then, out = run(_with_batcher(embedder, go, max_batch_tokens=4096, max_batch_texts=16))
    assert query.vectors.shape == (1, 384)
    assert not bulk_done_then  # the query did not wait for the whole bulk request
    assert out.vectors.shape == (192, 384)
