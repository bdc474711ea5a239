#include "server/openai_completions.h"

#include <fmt/format.h>

#include "server/api_error.h"
#include "server/response_parts.h"
#include "tokenizer/tokenizer.h"

namespace moerun::server {
namespace {

using json = nlohmann::json;

std::vector<int32_t> token_array(const ojson& a, int64_t vocab) {
  std::vector<int32_t> ids;
  for (const ojson& v : a) {
    if (!v.is_number_integer()) throw bad_request("a token-id prompt must hold integers", "prompt");
    const int64_t id =
        v.is_number_unsigned()
            ? static_cast<int64_t>(std::min<uint64_t>(v.get<uint64_t>(), uint64_t{1} << 40))
            : v.get<int64_t>();
    if (id < 0 || id >= vocab) {
      throw bad_request(fmt::format("token id {} is outside the vocabulary [0, {})", id, vocab),
                        "prompt");
    }
    ids.push_back(static_cast<int32_t>(id));
  }
  return ids;
}

}  // namespace

std::vector<int32_t> parse_prompt(const ojson& body, const ServerContext& ctx) {
  auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) throw bad_request("'prompt' is required", "prompt");
  const ojson* p = &*it;
  if (p->is_array() && p->size() == 1 && ((*p)[0].is_string() || (*p)[0].is_array())) p = &(*p)[0];
  if (p->is_string()) {
    if (!ctx.tokenizer) throw bad_request("this model has no tokenizer: give token ids", "prompt");
    return ctx.tokenizer->encode(p->get_ref<const std::string&>(), SpecialTokens::as_text);
  }
  if (p->is_array()) {
    if (!p->empty() && !(*p)[0].is_number_integer()) {
      throw bad_request("one prompt per request: a string or an array of token ids", "prompt");
    }
    return token_array(*p, ctx.model.vocab);
  }
  throw bad_request("'prompt' must be a string or an array of token ids", "prompt");
}

CompletionRequest parse_completion_request(const ojson& body, const ServerContext& ctx) {
  require_served_model(body, ctx);
  if (bool_field(body, "echo").value_or(false)) {
    throw bad_request("'echo' is not supported", "echo");
  }
  if (auto suffix = string_field(body, "suffix"); suffix && !suffix->empty()) {
    throw bad_request("'suffix' is not supported", "suffix");
  }
  const GenerationFields fields = parse_generation_fields(body, ctx.limits);
  CompletionRequest r;
  r.engine = make_engine_request(parse_prompt(body, ctx), fields, body, ctx);
  if (auto lp = integer_field(body, "logprobs", 0, kMaxTopLogprobs)) {
    r.engine.logprobs = true;
    r.engine.top_logprobs = static_cast<int32_t>(*lp);
  }
  r.stream = bool_field(body, "stream").value_or(false);
  if (auto so = body.find("stream_options"); so != body.end() && so->is_object()) {
    r.include_usage = bool_field(*so, "include_usage").value_or(false);
  }
  return r;
}

CompletionRequest parse_generate_request(const ojson& body, const ServerContext& ctx) {
  const GenerationFields fields = parse_generation_fields(body, ctx.limits);
  CompletionRequest r;
  r.engine = make_engine_request(parse_prompt(body, ctx), fields, body, ctx);
  r.engine.logprobs = bool_field(body, "logprobs").value_or(false);
  if (auto top = integer_field(body, "top_logprobs", 0, kMaxTopLogprobs)) {
    r.engine.logprobs = true;
    r.engine.top_logprobs = static_cast<int32_t>(*top);
  }
  r.stream = bool_field(body, "stream").value_or(false);
  return r;
}

namespace {

// Legacy completion objects: text, and logprobs as parallel arrays.
class CompletionFormatter : public ResponseFormatter {
 public:
  CompletionFormatter(const ServerContext& ctx, const CompletionRequest& r)
      : tokenizer_(ctx.tokenizer),
        model_(ctx.model_alias),
        id_(random_id("cmpl-")),
        created_(unix_now()),
        logprobs_(r.engine.logprobs),
        include_usage_(r.include_usage) {}

  void stream(const EngineEvent& e, std::string& out) override {
    json lp = nullptr;
    if (e.kind == EngineEvent::token && logprobs_) {
      lp = empty_logprobs();
      add_logprob(e, lp, 0);
    }
    if (!e.text.empty() || !lp.is_null()) out += sse_data(chunk(e.text, lp, nullptr));
    if (e.kind != EngineEvent::done) return;
    out += sse_data(chunk("", nullptr, e.finish == FinishReason::length ? "length" : "stop"));
    if (include_usage_) {
      json u = base();
      u["choices"] = json::array();
      u["usage"] = usage_json(e.usage);
      out += sse_data(u);
    }
    out += "data: [DONE]\n\n";
  }

  void collect(const EngineEvent& e) override {
    if (e.kind == EngineEvent::token && logprobs_) add_logprob(e, logprobs_json_, text_.size());
    text_ += e.text;
    if (e.kind == EngineEvent::done) {
      finish_ = e.finish;
      usage_ = e.usage;
    }
  }

  std::string body() override {
    json b = base();
    b["choices"] =
        json::array({{{"index", 0},
                      {"text", text_},
                      {"logprobs", logprobs_ ? logprobs_json_ : json(nullptr)},
                      {"finish_reason", finish_ == FinishReason::length ? "length" : "stop"}}});
    b["usage"] = usage_json(usage_);
    b["timings"] = timings_json(usage_);
    return dump_json(b);
  }

 private:
  static json empty_logprobs() {
    return {{"tokens", json::array()},
            {"token_logprobs", json::array()},
            {"top_logprobs", json::array()},
            {"text_offset", json::array()}};
  }
  void add_logprob(const EngineEvent& e, json& lp, size_t offset) const {
    lp["tokens"].push_back(token_piece(tokenizer_, e.sampled.id));
    lp["token_logprobs"].push_back(e.sampled.logprob);
    json top = json::object();
    for (const TokenLogprob& t : e.top) top[token_piece(tokenizer_, t.id)] = t.logprob;
    lp["top_logprobs"].push_back(top);
    lp["text_offset"].push_back(offset);
  }
  json base() const {
    return {{"id", id_},
            {"object", "text_completion"},
            {"created", created_},
            {"model", model_},
            {"system_fingerprint", kSystemFingerprint}};
  }
  json chunk(const std::string& text, json lp, const char* finish) const {
    json c = base();
    c["choices"] = json::array({{{"index", 0},
                                 {"text", text},
                                 {"logprobs", std::move(lp)},
                                 {"finish_reason", finish ? json(finish) : json(nullptr)}}});
    if (include_usage_) c["usage"] = nullptr;
    return c;
  }

  const Tokenizer* tokenizer_;
  std::string model_, id_;
  int64_t created_;
  bool logprobs_, include_usage_;
  std::string text_;
  json logprobs_json_ = empty_logprobs();
  FinishReason finish_ = FinishReason::stop;
  RequestUsage usage_;
};

// /api/v1/generate: one flat object with everything moerun knows about the run.
class GenerateFormatter : public ResponseFormatter {
 public:
  GenerateFormatter(const ServerContext& ctx, const CompletionRequest& r)
      : tokenizer_(ctx.tokenizer), id_(random_id("gen-")), logprobs_(r.engine.logprobs) {}

  void stream(const EngineEvent& e, std::string& out) override {
    collect(e);  // the final event repeats everything
    if (e.kind == EngineEvent::token) {
      json ev = {{"text", e.text}, {"token", e.sampled.id}};
      if (logprobs_) ev["logprob"] = logprob_entry(e);
      out += sse_data(ev);
      return;
    }
    json last = result();
    last["done"] = true;
    out += sse_data(last);
    out += "data: [DONE]\n\n";
  }

  void collect(const EngineEvent& e) override {
    text_ += e.text;
    if (e.kind == EngineEvent::token) {
      tokens_.push_back(e.sampled.id);
      if (logprobs_) logprobs_json_.push_back(logprob_entry(e));
    } else {
      finish_ = e.finish;
      usage_ = e.usage;
    }
  }

  std::string body() override { return dump_json(result()); }

 private:
  json logprob_entry(const EngineEvent& e) const {
    json top = json::array();
    for (const TokenLogprob& t : e.top) {
      top.push_back(
          {{"token", t.id}, {"text", token_piece(tokenizer_, t.id)}, {"logprob", t.logprob}});
    }
    return {{"token", e.sampled.id}, {"logprob", e.sampled.logprob}, {"top", std::move(top)}};
  }
  json result() const {
    json r = {{"id", id_},
              {"text", text_},
              {"tokens", tokens_},
              {"finish_reason", finish_reason_name(finish_)},
              {"usage", usage_json(usage_)},
              {"timings", timings_json(usage_)}};
    if (logprobs_) r["logprobs"] = logprobs_json_;
    return r;
  }

  const Tokenizer* tokenizer_;
  std::string id_;
  bool logprobs_;
  std::string text_;
  std::vector<int32_t> tokens_;
  json logprobs_json_ = json::array();
  FinishReason finish_ = FinishReason::stop;
  RequestUsage usage_;
};

}  // namespace

std::shared_ptr<ResponseFormatter> make_completion_formatter(const ServerContext& ctx,
                                                             const CompletionRequest& request) {
  return std::make_shared<CompletionFormatter>(ctx, request);
}

std::shared_ptr<ResponseFormatter> make_generate_formatter(const ServerContext& ctx,
                                                           const CompletionRequest& request) {
  return std::make_shared<GenerateFormatter>(ctx, request);
}

}  // namespace moerun::server
