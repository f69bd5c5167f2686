"""Permissions are enforced inside every search mode: property tests against
independent oracles, and full pages under a filter that admits 1% of documents.

- A Redmine world (tests/redmine_world.py): projects, roles (visibility, trackers,
  view permissions), builtin roles, users, groups, memberships, issues with private
  notes on private and public issues, moves between projects; the filter a plugin
  builds for each user (grants); every hit of all four modes and Similar checked
  against Redmine's own rules, pages full when enough visible documents exist.
- Random grants against the contract oracle (tests/permission_oracle.py, from the proto).
- Random filters without grants (ragd 0.1) against the same oracle.

In process, with the real store, chunker, filter columns, FAISS and tantivy indexes
and the real Searcher; only the embedder is a fast deterministic stand-in (hashed
bag of words), since what is tested here is which chunks may come back, not how
well they rank. tests/test_search_daemon.py and tests/test_grants_daemon.py cover
the daemon with the real model. Set PERMISSION_EXAMPLES to scale the number of
examples (1 by default; the long run in the README used 10).
"""
from __future__ import annotations

import hashlib
import os
import random
import re
from dataclasses import dataclass, replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from permission_oracle import may_see
from redmine_world import World

from ragd.domain import Document, DocumentRef, Filter, Grant, MetadataRange, SearchMode, SearchQuery, Visibility
from ragd.engine.chunking import Chunker
from ragd.engine.collection import Collections
from ragd.engine.datadir import DataDir
from ragd.engine.ingest import Ingestor
from ragd.engine.search import Searcher
from ragd.index.lifecycle import IndexContext
from ragd.store.lmdb_store import Store

SCALE = float(os.environ.get("PERMISSION_EXAMPLES", "1"))
# The suite's per-test time limit (pyproject.toml) grows with the examples asked for.
pytestmark = pytest.mark.timeout(int(600 * max(1.0, SCALE)))
MODES = (SearchMode.VECTOR, SearchMode.KEYWORD, SearchMode.HYBRID, SearchMode.AUTO)

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
        truth = [replace(d, metadata=dict(d.metadata), viewer_ids=list(d.viewer_ids), owner_ids=list(d.owner_ids))
                 for d in docs]
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

    def similar(self, doc_id: str, flt: Filter, top_k: int = 10):
        return self.searcher.similar("c", doc_id, top_k, flt, 0.0)

    def chunks(self, doc_id: str) -> int:
        return len(self.store.get_doc(self.collections.get("c").meta.id, doc_id).chunk_ids)

    def close(self) -> None:
        self.collections.close(snapshot=False)
        self.store.close()


def random_doc(rng: random.Random, i: int, projects: int = 6) -> Document:
    """A ragd 0.1 document. Frozen: tests/test_filter_regression.py's golden file was
    written from documents drawn by it."""
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


def _matches(doc: Document, query: str) -> bool:
    words = set(re.findall(r"\w+", (doc.title + "\n" + doc.text).lower()))
    return any(w in words for w in re.findall(r"\w+", query.lower()))


class Tally:
    """What the property tests checked, printed at the end of the module."""
    examples = searches = hits = full_pages = 0


@pytest.fixture(scope="module", autouse=True)
def report(request):
    # One thread per FAISS search, as the benchmarks measure it: on a loaded 2-core
    # machine OpenMP's fork/join costs a tiny index search ~15 ms (9 of 25 s here).
    import faiss
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)
    line = (f"permission property tests: {Tally.examples} examples, {Tally.searches} searches, "
            f"{Tally.hits} hits checked against the oracles, {Tally.full_pages} pages checked full")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():  # shown whatever -s says
        print(f"\n{line}")


def check_page(h: Harness, result, allowed: set[str], query: str, top_k: int, group: bool,
               similar_of: str | None = None) -> None:
    """Every hit allowed and current; the page full when enough allowed documents exist."""
    Tally.searches += 1
    for hit in result.hits:
        doc = h.docs.get(hit.document.id)
        assert doc is not None, f"deleted document {hit.document.id} returned"
        assert hit.document.id in allowed, f"forbidden {doc} returned"
        # the hit's fields are the current version's (not a stale chunk of an older one)
        got = hit.document
        assert (got.is_private, got.project_id, got.private_note, got.tracker_id, got.owner_ids) == (
            doc.is_private, doc.project_id, doc.private_note, doc.tracker_id, doc.owner_ids), doc.id
        assert hit.text in doc.text
        Tally.hits += 1
    ids = [x.document.id for x in result.hits]
    if group:
        assert len(ids) == len(set(ids))
    if similar_of is not None:
        assert similar_of not in ids
        allowed = allowed - {similar_of}
    # Full pages: VECTOR and HYBRID rank every admitted chunk, so a page holds
    # min(top_k, admitted); KEYWORD pages hold every admitted match up to top_k
    # (plain-word queries, grouped: the oracle's word match equals the engine's).
    want = None
    if result.mode in (SearchMode.VECTOR, SearchMode.HYBRID):
        want = min(top_k, len(allowed) if group else sum(h.chunks(d) for d in allowed))
    elif result.mode == SearchMode.KEYWORD and re.fullmatch(r"[a-z ]+", query) and group:
        want = min(top_k, sum(_matches(h.docs[d], query) for d in allowed))
    if want is not None:
        assert len(ids) == want, (result.mode, len(ids), want)
        Tally.full_pages += 1


def check_every_mode(h: Harness, flt: Filter, allowed: set[str], query: str, top_k: int, group: bool,
                     similar_of: str) -> None:
    """All four modes and Similar, as one example."""
    Tally.examples += 1
    for mode in MODES:
        result = h.search(query, mode, replace(flt, exclude_ids=list(flt.exclude_ids)), top_k=top_k, group=group)
        check_page(h, result, allowed, query, top_k, group)
    if similar_of in h.docs:
        result = h.similar(similar_of, replace(flt, exclude_ids=list(flt.exclude_ids)), top_k=top_k)
        check_page(h, result, allowed, "", top_k, True, similar_of=similar_of)


@settings(max_examples=int(300 * SCALE), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flt=filters, query=queries, top_k=st.integers(1, 40), group=st.booleans(),
       similar_of=st.sampled_from([f"{k}:{i}" for k in ("issue", "journal", "wiki", "news") for i in range(60)]))
def test_filters_without_grants_never_leak_and_fill_pages(corpus, flt, query, top_k, group, similar_of):
    allowed = {d.id for d in corpus.docs.values() if may_see(d, flt)}
    check_every_mode(corpus, flt, allowed, query, top_k, group, similar_of)


# ---------------------------------------------------------------- a Redmine world

@pytest.fixture(scope="module")
def redmine(tmp_path_factory):
    """A Redmine world indexed as a plugin would index it, then changed: issues moved
    between projects, made private or public, reassigned (to users and groups), given
    another tracker, notes made private or public; some issues and pages deleted."""
    rng = random.Random(20261130)
    world = World(rng, WORDS)
    h = Harness(tmp_path_factory.mktemp("redmine"))
    docs = world.documents()
    for i in range(0, len(docs), 100):
        h.upsert(docs[i:i + 100])
    changed = [world.change(iid) for iid in rng.sample(sorted(world.issues), 45)]
    h.upsert([d for issue in {i.id: i for i in changed}.values() for d in world.issue_documents(issue)])
    gone = rng.sample(sorted(world.issues), 8)
    h.delete([d.id for iid in gone for d in world.issue_documents(world.issues.pop(iid))])
    gone_pages = rng.sample(sorted(world.pages), 3)
    h.delete([f"{world.pages[p].kind}:{p}" for p in gone_pages])
    for p in gone_pages:
        del world.pages[p]
    assert set(h.docs) == {d.id for d in world.documents()}
    visible = {u.id: world.visible_ids(u) for u in world.users_to_test()}
    # The world is rich enough to test something: users see different, partial views.
    sizes = sorted(len(v) for v in visible.values())
    assert sizes[0] < sizes[len(sizes) // 2] < sizes[-1] < len(h.docs) + 1
    yield h, world, visible
    h.close()


ALL_TYPES = ("issue", "journal", "wiki", "news")


@settings(max_examples=int(600 * SCALE), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user=st.sampled_from([*range(1, 13), 99]),
       scope=st.one_of(st.none(), st.lists(st.integers(1, 9), min_size=1, max_size=4, unique=True)),
       types=st.sampled_from([ALL_TYPES, ("issue", "journal"), ("issue",), ("journal",), ("wiki", "news"),
                              ("issue", "wiki")]),
       query=queries, top_k=st.integers(1, 60), group=st.booleans(), similar_of=st.integers(0, 10_000))
def test_redmine_users_see_exactly_what_redmine_shows(redmine, user, scope, types, query, top_k, group, similar_of):
    h, world, visible = redmine
    u = world.users[user]
    scope_ids = [p for p in (scope or []) if p in world.projects] if scope else None
    flt = world.grants_for(u, projects=scope_ids, types=types)
    allowed = {d for d in visible[user] if d.split(":")[0] in types
               and (scope_ids is None or h.docs[d].project_id in scope_ids)}
    if flt is None:
        # Nothing to search with (the plugin falls back or shows nothing): Redmine shows nothing either.
        assert not allowed, (user, scope_ids, types)
        Tally.examples += 1
        return
    ids = sorted(h.docs)
    check_every_mode(h, flt, allowed, query, top_k, group, ids[similar_of % len(ids)])


# ---------------------------------------------------------------- random grants (the contract)

grant = st.builds(
    Grant,
    types=st.lists(st.sampled_from(["issue", "journal", "wiki", "news", "nothing"]), min_size=1, max_size=3,
                   unique=True),
    project_ids=st.lists(st.integers(0, 9), min_size=1, max_size=4, unique=True),
    visibility=st.sampled_from(list(Visibility)),
    tracker_ids=st.one_of(st.just([]), st.lists(st.integers(0, 5), min_size=1, max_size=2, unique=True)),
    private_notes=st.booleans(),
)
grant_filters = st.builds(
    Filter,
    grants=st.lists(grant, min_size=1, max_size=8),
    user_id=st.one_of(st.just(0), st.integers(1, 13)),
    group_ids=st.lists(st.sampled_from([70, 71, 72, 0]), max_size=2, unique=True),
    project_ids=st.one_of(st.just([]), st.lists(st.integers(1, 8), min_size=1, max_size=3, unique=True)),
    types=st.one_of(st.just([]), st.lists(st.sampled_from(ALL_TYPES), min_size=1, max_size=2, unique=True)),
    updated_after_us=st.none(),
    exclude_ids=st.lists(st.sampled_from([f"issue:{i}" for i in range(1, 40)]), max_size=2),
)


@settings(max_examples=int(400 * SCALE), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flt=grant_filters, query=queries, top_k=st.integers(1, 60), group=st.booleans(),
       similar_of=st.integers(0, 10_000))
def test_random_grants_never_leak_and_fill_pages(redmine, flt, query, top_k, group, similar_of):
    h, _, _ = redmine
    allowed = {d.id for d in h.docs.values() if may_see(d, flt)}
    ids = sorted(h.docs)
    check_every_mode(h, flt, allowed, query, top_k, group, ids[similar_of % len(ids)])


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


def test_grants_express_redmine_exactly(redmine):
    """Without searching: for every user and several search scopes, the documents the
    grants admit (contract oracle) are exactly those Redmine shows, and every rule of
    the world matters to someone (so the property test above can catch its loss)."""
    h, world, visible = redmine
    scopes = [None, [1, 2, 3], [4, 5, 6, 7, 8], [2]]
    for u in world.users_to_test():
        for scope in scopes:
            for types in (ALL_TYPES, ("issue", "journal"), ("wiki",)):
                flt = world.grants_for(u, projects=scope, types=types)
                want = {d for d in visible[u.id] if d.split(":")[0] in types
                        and (scope is None or h.docs[d].project_id in scope)}
                got = {d.id for d in h.docs.values() if flt is not None and may_see(d, flt)}
                assert got == want, (u.id, scope, types, sorted(got ^ want)[:5])
    # Each rule decides some document for some user: private issues, own (author,
    # assignee, group assignee), private notes, tracker limits, builtin roles.
    docs = h.docs.values()
    assert any(d.is_private for d in docs) and any(d.private_note for d in docs)
    assert any(d.owner_ids[1] in world.groups for d in docs if len(d.owner_ids) > 1)
    roles = [*world.roles.values(), world.non_member, world.anonymous]
    assert {r.issues_visibility for r in roles} == {"all", "default", "own"}
    assert any(not r.all_trackers for r in roles)
    assert len({frozenset(v) for v in visible.values()}) == len(visible)  # every user sees a different set
