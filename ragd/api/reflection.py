"""Server reflection in both versions: grpc.reflection.v1 (what current grpcurl,
Postman and grpcui ask first) beside grpc.reflection.v1alpha (older clients).

grpcio-reflection ships only v1alpha. v1 is the same protocol under a new
package name (same messages, same field numbers, so the same bytes on the
wire), so the library's servicer answers both: registered once under each
service name. v1's descriptor (v1alpha's renamed) is added to the descriptor
pool so that v1 can be described like every other listed service.
"""
from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

V1ALPHA = reflection.SERVICE_NAME
V1 = "grpc.reflection.v1.ServerReflection"
_V1_FILE = "grpc/reflection/v1/reflection.proto"


def _rename(type_name: str) -> str:
    return type_name.replace(".grpc.reflection.v1alpha.", ".grpc.reflection.v1.")


def _add_v1_descriptor(pool: descriptor_pool.DescriptorPool) -> None:
    try:
        pool.FindFileByName(_V1_FILE)
        return  # another server in this process added it
    except KeyError:
        pass
    fdp = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(fdp)
    fdp.name, fdp.package = _V1_FILE, "grpc.reflection.v1"
    fdp.ClearField("options")
    messages = list(fdp.message_type)
    while messages:
        msg = messages.pop()
        messages.extend(msg.nested_type)
        for f in msg.field:
            if f.type_name:
                f.type_name = _rename(f.type_name)
    for service in fdp.service:
        for method in service.method:
            method.input_type, method.output_type = _rename(method.input_type), _rename(method.output_type)
    pool.Add(fdp)


def enable(service_names: Iterable[str], server: grpc.aio.Server) -> None:
    """Serve reflection v1 and v1alpha for `service_names` (both reflection services are listed too)."""
    _add_v1_descriptor(descriptor_pool.Default())
    servicer = reflection.aio.ReflectionServicer((*service_names, V1, V1ALPHA))
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1 = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(V1, {"ServerReflectionInfo": v1}),))
