"""gRPC layer: servicers, proto <-> domain conversion, the error table. The only place that imports ragd.v1."""
