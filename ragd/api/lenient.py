"""Request deserialisation that names the field holding invalid UTF-8.

protobuf refuses a proto3 `string` field that is not UTF-8 and reports only
"Error parsing message", which gRPC would turn into an opaque failure. When
strict parsing fails we re-parse the bytes with a shadow copy of the schema in
which every string is `bytes` (same wire type), find the offending field and
hand the servicer a BadRequest instead of a message, so the client gets
INVALID_ARGUMENT naming e.g. "documents[2].text".
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2
from google.protobuf.message import DecodeError

from ragd.errors import InvalidArgument
from ragd.v1 import ragd_pb2

_SHADOW_PACKAGE = "ragd.v1.lenient"


@dataclass
class BadRequest:
    error: InvalidArgument


@functools.cache  # built once, on the first undecodable request
def _shadow_pool() -> descriptor_pool.DescriptorPool:
    fdp = descriptor_pb2.FileDescriptorProto()
    ragd_pb2.DESCRIPTOR.CopyToProto(fdp)
    fdp.name = "ragd/v1/ragd_lenient.proto"
    fdp.package = _SHADOW_PACKAGE
    fdp.ClearField("service")

    def rewrite(msg: descriptor_pb2.DescriptorProto) -> None:
        for f in msg.field:
            if f.type == descriptor_pb2.FieldDescriptorProto.TYPE_STRING:
                f.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
            if f.type_name.startswith(".ragd.v1."):
                f.type_name = "." + _SHADOW_PACKAGE + f.type_name[len(".ragd.v1"):]
        for nested in msg.nested_type:
            # Map keys may not be bytes: make map entries plain repeated messages (same wire format).
            nested.options.map_entry = False
            rewrite(nested)

    for msg in fdp.message_type:
        rewrite(msg)
    pool = descriptor_pool.DescriptorPool()
    ts = descriptor_pb2.FileDescriptorProto()
    timestamp_pb2.DESCRIPTOR.CopyToProto(ts)
    pool.Add(ts)
    pool.Add(fdp)
    return pool


def _find_bad_utf8(msg, path: str) -> str | None:
    for field, value in msg.ListFields():
        name = f"{path}.{field.name}" if path else field.name
        repeated = field.is_repeated
        values = list(value) if repeated else [value]
        for i, v in enumerate(values):
            where = f"{name}[{i}]" if repeated else name
            if isinstance(v, bytes):
                try:
                    v.decode("utf-8")
                except UnicodeDecodeError as exc:
                    return f"{where}: invalid UTF-8 at byte {exc.start}"
            elif hasattr(v, "ListFields"):
                found = _find_bad_utf8(v, where)
                if found:
                    return found
    return None


def deserializer(cls):
    """A request_deserializer for `cls` that turns undecodable input into BadRequest."""
    def parse(data: bytes):
        try:
            return cls.FromString(data)
        except DecodeError:
            pass
        shadow = message_factory.GetMessageClass(
            _shadow_pool().FindMessageTypeByName(f"{_SHADOW_PACKAGE}.{cls.DESCRIPTOR.name}"))
        try:
            found = _find_bad_utf8(shadow.FromString(data), "")
        except DecodeError:
            found = None
        if found:
            field, _, message = found.partition(": ")
            return BadRequest(InvalidArgument(field, message))
        return BadRequest(InvalidArgument("request", "not a valid protobuf message"))
    return parse


def check(request):
    """Raise the stored error if the request could not be decoded."""
    if isinstance(request, BadRequest):
        raise request.error
    return request
