"""grpc.health.v1.Health/Check without grpcio-health-checking.

The client depends on grpcio and protobuf only. The two health messages are
built from their descriptor in a private pool: registering grpc/health/v1 in
the default pool would clash with grpcio-health-checking's copy when both are
imported in one process (the daemon's tests do).
"""
from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
SERVING = 1  # HealthCheckResponse.ServingStatus.SERVING
CHECK = "/grpc.health.v1.Health/Check"


def _classes():
    fdp = descriptor_pb2.FileDescriptorProto(name="ragd_client/health.proto", package="grpc.health.v1",
                                             syntax="proto3")
    req = fdp.message_type.add(name="HealthCheckRequest")
    req.field.add(name="service", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    resp = fdp.message_type.add(name="HealthCheckResponse")
    status = resp.enum_type.add(name="ServingStatus")
    for number, name in enumerate(("UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN")):
        status.value.add(name=name, number=number)
    resp.field.add(name="status", number=1, type=_F.TYPE_ENUM, label=_F.LABEL_OPTIONAL,
                   type_name=".grpc.health.v1.HealthCheckResponse.ServingStatus")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return (message_factory.GetMessageClass(pool.FindMessageTypeByName("grpc.health.v1.HealthCheckRequest")),
            message_factory.GetMessageClass(pool.FindMessageTypeByName("grpc.health.v1.HealthCheckResponse")))


HealthCheckRequest, HealthCheckResponse = _classes()


def check_method(channel):
    """The unary-unary callable for Health/Check on a sync or asyncio channel."""
    return channel.unary_unary(CHECK, request_serializer=HealthCheckRequest.SerializeToString,
                               response_deserializer=HealthCheckResponse.FromString)
