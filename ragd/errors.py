"""Domain errors. The engine, store and index raise these; ragd/api/errors.py
maps each class to exactly one gRPC status code (the project's one error table).
"""


class RagdError(Exception):
    """Base class; an unexpected exception that is not a RagdError is a bug (INTERNAL)."""


class InvalidArgument(RagdError):
    """Bad input. `field` is the request path, e.g. "documents[3].id"."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


class NotFound(RagdError):
    pass


class Unavailable(RagdError):
    """The daemon is loading or shutting down; safe to retry."""


class ResourceExhausted(RagdError):
    """A bounded queue is full; retry after `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: float = 0.5):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unimplemented(RagdError):
    pass


class FailedPrecondition(RagdError):
    """The request is fine but ragd is not set up for it (e.g. no model server
    configured, or the model server refuses ragd's key); retrying will not help."""
