"""Synchronous client. Every call carries a deadline (the client's `timeout`, or
`stream_timeout` for a stream, unless the call passes its own); UNAVAILABLE is
retried by gRPC with backoff (ragd_client/policy.py)."""
from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence

import grpc

from . import _convert as c
from . import _health
from . import types as t
from .errors import from_rpc_error
from .policy import STREAM_TIMEOUT_S, TIMEOUT_S, channel_options, default_address
from .v1 import ragd_pb2 as pb
from .v1 import ragd_pb2_grpc

_UNSET = object()


class RagClient:
    """address: "host:port" of `ragd serve` (default: $RAGD_ADDRESS or 127.0.0.1:50051).
    timeout: seconds allowed to each unary call; stream_timeout: to a whole stream
    (None: no deadline). Both can be overridden per call with `timeout=`."""

    def __init__(self, address: str | None = None, *, timeout: float = TIMEOUT_S,
                 stream_timeout: float | None = STREAM_TIMEOUT_S, collection: str = "default"):
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.address = address or default_address()
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        self.collection = collection
        self._channel = grpc.insecure_channel(self.address, options=channel_options())
        self._stub = ragd_pb2_grpc.RagServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> RagClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method, request, timeout: float | None):
        try:
            return method(request, timeout=timeout or self.timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def _stream_deadline(self, timeout):
        return self.stream_timeout if timeout is _UNSET else timeout

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the daemon reports SERVING (model and indexes loaded)."""
        check = _health.check_method(self._channel)
        deadline = time.monotonic() + timeout
        while True:
            try:
                resp = check(_health.HealthCheckRequest(service="ragd.v1.RagService"), timeout=2)
                if resp.status == _health.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"ragd at {self.address} not SERVING after {timeout:.0f} s")
            time.sleep(0.1)

    def get_job(self, job_id: str, *, timeout: float | None = None) -> t.Job:
        return c.job(self._call(self._stub.GetJob, pb.GetJobRequest(job_id=job_id), timeout))

    def upsert(self, docs: Sequence[c.DocLike], *, collection: str | None = None, wait: bool = True,
               timeout: float | None = None) -> t.WriteResult:
        req = pb.UpsertRequest(collection=collection or self.collection, wait=wait,
                               documents=[c.document_pb(d) for d in docs])
        return c.write_result(self._call(self._stub.Upsert, req, timeout))

    def index_stream(self, batches: Iterable[Sequence[c.DocLike]], *, collection: str | None = None,
                     timeout: float | None = _UNSET) -> Iterator[t.WriteResult]:
        """Stream batches of documents; yields one result (acks) per batch, in order.
        `timeout` bounds the whole stream (default: the client's stream_timeout; None: no deadline)."""
        coll = collection or self.collection
        requests = (pb.IndexStreamRequest(collection=coll, documents=[c.document_pb(d) for d in batch])
                    for batch in batches)
        try:
            for resp in self._stub.IndexStream(requests, timeout=self._stream_deadline(timeout)):
                yield c.write_result(resp)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def watch_job(self, job_id: str, *, timeout: float | None = _UNSET) -> Iterator[t.Job]:
        """The job's state now and after every change, until finished. `timeout` bounds the whole watch."""
        try:
            for m in self._stub.WatchJob(pb.GetJobRequest(job_id=job_id), timeout=self._stream_deadline(timeout)):
                yield c.job(m)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def search_stream(self, queries: Iterable[tuple[str, str]], top_k: int = 10, *,
                      filter: t.Filter | Mapping | None = None, mode: str = "auto",
                      collection: str | None = None, timeout: float | None = _UNSET):
        """Pipelined searches: (tag, query) in, (tag, SearchResult or RagError) out, in order."""
        requests = c.search_stream_requests(collection or self.collection, queries, top_k, filter, mode)
        try:
            for m in self._stub.SearchStream(requests, timeout=self._stream_deadline(timeout)):
                yield c.stream_result(m)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def delete(self, ids: Iterable[str], *, versions: Mapping[str, int] | None = None,
               collection: str | None = None, timeout: float | None = None) -> t.WriteResult:
        req = c.delete_request(collection or self.collection, ids, versions)
        return c.write_result(self._call(self._stub.Delete, req, timeout))

    def search(self, query: str, top_k: int = 10, *, filter: t.Filter | Mapping | None = None,
               mode: str = "auto", group_by_document: bool = False, min_score: float = 0.0,
               collection: str | None = None, timeout: float | None = None) -> t.SearchResult:
        req = c.search_request(collection or self.collection, query, top_k, filter, mode,
                               group_by_document, min_score)
        return c.search_result(self._call(self._stub.Search, req, timeout))

    def similar(self, doc_id: str, top_k: int = 10, *, filter: t.Filter | Mapping | None = None,
                min_score: float = 0.0, collection: str | None = None,
                timeout: float | None = None) -> t.SearchResult:
        req = pb.SimilarRequest(collection=collection or self.collection, document_id=doc_id, top_k=top_k,
                                filter=c.filter_pb(filter), min_score=min_score)
        return c.search_result(self._call(self._stub.Similar, req, timeout))

    def embed(self, texts: Sequence[str], *, timeout: float | None = None) -> t.EmbedResult:
        return c.embed_result(self._call(self._stub.Embed, pb.EmbedRequest(texts=list(texts)), timeout))

    def stats(self, collection: str = "", *, timeout: float | None = None) -> t.Stats:
        return c.stats(self._call(self._stub.Stats, pb.StatsRequest(collection=collection), timeout))

    def answer(self, question: str, top_k: int = 0, *, filter: t.Filter | Mapping | None = None,
               max_tokens: int = 0, temperature: float | None = None, language: str = "",
               group_by_document: bool = False, collection: str | None = None,
               timeout: float | None = _UNSET) -> Iterator[t.AnswerContext | t.AnswerDelta | t.AnswerDone]:
        """Answer a question from the documents `filter` lets the caller see, streamed: an AnswerContext
        (the passages), AnswerDelta pieces of text, then AnswerDone (citations, grounding, usage).
        Leaving the loop early (break, an exception) cancels the call, which stops the generation.
        top_k, max_tokens 0 and temperature None: the daemon's defaults. `timeout` bounds the whole
        answer (default: the client's stream_timeout; None: no deadline)."""
        req = c.answer_request(collection or self.collection, question, top_k, filter, max_tokens, temperature,
                               language, group_by_document)
        call = self._stub.Answer(req, timeout=self._stream_deadline(timeout))
        try:
            for m in call:
                yield c.answer_event(m)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None
        finally:
            call.cancel()  # no-op once finished; otherwise the daemon stops generating

    def ask(self, question: str, top_k: int = 0, **kwargs) -> t.Answer:
        """answer(), collected: the passages, the whole text and its citations."""
        collector = c.AnswerCollector()
        for event in self.answer(question, top_k, **kwargs):
            collector.add(event)
        return collector.answer()

    def snapshot(self, path: str, *, timeout: float | None = None) -> tuple[str, int, int]:
        """Consistent backup of the daemon's data dir into the new directory `path` (on the daemon's
        host); returns (path, sequence, bytes)."""
        m = self._call(self._stub.Snapshot, pb.SnapshotRequest(path=path), timeout)
        return m.path, m.sequence, m.bytes
