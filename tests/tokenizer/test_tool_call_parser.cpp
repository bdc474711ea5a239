// ToolCallParser: reasoning, content and tool calls out of Qwen3 output, whatever the chunking.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "tokenizer/tool_call_parser.h"

namespace moerun {
namespace {

using Events = std::vector<ChatOutputEvent>;

Events parse_chunked(const std::string& text, size_t chunk, bool in_reasoning = false) {
  ToolCallParser p(in_reasoning);
  Events ev;
  for (size_t i = 0; i < text.size(); i += chunk)
    p.feed(std::string_view(text).substr(i, chunk), ev);
  p.finish(ev);
  return ev;
}

std::string describe(const Events& ev) {
  std::string s;
  for (const auto& e : ev)
    s += std::to_string(e.kind) + "[" + e.text + "|" + e.name + "|" + e.arguments + "|" + e.error +
         "]";
  return s;
}

const std::string kOutput =
    "<think>\nThe user wants weather.\n</think>\n\nLet me check.\n<tool_call>\n{\"name\": "
    "\"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": [1, 2]}}\n</tool_call>\n"
    "<tool_call>\n{\"name\": \"search\", \"arguments\": \"{\\\"q\\\": 1}\"}\n</tool_call>";

TEST(ToolCallParser, SplitsReasoningContentAndCalls) {
  Events ev = parse_chunked(kOutput, kOutput.size());
  ASSERT_EQ(ev.size(), 4u) << describe(ev);
  EXPECT_EQ(ev[0].kind, ChatOutputEvent::reasoning);
  EXPECT_EQ(ev[0].text, "The user wants weather.");
  EXPECT_EQ(ev[1].kind, ChatOutputEvent::content);
  EXPECT_EQ(ev[1].text, "Let me check.");
  EXPECT_EQ(ev[2].kind, ChatOutputEvent::tool_call);
  EXPECT_EQ(ev[2].name, "get_weather");
  EXPECT_EQ(ev[2].arguments, "{\"city\": \"Paris\", \"days\": [1, 2]}");
  EXPECT_EQ(ev[3].kind, ChatOutputEvent::tool_call);
  EXPECT_EQ(ev[3].arguments, "{\"q\": 1}");
}

TEST(ToolCallParser, AnyChunkingGivesTheSameEvents) {
  const std::string want = describe(parse_chunked(kOutput, kOutput.size()));
  for (size_t chunk = 1; chunk < 20; ++chunk)
    EXPECT_EQ(describe(parse_chunked(kOutput, chunk)), want) << "chunk " << chunk;
}

TEST(ToolCallParser, MalformedCallsAreReportedNotFatal) {
  Events ev = parse_chunked("a<tool_call>\n{\"name\": \"f\", \"arguments\": {\n</tool_call>b", 3);
  ASSERT_EQ(ev.size(), 3u) << describe(ev);
  EXPECT_EQ(ev[0].text, "a");
  EXPECT_EQ(ev[1].kind, ChatOutputEvent::tool_call_error);
  EXPECT_EQ(ev[1].error, "tool call is not valid JSON");
  EXPECT_EQ(ev[2].text, "b");
  ev = parse_chunked("<tool_call>[1,2]</tool_call>", 1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, ChatOutputEvent::tool_call_error);
  // Unterminated call at the end of output is parsed as if closed.
  ev = parse_chunked("<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n", 4);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, ChatOutputEvent::tool_call);
  EXPECT_EQ(ev[0].arguments, "{}");
  // Random bytes never crash.
  std::mt19937 rng(3);
  const char* pieces[] = {"<think>", "</think>", "<tool_call>", "</tool_call>",
                          "<",       "{",        "\n",          "x"};
  for (int i = 0; i < 500; ++i) {
    std::string s;
    for (int k = 0; k < 12; ++k) s += pieces[rng() % 8];
    EXPECT_EQ(describe(parse_chunked(s, 1 + rng() % 5)), describe(parse_chunked(s, s.size() + 1)));
  }
}

TEST(ToolCallParser, OutputStartingInsideThinking) {
  Events ev = parse_chunked("plan\n</think>\n\nanswer", 2, /*in_reasoning=*/true);
  ASSERT_EQ(ev.size(), 2u) << describe(ev);
  EXPECT_EQ(ev[0].kind, ChatOutputEvent::reasoning);
  EXPECT_EQ(ev[0].text, "plan");
  EXPECT_EQ(ev[1].text, "answer");
  ev = parse_chunked("just text <b>bold</b> < 3\n\nmore\n", 5);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].text, "just text <b>bold</b> < 3\n\nmore\n");
}

}  // namespace
}  // namespace moerun
