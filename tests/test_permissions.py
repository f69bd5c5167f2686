"""Permissions are enforced inside every search mode: property tests against an
independent oracle, and full pages under a filter that admits 1% of documents.

In process, with the real store, chunker, filter columns, FAISS and tantivy indexes
and the real Searcher; only the embedder is a fast deterministic stand-in (hashed
bag of words), since what is tested here is which chunks may come back, not how
well they rank. tests/test_search_daemon.py covers the daemon with the real model.
"""
from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from permission_oracle import may_see

from ragd.domain import Document, DocumentRef, Filter, MetadataRange, SearchMode, SearchQuery
from ragd.engine.chunking import Chunker
from ragd.engine.collection import Collections
from ragd.engine.datadir import DataDir
from ragd.engine.ingest import Ingestor
from ragd.engine.search import Searcher
from ragd.index.lifecycle import IndexContext
from ragd.store.lmdb_store import Store

DIM = 64
WORDS = ("alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega orbit comet planet moon "
         "river stone cloud forest desert").split()
IDENTS = ["ERR_CONN_42", "config.yml", "#1234", "mail_handler.rb", "E500"]


@dataclass
class EmbedResult:
    vectors: np.ndarray
    truncated: np.ndarray
    token_counts: np.ndarray


class HashEmbedder:
    """Deterministic bag-of-words vectors: similar word sets, similar vectors."""
    dimension = DIM
    name = "hash-bow"

    def embed(self, texts):
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                h = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=4).digest(), "little")
                out[i, h % DIM] += 1.0
            out[i, 0] += 0.01
            out[i] /= np.linalg.norm(out[i])
        n = len(texts)
        return EmbedResult(out, np.zeros(n, bool), np.ones(n, np.int32))


class Harness:
    """Store + ingestor + searcher over one collection, plus the ground truth per document.
    persist: index files live under `path` as in a data dir (else in memory)."""

    def __init__(self, path, persist: bool = False, ctx: IndexContext | None = None):
        self.store = Store(path / "store", 1 << 30)
        self.collections = Collections(self.store, ctx or IndexContext(background=False),
                                       DataDir(path) if persist else None)
        for meta in self.store.collections().values():
            self.collections.open(meta)
        self.embedder = HashEmbedder()
        self.ingestor = Ingestor(self.store, self.embedder, Chunker(mode="chars", chunk_size=120, chunk_overlap=10),
                                 self.collections, self.embedder.name)
        self.searcher = Searcher(self.store, self.embedder, self.collections)
        self.docs: dict[str, Document] = {}

    def upsert(self, docs: list[Document], name: str = "c") -> None:
        truth = [replace(d, metadata=dict(d.metadata), viewer_ids=list(d.viewer_ids)) for d in docs]
        acks, _ = self.ingestor.commit(name, self.ingestor.prepare(name, docs))
        assert all(a.status.name == "INDEXED" for a in acks), acks
        for d in truth:
            self.docs[d.id] = d

    def delete(self, ids: list[str], name: str = "c") -> None:
        self.ingestor.delete(name, [DocumentRef(i) for i in ids])
        for i in ids:
            self.docs.pop(i, None)

    def search(self, query: str, mode: SearchMode, flt: Filter, top_k: int = 10, group: bool = False):
        return self.searcher.search(SearchQuery(collection="c", query=query, top_k=top_k, mode=mode, filter=flt,
                                                group_by_document=group))

    def close(self) -> None:
        self.collections.close(snapshot=False)
        self.store.close()


def random_doc(rng: random.Random, i: int, projects: int = 6) -> Document:
    words = rng.choices(WORDS, k=rng.randint(5, 60))
    if rng.random() < 0.2:
        words.insert(rng.randrange(len(words) + 1), rng.choice(IDENTS))
    kind = rng.choice(["issue", "issue", "journal", "wiki", "news"])
    return Document(
        id=f"{kind}:{i}", title=" ".join(rng.choices(WORDS, k=3)), text=" ".join(words),
        project_id=rng.randint(1, projects), type=kind,
        # journals with private notes are private documents of their own (Redmine's private_notes)
        is_private=rng.random() < 0.35, author_id=rng.randint(1, 8),
        updated_at_us=rng.randint(0, 1000) * 1_000_000, version=0,
        metadata={"tracker": rng.choice(["bug", "feature", "support"]), "prio": str(rng.randint(1, 5))},
        viewer_ids=rng.sample(range(1, 9), rng.randint(0, 2)))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = random.Random(20261124)
    h = Harness(tmp_path_factory.mktemp("perm"))
    docs = [random_doc(rng, i) for i in range(400)]
    for i in range(0, len(docs), 50):
        h.upsert(docs[i:i + 50])
    # Rewrites that flip privacy and move projects, and deletes: stale chunks of the old
    # versions must never come back (they stay in tantivy until its next commit).
    flips = []
    for d in rng.sample(docs, 80):
        nd = replace(d, is_private=not d.is_private, project_id=rng.randint(1, 6), metadata=dict(d.metadata),
                     viewer_ids=list(d.viewer_ids), text=d.text + " " + rng.choice(WORDS))
        flips.append(nd)
    h.upsert(flips)
    h.delete([d.id for d in rng.sample(docs, 30)])
    yield h
    h.close()


filters = st.builds(
    Filter,
    project_ids=st.lists(st.integers(1, 7), max_size=3, unique=True),
    types=st.lists(st.sampled_from(["issue", "journal", "wiki", "news", "nothing"]), max_size=2, unique=True),
    private_project_ids=st.lists(st.integers(1, 6), max_size=2, unique=True),
    user_id=st.one_of(st.just(0), st.integers(1, 9)),
    all_private=st.sampled_from([False, False, False, False, True]),
    metadata_equals=st.one_of(st.just({}), st.sampled_from([{"tracker": "bug"}, {"tracker": "support"}])),
    metadata_ranges=st.one_of(st.just([]), st.just([MetadataRange("prio", gte=2, lte=4)])),
    updated_after_us=st.one_of(st.none(), st.integers(0, 1000).map(lambda s: s * 1_000_000)),
    updated_before_us=st.one_of(st.none(), st.integers(0, 1000).map(lambda s: s * 1_000_000)),
    exclude_ids=st.lists(st.sampled_from([f"issue:{i}" for i in range(50)]), max_size=3),
)
queries = st.one_of(
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(" ".join),
    st.sampled_from(IDENTS),
    st.tuples(st.sampled_from(IDENTS), st.sampled_from(WORDS)).map(" ".join),
    st.text(max_size=30).filter(lambda s: s.strip()),
)
modes = st.sampled_from([SearchMode.VECTOR, SearchMode.KEYWORD, SearchMode.HYBRID, SearchMode.AUTO])


def _matches(doc: Document, query: str) -> bool:
    words = set(re.findall(r"\w+", (doc.title + "\n" + doc.text).lower()))
    return any(w in words for w in re.findall(r"\w+", query.lower()))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flt=filters, query=queries, mode=modes, top_k=st.integers(1, 40), group=st.booleans())
def test_no_hit_is_ever_forbidden_and_pages_are_full(corpus, flt, query, mode, top_k, group):
    result = corpus.search(query, mode, flt, top_k=top_k, group=group)
    visible = [d for d in corpus.docs.values() if may_see(d, flt)]
    for hit in result.hits:
        doc = corpus.docs.get(hit.document_id if hasattr(hit, "document_id") else hit.document.id)
        assert doc is not None, f"deleted document {hit.document.id} returned"
        assert may_see(doc, flt), f"forbidden {doc} returned for {flt}"
        # the hit's fields are the current version's (not a stale chunk of an older one)
        assert hit.document.is_private == doc.is_private and hit.document.project_id == doc.project_id
        assert hit.text in doc.text
    ids = [h.document.id for h in result.hits]
    if group:
        assert len(ids) == len(set(ids))
    # Full pages: VECTOR ranks every admitted chunk, so the page holds min(top_k, admitted).
    if result.mode == SearchMode.VECTOR:
        if group:
            assert len(ids) == min(top_k, len(visible))
        else:
            chunks = sum(len(corpus.store.get_doc(1, d.id).chunk_ids) for d in visible)
            assert len(ids) == min(top_k, chunks)
    # KEYWORD pages hold every admitted match up to top_k (plain-word queries: the
    # oracle's word match equals the engine's for these unstemmed words).
    if result.mode == SearchMode.KEYWORD and re.fullmatch(r"[a-z ]+", query) and group:
        assert len(ids) == min(top_k, sum(_matches(d, query) for d in visible))
    if result.mode == SearchMode.HYBRID and group:
        assert len(ids) == min(top_k, len(visible))


def test_selective_filter_admitting_one_percent_still_fills_pages(tmp_path):
    rng = random.Random(5)
    h = Harness(tmp_path)
    try:
        docs = [random_doc(rng, i, projects=50) for i in range(3000)]
        # Project 99 holds 1% of the documents; every document mentions "omega".
        for i, d in enumerate(docs):
            d.text += " omega"
            d.is_private = False
            if i % 100 == 7:
                d.project_id = 99
        for i in range(0, len(docs), 500):
            h.upsert(docs[i:i + 500])
        flt = Filter(project_ids=[99])
        admitted = {d.id for d in docs if d.project_id == 99}
        assert len(admitted) == 30
        for mode in (SearchMode.VECTOR, SearchMode.KEYWORD, SearchMode.HYBRID):
            for group in (False, True):
                hits = h.search("omega planet", mode, flt, top_k=20, group=group).hits
                assert len(hits) == 20, (mode, group, len(hits))
                assert {x.document.id for x in hits} <= admitted
        # and a private-heavy case: only the author's own private documents
        for d in docs[:600]:
            d.is_private = True
        h.upsert(docs[:600])
        flt = Filter(user_id=3, project_ids=[d.project_id for d in docs[:600]])
        mine = {d.id for d in docs if may_see(d, flt)}
        assert 0 < sum(d.id in mine for d in docs[:600]) < 600
        for mode in (SearchMode.VECTOR, SearchMode.KEYWORD, SearchMode.HYBRID):
            hits = h.search("omega", mode, flt, top_k=50, group=True).hits
            assert len(hits) == min(50, len(mine))
            assert {x.document.id for x in hits} <= mine
    finally:
        h.close()
