"""asyncio client: the same methods as RagClient, awaitable."""
from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence

import grpc

from . import _convert as c
from . import types as t
from .client import _UNSET
from .errors import from_rpc_error
from .policy import STREAM_TIMEOUT_S, TIMEOUT_S, channel_options, default_address
from .v1 import ragd_pb2 as pb
from .v1 import ragd_pb2_grpc


class AsyncRagClient:
    """The RagClient's constructor arguments and defaults (ragd_client/policy.py)."""

    def __init__(self, address: str | None = None, *, timeout: float = TIMEOUT_S,
                 stream_timeout: float | None = STREAM_TIMEOUT_S, collection: str = "default"):
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.address = address or default_address()
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        self.collection = collection
        self._channel = grpc.aio.insecure_channel(self.address, options=channel_options())
        self._stub = ragd_pb2_grpc.RagServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncRagClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _call(self, method, request, timeout: float | None):
        try:
            return await method(request, timeout=timeout or self.timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def _stream_deadline(self, timeout):
        return self.stream_timeout if timeout is _UNSET else timeout

    async def get_job(self, job_id: str, *, timeout: float | None = None) -> t.Job:
        return c.job(await self._call(self._stub.GetJob, pb.GetJobRequest(job_id=job_id), timeout))

    async def upsert(self, docs: Sequence[c.DocLike], *, collection: str | None = None, wait: bool = True,
                     timeout: float | None = None) -> t.WriteResult:
        req = pb.UpsertRequest(collection=collection or self.collection, wait=wait,
                               documents=[c.document_pb(d) for d in docs])
        return c.write_result(await self._call(self._stub.Upsert, req, timeout))

    async def index_stream(self, batches: Iterable[Sequence[c.DocLike]], *, collection: str | None = None,
                           timeout: float | None = _UNSET) -> AsyncIterator[t.WriteResult]:
        coll = collection or self.collection
        requests = (pb.IndexStreamRequest(collection=coll, documents=[c.document_pb(d) for d in batch])
                    for batch in batches)
        try:
            async for resp in self._stub.IndexStream(requests, timeout=self._stream_deadline(timeout)):
                yield c.write_result(resp)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    async def watch_job(self, job_id: str, *, timeout: float | None = _UNSET) -> AsyncIterator[t.Job]:
        try:
            async for m in self._stub.WatchJob(pb.GetJobRequest(job_id=job_id), timeout=self._stream_deadline(timeout)):
                yield c.job(m)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    async def delete(self, ids: Iterable[str], *, versions: Mapping[str, int] | None = None,
                     collection: str | None = None, timeout: float | None = None) -> t.WriteResult:
        req = c.delete_request(collection or self.collection, ids, versions)
        return c.write_result(await self._call(self._stub.Delete, req, timeout))

    async def search(self, query: str, top_k: int = 10, *, filter: t.Filter | Mapping | None = None,
                     mode: str = "auto", group_by_document: bool = False, min_score: float = 0.0,
                     collection: str | None = None, timeout: float | None = None) -> t.SearchResult:
        req = c.search_request(collection or self.collection, query, top_k, filter, mode,
                               group_by_document, min_score)
        return c.search_result(await self._call(self._stub.Search, req, timeout))

    async def similar(self, doc_id: str, top_k: int = 10, *, filter: t.Filter | Mapping | None = None,
                      min_score: float = 0.0, collection: str | None = None,
                      timeout: float | None = None) -> t.SearchResult:
        req = pb.SimilarRequest(collection=collection or self.collection, document_id=doc_id, top_k=top_k,
                                filter=c.filter_pb(filter), min_score=min_score)
        return c.search_result(await self._call(self._stub.Similar, req, timeout))

    async def embed(self, texts: Sequence[str], *, timeout: float | None = None) -> t.EmbedResult:
        return c.embed_result(await self._call(self._stub.Embed, pb.EmbedRequest(texts=list(texts)), timeout))

    async def stats(self, collection: str = "", *, timeout: float | None = None) -> t.Stats:
        return c.stats(await self._call(self._stub.Stats, pb.StatsRequest(collection=collection), timeout))

    async def search_stream(self, queries, top_k: int = 10, *, filter: t.Filter | Mapping | None = None,
                            mode: str = "auto", collection: str | None = None,
                            timeout: float | None = _UNSET) -> AsyncIterator:
        """Pipelined searches: (tag, query) in, (tag, SearchResult or RagError) out, in order."""
        requests = c.search_stream_requests(collection or self.collection, queries, top_k, filter, mode)
        try:
            async for m in self._stub.SearchStream(requests, timeout=self._stream_deadline(timeout)):
                yield c.stream_result(m)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    async def answer(self, question: str, top_k: int = 0, *, filter: t.Filter | Mapping | None = None,
                     max_tokens: int = 0, temperature: float | None = None, language: str = "",
                     group_by_document: bool = False, collection: str | None = None,
                     timeout: float | None = _UNSET) -> AsyncIterator:
        """As RagClient.answer: AnswerContext, AnswerDelta..., AnswerDone. Closing the iterator early
        (or cancelling the task) cancels the call, which stops the generation."""
        req = c.answer_request(collection or self.collection, question, top_k, filter, max_tokens, temperature,
                               language, group_by_document)
        call = self._stub.Answer(req, timeout=self._stream_deadline(timeout))
        try:
            async for m in call:
                yield c.answer_event(m)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None
        finally:
            call.cancel()

    async def ask(self, question: str, top_k: int = 0, **kwargs) -> t.Answer:
        collector = c.AnswerCollector()
        async for event in self.answer(question, top_k, **kwargs):
            collector.add(event)
        return collector.answer()

    async def snapshot(self, path: str, *, timeout: float | None = None) -> tuple[str, int, int]:
        m = await self._call(self._stub.Snapshot, pb.SnapshotRequest(path=path), timeout)
        return m.path, m.sequence, m.bytes
