"""Search caches: query embeddings and result pages, in process (LRU + TTL) and,
optionally, in a shared Redis.

A result page is keyed by everything that decides it: the collection and its
generation (the op-log sequence of its last applied write, ragd.engine.collection),
the query, mode, top_k, filter, grouping and search parameters. Any write to a
collection changes its generation, so its cached pages are never served again (they
age out by LRU and TTL). Embeddings are keyed by model and query text only: they do
not depend on the collection.

Redis is a second tier shared by ragd processes serving the same data (replicas fed
the same writes agree on generations, which are durable sequence numbers); give
daemons over different data their own `cache.redis_prefix`. Redis is best-effort:
an unreachable server costs one short timeout, is logged, and is retried after a
back-off; it never fails a search. Values in Redis are JSON / raw float32 bytes (no
pickle: a shared cache must not be able to run code in ragd).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict

import numpy as np

from ragd.domain import Document, Hit, SearchMode, SearchQuery, SearchResult, Timings

log = logging.getLogger("ragd.cache")


class TTLCache:
    """A thread-safe LRU with a time-to-live per entry."""

    def __init__(self, max_items: int, ttl_s: float, clock=time.monotonic):
        self.max_items = max_items
        self.ttl_s = ttl_s
        self._clock = clock  # injectable so tests step time instead of sleeping
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key):
        if self.max_items <= 0:
            return None
        now = self._clock()
        with self._lock:
            item = self._data.get(key)
            if item is None or (self.ttl_s > 0 and item[0] < now):
                if item is not None:
                    del self._data[key]
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return item[1]

    def put(self, key, value) -> None:
        if self.max_items <= 0:
            return
        with self._lock:
            self._data[key] = (self._clock() + self.ttl_s, value)
            self._data.move_to_end(key)
            while len(self._data) > self.max_items:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


class RedisTier:
    """Best-effort shared cache; any failure disables it for `backoff_s`."""

    def __init__(self, url: str, prefix: str, ttl_s: float, timeout_s: float = 0.05, backoff_s: float = 10.0):
        import redis  # optional dependency, imported only when configured
        self._client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self.prefix = prefix
        self.ttl_s = max(1, int(round(ttl_s))) if ttl_s > 0 else None
        self.backoff_s = backoff_s
        self._down_until = 0.0
        self.hits = self.misses = self.errors = 0

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        if time.monotonic() >= self._down_until:
            log.warning("redis cache unavailable (%s); searching without it for %.0f s", exc, self.backoff_s)
        self._down_until = time.monotonic() + self.backoff_s

    def get(self, key: str) -> bytes | None:
        if time.monotonic() < self._down_until:
            return None
        try:
            value = self._client.get(self.prefix + key)
        except Exception as exc:  # noqa: BLE001 - best effort
            self._failed(exc)
            return None
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def put(self, key: str, value: bytes) -> None:
        if time.monotonic() < self._down_until:
            return
        try:
            self._client.set(self.prefix + key, value, ex=self.ttl_s)
        except Exception as exc:  # noqa: BLE001 - best effort
            self._failed(exc)


def _digest(obj) -> str:
    raw = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:40]


def page_key(q: SearchQuery, generation: int, extra=()) -> str:
    # Every field of the query (filter, mode, top_k, grouping, min_score, index params...)
    # so a field added to SearchQuery later cannot make two different pages collide.
    return "p:" + _digest([generation, dataclasses.asdict(q), list(extra)])


def _hit_to_json(h: Hit) -> dict:
    d = dataclasses.asdict(h)
    d["highlights"] = [list(s) for s in h.highlights]
    return d


def _hit_from_json(d: dict) -> Hit:
    doc = Document(**d.pop("document"))
    d["highlights"] = [tuple(s) for s in d.get("highlights", [])]
    return Hit(document=doc, **d)


class SearchCache:
    def __init__(self, *, enabled: bool = True, max_pages: int = 4096, max_embeddings: int = 8192,
                 ttl_s: float = 300.0, model: str = "", redis_url: str = "", redis_prefix: str = "ragd:",
                 redis_timeout_s: float = 0.05):
        self.enabled = enabled
        self.model = model
        self.pages = TTLCache(max_pages if enabled else 0, ttl_s)
        self.embeddings = TTLCache(max_embeddings if enabled else 0, ttl_s)
        self.redis = RedisTier(redis_url, redis_prefix, ttl_s, redis_timeout_s) if enabled and redis_url else None

    # ------------------------------------------------------------ embeddings

    def _ekey(self, text: str) -> str:
        return "e:" + _digest([self.model, text])

    def get_embedding(self, text: str) -> np.ndarray | None:
        if not self.enabled:
            return None
        key = self._ekey(text)
        vec = self.embeddings.get(key)
        if vec is None and self.redis is not None:
            raw = self.redis.get(key)
            if raw is not None:
                vec = np.frombuffer(raw, dtype=np.float32).copy()
                self.embeddings.put(key, vec)
        return vec

    def put_embedding(self, text: str, vec: np.ndarray) -> None:
        if not self.enabled:
            return
        key = self._ekey(text)
        vec = np.ascontiguousarray(vec, dtype=np.float32)
        self.embeddings.put(key, vec)
        if self.redis is not None:
            self.redis.put(key, vec.tobytes())

    # ------------------------------------------------------------ result pages

    def get_page(self, key: str) -> SearchResult | None:
        if not self.enabled:
            return None
        cached = self.pages.get(key)
        if cached is None and self.redis is not None:
            raw = self.redis.get(key)
            if raw is not None:
                try:
                    d = json.loads(raw)
                    cached = SearchResult(hits=[_hit_from_json(h) for h in d["hits"]], mode=SearchMode(d["mode"]),
                                          timings=Timings())
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("ignoring an unreadable cached page (%s)", exc)
                    return None
                self.pages.put(key, cached)
        if cached is None:
            return None
        # Hits are never mutated after a search returns them; the timings are per call.
        return SearchResult(hits=list(cached.hits), mode=cached.mode, timings=Timings(cache_hit=True))

    def put_page(self, key: str, result: SearchResult) -> None:
        if not self.enabled:
            return
        self.pages.put(key, SearchResult(hits=list(result.hits), mode=result.mode, timings=Timings()))
        if self.redis is not None:
            self.redis.put(key, json.dumps({"mode": int(result.mode),
                                            "hits": [_hit_to_json(h) for h in result.hits]}).encode())

    def stats(self) -> dict:
        out = {"page_hits": self.pages.hits, "page_misses": self.pages.misses, "pages": len(self.pages),
               "embedding_hits": self.embeddings.hits, "embedding_misses": self.embeddings.misses}
        if self.redis is not None:
            out.update(redis_hits=self.redis.hits, redis_misses=self.redis.misses, redis_errors=self.redis.errors)
        return out
