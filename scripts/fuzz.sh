#!/usr/bin/env bash
# Builds the GGUF fuzz target with clang (libFuzzer, ASan, UBSan) and runs it for N seconds.
# Usage: scripts/fuzz.sh [SECONDS=60] [extra libFuzzer flags...]
# Environment: FUZZ_JOBS (build parallelism, default 2), FUZZ_CMAKE_ARGS (extra configure flags).
set -euo pipefail

seconds="${1:-60}"
shift || true
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build-fuzz"
work="$build/fuzz-work"

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang \
  -DMOERUN_FUZZ=ON -DMOERUN_TESTS=OFF -DMOERUN_BENCH=OFF -DMOERUN_CUDA=OFF ${FUZZ_CMAKE_ARGS:-} >/dev/null
ninja -C "$build" -j"${FUZZ_JOBS:-2}" fuzz_gguf

# Seed corpus: small valid files written by GgufWriter (committed in tests/fuzz/seeds)
# plus whatever earlier runs added to the working corpus.
mkdir -p "$work/corpus" "$work/artifacts"
cp -n "$root"/tests/fuzz/seeds/gguf_*.bin "$work/corpus/" 2>/dev/null || true

"$build/tests/fuzz/fuzz_gguf" "$work/corpus" \
  -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048 -timeout=10 \
  -dict="$root/tests/fuzz/gguf.dict" -artifact_prefix="$work/artifacts/" -print_final_stats=1 "$@"
