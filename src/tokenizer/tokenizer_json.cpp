// parse_tokenizer_json: a recursive-descent JSON parser (RFC 8259) with two fast paths.
#include "tokenizer/tokenizer_json.h"

#include <charconv>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace moerun {
namespace {

constexpr int kMaxDepth = 256;

class Parser {
 public:
  Parser(std::string_view text, const std::string& path) : s_(text), path_(path) {}

  TokenizerJson run() {
    TokenizerJson out;
    out_ = &out;
    skip_ws();
    out.rest = value(0, Where::top);
    skip_ws();
    if (i_ != s_.size()) error("trailing characters after the JSON value");
    return out;
  }

 private:
  enum class Where { top, model, other };

  [[noreturn]] void error(const char* what) const {
    fail("{}: invalid JSON at byte {}: {}", path_, i_, what);
  }

  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t'))
      ++i_;
  }

  void expect(char c) {
    skip_ws();
    if (i_ >= s_.size() || s_[i_] != c) error("unexpected character");
    ++i_;
  }

  unsigned hex4() {
    if (i_ + 4 > s_.size()) error("truncated \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; ++k) {
      char c = s_[i_++];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f')
        v |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        v |= static_cast<unsigned>(c - 'A' + 10);
      else
        error("bad hex digit in \\u escape");
    }
    return v;
  }

  // Parses a string (the opening quote at i_) into `out`.
  void string_into(std::string& out) {
    if (i_ >= s_.size() || s_[i_] != '"') error("expected a string");
    ++i_;
    out.clear();
    for (;;) {
      size_t j = i_;
      while (j < s_.size() && s_[j] != '"' && s_[j] != '\\' &&
             static_cast<unsigned char>(s_[j]) >= 0x20)
        ++j;
      out.append(s_.data() + i_, j - i_);
      i_ = j;
      if (i_ >= s_.size()) error("unterminated string");
      char c = s_[i_++];
      if (c == '"') break;
      if (c != '\\') error("control character in string");
      if (i_ >= s_.size()) error("unterminated escape");
      char e = s_[i_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (i_ + 2 > s_.size() || s_[i_] != '\\' || s_[i_ + 1] != 'u')
              error("lone high surrogate");
            i_ += 2;
            unsigned lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) error("bad low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            error("lone low surrogate");
          }
          append_utf8(cp, out);
          break;
        }
        default:
          error("bad escape");
      }
    }
    if (!is_valid_utf8(out)) error("string is not valid UTF-8");
  }

  nlohmann::json number() {
    size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    bool is_float = false;
    while (i_ < s_.size()) {
      char c = s_[i_];
      if (c >= '0' && c <= '9') {
        ++i_;
      } else if (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
        is_float = true;
        ++i_;
      } else {
        break;
      }
    }
    std::string_view num = s_.substr(start, i_ - start);
    if (num.empty() || num == "-") error("bad number");
    if (!is_float) {
      int64_t v = 0;
      auto r = std::from_chars(num.data(), num.data() + num.size(), v);
      if (r.ec == std::errc() && r.ptr == num.data() + num.size()) return v;
    }
    // Floats and out-of-range integers: let nlohmann apply the JSON grammar strictly.
    nlohmann::json j = nlohmann::json::parse(num, nullptr, false);
    if (j.is_discarded() || !j.is_number()) error("bad number");
    return j;
  }

  void literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) error("unexpected literal");
    i_ += word.size();
  }

  // model.vocab: {"token": id, ...}
  void vocab_object() {
    expect('{');
    out_->has_vocab = true;
    out_->vocab.reserve(1 << 17);
    skip_ws();
    if (i_ < s_.size() && s_[i_] == '}') {
      ++i_;
      return;
    }
    std::string key;
    for (;;) {
      skip_ws();
      string_into(key);
      expect(':');
      skip_ws();
      nlohmann::json v = number();
      if (!v.is_number_integer()) error("model.vocab ids must be integers");
      out_->vocab.emplace_back(key, v.get<int64_t>());
      skip_ws();
      if (i_ < s_.size() && s_[i_] == ',') {
        ++i_;
        continue;
      }
      expect('}');
      return;
    }
  }

  // model.merges: ["a b", ...] or [["a", "b"], ...]
  void merges_array() {
    expect('[');
    out_->has_merges = true;
    out_->merges.reserve(1 << 17);
    skip_ws();
    if (i_ < s_.size() && s_[i_] == ']') {
      ++i_;
      return;
    }
    std::string a, b;
    for (;;) {
      skip_ws();
      if (i_ < s_.size() && s_[i_] == '[') {
        ++i_;
        skip_ws();
        string_into(a);
        expect(',');
        skip_ws();
        string_into(b);
        expect(']');
        out_->merges.push_back(a + " " + b);
      } else {
        if (i_ >= s_.size() || s_[i_] != '"')
          fail("{}: merge at byte {} is neither \"a b\" nor [\"a\", \"b\"]", path_, i_);
        string_into(a);
        if (a.find(' ') == std::string::npos)
          fail("{}: merge \"{}\" has no space between its two parts", path_, a);
        out_->merges.push_back(a);
      }
      skip_ws();
      if (i_ < s_.size() && s_[i_] == ',') {
        ++i_;
        continue;
      }
      expect(']');
      return;
    }
  }

  nlohmann::json value(int depth, Where where) {
    if (depth > kMaxDepth) error("nesting too deep");
    skip_ws();
    if (i_ >= s_.size()) error("unexpected end of input");
    char c = s_[i_];
    if (c == '{') {
      ++i_;
      nlohmann::json obj = nlohmann::json::object();
      skip_ws();
      if (i_ < s_.size() && s_[i_] == '}') {
        ++i_;
        return obj;
      }
      std::string key;
      for (;;) {
        skip_ws();
        string_into(key);
        expect(':');
        skip_ws();
        Where child = where == Where::top && key == "model" ? Where::model : Where::other;
        if (where == Where::model && key == "vocab" && i_ < s_.size() && s_[i_] == '{') {
          vocab_object();
        } else if (where == Where::model && key == "merges" && i_ < s_.size() && s_[i_] == '[') {
          merges_array();
        } else {
          obj[key] = value(depth + 1, child);
        }
        skip_ws();
        if (i_ < s_.size() && s_[i_] == ',') {
          ++i_;
          continue;
        }
        expect('}');
        return obj;
      }
    }
    if (c == '[') {
      ++i_;
      nlohmann::json arr = nlohmann::json::array();
      skip_ws();
      if (i_ < s_.size() && s_[i_] == ']') {
        ++i_;
        return arr;
      }
      for (;;) {
        arr.push_back(value(depth + 1, Where::other));
        skip_ws();
        if (i_ < s_.size() && s_[i_] == ',') {
          ++i_;
          continue;
        }
        expect(']');
        return arr;
      }
    }
    if (c == '"') {
      std::string str;
      string_into(str);
      return str;
    }
    if (c == 't') {
      literal("true");
      return true;
    }
    if (c == 'f') {
      literal("false");
      return false;
    }
    if (c == 'n') {
      literal("null");
      return nullptr;
    }
    return number();
  }

  std::string_view s_;
  const std::string& path_;
  size_t i_ = 0;
  TokenizerJson* out_ = nullptr;
};

}  // namespace

TokenizerJson parse_tokenizer_json(std::string_view text, const std::string& path) {
  return Parser(text, path).run();
}

}  // namespace moerun
