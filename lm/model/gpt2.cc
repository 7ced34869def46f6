// The GPT-2 forward pass. libtorch holds the weights (conversion, transposition and packing
// are tensor ops at load time), runs the intra-op thread pool (at::parallel_for) and sets
// inference mode; the per-step arithmetic is in gpt2_kernels.cc, which is batch-invariant by
// construction (see there). Measured on this machine, torch::linear over OpenBLAS is not
// batch-invariant (gemv vs gemm, blocking by M) and is slower at batch 1 than the packed
// kernel; figures in README.md.
#include "lm/model/gpt2.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lm/model/gpt2_kernels.h"
#include "lm/model/safetensors.h"
#include "nlohmann/json.hpp"

namespace helpline::lm {
namespace {

namespace kern = gpt2_kernels;
using kern::kPanel;

enum class Activation { kGeluTanh, kGeluErf };

// Everything config.json decides, beyond the public Gpt2Config.
struct ModelShape {
  Gpt2Config config;
  int n_inner = 0;
  Activation activation = Activation::kGeluTanh;
  bool scale_attn_weights = true;
  bool scale_by_inverse_layer_idx = false;
  bool tie_word_embeddings = true;
};

// A linear layer with its weight packed for gpt2_kernels::LinearPanels.
struct PackedLinear {
  at::Tensor weight;  // [panels, k, 64]: float32, or int16 holding the f16 / bf16 bits
  kern::WeightType wtype = kern::WeightType::kF32;
  at::Tensor bias;  // [n] float32, or undefined
  int k = 0;
  int n = 0;
  int panels() const { return (n + kPanel - 1) / kPanel; }
};

struct Layer {
  at::Tensor ln1_gain, ln1_bias, ln2_gain, ln2_bias;
  PackedLinear attn, attn_proj, fc, mlp_proj;
};

// Packs a [k, n] (in, out) matrix (float32, or int16 bit patterns of f16 / bf16, whose zero is
// the bits 0) into [panels, k, 64] with zero columns past n.
at::Tensor PackInOut(const at::Tensor& w_in_out) {
  const int64_t k = w_in_out.size(0);
  const int64_t n = w_in_out.size(1);
  const int64_t panels = (n + kPanel - 1) / kPanel;
  at::Tensor padded = at::constant_pad_nd(w_in_out, {0, panels * kPanel - n}, 0.0);
  return padded.view({k, panels, kPanel}).permute({1, 0, 2}).contiguous();
}

absl::StatusOr<nlohmann::json> ReadJsonFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  std::stringstream buffer;
  buffer << in.rdbuf();
  nlohmann::json json = nlohmann::json::parse(buffer.str(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(path, ": not valid JSON"));
  if (!json.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  return json;
}

absl::StatusOr<ModelShape> ParseConfig(const std::string& path, const nlohmann::json& json) {
  auto bad = [&](absl::string_view field, absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": field ", field, ": ", what));
  };
  auto get_int = [&](std::initializer_list<const char*> names, bool required, int fallback,
                     int& out) -> absl::Status {
    for (const char* name : names) {
      auto it = json.find(name);
      if (it == json.end() || it->is_null()) continue;
      if (!it->is_number_integer()) return bad(name, "is not an integer");
      const int64_t v = it->get<int64_t>();
      if (v < -1 || v > (1 << 30)) return bad(name, absl::StrCat("value ", v, " is out of range"));
      out = static_cast<int>(v);
      return absl::OkStatus();
    }
    if (required) return bad(*names.begin(), "is missing");
    out = fallback;
    return absl::OkStatus();
  };
  auto get_bool = [&](const char* name, bool fallback, bool& out) -> absl::Status {
    auto it = json.find(name);
    if (it == json.end() || it->is_null()) {
      out = fallback;
      return absl::OkStatus();
    }
    if (!it->is_boolean()) return bad(name, "is not a boolean");
    out = it->get<bool>();
    return absl::OkStatus();
  };

  ModelShape shape;
  Gpt2Config& c = shape.config;
  absl::Status s;
  if (!(s = get_int({"vocab_size"}, true, 0, c.vocab_size)).ok()) return s;
  if (!(s = get_int({"n_positions", "n_ctx"}, true, 0, c.n_positions)).ok()) return s;
  if (!(s = get_int({"n_embd"}, true, 0, c.n_embd)).ok()) return s;
  if (!(s = get_int({"n_layer"}, true, 0, c.n_layer)).ok()) return s;
  if (!(s = get_int({"n_head"}, true, 0, c.n_head)).ok()) return s;
  if (!(s = get_int({"n_inner"}, false, 4 * c.n_embd, shape.n_inner)).ok()) return s;
  if (!(s = get_int({"bos_token_id"}, false, -1, c.bos_token_id)).ok()) return s;
  if (!(s = get_int({"eos_token_id"}, false, -1, c.eos_token_id)).ok()) return s;
  for (auto [name, value] : {std::pair<const char*, int>{"vocab_size", c.vocab_size}, {"n_positions", c.n_positions},
                             {"n_embd", c.n_embd}, {"n_layer", c.n_layer}, {"n_head", c.n_head},
                             {"n_inner", shape.n_inner}}) {
    if (value <= 0) return bad(name, absl::StrCat("must be positive, is ", value));
  }
  if (c.n_embd % c.n_head != 0) {
    return bad("n_head", absl::StrCat("n_embd ", c.n_embd, " is not a multiple of n_head ", c.n_head));
  }
  if (auto it = json.find("layer_norm_epsilon"); it != json.end() && !it->is_null()) {
    if (!it->is_number() || !(it->get<double>() > 0)) return bad("layer_norm_epsilon", "is not a positive number");
    c.layer_norm_epsilon = it->get<float>();
  }
  if (auto it = json.find("activation_function"); it != json.end() && !it->is_null()) {
    const std::string act = it->is_string() ? it->get<std::string>() : it->dump();
    if (act == "gelu_new" || act == "gelu_pytorch_tanh" || act == "gelu_fast") {
      shape.activation = Activation::kGeluTanh;
    } else if (act == "gelu") {
      shape.activation = Activation::kGeluErf;
    } else {
      return bad("activation_function",
                 absl::StrCat("\"", act, "\" is not supported (gelu_new, gelu_pytorch_tanh, gelu_fast, gelu)"));
    }
  }
  if (!(s = get_bool("scale_attn_weights", true, shape.scale_attn_weights)).ok()) return s;
  if (!(s = get_bool("scale_attn_by_inverse_layer_idx", false, shape.scale_by_inverse_layer_idx)).ok()) return s;
  if (!(s = get_bool("tie_word_embeddings", true, shape.tie_word_embeddings)).ok()) return s;
  bool cross = false;
  if (!(s = get_bool("add_cross_attention", false, cross)).ok()) return s;
  if (cross) return bad("add_cross_attention", "cross-attention (encoder-decoder use) is not supported");
  if (auto it = json.find("model_type"); it != json.end() && !it->is_null()) {
    if (!it->is_string() || it->get<std::string>() != "gpt2") {
      return bad("model_type", absl::StrCat(it->dump(), " is not \"gpt2\""));
    }
  }
  return shape;
}

std::string ShapeText(absl::Span<const int64_t> shape) { return absl::StrCat("[", absl::StrJoin(shape, ", "), "]"); }

class Gpt2Cache;

class TorchGpt2Model final : public Gpt2Model {
 public:
  static absl::StatusOr<std::unique_ptr<Gpt2Model>> Load(const std::string& dir, const LoadOptions& options);

  const Gpt2Config& config() const override { return shape_.config; }
  std::unique_ptr<KvCache> NewCache() const override;
  absl::Status Step(absl::Span<const StepInput> inputs, std::vector<float>& logits) override;
  size_t weight_bytes() const override { return weight_bytes_; }

 private:
  absl::Status LoadTensors(const std::string& path, bool keep_16bit);
  void Linear(const PackedLinear& layer, const float* x, int64_t ldx, int m, float* y, int64_t ldy,
              kern::Epilogue epilogue) const;
  void LayerNorm(const at::Tensor& gain, const at::Tensor& bias, const float* x, int m, float* y) const;

  ModelShape shape_;
  int head_dim_ = 0;
  at::Tensor wpe_;            // [n_positions, n_embd]
  at::Tensor ln_f_gain_, ln_f_bias_;
  std::vector<Layer> layers_;
  PackedLinear head_;          // [n_embd -> vocab]
  at::Tensor wte_packed_;      // wte packed like a head: row v of wte is column v
  kern::WeightType wte_type_ = kern::WeightType::kF32;
  size_t weight_bytes_ = 0;
  // Scratch reused across steps.
  std::vector<float> x_, h_, qkv_, att_, ff_, last_;
};

// One sequence's keys and values: for each layer, K and V as [n_head][capacity][head_dim],
// so that one head's cache is contiguous for the attention loop.
class Gpt2Cache final : public KvCache {
 public:
  Gpt2Cache(const TorchGpt2Model* owner, int n_layer, int n_head, int head_dim, int max_len)
      : owner_(owner), n_layer_(n_layer), n_head_(n_head), head_dim_(head_dim), max_len_(max_len) {}

  int length() const override { return length_; }
  size_t bytes() const override { return data_.size() * sizeof(float); }
  void Truncate(int n) override { length_ = std::clamp(n, 0, length_); }
  std::unique_ptr<KvCache> Clone() const override {
    auto copy = std::make_unique<Gpt2Cache>(owner_, n_layer_, n_head_, head_dim_, max_len_);
    copy->Reserve(length_);
    copy->length_ = length_;
    CopyRows(*this, *copy, length_);
    return copy;
  }

  const TorchGpt2Model* owner() const { return owner_; }
  int capacity() const { return capacity_; }
  // Makes room for `need` tokens (doubling, capped at the context length).
  void Reserve(int need) {
    if (need <= capacity_) return;
    int cap = std::max({need, 2 * capacity_, 16});
    cap = std::min(cap, std::max(need, max_len_));
    Gpt2Cache bigger(owner_, n_layer_, n_head_, head_dim_, max_len_);
    bigger.capacity_ = cap;
    bigger.data_.resize(static_cast<size_t>(n_layer_) * 2 * n_head_ * cap * head_dim_);
    CopyRows(*this, bigger, length_);
    data_.swap(bigger.data_);
    capacity_ = cap;
  }
  // Keys (kv = 0) or values (kv = 1) of one layer and head: [capacity][head_dim].
  float* Block(int layer, int kv, int head) {
    return data_.data() + ((static_cast<size_t>(layer) * 2 + kv) * n_head_ + head) * capacity_ * head_dim_;
  }
  const float* Block(int layer, int kv, int head) const { return const_cast<Gpt2Cache*>(this)->Block(layer, kv, head); }
  void set_length(int n) { length_ = n; }

 private:
  static void CopyRows(const Gpt2Cache& from, Gpt2Cache& to, int rows) {
    if (rows == 0) return;
    for (int l = 0; l < from.n_layer_; ++l)
      for (int kv = 0; kv < 2; ++kv)
        for (int h = 0; h < from.n_head_; ++h)
          std::memcpy(to.Block(l, kv, h), from.Block(l, kv, h), sizeof(float) * rows * from.head_dim_);
  }

  const TorchGpt2Model* owner_;
  int n_layer_, n_head_, head_dim_, max_len_;
  int length_ = 0;
  int capacity_ = 0;
  std::vector<float> data_;
};

std::unique_ptr<KvCache> TorchGpt2Model::NewCache() const {
  const Gpt2Config& c = shape_.config;
  return std::make_unique<Gpt2Cache>(this, c.n_layer, c.n_head, head_dim_, c.n_positions);
}

absl::StatusOr<std::unique_ptr<Gpt2Model>> TorchGpt2Model::Load(const std::string& dir,
                                                                const LoadOptions& options) {
  const std::string config_path = dir + "/config.json";
  absl::StatusOr<nlohmann::json> json = ReadJsonFile(config_path);
  if (!json.ok()) return json.status();
  absl::StatusOr<ModelShape> shape = ParseConfig(config_path, *json);
  if (!shape.ok()) return shape.status();
  if (options.threads > 0) at::set_num_threads(options.threads);

  std::unique_ptr<TorchGpt2Model> model(new TorchGpt2Model());
  model->shape_ = *shape;
  model->head_dim_ = shape->config.n_embd / shape->config.n_head;
  try {
    c10::InferenceMode guard;
    absl::Status status = model->LoadTensors(dir + "/model.safetensors", !options.f32_weights);
    if (!status.ok()) return status;
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(dir, "/model.safetensors: loading failed: ", e.what()));
  }
  return std::unique_ptr<Gpt2Model>(std::move(model));
}

absl::Status TorchGpt2Model::LoadTensors(const std::string& path, bool keep_16bit) {
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  if (!file.ok()) return file.status();
  const Gpt2Config& c = shape_.config;
  const int64_t d = c.n_embd;
  const int64_t ff = shape_.n_inner;

  // Expected names (without the "transformer." prefix) and shapes.
  std::map<std::string, std::vector<int64_t>> want = {
      {"wte.weight", {c.vocab_size, d}}, {"wpe.weight", {c.n_positions, d}}, {"ln_f.weight", {d}}, {"ln_f.bias", {d}}};
  for (int i = 0; i < c.n_layer; ++i) {
    const std::string p = absl::StrCat("h.", i, ".");
    want[p + "ln_1.weight"] = {d};
    want[p + "ln_1.bias"] = {d};
    want[p + "attn.c_attn.weight"] = {d, 3 * d};
    want[p + "attn.c_attn.bias"] = {3 * d};
    want[p + "attn.c_proj.weight"] = {d, d};
    want[p + "attn.c_proj.bias"] = {d};
    want[p + "ln_2.weight"] = {d};
    want[p + "ln_2.bias"] = {d};
    want[p + "mlp.c_fc.weight"] = {d, ff};
    want[p + "mlp.c_fc.bias"] = {ff};
    want[p + "mlp.c_proj.weight"] = {ff, d};
    want[p + "mlp.c_proj.bias"] = {d};
  }
  want["lm_head.weight"] = {c.vocab_size, d};

  std::map<std::string, const SafetensorsTensor*> found;
  for (const auto& [name, tensor] : (*file)->tensors()) {
    std::string key = name;
    if (key.rfind("transformer.", 0) == 0) key = key.substr(12);
    // The causal-mask buffers some checkpoints carry are not parameters.
    if (key.size() > 2 && key.rfind("h.", 0) == 0 &&
        (key.ends_with(".attn.bias") || key.ends_with(".attn.masked_bias"))) {
      continue;
    }
    auto it = want.find(key);
    if (it == want.end()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": unknown tensor ", name, " (expected Hugging Face GPT-2 names, n_layer=",
                                                     c.n_layer, ")"));
    }
    if (tensor.shape != it->second) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor ", name, " has shape ", ShapeText(tensor.shape),
                                                     ", config.json implies ", ShapeText(it->second)));
    }
    if (!found.emplace(key, &tensor).second) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor ", key, " appears both with and without the transformer. prefix"));
    }
  }
  for (const auto& [name, unused] : want) {
    if (name == "lm_head.weight") continue;
    if (!found.count(name)) return absl::InvalidArgumentError(absl::StrCat(path, ": missing tensor ", name));
  }
  if (!shape_.tie_word_embeddings && !found.count("lm_head.weight")) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": missing tensor lm_head.weight (config.json sets tie_word_embeddings to false)"));
  }

  auto f32 = [&](const std::string& name) {
    const SafetensorsTensor& t = *found.at(name);
    at::Tensor out = at::empty(t.shape, at::kFloat);
    SafetensorsFile::ToFloat32(t, out.data_ptr<float>());
    return out;
  };
  // A matrix as stored: F16 / BF16 as their bits (int16) when keep_16bit, else widened to f32.
  auto matrix = [&](const std::string& name) -> std::pair<at::Tensor, kern::WeightType> {
    const SafetensorsTensor& t = *found.at(name);
    if (!keep_16bit || t.dtype == SafetensorsDtype::kF32) return {f32(name), kern::WeightType::kF32};
    at::Tensor out = at::empty(t.shape, at::kShort);
    std::memcpy(out.data_ptr(), t.data, t.nbytes);
    return {out, t.dtype == SafetensorsDtype::kF16 ? kern::WeightType::kF16 : kern::WeightType::kBF16};
  };
  auto linear = [&](const std::string& prefix) {
    PackedLinear l;
    auto [w, wtype] = matrix(prefix + ".weight");  // Conv1D: [in, out]
    l.k = static_cast<int>(w.size(0));
    l.n = static_cast<int>(w.size(1));
    l.weight = PackInOut(w);
    l.wtype = wtype;
    l.bias = f32(prefix + ".bias");
    return l;
  };

  wpe_ = f32("wpe.weight");
  ln_f_gain_ = f32("ln_f.weight");
  ln_f_bias_ = f32("ln_f.bias");
  for (int i = 0; i < c.n_layer; ++i) {
    const std::string p = absl::StrCat("h.", i, ".");
    Layer layer;
    layer.ln1_gain = f32(p + "ln_1.weight");
    layer.ln1_bias = f32(p + "ln_1.bias");
    layer.ln2_gain = f32(p + "ln_2.weight");
    layer.ln2_bias = f32(p + "ln_2.bias");
    layer.attn = linear(p + "attn.c_attn");
    layer.attn_proj = linear(p + "attn.c_proj");
    layer.fc = linear(p + "mlp.c_fc");
    layer.mlp_proj = linear(p + "mlp.c_proj");
    layers_.push_back(std::move(layer));
  }
  // The output matrix [vocab, d] is (out, in): transpose to (in, out) before packing. The
  // token embedding is read back from the same packed copy when it is tied.
  head_.k = static_cast<int>(d);
  head_.n = c.vocab_size;
  auto [head, head_type] = matrix(shape_.tie_word_embeddings ? "wte.weight" : "lm_head.weight");
  head_.weight = PackInOut(head.t());
  head_.wtype = head_type;
  // Untied: wte is kept separately, packed the same way so that the embedding reads one layout.
  if (shape_.tie_word_embeddings) {
    wte_packed_ = head_.weight;
    wte_type_ = head_.wtype;
  } else {
    auto [wte, wte_type] = matrix("wte.weight");
    wte_packed_ = PackInOut(wte.t());
    wte_type_ = wte_type;
  }

  auto add_bytes = [&](const at::Tensor& t) {
    if (t.defined()) weight_bytes_ += t.numel() * t.element_size();
  };
  for (const at::Tensor* t : {&wpe_, &ln_f_gain_, &ln_f_bias_, &head_.weight}) add_bytes(*t);
  if (!shape_.tie_word_embeddings) add_bytes(wte_packed_);
  for (const Layer& layer : layers_) {
    for (const at::Tensor* t : {&layer.ln1_gain, &layer.ln1_bias, &layer.ln2_gain, &layer.ln2_bias}) add_bytes(*t);
    for (const PackedLinear* l : {&layer.attn, &layer.attn_proj, &layer.fc, &layer.mlp_proj}) {
      add_bytes(l->weight);
      add_bytes(l->bias);
    }
  }
  return absl::OkStatus();
}

void TorchGpt2Model::Linear(const PackedLinear& layer, const float* x, int64_t ldx, int m, float* y, int64_t ldy,
                            kern::Epilogue epilogue) const {
  const void* w = layer.weight.data_ptr();
  const float* b = layer.bias.defined() ? layer.bias.data_ptr<float>() : nullptr;
  // A task should hold ~64k multiply-adds or more, or the pool's overhead dominates.
  const int64_t per_panel = static_cast<int64_t>(m) * layer.k * kPanel;
  const int64_t grain = std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, per_panel));
  at::parallel_for(0, layer.panels(), grain, [&](int64_t p0, int64_t p1) {
    kern::LinearPanels(x, ldx, m, layer.k, w, layer.wtype, b, layer.n, static_cast<int>(p0), static_cast<int>(p1), y, ldy, epilogue);
  });
}

void TorchGpt2Model::LayerNorm(const at::Tensor& gain, const at::Tensor& bias, const float* x, int m, float* y) const {
  const int d = shape_.config.n_embd;
  const float eps = shape_.config.layer_norm_epsilon;
  const float* g = gain.data_ptr<float>();
  const float* b = bias.data_ptr<float>();
  const int64_t grain = std::max<int64_t>(1, 16384 / d);
  at::parallel_for(0, m, grain, [&](int64_t r0, int64_t r1) {
    kern::LayerNormRows(x + r0 * d, d, static_cast<int>(r1 - r0), d, g, b, eps, y + r0 * d, d);
  });
}

absl::Status TorchGpt2Model::Step(absl::Span<const StepInput> inputs, std::vector<float>& logits) {
  const Gpt2Config& c = shape_.config;
  const int d = c.n_embd;
  const int n_head = c.n_head;
  const int hd = head_dim_;
  const int ff = shape_.n_inner;
  const int batch = static_cast<int>(inputs.size());
  if (batch == 0) {
    logits.clear();
    return absl::OkStatus();
  }

  // Validate everything before touching any cache.
  std::vector<Gpt2Cache*> caches(batch);
  std::vector<int> row_start(batch + 1, 0);
  std::set<const KvCache*> seen;
  for (int i = 0; i < batch; ++i) {
    const StepInput& in = inputs[i];
    auto* cache = dynamic_cast<Gpt2Cache*>(in.cache);
    if (cache == nullptr || cache->owner() != this) {
      return absl::InvalidArgumentError(absl::StrCat("input ", i, ": cache is null or not made by this model"));
    }
    if (!seen.insert(cache).second) {
      return absl::InvalidArgumentError(absl::StrCat("input ", i, ": the same cache appears twice in one step"));
    }
    if (in.tokens.empty()) return absl::InvalidArgumentError(absl::StrCat("input ", i, ": no tokens"));
    if (cache->length() + static_cast<int64_t>(in.tokens.size()) > c.n_positions) {
      return absl::InvalidArgumentError(absl::StrCat("input ", i, ": ", cache->length(), " cached + ", in.tokens.size(),
                                                     " new tokens exceed the context length n_positions=",
                                                     c.n_positions));
    }
    for (int32_t id : in.tokens) {
      if (id < 0 || id >= c.vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("input ", i, ": token id ", id, " is outside [0, vocab_size=", c.vocab_size, ")"));
      }
    }
    caches[i] = cache;
    row_start[i + 1] = row_start[i] + static_cast<int>(in.tokens.size());
  }
  const int total = row_start[batch];

  c10::InferenceMode guard;
  for (int i = 0; i < batch; ++i) caches[i]->Reserve(caches[i]->length() + static_cast<int>(inputs[i].tokens.size()));
  x_.resize(static_cast<size_t>(total) * d);
  h_.resize(static_cast<size_t>(total) * d);
  qkv_.resize(static_cast<size_t>(total) * 3 * d);
  att_.resize(static_cast<size_t>(total) * d);
  ff_.resize(static_cast<size_t>(total) * ff);
  last_.resize(static_cast<size_t>(batch) * d);

  // Embedding: x = wte[token] + wpe[position]; wte is read from its packed (column) layout.
  {
    const void* wte = wte_packed_.data_ptr();
    const float* wpe = wpe_.data_ptr<float>();
    for (int i = 0; i < batch; ++i) {
      const int start = caches[i]->length();
      for (size_t t = 0; t < inputs[i].tokens.size(); ++t) {
        const float* pos = wpe + static_cast<int64_t>(start + t) * d;
        float* row = x_.data() + static_cast<int64_t>(row_start[i] + t) * d;
        kern::ReadPackedColumn(wte, wte_type_, d, inputs[i].tokens[t], row);
        for (int e = 0; e < d; ++e) row[e] += pos[e];
      }
    }
  }

  const kern::Epilogue act =
      shape_.activation == Activation::kGeluTanh ? kern::Epilogue::kGeluTanh : kern::Epilogue::kGeluErf;
  for (int l = 0; l < c.n_layer; ++l) {
    const Layer& layer = layers_[l];
    LayerNorm(layer.ln1_gain, layer.ln1_bias, x_.data(), total, h_.data());
    Linear(layer.attn, h_.data(), d, total, qkv_.data(), 3 * d, kern::Epilogue::kNone);

    // Append the new keys and values to each sequence's cache.
    for (int i = 0; i < batch; ++i) {
      const int start = caches[i]->length();
      const int n = static_cast<int>(inputs[i].tokens.size());
      for (int h = 0; h < n_head; ++h) {
        float* kb = caches[i]->Block(l, 0, h);
        float* vb = caches[i]->Block(l, 1, h);
        for (int t = 0; t < n; ++t) {
          const float* row = qkv_.data() + static_cast<int64_t>(row_start[i] + t) * 3 * d;
          std::memcpy(kb + static_cast<int64_t>(start + t) * hd, row + d + h * hd, sizeof(float) * hd);
          std::memcpy(vb + static_cast<int64_t>(start + t) * hd, row + 2 * d + h * hd, sizeof(float) * hd);
        }
      }
    }

    // Attention: one task per (sequence, head); each query attends to its cache prefix.
    float scale = shape_.scale_attn_weights ? 1.0f / std::sqrt(static_cast<float>(hd)) : 1.0f;
    if (shape_.scale_by_inverse_layer_idx) scale /= static_cast<float>(l + 1);
    at::parallel_for(0, static_cast<int64_t>(batch) * n_head, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> scores(c.n_positions);
      for (int64_t task = begin; task < end; ++task) {
        const int i = static_cast<int>(task / n_head);
        const int h = static_cast<int>(task % n_head);
        const int start = caches[i]->length();
        const float* kb = caches[i]->Block(l, 0, h);
        const float* vb = caches[i]->Block(l, 1, h);
        const int n = static_cast<int>(inputs[i].tokens.size());
        for (int t = 0; t < n; ++t) {
          const int64_t row = row_start[i] + t;
          kern::AttendQuery(qkv_.data() + row * 3 * d + h * hd, kb, vb, start + t + 1, hd, scale, scores.data(),
                            att_.data() + row * d + h * hd);
        }
      }
    });

    Linear(layer.attn_proj, att_.data(), d, total, x_.data(), d, kern::Epilogue::kAddToOutput);
    LayerNorm(layer.ln2_gain, layer.ln2_bias, x_.data(), total, h_.data());
    Linear(layer.fc, h_.data(), d, total, ff_.data(), ff, act);
    Linear(layer.mlp_proj, ff_.data(), ff, total, x_.data(), d, kern::Epilogue::kAddToOutput);
  }

  // Only each input's last position goes through the final norm and the head.
  for (int i = 0; i < batch; ++i) {
    std::memcpy(last_.data() + static_cast<int64_t>(i) * d, x_.data() + static_cast<int64_t>(row_start[i + 1] - 1) * d,
                sizeof(float) * d);
  }
  LayerNorm(ln_f_gain_, ln_f_bias_, last_.data(), batch, last_.data());
  logits.resize(static_cast<size_t>(batch) * c.vocab_size);
  Linear(head_, last_.data(), d, batch, logits.data(), c.vocab_size, kern::Epilogue::kNone);

  for (int i = 0; i < batch; ++i) caches[i]->set_length(caches[i]->length() + static_cast<int>(inputs[i].tokens.size()));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Gpt2Model>> Gpt2Model::Load(const std::string& dir, const LoadOptions& options) {
  return TorchGpt2Model::Load(dir, options);
}

}  // namespace helpline::lm
