// Tokenizer data in GGUF: the `tokenizer.ggml.*` keys llama.cpp writes and reads.
#pragma once

#include "io/gguf_file.h"
#include "io/gguf_writer.h"
#include "tokenizer/vocab.h"

namespace moerun {

// Sets llama.cpp's tokenizer keys on `writer` (call before write_header()).
void write_vocab(GgufWriter& writer, const VocabData& vocab);

// Reads and validates the tokenizer keys of `file` (byte-level BPE, model "gpt2" only).
VocabData read_vocab(const GgufFile& file);

}  // namespace moerun
