#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "moe/routing_override.h"
#include "moe/routing_trace.h"
#include "moe/synthetic_routing.h"

namespace moerun {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Fractions of each token's experts seen at the previous token and within the previous 8, over
// tokens 8.. of every layer.
struct Measured {
  double reuse = 0, within8 = 0, top_decile_share = 0;
};

Measured measure(const SyntheticRoutingParams& p, int64_t layers, int64_t experts, int64_t k,
                 int64_t tokens) {
  SyntheticRouting gen(p, layers, experts, k);
  std::vector<std::vector<int32_t>> ids(static_cast<size_t>(tokens * layers),
                                        std::vector<int32_t>(static_cast<size_t>(k)));
  std::vector<float> w(static_cast<size_t>(k));
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t l = 0; l < layers; ++l) {
      std::vector<int32_t>& row = ids[static_cast<size_t>(t * layers + l)];
      gen.next(l, row.data(), w.data());
      std::set<int32_t> distinct(row.begin(), row.end());
      EXPECT_EQ(distinct.size(), static_cast<size_t>(k));
      double sum = 0;
      for (int64_t i = 0; i < k; ++i) {
        EXPECT_TRUE(row[static_cast<size_t>(i)] >= 0 && row[static_cast<size_t>(i)] < experts);
        EXPECT_GT(w[static_cast<size_t>(i)], 0.0f);
        if (i > 0) {
          EXPECT_LE(w[static_cast<size_t>(i)], w[static_cast<size_t>(i - 1)]);
        }
        sum += w[static_cast<size_t>(i)];
      }
      EXPECT_NEAR(sum, 1.0, 1e-5);
    }
  }
  int64_t reused = 0, within = 0, counted = 0, top = 0;
  for (int64_t l = 0; l < layers; ++l) {
    for (int64_t t = 8; t < tokens; ++t) {
      for (int32_t e : ids[static_cast<size_t>(t * layers + l)]) {
        ++counted;
        top += gen.rank_of(l, e) < experts / 10;
        bool prev = false, win = false;
        for (int64_t d = 1; d <= 8; ++d) {
          const auto& past = ids[static_cast<size_t>((t - d) * layers + l)];
          const bool in = std::find(past.begin(), past.end(), e) != past.end();
          if (d == 1) prev = in;
          win = win || in;
        }
        reused += prev;
        within += win;
      }
    }
  }
  const auto n = static_cast<double>(counted);
  return Measured{static_cast<double>(reused) / n, static_cast<double>(within) / n,
                  static_cast<double>(top) / n};
}

TEST(SyntheticRouting, HasTheRequestedReuseAndWithin8Fractions) {
  for (const char* spec : {"synthetic:reuse=0.45,within8=0.8,zipf=1.1",
                           "synthetic:reuse=0.2,within8=0.5,zipf=0.6,seed=9",
                           "synthetic:reuse=0.7,within8=0.9,zipf=0"}) {
    SCOPED_TRACE(spec);
    const SyntheticRoutingParams p = parse_synthetic_routing(spec);
    const Measured m = measure(p, 4, 512, 10, 2000);
    EXPECT_NEAR(m.reuse, p.reuse, 0.03);
    EXPECT_NEAR(m.within8, p.within8, 0.03);
  }
}

TEST(SyntheticRouting, ZipfSkewsPopularity) {
  SyntheticRoutingParams p;
  p.zipf = 0;
  const double flat = measure(p, 2, 512, 10, 1000).top_decile_share;
  p.zipf = 1.1;
  const double skewed = measure(p, 2, 512, 10, 1000).top_decile_share;
  EXPECT_NEAR(flat, 0.1, 0.03);  // the top 10% of ranks get about 10% of the choices
  EXPECT_GT(skewed, 0.5);
}

TEST(SyntheticRouting, SmallModelsAndSeeds) {
  // 8 experts, top-3: the window covers every expert; draws fall back without repeating an id.
  const Measured m = measure(parse_synthetic_routing("synthetic:seed=4"), 3, 8, 3, 300);
  EXPECT_GT(m.within8, 0.9);
  SyntheticRouting a(parse_synthetic_routing("synthetic:seed=5"), 2, 64, 4);
  SyntheticRouting b(parse_synthetic_routing("synthetic:seed=5"), 2, 64, 4);
  SyntheticRouting c(parse_synthetic_routing("synthetic:seed=6"), 2, 64, 4);
  std::vector<int32_t> ia(4), ib(4), ic(4);
  std::vector<float> w(4);
  bool differs = false;
  for (int i = 0; i < 50; ++i) {
    a.next(1, ia.data(), w.data());
    b.next(1, ib.data(), w.data());
    c.next(1, ic.data(), w.data());
    ASSERT_EQ(ia, ib);
    differs = differs || ia != ic;
  }
  EXPECT_TRUE(differs);
}

TEST(SyntheticRouting, ChooseKeepsTheRoutersWeightSum) {
  SyntheticRouting gen(SyntheticRoutingParams{}, 1, 32, 4);
  std::vector<int32_t> ids(8, 0);
  std::vector<float> w = {0.5f, 0.2f, 0.1f, 0.1f, 0.4f, 0.3f, 0.2f, 0.1f};
  gen.choose(0, 2, 4, ids.data(), w.data());
  EXPECT_NEAR(w[0] + w[1] + w[2] + w[3], 0.9, 1e-6);
  EXPECT_NEAR(w[4] + w[5] + w[6] + w[7], 1.0, 1e-6);
}

TEST(SyntheticRouting, ParseErrorsNameTheProblem) {
  const SyntheticRoutingParams p = parse_synthetic_routing("synthetic:zipf=0.9,seed=12");
  EXPECT_EQ(p.zipf, 0.9);
  EXPECT_EQ(p.seed, 12u);
  EXPECT_EQ(p.reuse, 0.45);
  EXPECT_NE(error_of([] { parse_synthetic_routing("synthetic:reuse=x"); }).find("reuse=x"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_synthetic_routing("synthetic:speed=1"); }).find("speed"),
            std::string::npos);
  EXPECT_NE(
      error_of([] { parse_synthetic_routing("synthetic:reuse=0.9,within8=0.5"); }).find("within8"),
      std::string::npos);
  EXPECT_NE(error_of([] { parse_synthetic_routing("synthetic:reuse=1.5"); }).find("reuse"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_synthetic_routing("synthetic:seed=-1"); }).find("seed"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_synthetic_routing("synth:reuse=0.1"); }).find("synthetic:"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_synthetic_routing("synthetic:reuse"); }).find("key=value"),
            std::string::npos);
}

RoutingTrace small_trace() {
  RoutingTrace t;
  t.n_layers = 2;
  t.n_experts = 6;
  t.top_k = 2;
  t.n_tokens = 3;
  t.ids = {0, 1, 2, 3, /**/ 4, 5, 0, 2, /**/ 1, 3, 5, 4};
  return t;
}

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "moerun_test_routing_" + name;
}

TEST(RoutingTrace, SavesLoadsAndReplaysInACycle) {
  const std::string path = temp_path("ok.trace");
  save_routing_trace(small_trace(), path);
  RoutingTrace t = load_routing_trace(path);
  EXPECT_EQ(t.n_tokens, 3);
  EXPECT_EQ(t.ids, small_trace().ids);
  TraceReplay replay(std::move(t), 2, 6, 2);
  std::vector<int32_t> ids(8, -1);
  std::vector<float> w(8, 0.25f);
  replay.choose(1, 2, 2, ids.data(), w.data());  // layer 1, tokens 0 and 1
  EXPECT_EQ(ids, (std::vector<int32_t>{2, 3, 0, 2, -1, -1, -1, -1}));
  replay.choose(1, 2, 2, ids.data(), w.data());  // token 2, then back to token 0
  EXPECT_EQ(ids, (std::vector<int32_t>{5, 4, 2, 3, -1, -1, -1, -1}));
  replay.choose(0, 1, 2, ids.data(), w.data());  // layer 0 has its own cursor
  EXPECT_EQ(ids[0], 0);
  EXPECT_EQ(ids[1], 1);
  EXPECT_EQ(w[0], 0.25f);  // the router's weights stay
  std::remove(path.c_str());
}

TEST(RoutingTrace, RejectsCorruptFilesAndMismatchedModels) {
  const std::string path = temp_path("corrupt.trace");
  save_routing_trace(small_trace(), path);
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::remove(path.c_str());
  auto parse = [](std::string b) {
    return error_of([&] {
      parse_routing_trace(reinterpret_cast<const uint8_t*>(b.data()), b.size(), "t.trace");
    });
  };
  auto patched = [&](size_t at, uint32_t v) {
    std::string b = bytes;
    std::memcpy(b.data() + at, &v, 4);
    return b;
  };
  EXPECT_NE(parse(bytes.substr(0, 20)).find("header"), std::string::npos);
  EXPECT_NE(parse("X" + bytes.substr(1)).find("magic"), std::string::npos);
  EXPECT_NE(parse(patched(8, 2)).find("version"), std::string::npos);
  EXPECT_NE(parse(patched(12, 0)).find("n_layers"), std::string::npos);
  EXPECT_NE(parse(patched(16, 0)).find("n_experts"), std::string::npos);
  EXPECT_NE(parse(patched(20, 7)).find("top_k"), std::string::npos);
  EXPECT_NE(parse(patched(24, 4)).find("bytes"), std::string::npos);        // n_tokens too large
  EXPECT_NE(parse(patched(24, 0)).find("bytes"), std::string::npos);        // no tokens
  EXPECT_NE(parse(bytes + "x").find("bytes"), std::string::npos);           // trailing garbage
  EXPECT_NE(parse(patched(32 + 4, 6)).find("outside"), std::string::npos);  // id 6 of 6
  EXPECT_NE(parse(patched(32 + 4, 0)).find("twice"), std::string::npos);    // 0, 0
  std::string huge = patched(24, 0);
  const uint64_t many = ~uint64_t{0} / 2;
  std::memcpy(huge.data() + 24, &many, 8);
  EXPECT_NE(parse(huge).find("bytes"), std::string::npos);  // no overflow
  EXPECT_NE(error_of([] { load_routing_trace("/nonexistent/x.trace"); }).find("x.trace"),
            std::string::npos);
  EXPECT_NE(error_of([] { TraceReplay(small_trace(), 3, 6, 2); }).find("layers"),
            std::string::npos);
  EXPECT_NE(error_of([] { TraceReplay(small_trace(), 2, 6, 3); }).find("top_k"), std::string::npos);
}

TEST(RoutingOverride, BuildsFromASpec) {
  EXPECT_EQ(make_routing_override("model", 2, 8, 2), nullptr);
  EXPECT_FALSE(is_benchmark_routing("model"));
  EXPECT_TRUE(is_benchmark_routing("synthetic:zipf=1"));
  EXPECT_NE(make_routing_override("synthetic:zipf=1", 2, 8, 2), nullptr);
  const std::string path = temp_path("spec.trace");
  save_routing_trace(small_trace(), path);
  EXPECT_NE(make_routing_override("trace:" + path, 2, 6, 2), nullptr);
  std::remove(path.c_str());
  EXPECT_NE(error_of([] { make_routing_override("random", 2, 8, 2); }).find("random"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_routing_override("synthetic:x=1", 2, 8, 2); }).find("x"),
            std::string::npos);
}

}  // namespace
}  // namespace moerun
