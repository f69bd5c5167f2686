"""Typed values the client takes and returns (plain dataclasses, no protobuf)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass
class Document:
    id: str
    text: str
    title: str = ""
    project_id: int = 0
    type: str = ""
    is_private: bool = False
    author_id: int = 0
    updated_at: dt.datetime | None = None
    version: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    viewer_ids: list[int] = field(default_factory=list)
    # Read by filters with grants (see Grant): the tracker, the principals
    # whose own document it is (Redmine: the author and assignee), and
    # whether it is a journal with private notes.
    tracker_id: int = 0
    owner_ids: list[int] = field(default_factory=list)
    private_note: bool = False


@dataclass
class Grant:
    """One Redmine role's view (proto ragd.v1.Grant): documents of `types` in
    `project_ids` (of `tracker_ids` when given) that `visibility` admits: "all"
    (private ones too), "default" (not private, or the principal's own) or "own".
    private_notes: journals with private notes are visible. A filter's grants are ORed."""
    types: list[str]
    project_ids: list[int]
    visibility: str  # "all", "default" or "own"
    tracker_ids: list[int] = field(default_factory=list)
    private_notes: bool = False


@dataclass
class MetadataRange:
    key: str
    gte: float | None = None
    lte: float | None = None


@dataclass
class Filter:
    """Permission and attribute filter (see proto ragd.v1.Filter); applied inside the index search.

    With `grants` (Redmine's per-role rules) visibility is decided by the grants for
    the principal user_id + group_ids, and private_project_ids / all_private must be
    unset; without grants, private documents follow private_project_ids, user_id
    (author or viewer) and all_private."""
    project_ids: list[int] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    private_project_ids: list[int] = field(default_factory=list)
    user_id: int = 0
    all_private: bool = False
    metadata_equals: dict[str, str] = field(default_factory=dict)
    metadata_ranges: list[MetadataRange] = field(default_factory=list)
    updated_after: dt.datetime | None = None
    updated_before: dt.datetime | None = None
    exclude_ids: list[str] = field(default_factory=list)
    grants: list[Grant] = field(default_factory=list)
    group_ids: list[int] = field(default_factory=list)


@dataclass
class Timings:
    queue_ms: float = 0.0
    tokenize_ms: float = 0.0
    embed_ms: float = 0.0
    search_ms: float = 0.0
    store_ms: float = 0.0
    total_ms: float = 0.0
    cache_hit: bool = False


@dataclass
class Ack:
    id: str
    status: str  # "indexed", "unchanged", "stale", "deleted", "not_found", "failed", "queued"
    version: int = 0
    chunks: int = 0
    error: str = ""
    truncated: bool = False


@dataclass
class WriteResult:
    acks: list[Ack]
    sequence: int
    job_id: str = ""
    timings: Timings = field(default_factory=Timings)


@dataclass
class Hit:
    document_id: str
    chunk_id: int
    text: str
    start: int
    end: int
    score: float
    document: Document
    vector_score: float = 0.0
    keyword_score: float = 0.0
    highlights: list[tuple[int, int]] = field(default_factory=list)  # code points within `text`


@dataclass
class SearchResult:
    hits: list[Hit]
    mode: str  # the route actually taken: "vector", "keyword" or "hybrid"
    timings: Timings
    # AUTO only: the query is a question or asks to explain/compare/summarise; offer answer() for it.
    complex: bool = False


@dataclass
class EmbedResult:
    vectors: list[list[float]]  # one L2-normalised vector of `dimension` floats per text
    dimension: int
    tokens: list[int]
    truncated: list[bool]
    model: str
    timings: Timings

    def array(self):
        """The vectors as a float32 numpy array [n, dimension] (needs numpy: `pip install ragd-client[numpy]`)."""
        import numpy as np
        return np.array(self.vectors, dtype=np.float32).reshape(len(self.vectors), self.dimension)


@dataclass
class CollectionStats:
    name: str
    documents: int
    chunks: int
    index_kind: str
    index_vectors: int
    tombstones: int
    sequence: int
    dimension: int


@dataclass
class ModelInfo:
    name: str
    dimension: int
    max_tokens: int
    provider: str
    sha256: str


@dataclass
class Stats:
    collections: list[CollectionStats]
    model: ModelInfo
    version: str
    uptime_s: float
    disk_bytes: int


@dataclass
class JobError:
    document_id: str
    error: str
    attempts: int


@dataclass
class Job:
    id: str
    collection: str
    state: str  # "queued", "running", "succeeded", "partial" (some documents failed), "failed"
    total: int
    done: int
    failed: int
    errors: list[JobError]

    @property
    def finished(self) -> bool:
        return self.state in ("succeeded", "partial", "failed")


# ---------------------------------------------------------------- answers

@dataclass
class AnswerContext:
    """First event of answer(): the passages given to the model; passages[i] is cited as [i+1]."""
    passages: list[Hit]
    expanded: bool = False  # the question was expanded (HyDE) before retrieval


@dataclass
class AnswerDelta:
    """A piece of the answer's text, as the model generates it."""
    text: str


@dataclass
class Citation:
    passage: int  # [n]
    document_id: str
    chunk_id: int
    start: int    # code points of the cited chunk in the document text
    end: int
    score: float


@dataclass
class TokenUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False


@dataclass
class AnswerTimings:
    expansion_ms: float = 0.0
    retrieval_ms: float = 0.0
    first_token_ms: float = 0.0
    generation_ms: float = 0.0
    total_ms: float = 0.0


@dataclass
class AnswerDone:
    """Last event of answer()."""
    text: str
    citations: list[Citation]
    # "cited", "not_supported" (the passages do not answer), "uncited" (flagged: no valid
    # citation, show it as unverified) or "no_passages" (nothing permitted matched; no model call)
    grounding: str
    invalid_citations: list[int] = field(default_factory=list)
    usage: TokenUsage = field(default_factory=TokenUsage)
    timings: AnswerTimings = field(default_factory=AnswerTimings)
    model: str = ""
    finish_reason: str = ""

    @property
    def flagged(self) -> bool:
        """True when the answer cites no passage it was given."""
        return self.grounding == "uncited"


@dataclass
class Answer(AnswerDone):
    """A whole answer, as ask() returns it: AnswerDone with the passages it was given."""
    passages: list[Hit] = field(default_factory=list)
    expanded: bool = False

    def cited_passages(self) -> list[Hit]:
        return [self.passages[c.passage - 1] for c in self.citations]
