"""Graceful shutdown that waits for the work in flight, not for a clock.

On SIGTERM the server closes this gate: calls arriving from then on get
UNAVAILABLE "shutting down" (the clients' retry policy takes them elsewhere or
back once the daemon is up again), and `close()` returns once every unary call
that had started has finished. No wall-clock window cuts them short: a call is
bounded by its own client's deadline, so an upsert that takes minutes on a
slow machine still completes, is acknowledged, and then the daemon exits.
Streams are open-ended (a WatchJob lasts as long as its job), so after the
unary calls `server.stop(server.grace_s)` gives them a bounded grace.
"""
from __future__ import annotations

import asyncio
import inspect

import grpc

SHUTTING_DOWN = "ragd is shutting down"


class Drain(grpc.aio.ServerInterceptor):
    def __init__(self) -> None:
        self.closed = False
        self.in_flight = 0  # unary calls running
        self._idle = asyncio.Event()
        self._idle.set()

    async def close(self) -> None:
        """Refuse new calls; return once the unary calls in flight have finished."""
        self.closed = True
        await self._idle.wait()

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:  # unknown method: gRPC answers UNIMPLEMENTED itself
            return None
        if handler.response_streaming:
            behavior = handler.unary_stream or handler.stream_stream
            if not inspect.isasyncgenfunction(behavior):
                return handler
            wrapped = self._stream(behavior)
            make = grpc.stream_stream_rpc_method_handler if handler.request_streaming \
                else grpc.unary_stream_rpc_method_handler
        elif handler.request_streaming:
            wrapped = self._client_stream(handler.stream_unary)
            make = grpc.stream_unary_rpc_method_handler
        else:
            wrapped = self._unary(handler.unary_unary)
            make = grpc.unary_unary_rpc_method_handler
        return make(wrapped, request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer)

    # The gate is checked when the handler starts, on the event loop's one thread:
    # a call either started before close() (and is waited for) or is refused.
    def _unary(self, behavior):
        async def counted(request, context):
            if self.closed:
                await context.abort(grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
            self.in_flight += 1
            self._idle.clear()
            try:
                return await behavior(request, context)
            finally:
                self.in_flight -= 1
                if self.in_flight == 0:
                    self._idle.set()
        return counted

    def _client_stream(self, behavior):
        async def gated(request_iterator, context):
            if self.closed:
                await context.abort(grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
            return await behavior(request_iterator, context)
        return gated

    def _stream(self, behavior):
        async def gated(request, context):
            if self.closed:
                await context.abort(grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
            async for item in behavior(request, context):
                yield item
        return gated
