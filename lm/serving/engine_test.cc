// The engine against a tiny random GPT-2 (made by make_tiny_gpt2.py in a temp dir at the
// start): greedy equals a plain step loop, batch invariance, seeds, stop sequences, limits,
// cancellation, deadlines, the queue bound, validation, chunked prefill, candidates and
// the session prefix cache.
#include "lm/serving/engine.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/metrics/metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/tiny_gpt2.h"

namespace helpline::lm {
namespace {

using ::testing::HasSubstr;

// One completed request: its result and every on_text piece per candidate.
struct Outcome {
  absl::StatusOr<GenerationResult> result = absl::UnknownError("not done");
  std::vector<std::vector<std::string>> pieces;
  int done_calls = 0;
};

// Submits a request and waits for on_done; holds the outcome.
class Call {
 public:
  Call(Engine& engine, GenerationRequest request,
       std::function<void(int, const std::string&)> on_text = nullptr) {
    state_->outcome.pieces.resize(request.n > 0 ? request.n : 1);
    auto state = state_;
    request.on_text = [state, on_text](int index, const std::string& piece) {
      {
        std::lock_guard lock(state->mu);
        state->outcome.pieces[index].push_back(piece);
      }
      if (on_text) on_text(index, piece);
    };
    request.on_done = [state](absl::StatusOr<GenerationResult> result) {
      std::lock_guard lock(state->mu);
      state->outcome.result = std::move(result);
      ++state->outcome.done_calls;
      state->cv.notify_all();
    };
    id_ = engine.Submit(std::move(request));
  }
  const absl::StatusOr<uint64_t>& id() const { return id_; }
  Outcome Wait() {
    std::unique_lock lock(state_->mu);
    state_->cv.wait(lock, [&] { return state_->outcome.done_calls > 0; });
    return state_->outcome;
  }
  int done_calls() {
    std::lock_guard lock(state_->mu);
    return state_->outcome.done_calls;
  }

 private:
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    Outcome outcome;
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
  absl::StatusOr<uint64_t> id_;
};

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string((std::filesystem::temp_directory_path() /
                            absl::StrCat("lm_engine_test_", ::getpid()))
                               .string());
    if (absl::Status made = testutil::MakeTinyGpt2(*dir_, ""); !made.ok()) {
      ASSERT_TRUE(absl::IsFailedPrecondition(made)) << made;
      skip_reason_ = new std::string(made.message());
      return;
    }
    auto tokenizer = BpeTokenizer::Load(*dir_);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = tokenizer->release();
    auto model = Gpt2Model::Load(*dir_);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = model->release();
  }

  static void TearDownTestSuite() {
    delete model_;
    delete tokenizer_;
    if (dir_ != nullptr) std::filesystem::remove_all(*dir_);
    delete dir_;
  }

  void SetUp() override {
    if (skip_reason_ != nullptr) GTEST_SKIP() << *skip_reason_;
    ASSERT_NE(model_, nullptr);
  }

  std::unique_ptr<Engine> MakeEngine(EngineOptions options = {}) {
    registry_ = std::make_unique<metrics::Registry>();
    return std::make_unique<Engine>(*model_, *tokenizer_, options, *registry_);
  }

  double Gauge(const std::string& name) {
    return registry_->AddGauge(name, "").Get(std::vector<std::string>{}).Value();
  }
  double Counter(const std::string& name, std::vector<std::string> labels = {},
                 std::vector<std::string> values = {}) {
    return registry_->AddCounter(name, "", std::move(labels)).Get(values).Value();
  }

  static std::vector<int32_t> Encode(const std::string& text) { return tokenizer_->Encode(text); }

  static GenerationRequest Greedy(std::vector<int32_t> prompt, int max_tokens) {
    GenerationRequest request;
    request.prompt = std::move(prompt);
    request.max_tokens = max_tokens;
    return request;
  }

  static GenerationResult Run(Engine& engine, GenerationRequest request) {
    Call call(engine, std::move(request));
    EXPECT_TRUE(call.id().ok()) << call.id().status();
    Outcome outcome = call.Wait();
    EXPECT_TRUE(outcome.result.ok()) << outcome.result.status();
    return outcome.result.ok() ? *outcome.result : GenerationResult{};
  }

  // A prompt of exactly `length` ids drawn from ordinary text.
  static std::vector<int32_t> PromptOfLength(int length, int salt = 0) {
    std::string text;
    std::vector<int32_t> ids;
    for (int i = 0; static_cast<int>(ids.size()) < length; ++i) {
      text += absl::StrCat(" Order ", 1000 + salt * 37 + i, " was shipped to the customer.");
      ids = Encode(text);
    }
    ids.resize(length);
    return ids;
  }

  static inline std::string* skip_reason_ = nullptr;
  static inline std::string* dir_ = nullptr;
  static inline BpeTokenizer* tokenizer_ = nullptr;
  static inline Gpt2Model* model_ = nullptr;
  std::unique_ptr<metrics::Registry> registry_;
};

// The reference: one sequence, prompt in one step, then one token per step, argmax with
// ties to the lowest id, stopping at the end-of-text id.
std::vector<int32_t> PlainGreedyLoop(Gpt2Model& model, const std::vector<int32_t>& prompt,
                                     int max_tokens, int32_t eos) {
  std::unique_ptr<KvCache> cache = model.NewCache();
  std::vector<float> logits;
  std::vector<int32_t> out;
  std::vector<int32_t> feed = prompt;
  const int vocab = model.config().vocab_size;
  while (static_cast<int>(out.size()) < max_tokens) {
    StepInput input{cache.get(), feed};
    EXPECT_TRUE(model.Step({&input, 1}, logits).ok());
    int32_t best = 0;
    for (int i = 1; i < vocab; ++i) {
      if (logits[i] > logits[best]) best = i;
    }
    if (best == eos) break;
    out.push_back(best);
    feed = {best};
  }
  return out;
}

TEST_F(EngineTest, GreedyEqualsAPlainStepLoop) {
  const std::vector<int32_t> prompt = Encode("Hello, I would like to return my order.");
  const std::vector<int32_t> expected =
      PlainGreedyLoop(*model_, prompt, 40, tokenizer_->eos_id().value_or(-1));
  ASSERT_FALSE(expected.empty());
  auto engine = MakeEngine();
  GenerationResult result = Run(*engine, Greedy(prompt, 40));
  ASSERT_EQ(result.candidates.size(), 1u);
  EXPECT_EQ(result.candidates[0].ids, expected);
  EXPECT_EQ(result.candidates[0].finish_reason,
            expected.size() == 40u ? FinishReason::kLength : FinishReason::kEos);
  EXPECT_EQ(result.prompt_tokens, static_cast<int>(prompt.size()));
  EXPECT_LT(result.candidates[0].logprob_sum, 0.0);
  EXPECT_EQ(Counter("helpline_generation_tokens_total", {"kind"}, {"prompt"}), prompt.size());
}

// The most times any n-gram of `ids` occurs.
int MostRepeats(const std::vector<int32_t>& ids, size_t n) {
  std::map<std::vector<int32_t>, int> count;
  int most = 0;
  for (size_t i = 0; i + n <= ids.size(); ++i) {
    most = std::max(most, ++count[std::vector<int32_t>(ids.begin() + i, ids.begin() + i + n)]);
  }
  return most;
}

TEST_F(EngineTest, NoRepeatNgramKeepsGreedyOutOfItsLoop) {
  const std::vector<int32_t> prompt = Encode("Hello, I would like to return my order.");
  auto engine = MakeEngine();
  GenerationResult plain = Run(*engine, Greedy(prompt, 60));
  // The smallest n whose n-grams plain greedy repeats (the random tiny model does repeat).
  size_t n = 1;
  while (n < 4 && MostRepeats(plain.candidates[0].ids, n) < 2) ++n;
  ASSERT_GE(MostRepeats(plain.candidates[0].ids, n), 2)
      << "the fixture model no longer repeats itself; the test proves nothing";
  GenerationRequest banned = Greedy(prompt, 60);
  banned.sampling.no_repeat_ngram = static_cast<int>(n);
  GenerationResult result = Run(*engine, std::move(banned));
  ASSERT_FALSE(result.candidates[0].ids.empty());
  EXPECT_EQ(MostRepeats(result.candidates[0].ids, n), 1) << "n = " << n;
  // The prompt's own n-grams do not count: the first generated id is greedy's.
  EXPECT_EQ(result.candidates[0].ids.front(), plain.candidates[0].ids.front());
}

TEST_F(EngineTest, GreedyFirstDecodesCandidateZeroGreedilyAndSamplesTheRest) {
  const std::vector<int32_t> prompt = Encode("Hello, I would like to return my order.");
  auto engine = MakeEngine();
  GenerationResult greedy = Run(*engine, Greedy(prompt, 30));
  GenerationRequest mixed = Greedy(prompt, 30);
  mixed.n = 4;
  mixed.sampling.temperature = 1.0f;
  mixed.sampling.seed = 7;
  mixed.sampling.greedy_first = true;
  GenerationResult result = Run(*engine, std::move(mixed));
  ASSERT_EQ(result.candidates.size(), 4u);
  EXPECT_EQ(result.candidates[0].ids, greedy.candidates[0].ids);
  int differ = 0;
  for (int i = 1; i < 4; ++i) differ += result.candidates[i].ids != greedy.candidates[0].ids;
  EXPECT_GE(differ, 2) << "the samples should mostly differ from the greedy reply";
}

TEST_F(EngineTest, GreedyIsBatchInvariant) {
  const std::vector<int32_t> prompt = Encode("My parcel never arrived, can you check?");
  auto alone_engine = MakeEngine();
  const std::vector<int32_t> alone = Run(*alone_engine, Greedy(prompt, 30)).candidates[0].ids;
  alone_engine.reset();

  EngineOptions options;
  options.prefill_chunk = 8;  // prefill chunks share steps with the decodes
  auto engine = MakeEngine(options);
  std::vector<std::unique_ptr<Call>> others;
  for (int i = 0; i < 7; ++i) {
    GenerationRequest other = Greedy(PromptOfLength(3 + 11 * i, i), 20 + 3 * i);
    if (i % 2 == 1) {
      other.sampling.temperature = 0.8f;
      other.sampling.seed = 100 + i;
    }
    others.push_back(std::make_unique<Call>(*engine, std::move(other)));
    if (i == 3) others.push_back(std::make_unique<Call>(*engine, Greedy(prompt, 30)));
  }
  std::vector<int32_t> batched;
  for (size_t i = 0; i < others.size(); ++i) {
    Outcome outcome = others[i]->Wait();
    ASSERT_TRUE(outcome.result.ok());
    if (i == 4) batched = outcome.result->candidates[0].ids;
  }
  EXPECT_EQ(batched, alone);
  // It did run in a batch: some steps had several sequences.
  const metrics::Histogram& sizes =
      registry_->AddHistogram("helpline_generation_batch_size", "", {}).Get(std::vector<std::string>{});
  EXPECT_GT(sizes.Count(), sizes.CumulativeCount(1)) << "no step had more than 2 sequences";
}

TEST_F(EngineTest, SameSeedSameSampleAloneAndInABatchDifferentSeedsDiffer) {
  const std::vector<int32_t> prompt = Encode("Thanks for waiting. Your refund");
  auto sampled = [&](uint64_t seed) {
    GenerationRequest request = Greedy(prompt, 32);
    request.sampling.temperature = 1.0f;
    request.sampling.top_k = 100;
    request.sampling.top_p = 0.95f;
    request.sampling.repetition_penalty = 1.1f;
    request.sampling.seed = seed;
    return request;
  };
  auto engine = MakeEngine();
  GenerationResult alone = Run(*engine, sampled(1234));
  EXPECT_EQ(alone.seed, 1234u);
  std::vector<std::unique_ptr<Call>> calls;
  for (int i = 0; i < 5; ++i) {
    calls.push_back(std::make_unique<Call>(*engine, Greedy(PromptOfLength(5 + 9 * i, i), 25)));
  }
  Call again(*engine, sampled(1234));
  Call other(*engine, sampled(4321));
  Outcome again_outcome = again.Wait();
  Outcome other_outcome = other.Wait();
  for (auto& call : calls) call->Wait();
  ASSERT_TRUE(again_outcome.result.ok());
  ASSERT_TRUE(other_outcome.result.ok());
  EXPECT_EQ(again_outcome.result->candidates[0].ids, alone.candidates[0].ids);
  EXPECT_NE(other_outcome.result->candidates[0].ids, alone.candidates[0].ids);
  // Seed 0: the engine picks one and reports it; running with it reproduces the output.
  GenerationResult random = Run(*engine, sampled(0));
  EXPECT_NE(random.seed, 0u);
  EXPECT_EQ(Run(*engine, sampled(random.seed)).candidates[0].ids, random.candidates[0].ids);
}

TEST_F(EngineTest, StopSequenceAcrossTokenBoundaries) {
  const std::vector<int32_t> prompt = Encode("The store opens at");
  auto engine = MakeEngine();
  Call plain(*engine, Greedy(prompt, 40));
  Outcome greedy = plain.Wait();
  ASSERT_TRUE(greedy.result.ok());
  const std::vector<std::string>& pieces = greedy.pieces[0];
  const std::string& text = greedy.result->candidates[0].text;
  std::string joined;
  for (const std::string& p : pieces) joined += p;
  EXPECT_EQ(joined, text);
  // A stop string made of the last character of one piece and the first of the next.
  auto last_char = [](const std::string& s) {
    size_t i = s.size() - 1;
    while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
    return s.substr(i);
  };
  auto first_char = [](const std::string& s) {
    size_t n = 1;
    while (n < s.size() && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) ++n;
    return s.substr(0, n);
  };
  std::string stop;
  for (size_t i = 3; i + 1 < pieces.size(); ++i) {
    if (!pieces[i].empty() && !pieces[i + 1].empty()) {
      stop = last_char(pieces[i]) + first_char(pieces[i + 1]);
      break;
    }
  }
  ASSERT_FALSE(stop.empty()) << "greedy text too short: " << text;
  const size_t at = text.find(stop);
  ASSERT_NE(at, std::string::npos);

  GenerationRequest request = Greedy(prompt, 40);
  request.stop = {"never appears \x01", stop};
  Call stopped(*engine, std::move(request));
  Outcome outcome = stopped.Wait();
  ASSERT_TRUE(outcome.result.ok());
  const CandidateResult& c = outcome.result->candidates[0];
  EXPECT_EQ(c.finish_reason, FinishReason::kStop);
  EXPECT_EQ(c.text, text.substr(0, at));
  std::string streamed;
  for (const std::string& p : outcome.pieces[0]) streamed += p;
  EXPECT_EQ(streamed, c.text);
  // The ids are the greedy ids up to the token holding the stop's first byte.
  const std::vector<int32_t>& all = greedy.result->candidates[0].ids;
  ASSERT_LE(c.ids.size(), all.size());
  EXPECT_EQ(c.ids, std::vector<int32_t>(all.begin(), all.begin() + c.ids.size()));
  EXPECT_GE(tokenizer_->Decode(c.ids).size(), at);
  EXPECT_LT(tokenizer_->Decode(std::vector<int32_t>(c.ids.begin(), c.ids.end() - 1)).size(), at);
}

TEST_F(EngineTest, MaxTokensEndsWithLengthAndClampsToTheContext) {
  auto engine = MakeEngine();
  GenerationResult result = Run(*engine, Greedy(Encode("Where is my order?"), 5));
  ASSERT_EQ(result.candidates.size(), 1u);
  if (result.candidates[0].finish_reason != FinishReason::kEos) {
    EXPECT_EQ(result.candidates[0].finish_reason, FinishReason::kLength);
    EXPECT_EQ(result.candidates[0].ids.size(), 5u);
  }
  // 120 prompt tokens in a 128-token context: at most 8 come out.
  const int n_positions = engine->model_config().n_positions;
  GenerationResult clamped = Run(*engine, Greedy(PromptOfLength(n_positions - 8), 50));
  EXPECT_LE(clamped.candidates[0].ids.size(), 8u);
  if (clamped.candidates[0].finish_reason == FinishReason::kLength) {
    EXPECT_EQ(clamped.candidates[0].ids.size(), 8u);
  }
}

TEST_F(EngineTest, CancelMidGenerationFreesTheSequence) {
  auto engine = MakeEngine();
  std::mutex mu;
  std::condition_variable cv;
  int pieces = 0;
  GenerationRequest request = Greedy(Encode("Please tell me a long story"), 100);
  request.stop = {};
  Call call(*engine, std::move(request), [&](int, const std::string&) {
    std::unique_lock lock(mu);
    ++pieces;
    cv.notify_all();
    // Hold the owner thread until the test has cancelled, so the cancel lands mid-way.
    if (pieces == 3) cv.wait(lock, [&] { return pieces < 0; });
  });
  ASSERT_TRUE(call.id().ok());
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return pieces >= 3; });
    engine->Cancel(*call.id());
    pieces = -1000;
    cv.notify_all();
  }
  Outcome outcome = call.Wait();
  ASSERT_TRUE(outcome.result.ok());
  const CandidateResult& c = outcome.result->candidates[0];
  EXPECT_EQ(c.finish_reason, FinishReason::kCancelled);
  EXPECT_GE(c.ids.size(), 3u);
  EXPECT_LT(c.ids.size(), 100u);
  EXPECT_FALSE(outcome.result->deadline_exceeded);
  EXPECT_EQ(Gauge("helpline_generation_running_sequences"), 0);
  EXPECT_EQ(Gauge("helpline_generation_kv_cache_bytes"), 0);
  EXPECT_EQ(Counter("helpline_generation_candidates_total", {"finish_reason"}, {"cancelled"}), 1);
  EXPECT_EQ(call.done_calls(), 1);
}

TEST_F(EngineTest, DeadlineEndsTheRequest) {
  auto engine = MakeEngine();
  // Passed before admission: leaves from the queue.
  GenerationRequest late = Greedy(Encode("Hi"), 10);
  late.deadline = std::chrono::steady_clock::now() - std::chrono::milliseconds(1);
  Call expired(*engine, std::move(late));
  Outcome expired_outcome = expired.Wait();
  ASSERT_TRUE(expired_outcome.result.ok());
  EXPECT_TRUE(expired_outcome.result->deadline_exceeded);
  EXPECT_EQ(expired_outcome.result->candidates[0].finish_reason, FinishReason::kCancelled);

  // Passes while decoding: the owner thread is held in on_text until after the deadline.
  GenerationRequest request = Greedy(Encode("Tell me about shipping"), 100);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
  request.deadline = deadline;
  int pieces = 0;
  Call call(*engine, std::move(request), [&](int, const std::string&) {
    if (++pieces == 2) std::this_thread::sleep_until(deadline + std::chrono::milliseconds(1));
  });
  Outcome outcome = call.Wait();
  ASSERT_TRUE(outcome.result.ok());
  EXPECT_TRUE(outcome.result->deadline_exceeded);
  EXPECT_EQ(outcome.result->candidates[0].finish_reason, FinishReason::kCancelled);
  EXPECT_LT(outcome.result->candidates[0].ids.size(), 100u);
  EXPECT_EQ(Gauge("helpline_generation_running_sequences"), 0);
}

TEST_F(EngineTest, FullQueueAnswersResourceExhaustedWithARetryHint) {
  EngineOptions options;
  options.max_running_sequences = 1;
  options.max_waiting_requests = 2;
  auto engine = MakeEngine(options);
  std::promise<void> entered, release;
  std::shared_future<void> released = release.get_future().share();
  bool first = true;
  Call blocker(*engine, Greedy(Encode("One"), 5), [&](int, const std::string&) {
    if (first) {
      first = false;
      entered.set_value();
      released.wait();
    }
  });
  entered.get_future().wait();  // the owner thread is inside the blocker's first step
  Call second(*engine, Greedy(Encode("Two"), 3));
  Call third(*engine, Greedy(Encode("Three"), 3));
  EXPECT_TRUE(second.id().ok());
  EXPECT_TRUE(third.id().ok());
  EXPECT_EQ(Gauge("helpline_generation_waiting_requests"), 2);
  Call fourth(*engine, Greedy(Encode("Four"), 3));
  EXPECT_EQ(fourth.id().status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(fourth.id().status().message(), HasSubstr("retry after"));
  EXPECT_EQ(Counter("helpline_generation_requests_rejected_total", {"code"},
                    {"resource_exhausted"}),
            1);
  release.set_value();
  EXPECT_TRUE(blocker.Wait().result.ok());
  EXPECT_TRUE(second.Wait().result.ok());
  EXPECT_TRUE(third.Wait().result.ok());
}

TEST_F(EngineTest, InvalidRequestsNameTheField) {
  auto engine = MakeEngine();
  const int n_positions = engine->model_config().n_positions;
  const int vocab = engine->model_config().vocab_size;
  struct Case {
    std::string field;
    std::function<void(GenerationRequest&)> change;
  };
  const std::vector<Case> cases = {
      {"prompt", [](GenerationRequest& r) { r.prompt.clear(); }},
      {"prompt", [&](GenerationRequest& r) { r.prompt.assign(n_positions, 1); }},
      {"prompt[1]", [&](GenerationRequest& r) { r.prompt[1] = vocab; }},
      {"prompt[0]", [](GenerationRequest& r) { r.prompt[0] = -1; }},
      {"max_tokens", [](GenerationRequest& r) { r.max_tokens = 0; }},
      {"max_tokens", [&](GenerationRequest& r) { r.max_tokens = n_positions; }},
      {"n", [](GenerationRequest& r) { r.n = 0; }},
      {"n", [](GenerationRequest& r) { r.n = 1000; }},
      {"temperature", [](GenerationRequest& r) { r.sampling.temperature = -0.5f; }},
      {"temperature", [](GenerationRequest& r) { r.sampling.temperature = NAN; }},
      {"top_p", [](GenerationRequest& r) { r.sampling.top_p = 0.0f; }},
      {"top_p", [](GenerationRequest& r) { r.sampling.top_p = 1.5f; }},
      {"top_k", [](GenerationRequest& r) { r.sampling.top_k = -1; }},
      {"repetition_penalty", [](GenerationRequest& r) { r.sampling.repetition_penalty = 0; }},
      {"frequency_penalty", [](GenerationRequest& r) { r.sampling.frequency_penalty = 2.5f; }},
      {"presence_penalty", [](GenerationRequest& r) { r.sampling.presence_penalty = -3.0f; }},
      {"no_repeat_ngram", [](GenerationRequest& r) { r.sampling.no_repeat_ngram = -1; }},
      {"stop", [](GenerationRequest& r) { r.stop.assign(100, "x"); }},
      {"stop[1]", [](GenerationRequest& r) { r.stop = {"a", ""}; }},
      {"on_done", [](GenerationRequest& r) { r.on_done = nullptr; }},
  };
  for (const Case& c : cases) {
    GenerationRequest request = Greedy({1, 2, 3}, 4);
    request.on_done = [](absl::StatusOr<GenerationResult>) { ADD_FAILURE() << "on_done"; };
    c.change(request);
    absl::StatusOr<uint64_t> id = engine->Submit(std::move(request));
    EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(id.status().message(), HasSubstr(c.field + ":")) << id.status();
  }
  EXPECT_EQ(Counter("helpline_generation_requests_rejected_total", {"code"}, {"invalid_argument"}),
            cases.size());
}

TEST_F(EngineTest, ChunkedPrefillGivesTheSameTokens) {
  const std::vector<int32_t> prompt = PromptOfLength(90, 5);
  auto whole_engine = MakeEngine();
  const std::vector<int32_t> whole = Run(*whole_engine, Greedy(prompt, 20)).candidates[0].ids;
  whole_engine.reset();
  EngineOptions options;
  options.prefill_chunk = 7;
  options.max_batch_tokens = 16;
  auto engine = MakeEngine(options);
  // A decoding neighbour shares the steps with the chunks.
  Call neighbour(*engine, Greedy(Encode("Hello"), 30));
  Call chunked(*engine, Greedy(prompt, 20));
  Outcome outcome = chunked.Wait();
  ASSERT_TRUE(outcome.result.ok());
  EXPECT_EQ(outcome.result->candidates[0].ids, whole);
  EXPECT_TRUE(neighbour.Wait().result.ok());
  // 90 prompt tokens in chunks of at most 7: at least 13 steps, none over 16 tokens.
  const metrics::Histogram& tokens = registry_->AddHistogram("helpline_generation_batch_tokens", "", {})
                                         .Get(std::vector<std::string>{});
  EXPECT_EQ(tokens.CumulativeCount(4), tokens.Count()) << "a step ran more than 16 tokens";
  EXPECT_EQ(Counter("helpline_generation_prefill_tokens_total"), 90 + Encode("Hello").size());
}

TEST_F(EngineTest, CandidatesShareThePromptAndSampleTheirOwnStreams) {
  const std::vector<int32_t> prompt = Encode("Your order number is");
  auto request = [&](int n) {
    GenerationRequest r = Greedy(prompt, 16);
    r.n = n;
    r.sampling.temperature = 1.0f;
    r.sampling.seed = 77;
    return r;
  };
  auto engine = MakeEngine();
  GenerationResult one = Run(*engine, request(1));
  Call call(*engine, request(3));
  Outcome three = call.Wait();
  ASSERT_TRUE(three.result.ok());
  ASSERT_EQ(three.result->candidates.size(), 3u);
  // Candidate 0 uses the stream of (seed, 0), like the only candidate of n = 1.
  EXPECT_EQ(three.result->candidates[0].ids, one.candidates[0].ids);
  EXPECT_NE(three.result->candidates[1].ids, three.result->candidates[0].ids);
  EXPECT_NE(three.result->candidates[2].ids, three.result->candidates[1].ids);
  for (int i = 0; i < 3; ++i) {
    std::string streamed;
    for (const std::string& p : three.pieces[i]) streamed += p;
    EXPECT_EQ(streamed, three.result->candidates[i].text) << i;
  }
  // The prompt ran once.
  EXPECT_EQ(Counter("helpline_generation_prefill_tokens_total"), 2 * prompt.size());
  EXPECT_EQ(Gauge("helpline_generation_kv_cache_bytes"), 0);
}

TEST_F(EngineTest, PrefixCacheHitSavesTokensAndMatchesAColdRun) {
  const std::vector<int32_t> turn1 = Encode("Customer: I want to change my address.\nAgent:");
  auto engine = MakeEngine();
  GenerationRequest first = Greedy(turn1, 12);
  first.cache_key = "tenant-a/session-1";
  GenerationResult r1 = Run(*engine, std::move(first));
  EXPECT_EQ(r1.cached_prompt_tokens, 0);
  EXPECT_EQ(Counter("helpline_generation_prefix_cache_lookups_total", {"result"}, {"miss"}), 1);
  EXPECT_GT(Gauge("helpline_generation_prefix_cache_bytes"), 0);

  // The next turn: the previous prompt, the reply, and a new customer message.
  std::vector<int32_t> turn2 = turn1;
  turn2.insert(turn2.end(), r1.candidates[0].ids.begin(), r1.candidates[0].ids.end());
  const std::vector<int32_t> more = Encode("\nCustomer: To 5 Main Street please.\nAgent:");
  turn2.insert(turn2.end(), more.begin(), more.end());
  GenerationRequest second = Greedy(turn2, 12);
  second.cache_key = "tenant-a/session-1";
  GenerationResult warm = Run(*engine, std::move(second));
  // Everything but the last generated id (sampled, never fed) came from the cache.
  EXPECT_EQ(warm.cached_prompt_tokens,
            static_cast<int>(turn1.size() + r1.candidates[0].ids.size()) - 1);
  EXPECT_EQ(Counter("helpline_generation_prefix_cache_lookups_total", {"result"}, {"hit"}), 1);
  EXPECT_EQ(Counter("helpline_generation_prefix_cache_tokens_saved_total"),
            warm.cached_prompt_tokens);

  GenerationResult cold = Run(*engine, Greedy(turn2, 12));  // no key: no cache
  EXPECT_EQ(cold.cached_prompt_tokens, 0);
  EXPECT_EQ(warm.candidates[0].ids, cold.candidates[0].ids);
}

TEST_F(EngineTest, PrefixCacheNeverCrossesKeysAndReusesOnlyTheCommonPrefix) {
  const std::vector<int32_t> prompt = Encode("Customer: my card was charged twice for order 5521.");
  ASSERT_GT(prompt.size(), 6u);
  auto engine = MakeEngine();
  GenerationRequest a = Greedy(prompt, 4);
  a.cache_key = "tenant-a/session-1";
  EXPECT_EQ(Run(*engine, std::move(a)).cached_prompt_tokens, 0);

  // The same prompt under another key: a miss.
  GenerationRequest b = Greedy(prompt, 4);
  b.cache_key = "tenant-b/session-1";
  EXPECT_EQ(Run(*engine, std::move(b)).cached_prompt_tokens, 0);
  GenerationRequest c = Greedy(prompt, 4);
  c.cache_key = "tenant-a/session-2";
  EXPECT_EQ(Run(*engine, std::move(c)).cached_prompt_tokens, 0);
  EXPECT_EQ(Counter("helpline_generation_prefix_cache_lookups_total", {"result"}, {"hit"}), 0);

  // The same key, a prompt that differs at token 3: only 3 tokens are reused.
  std::vector<int32_t> changed = prompt;
  changed[3] = (changed[3] + 1) % 256;
  GenerationRequest d = Greedy(changed, 4);
  d.cache_key = "tenant-a/session-1";
  EXPECT_EQ(Run(*engine, std::move(d)).cached_prompt_tokens, 3);

  // The same key and the same prompt: all but the last prompt token.
  GenerationRequest e = Greedy(prompt, 4);
  e.cache_key = "tenant-b/session-1";
  EXPECT_EQ(Run(*engine, std::move(e)).cached_prompt_tokens,
            static_cast<int>(prompt.size()) - 1);
}

TEST_F(EngineTest, PrefixCacheStaysWithinItsBudget) {
  EngineOptions options;
  auto probe_engine = MakeEngine();
  GenerationRequest probe = Greedy(PromptOfLength(40), 4);
  probe.cache_key = "probe";
  Run(*probe_engine, std::move(probe));
  const double one_entry = Gauge("helpline_generation_prefix_cache_bytes");
  ASSERT_GT(one_entry, 0);
  probe_engine.reset();

  options.prefix_cache_bytes = static_cast<size_t>(one_entry * 2.5);
  auto engine = MakeEngine(options);
  for (int i = 0; i < 4; ++i) {
    GenerationRequest r = Greedy(PromptOfLength(40, i), 4);
    r.cache_key = absl::StrCat("session-", i);
    Run(*engine, std::move(r));
    EXPECT_LE(Gauge("helpline_generation_prefix_cache_bytes"), options.prefix_cache_bytes);
  }
  EXPECT_EQ(Gauge("helpline_generation_prefix_cache_keys"), 2);
  // The oldest keys were evicted; the newest is still there.
  GenerationRequest oldest = Greedy(PromptOfLength(40, 0), 4);
  oldest.cache_key = "session-0";
  EXPECT_EQ(Run(*engine, std::move(oldest)).cached_prompt_tokens, 0);
  GenerationRequest newest = Greedy(PromptOfLength(40, 3), 4);
  newest.cache_key = "session-3";
  EXPECT_EQ(Run(*engine, std::move(newest)).cached_prompt_tokens, 39);
}

TEST_F(EngineTest, ShutdownEndsEveryRequestOnce) {
  EngineOptions options;
  options.max_running_sequences = 2;
  auto engine = MakeEngine(options);
  std::vector<std::unique_ptr<Call>> calls;
  for (int i = 0; i < 6; ++i) {
    calls.push_back(std::make_unique<Call>(*engine, Greedy(PromptOfLength(10, i), 100)));
  }
  engine.reset();
  for (auto& call : calls) {
    EXPECT_EQ(call->done_calls(), 1);
    Outcome outcome = call->Wait();
    ASSERT_TRUE(outcome.result.ok());
  }
}

}  // namespace
}  // namespace helpline::lm
