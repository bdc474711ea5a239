// Tokenizer: added-token splitting, normalisation, pre-tokenization, BPE, and decoding.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <unordered_map>

#include <utf8proc.h>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace moerun {
namespace {

// NFC of valid UTF-8 `text`. Text whose code points are all below U+0300 is already NFC (nothing
// there decomposes or composes), which covers ASCII and Latin-1 without calling utf8proc.
std::string_view nfc(std::string_view text, std::string& storage) {
  bool simple = true;
  for (char c : text)
    if (static_cast<unsigned char>(c) >= 0xCC) {
      simple = false;
      break;
    }
  if (simple) return text;
  utf8proc_uint8_t* res = nullptr;
  utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                   static_cast<utf8proc_ssize_t>(text.size()), &res,
                   static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) {  // cannot happen for valid UTF-8 except out of memory; keep the text unchanged
    return text;
  }
  storage.assign(reinterpret_cast<const char*>(res), static_cast<size_t>(n));
  std::free(res);
  return storage;
}

// Transparent string hash so the piece cache can be probed with a string_view.
struct PieceHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// Per-thread cache of BPE results for short pieces (most words recur); owned by one tokenizer at a
// time (identified by a serial number, so a new tokenizer at a reused address never sees stale
// ids).
struct PieceCache {
  uint64_t owner = 0;
  std::unordered_map<std::string, std::vector<int32_t>, PieceHash, std::equal_to<>> map;
};
constexpr size_t kCacheMaxPiece = 48;  // bytes
constexpr size_t kCacheMaxEntries = 1 << 16;

std::atomic<uint64_t> g_tokenizer_serial{0};

}  // namespace

Tokenizer::Tokenizer(VocabData vocab) : vocab_(std::move(vocab)), serial_(++g_tokenizer_serial) {
  if (vocab_.model != "gpt2")
    fail("tokenizer model '{}' is not supported (only gpt2 byte-level BPE)", vocab_.model);
  if (vocab_.token_types.size() != vocab_.tokens.size())
    fail("tokenizer has {} tokens but {} token types", vocab_.tokens.size(),
         vocab_.token_types.size());
  auto check_id = [&](int32_t id, const char* what) {
    if (id < -1 || id >= static_cast<int32_t>(vocab_.tokens.size()))
      fail("tokenizer {} id {} is outside the vocabulary of {}", what, id, vocab_.tokens.size());
  };
  check_id(vocab_.bos_id, "bos");
  check_id(vocab_.eos_id, "eos");
  check_id(vocab_.pad_id, "pad");
  pre_ = std::make_unique<PreTokenizer>(vocab_.pre);
  bpe_ = std::make_unique<BpeModel>(vocab_);
  bytes_.resize(vocab_.tokens.size());
  for (size_t i = 0; i < vocab_.tokens.size(); ++i) {
    const std::string& t = vocab_.tokens[i];
    switch (vocab_.token_types[i]) {
      case TokenType::normal: {
        auto b = byte_level_to_bytes(t);
        bytes_[i] = b ? std::move(*b) : t;  // a token outside the byte map decodes as its text
        break;
      }
      case TokenType::control:
      case TokenType::user_defined:
        bytes_[i] = t;
        if (!t.empty()) added_.push_back(AddedToken{t, static_cast<int32_t>(i)});
        break;
      default:
        break;
    }
  }
  std::stable_sort(added_.begin(), added_.end(), [](const AddedToken& a, const AddedToken& b) {
    return a.text.size() > b.text.size();
  });
  for (size_t i = 0; i < added_.size(); ++i)
    added_by_byte_[static_cast<uint8_t>(added_[i].text[0])].push_back(static_cast<uint32_t>(i));
}

Tokenizer Tokenizer::from_hf_dir(const std::string& dir) {
  return Tokenizer(load_hf_vocab(dir));
}

void Tokenizer::encode_plain(std::string_view text, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  std::string storage;
  std::string_view norm = nfc(text, storage);
  thread_local std::vector<PieceSpan> pieces;
  pieces.clear();
  pre_->split(norm, pieces);
  thread_local PieceCache cache;
  if (cache.owner != serial_) {
    cache.map.clear();
    cache.owner = serial_;
  }
  for (const PieceSpan& p : pieces) {
    std::string_view piece = norm.substr(p.begin, p.end - p.begin);
    if (piece.size() == 1 || piece.size() > kCacheMaxPiece) {
      bpe_->encode_piece(piece, out);
      continue;
    }
    if (auto it = cache.map.find(piece); it != cache.map.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      continue;
    }
    size_t before = out.size();
    bpe_->encode_piece(piece, out);
    if (cache.map.size() >= kCacheMaxEntries) cache.map.clear();
    cache.map.emplace(
        std::string(piece),
        std::vector<int32_t>(out.begin() + static_cast<std::ptrdiff_t>(before), out.end()));
  }
}

template <typename MayMatch>
void Tokenizer::encode_with_added(std::string_view text, MayMatch may_match,
                                  std::vector<int32_t>& out) const {
  size_t start = 0;  // beginning of the plain text not yet encoded
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    const auto& cands = added_by_byte_[static_cast<uint8_t>(text[i])];
    const AddedToken* hit = nullptr;
    for (uint32_t k : cands) {  // longest first: leftmost-longest match
      const AddedToken& a = added_[k];
      if (text.compare(i, a.text.size(), a.text) == 0 && may_match(i, i + a.text.size())) {
        hit = &a;
        break;
      }
    }
    if (!hit) {
      ++i;
      continue;
    }
    encode_plain(text.substr(start, i - start), out);
    out.push_back(hit->id);
    i += hit->text.size();
    start = i;
  }
  encode_plain(text.substr(start), out);
}

void Tokenizer::encode(std::string_view text, SpecialTokens special,
                       std::vector<int32_t>& out) const {
  std::string repaired;
  if (!is_valid_utf8(text)) {
    repaired = repair_utf8(text);
    text = repaired;
  }
  if (special == SpecialTokens::as_text || added_.empty()) {
    encode_plain(text, out);
  } else {
    encode_with_added(
        text, [](size_t, size_t) { return true; }, out);
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, SpecialTokens special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  encode(text, special, out);
  return out;
}

std::vector<int32_t> Tokenizer::encode(const MarkedText& marked) const {
  std::vector<int32_t> out;
  std::string_view text = marked.text;
  std::vector<TextRange> trusted = marked.trusted;
  std::string repaired;
  if (!is_valid_utf8(text)) {  // repairing moves bytes: only the formatter's ASCII markup is safe
    repaired = repair_utf8(text);
    text = repaired;
    trusted.clear();
  }
  // Merge touching ranges so that a token spanning two adjacent trusted pieces still matches.
  std::vector<TextRange> merged;
  for (const TextRange& r : trusted) {
    if (!merged.empty() && r.begin <= merged.back().end)
      merged.back().end = std::max(merged.back().end, r.end);
    else
      merged.push_back(r);
  }
  encode_with_added(
      text,
      [&](size_t b, size_t e) {
        auto it = std::upper_bound(merged.begin(), merged.end(), b,
                                   [](size_t v, const TextRange& r) { return v < r.begin; });
        if (it == merged.begin()) return false;
        --it;
        return b >= it->begin && e <= it->end;
      },
      out);
  return out;
}

std::string_view Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= n_vocab()) return {};
  return bytes_[static_cast<size_t>(id)];
}

bool Tokenizer::is_control(int32_t id) const {
  return id >= 0 && id < n_vocab() &&
         vocab_.token_types[static_cast<size_t>(id)] == TokenType::control;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool render_control) const {
  std::string out;
  for (int32_t id : ids) {
    if (!render_control && is_control(id)) continue;
    out.append(token_bytes(id));
  }
  return out;
}

int32_t Tokenizer::find_token(std::string_view text) const {
  for (const AddedToken& a : added_)
    if (a.text == text) return a.id;
  std::string bl = bytes_to_byte_level(text);
  for (size_t i = 0; i < vocab_.tokens.size(); ++i)
    if (vocab_.token_types[i] == TokenType::normal && vocab_.tokens[i] == bl)
      return static_cast<int32_t>(i);
  return -1;
}

}  // namespace moerun
