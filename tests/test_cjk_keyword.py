"""CJK keyword analysis (ragd/index/cjk.py): Japanese, Chinese and Korean text is indexed
and queried as character bigrams, so a word inside a sentence without spaces is found;
identifiers and quoted phrases stay exact; highlights cover the matched characters;
the analysis is part of the index's format (changing it rebuilds); CJK sentences are
chunked at their full stops."""
from __future__ import annotations

import numpy as np

from ragd.domain import Document
from ragd.engine.chunking import Chunker
from ragd.index import cjk
from ragd.index.derived import Change, DocChunks
from ragd.index.keyword import KeywordIndex


def change(texts: dict[int, str], seq: int = 1) -> Change:
    docs = [DocChunks(Document(id=f"d{cid}", text=text), [cid], [text]) for cid, text in texts.items()]
    return Change(seq, (), lambda: (np.zeros(0, np.int64), np.zeros((0, 1), np.float32)), lambda: docs)


def index_with(texts: dict[int, str], mode: str = "bigram") -> KeywordIndex:
    kw = KeywordIndex(None, None, 1, mode)  # in memory, no store: filled with one change
    kw.apply(change(texts))
    return kw


ISSUES = {
    1: "パスワードを再設定した後、ログインできない。エラー ERR_AUTH_42 が表示される。",
    2: "ガントチャートが表示されない。プロジェクトの設定を確認してください。",
    3: "Login fails after a password reset (ERR_AUTH_42).",
    4: "登录后页面显示错误。",  # Chinese
    5: "로그인할 수 없습니다",  # Korean
    6: "ログイン画面のデザインを変更したい",
}


def ids(hits):
    return [c for c, _ in hits]


def test_bigrams_of_runs_and_untouched_latin():
    assert cjk.bigrams("ログイン") == ["ログ", "グイ", "イン"]
    assert cjk.bigrams("字") == ["字"]
    assert cjk.index_text("Redmineでログイン v5.1") == "Redmine でロ ログ グイ イン  v5.1"
    assert cjk.index_text("plain English, code_id.rb") == "plain English, code_id.rb"
    assert cjk.split_runs("Redmineでログイン") == [(False, "Redmine"), (True, "でログイン")]


def test_a_japanese_word_inside_a_sentence_is_found():
    kw = index_with(ISSUES)
    assert set(ids(kw.search("ログイン", 10))) == {1, 6}
    # The issue holding more of the query's bigrams ranks first.
    assert ids(kw.search("ログインできない", 10))[0] == 1
    assert ids(kw.search("ガントチャート", 10)) == [2]
    assert ids(kw.search("登录", 10)) == [4]
    assert ids(kw.search("로그인", 10)) == [5]
    # Without bigrams (the old analysis) the word is invisible inside the sentence.
    assert ids(index_with(ISSUES, "off").search("ログイン", 10)) == []


def test_identifiers_and_quoted_phrases_stay_exact():
    kw = index_with(ISSUES)
    assert set(ids(kw.search("ERR_AUTH_42", 10))) == {1, 3}
    # A quoted CJK phrase is a phrase of its bigrams: the characters in this order only.
    assert ids(kw.search('"ログインできない"', 10)) == [1]
    assert ids(kw.search('"できないログイン"', 10)) == []
    assert ids(kw.search("password reset", 10)) == [3]


def test_highlights_land_on_the_matched_characters():
    kw = index_with(ISSUES)
    text = ISSUES[1]
    spans = kw.highlight(kw.terms("ログイン ERR_AUTH_42"), text)
    assert [text[a:b] for a, b in spans] == ["ログイン", "ERR_AUTH_42"]
    mixed = "Redmineでログイン"
    spans = kw.highlight(kw.terms("redmine ログイン"), mixed)
    assert [mixed[a:b] for a, b in spans] == ["Redmine", "ログイン"]


def test_emoji_punctuation_and_empty_queries_do_not_fail():
    kw = index_with({**ISSUES, 7: "🙂 絵文字 🚀"})
    assert kw.search("!!!。、？", 10) == []
    assert kw.search("", 10) == []
    assert ids(kw.search("🙂絵文字", 10)) == [7]


def test_analysis_is_part_of_the_index_format(tmp_path):
    kw = KeywordIndex(tmp_path / "1", None, 1, "bigram")
    kw.apply(change(ISSUES, seq=7))
    kw.close()
    assert (tmp_path / "1" / "ragd-seq").read_text().split() == ["1+cjk-bigram", "7"]
    assert KeywordIndex(tmp_path / "1", None, 1, "bigram").load() == 7
    # Another analysis does not load it: the recovery rebuilds it from LMDB.
    assert KeywordIndex(tmp_path / "1", None, 1, "off").load() is None


def test_cjk_text_is_chunked_at_full_stops():
    sentence = "パスワードを再設定した後にログインできない問題が発生しています。"
    chunks = Chunker(chunk_size=100, chunk_overlap=0).chunk(sentence * 10)
    assert len(chunks) > 1
    # Every cut falls at a full stop (kept at the start of the next chunk, as LangChain does).
    assert all(c.text.startswith("。") or i == 0 for i, c in enumerate(chunks))
    assert all(len(c.text) <= 100 for c in chunks)
