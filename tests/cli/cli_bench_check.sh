#!/usr/bin/env bash
# End-to-end checks of `moerun check` (the calibration file is written, re-read and its fields
# valid; a corrupt file is reported and ignored) and `moerun bench --json` on the tiny model (every
# reported field present and consistent). Usage: cli_bench_check.sh PATH/TO/moerun
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
if ! command -v python3 >/dev/null; then
  echo "cli_bench_check: python3 is needed to validate JSON; skipped"
  exit 0
fi
# An isolated cache that still sees the tokenizer fetched by scripts/setup.sh.
real_cache="${MOERUN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/moerun}"
mkdir -p "$tmp/cache"
ln -s "$real_cache/tokenizer-qwen3" "$tmp/cache/tokenizer-qwen3"
export MOERUN_CACHE="$tmp/cache"
"$moerun" synth --preset tiny --layers 2 -t 2 -o "$tmp/tiny.gguf" >/dev/null 2>&1
check "synth writes the model" test -s "$tmp/tiny.gguf"

# Without a calibration, bench measures the CPU constants itself and says so.
"$moerun" bench -m "$tmp/tiny.gguf" --device cpu -p 32 -n 8 --repeats 1 -t 2 --json \
  >"$tmp/bench0.json" 2>"$tmp/bench0.err"
check "bench without a calibration succeeds" test $? -eq 0
check "bench says no calibration was stored" python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))["scenarios"][0]
assert "no calibration" in s["roofline"]["constants"], s["roofline"]["constants"]' "$tmp/bench0.json"

"$moerun" check -m "$tmp/tiny.gguf" -t 2 --json >"$tmp/check.json" 2>"$tmp/check.err"
check "check --json succeeds" test $? -eq 0
check "check writes the calibration file" test -s "$tmp/cache/calibration.json"
check "check's JSON has machine, calibration and model fit" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
cal = json.load(open(sys.argv[2]))
assert r["calibration_path"] == sys.argv[2], r["calibration_path"]
assert r["calibration"] == cal
assert cal["version"] == 1 and cal["threads"] == 2 and cal["cpu_model"]
assert cal["cpu_read_bytes_per_s"] > 1e8 and cal["cpu_read_bytes_per_s_1thread"] > 1e8
assert cal["cpu_gemm_bytes_tokens_per_s"] > 1e8
assert r["ram"]["total_bytes"] > r["ram"]["available_bytes"] > 0
m = r["model"]
assert m["routed_expert_bytes"] > 0 and m["dense_bytes"] > 0 and m["embedding_bytes"] > 0
assert m["total_experts"] > 0 and m["top_k"] > 0 and m["state_bytes"] > 0
assert m["min_budget_bytes"] > m["dense_bytes"] + m["embedding_bytes"]
assert m["full_budget_bytes"] >= m["min_budget_bytes"] + m["routed_expert_bytes"]
assert m["roofline_tok_s"] > 0 and "estimate" in m["estimate_note"]' "$tmp/check.json" "$tmp/cache/calibration.json"
"$moerun" check --no-model -t 2 >"$tmp/check.txt" 2>&1
check "check text names RAM, bandwidth and the stored file" grep -q "calibration stored in" "$tmp/check.txt"
check "check text shows available RAM" grep -q "GiB available" "$tmp/check.txt"

"$moerun" bench -m "$tmp/tiny.gguf" --device cpu -p 32 -n 8 --repeats 1 -t 2 --json \
  >"$tmp/bench.json" 2>"$tmp/bench.err"
check "bench --json succeeds" test $? -eq 0
check "bench JSON has every field" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert len(r["scenarios"]) == 1
s = r["scenarios"][0]
assert s["id"] == "custom" and s["status"] == "ok", s
st = s["settings"]
assert st["device"] == "cpu" and st["prompt_tokens"] == 32 and st["gen_tokens"] == 8
assert st["repeats"] == 1 and st["threads"] == 2 and st["routing"] == "model"
for k in ("prefill_tok_s", "decode_tok_s", "ttft_ms", "itl_p50_ms", "itl_p95_ms"):
    v = s[k]
    assert v["min"] <= v["median"] <= v["max"] and v["median"] > 0, (k, v)
assert s["itl_p50_ms"]["median"] <= s["itl_p95_ms"]["median"]
assert s["peak_vram_bytes"] is None
assert s["peak_rss_bytes"] > 0
assert s["expert_stats"] is True
assert s["hit_rate"] == 0 and s["pcie_bytes_per_token"] == 0
assert s["host_bytes_per_token"] > 0
ro = s["roofline"]
assert ro["placement"] == "CPU only" and ro["tok_s"] > 0 and ro["t_floor_ms"] > 0
assert abs(ro["tok_s"] * ro["t_floor_ms"] - 1000) < 1e-6 * ro["tok_s"] * ro["t_floor_ms"]
assert ro["expert_bytes_per_token"] > 0 and ro["dense_bytes_per_token"] > 0
assert "calibration of" in ro["constants"], ro["constants"]
frac = s["decode_tok_s"]["median"] / ro["tok_s"]
assert abs(s["roofline_fraction"] - frac) < 1e-9 and frac > 0' "$tmp/bench.json"
# Routed-expert bytes the CPU reads per decode token cannot exceed top_k experts of every layer.
check "host bytes per token within the roofline's expert bytes" python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))["scenarios"][0]
assert 0 < s["host_bytes_per_token"] <= s["roofline"]["expert_bytes_per_token"] * 1.000001, s' "$tmp/bench.json"

"$moerun" bench -m "$tmp/tiny.gguf" --device cpu -p 16 -n 4 --repeats 2 -t 2 >"$tmp/bench.txt" 2>&1
check "bench text shows decode, ITL and the roofline" \
  grep -q "roofline" "$tmp/bench.txt"
check "bench text shows ITL p95" grep -q "ITL p95" "$tmp/bench.txt"
# Scenarios that need a GPU are skipped, not failed, where there is none.
if ! "$moerun" check --no-model -t 1 2>/dev/null | grep -q "^GPU [0-9]"; then
  "$moerun" bench -m "$tmp/tiny.gguf" -p 16 -n 4 --repeats 1 -t 2 --json >"$tmp/all.json" 2>"$tmp/all.err"
  check "bench all without a GPU exits 0" test $? -eq 0
  check "every GPU scenario is reported skipped" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert [s["id"] for s in r["scenarios"]] == ["S1", "S2", "S3", "S5", "S6"]
assert all(s["status"] == "skipped" and "GPU" in s["reason"] for s in r["scenarios"])' "$tmp/all.json"
fi
"$moerun" bench -m "$tmp/tiny.gguf" --device cpu --routing synthetic:reuse=0.45,within8=0.8,zipf=1.1 \
  -p 8 -n 2 --repeats 1 -t 2 --json >"$tmp/routing.json" 2>"$tmp/routing.err"
check "bench with synthetic routing runs" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["scenarios"][0]["status"] == "ok" and r["scenarios"][0]["settings"]["routing"].startswith("synthetic:")' "$tmp/routing.json"
"$moerun" bench -m "$tmp/tiny.gguf" --device cpu --routing synthetic:reuse=2 -p 8 -n 2 --repeats 1 \
  >/dev/null 2>"$tmp/routing_bad.err"
check "a bad --routing is an error naming it" grep -q "reuse" "$tmp/routing_bad.err"
"$moerun" bench -m "$tmp/tiny.gguf" --device cpu -p 8 -n 2 --repeats 0 >/dev/null 2>"$tmp/rep.err"
check "bad --repeats is an error naming it" grep -q -- "--repeats" "$tmp/rep.err"

# A corrupt calibration is reported and ignored: bench measures the constants itself.
echo '{"version": 1, "date": ' >"$tmp/cache/calibration.json"
"$moerun" bench -m "$tmp/tiny.gguf" --device cpu -p 8 -n 2 --repeats 1 -t 2 --json >"$tmp/bench2.json" 2>/dev/null
check "bench with a corrupt calibration still runs" test $? -eq 0
check "the corrupt calibration is named" python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))["scenarios"][0]
assert "corrupt" in s["roofline"]["constants"], s["roofline"]["constants"]' "$tmp/bench2.json"

echo "cli_bench_check: $passes checks passed, $fails failed"
[ $fails -eq 0 ]
