import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AckStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACK_STATUS_UNSPECIFIED: _ClassVar[AckStatus]
    ACK_STATUS_INDEXED: _ClassVar[AckStatus]
    ACK_STATUS_UNCHANGED: _ClassVar[AckStatus]
    ACK_STATUS_STALE: _ClassVar[AckStatus]
    ACK_STATUS_DELETED: _ClassVar[AckStatus]
    ACK_STATUS_NOT_FOUND: _ClassVar[AckStatus]
    ACK_STATUS_FAILED: _ClassVar[AckStatus]
    ACK_STATUS_QUEUED: _ClassVar[AckStatus]

class SearchMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEARCH_MODE_AUTO: _ClassVar[SearchMode]
    SEARCH_MODE_VECTOR: _ClassVar[SearchMode]
    SEARCH_MODE_KEYWORD: _ClassVar[SearchMode]
    SEARCH_MODE_HYBRID: _ClassVar[SearchMode]

class Visibility(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VISIBILITY_UNSPECIFIED: _ClassVar[Visibility]
    VISIBILITY_ALL: _ClassVar[Visibility]
    VISIBILITY_DEFAULT: _ClassVar[Visibility]
    VISIBILITY_OWN: _ClassVar[Visibility]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_PARTIAL: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]

class Grounding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GROUNDING_UNSPECIFIED: _ClassVar[Grounding]
    GROUNDING_CITED: _ClassVar[Grounding]
    GROUNDING_NOT_SUPPORTED: _ClassVar[Grounding]
    GROUNDING_UNCITED: _ClassVar[Grounding]
    GROUNDING_NO_PASSAGES: _ClassVar[Grounding]
ACK_STATUS_UNSPECIFIED: AckStatus
ACK_STATUS_INDEXED: AckStatus
ACK_STATUS_UNCHANGED: AckStatus
ACK_STATUS_STALE: AckStatus
ACK_STATUS_DELETED: AckStatus
ACK_STATUS_NOT_FOUND: AckStatus
ACK_STATUS_FAILED: AckStatus
ACK_STATUS_QUEUED: AckStatus
SEARCH_MODE_AUTO: SearchMode
SEARCH_MODE_VECTOR: SearchMode
SEARCH_MODE_KEYWORD: SearchMode
SEARCH_MODE_HYBRID: SearchMode
VISIBILITY_UNSPECIFIED: Visibility
VISIBILITY_ALL: Visibility
VISIBILITY_DEFAULT: Visibility
VISIBILITY_OWN: Visibility
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_PARTIAL: JobState
JOB_STATE_FAILED: JobState
GROUNDING_UNSPECIFIED: Grounding
GROUNDING_CITED: Grounding
GROUNDING_NOT_SUPPORTED: Grounding
GROUNDING_UNCITED: Grounding
GROUNDING_NO_PASSAGES: Grounding

class Document(_message.Message):
    __slots__ = ("id", "title", "text", "project_id", "type", "is_private", "author_id", "updated_at", "version", "metadata", "viewer_ids", "tracker_id", "owner_ids", "private_note")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    IS_PRIVATE_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    VIEWER_IDS_FIELD_NUMBER: _ClassVar[int]
    TRACKER_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_IDS_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_NOTE_FIELD_NUMBER: _ClassVar[int]
    id: str
    title: str
    text: str
    project_id: int
    type: str
    is_private: bool
    author_id: int
    updated_at: _timestamp_pb2.Timestamp
    version: int
    metadata: _containers.ScalarMap[str, str]
    viewer_ids: _containers.RepeatedScalarFieldContainer[int]
    tracker_id: int
    owner_ids: _containers.RepeatedScalarFieldContainer[int]
    private_note: bool
    def __init__(self, id: _Optional[str] = ..., title: _Optional[str] = ..., text: _Optional[str] = ..., project_id: _Optional[int] = ..., type: _Optional[str] = ..., is_private: _Optional[bool] = ..., author_id: _Optional[int] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ..., metadata: _Optional[_Mapping[str, str]] = ..., viewer_ids: _Optional[_Iterable[int]] = ..., tracker_id: _Optional[int] = ..., owner_ids: _Optional[_Iterable[int]] = ..., private_note: _Optional[bool] = ...) -> None: ...

class DocumentAck(_message.Message):
    __slots__ = ("id", "status", "version", "chunks", "error", "truncated")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    id: str
    status: AckStatus
    version: int
    chunks: int
    error: str
    truncated: bool
    def __init__(self, id: _Optional[str] = ..., status: _Optional[_Union[AckStatus, str]] = ..., version: _Optional[int] = ..., chunks: _Optional[int] = ..., error: _Optional[str] = ..., truncated: _Optional[bool] = ...) -> None: ...

class UpsertRequest(_message.Message):
    __slots__ = ("collection", "documents", "wait")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    documents: _containers.RepeatedCompositeFieldContainer[Document]
    wait: bool
    def __init__(self, collection: _Optional[str] = ..., documents: _Optional[_Iterable[_Union[Document, _Mapping]]] = ..., wait: _Optional[bool] = ...) -> None: ...

class UpsertResponse(_message.Message):
    __slots__ = ("acks", "job_id", "sequence", "timings")
    ACKS_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    acks: _containers.RepeatedCompositeFieldContainer[DocumentAck]
    job_id: str
    sequence: int
    timings: Timings
    def __init__(self, acks: _Optional[_Iterable[_Union[DocumentAck, _Mapping]]] = ..., job_id: _Optional[str] = ..., sequence: _Optional[int] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ...) -> None: ...

class IndexStreamRequest(_message.Message):
    __slots__ = ("collection", "documents")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    documents: _containers.RepeatedCompositeFieldContainer[Document]
    def __init__(self, collection: _Optional[str] = ..., documents: _Optional[_Iterable[_Union[Document, _Mapping]]] = ...) -> None: ...

class IndexStreamResponse(_message.Message):
    __slots__ = ("acks", "sequence")
    ACKS_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    acks: _containers.RepeatedCompositeFieldContainer[DocumentAck]
    sequence: int
    def __init__(self, acks: _Optional[_Iterable[_Union[DocumentAck, _Mapping]]] = ..., sequence: _Optional[int] = ...) -> None: ...

class DocumentRef(_message.Message):
    __slots__ = ("id", "version")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: int
    def __init__(self, id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("collection", "ids", "refs", "wait")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    REFS_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    refs: _containers.RepeatedCompositeFieldContainer[DocumentRef]
    wait: bool
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., refs: _Optional[_Iterable[_Union[DocumentRef, _Mapping]]] = ..., wait: _Optional[bool] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("acks", "job_id", "sequence", "timings")
    ACKS_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    acks: _containers.RepeatedCompositeFieldContainer[DocumentAck]
    job_id: str
    sequence: int
    timings: Timings
    def __init__(self, acks: _Optional[_Iterable[_Union[DocumentAck, _Mapping]]] = ..., job_id: _Optional[str] = ..., sequence: _Optional[int] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ...) -> None: ...

class MetadataRange(_message.Message):
    __slots__ = ("key", "gte", "lte")
    KEY_FIELD_NUMBER: _ClassVar[int]
    GTE_FIELD_NUMBER: _ClassVar[int]
    LTE_FIELD_NUMBER: _ClassVar[int]
    key: str
    gte: float
    lte: float
    def __init__(self, key: _Optional[str] = ..., gte: _Optional[float] = ..., lte: _Optional[float] = ...) -> None: ...

class Grant(_message.Message):
    __slots__ = ("types", "project_ids", "visibility", "tracker_ids", "private_notes")
    TYPES_FIELD_NUMBER: _ClassVar[int]
    PROJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    TRACKER_IDS_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_NOTES_FIELD_NUMBER: _ClassVar[int]
    types: _containers.RepeatedScalarFieldContainer[str]
    project_ids: _containers.RepeatedScalarFieldContainer[int]
    visibility: Visibility
    tracker_ids: _containers.RepeatedScalarFieldContainer[int]
    private_notes: bool
    def __init__(self, types: _Optional[_Iterable[str]] = ..., project_ids: _Optional[_Iterable[int]] = ..., visibility: _Optional[_Union[Visibility, str]] = ..., tracker_ids: _Optional[_Iterable[int]] = ..., private_notes: _Optional[bool] = ...) -> None: ...

class Filter(_message.Message):
    __slots__ = ("project_ids", "types", "private_project_ids", "user_id", "all_private", "metadata_equals", "metadata_ranges", "updated_after", "updated_before", "exclude_ids", "grants", "group_ids")
    class MetadataEqualsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PROJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_PROJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ALL_PRIVATE_FIELD_NUMBER: _ClassVar[int]
    METADATA_EQUALS_FIELD_NUMBER: _ClassVar[int]
    METADATA_RANGES_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    UPDATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_IDS_FIELD_NUMBER: _ClassVar[int]
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    GROUP_IDS_FIELD_NUMBER: _ClassVar[int]
    project_ids: _containers.RepeatedScalarFieldContainer[int]
    types: _containers.RepeatedScalarFieldContainer[str]
    private_project_ids: _containers.RepeatedScalarFieldContainer[int]
    user_id: int
    all_private: bool
    metadata_equals: _containers.ScalarMap[str, str]
    metadata_ranges: _containers.RepeatedCompositeFieldContainer[MetadataRange]
    updated_after: _timestamp_pb2.Timestamp
    updated_before: _timestamp_pb2.Timestamp
    exclude_ids: _containers.RepeatedScalarFieldContainer[str]
    grants: _containers.RepeatedCompositeFieldContainer[Grant]
    group_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, project_ids: _Optional[_Iterable[int]] = ..., types: _Optional[_Iterable[str]] = ..., private_project_ids: _Optional[_Iterable[int]] = ..., user_id: _Optional[int] = ..., all_private: _Optional[bool] = ..., metadata_equals: _Optional[_Mapping[str, str]] = ..., metadata_ranges: _Optional[_Iterable[_Union[MetadataRange, _Mapping]]] = ..., updated_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., exclude_ids: _Optional[_Iterable[str]] = ..., grants: _Optional[_Iterable[_Union[Grant, _Mapping]]] = ..., group_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class SearchParams(_message.Message):
    __slots__ = ("nprobe", "rerank_factor", "exact")
    NPROBE_FIELD_NUMBER: _ClassVar[int]
    RERANK_FACTOR_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    nprobe: int
    rerank_factor: int
    exact: bool
    def __init__(self, nprobe: _Optional[int] = ..., rerank_factor: _Optional[int] = ..., exact: _Optional[bool] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("collection", "query", "top_k", "mode", "filter", "group_by_document", "params", "min_score", "min_sequence")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    MIN_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    query: str
    top_k: int
    mode: SearchMode
    filter: Filter
    group_by_document: bool
    params: SearchParams
    min_score: float
    min_sequence: int
    def __init__(self, collection: _Optional[str] = ..., query: _Optional[str] = ..., top_k: _Optional[int] = ..., mode: _Optional[_Union[SearchMode, str]] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., group_by_document: _Optional[bool] = ..., params: _Optional[_Union[SearchParams, _Mapping]] = ..., min_score: _Optional[float] = ..., min_sequence: _Optional[int] = ...) -> None: ...

class Span(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ...) -> None: ...

class Hit(_message.Message):
    __slots__ = ("document_id", "chunk_id", "text", "start", "end", "score", "document", "highlights", "vector_score", "keyword_score")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    HIGHLIGHTS_FIELD_NUMBER: _ClassVar[int]
    VECTOR_SCORE_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_SCORE_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    chunk_id: int
    text: str
    start: int
    end: int
    score: float
    document: Document
    highlights: _containers.RepeatedCompositeFieldContainer[Span]
    vector_score: float
    keyword_score: float
    def __init__(self, document_id: _Optional[str] = ..., chunk_id: _Optional[int] = ..., text: _Optional[str] = ..., start: _Optional[int] = ..., end: _Optional[int] = ..., score: _Optional[float] = ..., document: _Optional[_Union[Document, _Mapping]] = ..., highlights: _Optional[_Iterable[_Union[Span, _Mapping]]] = ..., vector_score: _Optional[float] = ..., keyword_score: _Optional[float] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("queue_ms", "tokenize_ms", "embed_ms", "search_ms", "total_ms", "cache_hit", "store_ms")
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    TOKENIZE_MS_FIELD_NUMBER: _ClassVar[int]
    EMBED_MS_FIELD_NUMBER: _ClassVar[int]
    SEARCH_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    STORE_MS_FIELD_NUMBER: _ClassVar[int]
    queue_ms: float
    tokenize_ms: float
    embed_ms: float
    search_ms: float
    total_ms: float
    cache_hit: bool
    store_ms: float
    def __init__(self, queue_ms: _Optional[float] = ..., tokenize_ms: _Optional[float] = ..., embed_ms: _Optional[float] = ..., search_ms: _Optional[float] = ..., total_ms: _Optional[float] = ..., cache_hit: _Optional[bool] = ..., store_ms: _Optional[float] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits", "mode", "timings", "complex")
    HITS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    COMPLEX_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    mode: SearchMode
    timings: Timings
    complex: bool
    def __init__(self, hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ..., mode: _Optional[_Union[SearchMode, str]] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., complex: _Optional[bool] = ...) -> None: ...

class SearchStreamRequest(_message.Message):
    __slots__ = ("request", "tag")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    request: SearchRequest
    tag: str
    def __init__(self, request: _Optional[_Union[SearchRequest, _Mapping]] = ..., tag: _Optional[str] = ...) -> None: ...

class SearchStreamResponse(_message.Message):
    __slots__ = ("tag", "response", "error_code", "error_message")
    TAG_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    tag: str
    response: SearchResponse
    error_code: int
    error_message: str
    def __init__(self, tag: _Optional[str] = ..., response: _Optional[_Union[SearchResponse, _Mapping]] = ..., error_code: _Optional[int] = ..., error_message: _Optional[str] = ...) -> None: ...

class SimilarRequest(_message.Message):
    __slots__ = ("collection", "document_id", "top_k", "filter", "min_score")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    document_id: str
    top_k: int
    filter: Filter
    min_score: float
    def __init__(self, collection: _Optional[str] = ..., document_id: _Optional[str] = ..., top_k: _Optional[int] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., min_score: _Optional[float] = ...) -> None: ...

class EmbedRequest(_message.Message):
    __slots__ = ("texts", "is_query")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    IS_QUERY_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    is_query: bool
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., is_query: _Optional[bool] = ...) -> None: ...

class Embedding(_message.Message):
    __slots__ = ("values", "tokens", "truncated")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    tokens: int
    truncated: bool
    def __init__(self, values: _Optional[_Iterable[float]] = ..., tokens: _Optional[int] = ..., truncated: _Optional[bool] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("embeddings", "dimension", "model", "timings")
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    embeddings: _containers.RepeatedCompositeFieldContainer[Embedding]
    dimension: int
    model: str
    timings: Timings
    def __init__(self, embeddings: _Optional[_Iterable[_Union[Embedding, _Mapping]]] = ..., dimension: _Optional[int] = ..., model: _Optional[str] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ...) -> None: ...

class JobError(_message.Message):
    __slots__ = ("document_id", "error", "attempts")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    error: str
    attempts: int
    def __init__(self, document_id: _Optional[str] = ..., error: _Optional[str] = ..., attempts: _Optional[int] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "collection", "state", "total", "done", "failed", "errors", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    collection: str
    state: JobState
    total: int
    done: int
    failed: int
    errors: _containers.RepeatedCompositeFieldContainer[JobError]
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., collection: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., total: _Optional[int] = ..., done: _Optional[int] = ..., failed: _Optional[int] = ..., errors: _Optional[_Iterable[_Union[JobError, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class CollectionStats(_message.Message):
    __slots__ = ("name", "documents", "chunks", "index_kind", "index_vectors", "tombstones", "sequence", "dimension", "applied_sequence")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    INDEX_KIND_FIELD_NUMBER: _ClassVar[int]
    INDEX_VECTORS_FIELD_NUMBER: _ClassVar[int]
    TOMBSTONES_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    APPLIED_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    documents: int
    chunks: int
    index_kind: str
    index_vectors: int
    tombstones: int
    sequence: int
    dimension: int
    applied_sequence: int
    def __init__(self, name: _Optional[str] = ..., documents: _Optional[int] = ..., chunks: _Optional[int] = ..., index_kind: _Optional[str] = ..., index_vectors: _Optional[int] = ..., tombstones: _Optional[int] = ..., sequence: _Optional[int] = ..., dimension: _Optional[int] = ..., applied_sequence: _Optional[int] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "dimension", "max_tokens", "provider", "sha256")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    name: str
    dimension: int
    max_tokens: int
    provider: str
    sha256: str
    def __init__(self, name: _Optional[str] = ..., dimension: _Optional[int] = ..., max_tokens: _Optional[int] = ..., provider: _Optional[str] = ..., sha256: _Optional[str] = ...) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("collections", "model", "version", "uptime_s", "disk_bytes")
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    DISK_BYTES_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[CollectionStats]
    model: ModelInfo
    version: str
    uptime_s: float
    disk_bytes: int
    def __init__(self, collections: _Optional[_Iterable[_Union[CollectionStats, _Mapping]]] = ..., model: _Optional[_Union[ModelInfo, _Mapping]] = ..., version: _Optional[str] = ..., uptime_s: _Optional[float] = ..., disk_bytes: _Optional[int] = ...) -> None: ...

class ListDocumentsRequest(_message.Message):
    __slots__ = ("collection", "page_size", "page_token", "types", "project_ids")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    PROJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    page_size: int
    page_token: str
    types: _containers.RepeatedScalarFieldContainer[str]
    project_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, collection: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., types: _Optional[_Iterable[str]] = ..., project_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class DocumentInfo(_message.Message):
    __slots__ = ("id", "type", "project_id", "version", "updated_at", "chunks")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    project_id: int
    version: int
    updated_at: _timestamp_pb2.Timestamp
    chunks: int
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., project_id: _Optional[int] = ..., version: _Optional[int] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., chunks: _Optional[int] = ...) -> None: ...

class ListDocumentsResponse(_message.Message):
    __slots__ = ("documents", "next_page_token")
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    documents: _containers.RepeatedCompositeFieldContainer[DocumentInfo]
    next_page_token: str
    def __init__(self, documents: _Optional[_Iterable[_Union[DocumentInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SnapshotRequest(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class SnapshotResponse(_message.Message):
    __slots__ = ("path", "sequence", "bytes")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    path: str
    sequence: int
    bytes: int
    def __init__(self, path: _Optional[str] = ..., sequence: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class ReindexRequest(_message.Message):
    __slots__ = ("collection", "model")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    collection: str
    model: str
    def __init__(self, collection: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class ReindexResponse(_message.Message):
    __slots__ = ("collection", "from_model", "to_model", "state", "documents_done", "documents_total", "chunks", "error")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FROM_MODEL_FIELD_NUMBER: _ClassVar[int]
    TO_MODEL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_DONE_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    collection: str
    from_model: str
    to_model: str
    state: str
    documents_done: int
    documents_total: int
    chunks: int
    error: str
    def __init__(self, collection: _Optional[str] = ..., from_model: _Optional[str] = ..., to_model: _Optional[str] = ..., state: _Optional[str] = ..., documents_done: _Optional[int] = ..., documents_total: _Optional[int] = ..., chunks: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class AnswerRequest(_message.Message):
    __slots__ = ("collection", "question", "filter", "top_k", "max_tokens", "temperature", "language", "group_by_document")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    question: str
    filter: Filter
    top_k: int
    max_tokens: int
    temperature: float
    language: str
    group_by_document: bool
    def __init__(self, collection: _Optional[str] = ..., question: _Optional[str] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., top_k: _Optional[int] = ..., max_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., language: _Optional[str] = ..., group_by_document: _Optional[bool] = ...) -> None: ...

class AnswerContext(_message.Message):
    __slots__ = ("passages", "expanded")
    PASSAGES_FIELD_NUMBER: _ClassVar[int]
    EXPANDED_FIELD_NUMBER: _ClassVar[int]
    passages: _containers.RepeatedCompositeFieldContainer[Hit]
    expanded: bool
    def __init__(self, passages: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ..., expanded: _Optional[bool] = ...) -> None: ...

class Citation(_message.Message):
    __slots__ = ("passage", "document_id", "chunk_id", "start", "end", "score")
    PASSAGE_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    passage: int
    document_id: str
    chunk_id: int
    start: int
    end: int
    score: float
    def __init__(self, passage: _Optional[int] = ..., document_id: _Optional[str] = ..., chunk_id: _Optional[int] = ..., start: _Optional[int] = ..., end: _Optional[int] = ..., score: _Optional[float] = ...) -> None: ...

class TokenUsage(_message.Message):
    __slots__ = ("prompt_tokens", "completion_tokens", "estimated")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    completion_tokens: int
    estimated: bool
    def __init__(self, prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., estimated: _Optional[bool] = ...) -> None: ...

class AnswerTimings(_message.Message):
    __slots__ = ("expansion_ms", "retrieval_ms", "first_token_ms", "generation_ms", "total_ms")
    EXPANSION_MS_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_MS_FIELD_NUMBER: _ClassVar[int]
    FIRST_TOKEN_MS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    expansion_ms: float
    retrieval_ms: float
    first_token_ms: float
    generation_ms: float
    total_ms: float
    def __init__(self, expansion_ms: _Optional[float] = ..., retrieval_ms: _Optional[float] = ..., first_token_ms: _Optional[float] = ..., generation_ms: _Optional[float] = ..., total_ms: _Optional[float] = ...) -> None: ...

class AnswerDone(_message.Message):
    __slots__ = ("text", "citations", "grounding", "invalid_citations", "usage", "timings", "model", "finish_reason")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CITATIONS_FIELD_NUMBER: _ClassVar[int]
    GROUNDING_FIELD_NUMBER: _ClassVar[int]
    INVALID_CITATIONS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    text: str
    citations: _containers.RepeatedCompositeFieldContainer[Citation]
    grounding: Grounding
    invalid_citations: _containers.RepeatedScalarFieldContainer[int]
    usage: TokenUsage
    timings: AnswerTimings
    model: str
    finish_reason: str
    def __init__(self, text: _Optional[str] = ..., citations: _Optional[_Iterable[_Union[Citation, _Mapping]]] = ..., grounding: _Optional[_Union[Grounding, str]] = ..., invalid_citations: _Optional[_Iterable[int]] = ..., usage: _Optional[_Union[TokenUsage, _Mapping]] = ..., timings: _Optional[_Union[AnswerTimings, _Mapping]] = ..., model: _Optional[str] = ..., finish_reason: _Optional[str] = ...) -> None: ...

class AnswerResponse(_message.Message):
    __slots__ = ("context", "delta", "done")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    context: AnswerContext
    delta: str
    done: AnswerDone
    def __init__(self, context: _Optional[_Union[AnswerContext, _Mapping]] = ..., delta: _Optional[str] = ..., done: _Optional[_Union[AnswerDone, _Mapping]] = ...) -> None: ...
