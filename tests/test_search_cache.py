"""Search caches in process: LRU + TTL, keys, and the JSON form used in Redis."""

import numpy as np

from ragd.domain import Document, Filter, Hit, SearchMode, SearchQuery, SearchResult, Timings
from ragd.engine.cache import SearchCache, TTLCache, _hit_from_json, _hit_to_json, page_key


def test_lru_evicts_the_least_recently_used_and_ttl_expires():
    now = [100.0]
    c = TTLCache(2, ttl_s=0.2, clock=lambda: now[0])
    c.put("a", 1)
    c.put("b", 2)
    assert c.get("a") == 1
    c.put("c", 3)  # evicts b, the least recently used
    assert c.get("b") is None and c.get("a") == 1 and c.get("c") == 3
    now[0] += 0.19
    assert c.get("a") == 1  # still alive just before its deadline
    now[0] += 0.25
    assert c.get("a") is None and len(c) == 1


def test_page_keys_cover_filter_mode_and_generation():
    q = SearchQuery(collection="c", query="x")
    base = page_key(q, 5)
    assert page_key(SearchQuery(collection="c", query="x"), 5) == base
    assert page_key(q, 6) != base
    assert page_key(SearchQuery(collection="c", query="x", filter=Filter(user_id=3)), 5) != base
    assert page_key(SearchQuery(collection="c", query="x", mode=SearchMode.KEYWORD), 5) != base
    assert page_key(SearchQuery(collection="d", query="x"), 5) != base


def test_pages_and_embeddings_round_trip():
    cache = SearchCache(model="m")
    hit = Hit(document=Document(id="issue:1", text="", title="T", project_id=3, metadata={"k": "v"},
                                viewer_ids=[4]), chunk_id=7, text="abc", start=0, end=3, score=0.5,
              vector_score=0.4, keyword_score=2.0, highlights=[(0, 3)])
    cache.put_page("k", SearchResult([hit], SearchMode.HYBRID, Timings(embed_ms=5)))
    got = cache.get_page("k")
    assert got.timings.cache_hit and got.mode == SearchMode.HYBRID and got.hits == [hit]
    assert _hit_from_json(_hit_to_json(hit)) == hit
    cache.put_embedding("q", np.ones(4, np.float32))
    assert np.array_equal(cache.get_embedding("q"), np.ones(4, np.float32))
    off = SearchCache(enabled=False)
    off.put_page("k", SearchResult([hit], SearchMode.HYBRID, Timings()))
    assert off.get_page("k") is None


def test_unreachable_redis_is_skipped_not_fatal():
    from conftest import free_port
    cache = SearchCache(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout_s=0.05)
    assert cache.get_page("nope") is None
    cache.put_page("k", SearchResult([], SearchMode.VECTOR, Timings()))
    assert cache.get_page("k") is not None  # the in-process tier still works
    assert cache.redis.errors >= 1
    # A down server costs one short timeout, never a hang (checked on the client's
    # settings, not on the clock: a loaded machine stretches any wall-clock bound).
    settings = cache.redis._client.connection_pool.connection_kwargs
    assert settings["socket_timeout"] == settings["socket_connect_timeout"] == 0.05
