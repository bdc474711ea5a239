// `moerun generate`: one prompt in, text streamed out, speed on stderr.
#include <cstdio>
#include <fstream>
#include <iterator>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/device_options.h"
#include "cli/model_session.h"
#include "cli/sampling_options.h"
#include "core/error.h"
#include "core/stage_clock.h"
#include "engine/generator.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/utf8.h"

namespace moerun::cli {
namespace {

struct GenerateArgs {
  std::string model = "default";
  std::string prompt;
  std::string prompt_file;
  std::string prompt_ids;
  int64_t max_tokens = 128;
  int64_t ctx = 0;
  int threads = 0;
  DeviceFlags device;
  bool chat = false;
  bool no_think = false;
  std::string system;
  bool special = false;
  bool ignore_eos = false;
  bool print_ids = false;
  bool profile = false;
  std::string dump_logits;
  std::vector<std::string> stop;
  SamplingFlags sampling;
};

std::string read_prompt_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read the prompt file '{}'", path);
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (!is_valid_utf8(text)) fail("the prompt file '{}' is not valid UTF-8 text", path);
  return text;
}

std::vector<int32_t> prompt_tokens(const GenerateArgs& a, const ModelSession& s) {
  const int given = !a.prompt.empty() + !a.prompt_file.empty() + !a.prompt_ids.empty();
  if (given != 1) fail("give exactly one of -p TEXT, -f FILE or --prompt-ids IDS");
  if (!a.prompt_ids.empty()) {
    if (a.chat) fail("--chat needs a text prompt, not --prompt-ids");
    return parse_token_ids(a.prompt_ids, s.model->info().vocab);
  }
  const std::string text = a.prompt_file.empty() ? a.prompt : read_prompt_file(a.prompt_file);
  if (!is_valid_utf8(text)) fail("the prompt is not valid UTF-8 text");
  if (!s.tokenizer) fail("{} has no tokenizer: use --prompt-ids", s.file->path());
  if (!a.chat) {
    return s.tokenizer->encode(text, a.special ? SpecialTokens::parse : SpecialTokens::as_text);
  }
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  if (!a.system.empty()) messages.push_back({{"role", "system"}, {"content", a.system}});
  messages.push_back({{"role", "user"}, {"content", text}});
  ChatOptions options;
  if (a.no_think) options.enable_thinking = false;
  return s.tokenizer->encode(render_qwen3_chat(messages, nullptr, options));
}

// Prints where the forward passes of one phase spent their time, per stage and per token.
void print_profile(const char* phase, const StageClock& clock, int64_t tokens) {
  double total = 0;
  for (int i = 0; i < StageClock::kStages; ++i) total += clock.seconds(StageClock::Stage(i));
  fmt::print(stderr, "profile ({}, {} tokens, {:.3f} s in forward passes):\n", phase, tokens,
             total);
  for (int i = 0; i < StageClock::kStages; ++i) {
    const auto stage = StageClock::Stage(i);
    fmt::print(stderr, "  {:<22} {:9.3f} ms {:5.1f}%  {:8.3f} ms/token\n", StageClock::name(stage),
               clock.seconds(stage) * 1e3, total > 0 ? 100 * clock.seconds(stage) / total : 0.0,
               tokens > 0 ? clock.seconds(stage) * 1e3 / static_cast<double>(tokens) : 0.0);
  }
}

void run_generate(const GenerateArgs& a) {
  ModelSession s = open_model_session(a.model, a.threads, a.device);
  GenerationRequest req;
  req.prompt = prompt_tokens(a, s);
  if (req.prompt.empty()) fail("the prompt is empty: it encodes to no tokens");
  req.sampling = resolve_sampling(a.sampling);
  req.max_tokens = a.max_tokens;
  req.stop = a.stop;
  if (!a.ignore_eos) req.stop_tokens = s.end_of_turn;
  const int64_t wanted = static_cast<int64_t>(req.prompt.size()) + a.max_tokens;
  const int64_t limit = s.model->info().context_length;
  const int64_t ctx = a.ctx > 0 ? a.ctx : std::min(limit, wanted);
  if (ctx > limit) fail("--ctx {} exceeds the model's context length {}", ctx, limit);
  auto state = s.model->new_sequence(ctx);

  std::FILE* logits_file = nullptr;
  if (!a.dump_logits.empty()) {
    logits_file = std::fopen(a.dump_logits.c_str(), "wb");
    if (!logits_file) fail("cannot write --dump-logits file '{}'", a.dump_logits);
  }
  GenerationCallbacks cb;
  if (!a.print_ids) {
    cb.on_text = [](const std::string& t) {
      std::fwrite(t.data(), 1, t.size(), stdout);
      std::fflush(stdout);
    };
  }
  if (logits_file) {
    cb.on_logits = [&](std::span<const float> l) {
      if (std::fwrite(l.data(), sizeof(float), l.size(), logits_file) != l.size()) {
        fail("writing '{}' failed", a.dump_logits);
      }
    };
  }
  StageClock* clock = a.profile ? s.model->stage_clock() : nullptr;
  StageClock prefill_clock;
  if (clock) {
    clock->reset();
    clock->enable(true);
    cb.on_prefill_done = [&] {
      prefill_clock = *clock;
      clock->reset();
    };
  }
  const GenerationResult r = generate(*s.model, *state, s.tokenizer.get(), req, cb);
  if (logits_file && std::fclose(logits_file) != 0) fail("writing '{}' failed", a.dump_logits);
  if (a.print_ids) {
    std::string line;
    for (size_t i = 0; i < r.tokens.size(); ++i)
      line += (i ? "," : "") + std::to_string(r.tokens[i]);
    fmt::print("{}\n", line);
  } else {
    fmt::print("\n");
  }
  std::fflush(stdout);  // the text ends before the statistics on stderr begin
  const auto n_gen = static_cast<double>(r.tokens.size());
  fmt::print(stderr,
             "prefill: {} tokens in {:.3f} s ({:.1f} tok/s); decode: {} tokens in {:.3f} s "
             "({:.1f} tok/s); finish: {}; seed {}\n",
             r.prompt_tokens, r.prefill_seconds,
             static_cast<double>(r.prompt_tokens) / std::max(r.prefill_seconds, 1e-9),
             r.tokens.size(), r.decode_seconds,
             n_gen > 1 ? (n_gen - 1) / std::max(r.decode_seconds, 1e-9) : 0.0,
             finish_reason_name(r.finish), req.sampling.seed);
  if (clock) {
    print_profile("prefill", prefill_clock, r.prompt_tokens);
    print_profile("decode", *clock, r.fed_tokens);
  }
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a prompt");
  cmd->add_option("-m,--model", a->model, "GGUF model file (default: the embedded tiny model)");
  cmd->add_option("-p,--prompt", a->prompt, "Prompt text");
  cmd->add_option("-f,--file", a->prompt_file, "Read the prompt from a UTF-8 text file");
  cmd->add_option("--prompt-ids", a->prompt_ids, "Prompt as comma-separated token ids");
  cmd->add_option("-n,--max-tokens", a->max_tokens, "Tokens to generate at most")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  cmd->add_option("--ctx", a->ctx, "Context size (default: prompt + max tokens)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  cmd->add_option("-t,--threads", a->threads, "CPU threads (default: physical cores)");
  cmd->add_flag("--chat", a->chat, "Wrap the prompt as a user message in the chat format");
  cmd->add_option("--system", a->system, "System message (with --chat)");
  cmd->add_flag("--no-think", a->no_think, "Ask the model not to think (enable_thinking=false)");
  cmd->add_flag("--special", a->special,
                "Raw mode: text like <|im_start|> in the prompt becomes control tokens");
  cmd->add_option("--stop", a->stop, "Stop string (repeatable; not included in the output)");
  cmd->add_flag("--ignore-eos", a->ignore_eos, "Do not stop at end-of-turn tokens");
  cmd->add_flag("--print-ids", a->print_ids,
                "Print the generated token ids (one comma-separated line) instead of text");
  cmd->add_option("--dump-logits", a->dump_logits,
                  "Write raw f32 logits: the last prompt position, then each generated step");
  cmd->add_flag("--profile", a->profile,
                "Print the time of each stage (attention, DeltaNet, router, experts, ...)");
  add_sampling_options(cmd, a->sampling);
  add_device_options(cmd, a->device);
  cmd->callback([a] { run_generate(*a); });
}

}  // namespace moerun::cli
