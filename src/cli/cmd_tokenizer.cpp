// `moerun tokenize`, `moerun detokenize` and `moerun render-chat`: the tokenizer and chat format
// from the command line, one at a time or as a JSON-lines batch interface for tests and tools.
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "core/paths.h"
#include "io/gguf_file.h"
#include "io/gguf_vocab.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace moerun::cli {
namespace {

// Where the tokenizer comes from: a GGUF model or a Hugging Face directory.
struct Source {
  std::string model;
  std::string tokenizer_dir;
};

void add_source_options(CLI::App* cmd, Source& src) {
  auto* m = cmd->add_option("--model", src.model, "GGUF file whose tokenizer to use");
  auto* t = cmd->add_option("--tokenizer", src.tokenizer_dir,
                            "Hugging Face tokenizer directory (default: ~/.cache/moerun/"
                            "tokenizer-qwen3)");
  m->excludes(t);
}

Tokenizer load_tokenizer(const Source& src) {
  if (!src.model.empty()) {
    std::unique_ptr<GgufFile> f = GgufFile::open(src.model);
    return Tokenizer(read_vocab(*f));
  }
  return Tokenizer::from_hf_dir(src.tokenizer_dir.empty() ? default_tokenizer_dir()
                                                          : src.tokenizer_dir);
}

// JSON text of a string that may hold invalid UTF-8 (replaced by U+FFFD).
std::string json_string(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Calls fn(line, line_number) for each non-empty line of stdin.
template <typename F>
void for_each_stdin_line(F&& fn) {
  std::string line;
  size_t no = 0;
  while (std::getline(std::cin, line)) {
    ++no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    fn(line, no);
  }
}

nlohmann::ordered_json parse_line(const std::string& line, size_t no) {
  auto j = nlohmann::ordered_json::parse(line, nullptr, false);
  if (j.is_discarded()) fail("stdin line {}: not valid JSON", no);
  return j;
}

struct TokenizeArgs {
  Source src;
  std::string text;
  bool jsonl = false;
  bool special = false;
};

void run_tokenize(const TokenizeArgs& a) {
  Tokenizer tok = load_tokenizer(a.src);
  const SpecialTokens mode = a.special ? SpecialTokens::parse : SpecialTokens::as_text;
  if (a.jsonl) {
    for_each_stdin_line([&](const std::string& line, size_t no) {
      auto j = parse_line(line, no);
      if (!j.is_string()) fail("stdin line {}: expected a JSON string", no);
      fmt::print("{}\n", nlohmann::json(tok.encode(j.get<std::string>(), mode)).dump());
    });
    return;
  }
  std::string text = a.text;
  if (text.empty()) {  // no argument: the whole of stdin
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  for (int32_t id : tok.encode(text, mode))
    fmt::print("{}\t{}\n", id, json_string(std::string(tok.token_bytes(id))));
}

struct DetokenizeArgs {
  Source src;
  std::vector<int32_t> ids;
  bool jsonl = false;
  bool skip_control = false;
};

void run_detokenize(const DetokenizeArgs& a) {
  Tokenizer tok = load_tokenizer(a.src);
  if (a.jsonl) {
    for_each_stdin_line([&](const std::string& line, size_t no) {
      auto j = parse_line(line, no);
      if (!j.is_array()) fail("stdin line {}: expected a JSON array of ids", no);
      std::vector<int32_t> ids;
      for (const auto& v : j) {
        if (!v.is_number_integer()) fail("stdin line {}: ids must be integers", no);
        ids.push_back(v.get<int32_t>());
      }
      fmt::print("{}\n", json_string(tok.decode(ids, !a.skip_control)));
    });
    return;
  }
  fmt::print("{}", repair_utf8(tok.decode(a.ids, !a.skip_control)));
}

struct RenderArgs {
  Source src;
  bool jsonl = false;
  bool ids = false;
};

void run_render_chat(const RenderArgs& a) {
  std::unique_ptr<Tokenizer> tok;
  if (a.ids) tok = std::make_unique<Tokenizer>(load_tokenizer(a.src));
  auto render = [&](const nlohmann::ordered_json& c, size_t no) {
    if (!c.is_object() || !c.contains("messages"))
      fail("input {}: expected an object with 'messages'", no);
    ChatOptions opt;
    if (auto it = c.find("add_generation_prompt"); it != c.end()) {
      if (!it->is_boolean()) fail("input {}: 'add_generation_prompt' must be a boolean", no);
      opt.add_generation_prompt = it->get<bool>();
    }
    if (auto it = c.find("enable_thinking"); it != c.end() && !it->is_null()) {
      if (!it->is_boolean()) fail("input {}: 'enable_thinking' must be a boolean", no);
      opt.enable_thinking = it->get<bool>();
    }
    auto tools = c.contains("tools") ? c["tools"] : nlohmann::ordered_json();
    return render_qwen3_chat(c["messages"], tools, opt);
  };
  auto emit = [&](const MarkedText& m, bool as_line) {
    if (a.ids)
      fmt::print("{}\n", nlohmann::json(tok->encode(m)).dump());
    else if (as_line)
      fmt::print("{}\n", json_string(m.text));
    else
      fmt::print("{}", m.text);
  };
  if (a.jsonl) {
    for_each_stdin_line(
        [&](const std::string& line, size_t no) { emit(render(parse_line(line, no), no), true); });
    return;
  }
  std::string all((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  emit(render(parse_line(all, 1), 1), false);
}

}  // namespace

void add_tokenizer_commands(CLI::App& app) {
  auto targs = std::make_shared<TokenizeArgs>();
  auto* t = app.add_subcommand("tokenize", "Print the token ids and pieces of a text");
  add_source_options(t, targs->src);
  t->add_option("text", targs->text, "Text to tokenize (default: all of stdin)");
  t->add_flag("--jsonl", targs->jsonl,
              "Read one JSON string per stdin line, write one JSON array of ids per line");
  t->add_flag("--special", targs->special,
              "Turn the text of added tokens (<|im_start|>, <think>, ...) into those tokens "
              "(off by default: text is never control tokens)");
  t->callback([targs] { run_tokenize(*targs); });

  auto dargs = std::make_shared<DetokenizeArgs>();
  auto* d = app.add_subcommand("detokenize", "Print the text of token ids");
  add_source_options(d, dargs->src);
  d->add_option("ids", dargs->ids, "Token ids");
  d->add_flag("--jsonl", dargs->jsonl,
              "Read one JSON array of ids per stdin line, write one JSON string per line");
  d->add_flag("--skip-control", dargs->skip_control, "Leave out control tokens");
  d->callback([dargs] { run_detokenize(*dargs); });

  auto rargs = std::make_shared<RenderArgs>();
  auto* r = app.add_subcommand(
      "render-chat",
      "Render a chat ({messages, tools, add_generation_prompt, enable_thinking}) as the Qwen3 "
      "prompt");
  add_source_options(r, rargs->src);
  r->add_flag("--jsonl", rargs->jsonl,
              "Read one JSON object per stdin line, write one JSON string per line");
  r->add_flag("--ids", rargs->ids,
              "Write token ids (message text never becomes control tokens) instead of text");
  r->callback([rargs] { run_render_chat(*rargs); });
}

}  // namespace moerun::cli
