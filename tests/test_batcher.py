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
        while b.queued_tokens == 0:  # until tokenised and queued (no fixed sleep: CI is slow)
            await asyncio.sleep(0.005)
        with pytest.raises(ResourceExhausted) as err:
            await b.embed(big)
        assert err.value.retry_after_s > 0
        waited = await b.embed(big, wait=True)  # admitted once the first is done
        await first
        return waited
    out = run(_with_batcher(embedder, go, max_queue_tokens=10000))
    assert out.vectors.shape == (40, 384)


async def _until(condition) -> None:
    """Poll a condition on the batcher's real state (no fixed sleep: CI is slow)."""
    while not condition():
        await asyncio.sleep(0.005)


def test_cancelled_caller_is_dropped_before_inference(embedder):
    import threading
    gate = threading.Event()
    spy = _Spy(embedder, gate=gate)

    async def go(b):
        first = asyncio.ensure_future(b.embed(["long text " * 100] * 64))
        await _until(lambda: len(spy.batches) == 1)  # first's first batch is in the model, held
        held = b.queued_tokens
        victim = asyncio.ensure_future(b.embed(["never embedded"] * 10))
        await _until(lambda: b.queued_tokens > held)  # the victim is queued behind it
        victim.cancel()
        await asyncio.wait([victim])
        gate.set()
        await first
        await b.embed(["after"])  # queued behind the victim: done once the victim was dropped or run
        return b.rows_run, b.queued_tokens
    rows, queued = run(_with_batcher(spy, go, max_batch_tokens=4096))
    assert rows == 64 + 1  # the victim's 10 rows never reached the model
    assert queued == 0


def test_stop_fails_waiting_callers_instead_of_leaving_them_blocked(embedder):
    import threading
    gate = threading.Event()
    spy = _Spy(embedder, gate=gate)
    texts = ["long text " * 100] * 32
    cost = sum(len(t) for t in embedder.tokenize(texts))

    async def go():
        pool = ThreadPoolExecutor(2)
        b = EmbedBatcher(spy, pool, max_batch_tokens=2048)
        b.start()
        waiting = [asyncio.ensure_future(b.embed(texts)) for _ in range(3)]
        # All three queued, one batch held in the model: stop() finds callers waiting.
        await _until(lambda: len(spy.batches) == 1 and b.queued_tokens == 3 * cost)
        await b.stop()
        gate.set()  # let the abandoned inference thread finish
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
        await _until(lambda: b.batches_run >= 1)  # bulk tokenised, queued and running
        query = await b.embed(["where is the backup log"], urgent=True)
        bulk_done_then = bulk.done()
        out = await bulk
        return query, bulk_done_then, out
    query, bulk_done_then, out = run(_with_batcher(embedder, go, max_batch_tokens=4096, max_batch_texts=16))
    assert query.vectors.shape == (1, 384)
    assert not bulk_done_then  # the query did not wait for the whole bulk request
    assert out.vectors.shape == (192, 384)


class _Spy:
    """The real embedder, recording every padded batch it runs (and, with a
    barrier, holding the first runs until `parties` of them are in flight)."""

    def __init__(self, embedder, barrier=None, gate=None):
        import threading
        self._e = embedder
        self._gate = gate  # a threading.Event every run waits for
        self.batches: list[tuple[int, int, int]] = []  # (rows, real tokens, padded tokens)
        self._barrier = barrier
        self._lock = threading.Lock()
        self.inflight = 0
        self.max_inflight = 0

    def __getattr__(self, name):
        return getattr(self._e, name)

    def run(self, batch):
        with self._lock:
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
            self.batches.append((len(batch), int(batch.attention_mask.sum()), int(batch.attention_mask.size)))
            first = len(self.batches) <= (self._barrier.parties if self._barrier else 0)
        try:
            if first:
                # BrokenBarrierError if the runs are not concurrent (the bound only stops a hang)
                self._barrier.wait(timeout=120)
            if self._gate is not None:
                assert self._gate.wait(timeout=120)
            return self._e.run(batch)
        finally:
            with self._lock:
                self.inflight -= 1


def test_padding_cap_cuts_batches_of_mixed_length(embedder):
    # 48 texts of 4..~200 tokens in one pool: without a cap they pack into few,
    # heavily padded batches; with a cap of 0.1 no batch is more than 10% padding.
    texts = [("word " * (1 + (i * 37) % 190)).strip() for i in range(48)]
    direct = embedder.embed(texts).vectors
    seen = {}
    for cap in (1.0, 0.1):
        spy = _Spy(embedder)

        async def go(b):
            return await b.embed(texts)
        out = run(_with_batcher(spy, go, max_batch_tokens=16384, max_batch_texts=64, max_pad_fraction=cap))
        assert np.min(np.sum(out.vectors * direct, axis=1)) > 0.9999
        seen[cap] = spy.batches
    assert len(seen[1.0]) == 1  # everything fits one batch when padding is free
    assert len(seen[0.1]) > 3
    for rows, real, padded in seen[0.1]:
        assert padded - real <= 0.1 * padded, (rows, real, padded)
    assert sum(r for r, _, _ in seen[0.1]) == 48


def test_two_workers_run_two_inferences_at_once(embedder):
    import threading
    spy = _Spy(embedder, barrier=threading.Barrier(2))
    texts = [f"note {i}: " + "the mail handler dropped the reply " * (1 + i % 5) for i in range(40)]
    direct = embedder.embed(texts).vectors

    async def go(b):
        return await asyncio.gather(*(b.embed([t]) for t in texts))
    outs = run(_with_batcher(spy, go, workers=2, max_batch_texts=4))
    got = np.vstack([o.vectors for o in outs])
    assert np.min(np.sum(got * direct, axis=1)) > 0.9999
    assert spy.max_inflight == 2


def test_cancelled_multi_batch_request_gives_back_all_its_queue_room(embedder):
    import threading
    gate = threading.Event()
    spy = _Spy(embedder, gate=gate)

    async def go(b):
        victim = asyncio.ensure_future(b.embed(["a long chunk of wiki text " * 30] * 40))
        while len(spy.batches) < 2:  # both workers hold one of its 10 batches at the gate
            await asyncio.sleep(0.01)
        victim.cancel()
        await asyncio.wait([victim])
        gate.set()
        after = await b.embed(["still served"], urgent=True)
        await _until(lambda: b.batches_run >= 3)  # the two held batches and the query's
        return after, b.rows_run, b.queued_tokens
    after, rows, queued = run(_with_batcher(spy, go, workers=2, max_batch_texts=4))
    assert after.vectors.shape == (1, 384)
    assert rows == 2 * 4 + 1  # the two batches in flight, then the query: the other 8 were skipped
    assert queued == 0


def test_token_cap_bounds_every_batch(embedder):
    # The CPU default (1024 padded tokens) is what bounds how long a query
    # waits behind bulk work; no batch may exceed it, even with free padding.
    texts = [f"issue {i}: " + "the mail handler dropped the reply " * (3 + i % 9) for i in range(80)]
    spy = _Spy(embedder)

    async def go(b):
        return await b.embed(texts)
    out = run(_with_batcher(spy, go, max_batch_tokens=1024, max_batch_texts=64, max_pad_fraction=1.0))
    assert np.min(np.sum(out.vectors * embedder.embed(texts).vectors, axis=1)) > 0.9999
    assert len(spy.batches) > 3
    assert all(padded <= 1024 for _, _, padded in spy.batches), spy.batches
    assert sum(r for r, _, _ in spy.batches) == 80


def test_token_cap_defaults_by_device():
    from ragd.config import Config
    from ragd.engine.engine import batch_token_cap

    cfg = Config()
    assert (batch_token_cap(cfg, cuda=False), batch_token_cap(cfg, cuda=True)) == (1024, 8192)
    cfg.batching.max_batch_tokens = 3000
    assert (batch_token_cap(cfg, cuda=False), batch_token_cap(cfg, cuda=True)) == (3000, 3000)
