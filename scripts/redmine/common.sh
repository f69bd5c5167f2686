# Shared pieces of the Redmine scripts (sourced, not run): Debian's Redmine 5
# with SQLite and puma in a private copy under var/redmine, the redmine_rag
# plugin installed into it, and a ragd daemon from the worktree's .venv.
#
# Layout (all git-ignored, all rebuilt on demand):
#   var/redmine/app                  private copy of /usr/share/redmine (+ test/ from the source package)
#   var/redmine/app/instances/NAME   one Redmine instance (config, SQLite DB, files, logs): test, demo
#   var/redmine/src                  Debian source package of redmine (for its test/ tree)
#   var/redmine/ragd-NAME            data dir of the ragd daemon a script started
#
# Nothing here reads anything outside the repository but Debian's packages.
# shellcheck shell=bash

REPO=${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
RM_VAR=${RM_VAR:-$REPO/var/redmine}
RM_APP=$RM_VAR/app
PLUGIN_SRC=$REPO/clients/redmine_rag
GEM_SRC=$REPO/clients/ruby
# Debian's redmine package does bundle install against system gems only; so do we.
RM_BASE_DEBS=(dbconfig-no-thanks redmine redmine-sqlite sqlite3 puma ruby-webrick ruby-grpc curl)
# Browser tests and screenshots: Debian's chromium + chromedriver, capybara, selenium.
RM_BROWSER_DEBS=(chromium chromium-driver ruby-capybara ruby-selenium-webdriver fonts-dejavu-core)

rm_say() { printf '\033[1m[redmine]\033[0m %s\n' "$*"; }
rm_now() { date +%s.%N; }
rm_since() { awk -v a="$1" -v b="$(rm_now)" 'BEGIN { printf "%.1f", b - a }'; }

# Installs the Debian packages that are missing. Redmine's postinst and its dpkg
# trigger (fired whenever a ruby-* package is installed later) run `bundle
# install` in /usr/share/redmine: BUNDLE_GEMFILE, RAILS_ENV or REDMINE_INSTANCE
# leaking into apt-get makes dpkg fail, hence `env -u`. The dpkg lock may be
# held by someone else's install: wait for it rather than fail.
# dbconfig-no-thanks: the package creates no system instance or database.
rm_apt() {
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  rm_say "installing Debian packages: ${missing[*]}"
  local sudo=; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo env -u BUNDLE_GEMFILE -u RAILS_ENV -u REDMINE_INSTANCE DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=900 update -qq
  $sudo env -u BUNDLE_GEMFILE -u RAILS_ENV -u REDMINE_INSTANCE DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The private app copy, rebuilt when Debian's redmine package changes. Debian's
# Gemfile hard-codes /usr/share/redmine when it looks for database.yml (patched
# to look beside itself) and names no app server (Gemfile.local adds puma).
rm_app() {
  local stamp="redmine $(dpkg-query -W -f='${Version}' redmine) layout 2"
  if [ -f "$RM_APP/.ragd-stamp" ] && [ "$(cat "$RM_APP/.ragd-stamp")" = "$stamp" ]; then
    return 0
  fi
  rm_say "copying /usr/share/redmine to $RM_APP"
  rm -rf "$RM_APP"
  mkdir -p "$RM_APP"
  # -h follows Debian's symlinks (public/javascripts -> /usr/share/javascript ...);
  # the system instance links are left out.
  tar -C /usr/share/redmine --exclude=./instances --exclude=./config/database.yml \
      --exclude=./Gemfile.lock -chf - . | tar -C "$RM_APP" -xf -
  sed -i "s|Dir\['/usr/share/redmine/{config,instances/\*/config}/database.yml'\]|Dir[File.join(__dir__, '{config,instances/*/config}/database.yml')]|" \
    "$RM_APP/Gemfile"
  grep -q "__dir__, '{config,instances" "$RM_APP/Gemfile"
  cat > "$RM_APP/Gemfile.local" <<'EOF'
# Added by scripts/redmine: the app server (Debian's puma) and, when Debian's
# packages are there, what the plugin's browser tests drive.
gem 'puma'
gem 'webrick'
group :test do
  gem 'capybara' if Dir.glob('/usr/share/rubygems-integration/all/specifications/capybara-*.gemspec').any?
  gem 'selenium-webdriver' if Dir.glob('/usr/share/rubygems-integration/all/specifications/selenium-webdriver-*.gemspec').any?
end
EOF
  mkdir -p "$RM_APP/plugins" "$RM_APP/instances"
  echo "$stamp" > "$RM_APP/.ragd-stamp"
}

# One Redmine instance (Debian multi-tenancy: REDMINE_INSTANCE=NAME makes
# Redmine.root app/instances/NAME for config, db, files, logs, tmp).
rm_instance() {
  local name=$1 dir=$RM_APP/instances/$1 d
  for d in config log files tmp/cache tmp/pids tmp/sockets public db; do mkdir -p "$dir/$d"; done
  # Redmine copies plugin assets to Redmine.root/public/plugin_assets (the
  # instance), but the app serves public/ of the app: share the app's.
  if [ ! -L "$dir/public/plugin_assets" ]; then
    rm -rf "$dir/public/plugin_assets"
    ln -s "$RM_APP/public/plugin_assets" "$dir/public/plugin_assets"
  fi
  [ -f "$dir/config/database.yml" ] || cat > "$dir/config/database.yml" <<EOF
production:
  adapter: sqlite3
  database: $dir/db/production.sqlite3
  timeout: 15000
development:
  adapter: sqlite3
  database: $dir/db/development.sqlite3
  timeout: 15000
test:
  adapter: sqlite3
  database: $dir/db/test.sqlite3
  timeout: 15000
EOF
  [ -f "$dir/config/secret_key.txt" ] || ruby -rsecurerandom -e 'puts SecureRandom.hex(32)' > "$dir/config/secret_key.txt"
  # Plugin setting defaults point at a local daemon; the scripts pass RAGD_ADDRESS.
  [ -f "$dir/config/configuration.yml" ] || printf 'default:\n  attachments_storage_path: %s\n' "$dir/files" > "$dir/config/configuration.yml"
}

# Runs a command in the app with the instance's environment.
#   rm_run INSTANCE RAILS_ENV cmd...
rm_run() {
  local inst=$1 env=$2; shift 2
  (cd "$RM_APP" && env -u BUNDLE_PATH -u BUNDLE_FROZEN -u BUNDLE_WITHOUT REDMINE_INSTANCE="$inst" \
     RAILS_ENV="$env" BUNDLE_GEMFILE="$RM_APP/Gemfile" BUNDLE_SILENCE_ROOT_WARNING=1 "$@")
}

# Copies the plugin into the app, with the ragd-client gem vendored into it
# (vendor/ragd-client, outside the plugin's eager-loaded lib/), and resolves the
# bundle against Debian's gems only (`bundle install --local` never touches the
# network; the plugin's Gemfile asks for a grpc Debian has).
# Copies the plugin to DEST (a Redmine's plugins/redmine_rag) with the gem
# vendored; the screenshots under doc/ stay behind.
rm_copy_plugin() {
  local dest=$1
  rm -rf "$dest.tmp"
  mkdir -p "$dest.tmp"
  tar -C "$PLUGIN_SRC" --exclude=./vendor --exclude=./doc -cf - . | tar -C "$dest.tmp" -xf -
  mkdir -p "$dest.tmp/vendor/ragd-client"
  tar -C "$GEM_SRC" -cf - lib ragd-client.gemspec README.md | tar -C "$dest.tmp/vendor/ragd-client" -xf -
  rm -rf "$dest"
  mv "$dest.tmp" "$dest"
}

rm_install_plugin() {
  local dest=$RM_APP/plugins/redmine_rag
  rm_copy_plugin "$dest"
  local sum; sum=$(cat "$RM_APP/Gemfile" "$RM_APP/Gemfile.local" "$dest/Gemfile" "$dest/vendor/ragd-client/ragd-client.gemspec" | sha256sum | cut -c1-16)
  if [ ! -f "$RM_APP/Gemfile.lock" ] || [ "$(cat "$RM_APP/.bundle-sum" 2>/dev/null)" != "$sum" ]; then
    rm_say "bundle install --local (Debian's gems only)"
    rm -f "$RM_APP/Gemfile.lock"
    rm_run test test bundle install --local --quiet
    echo "$sum" > "$RM_APP/.bundle-sum"
  fi
}

# A migrated, empty Redmine database (Redmine's and the plugin's migrations:
# a few minutes on a loaded machine), kept as var/redmine/template.sqlite3
# until Debian's redmine or the plugin's migrations change. Migrating it also
# dumps db/schema.rb, which Redmine's test tasks load into the test database.
rm_template_db() {
  local stamp=$RM_VAR/template.stamp sum
  sum=$(cat "$RM_APP/.ragd-stamp" "$RM_APP"/plugins/*/db/migrate/*.rb 2>/dev/null | sha256sum | cut -c1-16)
  if [ -f "$RM_VAR/template.sqlite3" ] && [ -f "$RM_APP/db/schema.rb" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ]; then
    return 0
  fi
  rm_say "migrating a template database (Redmine's and the plugin's migrations)"
  rm_instance template
  rm -f "$RM_APP/instances/template/db/production.sqlite3"
  [ -f "$RM_VAR/template.sqlite3" ] && cp "$RM_VAR/template.sqlite3" "$RM_APP/instances/template/db/production.sqlite3"
  rm_run template production bundle exec rake db:create db:migrate redmine:plugins:migrate db:schema:dump >/dev/null
  cp "$RM_APP/instances/template/db/production.sqlite3" "$RM_VAR/template.sqlite3.tmp"
  mv "$RM_VAR/template.sqlite3.tmp" "$RM_VAR/template.sqlite3"
  echo "$sum" > "$stamp"
}

# An instance's production database: a copy of the template, brought up to
# date, with Redmine's default data (trackers, statuses, roles) loaded once.
rm_production_db() {
  local inst=$1 db=$RM_APP/instances/$1/db/production.sqlite3
  rm_template_db
  if [ ! -f "$db" ]; then
    cp "$RM_VAR/template.sqlite3" "$db"
    rm -f "$RM_APP/instances/$inst/db/.default-data"
  fi
  local tasks=(db:migrate redmine:plugins:migrate)
  [ -f "$RM_APP/instances/$inst/db/.default-data" ] || tasks+=(redmine:load_default_data)
  rm_run "$inst" production env REDMINE_LANG=en bundle exec rake "${tasks[@]}" >/dev/null
  touch "$RM_APP/instances/$inst/db/.default-data"
}

# Redmine's test/ tree (test_helper.rb, fixtures): Debian's binary package ships
# none, so it comes from the source package of the installed version, fetched
# with a private apt lists folder (the system's lists are left alone) and kept.
rm_test_tree() {
  [ -f "$RM_APP/test/test_helper.rb" ] && return 0
  local src=$RM_VAR/src version
  version=$(dpkg-query -W -f='${Version}' redmine)
  if ! ls "$src"/redmine_"${version%%-*}"*.orig.tar.* >/dev/null 2>&1; then
    rm_say "fetching Redmine's test/ tree (Debian source package redmine=$version)"
    rm -rf "$src"; mkdir -p "$src/lists/partial" "$src/parts"
    { [ -f /etc/apt/sources.list ] && sed -n 's/^deb /deb-src /p' /etc/apt/sources.list
      for f in /etc/apt/sources.list.d/*.sources; do [ -f "$f" ] && sed 's/^Types: deb$/Types: deb-src/' "$f"; done
      for f in /etc/apt/sources.list.d/*.list; do [ -f "$f" ] && sed -n 's/^deb /deb-src /p' "$f"; done
      true; } > "$src/parts/debsrc.sources.tmp"
    # one-line entries go in a .list file, deb822 stanzas in a .sources file
    grep '^deb-src ' "$src/parts/debsrc.sources.tmp" > "$src/parts/debsrc.list" || true
    grep -v '^deb-src ' "$src/parts/debsrc.sources.tmp" > "$src/parts/debsrc.sources" || true
    rm -f "$src/parts/debsrc.sources.tmp"
    local o=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$src/parts"
             -o "Dir::State::Lists=$src/lists" -o "DPkg::Lock::Timeout=900")
    env -u BUNDLE_GEMFILE -u RAILS_ENV -u REDMINE_INSTANCE apt-get update -qq "${o[@]}" >/dev/null
    (cd "$src" && env -u BUNDLE_GEMFILE -u RAILS_ENV -u REDMINE_INSTANCE \
       apt-get source --download-only -qq "${o[@]}" "redmine=$version" >/dev/null 2>&1)
  fi
  local orig; orig=$(ls "$src"/redmine_*.orig.tar.* | head -1)
  tar -C "$RM_APP" --strip-components=1 -xf "$orig" --wildcards '*/test/'
  test -f "$RM_APP/test/test_helper.rb"
}

# ------------------------------------------------------------------ ragd

# The model, provisioned once (offline) into the cache the Python tests use.
RM_MODEL_CACHE=${RAGD_TEST_MODEL_CACHE:-$REPO/var/test-cache/models}

# Starts `ragd serve` from the worktree's .venv on a free loopback port with its
# data in DIR, and waits until it reports SERVING (it writes its port then).
# Sets RM_RAGD_PID and RAGD_ADDRESS. Stop it with rm_stop_ragd.
# rm_start_ragd DIR [VAR=value ...]: extra environment for the daemon (e.g. RAGD_ANSWER_MODEL_URL).
rm_start_ragd() {
  local dir=$1
  shift
  mkdir -p "$dir" "$RM_MODEL_CACHE"
  [ -e "$dir/models" ] || ln -s "$RM_MODEL_CACHE" "$dir/models"
  "$REPO/.venv/bin/python" -c 'import sys; from pathlib import Path; from ragd.embed.provision import provision_model; provision_model(Path(sys.argv[1]))' \
    "$RM_MODEL_CACHE" >/dev/null
  rm -f "$dir/port"
  env -u RAGD_ADDRESS RAGD_SERVER_METRICS_LISTEN= RAGD_MODEL_THREADS=${RAGD_MODEL_THREADS:-2} "$@" \
    "$REPO/.venv/bin/python" -m ragd.cli serve --data-dir "$dir" --listen 127.0.0.1:0 \
    --port-file "$dir/port" >>"$dir/daemon.log" 2>&1 &
  RM_RAGD_PID=$!
  rm_wait_ready ragd "$RM_RAGD_PID" "$dir/daemon.log" test -s "$dir/port"
  RAGD_ADDRESS=127.0.0.1:$(cat "$dir/port")
  export RAGD_ADDRESS
}

rm_stop_ragd() { rm_stop_pid "${RM_RAGD_PID:-}"; RM_RAGD_PID=; }

# rm_wait_ready NAME PID LOG COMMAND...: until COMMAND succeeds (polled every
# 0.1 s); fails, with the log's tail, if PID exits first or after 300 s.
rm_wait_ready() {
  local name=$1 pid=$2 log=$3 waited=0
  shift 3
  until "$@"; do
    kill -0 "$pid" 2>/dev/null || { echo "$name exited before it was ready:" >&2; tail -30 "$log" >&2; return 1; }
    sleep 0.1
    waited=$((waited + 1))
    [ $waited -lt 3000 ] || { echo "$name not ready after 300 s (log: $log)" >&2; kill "$pid"; return 1; }
  done
}

# SIGTERM to a process this script started, then wait for it (nothing when PID is empty).
rm_stop_pid() {
  [ -n "${1:-}" ] || return 0
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# A model server for ragd's Answer RPC: llama.cpp's llama-server with
# SmolLM2-135M-Instruct (scripts/model_server.sh installs both under .tools/,
# scripts/setup.sh --test runs it), one slot, on a free loopback port. Sets
# RM_MODEL_URL (the answer.model_url to give ragd) and RM_LLAMA_PID.
rm_start_model_server() {
  local log=$1 bin=$REPO/.tools/bin/llama-server model=$REPO/.tools/models/SmolLM2-135M-Instruct.Q4_1.gguf
  [ -x "$bin" ] && [ -s "$model" ] || { echo "no llama-server or model under .tools: run scripts/model_server.sh" >&2; return 1; }
  local port
  port=$(rm_free_port)
  "$bin" -m "$model" --host 127.0.0.1 --port "$port" -np 1 -c 4096 -t 2 --no-webui >"$log" 2>&1 &
  RM_LLAMA_PID=$!
  rm_wait_ready llama-server "$RM_LLAMA_PID" "$log" curl -fs -o /dev/null "http://127.0.0.1:$port/health"
  RM_MODEL_URL=http://127.0.0.1:$port/v1
}

rm_stop_model_server() { rm_stop_pid "${RM_LLAMA_PID:-}"; RM_LLAMA_PID=; }

rm_free_port() {
  "$REPO/.venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The same Redmine without the plugin (the benchmark's baseline): a copy of the
# app without plugins/ and its own bundle, sharing the instances (same database).
rm_bare_app() {
  local bare=$RM_VAR/app-bare
  if [ ! -f "$bare/.ragd-stamp" ] || [ "$(cat "$bare/.ragd-stamp")" != "$(cat "$RM_APP/.ragd-stamp")" ]; then
    rm -rf "$bare"
    mkdir -p "$bare"
    tar -C "$RM_APP" --exclude=./plugins --exclude=./instances --exclude=./test --exclude=./Gemfile.lock \
        --exclude=./.bundle-sum -cf - . | tar -C "$bare" -xf -
    mkdir -p "$bare/plugins"
    ln -s "$RM_APP/instances" "$bare/instances"
  fi
  (cd "$bare" && env -u BUNDLE_PATH -u BUNDLE_FROZEN BUNDLE_GEMFILE="$bare/Gemfile" BUNDLE_SILENCE_ROOT_WARNING=1 \
     bundle install --local --quiet)
  echo "$bare"
}
