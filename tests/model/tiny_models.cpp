#include "tiny_models.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <numeric>
#include <random>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "core/quant.h"
#include "io/gguf_writer.h"
#include "model/qwen3_next_tensors.h"

namespace moerun::test {
namespace {

using Vec = std::vector<double>;

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  return h;
}

int64_t count(const std::vector<int64_t>& ne) {
  return std::accumulate(ne.begin(), ne.end(), int64_t{1}, std::multiplies<int64_t>());
}

// Values for a tensor by its role, from a generator seeded by (seed, name).
TinyTensor make_tensor(const std::string& name, std::vector<int64_t> ne, TensorRole role,
                       uint64_t seed) {
  std::mt19937_64 rng(seed ^ fnv1a(name));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  TinyTensor t{name, ne, std::vector<float>(static_cast<size_t>(count(ne)))};
  const float fan_in = 1.0f / std::sqrt(static_cast<float>(ne[0]));
  for (float& v : t.data) {
    switch (role) {
      case TensorRole::embedding:
        v = normal(rng);
        break;
      case TensorRole::norm:
        v = 1.0f + 0.2f * normal(rng);
        break;
      case TensorRole::router:
        v = 3.0f * fan_in * normal(rng);
        break;
      case TensorRole::conv:
        v = 0.5f * normal(rng);
        break;
      case TensorRole::ssm_a:
        v = -(0.1f + 1.5f * uniform(rng));
        break;
      case TensorRole::ssm_dt_bias:
        v = 0.5f * normal(rng);
        break;
      default:
        v = fan_in * normal(rng);
        break;
    }
  }
  return t;
}

// ----- double-precision reference -----

// y [rows] = W x for W with ne {cols, rows, ...}; `matrix` selects a slice of a stacked tensor.
Vec matvec(const TinyTensor& w, const Vec& x, int64_t matrix = 0) {
  const int64_t cols = w.ne[0];
  const int64_t rows = w.ne.size() > 1 ? w.ne[1] : 1;
  EXPECT_EQ(static_cast<int64_t>(x.size()), cols) << w.name;
  const float* base = w.data.data() + matrix * rows * cols;
  Vec y(static_cast<size_t>(rows), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    double acc = 0;
    for (int64_t i = 0; i < cols; ++i) acc += double(base[r * cols + i]) * x[i];
    y[r] = acc;
  }
  return y;
}

Vec rms_norm(const double* x, int64_t n, const std::vector<float>& w, double eps) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
  const double s = 1.0 / std::sqrt(ss / n + eps);
  Vec y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * s * w[i];
  return y;
}

double sigmoid(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}
double silu(double x) {
  return x * sigmoid(x);
}

struct AttentionShape {
  int64_t n_heads, n_kv, hd, rope_dims;
  double theta, eps;
  bool gated;
};

std::vector<Vec> ref_attention(const TinyModel& m, int64_t l, const std::vector<Vec>& x,
                               const AttentionShape& a) {
  auto nm = [l](const char* s) { return fmt::format("blk.{}.{}", l, s); };
  const auto T = static_cast<int64_t>(x.size());
  std::vector<Vec> q(T), gate(T), k(T), v(T), out(T);
  for (int64_t t = 0; t < T; ++t) {
    const Vec qf = matvec(m.get(nm("attn_q.weight")), x[t]);
    q[t].resize(a.n_heads * a.hd);
    gate[t].resize(a.n_heads * a.hd);
    const int64_t per_head = a.gated ? 2 * a.hd : a.hd;
    for (int64_t h = 0; h < a.n_heads; ++h) {
      for (int64_t i = 0; i < a.hd; ++i) {
        q[t][h * a.hd + i] = qf[h * per_head + i];
        if (a.gated) gate[t][h * a.hd + i] = qf[h * per_head + a.hd + i];
      }
    }
    k[t] = matvec(m.get(nm("attn_k.weight")), x[t]);
    v[t] = matvec(m.get(nm("attn_v.weight")), x[t]);
    // Per-head norm, then RoPE (NeoX pairs i, i + rope_dims/2) at position t.
    auto norm_rope = [&](Vec& vec, int64_t heads, const std::vector<float>& w) {
      for (int64_t h = 0; h < heads; ++h) {
        const Vec n = rms_norm(vec.data() + h * a.hd, a.hd, w, a.eps);
        const int64_t half = a.rope_dims / 2;
        for (int64_t i = 0; i < a.hd; ++i) vec[h * a.hd + i] = n[i];
        for (int64_t i = 0; i < half; ++i) {
          const double angle = double(t) / std::pow(a.theta, 2.0 * i / a.rope_dims);
          const double x0 = n[i], x1 = n[i + half];
          vec[h * a.hd + i] = x0 * std::cos(angle) - x1 * std::sin(angle);
          vec[h * a.hd + i + half] = x1 * std::cos(angle) + x0 * std::sin(angle);
        }
      }
    };
    norm_rope(q[t], a.n_heads, m.get(nm("attn_q_norm.weight")).data);
    norm_rope(k[t], a.n_kv, m.get(nm("attn_k_norm.weight")).data);
  }
  for (int64_t t = 0; t < T; ++t) {
    Vec att(static_cast<size_t>(a.n_heads * a.hd), 0.0);
    for (int64_t h = 0; h < a.n_heads; ++h) {
      const int64_t kvh = h / (a.n_heads / a.n_kv);
      Vec s(static_cast<size_t>(t + 1));
      double mx = -1e300;
      for (int64_t j = 0; j <= t; ++j) {
        double acc = 0;
        for (int64_t i = 0; i < a.hd; ++i) acc += q[t][h * a.hd + i] * k[j][kvh * a.hd + i];
        s[j] = acc / std::sqrt(double(a.hd));
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (double& e : s) sum += (e = std::exp(e - mx));
      for (int64_t j = 0; j <= t; ++j) {
        for (int64_t i = 0; i < a.hd; ++i) att[h * a.hd + i] += s[j] / sum * v[j][kvh * a.hd + i];
      }
    }
    if (a.gated) {
      for (size_t i = 0; i < att.size(); ++i) att[i] *= sigmoid(gate[t][i]);
    }
    out[t] = matvec(m.get(nm("attn_output.weight")), att);
  }
  return out;
}

std::vector<Vec> ref_deltanet(const TinyModel& m, const Qwen3NextConfig& c, int64_t l,
                              const std::vector<Vec>& x) {
  auto nm = [l](const char* s) { return fmt::format("blk.{}.{}", l, s); };
  const auto T = static_cast<int64_t>(x.size());
  const int64_t kd = c.linear_k_dim, vd = c.linear_v_dim, nk = c.linear_k_heads,
                nv = c.linear_v_heads, r = nv / nk, kw = nk * kd, vw = nv * vd, C = 2 * kw + vw;
  std::vector<Vec> mixed(T, Vec(C)), z(T, Vec(vw)), b(T, Vec(nv)), a(T, Vec(nv));
  for (int64_t t = 0; t < T; ++t) {
    if (m.has(nm("ssm_in.weight"))) {
      const Vec p = matvec(m.get(nm("ssm_in.weight")), x[t]);
      const int64_t group = 2 * kd + 2 * r * vd;
      for (int64_t g = 0; g < nk; ++g) {
        for (int64_t i = 0; i < kd; ++i) {
          mixed[t][g * kd + i] = p[g * group + i];
          mixed[t][kw + g * kd + i] = p[g * group + kd + i];
        }
        for (int64_t i = 0; i < r * vd; ++i) {
          mixed[t][2 * kw + g * r * vd + i] = p[g * group + 2 * kd + i];
          z[t][g * r * vd + i] = p[g * group + 2 * kd + r * vd + i];
        }
      }
    } else {
      mixed[t] = matvec(m.get(nm("attn_qkv.weight")), x[t]);
      z[t] = matvec(m.get(nm("attn_gate.weight")), x[t]);
    }
    const Vec ba = matvec(m.get(nm("ssm_ba.weight")), x[t]);
    for (int64_t g = 0; g < nk; ++g) {
      for (int64_t j = 0; j < r; ++j) {
        b[t][g * r + j] = ba[g * 2 * r + j];
        a[t][g * r + j] = ba[g * 2 * r + r + j];
      }
    }
  }
  // Causal conv (zero left padding), SiLU.
  const auto& cw = m.get(nm("ssm_conv1d.weight")).data;
  const int64_t K = c.conv_kernel;
  std::vector<Vec> y(T, Vec(C));
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t ch = 0; ch < C; ++ch) {
      double acc = 0;
      for (int64_t j = 0; j < K; ++j) {
        const int64_t s = t - (K - 1) + j;
        if (s >= 0) acc += double(cw[ch * K + j]) * mixed[s][ch];
      }
      y[t][ch] = silu(acc);
    }
  }
  const auto& A = m.get(nm("ssm_a")).data;
  const auto& dt = m.get(nm("ssm_dt.bias")).data;
  const auto& nw = m.get(nm("ssm_norm.weight")).data;
  std::vector<Vec> S(nv, Vec(kd * vd, 0.0));
  std::vector<Vec> out(T);
  for (int64_t t = 0; t < T; ++t) {
    Vec q(y[t].begin(), y[t].begin() + kw), k(y[t].begin() + kw, y[t].begin() + 2 * kw);
    for (Vec* vec : {&q, &k}) {
      for (int64_t g = 0; g < nk; ++g) {
        double ss = 0;
        for (int64_t i = 0; i < kd; ++i) ss += (*vec)[g * kd + i] * (*vec)[g * kd + i];
        for (int64_t i = 0; i < kd; ++i) (*vec)[g * kd + i] /= std::sqrt(ss + 1e-6);
      }
    }
    for (double& e : q) e /= std::sqrt(double(kd));
    Vec core(static_cast<size_t>(vw));
    for (int64_t h = 0; h < nv; ++h) {
      const int64_t kh = h / r;
      const double beta = sigmoid(b[t][h]);
      const double g = A[h] * std::log1p(std::exp(a[t][h] + dt[h]));
      Vec& s = S[h];
      for (double& e : s) e *= std::exp(g);
      Vec kv(static_cast<size_t>(vd), 0.0);
      for (int64_t i = 0; i < kd; ++i) {
        for (int64_t j = 0; j < vd; ++j) kv[j] += k[kh * kd + i] * s[i * vd + j];
      }
      for (int64_t i = 0; i < kd; ++i) {
        for (int64_t j = 0; j < vd; ++j) {
          s[i * vd + j] += k[kh * kd + i] * (y[t][2 * kw + h * vd + j] - kv[j]) * beta;
        }
      }
      double ss = 0;
      Vec o(static_cast<size_t>(vd), 0.0);
      for (int64_t j = 0; j < vd; ++j) {
        for (int64_t i = 0; i < kd; ++i) o[j] += q[kh * kd + i] * s[i * vd + j];
        ss += o[j] * o[j];
      }
      const double rs = 1.0 / std::sqrt(ss / vd + c.rms_eps);
      for (int64_t j = 0; j < vd; ++j) {
        core[h * vd + j] = nw[j] * (o[j] * rs) * silu(z[t][h * vd + j]);
      }
    }
    out[t] = matvec(m.get(nm("ssm_out.weight")), core);
  }
  return out;
}

Vec ref_moe(const TinyModel& m, int64_t l, const Vec& x, int64_t top_k, bool shared) {
  auto nm = [l](const char* s) { return fmt::format("blk.{}.{}", l, s); };
  const Vec logits = matvec(m.get(nm("ffn_gate_inp.weight")), x);
  const auto E = static_cast<int64_t>(logits.size());
  const double mx = *std::max_element(logits.begin(), logits.end());
  Vec p(static_cast<size_t>(E));
  double sum = 0;
  for (int64_t e = 0; e < E; ++e) sum += (p[e] = std::exp(logits[e] - mx));
  for (double& e : p) e /= sum;
  std::vector<int64_t> order(static_cast<size_t>(E));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t i, int64_t j) { return p[i] > p[j]; });
  double top = 0;
  for (int64_t k = 0; k < top_k; ++k) top += p[order[k]];
  Vec out(x.size(), 0.0);
  auto expert = [&](const TinyTensor& g, const TinyTensor& u, const TinyTensor& d, int64_t e) {
    const Vec gv = matvec(g, x, e), uv = matvec(u, x, e);
    Vec act(gv.size());
    for (size_t i = 0; i < gv.size(); ++i) act[i] = silu(gv[i]) * uv[i];
    return matvec(d, act, e);
  };
  for (int64_t k = 0; k < top_k; ++k) {
    const int64_t e = order[k];
    const Vec y = expert(m.get(nm("ffn_gate_exps.weight")), m.get(nm("ffn_up_exps.weight")),
                         m.get(nm("ffn_down_exps.weight")), e);
    for (size_t i = 0; i < out.size(); ++i) out[i] += p[e] / top * y[i];
  }
  if (shared) {
    const Vec y = expert(m.get(nm("ffn_gate_shexp.weight")), m.get(nm("ffn_up_shexp.weight")),
                         m.get(nm("ffn_down_shexp.weight")), 0);
    const double g = sigmoid(matvec(m.get(nm("ffn_gate_inp_shexp.weight")), x)[0]);
    for (size_t i = 0; i < out.size(); ++i) out[i] += g * y[i];
  }
  return out;
}

// The layer stack shared by both architectures; `mixer` computes a layer's mixer output.
template <typename Mixer>
std::vector<double> ref_stack(const TinyModel& m, int64_t n_layers, int64_t hidden, double eps,
                              int64_t top_k, bool shared, const char* post_norm,
                              const std::vector<int32_t>& tokens, Mixer mixer) {
  const auto T = static_cast<int64_t>(tokens.size());
  const TinyTensor& emb = m.get("token_embd.weight");
  std::vector<Vec> h(T);
  for (int64_t t = 0; t < T; ++t) {
    h[t].assign(emb.data.begin() + tokens[t] * hidden, emb.data.begin() + (tokens[t] + 1) * hidden);
  }
  for (int64_t l = 0; l < n_layers; ++l) {
    std::vector<Vec> xn(T);
    for (int64_t t = 0; t < T; ++t) {
      xn[t] =
          rms_norm(h[t].data(), hidden, m.get(fmt::format("blk.{}.attn_norm.weight", l)).data, eps);
    }
    const std::vector<Vec> mix = mixer(l, xn);
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t i = 0; i < hidden; ++i) h[t][i] += mix[t][i];
      const Vec x2 =
          rms_norm(h[t].data(), hidden, m.get(fmt::format("blk.{}.{}", l, post_norm)).data, eps);
      const Vec y = ref_moe(m, l, x2, top_k, shared);
      for (int64_t i = 0; i < hidden; ++i) h[t][i] += y[i];
    }
  }
  const TinyTensor& out = m.has("output.weight") ? m.get("output.weight") : emb;
  std::vector<double> logits;
  for (int64_t t = 0; t < T; ++t) {
    const Vec y = matvec(out, rms_norm(h[t].data(), hidden, m.get("output_norm.weight").data, eps));
    logits.insert(logits.end(), y.begin(), y.end());
  }
  return logits;
}

void write_gguf(const TinyModel& m, const std::string& path, const TinyWriteOptions& o,
                const std::function<void(GgufWriter&)>& metadata) {
  GgufWriter w(path);
  metadata(w);
  w.set("general.name", GgufValue::of_string("tiny test model"));
  if (!o.architecture.empty()) w.set("general.architecture", GgufValue::of_string(o.architecture));
  struct Planned {
    const TinyTensor* t;
    std::vector<int64_t> ne;
    DType type;
  };
  std::vector<Planned> plan;
  for (const TinyTensor& t : m.tensors) {
    if (t.name == o.skip) continue;
    std::vector<int64_t> ne = t.ne;
    if (t.name == o.misshape) ne[0] *= 2;
    DType type = DType::F32;
    const int64_t block = dtype_info(o.matrix_type).block_elems;
    if (ne.size() >= 2 && ne[0] % block == 0 && t.name.find("ssm_conv1d") == std::string::npos) {
      type = o.matrix_type;
    }
    w.add_tensor(t.name, type, ne);
    plan.push_back({&t, ne, type});
  }
  w.write_header();
  for (const Planned& p : plan) {
    std::vector<float> values = p.t->data;
    if (p.ne[0] != p.t->ne[0]) values.insert(values.end(), p.t->data.begin(), p.t->data.end());
    const int64_t rows = count(p.ne) / p.ne[0];
    const int64_t rb = row_bytes(p.type, p.ne[0]);
    std::vector<uint8_t> bytes(static_cast<size_t>(rows * rb));
    for (int64_t r = 0; r < rows; ++r) {
      quantize_row(p.type, values.data() + r * p.ne[0], bytes.data() + r * rb, p.ne[0]);
    }
    w.write_tensor_data(bytes.data(), bytes.size());
  }
  w.finish();
}

}  // namespace

const TinyTensor& TinyModel::get(const std::string& name) const {
  for (const TinyTensor& t : tensors) {
    if (t.name == name) return t;
  }
  ADD_FAILURE() << "tiny model has no tensor " << name;
  std::abort();
}

bool TinyModel::has(const std::string& name) const {
  return std::any_of(tensors.begin(), tensors.end(),
                     [&](const TinyTensor& t) { return t.name == name; });
}

Qwen3NextConfig tiny_next_config() {
  Qwen3NextConfig c;
  c.n_layers = 4;
  c.hidden = 64;
  c.vocab = 97;
  c.context_length = 64;
  c.full_attention_interval = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 16;
  c.rope_dims = 8;
  c.rope_theta = 10000.0f;
  c.linear_k_heads = 2;
  c.linear_v_heads = 4;
  c.linear_k_dim = 16;
  c.linear_v_dim = 8;
  c.conv_kernel = 4;
  c.n_experts = 8;
  c.n_experts_used = 3;
  c.expert_ffn = 32;
  c.shared_ffn = 24;
  c.dense_ffn = 128;
  return c;
}

Qwen3MoeConfig tiny_moe_config() {
  Qwen3MoeConfig c;
  c.n_layers = 3;
  c.hidden = 64;
  c.vocab = 97;
  c.context_length = 64;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 16;
  c.rope_theta = 10000.0f;
  c.n_experts = 8;
  c.n_experts_used = 3;
  c.expert_ffn = 32;
  c.dense_ffn = 128;
  return c;
}

TinyModel make_next_weights(const Qwen3NextConfig& c, uint64_t seed) {
  TinyModel m;
  for (const TensorSpec& s : qwen3_next_tensor_specs(c, DeltaNetLayout::ssm_in)) {
    m.tensors.push_back(make_tensor(s.name, s.ne, s.role, seed));
  }
  return m;
}

TinyModel to_qkv_gate_layout(const TinyModel& m, const Qwen3NextConfig& c) {
  TinyModel out;
  const int64_t h = c.hidden, kd = c.linear_k_dim, nk = c.linear_k_heads;
  const int64_t gv = c.linear_v_heads / nk * c.linear_v_dim;
  const int64_t group = 2 * kd + 2 * gv, kw = c.linear_key_width(), vw = c.linear_value_width();
  for (const TinyTensor& t : m.tensors) {
    if (t.name.find("ssm_in.weight") == std::string::npos) {
      out.tensors.push_back(t);
      continue;
    }
    const std::string prefix =
        t.name.substr(0, t.name.size() - std::string("ssm_in.weight").size());
    TinyTensor qkv{prefix + "attn_qkv.weight", {h, 2 * kw + vw}, {}};
    TinyTensor gate{prefix + "attn_gate.weight", {h, vw}, {}};
    qkv.data.resize(static_cast<size_t>(h * (2 * kw + vw)));
    gate.data.resize(static_cast<size_t>(h * vw));
    auto copy_rows = [&](std::vector<float>& dst, int64_t dst_row, int64_t src_row, int64_t n) {
      std::memcpy(dst.data() + dst_row * h, t.data.data() + src_row * h,
                  static_cast<size_t>(n * h) * sizeof(float));
    };
    for (int64_t g = 0; g < nk; ++g) {
      copy_rows(qkv.data, g * kd, g * group, kd);
      copy_rows(qkv.data, kw + g * kd, g * group + kd, kd);
      copy_rows(qkv.data, 2 * kw + g * gv, g * group + 2 * kd, gv);
      copy_rows(gate.data, g * gv, g * group + 2 * kd + gv, gv);
    }
    out.tensors.push_back(std::move(qkv));
    out.tensors.push_back(std::move(gate));
  }
  return out;
}

TinyModel make_moe_weights(const Qwen3MoeConfig& c, uint64_t seed, bool tied) {
  TinyModel m;
  const int64_t h = c.hidden, qw = c.n_heads * c.head_dim, kvw = c.n_kv_heads * c.head_dim;
  auto add = [&](const std::string& name, std::vector<int64_t> ne, TensorRole role) {
    m.tensors.push_back(make_tensor(name, std::move(ne), role, seed));
  };
  add("token_embd.weight", {h, c.vocab}, TensorRole::embedding);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    auto nm = [i](const char* s) { return fmt::format("blk.{}.{}", i, s); };
    add(nm("attn_norm.weight"), {h}, TensorRole::norm);
    add(nm("attn_q.weight"), {h, qw}, TensorRole::projection);
    add(nm("attn_k.weight"), {h, kvw}, TensorRole::projection);
    add(nm("attn_v.weight"), {h, kvw}, TensorRole::projection);
    add(nm("attn_output.weight"), {qw, h}, TensorRole::out_projection);
    add(nm("attn_q_norm.weight"), {c.head_dim}, TensorRole::norm);
    add(nm("attn_k_norm.weight"), {c.head_dim}, TensorRole::norm);
    add(nm("ffn_norm.weight"), {h}, TensorRole::norm);
    add(nm("ffn_gate_inp.weight"), {h, c.n_experts}, TensorRole::router);
    add(nm("ffn_gate_exps.weight"), {h, c.expert_ffn, c.n_experts}, TensorRole::expert_in);
    add(nm("ffn_up_exps.weight"), {h, c.expert_ffn, c.n_experts}, TensorRole::expert_in);
    add(nm("ffn_down_exps.weight"), {c.expert_ffn, h, c.n_experts}, TensorRole::expert_down);
  }
  add("output_norm.weight", {h}, TensorRole::norm);
  if (!tied) add("output.weight", {h, c.vocab}, TensorRole::output);
  return m;
}

void write_tiny_gguf(const TinyModel& m, const Qwen3NextConfig& c, const std::string& path,
                     const TinyWriteOptions& o) {
  write_gguf(m, path, o, [&](GgufWriter& w) { write_qwen3_next_config(w, c); });
}

void write_tiny_gguf(const TinyModel& m, const Qwen3MoeConfig& c, const std::string& path,
                     const TinyWriteOptions& o) {
  write_gguf(m, path, o, [&](GgufWriter& w) { write_qwen3_moe_config(w, c); });
}

std::vector<double> reference_logits(const TinyModel& m, const Qwen3NextConfig& c,
                                     const std::vector<int32_t>& tokens) {
  const AttentionShape shape{c.n_heads,    c.n_kv_heads, c.head_dim, c.rope_dims,
                             c.rope_theta, c.rms_eps,    true};
  return ref_stack(m, c.n_layers, c.hidden, c.rms_eps, c.n_experts_used, true,
                   "post_attention_norm.weight", tokens, [&](int64_t l, const std::vector<Vec>& x) {
                     return c.is_attention_layer(l) ? ref_attention(m, l, x, shape)
                                                    : ref_deltanet(m, c, l, x);
                   });
}

std::vector<double> reference_logits(const TinyModel& m, const Qwen3MoeConfig& c,
                                     const std::vector<int32_t>& tokens) {
  const AttentionShape shape{c.n_heads,    c.n_kv_heads, c.head_dim, c.head_dim,
                             c.rope_theta, c.rms_eps,    false};
  return ref_stack(
      m, c.n_layers, c.hidden, c.rms_eps, c.n_experts_used, false, "ffn_norm.weight", tokens,
      [&](int64_t l, const std::vector<Vec>& x) { return ref_attention(m, l, x, shape); });
}

std::string temp_model_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          fmt::format("moerun_model_test_{}_{}.gguf", getpid(), name))
      .string();
}

}  // namespace moerun::test
