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

Why bigrams rather than a morphological analyser (measured: benchmarks/model_families.py,
analysers part, on the Japanese set tests/data/redmine_ja; the README has the table): SudachiPy
+ sudachidict_core, fugashi + unidic-lite and Janome, plugged in through the Analysis interface
below, each ranked Redmine's messages worse than bigrams by KEYWORD (nDCG@10 0.73-0.77 vs 0.79 for
two nouns of the message, 0.93-0.94 vs 0.98 for its first two thirds) and indexed 5-50x slower,
with 70-250 MB of dictionary to install and keep in step between index and query. Bigrams find
substrings a dictionary segments differently ("ログイン" inside "ログイン画面" is one token for
some dictionaries and two for others) and rank longer query words higher (more bigrams match).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

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


@dataclass(frozen=True)
class Segment:
    """One indexed term of a CJK run: its code-point span in the run, the term, and
    whether a query's OR-terms drop it (a particle or auxiliary, like an English stop word)."""
    start: int
    end: int
    term: str
    stop: bool = False


class Bigrams:
    """search.keyword_cjk = "bigram": overlapping character bigrams, no dictionary."""
    name = "bigram"
    format_tag = "cjk-bigram"

    def segments(self, run: str) -> list[Segment]:
        if len(run) < 2:
            return [Segment(0, len(run), run)] if run else []
        return [Segment(i, i + 2, run[i:i + 2]) for i in range(len(run) - 1)]


ANALYSES = ("bigram", "off")  # search.keyword_cjk


class Analysis(Protocol):
    """What the keyword index needs of a CJK analysis: Bigrams here; benchmarks/model_families.py
    measures morphological analysers (SudachiPy, fugashi, Janome) through the same interface."""
    name: str
    format_tag: str  # part of the index's format: another tag rebuilds the index

    def segments(self, run: str) -> list[Segment]: ...


def analysis(mode: str | Analysis) -> Analysis | None:
    """The analysis search.keyword_cjk names (None for "off"); an Analysis object is its
    own answer."""
    if not isinstance(mode, str):
        return mode
    if mode not in ANALYSES:
        raise ValueError(f"search.keyword_cjk: {mode!r} is not one of {', '.join(ANALYSES)}")
    return _BIGRAMS if mode == "bigram" else None


def index_text(text: str, an: Analysis | None = None) -> str:
    """The text tantivy's word tokenizer should see: each CJK run replaced by its terms
    (bigrams by default), space-separated (consecutive positions, so a phrase of them
    matches a substring)."""
    if not has_cjk(text):
        return text
    if an is None or isinstance(an, Bigrams):  # the default, on every write: no Segment objects
        return CJK_RUN.sub(lambda m: " " + " ".join(bigrams(m.group())) + " ", text)
    return CJK_RUN.sub(lambda m: " " + " ".join(s.term for s in an.segments(m.group())) + " ", text)


def query_terms(run: str, an: Analysis | None = None) -> str:
    """A query's CJK run as OR-terms: its terms without the stop ones (all of them when
    every one is a stop term, so a query of one particle still searches)."""
    segs = (an or _BIGRAMS).segments(run)
    kept = [s.term for s in segs if not s.stop] or [s.term for s in segs]
    return " ".join(kept)


_BIGRAMS = Bigrams()


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


def highlight_spans(text: str, terms: set[str], an: Analysis | None = None) -> list[tuple[int, int]]:
    """Code-point spans of `text` covered by a matching term of `terms` (a bigram, a single
    character or a morpheme); overlapping or touching ones merge, so "ログイン" is one span,
    not three."""
    seg = (an or _BIGRAMS).segments
    spans: list[tuple[int, int]] = []
    for m in CJK_RUN.finditer(text):
        base = m.start()
        for s in seg(m.group()):
            if s.term.lower() not in terms:
                continue
            start, end = base + s.start, base + s.end
            if spans and start <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(spans[-1][1], end))
            else:
                spans.append((start, end))
    return spans
