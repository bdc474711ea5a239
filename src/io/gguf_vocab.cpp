#include "io/gguf_vocab.h"

#include <limits>

#include "core/error.h"

namespace moerun {
namespace {

constexpr const char* kModel = "tokenizer.ggml.model";
constexpr const char* kPre = "tokenizer.ggml.pre";
constexpr const char* kTokens = "tokenizer.ggml.tokens";
constexpr const char* kTokenType = "tokenizer.ggml.token_type";
constexpr const char* kMerges = "tokenizer.ggml.merges";
constexpr const char* kBos = "tokenizer.ggml.bos_token_id";
constexpr const char* kEos = "tokenizer.ggml.eos_token_id";
constexpr const char* kPad = "tokenizer.ggml.padding_token_id";
constexpr const char* kAddBos = "tokenizer.ggml.add_bos_token";
constexpr const char* kChatTemplate = "tokenizer.chat_template";

// The array of `key`, which must hold elements of type `elem`.
const GgufArray& typed_array(const GgufFile& file, const char* key, GgufType elem) {
  const GgufArray* a = std::get_if<GgufArray>(&file.get(key).value);
  if (!a || a->elem_type != elem) {
    fail("{}: metadata '{}' must be an array of {}", file.path(), key, gguf_type_name(elem));
  }
  return *a;
}

// The token id stored under `key`, or -1 when absent; must index one of `n_tokens` tokens.
int32_t read_token_id(const GgufFile& file, const char* key, size_t n_tokens) {
  if (!file.find(key)) return -1;
  const uint64_t id = file.get_uint(key);
  if (id >= n_tokens) {
    fail("{}: metadata '{}' is {}, outside the vocabulary of {} tokens", file.path(), key, id,
         n_tokens);
  }
  return static_cast<int32_t>(id);
}

}  // namespace

void write_vocab(GgufWriter& writer, const VocabData& vocab) {
  if (vocab.token_types.size() != vocab.tokens.size()) {
    fail("vocabulary: {} token types for {} tokens", vocab.token_types.size(), vocab.tokens.size());
  }
  writer.set(kModel, GgufValue::of_string(vocab.model));
  writer.set(kPre, GgufValue::of_string(vocab.pre));
  writer.set(kTokens, GgufValue::of_strings(vocab.tokens));
  std::vector<int32_t> types;
  types.reserve(vocab.token_types.size());
  for (TokenType t : vocab.token_types) types.push_back(static_cast<int32_t>(t));
  writer.set(kTokenType, GgufValue::of_i32s(std::move(types)));
  writer.set(kMerges, GgufValue::of_strings(vocab.merges));
  const std::pair<const char*, int32_t> ids[] = {
      {kBos, vocab.bos_id}, {kEos, vocab.eos_id}, {kPad, vocab.pad_id}};
  for (const auto& [key, id] : ids) {
    if (id >= 0) writer.set(key, GgufValue::of_u32(static_cast<uint32_t>(id)));
  }
  writer.set(kAddBos, GgufValue::of_bool(vocab.add_bos));
  if (!vocab.chat_template.empty()) {
    writer.set(kChatTemplate, GgufValue::of_string(vocab.chat_template));
  }
}

VocabData read_vocab(const GgufFile& file) {
  VocabData v;
  v.model = file.get_string(kModel);
  if (v.model != "gpt2") {
    fail("{}: metadata '{}' is '{}'; moerun supports only 'gpt2' (byte-level BPE)", file.path(),
         kModel, v.model);
  }
  v.pre = file.find(kPre) ? file.get_string(kPre) : "default";
  v.tokens =
      std::get<std::vector<std::string>>(typed_array(file, kTokens, GgufType::string).values);
  const size_t n = v.tokens.size();
  if (n == 0) fail("{}: metadata '{}' is empty", file.path(), kTokens);
  if (n > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    fail("{}: metadata '{}' has {} tokens, too many", file.path(), kTokens, n);
  }
  if (file.find(kTokenType)) {
    const auto& types =
        std::get<std::vector<int32_t>>(typed_array(file, kTokenType, GgufType::i32).values);
    if (types.size() != n) {
      fail("{}: metadata '{}' has {} entries for {} tokens", file.path(), kTokenType, types.size(),
           n);
    }
    v.token_types.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      if (types[i] < 0 || types[i] > static_cast<int32_t>(TokenType::byte)) {
        fail("{}: metadata '{}': token {} has unknown type {}", file.path(), kTokenType, i,
             types[i]);
      }
      v.token_types.push_back(static_cast<TokenType>(types[i]));
    }
  } else {
    v.token_types.assign(n, TokenType::normal);
  }
  v.merges =
      std::get<std::vector<std::string>>(typed_array(file, kMerges, GgufType::string).values);
  v.bos_id = read_token_id(file, kBos, n);
  v.eos_id = read_token_id(file, kEos, n);
  v.pad_id = read_token_id(file, kPad, n);
  if (const GgufValue* b = file.find(kAddBos)) {
    const bool* flag = std::get_if<bool>(&b->value);
    if (!flag) fail("{}: metadata '{}' must be a bool", file.path(), kAddBos);
    v.add_bos = *flag;
  }
  if (file.find(kChatTemplate)) v.chat_template = file.get_string(kChatTemplate);
  return v;
}

}  // namespace moerun
