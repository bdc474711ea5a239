// Loading a model for generation from the command line: the mapped file, thread pool, model and
// (when the file carries one) tokenizer, plus the end-of-turn tokens to stop at.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cli/device_options.h"
#include "core/thread_pool.h"
#include "io/gguf_file.h"
#include "model/language_model.h"
#include "moe/routing_override.h"
#include "tokenizer/tokenizer.h"

namespace moerun::cli {

// Everything a generating command holds; members are destroyed in reverse order.
struct ModelSession {
  std::unique_ptr<GgufFile> file;
  std::unique_ptr<ThreadPool> pool;
  std::unique_ptr<RoutingOverride> routing;  // --routing (benchmark mode), or null
  std::unique_ptr<LanguageModel> model;
  std::unique_ptr<Tokenizer> tokenizer;  // null when the file has no tokenizer metadata
  std::vector<int32_t> end_of_turn;      // ids that end generation (eos, <|im_end|>, ...)
};

// Opens `path_arg` (or the default model), starts `threads` threads (0: physical cores) and
// loads the model, placed as `device` says, and the tokenizer; `hooks` go to ModelOptions (they
// must outlive the session). Throws Error with a clear message on any problem.
ModelSession open_model_session(const std::string& path_arg, int threads,
                                const DeviceFlags& device = {}, const RoutingHooks& hooks = {});

// Parses "1,2,3" into token ids, each checked against `vocab`; throws Error naming a bad entry.
std::vector<int32_t> parse_token_ids(const std::string& text, int64_t vocab);

}  // namespace moerun::cli
