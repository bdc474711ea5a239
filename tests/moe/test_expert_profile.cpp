#include "moe/expert_profile.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <string>

#include "core/error.h"

namespace moerun {
namespace {

ProfileModel small_model() {
  return ProfileModel{"qwen3next", 2, 4, 2, "00112233aabbccdd"};
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Two layers, three tokens: a prefill of two tokens, then one decode token.
ProfileRecorder recorded(bool keep_trace) {
  ProfileRecorder r(small_model(), keep_trace);
  const int32_t l0[] = {0, 1, 1, 0}, l1[] = {2, 3, 3, 1};
  r.observe(0, 2, 2, l0, nullptr);
  r.observe(1, 2, 2, l1, nullptr);
  const int32_t d0[] = {2, 0}, d1[] = {1, 3};
  r.observe(0, 1, 2, d0, nullptr);
  r.observe(1, 1, 2, d1, nullptr);
  return r;
}

TEST(ExpertProfile, RecordsCountsPairsAndTheTrace) {
  const ProfileRecorder r = recorded(true);
  const ExpertProfile p = r.profile();
  EXPECT_EQ(p.tokens, 3u);
  EXPECT_EQ(p.counts[0], (std::vector<uint64_t>{3, 2, 1, 0}));
  EXPECT_EQ(p.counts[1], (std::vector<uint64_t>{0, 2, 1, 3}));
  ASSERT_EQ(p.pairs[0].size(), 2u);
  EXPECT_EQ(p.pairs[0][0].a, 0);
  EXPECT_EQ(p.pairs[0][0].b, 1);
  EXPECT_EQ(p.pairs[0][0].count, 2u);
  EXPECT_EQ(p.pairs[0][1].b, 2);
  ASSERT_EQ(p.pairs[1].size(), 2u);  // (1,3) twice, (2,3) once
  EXPECT_EQ(p.pairs[1][0].a, 1);
  EXPECT_EQ(p.pairs[1][0].count, 2u);
  EXPECT_EQ(r.profile(1).pairs[1].size(), 1u);
  const RoutingTrace t = r.trace();
  EXPECT_EQ(t.n_tokens, 3);
  EXPECT_EQ(t.ids, (std::vector<int32_t>{0, 1, 2, 3, 1, 0, 3, 1, 2, 0, 1, 3}));
}

TEST(ExpertProfile, SavesAndLoads) {
  const ExpertProfile p = recorded(false).profile();
  const std::string path = ::testing::TempDir() + "moerun_test_profile.json";
  save_expert_profile(p, path);
  const ExpertProfile q = load_expert_profile(path);
  std::remove(path.c_str());
  EXPECT_EQ(q.model.architecture, "qwen3next");
  EXPECT_EQ(q.model.shape_hash, p.model.shape_hash);
  EXPECT_EQ(q.tokens, p.tokens);
  EXPECT_EQ(q.counts, p.counts);
  ASSERT_EQ(q.pairs.size(), 2u);
  EXPECT_EQ(q.pairs[1][0].count, p.pairs[1][0].count);
  check_profile_model(q, small_model(), path);
  ProfileModel other = small_model();
  other.shape_hash = "ffff";
  EXPECT_NE(error_of([&] { check_profile_model(q, other, "p.json"); }).find("shape_hash"),
            std::string::npos);
  other = small_model();
  other.n_experts = 8;
  EXPECT_NE(error_of([&] { check_profile_model(q, other, "p.json"); }).find("n_experts"),
            std::string::npos);
  EXPECT_NE(error_of([] { load_expert_profile("/nonexistent/p.json"); }).find("p.json"),
            std::string::npos);
}

TEST(ExpertProfile, RejectsCorruptProfilesNamingTheField) {
  const std::string good = expert_profile_json(recorded(false).profile());
  auto parse = [](const std::string& text) {
    return error_of([&] { parse_expert_profile(text, "p.json"); });
  };
  auto replaced = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    const size_t at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return s.replace(at, from.size(), to);
  };
  EXPECT_EQ(parse(good), "(no error)");
  EXPECT_NE(parse(good.substr(0, good.size() / 2)).find("not valid JSON"), std::string::npos);
  EXPECT_NE(parse("[1]").find("object"), std::string::npos);
  EXPECT_NE(parse(std::string(100000, '[')).find("nested"), std::string::npos);
  EXPECT_NE(parse(replaced("moerun-expert-profile", "other")).find("format"), std::string::npos);
  EXPECT_NE(parse(replaced("\"version\":1", "\"version\":7")).find("version"), std::string::npos);
  EXPECT_NE(parse(replaced("\"n_layers\":2", "\"n_layers\":3")).find("layers"), std::string::npos);
  EXPECT_NE(parse(replaced("\"n_experts\":4", "\"n_experts\":5")).find("counts"),
            std::string::npos);
  EXPECT_NE(parse(replaced("\"top_k\":2", "\"top_k\":9")).find("top_k"), std::string::npos);
  EXPECT_NE(parse(replaced("[3,2,1,0]", "[3,-2,1,0]")).find("negative"), std::string::npos);
  EXPECT_NE(parse(replaced("[3,2,1,0]", "[3,2.5,1,0]")).find("counts[1]"), std::string::npos);
  EXPECT_NE(parse(replaced("[3,2,1,0]", "[3,2,1]")).find("counts"), std::string::npos);
  EXPECT_NE(parse(replaced("[3,2,1,0]", "[3,3,3,0]")).find("add up"), std::string::npos);
  EXPECT_NE(parse(replaced("[3,2,1,0]", "[9,2,1,0]")).find("exceeds"), std::string::npos);
  EXPECT_NE(parse(replaced("\"tokens\":3", "\"tokens\":\"3\"")).find("tokens"), std::string::npos);
  EXPECT_NE(parse(replaced("[0,1,2]", "[1,0,2]")).find("not below"), std::string::npos);
  EXPECT_NE(parse(replaced("[0,1,2]", "[0,4,2]")).find("pairs[0][1]"), std::string::npos);
  EXPECT_NE(parse(replaced("[0,1,2]", "[0,1]")).find("[a, b, count]"), std::string::npos);
  EXPECT_NE(parse(replaced("\"shape_hash\":", "\"shape\":")).find("shape_hash"), std::string::npos);
}

}  // namespace
}  // namespace moerun
