// Tokenizer speed: single-thread encode MB/s on English prose and on code, and load times of
// tokenizer.json (load_hf_vocab + building the tokenizer) and of a Tokenizer from VocabData (the
// part of GGUF loading that happens after the metadata is read).
//
// Inputs: English prose = the license texts in /usr/share/common-licenses (Debian), code = the
// repository's own src/**/*.{cpp,h}; each repeated to 2 MiB. Tokenizer: $MOERUN_TOKENIZER_DIR or
// ~/.cache/moerun/tokenizer-qwen3.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "core/paths.h"
#include "io/gguf_file.h"
#include "io/gguf_vocab.h"
#include "io/gguf_writer.h"
#include "tokenizer/tokenizer.h"

namespace {

namespace fs = std::filesystem;

std::string tokenizer_dir() {
  if (const char* d = std::getenv("MOERUN_TOKENIZER_DIR"); d && *d) return d;
  return moerun::default_tokenizer_dir();
}

const moerun::Tokenizer& tokenizer() {
  static const moerun::Tokenizer tok = moerun::Tokenizer::from_hf_dir(tokenizer_dir());
  return tok;
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Concatenates the regular files under `dir` whose extension is in `exts` (all when empty),
// repeated up to `size` bytes.
std::string gather(const fs::path& dir, const std::vector<std::string>& exts, size_t size) {
  std::string all;
  if (fs::exists(dir)) {
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
      if (!e.is_regular_file()) continue;
      if (!exts.empty() &&
          std::find(exts.begin(), exts.end(), e.path().extension().string()) == exts.end())
        continue;
      all += read_file(e.path());
    }
  }
  if (all.empty()) all = "The quick brown fox jumps over the lazy dog. ";
  std::string out;
  while (out.size() < size) out += all;
  out.resize(size);
  return out;
}

void encode_bench(benchmark::State& state, const std::string& text) {
  const moerun::Tokenizer& tok = tokenizer();
  size_t n_tokens = 0;
  for (auto _ : state) {
    std::vector<int32_t> ids = tok.encode(text, moerun::SpecialTokens::as_text);
    n_tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["bytes_per_token"] =
      static_cast<double>(text.size()) / static_cast<double>(n_tokens);
}

void BM_EncodeEnglishProse(benchmark::State& state) {
  static const std::string text = gather("/usr/share/common-licenses", {}, 2 << 20);
  encode_bench(state, text);
}
BENCHMARK(BM_EncodeEnglishProse)->Unit(benchmark::kMillisecond);

void BM_EncodeCode(benchmark::State& state) {
  static const std::string text =
      gather(fs::path(MOERUN_SOURCE_DIR) / "src", {".cpp", ".h", ".cu", ".cuh"}, 2 << 20);
  encode_bench(state, text);
}
BENCHMARK(BM_EncodeCode)->Unit(benchmark::kMillisecond);

void BM_LoadTokenizerJson(benchmark::State& state) {
  for (auto _ : state) {
    moerun::Tokenizer tok = moerun::Tokenizer::from_hf_dir(tokenizer_dir());
    benchmark::DoNotOptimize(tok.n_vocab());
  }
}
BENCHMARK(BM_LoadTokenizerJson)->Unit(benchmark::kMillisecond)->Iterations(5);

void BM_LoadHfVocabOnly(benchmark::State& state) {
  for (auto _ : state) {
    moerun::VocabData v = moerun::load_hf_vocab(tokenizer_dir());
    benchmark::DoNotOptimize(v.tokens.data());
  }
}
BENCHMARK(BM_LoadHfVocabOnly)->Unit(benchmark::kMillisecond)->Iterations(5);

void BM_BuildFromVocabData(benchmark::State& state) {
  static const moerun::VocabData vocab = moerun::load_hf_vocab(tokenizer_dir(), 151936);
  for (auto _ : state) {
    moerun::Tokenizer tok(vocab);
    benchmark::DoNotOptimize(tok.n_vocab());
  }
}
BENCHMARK(BM_BuildFromVocabData)->Unit(benchmark::kMillisecond)->Iterations(5);

// The GGUF route as `moerun` takes it for a model file: open and validate the file, read the
// tokenizer metadata, build the tokenizer. The file holds the real vocabulary and no tensors.
void BM_LoadFromGgufMetadata(benchmark::State& state) {
  static const std::string path = [] {
    const std::string p = (fs::temp_directory_path() / "moerun_bench_vocab.gguf").string();
    moerun::GgufWriter w(p);
    moerun::write_vocab(w, moerun::load_hf_vocab(tokenizer_dir(), 151936));
    w.write_header();
    w.finish();
    return p;
  }();
  for (auto _ : state) {
    const auto file = moerun::GgufFile::open(path);
    moerun::Tokenizer tok(moerun::read_vocab(*file));
    benchmark::DoNotOptimize(tok.n_vocab());
  }
}
BENCHMARK(BM_LoadFromGgufMetadata)->Unit(benchmark::kMillisecond)->Iterations(5);

}  // namespace

BENCHMARK_MAIN();
