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
answer_data=$RM_VAR/ragd-test-answer
rm -rf "$data" "$answer_data"
ANSWER_RAGD_PID=
stop_all() {
  rm_stop_ragd
  rm_stop_pid "$ANSWER_RAGD_PID"
  rm_stop_model_server
}
trap stop_all EXIT
# A small document limit, so the tests of refused documents need not build 10 MiB texts.
export RAGD_LIMITS_MAX_DOCUMENT_BYTES=${RAGD_LIMITS_MAX_DOCUMENT_BYTES:-200000}
# The Ask box's tests: a second daemon with an answer model (a real llama-server
# with SmolLM2-135M; short answers keep them quick). The first has none: its
# Answer RPC is refused (FAILED_PRECONDITION), which hides the box.
# The second one is also ragd as it runs on a network: a bearer token (scopes
# search, write) over mutual TLS (a self-signed CA, a server and a client
# certificate), so the plugin's token and TLS settings are tested by every test
# that talks to it (test/integration/secure_test.rb, the Ask box's tests).
mkdir -p "$answer_data"
secure=$answer_data/secure
"$REPO/.venv/bin/python" -m ragd.cli tls selfsigned --out "$secure/tls" --host 127.0.0.1 --client redmine >/dev/null
"$REPO/.venv/bin/python" -m ragd.cli token create redmine --scopes search,write --tokens-file "$secure/tokens" \
  2>/dev/null > "$secure/token"
export REDMINE_RAG_SECURE_DIR=$secure
rm_start_model_server "$answer_data/llama-server.log"
rm_start_ragd "$answer_data" RAGD_ANSWER_MODEL_URL="$RM_MODEL_URL" RAGD_ANSWER_MAX_TOKENS=48 RAGD_ANSWER_TOP_K=3 \
  RAGD_AUTH_TOKENS_FILE="$secure/tokens" RAGD_TLS_CERT_FILE="$secure/tls/server.pem" \
  RAGD_TLS_KEY_FILE="$secure/tls/server.key" RAGD_TLS_CLIENT_CA_FILE="$secure/tls/ca.pem"
ANSWER_RAGD_PID=$RM_RAGD_PID
export REDMINE_RAG_ANSWER_ADDRESS=$RAGD_ADDRESS
rm_start_ragd "$data"
rm_say "ragd serving on $RAGD_ADDRESS (with an answer model: $REDMINE_RAG_ANSWER_ADDRESS)"

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
