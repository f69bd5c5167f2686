"""Domain types shared by the engine, store and index (no protobuf here)."""
from __future__ import annotations

import enum
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
    updated_at_us: int = 0  # microseconds since the epoch; 0 = unknown
    version: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    viewer_ids: list[int] = field(default_factory=list)
    # Read by filters with grants (proto ragd.v1.Document, fields 12-14).
    tracker_id: int = 0
    owner_ids: list[int] = field(default_factory=list)  # principals whose own document it is
    private_note: bool = False


@dataclass
class DocumentInfo:
    """A stored document without its text (ListDocuments)."""
    id: str
    type: str
    project_id: int
    version: int
    updated_at_us: int
    chunks: int


@dataclass
class DocumentRef:
    id: str
    version: int = 0  # 0 = unversioned delete


class AckStatus(enum.IntEnum):
    # Values mirror ragd.v1.AckStatus so conversion is a cast.
    INDEXED = 1
    UNCHANGED = 2
    STALE = 3
    DELETED = 4
    NOT_FOUND = 5
    FAILED = 6
    QUEUED = 7


@dataclass
class Ack:
    id: str
    status: AckStatus
    version: int = 0
    chunks: int = 0
    error: str = ""
    truncated: bool = False


class SearchMode(enum.IntEnum):
    # Values mirror ragd.v1.SearchMode.
    AUTO = 0
    VECTOR = 1
    KEYWORD = 2
    HYBRID = 3


@dataclass
class MetadataRange:
    key: str
    gte: float | None = None
    lte: float | None = None


class Visibility(enum.IntEnum):
    # Values mirror ragd.v1.Visibility (Redmine's Role#issues_visibility).
    ALL = 1
    DEFAULT = 2
    OWN = 3


@dataclass
class Grant:
    """One role's view (proto ragd.v1.Grant): documents of `types` in `project_ids`
    (of `tracker_ids` when given) that `visibility` admits. `visibility` is an int
    until validated (an unknown proto enum value arrives as its number)."""
    types: list[str] = field(default_factory=list)
    project_ids: list[int] = field(default_factory=list)
    visibility: int = 0
    tracker_ids: list[int] = field(default_factory=list)
    private_notes: bool = False


@dataclass
class Filter:
    project_ids: list[int] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    private_project_ids: list[int] = field(default_factory=list)
    user_id: int = 0
    all_private: bool = False
    metadata_equals: dict[str, str] = field(default_factory=dict)
    metadata_ranges: list[MetadataRange] = field(default_factory=list)
    updated_after_us: int | None = None
    updated_before_us: int | None = None
    exclude_ids: list[str] = field(default_factory=list)
    # When non-empty, visibility is decided by the grants (ORed) for the principal
    # user_id + group_ids; see proto ragd.v1.Filter.
    grants: list[Grant] = field(default_factory=list)
    group_ids: list[int] = field(default_factory=list)


@dataclass
class SearchQuery:
    collection: str
    query: str
    top_k: int = 10
    mode: SearchMode = SearchMode.AUTO
    filter: Filter = field(default_factory=Filter)
    group_by_document: bool = False
    min_score: float = 0.0
    # SearchParams: IVF-PQ lists probed and candidates re-ranked (top_k x factor);
    # 0 = the index's defaults. exact: probe every list.
    nprobe: int = 0
    rerank_factor: int = 0
    exact: bool = False
    # Text embedded beside the query for the vector half of the search (a HyDE
    # draft, ragd.answer); the keyword half uses the query alone.
    expansion: str = ""
    # Read your writes: answer once writes up to this sequence are applied here (0 = no wait).
    min_sequence: int = 0


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
class Hit:
    document: Document  # text omitted (empty): the chunk is in `text`
    chunk_id: int
    text: str
    start: int
    end: int
    score: float
    vector_score: float = 0.0
    keyword_score: float = 0.0
    # Spans of `text` (code points, relative to the chunk) that match the query's terms.
    highlights: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class SearchResult:
    hits: list[Hit]
    mode: SearchMode
    timings: Timings
    # AUTO only: the query asks a question or to explain/compare/summarise (ragd.engine.router).
    complex: bool = False


@dataclass
class WriteResult:
    acks: list[Ack]
    sequence: int
    timings: Timings


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
    applied_sequence: int = 0


class JobState(enum.Enum):
    # Values are what the job store records (and what Stats/GetJob name).
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.PARTIAL, JobState.FAILED)


@dataclass
class JobError:
    document_id: str
    error: str
    attempts: int


@dataclass
class Job:
    """An asynchronous ingestion job (Upsert with wait=false): documents [0, processed)
    are done; `attempts` counts failed tries of the next one."""
    id: str
    collection: str
    state: JobState
    total: int
    done: int = 0
    failed: int = 0
    processed: int = 0
    attempts: int = 0
    errors: list[JobError] = field(default_factory=list)
    created: float = 0.0
    updated: float = 0.0


@dataclass
class ModelInfo:
    name: str
    dimension: int = 0
    max_tokens: int = 0
    provider: str = ""
    sha256: str = ""
