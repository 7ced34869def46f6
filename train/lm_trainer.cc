// The one libtorch translation unit of the trainer: model, optimizer, checkpoints, export.
#include "train/lm_trainer.h"

#include <torch/torch.h>

#include <malloc.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace helpline::train {
namespace {

using json = nlohmann::json;

// Seeded Fisher-Yates (std::shuffle's algorithm is implementation-defined).
std::vector<int64_t> Permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> p(n);
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  std::mt19937_64 rng(seed);
  for (int64_t i = n - 1; i > 0; --i) {
    const int64_t j = static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1));
    std::swap(p[i], p[j]);
  }
  return p;
}

json ShapeJson(const LmShape& s) {
  return {{"vocab_size", s.vocab_size}, {"n_positions", s.n_positions}, {"n_embd", s.n_embd},
          {"n_layer", s.n_layer},       {"n_head", s.n_head}};
}

std::string ShapeText(const LmShape& s) {
  return absl::StrCat(s.n_layer, " layers x ", s.n_embd, " (", s.n_head, " heads), ", s.n_positions,
                      " positions, vocab ", s.vocab_size);
}

class TorchTrainer : public LmTrainer {
 public:
  TorchTrainer(const LmTrainOptions& o, TokenStream train, TokenStream dev)
      : o_(o), train_(std::move(train)), dev_(std::move(dev)) {
    if (o_.threads > 0) torch::set_num_threads(o_.threads);
    // Keep freed activation buffers in the heap instead of returning them to the kernel:
    // without this every step maps and faults in its multi-megabyte tensors afresh (~10 %
    // of a step measured here). Process-wide; the trainer owns its process.
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    const LmShape& s = o_.shape;
    const int64_t d = s.n_embd, V = s.vocab_size;
    torch::manual_seed(o_.seed);
    torch::NoGradGuard no_grad;
    auto normal = [](std::vector<int64_t> shape, double stddev) {
      return torch::randn(shape, torch::kFloat32) * stddev;
    };
    const double proj_std = 0.02 / std::sqrt(2.0 * s.n_layer);
    Add("wte.weight", normal({V, d}, 0.02), true);
    Add("wpe.weight", normal({s.n_positions, d}, 0.01), true);
    for (int l = 0; l < s.n_layer; ++l) {
      const std::string p = absl::StrCat("h.", l, ".");
      Add(p + "ln_1.weight", torch::ones({d}), false);
      Add(p + "ln_1.bias", torch::zeros({d}), false);
      Add(p + "attn.c_attn.weight", normal({d, 3 * d}, 0.02), true);
      Add(p + "attn.c_attn.bias", torch::zeros({3 * d}), false);
      Add(p + "attn.c_proj.weight", normal({d, d}, proj_std), true);
      Add(p + "attn.c_proj.bias", torch::zeros({d}), false);
      Add(p + "ln_2.weight", torch::ones({d}), false);
      Add(p + "ln_2.bias", torch::zeros({d}), false);
      Add(p + "mlp.c_fc.weight", normal({d, 4 * d}, 0.02), true);
      Add(p + "mlp.c_fc.bias", torch::zeros({4 * d}), false);
      Add(p + "mlp.c_proj.weight", normal({4 * d, d}, proj_std), true);
      Add(p + "mlp.c_proj.bias", torch::zeros({d}), false);
    }
    Add("ln_f.weight", torch::ones({d}), false);
    Add("ln_f.bias", torch::zeros({d}), false);

    std::vector<torch::Tensor> decay, no_decay;
    for (size_t i = 0; i < params_.size(); ++i) (decays_[i] ? decay : no_decay).push_back(params_[i]);
    auto base = torch::optim::AdamWOptions(o_.lr)
                    .betas(std::make_tuple(o_.beta1, o_.beta2))
                    .eps(o_.eps)
                    .weight_decay(o_.weight_decay);
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(base));
    auto nd = base;
    nd.weight_decay(0.0);
    groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(nd));
    optimizer_ = std::make_unique<torch::optim::AdamW>(std::move(groups), base);

    mask_ = torch::triu(torch::ones({s.n_positions, s.n_positions}, torch::kBool), 1);
    windows_ = (static_cast<int64_t>(train_.size()) - 1) / s.n_positions;
    weighted_ = o_.context_weight != 1.0 && (!train_.reply.empty() || !dev_.reply.empty());
    rows_per_step_ = std::max<int64_t>(1, o_.batch_tokens / s.n_positions);
  }

  StepStats Step() override {
    const LmShape& s = o_.shape;
    const double lr = LearningRate(o_, step_);
    for (auto& group : optimizer_->param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    }
    optimizer_->zero_grad();
    double loss_sum = 0;
    const int64_t micro = std::max<int64_t>(1, std::min(o_.micro_rows, rows_per_step_));
    std::vector<Batch> batches;
    double weight_total = 0;
    for (int64_t r0 = 0; r0 < rows_per_step_; r0 += micro) {
      const int64_t rows = std::min(micro, rows_per_step_ - r0);
      batches.push_back(TrainBatch(step_ * rows_per_step_ + r0, rows));
      weight_total += batches.back().weight_sum;
    }
    for (const Batch& b : batches) {
      torch::Tensor loss;
      if (weighted_) {
        if (weight_total <= 0) break;  // a step with nothing to learn from (no reply token)
        loss = WeightedLossSum(b) / weight_total;
      } else {
        torch::Tensor logits = Forward(b.input).view({-1, s.vocab_size});
        loss = torch::nn::functional::cross_entropy(logits, b.target.reshape({-1}));
        loss = loss * (static_cast<double>(b.input.size(0)) / rows_per_step_);
      }
      loss.backward();
      loss_sum += loss.item<double>();
    }
    double norm;
    if (o_.clip > 0) {
      norm = torch::nn::utils::clip_grad_norm_(params_, o_.clip);
    } else {
      torch::NoGradGuard g;
      double sq = 0;
      for (const auto& p : params_) sq += p.grad().pow(2).sum().item<double>();
      norm = std::sqrt(sq);
    }
    optimizer_->step();
    ++step_;
    return StepStats{step_, loss_sum, lr, norm, rows_per_step_ * s.n_positions};
  }

  double EvalLoss(int64_t max_tokens) override {
    torch::NoGradGuard no_grad;
    const int64_t T = o_.shape.n_positions;
    const int64_t n = (static_cast<int64_t>(dev_.size()) - 1) / T;
    int64_t windows = n;
    if (max_tokens > 0) windows = std::min(n, std::max<int64_t>(1, max_tokens / T));
    double total = 0, count = 0;
    for (int64_t w0 = 0; w0 < windows; w0 += 16) {
      const int64_t rows = std::min<int64_t>(16, windows - w0);
      Batch b = Rows(dev_, rows, [&](int64_t r) { return (w0 + r) * T; });
      if (weighted_) {
        total += WeightedLossSum(b).item<double>();
        count += b.weight_sum;
      } else {
        total += torch::nn::functional::cross_entropy(
                     Forward(b.input).view({-1, o_.shape.vocab_size}), b.target.reshape({-1}),
                     torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                     .item<double>();
        count += static_cast<double>(rows * T);
      }
    }
    return count <= 0 ? 0.0 : total / count;
  }

  absl::Status SaveCheckpoint(const std::string& dir) override {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return absl::InternalError(absl::StrCat(dir, ": cannot create: ", ec.message()));
    const std::string path = (std::filesystem::path(dir) / "checkpoint.pt").string();
    const std::string tmp = path + ".tmp";
    try {
      torch::serialize::OutputArchive archive;
      for (size_t i = 0; i < params_.size(); ++i) archive.write(absl::StrCat("p", i), params_[i]);
      torch::serialize::OutputArchive opt;
      optimizer_->save(opt);
      archive.write("optimizer", opt);
      json meta = {{"shape", ShapeJson(o_.shape)}, {"seed", o_.seed}, {"step", step_},
                   {"rows_per_step", rows_per_step_}, {"format", "helpline-train-lm-1"}};
      archive.write("meta", c10::IValue(meta.dump()));
      archive.save_to(tmp);
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat(tmp, ": cannot write the checkpoint: ", e.what_without_backtrace()));
    }
    std::filesystem::rename(tmp, path, ec);
    if (ec) return absl::InternalError(absl::StrCat(path, ": rename failed: ", ec.message()));
    return absl::OkStatus();
  }

  // The options DIR/checkpoint.pt was written with, when it has this trainer's shape.
  absl::StatusOr<LmTrainOptions> ReadCheckpointOfThisShape(const std::string& dir) const {
    absl::StatusOr<LmTrainOptions> saved = ReadCheckpointOptions(dir);
    if (saved.ok() && !(saved->shape == o_.shape)) {
      return absl::InvalidArgumentError(absl::StrCat(dir, "/checkpoint.pt: written for ", ShapeText(saved->shape),
                                                     ", not ", ShapeText(o_.shape)));
    }
    return saved;
  }

  absl::Status LoadCheckpoint(const std::string& dir) override {
    absl::StatusOr<LmTrainOptions> saved = ReadCheckpointOfThisShape(dir);
    if (!saved.ok()) return saved.status();
    if (saved->seed != o_.seed) {
      return absl::InvalidArgumentError(absl::StrCat(dir, "/checkpoint.pt: written with --seed ", saved->seed,
                                                     ", not ", o_.seed, " (the data order would differ)"));
    }
    const std::string path = (std::filesystem::path(dir) / "checkpoint.pt").string();
    try {
      torch::serialize::InputArchive archive;
      archive.load_from(path);
      c10::IValue meta_value;
      archive.read("meta", meta_value);
      const json meta = json::parse(meta_value.toStringRef());
      if (meta.value("rows_per_step", int64_t{0}) != rows_per_step_) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": written with ", meta.value("rows_per_step", int64_t{0}) * o_.shape.n_positions,
            " tokens per step, not ", rows_per_step_ * o_.shape.n_positions, " (--batch-tokens)"));
      }
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < params_.size(); ++i) {
        torch::Tensor t;
        archive.read(absl::StrCat("p", i), t);
        params_[i].copy_(t);
      }
      torch::serialize::InputArchive opt;
      archive.read("optimizer", opt);
      optimizer_->load(opt);
      step_ = meta.at("step").get<int64_t>();
    } catch (const std::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": cannot read the checkpoint: ", e.what()));
    }
    return absl::OkStatus();
  }

  absl::Status InitFromCheckpoint(const std::string& dir) override {
    absl::StatusOr<LmTrainOptions> saved = ReadCheckpointOfThisShape(dir);
    if (!saved.ok()) return saved.status();
    const std::string path = (std::filesystem::path(dir) / "checkpoint.pt").string();
    try {
      torch::serialize::InputArchive archive;
      archive.load_from(path);
      std::vector<torch::Tensor> loaded(params_.size());
      for (size_t i = 0; i < params_.size(); ++i) {
        archive.read(absl::StrCat("p", i), loaded[i]);
        if (!loaded[i].sizes().equals(params_[i].sizes())) {
          return absl::InvalidArgumentError(absl::StrCat(path, ": parameter ", names_[i], " has another shape"));
        }
      }
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < params_.size(); ++i) params_[i].copy_(loaded[i]);
    } catch (const std::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": cannot read the checkpoint: ", e.what()));
    }
    return absl::OkStatus();
  }

  absl::Status ExportHf(const std::string& dir, bool f16) const override {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return absl::InternalError(absl::StrCat(dir, ": cannot create: ", ec.message()));
    const LmShape& s = o_.shape;
    json config = {{"model_type", "gpt2"},
                   {"architectures", {"GPT2LMHeadModel"}},
                   {"vocab_size", s.vocab_size},
                   {"n_positions", s.n_positions},
                   {"n_ctx", s.n_positions},
                   {"n_embd", s.n_embd},
                   {"n_layer", s.n_layer},
                   {"n_head", s.n_head},
                   {"n_inner", nullptr},
                   {"activation_function", "gelu_new"},
                   {"layer_norm_epsilon", 1e-5},
                   {"tie_word_embeddings", true},
                   {"bos_token_id", o_.eos_id},
                   {"eos_token_id", o_.eos_id},
                   {"torch_dtype", f16 ? "float16" : "float32"}};
    {
      std::ofstream out(std::filesystem::path(dir) / "config.json", std::ios::trunc);
      out << config.dump(2) << "\n";
      if (!out) return absl::InternalError(absl::StrCat(dir, "/config.json: write failed"));
    }
    // safetensors: u64 header length, JSON header, raw little-endian data.
    json header = json::object();
    header["__metadata__"] = {{"format", "pt"}};
    std::vector<torch::Tensor> data;
    int64_t offset = 0;
    for (size_t i = 0; i < params_.size(); ++i) {
      torch::Tensor t = params_[i].detach().contiguous();
      t = f16 ? t.to(torch::kHalf) : t.to(torch::kFloat32);
      const int64_t bytes = t.numel() * t.element_size();
      header["transformer." + names_[i]] = {
          {"dtype", f16 ? "F16" : "F32"}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
      offset += bytes;
      data.push_back(t);
    }
    std::string text = header.dump();
    while (text.size() % 8 != 0) text += ' ';
    const std::string path = (std::filesystem::path(dir) / "model.safetensors").string();
    const std::string tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      const uint64_t n = text.size();
      for (int b = 0; b < 8; ++b) out.put(static_cast<char>((n >> (8 * b)) & 0xff));
      out << text;
      for (const torch::Tensor& t : data) {
        out.write(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
      }
      if (!out) return absl::InternalError(absl::StrCat(tmp, ": write failed"));
    }
    std::filesystem::rename(tmp, path, ec);
    if (ec) return absl::InternalError(absl::StrCat(path, ": rename failed: ", ec.message()));
    return absl::OkStatus();
  }

  std::vector<float> LastLogits(absl::Span<const int32_t> ids) override {
    torch::NoGradGuard no_grad;
    torch::Tensor input = torch::empty({1, static_cast<int64_t>(ids.size())}, torch::kLong);
    for (size_t i = 0; i < ids.size(); ++i) input[0][i] = ids[i];
    torch::Tensor logits = Forward(input).select(1, static_cast<int64_t>(ids.size()) - 1).squeeze(0).contiguous();
    const float* p = logits.data_ptr<float>();
    return std::vector<float>(p, p + logits.numel());
  }

  std::vector<std::vector<float>> ParameterValues() const override {
    std::vector<std::vector<float>> out;
    for (const auto& p : params_) {
      torch::Tensor t = p.detach().contiguous();
      out.emplace_back(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
    }
    return out;
  }

  int64_t step() const override { return step_; }
  int64_t parameter_count() const override {
    int64_t n = 0;
    for (const auto& p : params_) n += p.numel();
    return n;
  }
  const LmTrainOptions& options() const override { return o_; }

 private:
  void Add(const std::string& name, torch::Tensor t, bool decay) {
    names_.push_back(name);
    params_.push_back(t.contiguous().set_requires_grad(true));
    decays_.push_back(decay);
  }
  const torch::Tensor& P(size_t i) const { return params_[i]; }

  // Model input, targets and their loss weights [rows, T].
  struct Batch {
    torch::Tensor input, target, weight;
    double weight_sum = 0;
  };

  // Rows of `stream` starting at start(r), as a Batch. The weight of a target is 1 for a
  // reply token (or any token when none is marked), context_weight otherwise.
  template <typename Start>
  Batch Rows(const TokenStream& stream, int64_t rows, Start start) const {
    const int64_t T = o_.shape.n_positions;
    torch::Tensor buf = torch::empty({rows, T + 1}, torch::kLong);
    auto acc = buf.accessor<int64_t, 2>();
    Batch b;
    if (weighted_) b.weight = torch::empty({rows, T}, torch::kFloat32);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t first = start(r);
      for (int64_t t = 0; t <= T; ++t) acc[r][t] = stream.ids[first + t];
      if (!weighted_) continue;
      auto w = b.weight.accessor<float, 2>();
      for (int64_t t = 0; t < T; ++t) {
        const bool reply = stream.reply.empty() || stream.reply[first + t + 1] != 0;
        w[r][t] = reply ? 1.0f : static_cast<float>(o_.context_weight);
        b.weight_sum += w[r][t];
      }
    }
    if (!weighted_) b.weight_sum = static_cast<double>(rows * T);
    b.input = buf.narrow(1, 0, T);
    b.target = buf.narrow(1, 1, T);
    return b;
  }

  // Rows [first, first + rows) of the training order.
  Batch TrainBatch(int64_t first, int64_t rows) {
    const int64_t T = o_.shape.n_positions;
    std::vector<int64_t> starts(rows);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t global = first + r;
      const int64_t epoch = global / windows_;
      if (epoch != perm_epoch_) {
        perm_ = Permutation(windows_, o_.seed * 1000003ULL + static_cast<uint64_t>(epoch));
        perm_epoch_ = epoch;
      }
      starts[r] = perm_[global % windows_] * T;
    }
    return Rows(train_, rows, [&](int64_t r) { return starts[r]; });
  }

  // Σ weight · cross-entropy over the batch's targets. With context_weight 0 only the reply
  // positions go through the output head and the softmax (most of a window is prompt, and
  // the head is about a third of the forward pass): the same sum for less work.
  torch::Tensor WeightedLossSum(const Batch& b) {
    namespace F = torch::nn::functional;
    torch::Tensor h = Hidden(b.input).view({-1, o_.shape.n_embd});
    torch::Tensor target = b.target.reshape({-1});
    if (o_.context_weight == 0.0) {
      torch::Tensor idx = b.weight.reshape({-1}).nonzero().squeeze(1);
      return F::cross_entropy(Head(h.index_select(0, idx)), target.index_select(0, idx),
                              F::CrossEntropyFuncOptions().reduction(torch::kSum));
    }
    return (F::cross_entropy(Head(h), target, F::CrossEntropyFuncOptions().reduction(torch::kNone)) *
            b.weight.reshape({-1}))
        .sum();
  }

  // Logits [B, T, V] of input ids [B, T].
  torch::Tensor Forward(const torch::Tensor& input) { return Head(Hidden(input)); }

  // The output head tied to the token embedding: [..., d] -> [..., V].
  torch::Tensor Head(const torch::Tensor& hidden) { return torch::matmul(hidden, P(0).t()); }

  // Final hidden states [B, T, d] (after ln_f) of input ids [B, T].
  torch::Tensor Hidden(const torch::Tensor& input) {
    const LmShape& s = o_.shape;
    const int64_t B = input.size(0), T = input.size(1), d = s.n_embd, H = s.n_head, hd = d / H;
    torch::Tensor x = torch::embedding(P(0), input) + P(1).narrow(0, 0, T);
    const torch::Tensor mask = mask_.narrow(0, 0, T).narrow(1, 0, T);
    const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
    size_t k = 2;
    for (int l = 0; l < s.n_layer; ++l, k += 12) {
      torch::Tensor h = torch::layer_norm(x, {d}, P(k), P(k + 1), 1e-5).view({B * T, d});
      torch::Tensor qkv = torch::addmm(P(k + 3), h, P(k + 2)).view({B, T, 3, H, hd});
      torch::Tensor q = qkv.select(2, 0).transpose(1, 2);
      torch::Tensor kk = qkv.select(2, 1).transpose(1, 2);
      torch::Tensor v = qkv.select(2, 2).transpose(1, 2);
      torch::Tensor att = torch::matmul(q, kk.transpose(-2, -1)) * scale;
      att = torch::softmax(att.masked_fill_(mask, -std::numeric_limits<float>::infinity()), -1);
      torch::Tensor y = torch::matmul(att, v).transpose(1, 2).contiguous().view({B * T, d});
      x = x + torch::addmm(P(k + 5), y, P(k + 4)).view({B, T, d});
      torch::Tensor h2 = torch::layer_norm(x, {d}, P(k + 6), P(k + 7), 1e-5).view({B * T, d});
      torch::Tensor f = torch::gelu(torch::addmm(P(k + 9), h2, P(k + 8)), "tanh");
      x = x + torch::addmm(P(k + 11), f, P(k + 10)).view({B, T, d});
    }
    return torch::layer_norm(x, {d}, P(k), P(k + 1), 1e-5);
  }

  LmTrainOptions o_;
  TokenStream train_, dev_;
  bool weighted_ = false;  // context_weight applies: some tokens are marked as replies
  std::vector<std::string> names_;
  std::vector<torch::Tensor> params_;
  std::vector<bool> decays_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  torch::Tensor mask_;
  int64_t windows_ = 0;
  int64_t rows_per_step_ = 1;
  int64_t step_ = 0;
  int64_t perm_epoch_ = -1;
  std::vector<int64_t> perm_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<LmTrainer>> LmTrainer::Create(const LmTrainOptions& options,
                                                             TokenStream train_tokens,
                                                             TokenStream dev_tokens) {
  const LmShape& s = options.shape;
  if (s.vocab_size <= 0 || s.n_positions <= 0 || s.n_embd <= 0 || s.n_layer <= 0 || s.n_head <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("model shape: every size must be positive (", ShapeText(s), ")"));
  }
  if (s.n_embd % s.n_head != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--embd ", s.n_embd, " is not divisible by --heads ", s.n_head));
  }
  if (options.steps <= 0) return absl::InvalidArgumentError("--steps must be positive");
  if (options.lr <= 0) return absl::InvalidArgumentError("--lr must be positive");
  if (options.context_weight < 0 || options.context_weight > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--context-weight ", options.context_weight, " is outside [0, 1]"));
  }
  for (const TokenStream* tokens : {&train_tokens, &dev_tokens}) {
    if (!tokens->reply.empty() && tokens->reply.size() != tokens->ids.size()) {
      return absl::InvalidArgumentError(absl::StrCat("the reply marks cover ", tokens->reply.size(),
                                                     " tokens of ", tokens->ids.size()));
    }
    for (int32_t id : tokens->ids) {
      if (id < 0 || id >= s.vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("token id ", id, " is outside the model's vocabulary of ", s.vocab_size));
      }
    }
  }
  if (static_cast<int64_t>(train_tokens.size()) < s.n_positions + 1) {
    return absl::InvalidArgumentError(absl::StrCat("the training text has ", train_tokens.size(),
                                                   " tokens, fewer than one window of ",
                                                   s.n_positions + 1));
  }
  try {
    return std::unique_ptr<LmTrainer>(
        new TorchTrainer(options, std::move(train_tokens), std::move(dev_tokens)));
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("libtorch: ", e.what_without_backtrace()));
  }
}

absl::StatusOr<LmTrainOptions> ReadCheckpointOptions(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / "checkpoint.pt").string();
  if (!std::filesystem::exists(path)) return absl::NotFoundError(absl::StrCat(path, ": no checkpoint"));
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    c10::IValue meta_value;
    archive.read("meta", meta_value);
    const json meta = json::parse(meta_value.toStringRef());
    LmTrainOptions o;
    const json& s = meta.at("shape");
    o.shape.vocab_size = s.at("vocab_size").get<int>();
    o.shape.n_positions = s.at("n_positions").get<int>();
    o.shape.n_embd = s.at("n_embd").get<int>();
    o.shape.n_layer = s.at("n_layer").get<int>();
    o.shape.n_head = s.at("n_head").get<int>();
    o.seed = meta.at("seed").get<uint64_t>();
    o.steps = meta.at("step").get<int64_t>();  // steps done
    return o;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a helpline-train checkpoint: ", e.what()));
  }
}

}  // namespace helpline::train
