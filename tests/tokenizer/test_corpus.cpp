// Reference ids: every string of tests/fixtures/tokenizer/corpus.jsonl must encode to the ids on
// the same line of ids.jsonl (produced by Hugging Face's tokenizer on the same tokenizer.json).
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer_test_util.h"

namespace moerun {
namespace {

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(f, l);)
    if (!l.empty()) lines.push_back(l);
  return lines;
}

TEST(TokenizerCorpus, MatchesReferenceIdsOnEveryString) {
  const Tokenizer* tok = qwen3_tokenizer();
  if (!tok) GTEST_SKIP() << "Qwen3 tokenizer not installed";
  const std::string dir = std::string(MOERUN_SOURCE_DIR) + "/tests/fixtures/tokenizer/";
  auto corpus = read_lines(dir + "corpus.jsonl");
  auto ids = read_lines(dir + "ids.jsonl");
  ASSERT_GE(corpus.size(), 2000u);
  ASSERT_EQ(corpus.size(), ids.size());
  size_t mismatches = 0;
  std::string bad_lines;
  for (size_t i = 0; i < corpus.size(); ++i) {
    std::string text = nlohmann::json::parse(corpus[i]).get<std::string>();
    std::vector<int32_t> want = nlohmann::json::parse(ids[i]).get<std::vector<int32_t>>();
    std::vector<int32_t> got = tok->encode(text, SpecialTokens::parse);
    if (got != want) bad_lines += " " + std::to_string(i + 1);
    if (got != want && ++mismatches <= 10)
      ADD_FAILURE() << "line " << i + 1 << ": " << corpus[i] << "\n  want "
                    << nlohmann::json(want).dump() << "\n  got  " << nlohmann::json(got).dump();
    // Decoding gives the normalised text, which encodes to the same ids again.
    EXPECT_EQ(tok->encode(tok->decode(got), SpecialTokens::parse), got) << "line " << i + 1;
  }
  EXPECT_EQ(mismatches, 0u) << "of " << corpus.size() << "; lines:" << bad_lines;
}

}  // namespace
}  // namespace moerun
