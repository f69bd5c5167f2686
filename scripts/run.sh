#!/usr/bin/env bash
# Set up (idempotent), provision the model offline, and run the daemon on its
# defaults: data under ./var/ragd, listening on 127.0.0.1:50051. Extra
# arguments go to `ragd serve` (e.g. --listen 0.0.0.0:50051).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ragd model export
exec .venv/bin/ragd serve "$@"
