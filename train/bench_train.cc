// Training speed: tokens/s of train_lm's trainer against a plain libtorch loop of the same
// shape (torch::nn::Embedding/Linear/LayerNorm modules, the same attention, AdamW, the same
// batch), in the same process, on the same random token stream. Blocks of steps alternate
// between the two so that load on the machine hits both alike; the medians of the per-step
// times are reported. --reply-share F trains ours with the loss on a share F of the tokens
// (--context-weight 0), as the second stage of the shipped model does.
//
//   flock /tmp/helpline-model.lock build/bin/bench_train --layers 4 --embd 256 --vocab 8192
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "CLI/CLI.hpp"
#include "train/lm_trainer.h"

namespace {

struct Block : torch::nn::Module {
  Block(int64_t d, int64_t heads) : heads(heads) {
    ln1 = register_module("ln1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
    attn = register_module("attn", torch::nn::Linear(d, 3 * d));
    proj = register_module("proj", torch::nn::Linear(d, d));
    ln2 = register_module("ln2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
    fc = register_module("fc", torch::nn::Linear(d, 4 * d));
    out = register_module("out", torch::nn::Linear(4 * d, d));
  }
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& mask) {
    const int64_t B = x.size(0), T = x.size(1), d = x.size(2), hd = d / heads;
    auto qkv = attn(ln1(x)).view({B, T, 3, heads, hd});
    auto q = qkv.select(2, 0).transpose(1, 2), k = qkv.select(2, 1).transpose(1, 2),
         v = qkv.select(2, 2).transpose(1, 2);
    auto att = torch::softmax((torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(double(hd)))
                                  .masked_fill(mask, -std::numeric_limits<float>::infinity()),
                              -1);
    x = x + proj(torch::matmul(att, v).transpose(1, 2).contiguous().view({B, T, d}));
    return x + out(torch::gelu(fc(ln2(x)), "tanh"));
  }
  int64_t heads;
  torch::nn::LayerNorm ln1{nullptr}, ln2{nullptr};
  torch::nn::Linear attn{nullptr}, proj{nullptr}, fc{nullptr}, out{nullptr};
};

struct Plain : torch::nn::Module {
  Plain(int64_t V, int64_t T, int64_t d, int64_t layers, int64_t heads) {
    wte = register_module("wte", torch::nn::Embedding(V, d));
    wpe = register_module("wpe", torch::nn::Embedding(T, d));
    for (int64_t i = 0; i < layers; ++i) {
      blocks.push_back(register_module("h" + std::to_string(i), std::make_shared<Block>(d, heads)));
    }
    lnf = register_module("lnf", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
    mask = torch::triu(torch::ones({T, T}, torch::kBool), 1);
  }
  torch::Tensor forward(const torch::Tensor& idx) {
    const int64_t T = idx.size(1);
    auto x = wte(idx) + wpe(torch::arange(T, torch::kLong));
    for (auto& b : blocks) x = b->forward(x, mask);
    return torch::matmul(lnf(x), wte->weight.t());
  }
  torch::nn::Embedding wte{nullptr}, wpe{nullptr};
  std::vector<std::shared_ptr<Block>> blocks;
  torch::nn::LayerNorm lnf{nullptr};
  torch::Tensor mask;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_train: trainer vs plain libtorch loop, tokens/s"};
  int layers = 4, embd = 256, heads = 4, positions = 256, vocab = 8192, threads = 2, blocks = 5, steps = 3;
  int64_t batch_tokens = 8192, micro_rows = 8;
  app.add_option("--layers", layers)->capture_default_str();
  app.add_option("--embd", embd)->capture_default_str();
  app.add_option("--heads", heads)->capture_default_str();
  app.add_option("--positions", positions)->capture_default_str();
  app.add_option("--vocab", vocab)->capture_default_str();
  app.add_option("--batch-tokens", batch_tokens)->capture_default_str();
  app.add_option("--micro-rows", micro_rows)->capture_default_str();
  app.add_option("--threads", threads)->capture_default_str();
  app.add_option("--blocks", blocks, "alternating blocks per trainer")->capture_default_str();
  app.add_option("--steps", steps, "steps per block")->capture_default_str();
  double reply_share = 0;
  app.add_option("--reply-share", reply_share,
                 "0: our trainer's loss on every token; > 0: --context-weight 0 with this share of "
                 "tokens marked as replies (the shipped model's training text: about 0.1)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  torch::set_num_threads(threads);

  std::mt19937 rng(1);
  std::vector<int32_t> stream(2'000'000);
  for (int32_t& t : stream) t = static_cast<int32_t>(rng() % vocab);

  helpline::train::LmTrainOptions o;
  o.shape = {.vocab_size = vocab, .n_positions = positions, .n_embd = embd, .n_layer = layers, .n_head = heads};
  o.steps = 1'000'000;
  o.batch_tokens = batch_tokens;
  o.micro_rows = micro_rows;
  o.warmup = 10;
  o.threads = threads;
  // Replies as in the training text: the last share of every 100 tokens.
  std::vector<uint8_t> reply;
  if (reply_share > 0) {
    o.context_weight = 0;
    reply.resize(stream.size());
    for (size_t i = 0; i < stream.size(); ++i) reply[i] = (i % 100) >= 100 * (1 - reply_share);
  }
  auto trainer = helpline::train::LmTrainer::Create(o, helpline::train::TokenStream(stream, reply), {});
  if (!trainer.ok()) {
    std::fprintf(stderr, "%s\n", std::string(trainer.status().message()).c_str());
    return 2;
  }

  torch::manual_seed(1);
  Plain plain(vocab, positions, embd, layers, heads);
  torch::optim::AdamW adam(plain.parameters(), torch::optim::AdamWOptions(1e-3).betas({0.9, 0.95}).weight_decay(0.1));
  const int64_t rows = std::max<int64_t>(1, batch_tokens / positions);
  const int64_t micro = std::min(rows, micro_rows);
  int64_t offset = 0;
  auto plain_step = [&] {
    adam.zero_grad();
    for (int64_t r0 = 0; r0 < rows; r0 += micro) {
      const int64_t n = std::min(micro, rows - r0);
      auto buf = torch::empty({n, positions + 1}, torch::kLong);
      auto acc = buf.accessor<int64_t, 2>();
      for (int64_t r = 0; r < n; ++r) {
        for (int64_t t = 0; t <= positions; ++t) acc[r][t] = stream[(offset + t) % stream.size()];
        offset += positions;
      }
      auto logits = plain.forward(buf.narrow(1, 0, positions));
      auto loss = torch::nn::functional::cross_entropy(logits.view({-1, vocab}), buf.narrow(1, 1, positions).reshape({-1})) *
                  (double(n) / rows);
      loss.backward();
    }
    torch::nn::utils::clip_grad_norm_(plain.parameters(), 1.0);
    adam.step();
  };

  using Clock = std::chrono::steady_clock;
  std::vector<double> ours, theirs;
  (*trainer)->Step();  // warm-up of both
  plain_step();
  for (int b = 0; b < blocks; ++b) {
    for (int s = 0; s < steps; ++s) {
      auto t0 = Clock::now();
      (*trainer)->Step();
      ours.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
    for (int s = 0; s < steps; ++s) {
      auto t0 = Clock::now();
      plain_step();
      theirs.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
  }
  const double tok = static_cast<double>(rows * positions);
  std::printf("shape %d layers x %d, %d heads, %d positions, vocab %d; %lld parameters; %lld tokens/step; %d threads\n",
              layers, embd, heads, positions, vocab, static_cast<long long>((*trainer)->parameter_count()),
              static_cast<long long>(rows * positions), threads);
  if (reply_share > 0) {
    std::printf("ours: --context-weight 0, %.0f %% of the tokens are replies; the plain loop: every token\n",
                100 * reply_share);
  }
  std::printf("helpline-train lm   median %.3f s/step  %.0f tokens/s  (%zu steps)\n", Median(ours), tok / Median(ours),
              ours.size());
  std::printf("plain libtorch loop median %.3f s/step  %.0f tokens/s  (%zu steps)\n", Median(theirs),
              tok / Median(theirs), theirs.size());
  std::printf("ratio (ours / plain tokens/s): %.3f\n", Median(theirs) / Median(ours));
  return 0;
}
