"""ragd.v1.RagService: protobuf in, engine call, protobuf out. No logic lives here."""
from __future__ import annotations

import grpc

from ragd.api import convert
from ragd.api.errors import rpc, status_for
from ragd.api.lenient import BadRequest, check, deserializer
from ragd.engine import validate
from ragd.engine.engine import Engine
from ragd.errors import Unimplemented
from ragd.v1 import ragd_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["RagService"]


class RagServicer:
    def __init__(self, engine: Engine):
        self.engine = engine

    @rpc
    async def Upsert(self, request, context):
        req = check(request)
        if not req.wait:
            raise Unimplemented("wait=false (asynchronous jobs) is coming; send wait=true")
        result = await self.engine.upsert(req.collection, [convert.document(d) for d in req.documents])
        resp = pb.UpsertResponse(sequence=result.sequence)
        convert.acks(result.acks, resp.acks)
        convert.timings(result.timings, resp.timings)
        return resp

    @rpc
    async def IndexStream(self, request_iterator, context):
        # Each message is written and acked before the next is read, so a slow
        # embedder slows the client (HTTP/2 flow control) instead of growing memory.
        collection = None
        async for request in request_iterator:
            req = check(request)
            collection = collection if collection is not None else req.collection
            if not req.documents:
                continue
            result = await self.engine.upsert(collection, [convert.document(d) for d in req.documents],
                                              stream=True)
            resp = pb.IndexStreamResponse(sequence=result.sequence)
            convert.acks(result.acks, resp.acks)
            yield resp

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
        # Per-query errors are reported in the response and the stream goes on.
        async for request in request_iterator:
            tag = "" if isinstance(request, BadRequest) else request.tag
            try:
                req = check(request)
                result = await self.engine.search(convert.search_query(req.request, validate.mode(req.request.mode)))
                yield pb.SearchStreamResponse(tag=req.tag, response=convert.search_response(result))
            except Exception as exc:  # noqa: BLE001 - reported per query
                code, message = status_for(exc)
                yield pb.SearchStreamResponse(tag=tag, error_code=code.value[0], error_message=message)

    @rpc
    async def Similar(self, request, context):
        req = check(request)
        result = await self.engine.similar(req.collection, req.document_id, req.top_k,
                                           convert.filter_(req.filter), req.min_score)
        return convert.search_response(result)

    @rpc
    async def Embed(self, request, context):
        req = check(request)
        result, timings = await self.engine.embed(list(req.texts))
        resp = pb.EmbedResponse(dimension=self.engine.embedder.dimension, model=self.engine.embedder.name)
        for vec, tokens, truncated in zip(result.vectors, result.token_counts, result.truncated):
            resp.embeddings.add(values=vec.tolist(), tokens=int(tokens), truncated=bool(truncated))
        convert.timings(timings, resp.timings)
        return resp

    @rpc
    async def GetJob(self, request, context):
        raise Unimplemented("jobs are coming with asynchronous ingestion (Upsert wait=false)")

    @rpc
    async def WatchJob(self, request, context):
        raise Unimplemented("jobs are coming with asynchronous ingestion (Upsert wait=false)")
        yield  # pragma: no cover - makes this a server-streaming handler

    @rpc
    async def Stats(self, request, context):
        req = check(request)
        resp = pb.StatsResponse(version=self.engine.version, uptime_s=self.engine.uptime_s(),
                                disk_bytes=self.engine.disk_bytes())
        for s in self.engine.stats(req.collection):
            resp.collections.add(name=s.name, documents=s.documents, chunks=s.chunks, index_kind=s.index_kind,
                                 index_vectors=s.index_vectors, tombstones=s.tombstones, sequence=s.sequence,
                                 dimension=s.dimension)
        resp.model.CopyFrom(pb.ModelInfo(**self.engine.model_info()))
        return resp

    @rpc
    async def Snapshot(self, request, context):
        raise Unimplemented("snapshots are coming with the IVF-PQ index work")


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
