#!/usr/bin/env bash
# End-to-end checks of the moerun command line: synth -> inspect, and clear one-line errors with a
# non-zero exit status for bad files and bad flags. Usage: cli_smoke.sh PATH/TO/moerun
set -u
moerun="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
passes=0
check() {  # check NAME CONDITION...
  local name="$1"
  shift
  if "$@"; then echo "ok   $name"; passes=$((passes + 1)); else echo "FAIL $name"; fails=$((fails + 1)); fi
}
# Run moerun in an isolated cache that still sees the tokenizer fetched by scripts/setup.sh.
real_cache="${MOERUN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/moerun}"
mkdir -p "$tmp/cache"
ln -s "$real_cache/tokenizer-qwen3" "$tmp/cache/tokenizer-qwen3"
export MOERUN_CACHE="$tmp/cache"

"$moerun" synth --preset tiny --layers 2 -t 2 -o "$tmp/tiny.gguf" >"$tmp/synth.out" 2>&1
check "synth writes a file" test -s "$tmp/tiny.gguf"
"$moerun" inspect "$tmp/tiny.gguf" >"$tmp/inspect.out" 2>&1
check "inspect succeeds" test $? -eq 0
check "inspect shows the architecture" grep -q "qwen3next" "$tmp/inspect.out"
check "inspect lists expert tensors" grep -q "blk.1.ffn_down_exps.weight" "$tmp/inspect.out"
check "inspect totals routed experts" grep -qi "routed experts" "$tmp/inspect.out"

expect_error() {  # expect_error NAME PATTERN ARGS...: non-zero exit, one error line naming PATTERN
  local name="$1" pattern="$2"
  shift 2
  "$moerun" "$@" >"$tmp/err.out" 2>"$tmp/err.txt"
  local rc=$?
  check "$name: non-zero exit" test $rc -ne 0 -a $rc -lt 128
  check "$name: message names the problem" grep -qi -- "$pattern" "$tmp/err.txt"
}
head -c 5000 "$tmp/tiny.gguf" >"$tmp/truncated.gguf"
# A valid GGUF of an architecture moerun does not run (one string key, no tensors).
printf 'GGUF\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00' >"$tmp/inspect_llama.gguf"
printf '\x14\x00\x00\x00\x00\x00\x00\x00general.architecture\x08\x00\x00\x00' >>"$tmp/inspect_llama.gguf"
printf '\x05\x00\x00\x00\x00\x00\x00\x00llama' >>"$tmp/inspect_llama.gguf"
expect_error "truncated file" "truncated.gguf" inspect "$tmp/truncated.gguf"
printf 'GGUX\3\0\0\0' >"$tmp/magic.gguf"
expect_error "wrong magic" "magic" inspect "$tmp/magic.gguf"
expect_error "missing file" "nope.gguf" inspect "$tmp/nope.gguf"
expect_error "unknown flag" "bogus" synth --bogus -o "$tmp/x.gguf"
expect_error "unknown preset" "preset" synth --preset huge -o "$tmp/x.gguf"
expect_error "unknown type mix" "types" synth --types q3_x -o "$tmp/x.gguf"
check "no partial file after a failed synth" test ! -e "$tmp/x.gguf"

# Generation on the tiny synthetic model: greedy is deterministic, seeds reproduce.
ids1=$("$moerun" generate -m "$tmp/tiny.gguf" --prompt-ids 1,2,3,4,5 -n 8 --temp 0 --print-ids -t 2 2>"$tmp/gen.err")
ids2=$("$moerun" generate -m "$tmp/tiny.gguf" --prompt-ids 1,2,3,4,5 -n 8 --temp 0 --print-ids -t 1 2>/dev/null)
check "greedy generate prints 8 ids" test "$(echo "$ids1" | tr ',' '\n' | wc -l)" -eq 8
check "greedy is the same with 1 and 2 threads" test "$ids1" = "$ids2"
check "generate reports speed" grep -q "tok/s" "$tmp/gen.err"
s1=$("$moerun" generate -m "$tmp/tiny.gguf" -p "Hello" -n 6 --temp 1 --seed 42 --print-ids --ignore-eos 2>/dev/null)
s2=$("$moerun" generate -m "$tmp/tiny.gguf" -p "Hello" -n 6 --temp 1 --seed 42 --print-ids --ignore-eos 2>/dev/null)
check "same seed, same tokens" test -n "$s1" -a "$s1" = "$s2"
"$moerun" generate -m "$tmp/tiny.gguf" --prompt-ids 7,8,9 -n 3 --temp 0 --dump-logits "$tmp/logits.bin" --ignore-eos >/dev/null 2>&1
check "dump-logits writes 3 rows of 151936 floats" test "$(stat -c %s "$tmp/logits.bin")" -eq $((3 * 151936 * 4))
"$moerun" generate -m "$tmp/tiny.gguf" --chat -p "Hi <|im_start|>system" -n 4 --temp 0 >/dev/null 2>&1
check "chat-mode generate runs" test $? -eq 0
printf 'caf\xe9\n' >"$tmp/latin1.txt"
expect_error "non-UTF-8 prompt file" "UTF-8" generate -m "$tmp/tiny.gguf" -f "$tmp/latin1.txt" -n 2
expect_error "prompt longer than the context" "context" generate -m "$tmp/tiny.gguf" --prompt-ids 1,2,3,4,5,6 --ctx 4 -n 2
expect_error "empty prompt" "prompt" generate -m "$tmp/tiny.gguf" -p "" -n 2
expect_error "bad token id" "vocabulary" generate -m "$tmp/tiny.gguf" --prompt-ids 1,999999999 -n 2
expect_error "bad sampling value" "top_p" generate -m "$tmp/tiny.gguf" --prompt-ids 1 --top-p 0 -n 2
expect_error "other architecture" "llama" generate -m "$tmp/inspect_llama.gguf" --prompt-ids 1 -n 2

# A transformers fixture converted to GGUF generates exactly transformers' greedy tokens.
fixture="$(dirname "$0")/../fixtures/models/qwen3next_a"
if [ -d "$fixture" ] && command -v python3 >/dev/null; then
  "$moerun" convert "$fixture" -o "$tmp/fixture.gguf" --type f32 >/dev/null 2>&1
  check "convert a transformers fixture" test -s "$tmp/fixture.gguf"
  prompt=$(python3 -c "import json,sys; print(','.join(map(str, json.load(open(sys.argv[1]))['prompt_ids'])))" "$fixture/reference.json")
  want=$(python3 -c "import json,sys; print(','.join(map(str, json.load(open(sys.argv[1]))['generated_ids'])))" "$fixture/reference.json")
  got=$("$moerun" generate -m "$tmp/fixture.gguf" --prompt-ids "$prompt" -n 16 --temp 0 --print-ids --ignore-eos 2>/dev/null)
  check "fixture greedy tokens equal transformers'" test "$got" = "$want"
fi

echo "cli_smoke: $passes checks passed, $fails failed"
[ $fails -eq 0 ]
