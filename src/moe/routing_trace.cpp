#include "moe/routing_trace.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>

#include "core/error.h"

namespace moerun {
namespace {

constexpr char kMagic[8] = {'M', 'O', 'E', 'R', 'T', 'R', 'C', '1'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 32;
// Sanity limits: far above any real model, low enough that sizes cannot overflow.
constexpr uint32_t kMaxLayers = 4096;
constexpr uint32_t kMaxExperts = 1u << 20;
constexpr uint32_t kMaxTopK = 1024;

template <typename T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

template <typename T>
T get(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace

void save_routing_trace(const RoutingTrace& t, const std::string& path) {
  MOERUN_CHECK(static_cast<int64_t>(t.ids.size()) == t.n_tokens * t.n_layers * t.top_k);
  std::string header(kMagic, sizeof(kMagic));
  put<uint32_t>(header, kVersion);
  put<uint32_t>(header, static_cast<uint32_t>(t.n_layers));
  put<uint32_t>(header, static_cast<uint32_t>(t.n_experts));
  put<uint32_t>(header, static_cast<uint32_t>(t.top_k));
  put<uint64_t>(header, static_cast<uint64_t>(t.n_tokens));
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail("cannot write the routing trace '{}'", path);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(reinterpret_cast<const char*>(t.ids.data()),
            static_cast<std::streamsize>(t.ids.size() * sizeof(int32_t)));
  out.close();
  if (!out) fail("writing the routing trace '{}' failed", path);
}

RoutingTrace load_routing_trace(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read the routing trace '{}'", path);
  const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) fail("reading the routing trace '{}' failed", path);
  return parse_routing_trace(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path);
}

RoutingTrace parse_routing_trace(const uint8_t* bytes, size_t size, const std::string& label) {
  if (size < kHeaderBytes) {
    fail("routing trace '{}': {} bytes is shorter than the {}-byte header", label, size,
         kHeaderBytes);
  }
  if (std::memcmp(bytes, kMagic, sizeof(kMagic)) != 0) {
    fail("routing trace '{}': bad magic (not a trace written by moerun profile --trace)", label);
  }
  const auto version = get<uint32_t>(bytes + 8);
  const auto n_layers = get<uint32_t>(bytes + 12);
  const auto n_experts = get<uint32_t>(bytes + 16);
  const auto top_k = get<uint32_t>(bytes + 20);
  const auto n_tokens = get<uint64_t>(bytes + 24);
  if (version != kVersion) {
    fail("routing trace '{}': version {} is not supported (expected {})", label, version, kVersion);
  }
  if (n_layers < 1 || n_layers > kMaxLayers) {
    fail("routing trace '{}': n_layers {} is outside [1, {}]", label, n_layers, kMaxLayers);
  }
  if (n_experts < 1 || n_experts > kMaxExperts) {
    fail("routing trace '{}': n_experts {} is outside [1, {}]", label, n_experts, kMaxExperts);
  }
  if (top_k < 1 || top_k > kMaxTopK || top_k > n_experts) {
    fail("routing trace '{}': top_k {} is outside [1, min({}, n_experts {})]", label, top_k,
         kMaxTopK, n_experts);
  }
  const uint64_t per_token = uint64_t{n_layers} * top_k * sizeof(int32_t);
  const uint64_t body = size - kHeaderBytes;
  if (n_tokens < 1 || n_tokens > body / per_token || body != n_tokens * per_token) {
    fail(
        "routing trace '{}': {} tokens of {} layers x top-{} need {} bytes after the header, the "
        "file has {}",
        label, n_tokens, n_layers, top_k, n_tokens * per_token, body);
  }
  RoutingTrace t;
  t.n_layers = n_layers;
  t.n_experts = n_experts;
  t.top_k = top_k;
  t.n_tokens = static_cast<int64_t>(n_tokens);
  t.ids.resize(static_cast<size_t>(n_tokens * n_layers * top_k));
  std::memcpy(t.ids.data(), bytes + kHeaderBytes, t.ids.size() * sizeof(int32_t));
  std::vector<int64_t> seen(n_experts, -1);
  for (int64_t i = 0; i < t.n_tokens * t.n_layers; ++i) {
    const int32_t* ids = t.ids.data() + i * t.top_k;
    for (int64_t k = 0; k < t.top_k; ++k) {
      if (ids[k] < 0 || ids[k] >= t.n_experts) {
        fail("routing trace '{}': token {} layer {} has expert id {} outside [0, {})", label,
             i / t.n_layers, i % t.n_layers, ids[k], t.n_experts);
      }
      if (seen[static_cast<size_t>(ids[k])] == i) {
        fail("routing trace '{}': token {} layer {} chooses expert {} twice", label, i / t.n_layers,
             i % t.n_layers, ids[k]);
      }
      seen[static_cast<size_t>(ids[k])] = i;
    }
  }
  return t;
}

TraceReplay::TraceReplay(RoutingTrace trace, int64_t n_layers, int64_t n_experts, int64_t top_k)
    : trace_(std::move(trace)), cursor_(static_cast<size_t>(n_layers), 0) {
  auto check = [](const char* field, int64_t have, int64_t want) {
    if (have != want) fail("the routing trace has {} {}, the model {}", have, field, want);
  };
  check("layers", trace_.n_layers, n_layers);
  check("experts per layer", trace_.n_experts, n_experts);
  check("experts per token (top_k)", trace_.top_k, top_k);
}

void TraceReplay::choose(int64_t layer, int64_t n_tokens, int64_t top_k, int32_t* ids,
                         float* /*weights*/) {
  MOERUN_CHECK(layer >= 0 && layer < trace_.n_layers && top_k == trace_.top_k);
  int64_t& cursor = cursor_[static_cast<size_t>(layer)];
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int32_t* src = trace_.at(cursor, layer);
    std::copy(src, src + top_k, ids + t * top_k);
    cursor = cursor + 1 == trace_.n_tokens ? 0 : cursor + 1;
  }
}

}  // namespace moerun
