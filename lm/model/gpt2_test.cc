#include "lm/model/gpt2.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lm/model/gpt2_kernels.h"
#include "lm/model/gpt2_test_model.h"

namespace helpline::lm {
namespace {

using ::testing::HasSubstr;
using testing::MakeRandomGpt2;
using testing::RandomGpt2;
using testing::RandomGpt2Options;

class Gpt2Test : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/gpt2_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override { std::system(absl::StrCat("rm -rf ", root_).c_str()); }

  std::string NewDir() {
    const std::string dir = absl::StrCat(root_, "/m", counter_++);
    std::system(absl::StrCat("mkdir -p ", dir).c_str());
    return dir;
  }

  std::unique_ptr<Gpt2Model> LoadRandom(const RandomGpt2& m) {
    const std::string dir = NewDir();
    testing::WriteModelDir(dir, m);
    auto model = Gpt2Model::Load(dir);
    EXPECT_TRUE(model.ok()) << model.status();
    return model.ok() ? std::move(*model) : nullptr;
  }

  std::string root_;
  int counter_ = 0;
};

std::vector<int32_t> Ids(int n, int seed, int vocab) {
  std::vector<int32_t> ids(n);
  for (int i = 0; i < n; ++i) ids[i] = static_cast<int32_t>((seed * 7919 + i * 104729 + i * i * 31) % vocab);
  return ids;
}

// Logits of the last token of `ids` in a fresh cache, in one step.
std::vector<float> OneShot(Gpt2Model& model, const std::vector<int32_t>& ids) {
  auto cache = model.NewCache();
  std::vector<float> logits;
  StepInput in{cache.get(), ids};
  EXPECT_TRUE(model.Step({&in, 1}, logits).ok());
  return logits;
}

bool BitEqual(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

int Argmax(const float* v, int n) { return static_cast<int>(std::max_element(v, v + n) - v); }

TEST_F(Gpt2Test, MatchesDoublePrecisionReference) {
  for (const char* dtype : {"F32", "BF16", "F16"}) {
    RandomGpt2Options o;
    o.dtype = dtype;
    o.untied = std::string(dtype) == "BF16";
    o.prefix = std::string(dtype) == "BF16" ? "" : "transformer.";
    RandomGpt2 m = MakeRandomGpt2(o);
    auto model = LoadRandom(m);
    ASSERT_NE(model, nullptr);
    EXPECT_EQ(model->config().vocab_size, o.vocab_size);
    EXPECT_EQ(model->config().n_layer, o.n_layer);
    for (int n : {1, 5, 40, o.n_positions}) {
      const auto ids = Ids(n, n, o.vocab_size);
      const std::vector<float> ours = OneShot(*model, ids);
      const std::vector<double> ref = testing::ReferenceLogits(m, ids);
      double worst = 0;
      for (int v = 0; v < o.vocab_size; ++v) worst = std::max(worst, std::abs(ours[v] - ref[v]));
      EXPECT_LT(worst, 2e-3) << dtype << " n=" << n;
    }
  }
}

TEST_F(Gpt2Test, KvCacheEqualsNoCacheBitwise) {
  RandomGpt2 m = MakeRandomGpt2({});
  auto model = LoadRandom(m);
  ASSERT_NE(model, nullptr);
  const auto ids = Ids(50, 3, m.options.vocab_size);
  auto cache = model->NewCache();
  std::vector<float> logits;
  // Prefill in uneven chunks, then one token at a time: each step's logits equal a fresh
  // one-shot pass over the same prefix.
  size_t done = 0;
  for (size_t chunk : {7u, 1u, 13u, 1u, 1u, 2u}) {
    StepInput in{cache.get(), absl::MakeConstSpan(ids).subspan(done, chunk)};
    ASSERT_TRUE(model->Step({&in, 1}, logits).ok());
    done += chunk;
    EXPECT_TRUE(BitEqual(logits, OneShot(*model, {ids.begin(), ids.begin() + done}))) << done;
  }
  for (; done < ids.size(); ++done) {
    StepInput in{cache.get(), absl::MakeConstSpan(ids).subspan(done, 1)};
    ASSERT_TRUE(model->Step({&in, 1}, logits).ok());
    EXPECT_TRUE(BitEqual(logits, OneShot(*model, {ids.begin(), ids.begin() + done + 1}))) << done;
  }
  EXPECT_EQ(cache->length(), 50);
  EXPECT_GT(cache->bytes(), 0u);
}

TEST_F(Gpt2Test, BatchInvarianceGreedyAloneAndInBusyBatch) {
  RandomGpt2Options o;
  o.n_positions = 128;
  RandomGpt2 m = MakeRandomGpt2(o);
  auto model = LoadRandom(m);
  ASSERT_NE(model, nullptr);
  const int vocab = o.vocab_size;
  const auto prompt = Ids(9, 11, vocab);
  constexpr int kSteps = 24;

  // Alone: prefill, then greedy decode.
  std::vector<std::vector<float>> alone;
  std::vector<int32_t> alone_ids;
  {
    auto cache = model->NewCache();
    std::vector<float> logits;
    StepInput in{cache.get(), prompt};
    ASSERT_TRUE(model->Step({&in, 1}, logits).ok());
    for (int s = 0; s < kSteps; ++s) {
      alone.push_back(logits);
      alone_ids.push_back(Argmax(logits.data(), vocab));
      StepInput next{cache.get(), absl::MakeConstSpan(&alone_ids.back(), 1)};
      ASSERT_TRUE(model->Step({&next, 1}, logits).ok());
    }
  }

  // In a batch with 7 others of different lengths that join at different steps, some
  // prefilling long chunks while the target decodes.
  struct Other {
    std::unique_ptr<KvCache> cache;
    std::vector<int32_t> pending;  // prompt not yet fed
    int join_step;
    int32_t last = 0;
  };
  std::vector<Other> others;
  for (int j = 0; j < 7; ++j) {
    others.push_back({model->NewCache(), Ids(3 + 11 * j, 100 + j, vocab), j % 4, 0});
  }
  auto target = model->NewCache();
  std::vector<int32_t> ids;
  std::vector<float> logits;
  for (int s = 0; s <= kSteps; ++s) {
    std::vector<StepInput> batch;
    std::vector<int32_t> target_token;
    // The target sits in the middle of the batch.
    for (int j = 0; j < 7; ++j) {
      if (j == 3) {
        if (s == 0) {
          batch.push_back({target.get(), prompt});
        } else {
          batch.push_back({target.get(), absl::MakeConstSpan(&ids.back(), 1)});
        }
      }
      Other& other = others[j];
      if (s < other.join_step || other.cache->length() + 16 > o.n_positions) continue;
      if (!other.pending.empty()) {
        const size_t chunk = std::min<size_t>(other.pending.size(), 5 + j);
        batch.push_back({other.cache.get(), absl::MakeConstSpan(other.pending).subspan(0, chunk)});
      } else {
        batch.push_back({other.cache.get(), absl::MakeConstSpan(&other.last, 1)});
      }
    }
    ASSERT_TRUE(model->Step(batch, logits).ok());
    int row = 0;
    for (size_t b = 0; b < batch.size(); ++b) {
      if (batch[b].cache == target.get()) row = static_cast<int>(b);
    }
    for (size_t b = 0; b < batch.size(); ++b) {
      for (Other& other : others) {
        if (batch[b].cache != other.cache.get()) continue;
        if (!other.pending.empty()) {
          other.pending.erase(other.pending.begin(), other.pending.begin() + batch[b].tokens.size());
        }
        other.last = Argmax(logits.data() + b * vocab, vocab);
      }
    }
    if (s == kSteps) break;
    std::vector<float> mine(logits.begin() + row * vocab, logits.begin() + (row + 1) * vocab);
    EXPECT_TRUE(BitEqual(mine, alone[s])) << "step " << s << " batch " << batch.size();
    ids.push_back(Argmax(mine.data(), vocab));
  }
  EXPECT_EQ(ids, alone_ids);
}

TEST_F(Gpt2Test, TruncateAndCloneAreExact) {
  RandomGpt2 m = MakeRandomGpt2({});
  auto model = LoadRandom(m);
  ASSERT_NE(model, nullptr);
  const auto a = Ids(30, 5, m.options.vocab_size);
  const auto b = Ids(30, 6, m.options.vocab_size);
  auto cache = model->NewCache();
  std::vector<float> logits;
  StepInput in{cache.get(), a};
  ASSERT_TRUE(model->Step({&in, 1}, logits).ok());

  // Clone at 30, then truncate the original to 12 and continue with b's tokens.
  auto clone = cache->Clone();
  EXPECT_EQ(clone->length(), 30);
  cache->Truncate(12);
  EXPECT_EQ(cache->length(), 12);
  StepInput more{cache.get(), absl::MakeConstSpan(b).subspan(12, 10)};
  ASSERT_TRUE(model->Step({&more, 1}, logits).ok());
  std::vector<int32_t> mixed(a.begin(), a.begin() + 12);
  mixed.insert(mixed.end(), b.begin() + 12, b.begin() + 22);
  EXPECT_TRUE(BitEqual(logits, OneShot(*model, mixed)));

  // The clone still holds a[0..30): continuing it equals a fresh pass over a + one token.
  const int32_t next = 17;
  StepInput cont{clone.get(), absl::MakeConstSpan(&next, 1)};
  ASSERT_TRUE(model->Step({&cont, 1}, logits).ok());
  std::vector<int32_t> extended = a;
  extended.push_back(next);
  EXPECT_TRUE(BitEqual(logits, OneShot(*model, extended)));
}

TEST_F(Gpt2Test, StepRejectsBadInputsWithoutChangingCaches) {
  RandomGpt2 m = MakeRandomGpt2({});
  auto model = LoadRandom(m);
  ASSERT_NE(model, nullptr);
  auto good = model->NewCache();
  auto other = model->NewCache();
  std::vector<float> logits;
  const std::vector<int32_t> ok_ids = {1, 2, 3};
  const std::vector<int32_t> bad_ids = {1, m.options.vocab_size};
  const std::vector<int32_t> too_long = Ids(m.options.n_positions + 1, 1, m.options.vocab_size);
  {
    StepInput batch[] = {{good.get(), ok_ids}, {other.get(), bad_ids}};
    absl::Status s = model->Step(batch, logits);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(s.message(), HasSubstr("vocab_size"));
  }
  {
    StepInput batch[] = {{good.get(), ok_ids}, {other.get(), too_long}};
    absl::Status s = model->Step(batch, logits);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(s.message(), HasSubstr("n_positions"));
  }
  {
    StepInput batch[] = {{good.get(), ok_ids}, {good.get(), ok_ids}};
    EXPECT_EQ(model->Step(batch, logits).code(), absl::StatusCode::kInvalidArgument);
  }
  {
    StepInput batch[] = {{good.get(), {}}};
    EXPECT_EQ(model->Step(batch, logits).code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(good->length(), 0);
  EXPECT_EQ(other->length(), 0);
}

// 16-bit weights are widened to f32 inside the kernel; the widening is exact, so a model
// loaded from an F16 / BF16 checkpoint gives the same bits whether its matrices stay 16-bit
// (the default) or are widened at load (f32_weights): batch 1 and batched, prefill and decode.
TEST_F(Gpt2Test, SixteenBitWeightsGiveTheSameBitsAsWidenedWeights) {
  for (const char* dtype : {"F16", "BF16"}) {
    RandomGpt2Options o;
    o.dtype = dtype;
    o.untied = std::string(dtype) == "BF16";  // lm_head and wte as separate 16-bit matrices
    o.vocab_size = 333;                       // a partial last panel
    RandomGpt2 m = MakeRandomGpt2(o);
    const std::string dir = NewDir();
    testing::WriteModelDir(dir, m);
    auto half = Gpt2Model::Load(dir);
    auto wide = Gpt2Model::Load(dir, {.f32_weights = true});
    ASSERT_TRUE(half.ok()) << half.status();
    ASSERT_TRUE(wide.ok()) << wide.status();
    // The matrices are most of the weights: 16-bit storage takes well under 3/4 of the bytes.
    EXPECT_LT((*half)->weight_bytes() * 4, (*wide)->weight_bytes() * 3) << dtype;

    // Batch 1: one-shot prefills of several lengths.
    for (int n : {1, 7, 40}) {
      const auto ids = Ids(n, n + 1, o.vocab_size);
      EXPECT_TRUE(BitEqual(OneShot(**half, ids), OneShot(**wide, ids))) << dtype << " n=" << n;
    }
    // Batched: three sequences prefill chunks of different lengths, then decode greedily
    // together (12 steps), one of them alone in between.
    struct Run {
      Gpt2Model* model;
      std::vector<std::unique_ptr<KvCache>> caches;
      std::vector<int32_t> next;
      std::vector<std::vector<float>> steps;
    };
    Run runs[] = {{half->get(), {}, {}, {}}, {wide->get(), {}, {}, {}}};
    const std::vector<std::vector<int32_t>> prompts = {Ids(5, 1, o.vocab_size), Ids(23, 2, o.vocab_size),
                                                       Ids(1, 3, o.vocab_size)};
    for (Run& run : runs) {
      for (size_t i = 0; i < prompts.size(); ++i) run.caches.push_back(run.model->NewCache());
      run.next.resize(prompts.size());
      std::vector<float> logits;
      std::vector<StepInput> batch;
      for (size_t i = 0; i < prompts.size(); ++i) batch.push_back({run.caches[i].get(), prompts[i]});
      ASSERT_TRUE(run.model->Step(batch, logits).ok());
      run.steps.push_back(logits);
      for (int s = 0; s < 12; ++s) {
        for (size_t i = 0; i < prompts.size(); ++i) run.next[i] = Argmax(logits.data() + i * o.vocab_size, o.vocab_size);
        const size_t live = s % 4 == 2 ? 1 : prompts.size();  // every 4th step the first one alone
        batch.clear();
        for (size_t i = 0; i < live; ++i) batch.push_back({run.caches[i].get(), absl::MakeConstSpan(&run.next[i], 1)});
        ASSERT_TRUE(run.model->Step(batch, logits).ok());
        if (live == 1) {
          // The others keep their previous logits (they did not step).
          std::copy(run.steps.back().begin() + o.vocab_size, run.steps.back().end(),
                    std::back_inserter(logits));
        }
        run.steps.push_back(logits);
      }
    }
    ASSERT_EQ(runs[0].steps.size(), runs[1].steps.size());
    for (size_t s = 0; s < runs[0].steps.size(); ++s) {
      EXPECT_TRUE(BitEqual(runs[0].steps[s], runs[1].steps[s])) << dtype << " step " << s;
    }
  }
}

// The kernel's widening of every 16-bit pattern equals the exact value (checked against an
// independent formula for f16), through the SIMD path in use, for several row counts.
TEST(Gpt2KernelTest, SixteenBitWidenExactlyInTheKernel) {
  namespace kern = gpt2_kernels;
  std::printf("# kernels: %s\n", kern::IsaName());
  // All 65536 bit patterns as one row (k = 1) of 1024 panels; NaNs are compared as NaNs.
  constexpr int kN = 65536;
  std::vector<uint16_t> bits(kN);
  for (int i = 0; i < kN; ++i) bits[i] = static_cast<uint16_t>(i);
  for (kern::WeightType type : {kern::WeightType::kF16, kern::WeightType::kBF16}) {
    std::vector<float> wide(kN);
    for (int i = 0; i < kN; ++i) {
      const uint16_t h = bits[i];
      if (type == kern::WeightType::kBF16) {
        const uint32_t u = static_cast<uint32_t>(h) << 16;
        std::memcpy(&wide[i], &u, 4);
        continue;
      }
      const int e = (h >> 10) & 0x1f;
      const int mant = h & 0x3ff;
      const double sign = (h & 0x8000) ? -1.0 : 1.0;
      if (e == 31) {
        wide[i] = mant == 0 ? static_cast<float>(sign * INFINITY) : NAN;
      } else {
        wide[i] = static_cast<float>(sign * (e == 0 ? std::ldexp(mant, -24) : std::ldexp(1024 + mant, e - 25)));
      }
      if (!std::isnan(wide[i])) {
        const float scalar = kern::HalfToFloat(h);
        ASSERT_EQ(std::memcmp(&scalar, &wide[i], 4), 0) << "half " << h;
      }
    }
    // y = 1 * w (+0): the kernel's result for the 16-bit and the widened matrix.
    const float one = 1.0f;
    std::vector<float> y16(kN), y32(kN);
    kern::LinearPanels(&one, 1, 1, 1, bits.data(), type, nullptr, kN, 0, kN / kern::kPanel, y16.data(), kN,
                       kern::Epilogue::kNone);
    kern::LinearPanels(&one, 1, 1, 1, wide.data(), kern::WeightType::kF32, nullptr, kN, 0, kN / kern::kPanel,
                       y32.data(), kN, kern::Epilogue::kNone);
    for (int i = 0; i < kN; ++i) {
      if (std::isnan(y32[i])) {
        EXPECT_TRUE(std::isnan(y16[i])) << kern::WeightTypeName(type) << " " << i;
      } else {
        ASSERT_EQ(std::memcmp(&y16[i], &y32[i], 4), 0) << kern::WeightTypeName(type) << " pattern " << i;
      }
    }
  }

  // Random finite weights, k = 37, n = 200 (a partial panel), every epilogue, m = 1..13:
  // same bits from the 16-bit and the widened matrix.
  constexpr int kK = 37, kCols = 200, kPanels = (kCols + kern::kPanel - 1) / kern::kPanel;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 0.5f);
  std::vector<float> x(13 * kK), bias(kCols);
  for (float& v : x) v = normal(rng);
  for (float& v : bias) v = normal(rng);
  for (kern::WeightType type : {kern::WeightType::kF16, kern::WeightType::kBF16}) {
    std::vector<uint16_t> w16(static_cast<size_t>(kPanels) * kK * kern::kPanel, 0);
    std::vector<float> w32(w16.size(), 0.0f);
    for (size_t i = 0; i < w16.size(); ++i) {
      if (static_cast<int>(i % kern::kPanel) + static_cast<int>(i / (kK * kern::kPanel)) * kern::kPanel >= kCols) {
        continue;  // padding columns stay zero
      }
      const float v = normal(rng);
      w16[i] = type == kern::WeightType::kF16 ? testing::FloatToHalf(v) : testing::FloatToBf16(v);
      w32[i] = type == kern::WeightType::kF16 ? kern::HalfToFloat(w16[i]) : kern::Bf16ToFloat(w16[i]);
    }
    for (kern::Epilogue ep : {kern::Epilogue::kNone, kern::Epilogue::kGeluTanh, kern::Epilogue::kGeluErf,
                              kern::Epilogue::kAddToOutput}) {
      for (int m = 1; m <= 13; ++m) {
        std::vector<float> y16(m * kCols, 0.25f), y32(m * kCols, 0.25f);
        kern::LinearPanels(x.data(), kK, m, kK, w16.data(), type, bias.data(), kCols, 0, kPanels, y16.data(), kCols,
                           ep);
        kern::LinearPanels(x.data(), kK, m, kK, w32.data(), kern::WeightType::kF32, bias.data(), kCols, 0, kPanels,
                           y32.data(), kCols, ep);
        EXPECT_TRUE(BitEqual(y16, y32)) << kern::WeightTypeName(type) << " m=" << m << " epilogue "
                                        << static_cast<int>(ep);
      }
    }
  }
}

class Gpt2LoadErrorTest : public Gpt2Test {
 protected:
  // Writes the model with the given changes and expects Load to fail naming `what`.
  void ExpectLoadError(const std::string& dir, absl::StatusCode code, std::vector<std::string> needles) {
    auto model = Gpt2Model::Load(dir);
    ASSERT_FALSE(model.ok());
    EXPECT_EQ(model.status().code(), code) << model.status();
    for (const auto& n : needles) EXPECT_THAT(model.status().message(), HasSubstr(n));
  }
};

TEST_F(Gpt2LoadErrorTest, MissingUnknownMisshapedTensors) {
  RandomGpt2 m = MakeRandomGpt2({});
  {
    const std::string dir = NewDir();
    std::ofstream(dir + "/config.json") << testing::ConfigJson(m.options).dump();
    testing::WriteSafetensors(dir + "/model.safetensors", m, "transformer.", "F32", {{"h.1.mlp.c_fc.bias", ""}});
    ExpectLoadError(dir, absl::StatusCode::kInvalidArgument, {"model.safetensors", "missing tensor h.1.mlp.c_fc.bias"});
  }
  {
    const std::string dir = NewDir();
    std::ofstream(dir + "/config.json") << testing::ConfigJson(m.options).dump();
    testing::WriteSafetensors(dir + "/model.safetensors", m, "transformer.", "F32",
                              {{"h.0.ln_2.bias", "transformer.h.0.ln_3.bias"}});
    ExpectLoadError(dir, absl::StatusCode::kInvalidArgument, {"model.safetensors", "unknown tensor transformer.h.0.ln_3.bias"});
  }
  {
    const std::string dir = NewDir();
    std::ofstream(dir + "/config.json") << testing::ConfigJson(m.options).dump();
    testing::WriteSafetensors(dir + "/model.safetensors", m, "transformer.", "F32", {},
                              {{"h.1.attn.c_proj.weight", {64, 32}}});
    ExpectLoadError(dir, absl::StatusCode::kInvalidArgument,
                    {"model.safetensors", "tensor transformer.h.1.attn.c_proj.weight has shape [64, 32]", "[64, 64]"});
  }
  {  // untied config without lm_head.weight
    RandomGpt2Options o;
    o.untied = true;
    RandomGpt2 u = MakeRandomGpt2(o);
    const std::string dir = NewDir();
    std::ofstream(dir + "/config.json") << testing::ConfigJson(o).dump();
    testing::WriteSafetensors(dir + "/model.safetensors", u, "", "F32", {{"lm_head.weight", ""}});
    ExpectLoadError(dir, absl::StatusCode::kInvalidArgument, {"missing tensor lm_head.weight"});
  }
}

TEST_F(Gpt2LoadErrorTest, TruncatedSafetensorsAndMissingFiles) {
  RandomGpt2 m = MakeRandomGpt2({});
  const std::string dir = NewDir();
  testing::WriteModelDir(dir, m);
  const std::string path = dir + "/model.safetensors";
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes.substr(0, bytes.size() - 100);
  ExpectLoadError(dir, absl::StatusCode::kInvalidArgument, {path, "tensor", "run past the end"});

  std::remove(path.c_str());
  ExpectLoadError(dir, absl::StatusCode::kNotFound, {path});
  std::remove((dir + "/config.json").c_str());
  ExpectLoadError(dir, absl::StatusCode::kNotFound, {"config.json"});
}

TEST_F(Gpt2LoadErrorTest, BadConfigNamesTheField) {
  RandomGpt2 m = MakeRandomGpt2({});
  struct Case {
    std::string key;
    nlohmann::json value;  // null: remove the key
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"n_head", nullptr, "field n_head: is missing"},
      {"n_head", 5, "n_head"},
      {"n_embd", "64", "field n_embd: is not an integer"},
      {"activation_function", "relu", "field activation_function"},
      {"add_cross_attention", true, "field add_cross_attention"},
      {"model_type", "llama", "field model_type"},
      {"layer_norm_epsilon", -1, "field layer_norm_epsilon"},
  };
  for (const Case& c : cases) {
    const std::string dir = NewDir();
    testing::WriteModelDir(dir, m);
    nlohmann::json config = testing::ConfigJson(m.options);
    if (c.value.is_null()) {
      config.erase(c.key);
    } else {
      config[c.key] = c.value;
    }
    std::ofstream(dir + "/config.json", std::ios::trunc) << config.dump();
    ExpectLoadError(dir, absl::StatusCode::kInvalidArgument, {"config.json", c.needle});
  }
  const std::string dir = NewDir();
  testing::WriteModelDir(dir, m);
  std::ofstream(dir + "/config.json", std::ios::trunc) << "{\"n_embd\": ";
  ExpectLoadError(dir, absl::StatusCode::kInvalidArgument, {"config.json", "not valid JSON"});
}

}  // namespace
}  // namespace helpline::lm
