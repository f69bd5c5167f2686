"""ragd.v1.RagService: protobuf in, engine call, protobuf out. No logic lives here."""
from __future__ import annotations

import asyncio
import collections
import contextlib

import grpc

from ragd.api import convert
from ragd.api.errors import rpc, status_for
from ragd.api.lenient import BadRequest, check, deserializer
from ragd.domain import Ack, AckStatus
from ragd.engine import validate
from ragd.engine.engine import Engine
from ragd.v1 import ragd_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["RagService"]


class RagServicer:
    def __init__(self, engine: Engine):
        self.engine = engine

    @rpc
    async def Upsert(self, request, context):
        req = check(request)
        docs = [convert.document(d) for d in req.documents]
        if not req.wait and not self.engine.clustered:  # cluster mode: the write log is the queue
            job = await self.engine.submit_job(req.collection, docs)
            resp = pb.UpsertResponse(job_id=job.id)
            convert.acks([Ack(d.id, AckStatus.QUEUED, d.version) for d in docs], resp.acks)
            return resp
        result = await self.engine.upsert(req.collection, docs)
        resp = pb.UpsertResponse(sequence=result.sequence)
        convert.acks(result.acks, resp.acks)
        convert.timings(result.timings, resp.timings)
        return resp

    @rpc
    async def IndexStream(self, request_iterator, context):
        # Up to `stream_depth` messages are worked on at once: the next batch is
        # chunked and embedded while the previous one commits (commits stay in
        # stream order). The reader stops pulling messages while that many are
        # in flight, so a slow embedder slows the client (HTTP/2 flow control)
        # instead of growing server memory.
        depth = self.engine.stream_depth
        collection = None
        pending: collections.deque[asyncio.Task] = collections.deque()
        try:
            async for request in request_iterator:
                req = check(request)
                collection = collection if collection is not None else req.collection
                if not req.documents:
                    continue
                docs = [convert.document(d) for d in req.documents]
                after = pending[-1] if pending else None
                pending.append(asyncio.ensure_future(
                    self.engine.upsert(collection, docs, stream=True, after=after)))
                while len(pending) >= depth:
                    yield _stream_ack(await pending.popleft())
            while pending:
                yield _stream_ack(await pending.popleft())
        finally:
            for task in pending:
                task.cancel()

    @rpc
    async def Delete(self, request, context):
        # Deletes are cheap (no embedding): they are applied before the reply
        # whatever `wait` says, so wait=false still gets final acks.
        req = check(request)
        result = await self.engine.delete(req.collection, convert.refs(req))
        resp = pb.DeleteResponse(sequence=result.sequence)
        convert.acks(result.acks, resp.acks)
        convert.timings(result.timings, resp.timings)
        return resp

    @rpc
    async def Search(self, request, context):
        req = check(request)
        result = await self.engine.search(convert.search_query(req, validate.mode(req.mode)))
        return convert.search_response(result)

    async def SearchStream(self, request_iterator, context):
        # Queries are answered in order, up to `stream_depth` concurrently (their
        # embeddings share micro-batches); a bad query gets an error in its own
        # response and the stream goes on.
        depth = self.engine.stream_depth
        pending: collections.deque[tuple[str, asyncio.Task]] = collections.deque()

        async def one(request):
            req = check(request)
            return await self.engine.search(convert.search_query(req.request, validate.mode(req.request.mode)))

        async def answer(tag: str, task: asyncio.Task) -> pb.SearchStreamResponse:
            try:
                return pb.SearchStreamResponse(tag=tag, response=convert.search_response(await task))
            except Exception as exc:  # noqa: BLE001 - reported per query
                code, message = status_for(exc)
                return pb.SearchStreamResponse(tag=tag, error_code=code.value[0], error_message=message)

        try:
            async for request in request_iterator:
                tag = "" if isinstance(request, BadRequest) else request.tag
                pending.append((tag, asyncio.ensure_future(one(request))))
                while len(pending) >= depth:
                    yield await answer(*pending.popleft())
            while pending:
                yield await answer(*pending.popleft())
        finally:
            for _, task in pending:
                task.cancel()

    @rpc
    async def Similar(self, request, context):
        req = check(request)
        result = await self.engine.similar(req.collection, req.document_id, req.top_k,
                                           convert.filter_(req.filter), req.min_score)
        return convert.search_response(result)

    @rpc
    async def Embed(self, request, context):
        req = check(request)
        result, timings = await self.engine.embed(list(req.texts), is_query=req.is_query)
        model = self.engine.model_info()
        resp = pb.EmbedResponse(dimension=model.dimension, model=model.name)
        for vec, tokens, truncated in zip(result.vectors, result.token_counts, result.truncated):
            resp.embeddings.add(values=vec.tolist(), tokens=int(tokens), truncated=bool(truncated))
        convert.timings(timings, resp.timings)
        return resp

    @rpc
    async def GetJob(self, request, context):
        req = check(request)
        return convert.job(self.engine.get_job(req.job_id))

    @rpc
    async def WatchJob(self, request, context):
        req = check(request)
        async for job in self.engine.watch_job(req.job_id):
            yield convert.job(job)

    @rpc
    async def Stats(self, request, context):
        req = check(request)
        resp = pb.StatsResponse(version=self.engine.version, uptime_s=self.engine.uptime_s(),
                                disk_bytes=self.engine.disk_bytes())
        for s in self.engine.stats(req.collection):
            resp.collections.add(name=s.name, documents=s.documents, chunks=s.chunks, index_kind=s.index_kind,
                                 index_vectors=s.index_vectors, tombstones=s.tombstones, sequence=s.sequence,
                                 dimension=s.dimension, applied_sequence=s.applied_sequence)
        convert.model_info(self.engine.model_info(), resp.model)
        return resp

    @rpc
    async def ListDocuments(self, request, context):
        req = check(request)
        page, token = await self.engine.list_documents(req.collection, req.page_size, req.page_token,
                                                       list(req.types), list(req.project_ids))
        resp = pb.ListDocumentsResponse(next_page_token=token)
        convert.document_infos(page, resp.documents)
        return resp

    @rpc
    async def Answer(self, request, context):
        req = check(request)
        remaining = context.time_remaining()  # None without a deadline
        deadline = None if remaining is None else asyncio.get_running_loop().time() + remaining
        # aclosing: a cancelled call (or an expired deadline) closes the pipeline at once,
        # which closes the model server's HTTP stream and so stops the generation.
        async with contextlib.aclosing(self.engine.answer(convert.answer_query(req), deadline)) as events:
            async for event in events:
                yield convert.answer_event(event)

    @rpc
    async def Snapshot(self, request, context):
        req = check(request)
        path, seq, size = await self.engine.snapshot(req.path)
        return pb.SnapshotResponse(path=path, sequence=seq, bytes=size)

    @rpc
    async def Reindex(self, request, context):
        req = check(request)
        st = await self.engine.reindex(req.collection, req.model)
        return pb.ReindexResponse(collection=st.collection, from_model=st.source, to_model=st.target, state=st.state,
                                  documents_done=st.documents_done, documents_total=st.documents_total,
                                  chunks=st.chunks, error=st.error)


def _stream_ack(result) -> pb.IndexStreamResponse:
    resp = pb.IndexStreamResponse(sequence=result.sequence)
    convert.acks(result.acks, resp.acks)
    return resp


def generic_handler(servicer: RagServicer) -> grpc.GenericRpcHandler:
    """Method handlers built from the service descriptor, with lenient request parsing."""
    factories = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    handlers = {}
    for method in SERVICE.methods:
        request_cls = getattr(pb, method.input_type.name)
        response_cls = getattr(pb, method.output_type.name)
        factory = factories[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = factory(getattr(servicer, method.name),
                                        request_deserializer=deserializer(request_cls),
                                        response_serializer=response_cls.SerializeToString)
    return grpc.method_handlers_generic_handler(SERVICE.full_name, handlers)
