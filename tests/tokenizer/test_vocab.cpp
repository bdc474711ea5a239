// load_hf_vocab: the real Qwen3 tokenizer directory and small hand-written ones.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/paths.h"
#include "tokenizer/vocab.h"

namespace moerun {
namespace {

namespace fs = std::filesystem;

// The Qwen3 tokenizer directory: $MOERUN_TOKENIZER_DIR or the setup script's cache folder.
std::string qwen3_dir() {
  if (const char* d = std::getenv("MOERUN_TOKENIZER_DIR"); d && *d) return d;
  return default_tokenizer_dir();
}

bool have_qwen3() {
  return fs::exists(qwen3_dir() + "/tokenizer.json");
}

// A scratch directory with the given tokenizer.json and optional tokenizer_config.json.
std::string write_dir(const std::string& name, const std::string& tok, const std::string& cfg) {
  fs::path d = fs::temp_directory_path() / ("moerun_test_vocab_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  std::ofstream(d / "tokenizer.json") << tok;
  if (!cfg.empty()) std::ofstream(d / "tokenizer_config.json") << cfg;
  return d.string();
}

const char* kQwenPre =
    R"({"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":false}]})";

std::string small_tokenizer(const std::string& merges) {
  return std::string(R"({"normalizer":{"type":"NFC"},"pre_tokenizer":)") + kQwenPre +
         R"(,"added_tokens":[{"id":5,"content":"<|end|>","special":true},)"
         R"({"id":6,"content":"<think>","special":false},{"id":7,"content":"<|fim|>","special":false}],)"
         R"("model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2,"c":3,"abc":4},"merges":)" +
         merges + "}}";
}

TEST(LoadHfVocab, Qwen3MatchesLlamaCppLayout) {
  if (!have_qwen3()) GTEST_SKIP() << "no tokenizer at " << qwen3_dir();
  VocabData v = load_hf_vocab(qwen3_dir(), 151936);
  ASSERT_EQ(v.tokens.size(), 151936u);
  ASSERT_EQ(v.token_types.size(), 151936u);
  EXPECT_EQ(v.model, "gpt2");
  EXPECT_EQ(v.pre, "qwen2");
  EXPECT_EQ(v.merges.size(), 151387u);
  EXPECT_EQ(v.merges[0], "\xc4\xa0 \xc4\xa0");  // "Ġ Ġ"
  EXPECT_EQ(v.merges[2], "i n");
  EXPECT_EQ(v.tokens[0], "!");
  EXPECT_EQ(v.token_types[0], TokenType::normal);
  EXPECT_EQ(v.tokens[151643], "<|endoftext|>");
  EXPECT_EQ(v.token_types[151643], TokenType::control);
  EXPECT_EQ(v.tokens[151645], "<|im_end|>");
  EXPECT_EQ(v.token_types[151659],
            TokenType::control);  // <|fim_prefix|>: special=false, looks special
  EXPECT_EQ(v.tokens[151657], "<tool_call>");
  EXPECT_EQ(v.token_types[151657], TokenType::user_defined);
  EXPECT_EQ(v.tokens[151667], "<think>");
  EXPECT_EQ(v.token_types[151667], TokenType::user_defined);
  EXPECT_EQ(v.tokens[151669], "[PAD151669]");
  EXPECT_EQ(v.token_types[151669], TokenType::unused);
  EXPECT_EQ(v.tokens[151935], "[PAD151935]");
  EXPECT_EQ(v.eos_id, 151645);
  EXPECT_EQ(v.pad_id, 151643);
  EXPECT_EQ(v.bos_id, 151643);
  EXPECT_FALSE(v.add_bos);
  EXPECT_NE(v.chat_template.find("<|im_start|>"), std::string::npos);
}

TEST(LoadHfVocab, NoPaddingBelowActualSize) {
  if (!have_qwen3()) GTEST_SKIP() << "no tokenizer at " << qwen3_dir();
  VocabData v = load_hf_vocab(qwen3_dir());
  EXPECT_EQ(v.tokens.size(), 151669u);
}

TEST(LoadHfVocab, MergesAsStringsOrArraysGiveTheSameResult) {
  std::string cfg = R"({"eos_token":{"content":"<|end|>"},"bos_token":null,"add_bos_token":true,
    "chat_template":[{"name":"tool_use","template":"x"},{"name":"default","template":"T"}]})";
  VocabData a = load_hf_vocab(write_dir("strings", small_tokenizer(R"(["a b","ab c"])"), cfg));
  VocabData b =
      load_hf_vocab(write_dir("arrays", small_tokenizer(R"([["a","b"],["ab","c"]])"), cfg));
  EXPECT_EQ(a.merges, (std::vector<std::string>{"a b", "ab c"}));
  EXPECT_EQ(a.merges, b.merges);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.token_types[5], TokenType::control);
  EXPECT_EQ(a.token_types[6], TokenType::user_defined);
  EXPECT_EQ(a.token_types[7], TokenType::control);
  EXPECT_EQ(a.eos_id, 5);
  EXPECT_EQ(a.bos_id, -1);  // no bos anywhere and no <|endoftext|>
  EXPECT_TRUE(a.add_bos);
  EXPECT_EQ(a.chat_template, "T");
}

TEST(LoadHfVocab, GapsBecomeUnusedPadTokens) {
  std::string tok = small_tokenizer(R"(["a b"])");
  tok.replace(tok.find("\"id\":7"), 6, "\"id\":9");
  VocabData v = load_hf_vocab(write_dir("gaps", tok, ""), 12);
  ASSERT_EQ(v.tokens.size(), 12u);
  EXPECT_EQ(v.tokens[7], "[PAD7]");
  EXPECT_EQ(v.token_types[8], TokenType::unused);
  EXPECT_EQ(v.tokens[9], "<|fim|>");
  EXPECT_EQ(v.tokens[11], "[PAD11]");
}

TEST(LoadHfVocab, BadInputThrowsNamingTheFile) {
  auto expect_error = [](const std::string& dir, const std::string& needle) {
    try {
      load_hf_vocab(dir);
      ADD_FAILURE() << "no error for " << dir;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error("/nonexistent/dir", "/nonexistent/dir/tokenizer.json");
  expect_error(write_dir("notjson", "{", ""), "invalid JSON");
  expect_error(write_dir("badmerge", small_tokenizer(R"([42])"), ""), "merge");
  expect_error(write_dir("nospace", small_tokenizer(R"(["ab"])"), ""), "no space");
  std::string other_regex = small_tokenizer("[]");
  other_regex.replace(other_regex.find("(?i:"), 4, "(?x:");
  expect_error(write_dir("regex", other_regex, ""), "unsupported pre-tokenizer");
  expect_error(write_dir("eos", small_tokenizer("[]"), R"({"eos_token":"<nope>"})"),
               "tokenizer_config.json: eos_token");
  std::string dup = small_tokenizer("[]");
  dup.replace(dup.find("\"id\":6"), 6, "\"id\":1");
  expect_error(write_dir("dup", dup, ""), "has id 1");
}

}  // namespace
}  // namespace moerun
