"""The ragd.v1 API messages and service stubs, as the daemon names them.

They are generated once (scripts/gen_stubs.sh) into the ragd-client
distribution, which the daemon depends on, and re-exported here so that the
daemon's modules import the proto package they serve:
`from ragd.v1 import ragd_pb2 as pb`.
"""
from ragd_client.v1 import ragd_pb2, ragd_pb2_grpc

__all__ = ["ragd_pb2", "ragd_pb2_grpc"]
