"""Bearer-token authentication, scopes, per-token rate limits and the audit log:
one gRPC server interceptor.

Every RagService method needs one scope (SCOPES below; a method missing from
the table needs `admin`, so a new RPC is closed until someone decides). gRPC
health is always open (load balancers and Kubernetes probes call it without
credentials); server reflection follows `auth.reflection`.

Refusals reveal nothing: a missing token and a wrong one get the same
UNAUTHENTICATED message; a valid token without the scope gets
PERMISSION_DENIED naming the scope the method needs (public: it is in the
README). A refused call's request is not even parsed. The audit log (logger
`ragd.audit`) records every auth failure and every admin call with the
token's name and the peer address, never the token.
"""
from __future__ import annotations

import inspect
import logging
import math
import time
from dataclasses import dataclass

import grpc

from ragd.security.tokens import TokenEntry, TokenSet

audit = logging.getLogger("ragd.audit")

RAG_SERVICE = "ragd.v1.RagService"
HEALTH_SERVICE = "grpc.health.v1.Health"
REFLECTION_SERVICES = ("grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection")

SCOPES = {
    "Search": "search", "SearchStream": "search", "Similar": "search", "Embed": "search", "Stats": "search",
    "Answer": "search",
    "Upsert": "write", "IndexStream": "write", "Delete": "write", "GetJob": "write", "WatchJob": "write",
    # The ids and versions a sync agent reconciles its writes against (Redmine's redmine_rag:status).
    "ListDocuments": "write",
    "Snapshot": "admin", "Reindex": "admin",
}
UNAUTHENTICATED = "missing or invalid bearer token (send metadata 'authorization: Bearer TOKEN')"


class TokenBucket:
    """Per-key token buckets (keys: token names). Used from the event loop's thread only."""

    def __init__(self, rate_per_s: float, burst: int):
        self.rate = rate_per_s
        self.burst = float(burst or max(1, math.ceil(2 * rate_per_s)))
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)

    def take(self, key: str) -> float:
        """0 when the call may go ahead; else the seconds until it could."""
        now = time.monotonic()
        tokens, then = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate


@dataclass
class _Decision:
    entry: TokenEntry | None
    code: grpc.StatusCode | None = None  # None: allowed
    message: str = ""
    reason: str = ""


def bearer(metadata) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            scheme, _, token = value.strip().partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return None


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """tokens None: authentication off (loopback-only unless server.insecure); rate
    limits then apply per peer host."""

    def __init__(self, tokens: TokenSet | None, reflection: str = "token", limiter: TokenBucket | None = None):
        self.tokens = tokens
        self.reflection = reflection
        self.limiter = limiter
        self.refused = 0

    def _required(self, method: str) -> str | None:
        """The scope `method` needs; "" for any valid token; None when open."""
        service, _, name = method.lstrip("/").rpartition("/")
        if service == HEALTH_SERVICE:
            return None
        if service in REFLECTION_SERVICES:
            return None if self.reflection == "open" else ""
        if service == RAG_SERVICE:
            return SCOPES.get(name, "admin")
        return "admin"

    def _decide(self, method: str, metadata) -> _Decision | None:
        required = self._required(method)
        if required is None:
            return None
        token = bearer(metadata)
        entry = self.tokens.verify(token) if token else None
        if entry is None:
            return _Decision(None, grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED,
                             "no token" if token is None else "unknown token")
        if required and required not in entry.scopes:
            name = method.rpartition("/")[2]
            return _Decision(entry, grpc.StatusCode.PERMISSION_DENIED,
                             f"token {entry.name!r} lacks scope {required!r}, which {name} needs",
                             f"needs scope {required}")
        return _Decision(entry)

    async def intercept_service(self, continuation, details):
        method = details.method
        decision = None
        if self.tokens is not None:
            decision = self._decide(method, details.invocation_metadata)
            if decision is not None and decision.code is not None:
                self.refused += 1
                return _refusal(method, decision)
        if self.limiter is None and not (decision and self._required(method) == "admin"):
            return await continuation(details)
        handler = await continuation(details)
        if handler is None:
            return None
        return self._wrap(handler, method, decision)

    def _gate(self, method: str, decision: _Decision | None):
        """Runs first in the call (where the peer is known): the audit line and the rate limit."""
        async def gate(context: grpc.aio.ServicerContext) -> None:
            name = decision.entry.name if decision and decision.entry else None
            if name is not None and self._required(method) == "admin":
                audit.info("admin call %s token=%s peer=%s%s", method, name, context.peer(), _cert(context))
            if self.limiter is not None:
                key = name if name is not None else "peer:" + context.peer().rpartition(":")[0]
                wait = self.limiter.take(key)
                if wait > 0:
                    context.set_trailing_metadata((("retry-after-ms", str(max(1, math.ceil(wait * 1000)))),))
                    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                        f"rate limit: {self.limiter.rate:g} calls/s for "
                                        f"{'token ' + repr(name) if name else 'this client'}; retry later")
        return gate

    def _wrap(self, handler, method: str, decision: _Decision | None):
        gate = self._gate(method, decision)
        if handler.response_streaming:
            behavior = handler.unary_stream or handler.stream_stream
            if not inspect.isasyncgenfunction(behavior):
                return handler

            async def streamed(request, context):
                await gate(context)
                async for item in behavior(request, context):
                    yield item
            make = grpc.stream_stream_rpc_method_handler if handler.request_streaming \
                else grpc.unary_stream_rpc_method_handler
            wrapped = streamed
        else:
            behavior = handler.stream_unary or handler.unary_unary

            async def unary(request, context):
                await gate(context)
                return await behavior(request, context)
            make = grpc.stream_unary_rpc_method_handler if handler.request_streaming \
                else grpc.unary_unary_rpc_method_handler
            wrapped = unary
        return make(wrapped, request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer)


def _cert(context) -> str:
    try:
        cn = context.auth_context().get("x509_common_name")
    except Exception:  # noqa: BLE001 - best effort: the peer's certificate name for the log
        cn = None
    return f" cert={cn[0].decode(errors='replace')}" if cn else ""


def _refusal(method: str, decision: _Decision) -> grpc.RpcMethodHandler:
    """A handler that logs and refuses, whatever the method's shape; the request is never parsed.
    Declared stream-stream: it reads nothing and aborts, which suits every call shape."""
    async def refuse(_requests, context):
        who = f"token={decision.entry.name}" if decision.entry else "token=-"
        audit.warning("auth failure %s: %s %s peer=%s (%s)%s", decision.code.name, method, who, context.peer(),
                      decision.reason, _cert(context))
        await context.abort(decision.code, decision.message)
        yield  # pragma: no cover - makes this an async generator; abort raises first
    return grpc.stream_stream_rpc_method_handler(refuse)
