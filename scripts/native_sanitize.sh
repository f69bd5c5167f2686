#!/usr/bin/env bash
# Builds the native tests (tests/native) with AddressSanitizer and
# UndefinedBehaviorSanitizer in build/sanitize and runs them; CI calls this.
# When clang++ (or Debian's clang++-NN) is installed it also fuzzes the
# splitter with libFuzzer for FUZZ_SECONDS (default 20; 0 skips), keeping
# the corpus in build/fuzz/corpus so that later runs resume where earlier
# ones stopped.
# gcc alone is enough for the sanitizer tests; about 40 s on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=$(nproc 2>/dev/null || echo 2)
# _GLIBCXX_ASSERTIONS adds bounds checks to std::vector and string_view.
flags="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all -D_GLIBCXX_ASSERTIONS"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

cmake -S . -B build/sanitize -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="$flags" \
  -DRAGD_BUILD_TESTS=ON >/dev/null
cmake --build build/sanitize --target ragd_native_tests -j "$jobs"
build/sanitize/ragd_native_tests --gtest_brief=1

seconds=${FUZZ_SECONDS:-20}
if [[ "$seconds" == 0 ]]; then
  exit 0
fi
clangxx=$(command -v clang++ || compgen -c clang++- | sort -V | tail -n 1 || true)
if [[ -z "$clangxx" ]]; then
  echo "native_sanitize: no clang++, skipping the libFuzzer run (apt-get install clang libclang-rt-dev)"
  exit 0
fi
CXX=$clangxx cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="$flags" \
  -DRAGD_BUILD_TESTS=OFF -DRAGD_BUILD_FUZZER=ON >/dev/null
cmake --build build/fuzz --target ragd_fuzz_splitter -j "$jobs"
mkdir -p build/fuzz/corpus
build/fuzz/ragd_fuzz_splitter -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
  -artifact_prefix=build/fuzz/ build/fuzz/corpus
