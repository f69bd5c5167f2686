"""Generated gRPC stubs for package ragd.v1 (scripts/gen_stubs.sh)."""
