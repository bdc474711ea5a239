// Encoding and decoding details: special-token modes, invalid UTF-8, NFC, streaming decode.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "tokenizer/byte_level.h"
#include "tokenizer/streaming_decoder.h"
#include "tokenizer/utf8.h"
#include "tokenizer_test_util.h"

namespace moerun {
namespace {

TEST(Utf8, RepairReplacesMaximalInvalidSubparts) {
  EXPECT_EQ(repair_utf8("ab"), "ab");
  EXPECT_EQ(repair_utf8("a\xff"
                        "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(repair_utf8("\xe2\x82"), "\xEF\xBF\xBD");    // truncated euro sign
  EXPECT_EQ(repair_utf8("\xe2\x82x"), "\xEF\xBF\xBDx");  // one subpart, one U+FFFD
  EXPECT_EQ(repair_utf8("\xed\xa0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(repair_utf8("\xc0\xaf"), "\xEF\xBF\xBD\xEF\xBF\xBD");                  // overlong
  EXPECT_TRUE(is_valid_utf8("\xf0\x9f\x91\x8d"));
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_EQ(utf8_complete_prefix("ab\xf0\x9f\x91"), 2u);
  EXPECT_EQ(utf8_complete_prefix("ab\xf0\x9f\x91\x8d"), 6u);
  EXPECT_EQ(utf8_complete_prefix("ab\xff"), 3u);  // invalid is complete (becomes U+FFFD)
}

TEST(ByteLevel, MapIsABijection) {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  std::string bl = bytes_to_byte_level(all);
  EXPECT_EQ(byte_level_to_bytes(bl), all);
  EXPECT_EQ(bytes_to_byte_level(" "), "\xc4\xa0");   // Ġ
  EXPECT_EQ(bytes_to_byte_level("\n"), "\xc4\x8a");  // Ċ
  EXPECT_FALSE(byte_level_to_bytes("\xe4\xb8\xad").has_value());
}

TEST(Tokenizer, KnownIds) {
  const Tokenizer* tok = qwen3_tokenizer();
  if (!tok) GTEST_SKIP() << "Qwen3 tokenizer not installed";
  EXPECT_EQ(tok->encode("Hello world", SpecialTokens::parse), (std::vector<int32_t>{9707, 1879}));
  EXPECT_EQ(tok->encode("", SpecialTokens::parse), std::vector<int32_t>{});
  EXPECT_EQ(tok->encode("<|im_start|>system\n", SpecialTokens::parse),
            (std::vector<int32_t>{151644, 8948, 198}));
  std::vector<int32_t> as_text = tok->encode("<|im_start|>", SpecialTokens::as_text);
  EXPECT_GT(as_text.size(), 1u);
  EXPECT_EQ(tok->decode(as_text), "<|im_start|>");
  // user_defined tokens (special=false in tokenizer.json) are also only matched when parsing.
  EXPECT_EQ(tok->encode("<think>", SpecialTokens::parse), std::vector<int32_t>{151667});
  EXPECT_NE(tok->encode("<think>", SpecialTokens::as_text), std::vector<int32_t>{151667});
}

TEST(Tokenizer, NfcNormalisesBeforeBpe) {
  const Tokenizer* tok = qwen3_tokenizer();
  if (!tok) GTEST_SKIP() << "Qwen3 tokenizer not installed";
  EXPECT_EQ(tok->encode("cafe\xcc\x81", SpecialTokens::as_text),
            tok->encode("caf\xc3\xa9", SpecialTokens::as_text));
}

TEST(Tokenizer, InvalidUtf8IsReplacedNotFatal) {
  const Tokenizer* tok = qwen3_tokenizer();
  if (!tok) GTEST_SKIP() << "Qwen3 tokenizer not installed";
  EXPECT_EQ(tok->encode("a\xff"
                        "b",
                        SpecialTokens::parse),
            tok->encode("a\xEF\xBF\xBD"
                        "b",
                        SpecialTokens::parse));
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string s(static_cast<size_t>(rng() % 40), '\0');
    for (char& c : s) c = static_cast<char>(rng());
    std::vector<int32_t> ids = tok->encode(s, SpecialTokens::parse);
    EXPECT_TRUE(is_valid_utf8(tok->decode(ids)));
    for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < tok->n_vocab());
  }
}

TEST(Tokenizer, DecodeSkipsControlOnRequest) {
  const Tokenizer* tok = qwen3_tokenizer();
  if (!tok) GTEST_SKIP() << "Qwen3 tokenizer not installed";
  std::vector<int32_t> ids = {151644, 9707, 151645, 151667, 151700, -5, 1 << 30};
  EXPECT_EQ(tok->decode(ids), "<|im_start|>Hello<|im_end|><think>");
  EXPECT_EQ(tok->decode(ids, false), "Hello<think>");
}

TEST(StreamingDecoder, EmitsOnlyCompleteCharacters) {
  const Tokenizer* tok = qwen3_tokenizer();
  if (!tok) GTEST_SKIP() << "Qwen3 tokenizer not installed";
  // Emoji and rare CJK split across byte tokens.
  const std::string text = "ok 👨‍👩‍👧‍👦 \xf0\xa0\x80\x80 \xe9\xbe\x98 done";
  std::vector<int32_t> ids = tok->encode(text, SpecialTokens::as_text);
  StreamingDecoder dec(*tok);
  std::string out;
  size_t splits = 0;
  for (int32_t id : ids) {
    std::string piece = dec.push(id);
    EXPECT_TRUE(is_valid_utf8(piece));
    if (dec.pending() > 0) ++splits;
    out += piece;
  }
  out += dec.flush();
  EXPECT_EQ(out, text);
  EXPECT_GT(splits, 0u);  // the test did exercise held-back bytes
  // A dangling partial character becomes U+FFFD at flush; control tokens hidden by default.
  StreamingDecoder d2(*tok);
  std::vector<int32_t> half = tok->encode("\xf0\xa0\x80\x80", SpecialTokens::as_text);
  ASSERT_GT(half.size(), 1u);
  EXPECT_EQ(d2.push(half[0]), "");
  EXPECT_EQ(d2.push(151645), "");
  EXPECT_EQ(d2.flush(), "\xEF\xBF\xBD");
}

}  // namespace
}  // namespace moerun
