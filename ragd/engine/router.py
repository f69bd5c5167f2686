"""The AUTO-mode cost router (the RedMica design's): a short, keyword-like query
(an identifier, "#1234", a file name, an error code, a quoted phrase) is answered by
the keyword index alone, without touching the model; anything else (a natural-language
question or description) goes HYBRID. The route taken is reported in the response.
"""
from __future__ import annotations

from ragd.domain import SearchMode
from ragd.index.keyword import is_identifier

__all__ = ["route", "is_identifier"]


def route(query: str, max_words: int = 4) -> SearchMode:
    """KEYWORD for a short identifier-like query, HYBRID otherwise."""
    text = query.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return SearchMode.KEYWORD  # an explicitly quoted phrase
    words = text.split()
    if not words or len(words) > max_words:
        return SearchMode.HYBRID
    if text.endswith("?"):
        return SearchMode.HYBRID
    return SearchMode.KEYWORD if any(is_identifier(w) for w in words) else SearchMode.HYBRID
