// Replacement policies of the VRAM expert cache behind one small interface: the cache table asks a
// policy for a keep-priority per resident expert and evicts the lowest; the policy sees every use.
// Keys are layer * n_experts + expert. Policies keep history for every key (resident or not), so
// an expert that comes back keeps what was learnt about it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace moerun {

// The replacement policies `--cache-policy` selects.
enum class CachePolicyKind { lru, lfu, static_profile, adaptive };

// "lru", "lfu", "static" or "adaptive"; throws Error naming the bad name and the choices.
CachePolicyKind parse_cache_policy(std::string_view name);
// The name parse_cache_policy accepts for `kind`.
const char* cache_policy_name(CachePolicyKind kind);

// What a policy learns from and how it ranks residents. The priority of a key may change only when
// that key is used (relative to the others), so the table can keep residents in a heap.
class CachePolicy {
 public:
  virtual ~CachePolicy() = default;
  // The policy's name (as parse_cache_policy spells it).
  virtual const char* name() const = 0;
  // Records that `key` was chosen by `uses` assignments at `step` (steps only grow).
  virtual void on_use(int32_t key, int64_t step, int64_t uses) = 0;
  // How much keeping `key` is worth now; the resident with the lowest is evicted first.
  virtual double priority(int32_t key) const = 0;
  // Called once by the table that uses the policy, with its number of slots.
  virtual void attach(int64_t n_slots) { (void)n_slots; }
  // Sees each step before the table uses the policy: ids [n_assign] of `layer`, and the cap on
  // admissions the table was given (policies that simulate alternatives use it).
  virtual void on_step(int64_t layer, const int32_t* ids, int64_t n_assign,
                       int64_t max_admissions) {
    (void)layer;
    (void)ids;
    (void)n_assign;
    (void)max_admissions;
  }
  // Changes whenever the policy re-ranks all keys at once; the table then rebuilds its heap.
  virtual uint64_t order_epoch() const { return 0; }
  // Whether the missed `candidate` may replace `victim` (the lowest-priority resident).
  virtual bool admit(int32_t candidate, int32_t victim) const {
    (void)candidate;
    (void)victim;
    return true;
  }
};

// Least recently used: priority = the last step the key was chosen.
class LruPolicy : public CachePolicy {
 public:
  // History for `n_keys` keys.
  explicit LruPolicy(int64_t n_keys);
  const char* name() const override { return "lru"; }
  void on_use(int32_t key, int64_t step, int64_t uses) override;
  double priority(int32_t key) const override;

 private:
  std::vector<int64_t> last_;  // [n_keys] last step used, -1 never
};

// Least frequently used with exponential decay: priority = sum over uses of
// uses * 2^(-(now - step) / half_life), kept as a logarithm referred to step 0 so that the order
// of keys does not change while time passes.
class DecayedLfuPolicy : public CachePolicy {
 public:
  // History for `n_keys` keys; a use loses half its weight after `half_life_steps` steps.
  DecayedLfuPolicy(int64_t n_keys, double half_life_steps);
  const char* name() const override { return "lfu"; }
  void on_use(int32_t key, int64_t step, int64_t uses) override;
  double priority(int32_t key) const override { return log_score_[static_cast<size_t>(key)]; }

 protected:
  std::vector<double> log_score_;  // [n_keys] ln(sum uses * e^(step * rate)); -inf never used
  double rate_;                    // ln 2 / half_life_steps
};

// Static: priority = a saved profile's count of the key; uses do not change it. The table pins the
// profile's most used experts at warm start (ExpertCacheTable::warm_start), which it never evicts.
class StaticPolicy : public CachePolicy {
 public:
  // `counts` [n_keys]: how often each key was chosen in the profile (all zero without one).
  explicit StaticPolicy(std::vector<double> counts);
  const char* name() const override { return "static"; }
  void on_use(int32_t key, int64_t step, int64_t uses) override;
  double priority(int32_t key) const override { return counts_[static_cast<size_t>(key)]; }

 private:
  std::vector<double> counts_;  // [n_keys]
};

// Decayed LFU with a frequency admission filter (TinyLFU's idea): a miss replaces the victim only
// when its own decayed score is at least the victim's. The history covers every key, so the filter
// knows experts that are not cached; one-off misses stop displacing experts in use.
class FilteredLfuPolicy : public DecayedLfuPolicy {
 public:
  // History for `n_keys` keys with a half-life of `half_life_steps` steps.
  FilteredLfuPolicy(int64_t n_keys, double half_life_steps);
  bool admit(int32_t candidate, int32_t victim) const override;
};

// Half-life in tokens of the `lfu` policy (a step is one layer of one forward pass, so policies
// convert with the layer count).
inline constexpr double kLfuHalfLifeTokens = 64;

// A policy of `kind` for n_layers x n_experts keys. `profile_counts` [n_layers][n_experts] ranks
// the static policy (may be empty: all experts rank equal).
std::unique_ptr<CachePolicy> make_cache_policy(
    CachePolicyKind kind, int64_t n_layers, int64_t n_experts,
    const std::vector<std::vector<uint64_t>>& profile_counts = {});

}  // namespace moerun
