// `moerun chat`: an interactive conversation in the terminal.
#include <csignal>
#include <cstdio>
#include <iostream>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/device_options.h"
#include "cli/model_session.h"
#include "cli/sampling_options.h"
#include "core/error.h"
#include "engine/generator.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tool_call_parser.h"
#include "tokenizer/utf8.h"

namespace moerun::cli {
namespace {

std::atomic<bool> g_interrupted{false};

extern "C" void on_sigint(int) {
  g_interrupted.store(true);
}

// Installs the Ctrl-C handler for the lifetime of one answer, then restores the default (so
// Ctrl-C at the prompt ends the program as usual).
class InterruptScope {
 public:
  InterruptScope() {
    g_interrupted = false;
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &previous_);
  }
  ~InterruptScope() { sigaction(SIGINT, &previous_, nullptr); }

 private:
  struct sigaction previous_ {};
};

struct ChatArgs {
  std::string model = "default";
  std::string system;
  int64_t ctx = 4096;
  int64_t max_tokens = 1024;
  int threads = 0;
  DeviceFlags device;
  bool no_think = false;
  SamplingFlags sampling;
};

// Reads one user message: lines ending in a backslash continue on the next line; a line of
// three double quotes starts and ends a block. Returns false at end of input.
bool read_message(std::string& out) {
  out.clear();
  std::string line;
  fmt::print("\n> ");
  std::fflush(stdout);
  if (!std::getline(std::cin, line)) return false;
  if (line == "\"\"\"") {
    while (std::getline(std::cin, line) && line != "\"\"\"") out += line + "\n";
    if (!out.empty()) out.pop_back();
    return true;
  }
  while (!line.empty() && line.back() == '\\') {
    line.pop_back();
    out += line + "\n";
    if (!std::getline(std::cin, line)) break;
  }
  out += line;
  return true;
}

void run_chat(const ChatArgs& a) {
  ModelSession s = open_model_session(a.model, a.threads, a.device);
  if (!s.tokenizer) fail("{} has no tokenizer, so it cannot chat", s.file->path());
  const int64_t ctx = std::min(a.ctx, s.model->info().context_length);
  auto state = s.model->new_sequence(ctx);
  std::vector<int32_t> in_state;  // the tokens `state` has consumed, in order
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  if (!a.system.empty()) messages.push_back({{"role", "system"}, {"content", a.system}});
  ChatOptions options;
  if (a.no_think) options.enable_thinking = false;
  const SamplingParams sampling = resolve_sampling(a.sampling);
  fmt::print(
      "moerun chat: {} ({} context). /reset clears the conversation, /exit quits; end a "
      "line with \\ to continue it, or wrap a block in \"\"\" lines. Ctrl-C stops an "
      "answer.\n",
      s.model->info().name, ctx);

  std::string text;
  uint64_t turn = 0;
  while (read_message(text)) {
    if (text == "/exit" || text == "/quit") break;
    if (text == "/reset") {
      messages = nlohmann::ordered_json::array();
      if (!a.system.empty()) messages.push_back({{"role", "system"}, {"content", a.system}});
      state->reset();
      in_state.clear();
      fmt::print("(conversation cleared)\n");
      continue;
    }
    if (text.empty()) continue;
    if (!is_valid_utf8(text)) {
      fmt::print("(that input is not valid UTF-8; please retype it)\n");
      continue;
    }
    messages.push_back({{"role", "user"}, {"content", text}});
    const std::vector<int32_t> all =
        s.tokenizer->encode(render_qwen3_chat(messages, nullptr, options));
    // Feed only what the state has not seen; start over when the history was re-rendered.
    const bool extends =
        in_state.size() < all.size() && std::equal(in_state.begin(), in_state.end(), all.begin());
    if (!extends) {
      state->reset();
      in_state.clear();
    }
    GenerationRequest req;
    req.prompt.assign(all.begin() + static_cast<std::ptrdiff_t>(in_state.size()), all.end());
    req.sampling = sampling;
    req.sampling.seed = sampling.seed + turn++;
    req.max_tokens = a.max_tokens;
    req.stop_tokens = s.end_of_turn;
    ToolCallParser parser;
    GenerationCallbacks cb;
    cb.on_text = [](const std::string& t) {
      std::fwrite(t.data(), 1, t.size(), stdout);
      std::fflush(stdout);
    };
    GenerationResult r;
    try {
      InterruptScope interrupt;
      r = generate(*s.model, *state, s.tokenizer.get(), req, cb, &g_interrupted);
    } catch (const Error& e) {
      fmt::print("\n(error: {}; use /reset to start over)\n", e.what());
      messages.erase(messages.end() - 1);
      state->reset();
      in_state.clear();
      continue;
    }
    if (r.finish == FinishReason::cancelled) fmt::print(" [stopped]");
    if (r.finish == FinishReason::length) fmt::print(" [length limit]");
    fmt::print("\n");
    in_state.insert(in_state.end(), req.prompt.begin(), req.prompt.end());
    in_state.insert(in_state.end(), r.tokens.begin(), r.tokens.begin() + r.fed_tokens);
    // The history keeps what the user saw, without the reasoning block.
    std::vector<ChatOutputEvent> events;
    parser.feed(r.text, events);
    parser.finish(events);
    std::string visible;
    for (const ChatOutputEvent& e : events) {
      if (e.kind == ChatOutputEvent::content) visible += e.text;
    }
    messages.push_back({{"role", "assistant"}, {"content", visible}});
  }
}

}  // namespace

void add_chat_command(CLI::App& app) {
  auto a = std::make_shared<ChatArgs>();
  CLI::App* cmd = app.add_subcommand("chat", "Talk with a model in the terminal");
  cmd->add_option("-m,--model", a->model, "GGUF model file (default: the embedded tiny model)");
  cmd->add_option("--system", a->system, "System message");
  cmd->add_option("--ctx", a->ctx, "Context size in tokens")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{16}, int64_t{1} << 30));
  cmd->add_option("-n,--max-tokens", a->max_tokens, "Tokens per answer at most")
      ->capture_default_str();
  cmd->add_option("-t,--threads", a->threads, "CPU threads (default: physical cores)");
  cmd->add_flag("--no-think", a->no_think, "Ask the model not to think (enable_thinking=false)");
  add_sampling_options(cmd, a->sampling);
  add_device_options(cmd, a->device);
  cmd->callback([a] { run_chat(*a); });
}

}  // namespace moerun::cli
