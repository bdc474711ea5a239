// load_hf_vocab: a Hugging Face tokenizer directory turned into the vocabulary llama.cpp's
// converter would write to GGUF (tokens by id, token types, "a b" merges, special ids, chat
// template).
//
// Token types follow convert_hf_to_gguf.py: an added token is `control` when tokenizer.json marks
// it special or when it "looks special" (`<|...|>`), otherwise `user_defined`; so `<|fim_prefix|>`
// is control while `<think>`, `<tool_call>`, `<tool_response>` (special=false, no `<|`) are
// user_defined. Everything else is `normal`; ids missing below pad_to are "[PAD<id>]" of type
// unused.
//
// Special ids follow gguf-py's SpecialVocab: tokenizer_config.json's `<kind>_token` first, then
// config.json's `<kind>_token_id` when the directory has one. Qwen2/Qwen3 declare bos_token null
// and set bos_token_id = <|endoftext|> in config.json; a tokenizer-only directory has no
// config.json, so for a null bos we fall back to the <|endoftext|> id, which is what llama.cpp's
// Qwen GGUFs carry.
#include "tokenizer/vocab.h"

#include <fstream>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer_json.h"

namespace moerun {
namespace {

using json = nlohmann::json;

bool file_exists(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return f.good();
}

std::string read_whole_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot open {}", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) fail("cannot read {}", path);
  return std::move(ss).str();
}

json parse_json_file(const std::string& path) {
  std::string text = read_whole_file(path);
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail("{}: not valid JSON", path);
  if (!j.is_object()) fail("{}: top level is not a JSON object", path);
  return j;
}

// The text of a special-token entry in tokenizer_config.json: a string, {"content": ...} or null.
std::optional<std::string> token_text(const json& cfg, const char* key, const std::string& path) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    auto c = it->find("content");
    if (c != it->end() && c->is_string()) return c->get<std::string>();
  }
  fail("{}: field '{}' is neither a string, an object with 'content', nor null", path, key);
}

// llama.cpp's does_token_look_special().
bool looks_special(const std::string& t) {
  auto starts = [&](const char* p) { return t.rfind(p, 0) == 0; };
  auto ends = [&](const std::string& s) {
    return t.size() >= s.size() && t.compare(t.size() - s.size(), s.size(), s) == 0;
  };
  if (t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]") return true;
  if (starts("<|") && ends("|>")) return true;
  if (starts("<\xef\xbd\x9c") && ends("\xef\xbd\x9c>")) return true;  // fullwidth bars
  if (starts("<unused") && ends(">")) return true;
  return false;
}

// Checks the parts of tokenizer.json that moerun's tokenizer hard-codes and returns the `pre` name.
std::string check_pipeline(const json& tj, const std::string& path) {
  const json& model = tj.value("model", json::object());
  if (model.value("type", std::string("BPE")) != "BPE")
    fail("{}: model.type is '{}', only BPE is supported", path, model.value("type", std::string()));
  if (model.contains("byte_fallback") && model["byte_fallback"].is_boolean() &&
      model["byte_fallback"].get<bool>())
    fail("{}: model.byte_fallback is true; only byte-level BPE without fallback is supported",
         path);
  const json& norm = tj.contains("normalizer") ? tj["normalizer"] : json();
  if (!norm.is_null() && !(norm.is_object() && norm.value("type", std::string()) == "NFC"))
    fail("{}: normalizer must be NFC or null, got {}", path, norm.dump());
  // Find the Split regex among the pre-tokenizers.
  std::string regex;
  const json& pre = tj.contains("pre_tokenizer") ? tj["pre_tokenizer"] : json();
  auto visit = [&](const json& p) {
    if (p.is_object() && p.value("type", std::string()) == "Split" && p.contains("pattern") &&
        p["pattern"].is_object() && p["pattern"].contains("Regex") &&
        p["pattern"]["Regex"].is_string())
      regex = p["pattern"]["Regex"].get<std::string>();
  };
  if (pre.is_object() && pre.value("type", std::string()) == "Sequence" &&
      pre.contains("pretokenizers") && pre["pretokenizers"].is_array()) {
    for (const json& p : pre["pretokenizers"]) visit(p);
  } else {
    visit(pre);
  }
  std::string name = pre_name_for_regex(regex);
  if (name.empty())
    fail("{}: unsupported pre-tokenizer (Split regex {}); moerun knows only the qwen2 one", path,
         json(regex).dump());
  return name;
}

}  // namespace

VocabData load_hf_vocab(const std::string& dir, int64_t pad_to) {
  const std::string tok_path = dir + "/tokenizer.json";
  const std::string cfg_path = dir + "/tokenizer_config.json";
  const std::string model_cfg_path = dir + "/config.json";
  const std::string tok_text = read_whole_file(tok_path);
  TokenizerJson parsed = parse_tokenizer_json(tok_text, tok_path);
  const json& tj = parsed.rest;
  if (!tj.is_object()) fail("{}: top level is not a JSON object", tok_path);

  VocabData v;
  v.model = "gpt2";
  v.pre = check_pipeline(tj, tok_path);

  // Vocabulary of the BPE model plus added tokens, by id.
  auto mit = tj.find("model");
  if (mit == tj.end() || !mit->is_object()) fail("{}: missing object 'model'", tok_path);
  if (!parsed.has_vocab) fail("{}: missing object 'model.vocab'", tok_path);
  constexpr int64_t kMaxVocab = 1 << 24;
  std::unordered_map<int64_t, std::string> by_id;
  by_id.reserve(parsed.vocab.size() + 64);
  std::unordered_map<int64_t, bool> added_special;  // id -> special flag of an added token
  int64_t n = 0;
  for (auto& [token, id] : parsed.vocab) {
    if (id < 0 || id >= kMaxVocab) fail("{}: vocab id {} out of range", tok_path, id);
    auto [pos, inserted] = by_id.emplace(id, std::move(token));
    if (!inserted) fail("{}: vocab id {} used by two tokens", tok_path, id);
    n = std::max(n, id + 1);
  }
  if (auto at = tj.find("added_tokens"); at != tj.end() && !at->is_null()) {
    if (!at->is_array()) fail("{}: 'added_tokens' is not an array", tok_path);
    for (const json& a : *at) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() ||
          !a.contains("content") || !a["content"].is_string())
        fail("{}: added_tokens entry without integer 'id' and string 'content': {}", tok_path,
             a.dump());
      int64_t id = a["id"].get<int64_t>();
      if (id < 0 || id >= kMaxVocab) fail("{}: added token id {} out of range", tok_path, id);
      std::string content = a["content"].get<std::string>();
      auto [pos, inserted] = by_id.emplace(id, content);
      if (!inserted && pos->second != content)
        fail("{}: added token {} has id {}, which the vocab gives to {}", tok_path,
             json(content).dump(), id, json(pos->second).dump());
      added_special[id] =
          a.contains("special") && a["special"].is_boolean() && a["special"].get<bool>();
      n = std::max(n, id + 1);
    }
  }
  n = std::max(n, pad_to);
  v.tokens.resize(static_cast<size_t>(n));
  v.token_types.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    auto it = by_id.find(i);
    auto idx = static_cast<size_t>(i);
    if (it == by_id.end()) {
      v.tokens[idx] = fmt::format("[PAD{}]", i);
      v.token_types[idx] = TokenType::unused;
      continue;
    }
    v.tokens[idx] = std::move(it->second);
    auto ad = added_special.find(i);
    if (ad == added_special.end()) {
      v.token_types[idx] = TokenType::normal;
    } else {
      v.token_types[idx] = (ad->second || looks_special(v.tokens[idx])) ? TokenType::control
                                                                        : TokenType::user_defined;
    }
  }

  // Merges: "a b" strings or ["a", "b"] arrays (the reader accepts both).
  if (parsed.has_merges) {
    v.merges = std::move(parsed.merges);
  } else if (auto mg = mit->find("merges"); mg != mit->end() && !mg->is_null()) {
    fail("{}: merge list 'model.merges' is not an array", tok_path);
  }

  // Reverse lookup for special-token texts.
  std::unordered_map<std::string_view, int32_t> id_of;
  id_of.reserve(v.tokens.size());
  for (size_t i = 0; i < v.tokens.size(); ++i)
    if (v.token_types[i] != TokenType::unused) id_of.emplace(v.tokens[i], static_cast<int32_t>(i));
  auto lookup = [&](const std::string& text, const char* what, const std::string& path) {
    auto it = id_of.find(text);
    if (it == id_of.end())
      fail("{}: {} {} is not in the vocabulary", path, what, json(text).dump());
    return it->second;
  };

  if (file_exists(cfg_path)) {
    json cfg = parse_json_file(cfg_path);
    if (auto t = token_text(cfg, "bos_token", cfg_path))
      v.bos_id = lookup(*t, "bos_token", cfg_path);
    if (auto t = token_text(cfg, "eos_token", cfg_path))
      v.eos_id = lookup(*t, "eos_token", cfg_path);
    if (auto t = token_text(cfg, "pad_token", cfg_path))
      v.pad_id = lookup(*t, "pad_token", cfg_path);
    if (auto it = cfg.find("add_bos_token"); it != cfg.end() && !it->is_null()) {
      if (!it->is_boolean()) fail("{}: 'add_bos_token' is not a boolean", cfg_path);
      v.add_bos = it->get<bool>();
    }
    if (auto it = cfg.find("chat_template"); it != cfg.end() && !it->is_null()) {
      if (it->is_string()) {
        v.chat_template = it->get<std::string>();
      } else if (it->is_array()) {  // [{"name": ..., "template": ...}]: take "default"
        for (const json& t : *it)
          if (t.is_object() && t.value("name", std::string()) == "default" &&
              t.contains("template") && t["template"].is_string())
            v.chat_template = t["template"].get<std::string>();
      } else {
        fail("{}: 'chat_template' is neither a string nor a list of named templates", cfg_path);
      }
    }
  }
  if (const std::string jinja_path = dir + "/chat_template.jinja"; file_exists(jinja_path))
    v.chat_template = read_whole_file(jinja_path);

  if (file_exists(model_cfg_path)) {
    json mc = parse_json_file(model_cfg_path);
    auto take = [&](const char* key, int32_t& dst) {
      auto it = mc.find(key);
      if (dst >= 0 || it == mc.end() || !it->is_number_integer()) return;
      int64_t id = it->get<int64_t>();
      if (id < 0 || id >= n) fail("{}: {} = {} is outside the vocabulary", model_cfg_path, key, id);
      dst = static_cast<int32_t>(id);
    };
    take("bos_token_id", v.bos_id);
    take("eos_token_id", v.eos_id);
    take("pad_token_id", v.pad_id);
  }
  if (v.bos_id < 0) {
    if (auto it = id_of.find("<|endoftext|>"); it != id_of.end()) v.bos_id = it->second;
  }
  return v;
}

}  // namespace moerun
