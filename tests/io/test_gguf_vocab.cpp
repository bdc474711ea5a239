// Tokenizer keys: write_vocab -> read_vocab round trip and validation of bad vocabularies.
#include <cstdio>

#include <gtest/gtest.h>

#include "core/error.h"
#include "gguf_test_util.h"
#include "io/gguf_vocab.h"

namespace moerun {
namespace {

VocabData small_vocab() {
  VocabData v;
  v.tokens = {"a", "b", "ab", "Ġthe", "<|endoftext|>", "<|im_start|>"};
  v.token_types = {TokenType::normal, TokenType::normal,  TokenType::normal,
                   TokenType::normal, TokenType::control, TokenType::control};
  v.merges = {"a b", "Ġ t"};
  v.eos_id = 4;
  v.pad_id = 4;
  v.add_bos = false;
  v.chat_template = "{% for m in messages %}{{ m.content }}{% endfor %}";
  return v;
}

// Writes a file with `vocab` plus `extra` edits and reads it back.
template <typename Edit>
std::unique_ptr<GgufFile> write_file(const std::string& name, const VocabData& vocab, Edit&& edit) {
  const std::string path = test::temp_path(name);
  {
    GgufWriter w(path);
    write_vocab(w, vocab);
    edit(w);
    w.write_header();
    w.finish();
  }
  std::unique_ptr<GgufFile> f = GgufFile::open(path);
  std::remove(path.c_str());  // the mapping stays valid
  return f;
}

std::string read_error(const GgufFile& f) {
  try {
    read_vocab(f);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(GgufVocab, RoundTrip) {
  const VocabData v = small_vocab();
  auto f = write_file("vocab.gguf", v, [](GgufWriter&) {});
  EXPECT_EQ(f->get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(f->get("tokenizer.ggml.eos_token_id").type, GgufType::u32);
  EXPECT_EQ(f->find("tokenizer.ggml.bos_token_id"), nullptr);
  const VocabData r = read_vocab(*f);
  EXPECT_EQ(r.model, v.model);
  EXPECT_EQ(r.pre, v.pre);
  EXPECT_EQ(r.tokens, v.tokens);
  EXPECT_EQ(r.token_types, v.token_types);
  EXPECT_EQ(r.merges, v.merges);
  EXPECT_EQ(r.bos_id, -1);
  EXPECT_EQ(r.eos_id, 4);
  EXPECT_EQ(r.pad_id, 4);
  EXPECT_EQ(r.add_bos, false);
  EXPECT_EQ(r.chat_template, v.chat_template);
}

TEST(GgufVocab, BosAndAddBosRoundTrip) {
  VocabData v = small_vocab();
  v.bos_id = 5;
  v.add_bos = true;
  v.chat_template.clear();
  auto f = write_file("vocab_bos.gguf", v, [](GgufWriter&) {});
  EXPECT_EQ(f->find("tokenizer.chat_template"), nullptr);
  const VocabData r = read_vocab(*f);
  EXPECT_EQ(r.bos_id, 5);
  EXPECT_TRUE(r.add_bos);
  EXPECT_EQ(r.chat_template, "");
}

TEST(GgufVocab, OptionalKeysHaveDefaults) {
  const std::string path = test::temp_path("vocab_min.gguf");
  {
    GgufWriter w(path);
    w.set("tokenizer.ggml.model", GgufValue::of_string("gpt2"));
    w.set("tokenizer.ggml.tokens", GgufValue::of_strings({"x", "y"}));
    w.set("tokenizer.ggml.merges", GgufValue::of_strings({}));
    w.write_header();
    w.finish();
  }
  auto f = GgufFile::open(path);
  std::remove(path.c_str());
  const VocabData r = read_vocab(*f);
  EXPECT_EQ(r.pre, "default");
  EXPECT_EQ(r.tokens, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(r.token_types, (std::vector<TokenType>{TokenType::normal, TokenType::normal}));
  EXPECT_TRUE(r.merges.empty());
  EXPECT_EQ(r.bos_id, -1);
  EXPECT_EQ(r.eos_id, -1);
  EXPECT_EQ(r.pad_id, -1);
  EXPECT_FALSE(r.add_bos);
  EXPECT_EQ(r.chat_template, "");
}

TEST(GgufVocab, RefusesOtherModels) {
  VocabData v = small_vocab();
  v.model = "llama";
  auto f = write_file("vocab_llama.gguf", v, [](GgufWriter&) {});
  const std::string msg = read_error(*f);
  EXPECT_NE(msg.find("'tokenizer.ggml.model' is 'llama'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("gpt2"), std::string::npos) << msg;
}

TEST(GgufVocab, RefusesTokenTypeLengthMismatch) {
  auto f = write_file("vocab_types.gguf", small_vocab(), [](GgufWriter& w) {
    w.set("tokenizer.ggml.token_type", GgufValue::of_i32s({1, 1}));
  });
  const std::string msg = read_error(*f);
  EXPECT_NE(msg.find("'tokenizer.ggml.token_type' has 2 entries for 6 tokens"), std::string::npos)
      << msg;
}

TEST(GgufVocab, RefusesUnknownTokenType) {
  auto f = write_file("vocab_types2.gguf", small_vocab(), [](GgufWriter& w) {
    w.set("tokenizer.ggml.token_type", GgufValue::of_i32s({1, 1, 1, 9, 3, 3}));
  });
  EXPECT_NE(read_error(*f).find("token 3 has unknown type 9"), std::string::npos);
}

TEST(GgufVocab, RefusesIdsOutOfRange) {
  auto f = write_file("vocab_ids.gguf", small_vocab(), [](GgufWriter& w) {
    w.set("tokenizer.ggml.eos_token_id", GgufValue::of_u32(6));
  });
  const std::string msg = read_error(*f);
  EXPECT_NE(msg.find("'tokenizer.ggml.eos_token_id' is 6, outside the vocabulary of 6 tokens"),
            std::string::npos)
      << msg;
  auto g = write_file("vocab_ids2.gguf", small_vocab(), [](GgufWriter& w) {
    w.set("tokenizer.ggml.bos_token_id", GgufValue::of_i32(-1));
  });
  EXPECT_NE(read_error(*g).find("tokenizer.ggml.bos_token_id"), std::string::npos);
}

TEST(GgufVocab, RefusesWrongTypesAndMissingKeys) {
  auto f = write_file("vocab_wrong.gguf", small_vocab(), [](GgufWriter& w) {
    w.set("tokenizer.ggml.tokens", GgufValue::of_i32s({1, 2}));
  });
  EXPECT_NE(read_error(*f).find("'tokenizer.ggml.tokens' must be an array of string"),
            std::string::npos);
  auto g = write_file("vocab_nomodel.gguf", VocabData{}, [](GgufWriter&) {});
  EXPECT_NE(read_error(*g).find("is empty"), std::string::npos);
  auto h = write_file("vocab_addbos.gguf", small_vocab(), [](GgufWriter& w) {
    w.set("tokenizer.ggml.add_bos_token", GgufValue::of_u8(1));
  });
  EXPECT_NE(read_error(*h).find("must be a bool"), std::string::npos);
}

TEST(GgufVocab, MissingModelKeyIsNamed) {
  const std::string path = test::temp_path("vocab_none.gguf");
  {
    GgufWriter w(path);
    w.write_header();
    w.finish();
  }
  auto f = GgufFile::open(path);
  std::remove(path.c_str());
  EXPECT_NE(read_error(*f).find("'tokenizer.ggml.model' is missing"), std::string::npos);
}

TEST(GgufVocab, WriteRefusesMismatchedTypes) {
  VocabData v = small_vocab();
  v.token_types.pop_back();
  GgufWriter w(test::temp_path("vocab_bad_write.gguf"));
  EXPECT_THROW(write_vocab(w, v), Error);
}

}  // namespace
}  // namespace moerun
