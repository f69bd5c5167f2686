#!/usr/bin/env bash
# The one script that regenerates the committed gRPC stubs from proto/.
#   Python: ragd/v1/ragd_pb2{,_grpc}.py(i)   (module path mirrors `package ragd.v1`)
#   Ruby:   clients/ruby/lib/ragd/v1/ragd_{pb,services_pb}.rb
# Usage: scripts/gen_stubs.sh [OUTPUT_ROOT]   (default: the repository root;
# tests/test_stubs_fresh.py passes a temporary directory and diffs the trees).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here}
py=${PYTHON:-python3}
mkdir -p "$out/ragd/v1" "$out/clients/ruby/lib"
"$py" -m grpc_tools.protoc -I "$here/proto" \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  "$here/proto/ragd/v1/ragd.proto"
command -v grpc_tools_ruby_protoc >/dev/null || {
  echo "grpc_tools_ruby_protoc missing: run scripts/setup.sh (Debian ruby-grpc-tools)" >&2; exit 1; }
# Debian's grpc_tools_ruby_protoc runs /usr/bin/protoc, which finds the
# well-known protos (google/protobuf/timestamp.proto) only when libprotobuf-dev
# happens to be installed: take them from grpcio-tools, which the Python half
# above already needs, so that a fresh machine generates both halves alike.
wkt=$("$py" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')
grpc_tools_ruby_protoc -I "$here/proto" -I "$wkt" \
  --ruby_out="$out/clients/ruby/lib" --grpc_out="$out/clients/ruby/lib" \
  "$here/proto/ragd/v1/ragd.proto"
[ -f "$out/ragd/v1/__init__.py" ] || echo '"""Generated gRPC stubs for package ragd.v1 (scripts/gen_stubs.sh)."""' > "$out/ragd/v1/__init__.py"
