// bench_gpt2: speed of our GPT-2 (not a test). Same definitions as llama.cpp's bench_direct
// (shared/tools/llamacpp): prefill = the B prompts of P tokens (steps of at most 512 tokens),
// decode = G steps of one token for each of the B sequences, tok/s = B*G / decode time;
// best and median of REPS. One "RESULT ..." line per batch size. The decode time includes the
// greedy argmax over the logits (as bench_direct's does: one scalar pass over B x vocab floats,
// several ms at B = 64 with GPT-2's vocabulary); model_step_ms_med is the time inside Step alone.
//
//   flock /tmp/helpline-model.lock bench_gpt2 --model DIR --threads 2 --batches 1,4,16,64 --prompt 128 --gen 64
//   flock /tmp/helpline-model.lock bench_gpt2 --linear      # packed kernel vs torch::linear / addmv
//
// --linear times one linear layer of GPT-2-small shapes for several M: our batch-invariant
// kernel against libtorch (OpenBLAS) and checks whether each is batch-invariant (row 0 of an
// M-row product equal bitwise to the 1-row product).
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "lm/model/gpt2.h"
#include "lm/model/gpt2_kernels.h"

namespace {

using Clock = std::chrono::steady_clock;
double MsSince(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }
double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int RunModel(const std::string& dir, int threads, bool f32_weights, const std::vector<int>& batches, int prompt,
             int gen, int reps) {
  auto model = helpline::lm::Gpt2Model::Load(dir, {.threads = threads, .f32_weights = f32_weights});
  if (!model.ok()) {
    std::fprintf(stderr, "bench_gpt2: %s\n", model.status().ToString().c_str());
    return 1;
  }
  const auto& c = (*model)->config();
  std::printf("# helpline gpt2 %dx%d vocab=%d isa=%s threads=%d weights=%.1f MB\n", c.n_layer, c.n_embd,
              c.vocab_size, helpline::lm::gpt2_kernels::IsaName(), threads, (*model)->weight_bytes() / 1e6);
  std::vector<float> logits;
  for (int batch : batches) {
    std::vector<double> prefill_ms, decode_ms, model_ms;
    for (int rep = 0; rep < reps; ++rep) {
      std::vector<std::unique_ptr<helpline::lm::KvCache>> caches;
      std::vector<std::vector<int32_t>> prompts;
      for (int b = 0; b < batch; ++b) {
        caches.push_back((*model)->NewCache());
        std::vector<int32_t> ids(prompt);
        for (int t = 0; t < prompt; ++t) ids[t] = (b * 131 + t * 17 + 7) % c.vocab_size;
        prompts.push_back(std::move(ids));
      }
      auto t0 = Clock::now();
      for (int b = 0; b < batch;) {
        std::vector<helpline::lm::StepInput> step;
        int tokens = 0;
        while (b < batch && (step.empty() || tokens + prompt <= 512)) {
          step.push_back({caches[b].get(), prompts[b]});
          tokens += prompt;
          ++b;
        }
        if (!(*model)->Step(step, logits).ok()) return 1;
      }
      prefill_ms.push_back(MsSince(t0));
      std::vector<int32_t> next(batch);
      for (int b = 0; b < batch; ++b) {
        next[b] = static_cast<int32_t>(std::max_element(logits.begin(), logits.begin() + c.vocab_size) - logits.begin());
      }
      t0 = Clock::now();
      double in_step = 0;
      for (int g = 0; g < gen; ++g) {
        std::vector<helpline::lm::StepInput> step;
        for (int b = 0; b < batch; ++b) step.push_back({caches[b].get(), absl::MakeConstSpan(&next[b], 1)});
        const auto s0 = Clock::now();
        if (!(*model)->Step(step, logits).ok()) return 1;
        in_step += MsSince(s0);
        for (int b = 0; b < batch; ++b) {
          const float* row = logits.data() + static_cast<size_t>(b) * c.vocab_size;
          next[b] = static_cast<int32_t>(std::max_element(row, row + c.vocab_size) - row);
        }
      }
      decode_ms.push_back(MsSince(t0));
      model_ms.push_back(in_step / gen);
    }
    const double best = *std::min_element(decode_ms.begin(), decode_ms.end());
    std::printf(
        "RESULT kind=gen engine=helpline shape=%dx%d threads=%d batch=%d prompt=%d gen=%d reps=%d "
        "prefill_ms_best=%.2f prefill_ms_med=%.2f tok_s_best=%.1f tok_s_med=%.1f step_ms_best=%.3f "
        "model_step_ms_med=%.3f\n",
        c.n_layer, c.n_embd, threads, batch, prompt, gen, reps, *std::min_element(prefill_ms.begin(), prefill_ms.end()),
        Median(prefill_ms), batch * gen / (best / 1000), batch * gen / (Median(decode_ms) / 1000), best / gen, Median(model_ms));
    std::fflush(stdout);
  }
  return 0;
}

// One linear layer, ours vs libtorch, at GPT-2-small shapes.
int RunLinear(int threads) {
  namespace kern = helpline::lm::gpt2_kernels;
  if (threads > 0) at::set_num_threads(threads);
  c10::InferenceMode guard;
  std::printf("# one linear layer, %d threads, isa=%s; ms per call (best of 5); invariant = row 0 of M rows "
              "bitwise equal to the 1-row result\n", at::get_num_threads(), kern::IsaName());
  struct Shape {
    int k, n;
    const char* name;
  };
  for (Shape s : {Shape{768, 2304, "c_attn 768x2304"}, Shape{768, 3072, "c_fc 768x3072"},
                  Shape{3072, 768, "mlp.c_proj 3072x768"}, Shape{768, 50257, "lm_head 768x50257"}}) {
    at::Tensor w = torch::randn({s.k, s.n}) * 0.05;  // Conv1D layout [in, out]
    at::Tensor b = torch::randn({s.n});
    const int panels = (s.n + kern::kPanel - 1) / kern::kPanel;
    at::Tensor packed = at::constant_pad_nd(w, {0, panels * kern::kPanel - s.n}, 0.0)
                            .view({s.k, panels, kern::kPanel}).permute({1, 0, 2}).contiguous();
    at::Tensor wt = w.t().contiguous();  // [out, in] for torch::linear
    for (int m : {1, 4, 16, 64, 256}) {
      if (s.n > 10000 && m > 64) continue;
      at::Tensor x = torch::randn({m, s.k});
      at::Tensor y = torch::empty({m, s.n});
      auto ours = [&](const at::Tensor& in, at::Tensor& out, int rows) {
        at::parallel_for(0, panels, 1, [&](int64_t p0, int64_t p1) {
          kern::LinearPanels(in.data_ptr<float>(), s.k, rows, s.k, packed.data_ptr<float>(), kern::WeightType::kF32, b.data_ptr<float>(), s.n,
                             static_cast<int>(p0), static_cast<int>(p1), out.data_ptr<float>(), s.n,
                             kern::Epilogue::kNone);
        });
      };
      auto time = [&](auto&& fn) {
        double best = 1e30;
        for (int r = 0; r < 5; ++r) {
          auto t0 = Clock::now();
          fn();
          best = std::min(best, MsSince(t0));
        }
        return best;
      };
      const double ours_ms = time([&] { ours(x, y, m); });
      at::Tensor y1 = torch::empty({1, s.n});
      ours(x.narrow(0, 0, 1).contiguous(), y1, 1);
      const bool ours_inv = std::memcmp(y1.data_ptr<float>(), y.data_ptr<float>(), s.n * 4) == 0;
      at::Tensor ty;
      const double torch_ms = time([&] { ty = torch::linear(x, wt, b); });
      const at::Tensor ty1 = torch::linear(x.narrow(0, 0, 1), wt, b);
      const bool torch_inv = torch::equal(ty1[0], ty[0]);
      double addmv_ms = 0;
      if (m == 1) addmv_ms = time([&] { ty = torch::addmv(b, wt, x[0]); });
      std::printf("%-22s M=%-4d ours %8.3f ms (invariant %s)   torch::linear %8.3f ms (invariant %s)%s\n", s.name, m,
                  ours_ms, ours_inv ? "yes" : "NO", torch_ms, torch_inv ? "yes" : "NO",
                  m == 1 ? ("   addmv " + std::to_string(addmv_ms).substr(0, 6) + " ms").c_str() : "");
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"GPT-2 speed: prefill ms and decode tokens/s per batch size"};
  std::string dir, batches_text = "1,4,16,64";
  int threads = 2, prompt = 128, gen = 64, reps = 3;
  bool linear = false, f32_weights = false;
  app.add_option("--model", dir, "Hugging Face GPT-2 folder");
  app.add_option("--threads", threads, "intra-op threads");
  app.add_option("--batches", batches_text, "comma-separated batch sizes");
  app.add_option("--prompt", prompt, "prompt tokens per sequence");
  app.add_option("--gen", gen, "decode steps");
  app.add_option("--reps", reps, "repetitions (best and median)");
  app.add_flag("--linear", linear, "time one linear layer: ours vs torch::linear");
  app.add_flag("--f32-weights", f32_weights, "widen F16/BF16 weights to f32 at load (LoadOptions::f32_weights)");
  CLI11_PARSE(app, argc, argv);
  if (linear) return RunLinear(threads);
  if (dir.empty()) {
    std::fprintf(stderr, "bench_gpt2: --model DIR or --linear\n");
    return 2;
  }
  std::vector<int> batches;
  for (absl::string_view piece : absl::StrSplit(batches_text, ',', absl::SkipWhitespace())) {
    int b;
    if (!absl::SimpleAtoi(piece, &b) || b <= 0) {
      std::fprintf(stderr, "bench_gpt2: bad --batches\n");
      return 2;
    }
    batches.push_back(b);
  }
  return RunModel(dir, threads, f32_weights, batches, prompt, gen, reps);
}
