// libFuzzer target: GgufFile::parse on arbitrary bytes must either succeed or throw moerun::Error.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "core/error.h"
#include "io/gguf_describe.h"
#include "io/gguf_file.h"
#include "io/gguf_vocab.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An exact-size copy so that ASan catches any read past the end.
  std::unique_ptr<uint8_t[]> copy(new uint8_t[size ? size : 1]);
  if (size) std::memcpy(copy.get(), data, size);
  std::unique_ptr<moerun::GgufFile> file;
  try {
    file = moerun::GgufFile::parse(copy.get(), size, "fuzz.gguf");
  } catch (const moerun::Error&) {
    return 0;
  }
  // Everything a consumer might touch: metadata display, every tensor's bytes, the vocabulary.
  const std::string text = moerun::describe_gguf(*file, true);
  volatile size_t sink = text.size();
  for (const moerun::GgufTensorInfo& t : file->tensors()) {
    const auto* p = static_cast<const uint8_t*>(t.view.data);
    if (t.nbytes) sink = sink + p[0] + p[t.nbytes - 1];
  }
  try {
    const moerun::VocabData vocab = moerun::read_vocab(*file);
    sink = sink + vocab.tokens.size();
  } catch (const moerun::Error&) {
  }
  (void)sink;
  return 0;
}
