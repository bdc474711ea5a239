// The weights of a Hugging Face checkpoint as f32 sources for the converter: plain float tensors
// and bitsandbytes NF4 weights behind one interface, with bookkeeping of what is missing.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "io/nf4.h"
#include "io/safetensors.h"

namespace moerun {

// One weight read as f32, whatever its storage (F32/F16/BF16/F64, or NF4 dequantised).
class HfWeight {
 public:
  // A plain float tensor.
  explicit HfWeight(const SafetensorsTensor& tensor);
  // An NF4 weight (already validated).
  explicit HfWeight(std::unique_ptr<Nf4Weight> nf4);

  const std::string& name() const;
  // Torch shape (last dimension contiguous).
  const std::vector<int64_t>& shape() const;
  // Number of elements.
  int64_t numel() const;
  // Reads elements [first, first + count) of the row-major tensor as f32 into out [count].
  void read(int64_t first, int64_t count, float* out) const;
  // Drops the mapped pages of a weight read since the last call from the resident set, so that
  // memory does not grow with the checkpoint; returns whether it had been read.
  bool release_if_read() const;

 private:
  mutable std::atomic<bool> read_{false};
  const SafetensorsTensor* plain_ = nullptr;
  std::unique_ptr<Nf4Weight> nf4_;
};

// All weights of a checkpoint directory, looked up by HF name; records every weight the planner
// asked for that is missing or mis-shaped, so that one error can list them all.
class HfWeights {
 public:
  // Opens the safetensors shards of `dir`; throws Error on unreadable or corrupt files.
  explicit HfWeights(const std::string& dir);

  // True when the checkpoint has a weight called `name` (plain or NF4).
  bool has(const std::string& name) const;
  // The weight `name`, checked to have torch shape `shape`; when it is missing, mis-shaped or not
  // a float/NF4 tensor, records the problem and returns null.
  const HfWeight* require(const std::string& name, const std::vector<int64_t>& shape);
  // Throws Error listing every recorded problem, and every tensor of the checkpoint that no
  // require() used unless `ignored(name)` says it may be left out.
  void check_complete(const std::function<bool(const std::string&)>& ignored) const;
  // Releases the pages of every weight read since the last call (see HfWeight::release_if_read).
  void release_read_weights() const;

  const SafetensorsDir& dir() const { return *dir_; }

 private:
  std::unique_ptr<SafetensorsDir> dir_;
  std::map<std::string, std::unique_ptr<HfWeight>> opened_;
  std::vector<std::string> missing_;
  std::vector<std::string> wrong_;  // mis-shaped or wrong dtype, with details
  std::set<std::string> used_;
};

}  // namespace moerun
