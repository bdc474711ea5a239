// Expert-cache simulator: replays a routing trace (synthetic, bench scenario S6 by default, or a
// file from `moerun profile --trace`) through ExpertCacheTable with each replacement policy at
// several cache sizes, and prints the hit rates; Belady's OPT (offline, simulator only) gives the
// upper bound. Decode steps: one token per layer call.
//
//   bench_cache_policy [--routing synthetic:reuse=0.45,within8=0.8,zipf=1.1] [--trace FILE]
//                      [--tokens 2000] [--warmup 2000] [--fractions 0.1,0.25,0.27,0.3,0.5]
//                      [--cap 2]
//
// The first --warmup tokens are seen by every policy without being counted (the cache starts
// warm) and form the profile that ranks the static policy; the hit rate is measured on the next
// --tokens tokens.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <queue>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "core/error.h"
#include "moe/cache_policy.h"
#include "moe/expert_cache_table.h"
#include "moe/routing_trace.h"
#include "moe/synthetic_routing.h"

namespace moerun {
namespace {

struct SimArgs {
  std::string routing = "synthetic:reuse=0.45,within8=0.8,zipf=1.1";
  std::string trace_file;
  int64_t n_layers = 48, n_experts = 512, top_k = 10;
  int64_t tokens = 2000, warmup = 2000;
  std::vector<double> fractions = {0.10, 0.25, 0.27, 0.30, 0.50};
  int64_t cap = 2;
  std::vector<std::string> policies = {"lru", "lfu", "static", "adaptive"};
};

// Measured steps of one policy at one size.
struct SimResult {
  double hit_rate = 0;
  double admissions_per_token = 0;
  double ns_per_step = 0;
};

RoutingTrace make_trace(const SimArgs& a) {
  if (!a.trace_file.empty()) return load_routing_trace(a.trace_file);
  SyntheticRouting gen(parse_synthetic_routing(a.routing), a.n_layers, a.n_experts, a.top_k);
  RoutingTrace t;
  t.n_layers = a.n_layers;
  t.n_experts = a.n_experts;
  t.top_k = a.top_k;
  t.n_tokens = a.warmup + a.tokens;
  t.ids.resize(static_cast<size_t>(t.n_tokens * t.n_layers * t.top_k));
  std::vector<float> w(static_cast<size_t>(a.top_k));
  for (int64_t tok = 0; tok < t.n_tokens; ++tok) {
    for (int64_t l = 0; l < t.n_layers; ++l) {
      gen.next(l, t.ids.data() + (tok * t.n_layers + l) * t.top_k, w.data());
    }
  }
  return t;
}

std::vector<std::vector<uint64_t>> profile_counts(const RoutingTrace& t, int64_t warmup) {
  std::vector<std::vector<uint64_t>> counts(
      static_cast<size_t>(t.n_layers), std::vector<uint64_t>(static_cast<size_t>(t.n_experts)));
  for (int64_t tok = 0; tok < warmup; ++tok) {
    for (int64_t l = 0; l < t.n_layers; ++l) {
      const int32_t* ids = t.at(tok, l);
      for (int64_t k = 0; k < t.top_k; ++k) ++counts[static_cast<size_t>(l)][ids[k]];
    }
  }
  return counts;
}

SimResult simulate(const RoutingTrace& t, int64_t warmup, CachePolicyKind kind, int64_t slots,
                   int64_t cap, const std::vector<std::vector<uint64_t>>& profile) {
  ExpertCacheTable table(t.n_layers, t.n_experts, slots,
                         make_cache_policy(kind, t.n_layers, t.n_experts, profile));
  if (kind == CachePolicyKind::static_profile) table.warm_start(profile, slots, true);
  int64_t hits = 0, total = 0, admitted = 0;
  double seconds = 0;
  for (int64_t tok = 0; tok < t.n_tokens; ++tok) {
    const auto start = std::chrono::steady_clock::now();
    for (int64_t l = 0; l < t.n_layers; ++l) {
      const CacheStepPlan& p = table.plan_step(l, t.at(tok, l), t.top_k, cap);
      if (tok >= warmup) {
        hits += p.hit_assignments;
        total += p.hit_assignments + p.miss_assignments;
        admitted += static_cast<int64_t>(p.admissions.size());
      }
    }
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  const double measured = static_cast<double>(t.n_tokens - warmup);
  return SimResult{static_cast<double>(hits) / static_cast<double>(std::max<int64_t>(total, 1)),
                   static_cast<double>(admitted) / measured,
                   seconds * 1e9 / static_cast<double>(t.n_tokens * t.n_layers)};
}

// Belady's OPT over the whole trace (hits counted after `warmup`): on a miss, evict the resident
// whose next use is farthest (never one chosen in the current step). With `bypass`, a miss whose
// own next use is farther than that is not admitted: the true upper bound for any policy.
double simulate_opt(const RoutingTrace& t, int64_t warmup, int64_t slots, bool bypass) {
  const int64_t n_steps = t.n_tokens * t.n_layers;
  const int64_t n_keys = t.n_layers * t.n_experts;
  constexpr int64_t kNever = INT64_MAX;
  // next_use[i]: the step at which the key of assignment i is chosen next.
  std::vector<int64_t> next_use(t.ids.size());
  std::vector<int64_t> upcoming(static_cast<size_t>(n_keys), kNever);
  for (int64_t s = n_steps - 1; s >= 0; --s) {
    const int64_t layer = s % t.n_layers;
    for (int64_t k = 0; k < t.top_k; ++k) {
      const size_t i = static_cast<size_t>(s * t.top_k + k);
      const auto key = static_cast<size_t>(layer * t.n_experts + t.ids[i]);
      next_use[i] = upcoming[key];
      upcoming[key] = s;
    }
  }
  std::vector<int64_t> key_next(static_cast<size_t>(n_keys), kNever);  // of residents
  std::vector<uint8_t> resident(static_cast<size_t>(n_keys), 0);
  std::priority_queue<std::pair<int64_t, int32_t>> heap;  // (next use, key), stale entries skipped
  int64_t n_resident = 0, hits = 0, total = 0;
  std::vector<std::pair<int64_t, int32_t>> aside;
  for (int64_t s = 0; s < n_steps; ++s) {
    const int64_t layer = s % t.n_layers;
    const bool counted = s / t.n_layers >= warmup;
    for (int64_t k = 0; k < t.top_k; ++k) {
      const size_t i = static_cast<size_t>(s * t.top_k + k);
      const auto key = static_cast<int32_t>(layer * t.n_experts + t.ids[i]);
      const int64_t nu = next_use[i];
      if (counted) ++total;
      if (resident[static_cast<size_t>(key)]) {
        if (counted) ++hits;
        key_next[static_cast<size_t>(key)] = nu;
        heap.emplace(nu, key);
        continue;
      }
      if (n_resident == slots) {
        // The farthest resident not chosen in this step (those are set aside and put back).
        const int32_t* step_ids = t.at(s / t.n_layers, layer);
        aside.clear();
        int32_t victim = -1;
        while (!heap.empty()) {
          const auto [when, vk] = heap.top();
          if (!resident[static_cast<size_t>(vk)] || key_next[static_cast<size_t>(vk)] != when) {
            heap.pop();
            continue;
          }
          if (vk / t.n_experts == layer &&
              std::find(step_ids, step_ids + t.top_k, vk % t.n_experts) != step_ids + t.top_k) {
            aside.push_back(heap.top());
            heap.pop();
            continue;
          }
          victim = vk;
          break;
        }
        if (victim >= 0) heap.pop();
        for (const auto& e : aside) heap.push(e);
        if (victim < 0) continue;
        if (bypass && nu >= key_next[static_cast<size_t>(victim)]) {
          heap.emplace(key_next[static_cast<size_t>(victim)], victim);
          continue;
        }
        resident[static_cast<size_t>(victim)] = 0;
        --n_resident;
      }
      if (n_resident < slots) {
        resident[static_cast<size_t>(key)] = 1;
        key_next[static_cast<size_t>(key)] = nu;
        heap.emplace(nu, key);
        ++n_resident;
      }
    }
  }
  return static_cast<double>(hits) / static_cast<double>(std::max<int64_t>(total, 1));
}

void run(const SimArgs& a) {
  const RoutingTrace trace = make_trace(a);
  const int64_t warmup = std::min(a.warmup, trace.n_tokens - 1);
  const auto profile = profile_counts(trace, warmup);
  const int64_t n_keys = trace.n_layers * trace.n_experts;
  fmt::print("trace: {}; {} layers x {} experts, top-{}; {} warm-up + {} measured tokens\n",
             a.trace_file.empty() ? a.routing : a.trace_file, trace.n_layers, trace.n_experts,
             trace.top_k, warmup, trace.n_tokens - warmup);
  std::string header = fmt::format("{:<28}", "policy \\ slots");
  for (double f : a.fractions) {
    header += fmt::format(" {:>8}", fmt::format("{:.0f}%", f * 100));
  }
  std::string sizes = fmt::format("{:<28}", "");
  for (double f : a.fractions) {
    sizes += fmt::format(" {:>8}", static_cast<int64_t>(f * static_cast<double>(n_keys)));
  }
  fmt::print("hit rate (fraction of routed assignments served by the cache)\n{}\n{}\n", header,
             sizes);
  for (const int64_t cap : {int64_t{-1}, a.cap}) {
    for (const std::string& name : a.policies) {
      const CachePolicyKind kind = parse_cache_policy(name);
      std::string line = fmt::format(
          "{:<28}",
          fmt::format("{} ({})", name, cap < 0 ? "admit all" : fmt::format("cap {}", cap)));
      std::string admits = fmt::format("{:<28}", "  admissions/token");
      double ns = 0;
      for (double f : a.fractions) {
        const auto slots = static_cast<int64_t>(f * static_cast<double>(n_keys));
        const SimResult r = simulate(trace, warmup, kind, slots, cap, profile);
        line += fmt::format(" {:>7.1f}%", 100 * r.hit_rate);
        admits += fmt::format(" {:>8.1f}", r.admissions_per_token);
        ns = std::max(ns, r.ns_per_step);
      }
      fmt::print("{}   (plan_step {:.0f} ns)\n{}\n", line, ns, admits);
    }
  }
  for (const bool bypass : {false, true}) {
    std::string line = fmt::format("{:<28}", bypass ? "OPT (may bypass)" : "OPT (admit all)");
    for (double f : a.fractions) {
      const auto slots = static_cast<int64_t>(f * static_cast<double>(n_keys));
      line += fmt::format(" {:>7.1f}%", 100 * simulate_opt(trace, warmup, slots, bypass));
    }
    fmt::print("{}\n", line);
  }
}

}  // namespace
}  // namespace moerun

int main(int argc, char** argv) {
  moerun::SimArgs a;
  CLI::App app{"Replays a routing trace through the expert cache with each policy"};
  app.add_option("--routing", a.routing, "Synthetic routing spec")->capture_default_str();
  app.add_option("--trace", a.trace_file, "A trace file from `moerun profile --trace`");
  app.add_option("--layers", a.n_layers, "Layers (synthetic)")->capture_default_str();
  app.add_option("--experts", a.n_experts, "Experts per layer (synthetic)")->capture_default_str();
  app.add_option("--top-k", a.top_k, "Experts per token (synthetic)")->capture_default_str();
  app.add_option("--tokens", a.tokens, "Measured tokens (synthetic)")->capture_default_str();
  app.add_option("--warmup", a.warmup, "Warm-up / profile tokens")->capture_default_str();
  app.add_option("--fractions", a.fractions, "Cache sizes as fractions of all experts")
      ->delimiter(',');
  app.add_option("--cap", a.cap, "Admissions per step in the capped runs")->capture_default_str();
  app.add_option("--policies", a.policies, "Policies to run")->delimiter(',');
  try {
    app.parse(argc, argv);
    moerun::run(a);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_cache_policy: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
