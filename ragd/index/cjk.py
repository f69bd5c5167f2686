"""Keyword analysis of Chinese, Japanese and Korean text: overlapping character bigrams.

CJK scripts write words without spaces, so a word tokenizer sees "ログインできない" as one
token and the query "ログイン" never matches it. Indexing every run of CJK characters
as its overlapping bigrams ("ログ グイ イン ンで でき きな ない") is what Lucene's CJKAnalyzer
and Elasticsearch's `cjk` analyzer do: no dictionary, no out-of-vocabulary words (product
names, katakana loanwords, typos still match), and a query analysed the same way matches
any text that contains its characters in order. A run of one character is kept as it is.

Text outside CJK runs is untouched, so English, code and identifiers are analysed exactly
as before (ERR_CONN_RESET and foo_bar.rb stay phrases of their parts); a document mixing
scripts gets both. Everything here works on code points, so highlights land on the
characters the query matched.

Why bigrams rather than a morphological analyser (SudachiPy, fugashi + unidic-lite, Janome
on PyPI): bigrams need no dictionary to install or keep in step between index and query,
and they find substrings a dictionary segments differently (a query "ログイン" inside
"ログイン画面" is one token for some dictionaries and two for others). The README has the
measured comparison that decided the default (keyword analysis on/off, Japanese set).
"""
from __future__ import annotations

import re

# Han (with extension A, compatibility ideographs and extension B+), hiragana, katakana
# (with the prolonged sound mark and half-width forms) and Hangul syllables and jamo.
_CJK_CLASS = (
    "\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
    "\uff66-\uff9f\uac00-\ud7af\u1100-\u11ff\u3130-\u318f\U00020000-\U0003134f"
)
CJK_RUN = re.compile(f"[{_CJK_CLASS}]+")


def has_cjk(text: str) -> bool:
    return CJK_RUN.search(text) is not None


def bigrams(run: str) -> list[str]:
    """Overlapping bigrams of one CJK run; a single character is its own term."""
    if len(run) < 2:
        return [run] if run else []
    return [run[i:i + 2] for i in range(len(run) - 1)]


def index_text(text: str) -> str:
    """The text tantivy's word tokenizer should see: each CJK run replaced by its bigrams,
    space-separated (consecutive positions, so a phrase of bigrams matches a substring)."""
    if not has_cjk(text):
        return text
    return CJK_RUN.sub(lambda m: " " + " ".join(bigrams(m.group())) + " ", text)


def split_runs(word: str) -> list[tuple[bool, str]]:
    """(is_cjk, piece) pieces of a word, in order ("Redmineでログイン" -> Redmine, でログイン)."""
    out: list[tuple[bool, str]] = []
    at = 0
    for m in CJK_RUN.finditer(word):
        if m.start() > at:
            out.append((False, word[at:m.start()]))
        out.append((True, m.group()))
        at = m.end()
    if at < len(word):
        out.append((False, word[at:]))
    return out


def highlight_spans(text: str, terms: set[str]) -> list[tuple[int, int]]:
    """Code-point spans of `text` covered by a matching bigram (or single character) of
    `terms`; overlapping bigrams merge, so "ログイン" is one span, not three."""
    spans: list[tuple[int, int]] = []
    for m in CJK_RUN.finditer(text):
        run, base = m.group(), m.start()
        if len(run) == 1:
            hits = [(base, base + 1)] if run in terms else []
        else:
            hits = [(base + i, base + i + 2) for i in range(len(run) - 1) if run[i:i + 2] in terms]
        for start, end in hits:
            if spans and start <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(spans[-1][1], end))
            else:
                spans.append((start, end))
    return spans
