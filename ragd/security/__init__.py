"""Network security that is not gRPC-specific: the tokens file, TLS material and
the secure-by-default bind rule. The gRPC side (interceptor, scopes, rate
limits, audit log) is ragd/api/auth.py."""
