#!/usr/bin/env bash
# Sets up, builds and runs moerun's main job on the embedded default model (the `tiny` synthetic
# Qwen3-Next, generated into ~/.cache/moerun on first use; its weights are random).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="/usr/local/cuda/bin:$PATH"
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOERUN_TESTS=OFF >/dev/null
cmake --build build/release -j"$(nproc)" --target moerun
# "default" names the embedded tiny model; the first command that needs it writes it. Its weights
# are random, so the text is gibberish: this shows the machinery and the speed of this machine.
./build/release/moerun inspect default | tail -n 8
./build/release/moerun generate -m default --chat -p "Write a haiku about experts." -n 48 --seed 1
./build/release/moerun check -m default
