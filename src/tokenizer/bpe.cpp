// BPE merging with a binary heap of candidate pairs over a linked list of symbols.
#include "tokenizer/bpe.h"

#include <algorithm>
#include <string>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace moerun {
namespace {

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

uint64_t hash_key(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  return k;
}

// One symbol of the word being merged; removed symbols have len 0.
struct Symbol {
  int32_t id;
  int32_t prev;
  int32_t next;
  int32_t len;
};

// A candidate merge of the symbol at `pos` with its right neighbour.
struct Candidate {
  int32_t rank;
  int32_t pos;
  int32_t result;
  bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

// Token text -> id for the `normal` tokens: a flat open-addressing table (std::unordered_map's
// node chasing made building the merge table take ~100 ms for 151k merges).
class TokenIndex {
 public:
  explicit TokenIndex(const VocabData& vocab) : tokens_(vocab.tokens) {
    size_t cap = 16;
    while (cap < vocab.tokens.size() * 2) cap <<= 1;
    slots_.assign(cap, Slot{0, -1});
    mask_ = cap - 1;
    for (size_t i = 0; i < vocab.tokens.size(); ++i) {
      if (i >= vocab.token_types.size() || vocab.token_types[i] != TokenType::normal) continue;
      uint64_t h = hash(vocab.tokens[i]);
      size_t k = h & mask_;
      bool dup = false;
      for (; slots_[k].id >= 0; k = (k + 1) & mask_)
        if (slots_[k].hash == h && tokens_[static_cast<size_t>(slots_[k].id)] == vocab.tokens[i])
          dup = true;  // keep the first (lowest) id of a duplicated text
      if (!dup) slots_[k] = Slot{h, static_cast<int32_t>(i)};
    }
  }
  // The id of `text`, or -1.
  int32_t find(std::string_view text) const {
    uint64_t h = hash(text);
    for (size_t k = h & mask_; slots_[k].id >= 0; k = (k + 1) & mask_)
      if (slots_[k].hash == h && tokens_[static_cast<size_t>(slots_[k].id)] == text)
        return slots_[k].id;
    return -1;
  }

 private:
  struct Slot {
    uint64_t hash;
    int32_t id;
  };
  static uint64_t hash(std::string_view s) {
    uint64_t h = 1469598103934665603ULL;  // FNV-1a
    for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ULL;
    return h ^ (h >> 29);
  }
  const std::vector<std::string>& tokens_;
  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

}  // namespace

BpeModel::BpeModel(const VocabData& vocab) {
  TokenIndex id_of(vocab);
  for (unsigned b = 0; b < 256; ++b) {
    std::string ch;
    append_utf8(byte_to_codepoint(static_cast<uint8_t>(b)), ch);
    int32_t id = id_of.find(ch);
    if (id < 0) fail("tokenizer vocabulary has no token for byte 0x{:02x}", b);
    byte_token_[b] = id;
  }
  size_t cap = 16;
  while (cap < vocab.merges.size() * 2 + 16) cap <<= 1;
  table_.assign(cap, Slot{});
  mask_ = cap - 1;
  std::string joined;
  for (size_t r = 0; r < vocab.merges.size(); ++r) {
    const std::string& m = vocab.merges[r];
    size_t sp = m.find(' ');
    if (sp == std::string::npos) fail("tokenizer merge {} has no space: '{}'", r, m);
    std::string_view left(m.data(), sp), right(m.data() + sp + 1, m.size() - sp - 1);
    joined.assign(left);
    joined.append(right);
    int32_t l = id_of.find(left), rt = id_of.find(right), j = id_of.find(joined);
    if (l < 0 || rt < 0 || j < 0)
      fail("tokenizer merge {} ('{}') names a token that is not in the vocabulary", r, m);
    if (!find_merge(l, rt))  // the first (lowest-rank) occurrence wins
      insert_merge(l, rt, static_cast<int32_t>(r), j);
  }
}

const BpeModel::Slot* BpeModel::find_merge(int32_t left, int32_t right) const {
  uint64_t key = pair_key(left, right);
  for (uint64_t i = hash_key(key) & mask_;; i = (i + 1) & mask_) {
    const Slot& s = table_[i];
    if (s.key == key) return &s;
    if (s.key == ~uint64_t{0}) return nullptr;
  }
}

void BpeModel::insert_merge(int32_t left, int32_t right, int32_t rank, int32_t result) {
  uint64_t key = pair_key(left, right);
  uint64_t i = hash_key(key) & mask_;
  while (table_[i].key != ~uint64_t{0}) i = (i + 1) & mask_;
  table_[i] = Slot{key, rank, result};
}

void BpeModel::encode_piece(std::string_view bytes, std::vector<int32_t>& out) const {
  const size_t n = bytes.size();
  if (n == 1) {
    out.push_back(byte_token_[static_cast<uint8_t>(bytes[0])]);
    return;
  }
  thread_local std::vector<Symbol> sym;
  thread_local std::vector<Candidate> heap;
  sym.resize(n);
  heap.clear();
  for (size_t i = 0; i < n; ++i) {
    sym[i] = Symbol{byte_token_[static_cast<uint8_t>(bytes[i])], static_cast<int32_t>(i) - 1,
                    i + 1 < n ? static_cast<int32_t>(i + 1) : -1, 1};
  }
  auto cmp = std::greater<Candidate>();
  for (size_t i = 0; i + 1 < n; ++i) {
    if (const Slot* s = find_merge(sym[i].id, sym[i + 1].id))
      heap.push_back(Candidate{s->rank, static_cast<int32_t>(i), s->result});
  }
  std::make_heap(heap.begin(), heap.end(), cmp);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), cmp);
    Candidate c = heap.back();
    heap.pop_back();
    Symbol& a = sym[static_cast<size_t>(c.pos)];
    if (a.len == 0 || a.next < 0) continue;
    Symbol& b = sym[static_cast<size_t>(a.next)];
    const Slot* s = find_merge(a.id, b.id);
    if (!s || s->result != c.result || s->rank != c.rank) continue;  // stale candidate
    a.id = c.result;
    a.len += b.len;
    b.len = 0;
    a.next = b.next;
    if (a.next >= 0) sym[static_cast<size_t>(a.next)].prev = c.pos;
    if (a.prev >= 0) {
      const Symbol& p = sym[static_cast<size_t>(a.prev)];
      if (const Slot* m = find_merge(p.id, a.id)) {
        heap.push_back(Candidate{m->rank, a.prev, m->result});
        std::push_heap(heap.begin(), heap.end(), cmp);
      }
    }
    if (a.next >= 0) {
      if (const Slot* m = find_merge(a.id, sym[static_cast<size_t>(a.next)].id)) {
        heap.push_back(Candidate{m->rank, c.pos, m->result});
        std::push_heap(heap.begin(), heap.end(), cmp);
      }
    }
  }
  for (int32_t i = 0; i >= 0; i = sym[static_cast<size_t>(i)].next)
    out.push_back(sym[static_cast<size_t>(i)].id);
}

}  // namespace moerun
