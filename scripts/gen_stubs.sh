#!/usr/bin/env bash
# The one script that regenerates the committed gRPC stubs from proto/.
#   Python: clients/python/ragd_client/v1/*_pb2{,_grpc}.py(i): the ragd-client
#           distribution ships them; the daemon depends on it and imports them
#           as ragd.v1 (ragd/v1/__init__.py re-exports them).
#   Ruby:   clients/ruby/lib/ragd/v1/*_{pb,services_pb}.rb
# Usage: scripts/gen_stubs.sh [OUTPUT_ROOT]   (default: the repository root;
# tests/test_stubs_fresh.py passes a temporary directory and diffs the trees).
# Needs grpcio-tools in $PYTHON (scripts/setup.sh --test) and Debian's
# ruby-grpc-tools.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here}
py=${PYTHON:-python3}
protos=("$here"/proto/ragd/v1/*.proto)
# The well-known protos (google/protobuf/timestamp.proto) from grpcio-tools:
# Debian's grpc_tools_ruby_protoc runs /usr/bin/protoc, which finds them only
# when libprotobuf-dev happens to be installed, so both halves use these.
wkt=$("$py" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')

# Python. protoc names generated modules after the .proto file's path, so the
# files are compiled from a staging copy at ragd_client/v1/ (imports between
# them rewritten to match): the modules are then ragd_client.v1.*_pb2 and
# import each other by that name. The proto package stays ragd.v1.
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/ragd_client/v1" "$out/clients/python/ragd_client/v1"
for p in "${protos[@]}"; do
  sed 's#^import "ragd/v1/#import "ragd_client/v1/#' "$p" > "$stage/ragd_client/v1/$(basename "$p")"
done
"$py" -m grpc_tools.protoc -I "$stage" -I "$wkt" \
  --python_out="$out/clients/python" --pyi_out="$out/clients/python" --grpc_python_out="$out/clients/python" \
  "$stage"/ragd_client/v1/*.proto
init="$out/clients/python/ragd_client/v1/__init__.py"
[ -f "$init" ] || echo '"""Generated gRPC stubs for package ragd.v1 (scripts/gen_stubs.sh)."""' > "$init"

# Ruby: required as 'ragd/v1/ragd_services_pb' (design.md).
command -v grpc_tools_ruby_protoc >/dev/null || {
  echo "grpc_tools_ruby_protoc missing: run scripts/setup.sh --test (Debian ruby-grpc-tools)" >&2; exit 1; }
mkdir -p "$out/clients/ruby/lib"
grpc_tools_ruby_protoc -I "$here/proto" -I "$wkt" \
  --ruby_out="$out/clients/ruby/lib" --grpc_out="$out/clients/ruby/lib" "${protos[@]}"
