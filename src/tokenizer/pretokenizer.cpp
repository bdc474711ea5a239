// Pre-tokenizer regexes and their PCRE2 compilation.
//
// Hugging Face runs the pattern with Rust's `regex` (fancy-regex for look-arounds), where `\s` is
// the Unicode White_Space property. PCRE2's `\s` under UCP also matches U+180E, so the PCRE2
// pattern spells White_Space out as an explicit class; everything else is the tokenizer.json
// pattern unchanged.
#include "tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/error.h"

namespace moerun {
namespace {

// Unicode White_Space, as Rust's regex `\s` matches it.
#define MOERUN_WS                                                                             \
  "\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}" \
  "\\x{205F}\\x{3000}"

struct PreEntry {
  const char* name;
  std::string hf_regex;     // as tokenizer.json writes it
  std::string pcre2_regex;  // the same language for PCRE2
};

const std::vector<PreEntry>& pre_table() {
  static const std::vector<PreEntry> table = {
      {"qwen2",
       "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
       "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
       "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
       "?[^" MOERUN_WS "\\p{L}\\p{N}]+[\\r\\n]*|[" MOERUN_WS "]*[\\r\\n]+|[" MOERUN_WS
       "]+(?![^" MOERUN_WS "])|[" MOERUN_WS "]+"},
  };
  return table;
}

const PreEntry& find_pre(std::string_view pre) {
  for (const PreEntry& e : pre_table())
    if (pre == e.name) return e;
  fail("unknown pre-tokenizer '{}' (tokenizer.ggml.pre); moerun knows: qwen2", pre);
}

}  // namespace

const std::string& hf_regex_for_pre(std::string_view pre) {
  return find_pre(pre).hf_regex;
}

std::string pre_name_for_regex(std::string_view regex) {
  for (const PreEntry& e : pre_table())
    if (regex == e.hf_regex) return e.name;
  return "";
}

PreTokenizer::PreTokenizer(std::string_view pre) {
  const PreEntry& e = find_pre(pre);
  int err = 0;
  PCRE2_SIZE err_off = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(e.pcre2_regex.data()), e.pcre2_regex.size(),
                    PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &err_off, nullptr);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail("pre-tokenizer '{}': PCRE2 compile error at {}: {}", pre, err_off,
         reinterpret_cast<const char*>(msg));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter when JIT is absent
  code_ = code;
}

PreTokenizer::~PreTokenizer() {
  pcre2_code_free(static_cast<pcre2_code*>(code_));
}

void PreTokenizer::split(std::string_view text, std::vector<PieceSpan>& out) const {
  if (text.empty()) return;
  MOERUN_CHECK(text.size() < (uint64_t{1} << 32));
  auto* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
  MOERUN_CHECK(md != nullptr);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  size_t last_end = 0;
  while (pos < text.size()) {
    int rc = pcre2_match(code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(md);
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      fail("pre-tokenizer: PCRE2 match error: {}", reinterpret_cast<const char*>(msg));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t b = ov[0], e = ov[1];
    if (b > last_end) out.push_back({static_cast<uint32_t>(last_end), static_cast<uint32_t>(b)});
    if (e > b) {
      out.push_back({static_cast<uint32_t>(b), static_cast<uint32_t>(e)});
      pos = e;
    } else {  // empty match (cannot happen with the known patterns): step one character
      pos = b + 1;
      while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
    }
    last_end = std::max(last_end, e);
  }
  if (last_end < text.size())
    out.push_back({static_cast<uint32_t>(last_end), static_cast<uint32_t>(text.size())});
  pcre2_match_data_free(md);
}

}  // namespace moerun
