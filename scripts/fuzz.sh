#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for N seconds: the GGUF
# reader, the safetensors reader and the tokenizer (encode, streaming decode, output parser, chat
# formatter). Usage: scripts/fuzz.sh [SECONDS_PER_TARGET=60] [extra libFuzzer flags...]
# Environment: FUZZ_JOBS (build parallelism, default: all cores), FUZZ_CMAKE_ARGS (extra configure
# flags), FUZZ_TARGETS (default: "fuzz_gguf fuzz_safetensors fuzz_tokenizer").
set -euo pipefail

seconds="${1:-60}"
shift || true
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build-fuzz"
targets=(${FUZZ_TARGETS:-fuzz_gguf fuzz_safetensors fuzz_tokenizer})

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang \
  -DMOERUN_FUZZ=ON -DMOERUN_TESTS=OFF -DMOERUN_BENCH=OFF -DMOERUN_CUDA=OFF ${FUZZ_CMAKE_ARGS:-} >/dev/null
ninja -C "$build" -j"${FUZZ_JOBS:-$(nproc)}" "${targets[@]}"

for target in "${targets[@]}"; do
  work="$build/fuzz-work/$target"
  mkdir -p "$work/corpus" "$work/artifacts"
  extra=()
  if [ "$target" = fuzz_gguf ]; then
    # Seeds: small valid files written by GgufWriter, and the format's keywords.
    cp -n "$root"/tests/fuzz/seeds/gguf_*.bin "$work/corpus/" 2>/dev/null || true
    extra+=(-dict="$root/tests/fuzz/gguf.dict")
  fi
  echo "== $target for ${seconds}s"
  "$build/tests/fuzz/$target" "$work/corpus" -max_total_time="$seconds" -max_len=4096 \
    -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$work/artifacts/" -print_final_stats=1 \
    "${extra[@]}" "$@"
done
