// StreamingDecoder: emit the longest complete UTF-8 prefix, keep the rest.
#include "tokenizer/streaming_decoder.h"

#include "tokenizer/utf8.h"

namespace moerun {

std::string StreamingDecoder::push(int32_t id) {
  if (!render_control_ && tok_->is_control(id)) return {};
  pending_.append(tok_->token_bytes(id));
  size_t done = utf8_complete_prefix(pending_);
  if (done == 0) return {};
  std::string out = repair_utf8(std::string_view(pending_).substr(0, done));
  pending_.erase(0, done);
  return out;
}

std::string StreamingDecoder::flush() {
  std::string out = repair_utf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace moerun
