"""SearchParams (nprobe, rerank_factor, exact) travel from the protobuf request
through api/convert and the Searcher to the IVF-PQ search, and change what it
finds: recall@10 against exact search moves with them."""
from __future__ import annotations

import random

import pytest
from test_permissions import Harness

from ragd.api import convert
from ragd.domain import Document, SearchMode
from ragd.engine import validate
from ragd.errors import InvalidArgument
from ragd.index.lifecycle import IndexContext
from ragd.index.vector_index import IndexSettings
from ragd.v1 import ragd_pb2 as pb

VOCAB = [f"w{i}" for i in range(3000)]


@pytest.fixture(scope="module")
def ivfpq(tmp_path_factory):
    rng = random.Random(5)
    settings = IndexSettings(ivf_threshold=10**9, nlist_factor=2.0, pq_m=8)
    h = Harness(tmp_path_factory.mktemp("params"), ctx=IndexContext(settings=settings, background=False))
    docs = [Document(id=f"d{i}", text=" ".join(rng.choices(VOCAB, k=8)), project_id=1) for i in range(4000)]
    for i in range(0, len(docs), 500):
        h.upsert(docs[i:i + 500])
    coll = h.collections.get("c")
    assert coll.keeper.train_and_swap() and coll.index.kind == "ivfpq"
    queries = [" ".join(rng.choices(VOCAB, k=6)) for _ in range(40)]
    yield h, queries
    h.close()


def hits(h: Harness, query: str, params: pb.SearchParams) -> list[str]:
    req = pb.SearchRequest(collection="c", query=query, top_k=10, params=params)
    q = convert.search_query(req, SearchMode.VECTOR)
    return [hit.document.id for hit in h.searcher.search(q).hits]


def recall(h: Harness, queries: list[str], **params) -> float:
    found = 0
    for query in queries:
        truth = set(hits(h, query, pb.SearchParams(exact=True, rerank_factor=1000)))
        found += len(truth & set(hits(h, query, pb.SearchParams(**params))))
    return found / (10 * len(queries))


def test_nprobe_and_rerank_factor_reach_the_ivfpq_search(ivfpq):
    h, queries = ivfpq
    nlist = h.collections.get("c").index.nlist
    assert nlist >= 16
    thorough = recall(h, queries, nprobe=nlist, rerank_factor=100)
    default = recall(h, queries)
    few_lists = recall(h, queries, nprobe=1, rerank_factor=100)
    no_rerank = recall(h, queries, nprobe=nlist, rerank_factor=1)
    assert thorough >= 0.95
    assert default >= 0.8
    assert few_lists <= thorough - 0.3, (few_lists, thorough)   # nprobe reached the index
    assert no_rerank <= thorough - 0.1, (no_rerank, thorough)   # rerank_factor reached the index
    print(f"recall@10: nprobe={nlist} rerank_factor=100 {thorough:.2f}, default {default:.2f}, "
          f"nprobe=1 {few_lists:.2f}, rerank_factor=1 {no_rerank:.2f}")


def test_negative_params_are_refused_naming_the_field():
    with pytest.raises(InvalidArgument, match=r"params\.nprobe"):
        validate.search_params(-1, 0)
    with pytest.raises(InvalidArgument, match=r"params\.rerank_factor"):
        validate.search_params(0, -3)
    validate.search_params(0, 0)
