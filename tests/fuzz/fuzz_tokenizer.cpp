// libFuzzer target for the tokenizer: encode (plain, with added tokens, with trusted ranges),
// decode/streaming decode, the output parser, the chat formatter on arbitrary JSON, and
// load_hf_vocab on arbitrary tokenizer.json / tokenizer_config.json text.
// The first input byte picks the mode; the rest is the payload.
#include <unistd.h>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "core/error.h"
#include "core/paths.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/streaming_decoder.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tool_call_parser.h"
#include "tokenizer/utf8.h"

namespace {

using moerun::Tokenizer;

// The real Qwen3 tokenizer when installed, else a byte-level vocabulary with one merge and one
// control token.
const Tokenizer& fuzz_tokenizer() {
  static const std::unique_ptr<Tokenizer> tok = []() {
    std::string dir = moerun::default_tokenizer_dir();
    if (std::filesystem::exists(dir + "/tokenizer.json"))
      return std::make_unique<Tokenizer>(Tokenizer::from_hf_dir(dir));
    moerun::VocabData v;
    for (int b = 0; b < 256; ++b) {
      v.tokens.push_back(moerun::bytes_to_byte_level(std::string(1, static_cast<char>(b))));
      v.token_types.push_back(moerun::TokenType::normal);
    }
    v.tokens.push_back("he");
    v.token_types.push_back(moerun::TokenType::normal);
    v.merges.push_back("h e");
    v.tokens.push_back("<|im_end|>");
    v.token_types.push_back(moerun::TokenType::control);
    return std::make_unique<Tokenizer>(std::move(v));
  }();
  return *tok;
}

// A per-process scratch directory for tokenizer.json fuzzing.
const std::string& scratch_dir() {
  static const std::string dir = [] {
    auto d = std::filesystem::temp_directory_path() /
             ("moerun_fuzz_tokenizer_" + std::to_string(getpid()));
    std::filesystem::create_directories(d);
    return d.string();
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0] % 6;
  std::string payload(reinterpret_cast<const char*>(data + 1), size - 1);
  const Tokenizer& tok = fuzz_tokenizer();
  try {
    switch (mode) {
      case 0:
      case 1: {
        auto ids = tok.encode(
            payload, mode == 0 ? moerun::SpecialTokens::as_text : moerun::SpecialTokens::parse);
        for (int32_t id : ids)
          if (id < 0 || id >= tok.n_vocab()) __builtin_trap();
        moerun::StreamingDecoder dec(tok, true);
        std::string out;
        for (int32_t id : ids) out += dec.push(id);
        out += dec.flush();
        if (!moerun::is_valid_utf8(out)) __builtin_trap();
        if (mode == 0 && out != moerun::repair_utf8(tok.decode(ids))) __builtin_trap();
        break;
      }
      case 2: {  // trusted ranges taken from the payload's own bytes
        moerun::MarkedText m{payload, {}};
        for (size_t i = 0; i + 1 < payload.size() && m.trusted.size() < 8; i += 7) {
          size_t b = static_cast<uint8_t>(payload[i]) % (payload.size() + 1);
          size_t e = b + static_cast<uint8_t>(payload[i + 1]) % 32;
          if (e > payload.size()) e = payload.size();
          if (m.trusted.empty() || b >= m.trusted.back().end) m.trusted.push_back({b, e});
        }
        tok.encode(m);
        break;
      }
      case 3: {
        moerun::ToolCallParser p(payload.size() % 2 == 1);
        std::vector<moerun::ChatOutputEvent> ev;
        for (size_t i = 0; i < payload.size(); i += 5)
          p.feed(std::string_view(payload).substr(i, 5), ev);
        p.finish(ev);
        break;
      }
      case 4: {
        auto j = nlohmann::ordered_json::parse(payload, nullptr, false);
        if (j.is_discarded() || !j.is_object()) break;
        moerun::render_qwen3_chat(j.contains("messages") ? j["messages"] : nlohmann::ordered_json(),
                                  j.contains("tools") ? j["tools"] : nlohmann::ordered_json(), {});
        break;
      }
      case 5: {  // payload = tokenizer.json, optionally followed by "\0" + tokenizer_config.json
        size_t cut = payload.find('\0');
        std::ofstream(scratch_dir() + "/tokenizer.json", std::ios::binary | std::ios::trunc)
            << payload.substr(0, cut);
        std::filesystem::remove(scratch_dir() + "/tokenizer_config.json");
        if (cut != std::string::npos)
          std::ofstream(scratch_dir() + "/tokenizer_config.json", std::ios::binary)
              << payload.substr(cut + 1);
        Tokenizer t(moerun::load_hf_vocab(scratch_dir()));
        t.encode("Hello, world! <|im_end|>", moerun::SpecialTokens::parse);
        break;
      }
    }
  } catch (const moerun::Error&) {
    // Bad input reported as an error is the expected outcome.
  }
  return 0;
}
