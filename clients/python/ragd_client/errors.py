"""Client errors: one class per gRPC status a caller may want to handle."""
from __future__ import annotations

import grpc


class RagError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class InvalidArgument(RagError):
    pass


class NotFound(RagError):
    pass


class Unavailable(RagError):
    """UNAVAILABLE or DEADLINE_EXCEEDED: the caller may fall back or retry later."""


class ResourceExhausted(RagError):
    def __init__(self, code, message, retry_after_s: float | None = None):
        super().__init__(code, message)
        self.retry_after_s = retry_after_s


class Unimplemented(RagError):
    pass


class Unauthenticated(RagError):
    """No token, or one the daemon does not know (revoked, mistyped)."""


class PermissionDenied(RagError):
    """The token is valid but lacks the scope the call needs."""


class FailedPrecondition(RagError):
    """The daemon is not set up for the call (e.g. answer() without a model server configured)."""


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
}


def from_code(code: grpc.StatusCode, message: str) -> RagError:
    return _BY_CODE.get(code, RagError)(code, message)


def from_rpc_error(err: grpc.RpcError) -> RagError:
    code, message = err.code(), err.details() or ""
    cls = _BY_CODE.get(code, RagError)
    if cls is ResourceExhausted:
        retry = None
        for key, value in (err.trailing_metadata() or ()):
            if key == "retry-after-ms":
                retry = int(value) / 1000.0
        return ResourceExhausted(code, message, retry)
    return cls(code, message)
