"""The AUTO-mode cost router (the RedMica design's): a short, keyword-like query
(an identifier, "#1234", a file name, an error code, a quoted phrase) is answered by
the keyword index alone, without touching the model; anything else (a natural-language
question or description) goes HYBRID. The route taken is reported in the response.

The third route, complex: a question, or a request to explain, compare or
summarise, is flagged (SearchResponse.complex) so that a client may offer an
answer (the Answer RPC); Search itself still runs HYBRID and never a model.
"""
from __future__ import annotations

import re

from ragd.domain import SearchMode
from ragd.index.keyword import is_identifier

__all__ = ["route", "is_identifier", "is_complex"]

# A query opening with one of these (and at least three words long) is a question
# even without its question mark: "how to reset the LDAP password".
_QUESTION_OPENERS = frozenset(
    "why how what when where which who whom whose is are was were does do did can could should would will "
    "has have had may might must".split())
_ASKS = re.compile(
    r"\b(explain\w*|compar\w*|contrast\w*|summar\w*|overview|differen\w*|versus|vs\.?|pros and cons|"
    r"trade-?offs?|root cause|describe|tell me)(?!\w)", re.IGNORECASE)
_WORD = re.compile(r"[\w']+")


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


def is_complex(query: str) -> bool:
    """A question (a question mark, or a question word opening three words or more),
    or a request to explain, compare or summarise."""
    text = query.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return False  # a quoted phrase is a lookup
    if text.endswith(("?", "\uff1f")):  # ASCII and full-width question marks
        return True
    words = _WORD.findall(text.lower())
    if len(words) >= 3 and words[0] in _QUESTION_OPENERS:
        return True
    return bool(_ASKS.search(text))
