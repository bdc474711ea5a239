// Server-side parsing and validation without a network: body limits and UTF-8, field ranges,
// messages, the API key comparison, tool calls parsed out of scripted model output, and the JSON
// of the statistics endpoints.
#include <gtest/gtest.h>

#include <string>

#include "server/api_error.h"
#include "server/api_key.h"
#include "server/openai_chat.h"
#include "server/request_fields.h"
#include "server/stats_json.h"
#include "tokenizer/tool_call_parser.h"

namespace moerun::server {
namespace {

// Runs `f` and returns the ApiError it throws (fails the test when none).
template <typename F>
ApiError error_of(F f) {
  try {
    f();
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "no ApiError thrown";
  return ApiError(0, "", "");
}

TEST(RequestFields, BodyLimitsUtf8AndJson) {
  RequestLimits limits;
  limits.max_body_bytes = 32;
  EXPECT_EQ(error_of([&] { parse_json_object(std::string(33, ' '), limits); }).status(), 413);
  EXPECT_EQ(error_of([&] { parse_json_object("{\"a\": \"\xff\"}", limits); }).status(), 400);
  const ApiError bad = error_of([&] { parse_json_object("{\"a\": ", limits); });
  EXPECT_EQ(bad.status(), 400);
  EXPECT_NE(std::string(bad.what()).find("not valid JSON"), std::string::npos);
  EXPECT_EQ(error_of([&] { parse_json_object("[1, 2]", limits); }).status(), 400);
  const ojson ok = parse_json_object(R"({"b": 1, "a": 2})", limits);
  EXPECT_EQ(ok.begin().key(), "b");  // order kept
}

TEST(RequestFields, GenerationFieldsAndRanges) {
  RequestLimits limits;
  const GenerationFields g = parse_generation_fields(
      ojson::parse(R"({"temperature": 0, "top_p": 0.5, "top_k": 7, "min_p": 0.1, "seed": -1,
                       "max_tokens": 9, "stop": ["x", "yz"], "presence_penalty": 1.5,
                       "unknown_field": {"ignored": true}})"),
      limits);
  EXPECT_EQ(g.sampling.temperature, 0.0f);
  EXPECT_EQ(g.sampling.top_p, 0.5f);
  EXPECT_EQ(g.sampling.top_k, 7);
  EXPECT_FLOAT_EQ(g.sampling.min_p, 0.1f);
  EXPECT_EQ(g.sampling.seed, ~uint64_t{0});
  EXPECT_EQ(g.max_tokens, 9);
  EXPECT_EQ(g.stop, (std::vector<std::string>{"x", "yz"}));
  EXPECT_FLOAT_EQ(g.sampling.presence_penalty, 1.5f);
  const GenerationFields m = parse_generation_fields(
      ojson::parse(R"({"max_tokens": 9, "max_completion_tokens": 4, "stop": "s"})"), limits);
  EXPECT_EQ(m.max_tokens, 4);
  EXPECT_EQ(m.stop, std::vector<std::string>{"s"});

  for (const char* body :
       {R"({"temperature": 3})", R"({"temperature": "hot"})", R"({"top_p": 0})", R"({"top_k": -1})",
        R"({"max_tokens": 0})", R"({"max_tokens": 1.5})", R"({"stop": 5})", R"({"stop": ["a", 1]})",
        R"({"seed": 1.5})", R"({"frequency_penalty": -2.5})"}) {
    const ApiError e = error_of([&] { parse_generation_fields(ojson::parse(body), limits); });
    EXPECT_EQ(e.status(), 400) << body;
    EXPECT_FALSE(e.param().empty()) << body;
  }
  const ApiError n =
      error_of([&] { parse_generation_fields(ojson::parse(R"({"n": 2})"), limits); });
  EXPECT_EQ(n.param(), "n");
  ojson many = {{"stop", ojson::array()}};
  for (int i = 0; i < 17; ++i) many["stop"].push_back("s" + std::to_string(i));
  EXPECT_EQ(error_of([&] { parse_generation_fields(many, limits); }).status(), 400);
}

TEST(RequestFields, MessagesAreNormalisedAndChecked) {
  RequestLimits limits;
  const ojson m = normalize_messages(ojson::parse(R"([
      {"role": "developer", "content": "be brief"},
      {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
        "function": {"name": "f", "arguments": "{\"x\": 1}"}}]},
      {"role": "tool", "tool_call_id": "c1", "content": "42"}])"),
                                     limits);
  EXPECT_EQ(m[0]["role"], "system");
  EXPECT_EQ(m[1]["content"], "ab");
  EXPECT_TRUE(m[2]["content"].is_null());
  EXPECT_EQ(m[2]["tool_calls"][0]["function"]["name"], "f");
  EXPECT_EQ(m[3]["content"], "42");

  for (const char* bad : {R"([])", R"({"role": "user"})", R"([{"content": "x"}])",
                          R"([{"role": "robot", "content": "x"}])",
                          R"([{"role": "user", "content": [{"type": "image_url"}]}])",
                          R"([{"role": "user", "content": 5}])",
                          R"([{"role": "assistant", "content": "", "tool_calls": [{"id": 1}]}])"}) {
    EXPECT_EQ(error_of([&] { normalize_messages(ojson::parse(bad), limits); }).status(), 400)
        << bad;
  }
  limits.max_messages = 2;
  const ojson three = ojson::parse(
      R"([{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
          {"role": "user", "content": "c"}])");
  EXPECT_EQ(error_of([&] { normalize_messages(three, limits); }).status(), 400);
}

TEST(ApiKey, ConstantTimeCompareAndBearer) {
  EXPECT_TRUE(keys_equal("secret-key", "secret-key"));
  EXPECT_FALSE(keys_equal("secret-kez", "secret-key"));
  EXPECT_FALSE(keys_equal("secret", "secret-key"));
  EXPECT_FALSE(keys_equal("secret-key-longer", "secret-key"));
  EXPECT_FALSE(keys_equal("", ""));  // an empty expected key never matches
  EXPECT_EQ(bearer_token("Bearer abc"), "abc");
  EXPECT_EQ(bearer_token("bearer   abc  "), "abc");
  EXPECT_EQ(bearer_token("Basic abc"), "");
  EXPECT_EQ(bearer_token(""), "");
}

// The parser on scripted model output, as the chat endpoint uses it (any chunking).
TEST(ChatAnswer, ToolCallsAndReasoningFromScriptedOutput) {
  const std::string output =
      "<think>\nI should look it up.\n</think>\n\nLet me check.\n<tool_call>\n{\"name\": "
      "\"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"C\"}}\n</tool_call>";
  for (size_t step : {size_t{1}, size_t{3}, output.size()}) {
    ToolCallParser parser;
    std::vector<ChatOutputEvent> events;
    ChatAnswer answer;
    for (size_t i = 0; i < output.size(); i += step) {
      events.clear();
      parser.feed(std::string_view(output).substr(i, step), events);
      add_chat_events(events, answer);
    }
    events.clear();
    parser.finish(events);
    add_chat_events(events, answer);
    EXPECT_EQ(answer.reasoning, "I should look it up.") << step;
    EXPECT_EQ(answer.content, "Let me check.") << step;
    ASSERT_EQ(answer.tool_calls.size(), 1u) << step;
    const auto& call = answer.tool_calls[0];
    EXPECT_EQ(call["type"], "function");
    EXPECT_EQ(call["function"]["name"], "get_weather");
    EXPECT_EQ(nlohmann::json::parse(call["function"]["arguments"].get<std::string>()),
              nlohmann::json::parse(R"({"city": "Paris", "unit": "C"})"));
    EXPECT_EQ(call["id"].get<std::string>().rfind("call_", 0), 0u);
    const auto msg = chat_message_json(answer);
    EXPECT_EQ(msg["role"], "assistant");
    EXPECT_EQ(msg["reasoning_content"], "I should look it up.");
    EXPECT_EQ(chat_finish_reason(FinishReason::stop, true), "tool_calls");
  }
  EXPECT_EQ(chat_finish_reason(FinishReason::stop, false), "stop");
  EXPECT_EQ(chat_finish_reason(FinishReason::length, true), "length");
  ChatAnswer calls_only;
  calls_only.tool_calls.push_back({{"id", "x"}});
  EXPECT_TRUE(chat_message_json(calls_only)["content"].is_null());
}

TEST(StatsJson, ExpertStatsAndMemoryShapes) {
  ExpertStats stats(2, 4);
  const int32_t ids[] = {0, 1, 1, 3};
  stats.record_routing(0, ids, 4);
  stats.record_hits(0, 1);
  stats.record_cpu(1, 2, 1000);
  stats.record_prediction(0, 3, 4);
  const ExpertStatsSnapshot snap = stats.snapshot();
  const nlohmann::json j = expert_stats_json(&snap);
  EXPECT_TRUE(j["available"]);
  ASSERT_EQ(j["layers"].size(), 2u);
  EXPECT_EQ(j["layers"][0]["routed"], 4);
  EXPECT_DOUBLE_EQ(j["layers"][0]["hit_rate"].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(j["layers"][0]["prefetch_accuracy"].get<double>(), 0.75);
  EXPECT_EQ(j["layers"][0]["usage"], nlohmann::json::parse("[1, 2, 0, 1]"));
  EXPECT_EQ(j["layers"][1]["bytes_cpu_read"], 1000);
  EXPECT_EQ(j["totals"]["routed"], 4);
  EXPECT_FALSE(expert_stats_json(nullptr)["available"]);

  MemoryReport r;
  r.host_rss_bytes = 5;
  r.vram_categories.push_back({"experts", 7});
  const nlohmann::json m = memory_json(r);
  EXPECT_EQ(m["host"]["rss_bytes"], 5);
  EXPECT_EQ(m["vram"]["budget_bytes"], 0);
  EXPECT_EQ(m["vram"]["categories"]["experts"], 7);
}

}  // namespace
}  // namespace moerun::server
