// Test helper: writes a random-weight GPT-2 folder (config.json + model.safetensors) in the
// Hugging Face layout, and a plain double-precision forward pass to check the model against.
// Header-only, for the tests and the benchmark of this directory.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace helpline::lm::testing {

struct RandomGpt2Options {
  int vocab_size = 300;
  int n_positions = 96;
  int n_embd = 64;
  int n_layer = 2;
  int n_head = 4;
  uint32_t seed = 1;
  std::string prefix = "transformer.";
  std::string dtype = "F32";  // F32, F16 (rounded via float), BF16
  bool untied = false;
};

// Weights by HF name (without prefix), row-major, as floats (already rounded to the dtype).
struct RandomGpt2 {
  RandomGpt2Options options;
  std::map<std::string, std::vector<int64_t>> shapes;
  std::map<std::string, std::vector<float>> weights;
};

inline uint16_t FloatToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<uint16_t>((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

inline uint16_t FloatToHalf(float f) {  // round to nearest even; inputs are small and normal here
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t sign = (u >> 16) & 0x8000;
  int32_t exp = static_cast<int32_t>((u >> 23) & 0xff) - 127 + 15;
  uint32_t mant = u & 0x7fffff;
  if (exp <= 0) return static_cast<uint16_t>(sign);  // flush tiny values to zero
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7c00);
  uint32_t h = (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;
  return static_cast<uint16_t>(sign | h);
}

inline float Bf16ToFloat(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float HalfToFloatSimple(uint16_t h) {
  const int exp = (h >> 10) & 0x1f;
  const int mant = h & 0x3ff;
  float v = exp == 0 ? std::ldexp(static_cast<float>(mant), -24) : std::ldexp(static_cast<float>(mant | 0x400), exp - 25);
  return (h & 0x8000) ? -v : v;
}

inline RandomGpt2 MakeRandomGpt2(const RandomGpt2Options& o) {
  RandomGpt2 m;
  m.options = o;
  const int64_t d = o.n_embd, f = 4 * o.n_embd;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) { m.shapes[name] = shape; };
  add("wte.weight", {o.vocab_size, d});
  add("wpe.weight", {o.n_positions, d});
  for (int i = 0; i < o.n_layer; ++i) {
    const std::string p = absl::StrCat("h.", i, ".");
    add(p + "ln_1.weight", {d});
    add(p + "ln_1.bias", {d});
    add(p + "attn.c_attn.weight", {d, 3 * d});
    add(p + "attn.c_attn.bias", {3 * d});
    add(p + "attn.c_proj.weight", {d, d});
    add(p + "attn.c_proj.bias", {d});
    add(p + "ln_2.weight", {d});
    add(p + "ln_2.bias", {d});
    add(p + "mlp.c_fc.weight", {d, f});
    add(p + "mlp.c_fc.bias", {f});
    add(p + "mlp.c_proj.weight", {f, d});
    add(p + "mlp.c_proj.bias", {d});
  }
  add("ln_f.weight", {d});
  add("ln_f.bias", {d});
  if (o.untied) add("lm_head.weight", {o.vocab_size, d});

  std::mt19937 rng(o.seed);
  for (const auto& [name, shape] : m.shapes) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    // Scales that make every part matter (cf. make_tiny_gpt2.py): norms near 1, strong q/k.
    float mean = 0.0f, stddev = 0.2f;
    if (name.ends_with("ln_1.weight") || name.ends_with("ln_2.weight") || name == "ln_f.weight") {
      mean = 1.0f;
      stddev = 0.2f;
    } else if (name.ends_with("c_attn.weight")) {
      stddev = 2.5f / std::sqrt(static_cast<float>(d));
    } else if (name.ends_with(".weight") && shape.size() == 2 && name.find("h.") == 0) {
      stddev = 1.5f / std::sqrt(static_cast<float>(shape[0]));
    } else if (name == "wpe.weight") {
      stddev = 1.0f;
    } else if (name == "wte.weight" || name == "lm_head.weight") {
      stddev = 0.3f;
    }
    std::normal_distribution<float> dist(mean, stddev);
    std::vector<float> values(n);
    for (float& v : values) {
      v = dist(rng);
      if (o.dtype == "BF16") v = Bf16ToFloat(FloatToBf16(v));
      if (o.dtype == "F16") v = HalfToFloatSimple(FloatToHalf(v));
    }
    m.weights[name] = std::move(values);
  }
  return m;
}

inline nlohmann::json ConfigJson(const RandomGpt2Options& o) {
  return {{"model_type", "gpt2"},       {"vocab_size", o.vocab_size}, {"n_positions", o.n_positions},
          {"n_ctx", o.n_positions},     {"n_embd", o.n_embd},         {"n_layer", o.n_layer},
          {"n_head", o.n_head},         {"n_inner", nullptr},         {"activation_function", "gelu_new"},
          {"layer_norm_epsilon", 1e-5}, {"bos_token_id", o.vocab_size - 1}, {"eos_token_id", o.vocab_size - 1},
          {"tie_word_embeddings", !o.untied}};
}

// Writes a safetensors file of `tensors` (name -> (shape, values)) in `dtype`.
inline void WriteSafetensors(const std::string& path, const RandomGpt2& m, const std::string& prefix,
                             const std::string& dtype, const std::map<std::string, std::string>& rename = {},
                             const std::map<std::string, std::vector<int64_t>>& reshape = {}) {
  nlohmann::json header = nlohmann::json::object();
  header["__metadata__"] = {{"format", "pt"}};
  std::string data;
  const size_t elem = dtype == "F32" ? 4 : 2;
  for (const auto& [name, values] : m.weights) {
    std::string out_name = prefix + name;
    if (auto it = rename.find(name); it != rename.end()) {
      if (it->second.empty()) continue;  // dropped
      out_name = it->second;
    }
    std::vector<int64_t> shape = m.shapes.at(name);
    size_t count = values.size();
    if (auto it = reshape.find(name); it != reshape.end()) {
      shape = it->second;
      count = 1;
      for (int64_t s : shape) count *= s;
    }
    const size_t begin = data.size();
    for (size_t i = 0; i < count; ++i) {
      const float v = i < values.size() ? values[i] : 0.0f;
      if (dtype == "F32") {
        data.append(reinterpret_cast<const char*>(&v), 4);
      } else {
        const uint16_t h = dtype == "BF16" ? FloatToBf16(v) : FloatToHalf(v);
        data.append(reinterpret_cast<const char*>(&h), 2);
      }
    }
    header[out_name] = {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {begin, begin + count * elem}}};
  }
  std::string text = header.dump();
  while (text.size() % 8 != 0) text += ' ';
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
  out << text << data;
}

inline void WriteModelDir(const std::string& dir, const RandomGpt2& m) {
  std::ofstream(dir + "/config.json") << ConfigJson(m.options).dump(2);
  WriteSafetensors(dir + "/model.safetensors", m, m.options.prefix, m.options.dtype);
}

// Plain double-precision forward pass without a cache: the logits of the last token.
inline std::vector<double> ReferenceLogits(const RandomGpt2& m, const std::vector<int32_t>& ids) {
  const auto& o = m.options;
  const int d = o.n_embd, f = 4 * d, nh = o.n_head, hd = d / nh, T = static_cast<int>(ids.size());
  auto W = [&](const std::string& name) -> const std::vector<float>& { return m.weights.at(name); };
  std::vector<double> x(static_cast<size_t>(T) * d);
  for (int t = 0; t < T; ++t)
    for (int e = 0; e < d; ++e) x[t * d + e] = W("wte.weight")[ids[t] * d + e] + W("wpe.weight")[t * d + e];
  auto layer_norm = [&](const std::vector<double>& in, const std::string& p) {
    std::vector<double> out(in.size());
    for (int t = 0; t < T; ++t) {
      double mean = 0, var = 0;
      for (int e = 0; e < d; ++e) mean += in[t * d + e];
      mean /= d;
      for (int e = 0; e < d; ++e) var += (in[t * d + e] - mean) * (in[t * d + e] - mean);
      var /= d;
      for (int e = 0; e < d; ++e)
        out[t * d + e] = (in[t * d + e] - mean) / std::sqrt(var + 1e-5) * W(p + ".weight")[e] + W(p + ".bias")[e];
    }
    return out;
  };
  auto linear = [&](const std::vector<double>& in, int k, int n, const std::string& p) {
    std::vector<double> out(static_cast<size_t>(T) * n);
    const auto& w = W(p + ".weight");
    const auto& b = W(p + ".bias");
    for (int t = 0; t < T; ++t)
      for (int j = 0; j < n; ++j) {
        double s = b[j];
        for (int i = 0; i < k; ++i) s += in[t * k + i] * w[static_cast<size_t>(i) * n + j];
        out[t * n + j] = s;
      }
    return out;
  };
  for (int l = 0; l < o.n_layer; ++l) {
    const std::string p = absl::StrCat("h.", l, ".");
    auto h = layer_norm(x, p + "ln_1");
    auto qkv = linear(h, d, 3 * d, p + "attn.c_attn");
    std::vector<double> att(static_cast<size_t>(T) * d);
    for (int head = 0; head < nh; ++head)
      for (int t = 0; t < T; ++t) {
        std::vector<double> s(t + 1);
        double mx = -1e300;
        for (int j = 0; j <= t; ++j) {
          double dot = 0;
          for (int c = 0; c < hd; ++c) dot += qkv[t * 3 * d + head * hd + c] * qkv[j * 3 * d + d + head * hd + c];
          s[j] = dot / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (double& v : s) sum += (v = std::exp(v - mx));
        for (int c = 0; c < hd; ++c) {
          double acc = 0;
          for (int j = 0; j <= t; ++j) acc += s[j] / sum * qkv[j * 3 * d + 2 * d + head * hd + c];
          att[t * d + head * hd + c] = acc;
        }
      }
    auto proj = linear(att, d, d, p + "attn.c_proj");
    for (size_t i = 0; i < x.size(); ++i) x[i] += proj[i];
    auto h2 = layer_norm(x, p + "ln_2");
    auto fc = linear(h2, d, f, p + "mlp.c_fc");
    for (double& v : fc) v = 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
    auto mp = linear(fc, f, d, p + "mlp.c_proj");
    for (size_t i = 0; i < x.size(); ++i) x[i] += mp[i];
  }
  auto xf = layer_norm(x, "ln_f");
  const auto& head = W(o.untied ? "lm_head.weight" : "wte.weight");
  std::vector<double> logits(o.vocab_size);
  for (int v = 0; v < o.vocab_size; ++v) {
    double s = 0;
    for (int e = 0; e < d; ++e) s += xf[(T - 1) * d + e] * head[static_cast<size_t>(v) * d + e];
    logits[v] = s;
  }
  return logits;
}

}  // namespace helpline::lm::testing
