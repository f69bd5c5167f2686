#!/usr/bin/env bash
# Regenerates the README's screenshots (clients/redmine_rag/doc/*.png) from the
# demo: brings it up in the background (make redmine), drives headless Chromium
# through the search page, an issue's similar issues, duplicate suggestions and
# the admin status page, then stops the demo.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
source "$here/common.sh"
rm_apt "${RM_BASE_DEBS[@]}" "${RM_BROWSER_DEBS[@]}"
DEMO_RESET=${DEMO_RESET:-1} DEMO_DETACH=1 "$here/demo.sh"   # a fresh demo: the pictures match what `make redmine` shows
trap '"$here/demo.sh" stop' EXIT
# shellcheck disable=SC1091
source "$RM_VAR/demo.env"
env -u BUNDLE_GEMFILE -u RAILS_ENV -u REDMINE_INSTANCE ruby "$here/screenshots.rb" "$DEMO_URL" "$PLUGIN_SRC/doc"
