#include "engine/token_text_stream.h"

#include <algorithm>

#include "tokenizer/tokenizer.h"

namespace moerun {

TokenTextStream::TokenTextStream(const Tokenizer* tokenizer, std::vector<std::string> stop_strings,
                                 std::vector<int32_t> stop_tokens)
    : stop_tokens_(std::move(stop_tokens)), stops_(std::move(stop_strings)) {
  if (tokenizer) decoder_ = std::make_unique<StreamingDecoder>(*tokenizer);
}

TokenVerdict TokenTextStream::push(int32_t id, std::string& text) {
  if (std::find(stop_tokens_.begin(), stop_tokens_.end(), id) != stop_tokens_.end()) {
    return TokenVerdict::stop_token;
  }
  if (!decoder_) return TokenVerdict::keep;
  text += stops_.push(decoder_->push(id));
  return stops_.stopped() ? TokenVerdict::stop_string : TokenVerdict::keep;
}

void TokenTextStream::finish(std::string& text) {
  if (!decoder_ || stops_.stopped()) return;
  text += stops_.push(decoder_->flush());
  text += stops_.flush();
}

}  // namespace moerun
