#!/usr/bin/env bash
# `moerun profile` end to end on the embedded tiny model: writes a profile and a trace, reloads the
# profile with --check, and rejects corrupt and mismatched profiles with a clear one-line error.
# Usage: cli_profile.sh PATH/TO/moerun
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
expect_error() {  # expect_error NAME PATTERN ARGS...: non-zero exit, error naming PATTERN
  local name="$1" pattern="$2"
  shift 2
  "$moerun" "$@" >"$tmp/err.out" 2>"$tmp/err.txt"
  local rc=$?
  check "$name: non-zero exit" test $rc -ne 0 -a $rc -lt 128
  check "$name: message names the problem" grep -qi -- "$pattern" "$tmp/err.txt"
}

printf 'Hello there\n\nThe quick brown fox\nCount to ten: one two three\n' >"$tmp/prompts.txt"
"$moerun" profile -m default -f "$tmp/prompts.txt" -o "$tmp/profile.json" --trace "$tmp/run.trace" \
  -n 4 -t 2 >"$tmp/profile.out" 2>&1
check "profile succeeds" test $? -eq 0
check "profile writes JSON" grep -q '"format":"moerun-expert-profile"' "$tmp/profile.json"
check "profile writes a trace" test -s "$tmp/run.trace"
check "trace starts with its magic" test "$(head -c 8 "$tmp/run.trace")" = "MOERTRC1"
"$moerun" profile -m default --check "$tmp/profile.json" >"$tmp/check.out" 2>&1
check "the profile reloads and matches the model" test $? -eq 0
check "check prints a summary" grep -q "most used quarter" "$tmp/check.out"
tokens=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['tokens'])" "$tmp/profile.json" 2>/dev/null || echo 0)
check "three prompts of several tokens were profiled" test "$tokens" -gt 9

"$moerun" profile -m default -f "$tmp/prompts.txt" -o "$tmp/whole.json" --whole-file -n 2 -t 2 \
  --chat --max-pairs 3 >/dev/null 2>&1
check "whole-file chat profile succeeds" test $? -eq 0

sed 's/"counts":\[/"counts":[-1,/' "$tmp/profile.json" >"$tmp/negative.json"
expect_error "negative count" "negative" profile -m default --check "$tmp/negative.json"
head -c 100 "$tmp/profile.json" >"$tmp/truncated.json"
expect_error "truncated profile" "not valid JSON" profile -m default --check "$tmp/truncated.json"
sed 's/"shape_hash":"[0-9a-f]*"/"shape_hash":"0000000000000000"/' "$tmp/profile.json" >"$tmp/other.json"
expect_error "profile of another model" "another model" profile -m default --check "$tmp/other.json"
expect_error "missing prompt file" "nope.txt" profile -m default -f "$tmp/nope.txt" -o "$tmp/x.json"
printf '\n\n' >"$tmp/empty.txt"
expect_error "no prompt in the file" "no prompt" profile -m default -f "$tmp/empty.txt" -o "$tmp/x.json"

echo "$passes passed, $fails failed"
test "$fails" -eq 0
