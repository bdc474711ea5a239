#include "model/convert_weights.h"

#include <fmt/format.h>

#include "core/error.h"

namespace moerun {
namespace {

// Joins at most `limit` names, then says how many more there are.
std::string list_names(const std::vector<std::string>& names, size_t limit) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < limit; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > limit) out += fmt::format(" and {} more", names.size() - limit);
  return out;
}

}  // namespace

HfWeight::HfWeight(const SafetensorsTensor& tensor) : plain_(&tensor) {}

HfWeight::HfWeight(std::unique_ptr<Nf4Weight> nf4) : nf4_(std::move(nf4)) {}

const std::string& HfWeight::name() const {
  return nf4_ ? nf4_->name() : plain_->name;
}

const std::vector<int64_t>& HfWeight::shape() const {
  return nf4_ ? nf4_->shape() : plain_->shape;
}

int64_t HfWeight::numel() const {
  return nf4_ ? nf4_->numel() : plain_->numel;
}

void HfWeight::read(int64_t first, int64_t count, float* out) const {
  read_.store(true, std::memory_order_relaxed);
  if (nf4_) {
    nf4_->dequantize(first, count, out);
  } else {
    convert_to_f32(*plain_, first, count, out);
  }
}

bool HfWeight::release_if_read() const {
  if (!read_.exchange(false, std::memory_order_relaxed)) return false;
  if (nf4_) {
    nf4_->release_pages();
  } else {
    release_pages(*plain_);
  }
  return true;
}

HfWeights::HfWeights(const std::string& dir) : dir_(SafetensorsDir::open(dir)) {}

bool HfWeights::has(const std::string& name) const {
  return dir_->find(name) != nullptr;
}

const HfWeight* HfWeights::require(const std::string& name, const std::vector<int64_t>& shape) {
  used_.insert(name);
  auto it = opened_.find(name);
  if (it == opened_.end()) {
    const SafetensorsTensor* t = dir_->find(name);
    if (!t) {
      missing_.push_back(name);
      return nullptr;
    }
    std::unique_ptr<HfWeight> w;
    if (is_nf4_weight(*dir_, name)) {
      w = std::make_unique<HfWeight>(std::make_unique<Nf4Weight>(*dir_, name));
    } else if (st_dtype_is_float(t->dtype)) {
      w = std::make_unique<HfWeight>(*t);
    } else {
      wrong_.push_back(fmt::format("{} has dtype {} (expected F32, F16, BF16 or NF4)", name,
                                   st_dtype_name(t->dtype)));
      return nullptr;
    }
    it = opened_.emplace(name, std::move(w)).first;
  }
  const HfWeight& w = *it->second;
  if (w.shape() != shape) {
    wrong_.push_back(fmt::format("{} has shape {} (expected {})", name, st_shape_string(w.shape()),
                                 st_shape_string(shape)));
    return nullptr;
  }
  return &w;
}

void HfWeights::release_read_weights() const {
  for (const auto& [name, w] : opened_) w->release_if_read();
}

void HfWeights::check_complete(const std::function<bool(const std::string&)>& ignored) const {
  std::vector<std::string> unexpected;
  for (const std::string& name : dir_->names()) {
    if (used_.count(name) || is_bnb_companion(name) || ignored(name)) continue;
    unexpected.push_back(name);
  }
  std::string problems;
  if (!missing_.empty()) {
    problems += fmt::format("{} missing tensor{}: {}", missing_.size(),
                            missing_.size() == 1 ? "" : "s", list_names(missing_, 40));
  }
  if (!wrong_.empty()) {
    problems +=
        fmt::format("{}{} mis-shaped or mistyped tensor{}: {}", problems.empty() ? "" : "; ",
                    wrong_.size(), wrong_.size() == 1 ? "" : "s", list_names(wrong_, 20));
  }
  if (!unexpected.empty()) {
    problems += fmt::format("{}{} unexpected tensor{} (not part of this architecture): {}",
                            problems.empty() ? "" : "; ", unexpected.size(),
                            unexpected.size() == 1 ? "" : "s", list_names(unexpected, 20));
  }
  if (!problems.empty())
    fail("{}: the checkpoint does not match its config: {}", dir_->dir(), problems);
}

}  // namespace moerun
