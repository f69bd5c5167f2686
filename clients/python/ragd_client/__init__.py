"""ragd_client: typed sync and asyncio clients for the ragd gRPC API.

    from ragd_client import RagClient
    with RagClient("127.0.0.1:50051") as rag:
        rag.upsert([{"id": "issue:1", "title": "Login fails", "text": "...", "project_id": 3}])
        for hit in rag.search("cannot sign in", top_k=5, filter={"project_ids": [3]}).hits:
            print(hit.score, hit.document_id, hit.text)
"""
from .aio import AsyncRagClient
from .client import RagClient
from .errors import (
                     FailedPrecondition,
                     InvalidArgument,
                     NotFound,
                     RagError,
                     ResourceExhausted,
                     Unavailable,
                     Unimplemented,
)
from .types import (
                     Ack,
                     Answer,
                     AnswerContext,
                     AnswerDelta,
                     AnswerDone,
                     AnswerTimings,
                     Citation,
                     CollectionStats,
                     Document,
                     EmbedResult,
                     Filter,
                     Grant,
                     Hit,
                     Job,
                     JobError,
                     MetadataRange,
                     ModelInfo,
                     SearchResult,
                     Stats,
                     Timings,
                     TokenUsage,
                     WriteResult,
)

__all__ = ["RagClient", "AsyncRagClient", "RagError", "InvalidArgument", "NotFound", "Unavailable",
           "ResourceExhausted", "Unimplemented", "FailedPrecondition", "Ack", "CollectionStats", "Document",
           "EmbedResult", "Filter", "Grant", "Hit", "Job", "JobError", "MetadataRange", "ModelInfo", "SearchResult",
           "Stats", "Timings", "WriteResult", "Answer", "AnswerContext", "AnswerDelta", "AnswerDone", "AnswerTimings",
           "Citation", "TokenUsage"]
