#include "moe/expert_profile.h"

#include <algorithm>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace moerun {
namespace {

using json = nlohmann::json;

constexpr const char* kFormat = "moerun-expert-profile";
constexpr int kVersion = 1;
constexpr int64_t kMaxLayers = 4096;
constexpr int64_t kMaxExperts = int64_t{1} << 16;
constexpr int kMaxDepth = 8;  // the format nests 4 deep

// Index of the pair (a, b), a < b, in the upper triangle of an n x n matrix.
size_t pair_index(int64_t a, int64_t b, int64_t n) {
  return static_cast<size_t>(a * (2 * n - a - 1) / 2 + (b - a - 1));
}

// Rejects nesting deeper than kMaxDepth before the parser sees it (no deep recursion anywhere).
void check_depth(std::string_view text, const std::string& label) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char ch : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (ch == '\\') {
        escaped = true;
      } else if (ch == '"') {
        in_string = false;
      }
    } else if (ch == '"') {
      in_string = true;
    } else if (ch == '[' || ch == '{') {
      if (++depth > kMaxDepth) fail("expert profile '{}': nested deeper than {}", label, kMaxDepth);
    } else if (ch == ']' || ch == '}') {
      --depth;
    }
  }
}

const json& member(const json& obj, const char* key, const std::string& where) {
  const auto it = obj.find(key);
  if (it == obj.end()) fail("{}: missing '{}'", where, key);
  return *it;
}

uint64_t as_count(const json& v, const std::string& where) {
  if (v.is_number_integer() && !v.is_number_unsigned()) fail("{} is negative", where);
  if (!v.is_number_unsigned()) fail("{} is not a non-negative integer", where);
  return v.get<uint64_t>();
}

int64_t as_size(const json& v, const std::string& where, int64_t lo, int64_t hi) {
  const uint64_t x = as_count(v, where);
  if (x < static_cast<uint64_t>(lo) || x > static_cast<uint64_t>(hi)) {
    fail("{} = {} is outside [{}, {}]", where, x, lo, hi);
  }
  return static_cast<int64_t>(x);
}

const std::string& as_string(const json& v, const std::string& where) {
  if (!v.is_string()) fail("{} is not a string", where);
  return v.get_ref<const std::string&>();
}

}  // namespace

std::string expert_profile_json(const ExpertProfile& p) {
  json layers = json::array();
  for (size_t l = 0; l < p.counts.size(); ++l) {
    json pairs = json::array();
    if (l < p.pairs.size()) {
      for (const ExpertPair& q : p.pairs[l]) pairs.push_back(json::array({q.a, q.b, q.count}));
    }
    layers.push_back(json{{"counts", p.counts[l]}, {"pairs", std::move(pairs)}});
  }
  nlohmann::ordered_json out;
  out["format"] = kFormat;
  out["version"] = kVersion;
  out["model"] = nlohmann::ordered_json{{"architecture", p.model.architecture},
                                        {"n_layers", p.model.n_layers},
                                        {"n_experts", p.model.n_experts},
                                        {"top_k", p.model.top_k},
                                        {"shape_hash", p.model.shape_hash}};
  out["tokens"] = p.tokens;
  out["layers"] = std::move(layers);
  return out.dump() + "\n";
}

void save_expert_profile(const ExpertProfile& profile, const std::string& path) {
  const std::string text = expert_profile_json(profile);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail("cannot write the expert profile '{}'", path);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  out.close();
  if (!out) fail("writing the expert profile '{}' failed", path);
}

ExpertProfile parse_expert_profile(std::string_view text, const std::string& label) {
  const std::string where = fmt::format("expert profile '{}'", label);
  check_depth(text, label);
  const json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) fail("{}: not valid JSON", where);
  if (!doc.is_object()) fail("{}: not a JSON object", where);
  if (!member(doc, "format", where).is_string() || doc["format"] != kFormat) {
    fail("{}: 'format' is not \"{}\"", where, kFormat);
  }
  if (as_count(member(doc, "version", where), where + ": version") != kVersion) {
    fail("{}: version {} is not supported (expected {})", where, doc["version"].dump(), kVersion);
  }
  ExpertProfile p;
  const json& m = member(doc, "model", where);
  if (!m.is_object()) fail("{}: 'model' is not an object", where);
  const std::string mw = where + ": model";
  p.model.architecture = as_string(member(m, "architecture", mw), mw + ".architecture");
  p.model.n_layers = as_size(member(m, "n_layers", mw), mw + ".n_layers", 1, kMaxLayers);
  p.model.n_experts = as_size(member(m, "n_experts", mw), mw + ".n_experts", 1, kMaxExperts);
  p.model.top_k = as_size(member(m, "top_k", mw), mw + ".top_k", 1, p.model.n_experts);
  p.model.shape_hash = as_string(member(m, "shape_hash", mw), mw + ".shape_hash");
  p.tokens = as_count(member(doc, "tokens", where), where + ": tokens");
  const json& layers = member(doc, "layers", where);
  if (!layers.is_array() || static_cast<int64_t>(layers.size()) != p.model.n_layers) {
    fail("{}: 'layers' is not an array of n_layers = {} entries", where, p.model.n_layers);
  }
  const auto ne = static_cast<size_t>(p.model.n_experts);
  for (int64_t l = 0; l < p.model.n_layers; ++l) {
    const std::string lw = fmt::format("{}: layers[{}]", where, l);
    const json& layer = layers[static_cast<size_t>(l)];
    if (!layer.is_object()) fail("{} is not an object", lw);
    const json& counts = member(layer, "counts", lw);
    if (!counts.is_array() || counts.size() != ne) {
      fail("{}.counts is not an array of n_experts = {} entries", lw, ne);
    }
    std::vector<uint64_t>& row = p.counts.emplace_back(ne);
    uint64_t sum = 0;
    for (size_t e = 0; e < ne; ++e) {
      row[e] = as_count(counts[e], fmt::format("{}.counts[{}]", lw, e));
      if (row[e] > p.tokens)
        fail("{}.counts[{}] = {} exceeds tokens = {}", lw, e, row[e], p.tokens);
      sum += row[e];
    }
    if (sum > p.tokens * static_cast<uint64_t>(p.model.top_k)) {
      fail("{}: the counts add up to {}, more than tokens x top_k = {}", lw, sum,
           p.tokens * static_cast<uint64_t>(p.model.top_k));
    }
    const json& pairs = member(layer, "pairs", lw);
    if (!pairs.is_array()) fail("{}.pairs is not an array", lw);
    std::vector<ExpertPair>& out = p.pairs.emplace_back();
    for (size_t i = 0; i < pairs.size(); ++i) {
      const std::string pw = fmt::format("{}.pairs[{}]", lw, i);
      const json& q = pairs[i];
      if (!q.is_array() || q.size() != 3) fail("{} is not [a, b, count]", pw);
      ExpertPair pair;
      pair.a = static_cast<int32_t>(as_size(q[0], pw + "[0]", 0, p.model.n_experts - 1));
      pair.b = static_cast<int32_t>(as_size(q[1], pw + "[1]", 0, p.model.n_experts - 1));
      pair.count = as_count(q[2], pw + "[2]");
      if (pair.a >= pair.b) fail("{}: expert {} is not below expert {}", pw, pair.a, pair.b);
      if (pair.count > p.tokens) fail("{}: count {} exceeds tokens = {}", pw, pair.count, p.tokens);
      out.push_back(pair);
    }
  }
  return p;
}

ExpertProfile load_expert_profile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read the expert profile '{}'", path);
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  return parse_expert_profile(text, path);
}

void check_profile_model(const ExpertProfile& p, const ProfileModel& m, const std::string& label) {
  auto differ = [&](const char* field, const auto& have, const auto& want) {
    fail("expert profile '{}' was made for another model: {} is {}, the model's is {}", label,
         field, have, want);
  };
  if (p.model.architecture != m.architecture) {
    differ("architecture", p.model.architecture, m.architecture);
  }
  if (p.model.n_layers != m.n_layers) differ("n_layers", p.model.n_layers, m.n_layers);
  if (p.model.n_experts != m.n_experts) differ("n_experts", p.model.n_experts, m.n_experts);
  if (p.model.top_k != m.top_k) differ("top_k", p.model.top_k, m.top_k);
  if (p.model.shape_hash != m.shape_hash) {
    differ("shape_hash", p.model.shape_hash, m.shape_hash);
  }
}

ProfileRecorder::ProfileRecorder(ProfileModel model, bool keep_trace)
    : model_(std::move(model)), keep_trace_(keep_trace) {
  MOERUN_CHECK(model_.n_layers > 0 && model_.n_experts > 1 && model_.top_k > 0);
  const auto nl = static_cast<size_t>(model_.n_layers);
  const auto ne = static_cast<size_t>(model_.n_experts);
  tokens_per_layer_.assign(nl, 0);
  counts_.assign(nl, std::vector<uint64_t>(ne, 0));
  pair_counts_.assign(nl, std::vector<uint64_t>(ne * (ne - 1) / 2, 0));
  if (keep_trace_) trace_per_layer_.resize(nl);
}

void ProfileRecorder::observe(int64_t layer, int64_t n_tokens, int64_t top_k, const int32_t* ids,
                              const float* /*weights*/) {
  MOERUN_CHECK(layer >= 0 && layer < model_.n_layers && top_k == model_.top_k);
  const auto l = static_cast<size_t>(layer);
  tokens_per_layer_[l] += static_cast<uint64_t>(n_tokens);
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int32_t* row = ids + t * top_k;
    for (int64_t i = 0; i < top_k; ++i) {
      ++counts_[l][static_cast<size_t>(row[i])];
      for (int64_t j = i + 1; j < top_k; ++j) {
        const int64_t a = std::min(row[i], row[j]), b = std::max(row[i], row[j]);
        if (a != b) ++pair_counts_[l][pair_index(a, b, model_.n_experts)];
      }
    }
  }
  if (keep_trace_)
    trace_per_layer_[l].insert(trace_per_layer_[l].end(), ids, ids + n_tokens * top_k);
}

ExpertProfile ProfileRecorder::profile(int64_t max_pairs) const {
  const int64_t ne = model_.n_experts;
  const size_t limit = static_cast<size_t>(max_pairs < 0 ? 2 * ne : max_pairs);
  ExpertProfile p;
  p.model = model_;
  p.tokens = tokens_per_layer_.empty() ? 0 : tokens_per_layer_[0];
  p.counts = counts_;
  for (const std::vector<uint64_t>& tri : pair_counts_) {
    std::vector<ExpertPair>& out = p.pairs.emplace_back();
    for (int64_t a = 0; a < ne; ++a) {
      for (int64_t b = a + 1; b < ne; ++b) {
        const uint64_t c = tri[pair_index(a, b, ne)];
        if (c > 0) out.push_back(ExpertPair{static_cast<int32_t>(a), static_cast<int32_t>(b), c});
      }
    }
    auto by_count = [](const ExpertPair& x, const ExpertPair& y) {
      return x.count != y.count ? x.count > y.count : (x.a != y.a ? x.a < y.a : x.b < y.b);
    };
    const size_t keep = std::min(limit, out.size());
    std::partial_sort(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(keep), out.end(),
                      by_count);
    out.resize(keep);
  }
  return p;
}

RoutingTrace ProfileRecorder::trace() const {
  MOERUN_CHECK(keep_trace_);
  RoutingTrace t;
  t.n_layers = model_.n_layers;
  t.n_experts = model_.n_experts;
  t.top_k = model_.top_k;
  t.n_tokens = static_cast<int64_t>(tokens_per_layer_[0]);
  for (uint64_t n : tokens_per_layer_) MOERUN_CHECK(n == tokens_per_layer_[0]);
  t.ids.resize(static_cast<size_t>(t.n_tokens * t.n_layers * t.top_k));
  for (int64_t tok = 0; tok < t.n_tokens; ++tok) {
    for (int64_t l = 0; l < t.n_layers; ++l) {
      const int32_t* src = trace_per_layer_[static_cast<size_t>(l)].data() + tok * t.top_k;
      std::copy(src, src + t.top_k, t.ids.data() + (tok * t.n_layers + l) * t.top_k);
    }
  }
  return t;
}

}  // namespace moerun
