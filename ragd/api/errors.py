"""The one error table: domain exception class -> gRPC status code.

Anything not listed is a bug: it is logged with its traceback and answered
INTERNAL. RESOURCE_EXHAUSTED carries a `retry-after-ms` trailing metadata entry.
"""
from __future__ import annotations

import asyncio
import functools
import inspect
import logging

import grpc

from ragd.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted, Unavailable, Unimplemented

log = logging.getLogger("ragd.api")

TABLE: list[tuple[type[BaseException], grpc.StatusCode]] = [
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
    (Unimplemented, grpc.StatusCode.UNIMPLEMENTED),
    (FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (asyncio.TimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED),
]


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    for cls, code in TABLE:
        if isinstance(exc, cls):
            return code, str(exc) or cls.__name__
    log.exception("internal error (bug)", exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException):
    code, message = status_for(exc)
    if isinstance(exc, ResourceExhausted):
        context.set_trailing_metadata((("retry-after-ms", str(int(exc.retry_after_s * 1000))),))
    await context.abort(code, message)


def rpc(method):
    """Maps domain exceptions to status codes, for unary and server-streaming handlers."""
    if inspect.isasyncgenfunction(method):
        @functools.wraps(method)
        async def stream_wrapper(self, request, context):
            try:
                async for item in method(self, request, context):
                    yield item
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except Exception as exc:  # noqa: BLE001 - mapped by the table
                await _abort(context, exc)
        return stream_wrapper

    @functools.wraps(method)
    async def unary_wrapper(self, request, context):
        try:
            return await method(self, request, context)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:  # noqa: BLE001 - mapped by the table
            await _abort(context, exc)
    return unary_wrapper
