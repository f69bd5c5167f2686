"""Typed values of one Answer call (the API layer converts them to ragd.v1)."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ragd.domain import Filter, Hit


class Grounding(enum.IntEnum):
    # Values mirror ragd.v1.Grounding.
    CITED = 1          # at least one citation, every [n] names a passage given
    NOT_SUPPORTED = 2  # the model said the passages do not support an answer
    UNCITED = 3        # flagged: no valid citation
    NO_PASSAGES = 4    # nothing permitted matched; the model was not called


@dataclass
class AnswerQuery:
    collection: str
    question: str
    filter: Filter = field(default_factory=Filter)
    top_k: int = 0                    # 0 = answer.top_k
    max_tokens: int = 0               # 0 = answer.max_tokens
    temperature: float | None = None  # None = answer.temperature
    language: str = ""                # "" = the question's language
    group_by_document: bool = False


@dataclass
class Citation:
    passage: int  # [n], 1-based
    hit: Hit


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False  # the server sent no usage: completion_tokens counts streamed pieces


@dataclass
class AnswerTimings:
    expansion_ms: float = 0.0
    retrieval_ms: float = 0.0
    first_token_ms: float = 0.0
    generation_ms: float = 0.0
    total_ms: float = 0.0


@dataclass
class AnswerContext:
    """First event: the passages given to the model, [1] first."""
    passages: list[Hit]
    expanded: bool = False


@dataclass
class AnswerDelta:
    """A piece of the answer's text."""
    text: str


@dataclass
class AnswerDone:
    """Last event."""
    text: str
    citations: list[Citation]
    grounding: Grounding
    invalid_citations: list[int] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    timings: AnswerTimings = field(default_factory=AnswerTimings)
    model: str = ""
    finish_reason: str = ""


AnswerEvent = AnswerContext | AnswerDelta | AnswerDone
