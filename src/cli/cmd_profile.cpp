// `moerun profile`: runs prompts through the model on the CPU and saves which experts each layer
// chose (counts and co-occurrence) as an expert profile, and optionally the routing trace.
//
// Prompts: one per line of the file (empty lines skipped), or with --whole-file the whole file as
// one prompt. Each prompt starts a fresh sequence, is prefilled and then continued greedily for
// -n tokens (fewer when an end-of-turn token comes). Prompt and generated tokens are profiled.
// `--check FILE` loads a profile instead, validates it against the model and prints a summary.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <numeric>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_session.h"
#include "core/error.h"
#include "engine/generator.h"
#include "model/model_info.h"
#include "moe/expert_profile.h"
#include "moe/routing_trace.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/utf8.h"

namespace moerun::cli {
namespace {

struct ProfileArgs {
  std::string model = "default";
  std::string prompts;
  std::string output;
  std::string trace;
  std::string check;
  int64_t tokens_per_prompt = 32;
  int64_t max_pairs = -1;
  int threads = 0;
  bool chat = false;
  bool whole_file = false;
};

std::vector<std::string> read_prompts(const std::string& path, bool whole_file) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read the prompt file '{}'", path);
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (!is_valid_utf8(text)) fail("the prompt file '{}' is not valid UTF-8 text", path);
  std::vector<std::string> prompts;
  if (whole_file) {
    if (!text.empty()) prompts.push_back(text);
  } else {
    size_t pos = 0;
    while (pos < text.size()) {
      size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      std::string line = text.substr(pos, end - pos);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") != std::string::npos) prompts.push_back(line);
      pos = end + 1;
    }
  }
  if (prompts.empty()) fail("the prompt file '{}' holds no prompt", path);
  return prompts;
}

std::vector<int32_t> encode(const ModelSession& s, const std::string& text, bool chat) {
  if (!chat) return s.tokenizer->encode(text, SpecialTokens::as_text);
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  messages.push_back({{"role", "user"}, {"content", text}});
  return s.tokenizer->encode(render_qwen3_chat(messages, nullptr, ChatOptions{}));
}

// Prints the profile's totals and, per layer, how much of the routing its most used quarter of
// experts covers (what a cache of a quarter of the experts would serve from a static placement).
void print_summary(const ExpertProfile& p, const std::string& label) {
  fmt::print("{}: {} ({} layers x {} experts, top-{}), {} tokens\n", label, p.model.architecture,
             p.model.n_layers, p.model.n_experts, p.model.top_k, p.tokens);
  const auto quarter = static_cast<size_t>((p.model.n_experts + 3) / 4);
  double covered = 0, total = 0;
  for (size_t l = 0; l < p.counts.size(); ++l) {
    std::vector<uint64_t> sorted = p.counts[l];
    std::sort(sorted.begin(), sorted.end(), std::greater<>());
    const auto top = static_cast<double>(std::accumulate(
        sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(quarter), uint64_t{0}));
    const auto all =
        static_cast<double>(std::accumulate(sorted.begin(), sorted.end(), uint64_t{0}));
    covered += top;
    total += all;
    const std::string pair = p.pairs[l].empty() ? std::string("-")
                                                : fmt::format("({}, {}) x{}", p.pairs[l][0].a,
                                                              p.pairs[l][0].b, p.pairs[l][0].count);
    fmt::print("  layer {:3}: top quarter of experts {:5.1f}% of choices; top pair {}\n", l,
               all > 0 ? 100 * top / all : 0.0, pair);
  }
  fmt::print("all layers: the most used quarter of each layer's experts takes {:.1f}% of choices\n",
             total > 0 ? 100 * covered / total : 0.0);
}

void run_profile(const ProfileArgs& a) {
  if (!a.check.empty()) {
    ModelSession s = open_model_session(a.model, a.threads);
    const ExpertProfile p = load_expert_profile(a.check);
    check_profile_model(p, profile_model_of(*s.file, s.model->info()), a.check);
    print_summary(p, a.check);
    return;
  }
  if (a.prompts.empty() || a.output.empty()) fail("profile needs -f PROMPTS_FILE and -o PROFILE");
  const std::vector<std::string> prompts = read_prompts(a.prompts, a.whole_file);
  // The recorder needs the model's identity, which needs the loaded model: load, then attach by
  // reloading would double the cost, so the hook forwards to a recorder made right after loading.
  struct Forward : RoutingObserver {
    ProfileRecorder* target = nullptr;
    void observe(int64_t layer, int64_t n, int64_t k, const int32_t* ids, const float* w) override {
      if (target) target->observe(layer, n, k, ids, w);
    }
  } forward;
  RoutingHooks hooks;
  hooks.observe = &forward;
  ModelSession s = open_model_session(a.model, a.threads, DeviceFlags{}, hooks);
  if (!s.tokenizer) fail("{} has no tokenizer: profile needs text prompts", s.file->path());
  const ModelInfo& info = s.model->info();
  if (info.n_experts < 2) fail("{} is not a mixture-of-experts model", s.file->path());
  ProfileRecorder recorder(profile_model_of(*s.file, info), !a.trace.empty());
  forward.target = &recorder;

  int64_t total_tokens = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerationRequest req;
    req.prompt = encode(s, prompts[i], a.chat);
    if (req.prompt.empty()) continue;
    req.sampling.temperature = 0;
    req.max_tokens = a.tokens_per_prompt;
    req.stop_tokens = s.end_of_turn;
    const int64_t want = static_cast<int64_t>(req.prompt.size()) + a.tokens_per_prompt;
    if (want > info.context_length) {
      fail("prompt {} of '{}' needs {} tokens, more than the model's context length {}", i + 1,
           a.prompts, want, info.context_length);
    }
    auto state = s.model->new_sequence(want);
    const GenerationResult r = generate(*s.model, *state, s.tokenizer.get(), req, {});
    total_tokens += r.prompt_tokens + r.fed_tokens;
    fmt::print(stderr, "\rprompt {}/{}: {} tokens profiled", i + 1, prompts.size(), total_tokens);
  }
  fmt::print(stderr, "\n");
  const ExpertProfile profile = recorder.profile(a.max_pairs);
  save_expert_profile(profile, a.output);
  fmt::print("wrote {} ({} tokens, {} layers)\n", a.output, profile.tokens, info.n_layers);
  if (!a.trace.empty()) {
    const RoutingTrace trace = recorder.trace();
    if (trace.n_tokens == 0) fail("no token was profiled: no trace to write");
    save_routing_trace(trace, a.trace);
    fmt::print("wrote {} ({} tokens)\n", a.trace, trace.n_tokens);
  }
}

}  // namespace

void add_profile_command(CLI::App& app) {
  auto a = std::make_shared<ProfileArgs>();
  CLI::App* cmd =
      app.add_subcommand("profile", "Save which experts each layer uses on a set of prompts");
  cmd->add_option("-m,--model", a->model, "GGUF model file (default: the embedded tiny model)");
  cmd->add_option("-f,--file", a->prompts, "Prompts, one per line (UTF-8 text)");
  cmd->add_option("-o,--output", a->output, "Where to write the profile (JSON)");
  cmd->add_option("--trace", a->trace,
                  "Also write the routing trace (replay: --routing trace:FILE)");
  cmd->add_option("-n,--tokens", a->tokens_per_prompt, "Tokens generated after each prompt")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  cmd->add_option("-t,--threads", a->threads, "CPU threads (default: physical cores)");
  cmd->add_flag("--chat", a->chat, "Wrap each prompt as a user message in the chat format");
  cmd->add_flag("--whole-file", a->whole_file, "The whole file is one prompt");
  cmd->add_option("--max-pairs", a->max_pairs,
                  "Co-occurring pairs kept per layer (default: 2 x experts)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  cmd->add_option("--check", a->check,
                  "Load this profile, check it against the model and print a summary");
  cmd->callback([a] { run_profile(*a); });
}

}  // namespace moerun::cli
