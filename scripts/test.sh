#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite: Python (pytest: unit,
# in-process, subprocess daemons, grpcurl), the native sanitizer build, and
# the Ruby client tests when present, and the Redmine plugin's tests inside a
# real Redmine (scripts/redmine/test.sh; SKIP_REDMINE=1 leaves them out).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export PATH="$PWD/.tools/bin:$PATH"
if [ -x scripts/native_sanitize.sh ]; then
  scripts/native_sanitize.sh
fi
.venv/bin/python -m pytest "$@"
if [ "${SKIP_REDMINE:-0}" != 1 ]; then
  scripts/redmine/test.sh
fi
