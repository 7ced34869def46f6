#include "tools/eval/generation_eval.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <set>
#include <unordered_set>
#include <utility>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/domain/template.h"
#include "common/metrics/metrics.h"
#include "lm/serving/engine.h"
#include "lm/tokenizer/bpe.h"
#include "nlohmann/json.hpp"
#include "services/generation/default_blocklist.h"
#include "services/generation/generator.h"
#include "services/generation/reply/blocklist.h"
#include "services/generation/reply/entities.h"
#include "services/generation/reply/prompt_builder.h"
#include "services/generation/reply/reply_chooser.h"

namespace helpline::eval {
namespace {

namespace reply = generation::reply;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string Duration(double seconds) {
  const int64_t s = static_cast<int64_t>(std::llround(std::max(0.0, seconds)));
  if (s >= 3600) return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
  if (s >= 60) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%ds", s);
}

// Progress of one phase on stderr: a line every 10 s and at the end.
class Progress {
 public:
  Progress(std::ostream* out, std::string phase, size_t total)
      : out_(out), phase_(std::move(phase)), total_(total), start_(Clock::now()), last_(start_) {}

  void Update(size_t done) {
    if (out_ == nullptr) return;
    const Clock::time_point now = Clock::now();
    if (done < total_ && now - last_ < std::chrono::seconds(10)) return;
    last_ = now;
    const double elapsed = SecondsSince(start_);
    const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
    const double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : 0.0;
    *out_ << absl::StrFormat("%s %zu/%zu (%.0f%%)  %.2f examples/s  %s elapsed  ETA %s\n", phase_,
                             done, total_, total_ ? 100.0 * done / total_ : 100.0, rate,
                             Duration(elapsed), Duration(eta))
          << std::flush;
  }

 private:
  std::ostream* out_;
  std::string phase_;
  size_t total_;
  Clock::time_point start_;
  Clock::time_point last_;
};

// log softmax(row)[id] in double precision.
double LogProbOf(const float* row, int vocab, int32_t id) {
  float max = row[0];
  for (int v = 1; v < vocab; ++v) max = std::max(max, row[v]);
  double sum = 0.0;
  for (int v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(row[v]) - max);
  return static_cast<double>(row[id]) - max - std::log(sum);
}

bool IsIgnoredValue(const std::string& value) {
  const std::string v = absl::AsciiStrToLower(absl::StripAsciiWhitespace(value));
  return v.empty() || v == "dontcare" || v == "none" || v == "?";
}

constexpr char kFallbackReply[] = "Sorry, I did not quite get that. Could you say a bit more?";
constexpr char kEscalateReply[] = "Let me pass you to a colleague who can help with that.";

// What one example yields in the generation phase.
struct Outcome {
  bool engine_error = false;
  bool degraded = false;
  std::string candidate;  // the model's greedy candidate after prune and fill (empty on engine error)
  std::vector<std::string> candidate_reasons;  // the greedy candidate's rejection reasons
  int chosen_index = -1;  // the candidate sent; -1: none survived (the template was sent)
  std::string sent;
};

bool KeepsSlots(const std::vector<std::string>& reasons) {
  return std::none_of(reasons.begin(), reasons.end(), [](const std::string& r) {
    return r == reply::kRejectSlotContradiction || r == reply::kRejectUnfilledPlaceholder;
  });
}

// The examples to evaluate: all, or `limit` spread evenly (every k-th).
std::vector<size_t> Pick(size_t n, size_t limit) {
  std::vector<size_t> out;
  if (limit == 0 || limit >= n) {
    for (size_t i = 0; i < n; ++i) out.push_back(i);
    return out;
  }
  for (size_t i = 0; i < limit; ++i) out.push_back(i * n / limit);
  return out;
}

absl::Status CheckModelDir(const std::string& dir) {
  std::error_code ec;
  if (dir.empty()) return absl::InvalidArgumentError("--model: missing");
  if (!std::filesystem::is_directory(dir, ec)) {
    return absl::InvalidArgumentError(absl::StrCat("--model ", dir, ": no such model folder"));
  }
  for (const char* file : {"config.json", "model.safetensors"}) {
    if (!std::filesystem::exists(std::filesystem::path(dir) / file, ec)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--model ", dir, ": no ", file, " (not a GPT-2 model folder)"));
    }
  }
  return absl::OkStatus();
}

// Bad data is bad input: the reader's NOT_FOUND / INVALID_ARGUMENT, prefixed with the flag.
absl::Status DataError(absl::string_view flag, const absl::Status& s) {
  if (absl::IsNotFound(s) || absl::IsInvalidArgument(s)) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", s.message()));
  }
  return s;
}

absl::StatusOr<std::vector<train::ExampleRecord>> ReadRetrieval(
    const GenerationEvalOptions& options, const train::TextOptions& base) {
  train::TextOptions text = base;
  text.split = "train";
  if (!options.retrieval_data.empty()) {
    absl::StatusOr<std::vector<train::ExampleRecord>> r =
        train::ReadExampleRecords(options.retrieval_data, options.format, text);
    if (!r.ok()) return DataError("--retrieval-data", r.status());
    return r;
  }
  std::error_code ec;
  const std::string path = std::filesystem::is_directory(options.data, ec)
                               ? options.data
                               : std::filesystem::path(options.data).parent_path().string();
  absl::StatusOr<std::vector<train::ExampleRecord>> r =
      train::ReadExampleRecords(path.empty() ? "." : path, options.format, text);
  if (!r.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "no train split for the retrieval baseline next to --data (", r.status().message(),
        "): pass --retrieval-data"));
  }
  return r;
}

}  // namespace

bool KeepsSlotValues(const reply::ReplyChooser& chooser,
                     const generation::v1::GenerationContext& context, absl::string_view text) {
  reply::RawCandidate candidate;
  candidate.text = std::string(text);
  reply::ReplyChoice check = chooser.Choose(context, absl::MakeConstSpan(&candidate, 1));
  return KeepsSlots(check.candidates.front().rejection_reasons);
}

absl::StatusOr<std::vector<double>> TargetLogProbs(lm::Gpt2Model& model,
                                                   absl::Span<const ScoringInput> inputs,
                                                   int max_sequences, int prefill_chunk,
                                                   const std::function<void(size_t)>& on_done) {
  struct Sequence {
    size_t input;
    std::unique_ptr<lm::KvCache> cache;
    size_t fed = 0;   // prompt tokens in the cache
    size_t next = 0;  // the next target token to score
    size_t chunk = 0; // prompt tokens of this step
  };
  const int vocab = model.config().vocab_size;
  const size_t n_positions = static_cast<size_t>(model.config().n_positions);
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].prompt.empty() || inputs[i].target.empty() ||
        inputs[i].prompt.size() + inputs[i].target.size() > n_positions + 1) {
      return absl::InvalidArgumentError(absl::StrCat("scoring input ", i, ": ", inputs[i].prompt.size(),
                                                     " prompt and ", inputs[i].target.size(),
                                                     " target tokens do not fit ", n_positions));
    }
  }
  constexpr size_t kMaxBatchTokens = 512;
  std::vector<double> sums(inputs.size(), 0.0);
  std::vector<Sequence> active;
  size_t next_input = 0, finished = 0;
  std::vector<float> logits;
  std::vector<lm::StepInput> step;
  while (finished < inputs.size()) {
    while (active.size() < static_cast<size_t>(std::max(1, max_sequences)) &&
           next_input < inputs.size()) {
      active.push_back(Sequence{next_input++, model.NewCache()});
    }
    // Every decoding sequence runs; prefill chunks fill what is left of the token budget.
    size_t budget = kMaxBatchTokens;
    for (const Sequence& s : active) {
      if (s.fed == inputs[s.input].prompt.size()) budget -= std::min<size_t>(budget, 1);
    }
    step.clear();
    std::vector<size_t> rows;  // index into active of each step input
    for (size_t a = 0; a < active.size(); ++a) {
      Sequence& s = active[a];
      const ScoringInput& in = inputs[s.input];
      s.chunk = 0;
      if (s.fed < in.prompt.size()) {
        const size_t want = std::min<size_t>(in.prompt.size() - s.fed,
                                             static_cast<size_t>(std::max(1, prefill_chunk)));
        s.chunk = std::min(want, budget);
        if (s.chunk == 0) continue;
        budget -= s.chunk;
        step.push_back({s.cache.get(), absl::MakeConstSpan(in.prompt).subspan(s.fed, s.chunk)});
      } else {
        step.push_back({s.cache.get(), absl::MakeConstSpan(in.target).subspan(s.next - 1, 1)});
      }
      rows.push_back(a);
    }
    if (absl::Status st = model.Step(step, logits); !st.ok()) return st;
    for (size_t r = 0; r < rows.size(); ++r) {
      Sequence& s = active[rows[r]];
      const ScoringInput& in = inputs[s.input];
      if (s.chunk > 0) {
        s.fed += s.chunk;
        if (s.fed < in.prompt.size()) continue;  // the logits of a mid-prompt token
      }
      sums[s.input] += LogProbOf(logits.data() + r * static_cast<size_t>(vocab), vocab,
                                 in.target[s.next]);
      ++s.next;
    }
    const size_t before = active.size();
    active.erase(std::remove_if(active.begin(), active.end(),
                                [&](const Sequence& s) {
                                  return s.next == inputs[s.input].target.size();
                                }),
                 active.end());
    if (active.size() != before) {
      finished += before - active.size();
      if (on_done) on_done(finished);
    }
  }
  return sums;
}

absl::StatusOr<std::shared_ptr<const domain::Domain>> EvaluationDomain(
    const std::vector<const train::ExampleRecord*>& records) {
  auto domain = std::make_shared<domain::Domain>();
  domain->name = "evaluation";
  domain->languages = {"en"};
  domain->system_prompt["en"] = "";
  domain->templates[domain::kFallbackTemplate]["en"] = {kFallbackReply};
  domain->templates[domain::kEscalateTemplate]["en"] = {kEscalateReply};

  std::map<std::string, std::set<std::string>> values;  // slot -> distinct values
  for (const train::ExampleRecord* r : records) {
    for (const auto& [name, value] : r->context.state().slots()) {
      std::set<std::string>& distinct = values[name];
      if (!IsIgnoredValue(value.value())) distinct.insert(value.value());
    }
  }
  absl::StatusOr<std::unique_ptr<const reply::EntityDetector>> detector =
      reply::EntityDetector::Create(std::make_shared<domain::Domain>());
  if (!detector.ok()) return detector.status();
  for (const auto& [name, distinct] : values) {
    std::map<reply::EntityKind, size_t> whole;  // values that are exactly one entity of a kind
    for (const std::string& v : distinct) {
      std::vector<reply::Entity> found = (*detector)->Find(v);
      if (found.size() == 1) ++whole[found[0].kind];
    }
    domain::Slot slot;
    slot.name = name;
    slot.prompt = absl::StrCat("ask.", name);
    for (const auto& [kind, count] : whole) {
      if (distinct.empty() || count * 5 < distinct.size() * 4) continue;
      if (kind == reply::EntityKind::kEmail) slot.type = domain::SlotType::kEmail;
      if (kind == reply::EntityKind::kPhone) slot.type = domain::SlotType::kPhone;
      if (kind == reply::EntityKind::kAmount) slot.type = domain::SlotType::kNumber;
    }
    domain->slots.push_back(std::move(slot));
  }
  return std::shared_ptr<const domain::Domain>(std::move(domain));
}

std::string MetricsJson(const std::map<std::string, double>& metrics) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const auto& [name, value] : metrics) {
    if (std::isfinite(value)) j[name] = value;  // JSON has no NaN: such a metric is left out
  }
  return j.dump(2) + "\n";
}

namespace {

// The evaluated examples and the retrieval pool.
struct Inputs {
  std::vector<train::ExampleRecord> all;   // the split
  std::vector<train::ExampleRecord> pool;  // the retrieval baseline's training examples
  std::vector<size_t> picked;              // indices into `all` to evaluate
};

absl::StatusOr<Inputs> ReadInputs(const GenerationEvalOptions& options) {
  Inputs in;
  train::TextOptions text;
  text.split = options.split;
  absl::StatusOr<std::vector<train::ExampleRecord>> all =
      train::ReadExampleRecords(options.data, options.format, text);
  if (!all.ok()) return DataError("--data", all.status());
  if (all->empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--data ", options.data, " (split ",
                                                   options.split, "): no examples"));
  }
  in.all = *std::move(all);
  absl::StatusOr<std::vector<train::ExampleRecord>> pool = ReadRetrieval(options, text);
  if (!pool.ok()) return pool.status();
  if (pool->empty()) {
    return absl::InvalidArgumentError("the retrieval data (train split) has no examples");
  }
  in.pool = *std::move(pool);
  std::unordered_set<std::string> origins;
  for (const train::ExampleRecord& r : in.pool) origins.insert(r.example.origin);
  for (const train::ExampleRecord& r : in.all) {
    if (origins.count(r.example.origin)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the retrieval data holds the evaluated example ", r.example.origin,
          ": pass the training split as --retrieval-data"));
    }
  }
  in.picked = Pick(in.all.size(), options.limit);
  if (options.exemplars) {  // the evaluated examples only (SGD's dev split is 19,384)
    std::vector<train::ExampleRecord> picked;
    picked.reserve(in.picked.size());
    for (size_t i : in.picked) picked.push_back(std::move(in.all[i]));
    train::ExemplarOptions exemplar;
    exemplar.drop_share = 0.0;
    exemplar.similar_replies = static_cast<size_t>(options.similar_replies);
    if (absl::Status s = train::AddExemplars(picked, in.pool, exemplar); !s.ok()) return s;
    for (size_t k = 0; k < in.picked.size(); ++k) in.all[in.picked[k]] = std::move(picked[k]);
  }
  return in;
}

// What the service would hold: tokenizer, model, filter, template fallback, prompt builders.
struct Serving {
  std::unique_ptr<lm::BpeTokenizer> tokenizer;
  std::unique_ptr<lm::Gpt2Model> model;
  int32_t eos = 0;
  size_t n_positions = 0;
  std::shared_ptr<const domain::Domain> domain;
  reply::PromptFormat format;
  std::unique_ptr<const reply::ReplyChooser> chooser;
  size_t data_constants = 0;  // the chooser's constants (--data-constants)
  std::unique_ptr<const generation::TemplateGenerator> fallback;
  // One per system prompt, counting with the model's tokenizer as the service's builder does.
  std::map<std::string, std::unique_ptr<const reply::PromptBuilder>> builders;
};

absl::StatusOr<Serving> LoadServing(const GenerationEvalOptions& options, const Inputs& in) {
  Serving s;
  absl::StatusOr<std::unique_ptr<lm::BpeTokenizer>> tokenizer =
      lm::BpeTokenizer::Load(options.model_dir);
  if (!tokenizer.ok()) return DataError("--model", tokenizer.status());
  s.tokenizer = *std::move(tokenizer);
  const std::optional<int32_t> eos = s.tokenizer->eos_id();
  if (!eos.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--model ", options.model_dir, ": the tokenizer has no end-of-text token"));
  }
  s.eos = *eos;
  lm::LoadOptions load;
  load.threads = options.threads;
  absl::StatusOr<std::unique_ptr<lm::Gpt2Model>> model = lm::Gpt2Model::Load(options.model_dir, load);
  if (!model.ok()) return DataError("--model", model.status());
  s.model = *std::move(model);
  s.n_positions = static_cast<size_t>(s.model->config().n_positions);
  if (static_cast<size_t>(options.max_tokens) >= s.n_positions) {
    return absl::InvalidArgumentError(absl::StrCat("--max-tokens ", options.max_tokens,
                                                   " leaves no room for a prompt in ",
                                                   s.n_positions, " positions"));
  }

  std::vector<const train::ExampleRecord*> typed;
  for (const train::ExampleRecord& r : in.all) typed.push_back(&r);
  for (const train::ExampleRecord& r : in.pool) typed.push_back(&r);
  absl::StatusOr<std::shared_ptr<const domain::Domain>> domain = EvaluationDomain(typed);
  if (!domain.ok()) return domain.status();
  s.domain = *std::move(domain);
  // The service's filter with its defaults and built-in blocklist.
  absl::StatusOr<reply::Blocklist> blocklist =
      reply::Blocklist::Parse(generation::kDefaultBlocklistYaml, "built-in blocklist");
  if (!blocklist.ok()) return blocklist.status();
  reply::ChooserOptions chooser_options;
  chooser_options.role_labels = {s.format.customer_label, s.format.agent_label};
  chooser_options.weights.consensus = options.consensus_weight;
  chooser_options.weights.exemplar_votes = options.exemplar_votes;
  if (options.data_constants) {
    for (const train::ExampleRecord& r : in.pool) {
      for (std::string& name : reply::PlaceholderNames(r.example.reply)) {
        if (s.domain->FindSlot(name) != nullptr) continue;
        chooser_options.constants[name] = absl::StrCat("{{", name, "}}");
      }
    }
    s.data_constants = chooser_options.constants.size();
  }
  absl::StatusOr<std::unique_ptr<const reply::ReplyChooser>> chooser =
      reply::ReplyChooser::Create(s.domain, *std::move(blocklist), chooser_options);
  if (!chooser.ok()) return chooser.status();
  s.chooser = *std::move(chooser);
  s.fallback = std::make_unique<const generation::TemplateGenerator>(s.domain,
                                                                     generation::GeneratorOptions{});

  const lm::BpeTokenizer* counter = s.tokenizer.get();
  for (size_t i : in.picked) {
    const std::string& system = in.all[i].system_prompt;
    if (s.builders.count(system)) continue;
    absl::StatusOr<std::unique_ptr<const reply::PromptBuilder>> b = reply::PromptBuilder::Create(
        train::PromptDomain(system), s.format, reply::PromptOptions{},
        [counter](absl::string_view t) { return counter->Encode(t).size(); });
    if (!b.ok()) return b.status();
    s.builders[system] = *std::move(b);
  }
  return s;
}

// One evaluated example: its generation prompt and, when the reference fits, its scoring.
struct Item {
  const train::ExampleRecord* record = nullptr;
  std::vector<int32_t> prompt;
  std::optional<size_t> scoring;  // index into Prepared::scoring
};

struct Prepared {
  std::vector<Item> items;
  std::vector<ScoringInput> scoring;
  size_t skipped = 0;          // the turn alone does not fit (the service answers INVALID_ARGUMENT)
  size_t prompts_trimmed = 0;  // history turns or the exemplar dropped to fit
};

// Prompts for generation under the serving budget (context - max_tokens) and for perplexity
// with room for the whole reference reply and the end token.
absl::StatusOr<Prepared> Prepare(const GenerationEvalOptions& options, const Inputs& in,
                                 const Serving& s) {
  Prepared p;
  for (size_t i : in.picked) {
    const train::ExampleRecord& r = in.all[i];
    const reply::PromptBuilder& builder = *s.builders.at(r.system_prompt);
    absl::StatusOr<reply::BuiltPrompt> built =
        builder.Build(r.context, s.n_positions - static_cast<size_t>(options.max_tokens));
    if (!built.ok()) {
      ++p.skipped;
      continue;
    }
    if (built->history_turns_dropped == 0 && !built->exemplar_dropped &&
        built->text != r.example.prompt) {
      return absl::InternalError(
          absl::StrCat(r.example.origin, ": the serving prompt differs from the training prompt"));
    }
    if (built->history_turns_dropped > 0 || built->exemplar_dropped) ++p.prompts_trimmed;
    Item item{&r, s.tokenizer->Encode(built->text), std::nullopt};
    ScoringInput scoring;
    scoring.target = s.tokenizer->Encode(r.example.reply);
    scoring.target.push_back(s.eos);
    if (scoring.target.size() < s.n_positions) {
      absl::StatusOr<reply::BuiltPrompt> full =
          builder.Build(r.context, s.n_positions - scoring.target.size());
      if (full.ok()) {
        scoring.prompt = s.tokenizer->Encode(full->text);
        item.scoring = p.scoring.size();
        p.scoring.push_back(std::move(scoring));
      }
    }
    p.items.push_back(std::move(item));
  }
  if (p.items.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--data ", options.data, ": no example fits the model's context of ", s.n_positions,
        " tokens with --max-tokens ", options.max_tokens));
  }
  return p;
}

// The model's greedy candidate through the engine and the filter, for every item; many
// requests in flight so that the engine batches them. Uses the model from the engine's
// thread only (the caller must not use it meanwhile).
absl::StatusOr<std::vector<Outcome>> Generate(const GenerationEvalOptions& options,
                                              const Serving& s, const std::vector<Item>& items) {
  std::vector<Outcome> outcomes(items.size());
  metrics::Registry registry;
  // Declared before the engine: its callbacks use them until the engine is destroyed.
  std::mutex mu;
  std::condition_variable cv;
  size_t in_flight = 0, finished = 0;
  Progress progress(options.progress, "generation", items.size());
  const lm::EngineOptions engine_options;  // the service's defaults
  const size_t max_in_flight = static_cast<size_t>(engine_options.max_running_sequences) * 2;
  const std::vector<std::string> stops = reply::FormatStopSequences(s.format);
  auto finish = [&](size_t k, absl::StatusOr<lm::GenerationResult> result) {
    const generation::v1::GenerationContext& context = items[k].record->context;
    Outcome& outcome = outcomes[k];
    if (!result.ok() || result->candidates.empty()) {
      outcome.engine_error = true;
    } else {
      // As the service's NeuralReplyEngine hands the candidates to the filter.
      reply::ReplyChoice choice = s.chooser->Choose(context, generation::ToRawCandidates(*result));
      // The first (greedy) candidate is "the model's candidate" of the raw metrics.
      outcome.candidate = choice.candidates.front().text;
      outcome.candidate_reasons = choice.candidates.front().rejection_reasons;
      if (choice.chosen.has_value()) {
        outcome.sent = choice.candidates[*choice.chosen].text;
        outcome.chosen_index = static_cast<int>(*choice.chosen);
      }
    }
    if (outcome.engine_error || outcome.chosen_index < 0) {
      outcome.degraded = true;
      generation::v1::SamplingParams one;
      one.set_n(1);
      absl::StatusOr<generation::v1::GenerateResponse> t = s.fallback->Generate(context, one);
      outcome.sent = t.ok() ? t->candidates(static_cast<int>(t->chosen_index())).text() : "";
    }
    std::lock_guard lock(mu);
    --in_flight;
    ++finished;
    progress.Update(finished);
    cv.notify_all();
  };
  lm::Engine engine(*s.model, *s.tokenizer, engine_options, registry);
  for (size_t k = 0; k < items.size(); ++k) {
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return in_flight < max_in_flight; });
      ++in_flight;
    }
    lm::GenerationRequest request;
    request.prompt = items[k].prompt;
    request.max_tokens = options.max_tokens;
    request.n = options.candidates;
    request.sampling.temperature = options.candidates > 1 ? options.candidate_temperature : 0.0f;
    request.sampling.greedy_first = true;
    request.sampling.no_repeat_ngram = options.no_repeat_ngram;
    if (options.constrain_placeholders) {
      request.allowed_placeholders = s.chooser->AllowedPlaceholders(items[k].record->context);
    }
    request.sampling.seed = options.seed;
    request.stop = stops;
    request.cache_key = items[k].record->context.cache_key();
    request.on_done = [&finish, k](absl::StatusOr<lm::GenerationResult> result) {
      finish(k, std::move(result));
    };
    absl::StatusOr<uint64_t> id = engine.Submit(std::move(request));
    if (!id.ok()) {
      return absl::InternalError(
          absl::StrCat(items[k].record->example.origin, ": ", id.status().message()));
    }
  }
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return finished == items.size(); });
  return outcomes;
}

// chrF of the retrieval baseline: per item, the reply of the pool example whose context is
// nearest by TF-IDF.
double RetrievalChrf(const Inputs& in, const std::vector<Item>& items,
                     std::vector<TfidfIndex::Match>& nearest_out) {
  std::vector<std::string> contexts;
  contexts.reserve(in.pool.size());
  for (const train::ExampleRecord& r : in.pool) contexts.push_back(RetrievalKey(r.context));
  const TfidfIndex index(contexts);
  ChrfAccumulator chrf;
  for (const Item& item : items) {
    const TfidfIndex::Match nearest = index.Best(RetrievalKey(item.record->context));
    nearest_out.push_back(nearest);
    chrf.Add(in.pool[nearest.document].reference, item.record->reference);
  }
  return chrf.Score();
}

// The reply metrics over the items' outcomes.
void AddReplyMetrics(const Serving& s, const std::vector<Item>& items,
                     const std::vector<Outcome>& outcomes, std::map<std::string, double>& m) {
  ChrfAccumulator chrf, chrf_unfiltered;
  std::map<std::string, size_t> rejected, reference_rejected;
  size_t degraded = 0, engine_errors = 0, rejected_any = 0, fidelity = 0, fidelity_unfiltered = 0;
  size_t sampled = 0;  // a sampled candidate was sent (the greedy one was rejected)
  for (size_t k = 0; k < items.size(); ++k) {
    const Outcome& o = outcomes[k];
    const train::ExampleRecord& r = *items[k].record;
    chrf.Add(o.sent, r.reference);
    chrf_unfiltered.Add(o.candidate, r.reference);
    for (const std::string& reason : o.candidate_reasons) ++rejected[reason];
    if (!o.candidate_reasons.empty()) ++rejected_any;
    if (o.degraded) ++degraded;
    if (o.chosen_index > 0) ++sampled;
    if (o.engine_error) ++engine_errors;
    if (!o.engine_error && KeepsSlots(o.candidate_reasons)) ++fidelity_unfiltered;
    // The sent reply checked again by the same filter (already filled: no placeholder left
    // to fill, so the check sees exactly the text the customer would).
    if (KeepsSlotValues(*s.chooser, r.context, o.sent)) ++fidelity;
    // The filter on the data's own reply (the target, placeholders filled from the state):
    // how often it would refuse what a person wrote.
    reply::RawCandidate reference;
    reference.text = std::string(absl::StripAsciiWhitespace(r.example.reply));
    reply::ReplyChoice check = s.chooser->Choose(r.context, absl::MakeConstSpan(&reference, 1));
    for (const std::string& reason : check.candidates.front().rejection_reasons) {
      ++reference_rejected[reason];
    }
  }
  const double n = static_cast<double>(items.size());
  m["chrf"] = chrf.Score();
  m["chrf_unfiltered"] = chrf_unfiltered.Score();
  m["slot_fidelity"] = static_cast<double>(fidelity) / n;
  m["slot_fidelity_unfiltered"] = static_cast<double>(fidelity_unfiltered) / n;
  for (absl::string_view reason : reply::AllRejectionReasons()) {
    m[absl::StrCat("rejected_", reason)] = static_cast<double>(rejected[std::string(reason)]) / n;
  }
  for (absl::string_view reason : reply::AllRejectionReasons()) {
    m[absl::StrCat("reference_rejected_", reason)] =
        static_cast<double>(reference_rejected[std::string(reason)]) / n;
  }
  m["rejected_any"] = static_cast<double>(rejected_any) / n;
  m["degraded_rate"] = static_cast<double>(degraded) / n;
  m["sampled_rate"] = static_cast<double>(sampled) / n;
  m["engine_errors"] = static_cast<double>(engine_errors);
}

absl::Status WriteSamples(const std::string& path, const Inputs& in, const std::vector<Item>& items,
                          const std::vector<Outcome>& outcomes,
                          const std::vector<TfidfIndex::Match>& nearest) {
  std::ofstream out(path, std::ios::trunc);
  if (!out) return absl::InvalidArgumentError(absl::StrCat("--samples ", path, ": cannot write"));
  for (size_t k = 0; k < items.size(); ++k) {
    const train::ExampleRecord& r = *items[k].record;
    const Outcome& o = outcomes[k];
    const nlohmann::json line = {
        {"origin", r.example.origin},
        {"customer", r.context.user_text()},
        {"reference", r.reference},
        {"candidate", o.candidate},
        {"rejected", o.candidate_reasons},
        {"sent", o.sent},
        {"degraded", o.degraded},
        {"chosen", o.chosen_index},
        {"exemplar", r.context.exemplar()},
        {"retrieval", k < nearest.size() ? in.pool[nearest[k].document].reference : ""},
        {"retrieval_cosine", k < nearest.size() ? nearest[k].cosine : 0.0}};
    out << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
  if (!out) return absl::InternalError(absl::StrCat("--samples ", path, ": write failed"));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::map<std::string, double>> EvaluateGeneration(
    const GenerationEvalOptions& options) {
  const Clock::time_point start = Clock::now();
  std::ostream* log = options.progress;
  if (absl::Status st = CheckModelDir(options.model_dir); !st.ok()) return st;
  if (options.max_tokens < 1) return absl::InvalidArgumentError("--max-tokens: must be >= 1");
  if (options.candidates < 1 || options.candidates > 8) {
    return absl::InvalidArgumentError("--candidates: must be in [1, 8]");
  }
  if (!(options.candidate_temperature > 0.0f && options.candidate_temperature <= 2.0f)) {
    return absl::InvalidArgumentError("--candidate-temperature: must be in (0, 2]");
  }
  if (!(options.consensus_weight >= 0.0 && options.consensus_weight <= 100.0)) {
    return absl::InvalidArgumentError("--consensus-weight: must be in [0, 100]");
  }
  if (options.no_repeat_ngram < 0 || options.no_repeat_ngram > 32) {
    return absl::InvalidArgumentError("--no-repeat-ngram: must be in [0, 32]");
  }
  if (!options.samples_file.empty() && !std::ofstream(options.samples_file, std::ios::trunc)) {
    return absl::InvalidArgumentError(absl::StrCat("--samples ", options.samples_file, ": cannot write"));
  }

  absl::StatusOr<Inputs> in = ReadInputs(options);
  if (!in.ok()) return in.status();
  const double read_seconds = SecondsSince(start);
  if (log) {
    *log << absl::StrFormat(
        "data: %s (%s, split %s): %zu examples, evaluating %zu; retrieval pool %zu\n",
        options.data, train::TextFormatName(options.format), options.split, in->all.size(),
        in->picked.size(), in->pool.size());
  }
  absl::StatusOr<Serving> serving = LoadServing(options, *in);
  if (!serving.ok()) return serving.status();
  const Serving& s = *serving;
  if (log) {
    *log << absl::StrFormat("model: %s (%d layers x %d, %zu positions, vocab %d)\n",
                            options.model_dir, s.model->config().n_layer, s.model->config().n_embd,
                            s.n_positions, s.model->config().vocab_size);
  }
  absl::StatusOr<Prepared> prepared = Prepare(options, *in, s);
  if (!prepared.ok()) return prepared.status();
  const std::vector<Item>& items = prepared->items;

  // Perplexity first, on this thread; the engine takes the model over afterwards.
  const Clock::time_point ppl_start = Clock::now();
  Progress ppl_progress(log, "perplexity", prepared->scoring.size());
  absl::StatusOr<std::vector<double>> logprobs =
      TargetLogProbs(*s.model, prepared->scoring, 32, 256,
                     [&](size_t done) { ppl_progress.Update(done); });
  if (!logprobs.ok()) {
    return absl::InternalError(absl::StrCat("perplexity: ", logprobs.status().message()));
  }
  double nll = 0.0;
  size_t target_tokens = 0;
  for (size_t k = 0; k < prepared->scoring.size(); ++k) {
    nll -= (*logprobs)[k];
    target_tokens += prepared->scoring[k].target.size();
  }
  const double ppl_seconds = SecondsSince(ppl_start);

  const Clock::time_point gen_start = Clock::now();
  absl::StatusOr<std::vector<Outcome>> outcomes = Generate(options, s, items);
  if (!outcomes.ok()) return outcomes.status();
  const double gen_seconds = SecondsSince(gen_start);

  const Clock::time_point retrieval_start = Clock::now();
  std::vector<TfidfIndex::Match> nearest;
  const double retrieval_chrf = RetrievalChrf(*in, items, nearest);
  const double retrieval_seconds = SecondsSince(retrieval_start);
  if (!options.samples_file.empty()) {
    if (absl::Status st = WriteSamples(options.samples_file, *in, items, *outcomes, nearest); !st.ok()) return st;
  }

  std::map<std::string, double> m;
  m["examples"] = static_cast<double>(items.size());
  m["examples_in_split"] = static_cast<double>(in->all.size());
  m["examples_skipped_too_long"] = static_cast<double>(prepared->skipped);
  m["prompts_trimmed"] = static_cast<double>(prepared->prompts_trimmed);
  m["perplexity"] = target_tokens > 0 ? std::exp(nll / static_cast<double>(target_tokens)) : NAN;
  m["perplexity_examples"] = static_cast<double>(prepared->scoring.size());
  m["perplexity_tokens"] = static_cast<double>(target_tokens);
  m["retrieval_chrf"] = retrieval_chrf;
  m["retrieval_examples"] = static_cast<double>(in->pool.size());
  m["data_constants"] = static_cast<double>(s.data_constants);
  size_t with_exemplar = 0;
  for (const Item& item : items) with_exemplar += item.record->context.exemplar().empty() ? 0 : 1;
  m["exemplar_rate"] = items.empty() ? 0.0 : static_cast<double>(with_exemplar) / items.size();
  AddReplyMetrics(s, items, *outcomes, m);
  m["typed_slots"] = static_cast<double>(
      std::count_if(s.domain->slots.begin(), s.domain->slots.end(),
                    [](const domain::Slot& slot) { return slot.type != domain::SlotType::kFreeText; }));
  m["seconds_read"] = read_seconds;
  m["seconds_perplexity"] = ppl_seconds;
  m["seconds_generation"] = gen_seconds;
  m["seconds_retrieval"] = retrieval_seconds;
  m["seconds_total"] = SecondsSince(start);
  return m;
}

int RunGenerationEval(int argc, char** argv) {
  GenerationEvalOptions options;
  std::string format;
  std::string report;
  bool quiet = false;
  CLI::App app{"helpline-eval generation: score a reply model on a held-out dialogue split"};
  app.add_option("--model", options.model_dir, "GPT-2 model folder (Hugging Face layout)")->required();
  app.add_option("--data", options.data, "data set folder or split file (as in shared/data)")
      ->required();
  app.add_option("--format", format, "sgd, multiwoz21, taskmaster, bitext or camrest")->required();
  app.add_option("--split", options.split, "split of --data to evaluate (default dev)");
  app.add_option("--retrieval-data", options.retrieval_data,
                 "training examples of the retrieval baseline: a folder with a train split or a "
                 "split folder/file (default: the train split next to --data)");
  app.add_option("--limit", options.limit, "evaluate at most N examples, spread evenly (0: all)");
  app.add_option("--seed", options.seed, "sampler seed (decoding is greedy)");
  app.add_option("--threads", options.threads, "threads of the model's math")
      ->check(CLI::Range(1, 256));
  app.add_option("--max-tokens", options.max_tokens, "tokens per reply (the service's default)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--no-repeat-ngram", options.no_repeat_ngram,
                 "decoding never repeats an n-gram of this many generated tokens (0: off)")
      ->capture_default_str();
  app.add_option("--candidates", options.candidates,
                 "candidates per reply: the greedy one, then samples (the service's default)")
      ->capture_default_str();
  app.add_option("--candidate-temperature", options.candidate_temperature,
                 "temperature of the sampled candidates")
      ->capture_default_str();
  app.add_option("--consensus-weight", options.consensus_weight,
                 "weight of the candidates' agreement (chrF) in the reply chooser's score")
      ->capture_default_str();
  app.add_option("--constrain-placeholders", options.constrain_placeholders,
                 "decode only {{placeholders}} the state can fill (the service does)")
      ->capture_default_str();
  app.add_option("--exemplar-votes", options.exemplar_votes,
                 "votes of the exemplar in the consensus (reply.exemplar_votes)")
      ->capture_default_str();
  app.add_option("--similar-replies", options.similar_replies,
                 "next-nearest training replies beside the exemplar, one consensus vote each "
                 "(reply.similar_replies)")
      ->check(CLI::Range(0, generation::kMaxSimilarReplies))
      ->capture_default_str();
  app.add_option("--data-constants", options.data_constants,
                 "the data set's business placeholders ({{website_url}}) are constants kept as "
                 "written, as a deployment's reply.constants (true|false)")
      ->capture_default_str();
  app.add_option("--exemplars", options.exemplars,
                 "show the model the nearest training reply as an exemplar (the shipped model is "
                 "trained with them; false for a model trained without)")
      ->capture_default_str();
  app.add_option("--report", report, "also write the metrics to this file as one JSON object");
  app.add_option("--samples", options.samples_file,
                 "write one JSON line per example: customer, reference, candidate, reasons, sent, retrieval");
  app.add_flag("--quiet", quiet, "no progress on stderr");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  auto fail = [](const absl::Status& s, int code) {
    std::cerr << "helpline-eval generation: " << s.message() << "\n";
    return code;
  };
  absl::StatusOr<train::TextFormat> parsed = train::ParseTextFormat(format);
  if (!parsed.ok()) return fail(absl::InvalidArgumentError(absl::StrCat("--format: ", parsed.status().message())), 2);
  options.format = *parsed;
  options.progress = quiet ? nullptr : &std::cerr;
  absl::StatusOr<std::map<std::string, double>> metrics = EvaluateGeneration(options);
  if (!metrics.ok()) {
    const absl::StatusCode code = metrics.status().code();
    const bool bad_input = code == absl::StatusCode::kInvalidArgument ||
                           code == absl::StatusCode::kNotFound ||
                           code == absl::StatusCode::kFailedPrecondition;
    return fail(metrics.status(), bad_input ? 2 : 1);
  }
  const std::string json = MetricsJson(*metrics);
  std::cout << json << std::flush;
  if (!report.empty()) {
    std::ofstream out(report, std::ios::binary | std::ios::trunc);
    out << json;
    out.close();
    if (!out) return fail(absl::UnavailableError(absl::StrCat(report, ": cannot write the report")), 1);
  }
  return 0;
}

}  // namespace helpline::eval
