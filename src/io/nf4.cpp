#include "io/nf4.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace moerun {
namespace {

using json = nlohmann::json;

constexpr const char* kQuantStateNf4 = ".quant_state.bitsandbytes__nf4";
constexpr const char* kQuantStateFp4 = ".quant_state.bitsandbytes__fp4";

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Reads a non-negative integer field of the quant state, or fails naming it.
int64_t int_field(const json& state, const char* key, const std::string& origin) {
  auto it = state.find(key);
  if (it == state.end() || !it->is_number_unsigned()) {
    fail("{}: quant_state field '{}' is missing or not a non-negative integer", origin, key);
  }
  const uint64_t v = it->get<uint64_t>();
  if (v == 0 || v > (uint64_t{1} << 20)) {
    fail("{}: quant_state field '{}' = {} is out of range", origin, key, v);
  }
  return static_cast<int64_t>(v);
}

// The companion `name` of the weight, checked to be a float tensor of `numel` elements.
const SafetensorsTensor& float_companion(const SafetensorsDir& dir, const std::string& name,
                                         int64_t numel) {
  const SafetensorsTensor* t = dir.find(name);
  if (!t) fail("{}: NF4 companion tensor '{}' is missing", dir.dir(), name);
  if (!st_dtype_is_float(t->dtype)) {
    fail("{}: NF4 companion tensor '{}' has dtype {}, expected a float type", t->file, name,
         st_dtype_name(t->dtype));
  }
  if (t->numel != numel) {
    fail("{}: NF4 companion tensor '{}' has {} elements, expected {}", t->file, name, t->numel,
         numel);
  }
  return *t;
}

float element_f32(const SafetensorsTensor& t, int64_t i) {
  float v;
  convert_to_f32(t, i, 1, &v);
  return v;
}

}  // namespace

bool is_nf4_weight(const SafetensorsDir& dir, const std::string& weight_name) {
  return dir.find(weight_name + kQuantStateNf4) != nullptr;
}

bool is_bnb_companion(const std::string& name) {
  static constexpr std::string_view kSuffixes[] = {
      ".weight.absmax",
      ".weight.nested_absmax",
      ".weight.quant_map",
      ".weight.nested_quant_map",
      ".weight.quant_state.bitsandbytes__nf4",
      ".weight.quant_state.bitsandbytes__fp4",
  };
  return std::any_of(std::begin(kSuffixes), std::end(kSuffixes),
                     [&](std::string_view s) { return ends_with(name, s); });
}

Nf4Weight::Nf4Weight(const SafetensorsDir& dir, const std::string& weight_name)
    : name_(weight_name) {
  const std::string origin = dir.dir() + ": NF4 weight '" + weight_name + "'";
  if (dir.find(weight_name + kQuantStateFp4)) {
    fail("{}: bitsandbytes FP4 is not supported (only NF4)", origin);
  }
  const SafetensorsTensor* state_t = dir.find(weight_name + kQuantStateNf4);
  if (!state_t) fail("{}: quant_state tensor is missing", origin);
  if (state_t->dtype != StDType::U8) {
    fail("{}: quant_state has dtype {}, expected U8 JSON bytes", origin,
         st_dtype_name(state_t->dtype));
  }
  // The state is a JSON object of a few scalars; anything nested is refused before parsing.
  const char* text = reinterpret_cast<const char*>(state_t->data);
  if (std::count(text, text + state_t->nbytes, '{') +
          std::count(text, text + state_t->nbytes, '[') >
      4) {
    fail("{}: quant_state is not a flat JSON object", origin);
  }
  json state;
  try {
    state = json::parse(text, text + state_t->nbytes);
  } catch (const json::exception& e) {
    fail("{}: quant_state is not valid JSON: {}", origin, e.what());
  }
  if (!state.is_object()) fail("{}: quant_state is not a JSON object", origin);
  auto qt = state.find("quant_type");
  if (qt == state.end() || !qt->is_string() || qt->get<std::string>() != "nf4") {
    fail("{}: quant_state quant_type is {}, expected \"nf4\"", origin,
         qt == state.end() ? std::string("missing") : qt->dump());
  }
  blocksize_ = int_field(state, "blocksize", origin);
  auto shape = state.find("shape");
  if (shape == state.end() || !shape->is_array() || shape->empty() || shape->size() > 4) {
    fail("{}: quant_state shape is missing or not a list of 1 to 4 sizes", origin);
  }
  uint64_t numel = 1;
  for (const json& d : *shape) {
    if (!d.is_number_unsigned() || d.get<uint64_t>() == 0 ||
        d.get<uint64_t>() > (uint64_t{1} << 32)) {
      fail("{}: quant_state shape {} has an invalid size", origin, shape->dump());
    }
    if (__builtin_mul_overflow(numel, d.get<uint64_t>(), &numel) || numel > (uint64_t{1} << 48)) {
      fail("{}: quant_state shape {} is too large", origin, shape->dump());
    }
    shape_.push_back(static_cast<int64_t>(d.get<uint64_t>()));
  }
  numel_ = static_cast<int64_t>(numel);
  auto dtype = state.find("dtype");
  if (dtype == state.end() || !dtype->is_string()) {
    fail("{}: quant_state dtype is missing or not a string", origin);
  }

  packed_ = dir.find(weight_name);
  if (!packed_) fail("{}: the packed weight tensor is missing", origin);
  if (packed_->dtype != StDType::U8) {
    fail("{}: packed weight has dtype {}, expected U8", origin, st_dtype_name(packed_->dtype));
  }
  if (packed_->numel != (numel_ + 1) / 2) {
    fail("{}: packed weight has {} bytes but shape {} needs {}", origin, packed_->numel,
         st_shape_string(shape_), (numel_ + 1) / 2);
  }
  const int64_t n_blocks = (numel_ + blocksize_ - 1) / blocksize_;
  absmax_ = dir.find(weight_name + ".absmax");
  if (!absmax_) fail("{}: companion tensor '{}.absmax' is missing", origin, weight_name);
  if (absmax_->numel != n_blocks) {
    fail("{}: absmax has {} values but {} weights in blocks of {} need {}", origin, absmax_->numel,
         numel_, blocksize_, n_blocks);
  }
  const SafetensorsTensor& quant_map = float_companion(dir, weight_name + ".quant_map", 16);
  convert_to_f32(quant_map, 0, 16, quant_map_.data());
  if (absmax_->dtype == StDType::U8) {
    double_quant_ = true;
    nested_blocksize_ = int_field(state, "nested_blocksize", origin);
    auto offset = state.find("nested_offset");
    if (offset == state.end() || !offset->is_number() || !std::isfinite(offset->get<double>())) {
      fail("{}: quant_state nested_offset is missing or not a finite number", origin);
    }
    nested_offset_ = static_cast<float>(offset->get<double>());
    const SafetensorsTensor& nested_map =
        float_companion(dir, weight_name + ".nested_quant_map", 256);
    convert_to_f32(nested_map, 0, 256, nested_map_.data());
    nested_absmax_ = &float_companion(dir, weight_name + ".nested_absmax",
                                      (n_blocks + nested_blocksize_ - 1) / nested_blocksize_);
  } else if (!st_dtype_is_float(absmax_->dtype)) {
    fail("{}: absmax has dtype {}, expected U8 codes or floats", origin,
         st_dtype_name(absmax_->dtype));
  }
}

float Nf4Weight::block_absmax(int64_t block) const {
  if (!double_quant_) return element_f32(*absmax_, block);
  const float scale = element_f32(*nested_absmax_, block / nested_blocksize_);
  const float code = nested_map_[absmax_->data[block]];
  const float scaled = code * scale;  // kept apart from the addition: bitsandbytes rounds twice
  return scaled + nested_offset_;
}

void Nf4Weight::dequantize(int64_t first, int64_t count, float* out) const {
  MOERUN_CHECK(first >= 0 && count >= 0 && first + count <= numel_);
  int64_t j = first;
  const int64_t end = first + count;
  while (j < end) {
    const int64_t block = j / blocksize_;
    const int64_t block_end = std::min(end, (block + 1) * blocksize_);
    const float absmax = block_absmax(block);
    for (; j < block_end; ++j) {
      const uint8_t byte = packed_->data[j / 2];
      const uint8_t nibble = (j % 2 == 0) ? static_cast<uint8_t>(byte >> 4) : (byte & 15);
      out[j - first] = quant_map_[nibble] * absmax;
    }
  }
}

}  // namespace moerun
