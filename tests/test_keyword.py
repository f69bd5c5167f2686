"""The tantivy keyword index: filtered search equals "rank every match, then filter",
identifiers are found verbatim, and the index stays in step with LMDB across
restarts (replay after its sequence, rebuild when missing)."""
from __future__ import annotations

import random
import re
import shutil

import numpy as np
import pytest
from test_permissions import WORDS, Harness

from ragd.domain import Document, Filter, SearchMode
from ragd.engine import fusion
from ragd.engine.router import is_identifier, route
from ragd.index.derived import Change, DocChunks
from ragd.index.keyword import KeywordIndex


def _index_with(texts: dict[int, str]) -> KeywordIndex:
    kw = KeywordIndex(None)  # in memory, no store: filled with one change
    docs = [DocChunks(Document(id=f"d{cid}", text=text), [cid], [text]) for cid, text in texts.items()]
    kw.apply(Change(1, (), lambda: (np.zeros(0, np.int64), np.zeros((0, 1), np.float32)), lambda: docs))
    return kw


def test_filtered_search_equals_brute_force_for_every_selectivity():
    rng = random.Random(3)
    n = 4000
    texts = {i: " ".join(rng.choices(WORDS, k=rng.randint(3, 30))) for i in range(n)}
    kw = _index_with(texts)
    for share in (0.001, 0.01, 0.04, 0.06, 0.3, 0.5, 0.7, 0.97, 0.999, 1.0):
        mask = np.zeros(n, dtype=bool)
        mask[rng.sample(range(n), max(1, int(n * share)))] = True
        for query in ("omega", "alpha beta", "desert comet river", "moon"):
            full = kw.search(query, n)  # every match, ranked
            want = [(c, s) for c, s in full if mask[c]][:25]
            got = kw.search(query, 25, mask)
            assert [c for c, _ in got] == [c for c, _ in want] or (
                # equal scores may tie-break differently: compare as score multisets
                sorted(round(s, 4) for _, s in got) == sorted(round(s, 4) for _, s in want)), (share, query)
            assert all(mask[c] for c, _ in got)
            assert len(got) == min(25, len(want))


def test_chunk_ids_beyond_the_mask_are_excluded():
    kw = _index_with({0: "omega", 1: "omega", 2: "omega alpha"})
    mask = np.array([True, False])  # chunk 2 was written after the mask was computed
    assert [c for c, _ in kw.search("omega", 10, mask, admitted=1)] == [0]
    assert [c for c, _ in kw._run(kw._searcher, kw._filtered(kw._query(kw.terms("omega")), mask, 1), 10)] == [0]
    big = np.ones(2, dtype=bool)
    assert sorted(c for c, _ in kw._run(kw._searcher, kw._filtered(kw._query(kw.terms("omega")), big, 2), 10)) == [0, 1]


def test_identifiers_are_phrases_of_their_parts():
    kw = _index_with({0: "the reset happened: ERR_CONN_RESET in mail_handler.rb", 1: "conn reset err handler mail",
                      2: "see #1234 and r990", 3: "nothing here"})
    assert kw.search("ERR_CONN_RESET", 5)[0][0] == 0
    assert kw.search("mail_handler.rb", 5)[0][0] == 0
    assert [c for c, _ in kw.search("#1234", 5)] == [2]
    assert kw.search("zzz", 5) == []
    assert kw.search("the of and", 5) == []  # stop words only
    qt = kw.terms("mail_handler.rb crashed")
    text = "the reset happened: ERR_CONN_RESET in mail_handler.rb"
    spans = kw.highlight(qt, text)
    assert [text[a:b] for a, b in spans] == ["mail_handler", "rb"]


def test_highlights_of_a_page_sharing_one_memo_equal_those_of_each_text_alone():
    kw = KeywordIndex(None)
    qt = kw.terms("Library classification of catalogues")
    texts = ["The library classifies books; classification schemes differ.",
             "Catalogue and catalogues: the LIBRARIES catalogued them.",
             "Nothing here matches, nothing at all.", "library library Library"]
    memo: dict = {}
    shared = [kw.highlight(qt, t, memo=memo) for t in texts]
    assert shared == [kw.highlight(qt, t) for t in texts]
    words = {w for t in texts for w in re.findall(r"\w+", t)}
    assert set(memo) == words  # each distinct word analysed once, whatever text it came from
    assert memo["library"] and memo["LIBRARIES"] and not memo["Nothing"]
    assert [texts[0][a:b] for a, b in shared[0]] == ["library", "classification"]


def test_router_sends_identifiers_to_keyword_and_questions_to_hybrid():
    for q in ("#1234", "ERR_CONN_RESET", "mail_handler.rb", "app/models/issue.rb", "NoMethodError",
              "error 500", "v1.2.3 crash", '"exact phrase here"', "r1234", "user_id"):
        assert route(q) == SearchMode.KEYWORD, q
    for q in ("how do I reset my password?", "backup", "users cannot sign in after the LDAP upgrade",
              "slow page loads", "LDAP login fails", "What is #1234 about?"):
        assert route(q) == SearchMode.HYBRID, q
    assert is_identifier("foo.rb,") and not is_identifier("hello")


def test_rrf_fuses_by_rank():
    fused = fusion.rrf([["a", "b", "c"], ["c", "a", "d"]], k=60)
    assert [k for k, _ in fused][:2] == ["a", "c"]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)


def _docs(n, rng):
    return [Document(id=f"d{i}", title=rng.choice(WORDS), text=" ".join(rng.choices(WORDS, k=20)) + f" tok{i}",
                     project_id=1) for i in range(n)]


def _snapshot(h: Harness):
    kw = h.collections.get("c").keyword
    kw.refresh()
    return {c for c, _ in kw.search(" ".join(WORDS), 100000)}, kw.sequence


def test_persisted_index_replays_the_log_and_rebuilds_when_missing(tmp_path):
    rng = random.Random(1)
    h = Harness(tmp_path, persist=True)
    h.upsert(_docs(50, rng))
    kw = h.collections.get("c").keyword
    assert kw.num_docs == sum(len(h.store.get_doc(1, f"d{i}").chunk_ids) for i in range(50))
    h.upsert(_docs(10, rng))        # rewrites d0..d9 (new chunk ids, old ones removed)
    h.delete(["d20", "d21"])
    # Not committed to tantivy yet (commits happen when a search reads): a crash now
    # leaves the persisted index behind the log; reopening replays it.
    live, _ = set(), None
    for i in range(50):
        rec = h.store.get_doc(1, f"d{i}")
        if rec:
            live |= set(rec.chunk_ids)
    h.collections.get("c").keyword.close(commit=False)  # "crash": the staged writes are lost
    h.close()

    h2 = Harness(tmp_path, persist=True)  # opens the collection: replays the log into the keyword index
    assert h2.collections.get("c").recovery["keyword index"].replayed == 2
    ids, seq = _snapshot(h2)
    assert ids == live
    assert seq == h2.store.sequence()
    assert h2.searcher.search(_query("tok21")).hits == []
    assert h2.searcher.search(_query("tok5")).hits[0].document.id == "d5"
    h2.close()

    # Missing entirely: rebuilt from LMDB.
    shutil.rmtree(tmp_path / "keyword")
    h3 = Harness(tmp_path, persist=True)
    assert h3.collections.get("c").recovery["keyword index"].source == "rebuilt from LMDB"
    assert _snapshot(h3)[0] == live
    h3.close()


def _query(text):
    from ragd.domain import SearchQuery
    return SearchQuery(collection="c", query=text, top_k=5, mode=SearchMode.KEYWORD, filter=Filter())


def test_quoted_query_is_a_phrase():
    kw = _index_with({0: "the mail handler crashed", 1: "handler of mail crashed"})
    assert [c for c, _ in kw.search('"mail handler"', 5)] == [0]
    assert sorted(c for c, _ in kw.search("mail handler", 5)) == [0, 1]


def test_relative_score_fusion_keeps_score_gaps():
    fused = dict(fusion.relative_score([[("a", 0.9), ("b", 0.2), ("c", 0.1)], [("c", 12.0), ("d", 3.0)]]))
    assert fused["a"] == pytest.approx(0.5) and fused["c"] == pytest.approx(0.5)
    assert fused["b"] == pytest.approx(0.5 * 0.125) and fused["d"] == 0.0
    assert dict(fusion.relative_score([[("x", 1.0)], []]))["x"] == pytest.approx(0.5)


def test_index_ahead_of_the_store_is_rebuilt(tmp_path):
    rng = random.Random(2)
    h = Harness(tmp_path, persist=True)
    h.upsert(_docs(5, rng))
    h.close()
    seq_file = tmp_path / "keyword" / "1" / "ragd-seq"
    fmt, seq = seq_file.read_text().split()
    seq_file.write_text(f"{fmt} {int(seq) + 100}\n")  # as if LMDB were restored from an older backup
    h2 = Harness(tmp_path, persist=True)
    rec = h2.collections.get("c").recovery["keyword index"]
    assert (rec.source, rec.reason) == ("rebuilt from LMDB", "ahead of the store")
    assert h2.collections.get("c").keyword.sequence == h2.store.sequence()
    assert h2.searcher.search(_query("tok3")).hits[0].document.id == "d3"
    h2.close()
