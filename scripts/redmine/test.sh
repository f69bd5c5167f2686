#!/usr/bin/env bash
# The redmine_rag plugin's tests inside a real Redmine: Debian's Redmine 5 with
# SQLite in a private instance (var/redmine), the plugin installed with the
# ragd-client gem vendored, a real ragd daemon from the worktree's .venv on a
# free loopback port, then `rake redmine:plugins:test NAME=redmine_rag` (unit,
# functional, integration and headless-Chromium system tests).
#
#   scripts/redmine/test.sh                 everything
#   TESTS='test/unit/sync_test.rb test/unit/reindex_test.rb' scripts/redmine/test.sh   some files
#
# Slow parts are kept between runs: the app copy (until Debian's redmine
# changes), Redmine's test/ tree, the bundle (until a Gemfile changes), the model.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
source "$here/common.sh"
t0=$(rm_now)

[ -x "$REPO/.venv/bin/python" ] || { echo "no .venv: run scripts/setup.sh --test first" >&2; exit 1; }
rm_apt "${RM_BASE_DEBS[@]}" "${RM_BROWSER_DEBS[@]}" rubocop
rm_say "rubocop (clients/redmine_rag/.rubocop.yml)"
(cd "$PLUGIN_SRC" && rubocop --format progress)
rm_app
rm_instance test
rm_test_tree
rm_install_plugin
rm_template_db
rm_say "Redmine ready in $(rm_since "$t0") s"

data=$RM_VAR/ragd-test
rm -rf "$data"
trap rm_stop_ragd EXIT
# A small document limit, so the tests of refused documents need not build 10 MiB texts.
export RAGD_LIMITS_MAX_DOCUMENT_BYTES=${RAGD_LIMITS_MAX_DOCUMENT_BYTES:-200000}
rm_start_ragd "$data"
rm_say "ragd serving on $RAGD_ADDRESS"

export REDMINE_RAG_CISI_DIR=$REPO/tests/data/cisi   # texts of the permission property test
status=0
if [ -n "${TESTS:-}" ]; then
  files=()
  for t in $TESTS; do files+=("plugins/redmine_rag/${t}"); done
  # shellcheck disable=SC2086
  rm_run test test bundle exec rails test "${files[@]}" ${TESTOPTS:-} || status=$?
else
  rm_run test test bundle exec rake redmine:plugins:test NAME=redmine_rag TESTOPTS="${TESTOPTS:--v}" || status=$?
fi
rm_say "plugin tests: exit $status after $(rm_since "$t0") s in all"
[ $status -eq 0 ] || { echo "--- ragd log (last 40 lines)"; tail -40 "$data/daemon.log"; }
exit $status
