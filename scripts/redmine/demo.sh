#!/usr/bin/env bash
# `make redmine`: Debian's Redmine 5 with the redmine_rag plugin and a ragd
# daemon, loaded with a sample built from the CISI texts in tests/data/cisi,
# served on a free loopback port. Prints the URL and the logins, then serves
# until Ctrl-C (both processes are stopped then).
#
#   DEMO_PORT=3000 make redmine     a fixed port
#   DEMO_RESET=1 make redmine       start again from an empty demo
#   (every start sets the plugin's settings to its defaults, pointed at the demo's ragd)
#   DEMO_ANSWER=0 make redmine      no model server: the search page offers no Ask box
#   DEMO_RAGD_PRECISION=int8 make redmine   ragd's int8 CPU graph (model.precision; default
#                                   fp32, ragd's own default: see the plugin's README, "Speed")
#   DEMO_DETACH=1 make redmine      leave Redmine and ragd running in the
#                                   background (pids and URL in var/redmine/demo.env;
#                                   scripts/redmine/demo.sh stop ends them)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
source "$here/common.sh"
ENV_FILE=$RM_VAR/demo.env

stop_demo() {
  [ -f "$ENV_FILE" ] || return 0
  # shellcheck disable=SC1090
  source "$ENV_FILE"
  # Puma itself, from its pid file: DEMO_REDMINE_PID is the shell that started it, and
  # setsid leaves Puma running in a session of its own when only that shell is stopped.
  # (Only a live Puma: a pid file left by a crash may name a process that is not ours.)
  local puma; puma=$(cat "$RM_APP/instances/demo/tmp/pids/server.pid" 2>/dev/null || true)
  grep -qs puma "/proc/${puma:-none}/cmdline" || puma=
  for pid in $puma ${DEMO_REDMINE_PID:-} ${DEMO_RAGD_PID:-} ${DEMO_LLAMA_PID:-}; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in $puma ${DEMO_REDMINE_PID:-} ${DEMO_RAGD_PID:-} ${DEMO_LLAMA_PID:-}; do
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  done
  rm -f "$ENV_FILE"
}
if [ "${1:-}" = stop ]; then stop_demo; exit 0; fi
stop_demo # a previous detached demo

t0=$(rm_now)
# ragd's virtualenv (scripts/setup.sh makes it; skipped when it is there).
"$REPO/.venv/bin/python" -c 'import ragd._native' 2>/dev/null || "$REPO/scripts/setup.sh"
rm_apt "${RM_BASE_DEBS[@]}"
rm_app
if [ "${DEMO_RESET:-0}" = 1 ]; then
  rm -rf "$RM_APP/instances/demo" "$RM_VAR/ragd-demo"
fi
rm_instance demo
rm_install_plugin
rm_production_db demo
rm_say "Redmine ready in $(rm_since "$t0") s"

# The search page's Ask box: ragd's Answer RPC with a small local model
# (llama.cpp's llama-server and SmolLM2-135M-Instruct from PyPI, under .tools/;
# a toy model: it shows the flow and the citations, not the quality of a real one).
answer_env=()
DEMO_LLAMA_PID=
if [ "${DEMO_ANSWER:-1}" = 1 ]; then
  "$REPO/scripts/model_server.sh"
  rm_start_model_server "$RM_VAR/ragd-demo-llama-server.log"
  DEMO_LLAMA_PID=$RM_LLAMA_PID
  # Short answers from the 3 best passages, discouraged from repeating itself (a 135M model loops).
  answer_env=(RAGD_ANSWER_MODEL_URL="$RM_MODEL_URL" RAGD_ANSWER_TOP_K=3 RAGD_ANSWER_MAX_TOKENS=120
              RAGD_ANSWER_EXTRA_BODY='{"repeat_penalty": 1.15}')
  rm_say "model server for answers on $RM_MODEL_URL"
fi
# fp32, ragd's default: int8 saved ~7 ms of a 42-51 ms ragd wait per search here, inside the
# benchmark's spread (benchmarks/redmine_search.py --int8, the plugin's README, "Speed").
DEMO_RAGD_PRECISION=${DEMO_RAGD_PRECISION:-fp32}
RAGD_LOG_LEVEL=${RAGD_LOG_LEVEL:-warning} rm_start_ragd "$RM_VAR/ragd-demo" \
  RAGD_MODEL_PRECISION="$DEMO_RAGD_PRECISION" "${answer_env[@]}"
DEMO_RAGD_PID=$RM_RAGD_PID
rm_say "ragd ($DEMO_RAGD_PRECISION) serving on $RAGD_ADDRESS (data in var/redmine/ragd-demo)"

t1=$(rm_now)
# One Rails boot: the sample (once), the plugin pointed at this ragd, then the
# reindex (what `rake redmine_rag:reindex PRUNE=1` does, with its progress bar).
rm_run demo production env CISI_DIR="$REPO/tests/data/cisi" DEMO_RAGD_ADDRESS="$RAGD_ADDRESS" \
  bundle exec rails runner "$here/sample.rb"
rm_say "sample and index ready in $(rm_since "$t1") s"

PORT=${DEMO_PORT:-$(rm_free_port)}
log=$RM_APP/instances/demo/log/server.log
rm -f "$RM_APP/instances/demo/tmp/pids/server.pid"
# One Puma worker process (threads only): the plugin's jobs run in-process
# (Rails' async adapter), which is what Redmine does out of the box.
rm_run demo production setsid bundle exec rails server -e production -b 127.0.0.1 -p "$PORT" \
  -P "$RM_APP/instances/demo/tmp/pids/server.pid" >"$log" 2>&1 &
DEMO_REDMINE_PID=$!
cat > "$ENV_FILE" <<ENVEOF
DEMO_URL=http://127.0.0.1:$PORT
DEMO_REDMINE_PID=$DEMO_REDMINE_PID
DEMO_RAGD_PID=$DEMO_RAGD_PID
DEMO_LLAMA_PID=$DEMO_LLAMA_PID
DEMO_RAGD_ADDRESS=$RAGD_ADDRESS
DEMO_RAGD_PRECISION=$DEMO_RAGD_PRECISION
ENVEOF
until curl -fs -o /dev/null "http://127.0.0.1:$PORT/login"; do
  kill -0 "$DEMO_REDMINE_PID" 2>/dev/null || { echo "Redmine did not start:" >&2; tail -30 "$log" >&2; stop_demo; exit 1; }
  sleep 0.5
done

cat <<MSG

  Redmine with ragd semantic search: http://127.0.0.1:$PORT/   (ready in $(rm_since "$t0") s)

  login   password     what they see
  admin   ${DEMO_ADMIN_PASSWORD:-admin-demo}   everything (Administration > ragd semantic search: status)
  alice   ${DEMO_PASSWORD:-ragd-demo}    Manager in every project: all issues, private notes
  bob     ${DEMO_PASSWORD:-ragd-demo}    Developer in Library Science, Information Retrieval, Archives:
                       non-private issues and his own, private notes
  carol   ${DEMO_PASSWORD:-ragd-demo}    Reporter in Library Science, Information Retrieval: no private notes
  dave    ${DEMO_PASSWORD:-ragd-demo}    no membership: the public projects as a non-member
  erin    ${DEMO_PASSWORD:-ragd-demo}    Cataloguing through the Cataloguers group; Contractor in Internal Audit
  frank   ${DEMO_PASSWORD:-ragd-demo}    Contractor in Information Retrieval: only his own Support issues

  Try: search "how do readers find books in a catalogue?" (a question: the Ask box answers it
  from what you may see, citing its sources), open an issue (Similar issues), or start a new
  issue and type a subject (duplicate suggestions).
MSG

if [ "${DEMO_DETACH:-0}" = 1 ]; then
  rm_say "running in the background; stop with: scripts/redmine/demo.sh stop"
  exit 0
fi
trap 'stop_demo; exit 0' INT TERM
rm_say "Ctrl-C stops Redmine and ragd"
wait "$DEMO_REDMINE_PID" || true
stop_demo
