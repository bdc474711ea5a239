#!/usr/bin/env bash
# Sets up, builds and runs every test on a Debian 12 machine:
#   1. formatting check, 2. release build (CUDA compiled and linked when nvcc exists) + all tests,
#   3. AddressSanitizer + UndefinedBehaviorSanitizer build + all tests, 4. short fuzzing runs.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
jobs=$(nproc)
export PATH="/usr/local/cuda/bin:$PATH"

echo "== format"
./scripts/check-format.sh

echo "== release build and tests"
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build/release -j"$jobs"
ctest --test-dir build/release --output-on-failure -j"$jobs"

echo "== sanitizer build (address, undefined) and tests"
# -O1 -g1: quick to build, fast enough to run, and line numbers in sanitizer reports.
cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="-O1 -g1" \
  -DMOERUN_CUDA=OFF -DMOERUN_BENCH=OFF -DMOERUN_SANITIZE=address,undefined
cmake --build build/asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build/asan --output-on-failure -j"$jobs"

echo "== fuzzing"
./scripts/fuzz.sh "${MOERUN_FUZZ_SECONDS:-40}"
