"""The post-check of an answer: which [n] markers name a passage that was given,
and whether the answer is grounded at all.

Markers: [1], [1, 2], [1; 3], [2-4] (a range), [1][2]. A number outside 1..len(passages)
is an invalid citation: it is reported and never becomes a citation, so a
citation always points at a passage the caller was allowed to see.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ragd.answer.types import Grounding

_MARKER = re.compile(r"\[\s*(\d+(?:\s*(?:[,;]|-|–|and)\s*\d+)*)\s*\]")
_ITEM = re.compile(r"(\d+)(?:\s*(?:-|–)\s*(\d+))?")
_MAX_RANGE = 50
# "The passages do not support an answer." and the variants small models write.
_NOT_SUPPORTED = re.compile(
    r"\b(passages?|context|documents?|sources?)\s+(do|does)\s+not\s+(support|contain|provide|answer)"
    r"|\bnot\s+supported\s+by\s+the\s+(passages?|context|documents?)", re.IGNORECASE)


@dataclass
class Check:
    cited: list[int]     # valid passage numbers, in order of first citation
    invalid: list[int]   # numbers naming no passage, in order of first mention
    grounding: Grounding


def markers(text: str) -> list[int]:
    """Every number cited in `text`, in order (repeats kept)."""
    out: list[int] = []
    for m in _MARKER.finditer(text):
        for item in _ITEM.finditer(m.group(1)):
            first = int(item.group(1))
            last = int(item.group(2)) if item.group(2) else first
            if first <= last <= first + _MAX_RANGE:
                out.extend(range(first, last + 1))
            else:
                out.append(first)
    return out


def says_not_supported(text: str) -> bool:
    return bool(_NOT_SUPPORTED.search(text))


def check(text: str, n_passages: int) -> Check:
    cited: list[int] = []
    invalid: list[int] = []
    for n in markers(text):
        bucket = cited if 1 <= n <= n_passages else invalid
        if n not in bucket:
            bucket.append(n)
    if cited:
        grounding = Grounding.CITED
    elif says_not_supported(text):
        grounding = Grounding.NOT_SUPPORTED
    else:
        grounding = Grounding.UNCITED
    return Check(cited, invalid, grounding)
