#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite, cheapest checks first:
# lint (ruff, rubocop), type checks, the native sanitizer build, then Python
# (pytest: unit, in-process, subprocess daemons, grpcurl, the Ruby client's
# minitest suite, ragd-client alone in a fresh virtualenv), then the Redmine
# plugin's tests inside a real Redmine (scripts/redmine/test.sh, with its own
# rubocop; SKIP_REDMINE=1 leaves them out).
# Arguments go to pytest (e.g. scripts/test.sh -k lifecycle).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
# The optional model families' packages (cached after the first run): their parity tests.
scripts/fetch_models.sh
export PATH="$PWD/.tools/bin:$PATH"
step() { printf '\033[1m[test]\033[0m %s\n' "$*"; }

step "ruff (pyproject.toml [tool.ruff])"
.venv/bin/ruff check .
step "rubocop (clients/ruby/.rubocop.yml)"
(cd clients/ruby && rubocop --format progress)

step "mypy on ragd/engine, ragd/store, ragd/index, ragd/cluster (pyproject.toml [tool.mypy])"
.venv/bin/python -m mypy ragd/engine ragd/store ragd/index ragd/cluster

if [ -x scripts/native_sanitize.sh ]; then
  step "native tests under ASan/UBSan"
  scripts/native_sanitize.sh
fi
step "pytest"
.venv/bin/python -m pytest "$@"
if [ "${SKIP_REDMINE:-0}" != 1 ]; then
  step "Redmine plugin (scripts/redmine/test.sh)"
  scripts/redmine/test.sh
fi
