"""The clients' credentials: a bearer token and TLS files, from arguments or the environment.

    RAGD_TOKEN             bearer token (`ragd token create` prints one)
    RAGD_CA_FILE           CA bundle (PEM) to verify the daemon's certificate: turns TLS on
    RAGD_CLIENT_CERT_FILE  client certificate (PEM), for a daemon that asks for one (mutual TLS)
    RAGD_CLIENT_KEY_FILE   its private key (PEM)

`tls=True` without a CA file uses the system's roots (a daemon with a public
certificate). The daemon ignores these variables (ragd/config.py), so one shell
can run both. The token travels as `authorization: Bearer TOKEN` metadata on
every call, added by a channel interceptor (also without TLS: a daemon on
loopback may use tokens without TLS; one on a network refuses to serve without
TLS unless its operator opted out with server.insecure).
"""
from __future__ import annotations

import collections
import os
from dataclasses import dataclass
from pathlib import Path

import grpc

TOKEN_VARIABLE = "RAGD_TOKEN"
CA_FILE_VARIABLE = "RAGD_CA_FILE"
CLIENT_CERT_VARIABLE = "RAGD_CLIENT_CERT_FILE"
CLIENT_KEY_VARIABLE = "RAGD_CLIENT_KEY_FILE"


@dataclass(frozen=True)
class Credentials:
    token: str | None = None
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    @classmethod
    def resolve(cls, token: str | None = None, *, tls: bool | None = None, ca_file: str | None = None,
                cert_file: str | None = None, key_file: str | None = None, env=None) -> Credentials:
        """Arguments first, then the RAGD_* variables."""
        env = os.environ if env is None else env
        token = token if token is not None else (env.get(TOKEN_VARIABLE) or None)
        ca_file = ca_file or env.get(CA_FILE_VARIABLE) or None
        cert_file = cert_file or env.get(CLIENT_CERT_VARIABLE) or None
        key_file = key_file or env.get(CLIENT_KEY_VARIABLE) or None
        if bool(cert_file) != bool(key_file):
            raise ValueError("client certificate: give both cert_file and key_file (or neither)")
        tls = bool(ca_file or cert_file) if tls is None else tls
        if (ca_file or cert_file) and not tls:
            raise ValueError("ca_file/cert_file given with tls=False")
        return cls(token, tls, ca_file, cert_file, key_file)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        def read(path):
            return Path(path).read_bytes() if path else None
        return grpc.ssl_channel_credentials(root_certificates=read(self.ca_file), private_key=read(self.key_file),
                                            certificate_chain=read(self.cert_file))

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()


class _Details(collections.namedtuple("_Details", ("method", "timeout", "metadata", "credentials",
                                                   "wait_for_ready", "compression")), grpc.ClientCallDetails):
    pass


def _with_metadata(details, extra):
    metadata = list(details.metadata or ()) + list(extra)
    return _Details(details.method, details.timeout, metadata, details.credentials,
                    getattr(details, "wait_for_ready", None), getattr(details, "compression", None))


class _TokenInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                        grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds the token's metadata to every call, whatever its shape."""

    def __init__(self, metadata):
        self._metadata = metadata

    def _intercept(self, continuation, details, request_or_iterator):
        return continuation(_with_metadata(details, self._metadata), request_or_iterator)

    intercept_unary_unary = intercept_unary_stream = _intercept
    intercept_stream_unary = intercept_stream_stream = _intercept


def sync_channel(address: str, creds: Credentials, options) -> tuple[grpc.Channel, grpc.Channel]:
    """(the channel to call through, the raw channel to close)."""
    raw = (grpc.secure_channel(address, creds.channel_credentials(), options=options) if creds.tls
           else grpc.insecure_channel(address, options=options))
    if not creds.token:
        return raw, raw
    return grpc.intercept_channel(raw, _TokenInterceptor(creds.metadata)), raw


class _AioToken:
    """Adds the token's metadata to every call. grpc.aio files each interceptor under
    one call shape only (the first base it matches), hence one subclass per shape."""

    def __init__(self, metadata):
        self._metadata = metadata

    async def _intercept(self, continuation, details, request_or_iterator):
        md = grpc.aio.Metadata(*(tuple(details.metadata or ()) + self._metadata))
        fresh = grpc.aio.ClientCallDetails(details.method, details.timeout, md, details.credentials,
                                           details.wait_for_ready)
        return await continuation(fresh, request_or_iterator)


class _AioUU(_AioToken, grpc.aio.UnaryUnaryClientInterceptor):
    intercept_unary_unary = _AioToken._intercept


class _AioUS(_AioToken, grpc.aio.UnaryStreamClientInterceptor):
    intercept_unary_stream = _AioToken._intercept


class _AioSU(_AioToken, grpc.aio.StreamUnaryClientInterceptor):
    intercept_stream_unary = _AioToken._intercept


class _AioSS(_AioToken, grpc.aio.StreamStreamClientInterceptor):
    intercept_stream_stream = _AioToken._intercept


def aio_channel(address: str, creds: Credentials, options) -> grpc.aio.Channel:
    interceptors = [cls(creds.metadata) for cls in (_AioUU, _AioUS, _AioSU, _AioSS)] if creds.token else None
    if creds.tls:
        return grpc.aio.secure_channel(address, creds.channel_credentials(), options=options,
                                       interceptors=interceptors)
    return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)
