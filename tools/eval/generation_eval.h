// helpline-eval generation: scores a reply model (a GPT-2 folder) on a held-out split of a
// dialogue data set in the training layout (train/dialogue_text.h), through the serving path:
// the prompt built by generation::reply::PromptBuilder under the model's context budget, the
// lm::Engine (continuous batching, greedy, the serving stop sequences), and the serving filter
// generation::reply::ReplyChooser, with the template reply when no candidate survives.
//
// Metrics (one flat JSON object, name -> number):
//   perplexity                 exp(mean negative log-likelihood) of the reference reply tokens
//                              (the target with {{slot}} placeholders, as trained) and the end
//                              token, given the prompt; prompt tokens do not count
//   chrf                       corpus chrF (sacrebleu's CHRF defaults) of the sent replies
//                              against the data's replies, 0..100
//   chrf_unfiltered            the same for the model's own candidate before the filter
//   retrieval_chrf             the baseline: the reply of the retrieval example whose context
//                              is nearest by TF-IDF cosine (reply::RetrievalKey)
//   slot_fidelity              share of sent replies that keep every slot value of the state:
//                              the serving filter finds neither slot_contradiction nor
//                              unfilled_placeholder in them (EvaluationDomain types the slots)
//   slot_fidelity_unfiltered   the same for the model's candidates before the filter
//   rejected_<reason>          share of candidates the filter rejects for <reason>
//   reference_rejected_<reason> the same for the data's own replies (the filter's refusals of
//                              what a person wrote: its false positives on this data)
//   degraded_rate              share of examples answered with the template reply
//   ... and counts and times (see GenerationMetrics in the .cc and tools/eval/README.md).
//
// The header is free of libtorch (lm::Gpt2Model's header is); so is the .cc.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/domain/domain.h"
#include "helpline/generation/v1/generation_service.pb.h"
#include "lm/model/gpt2.h"
#include "services/generation/decoding.h"
#include "services/generation/generator.h"
#include "services/generation/reply/chrf.h"
#include "services/generation/reply/reply_chooser.h"
#include "services/generation/reply/retrieval.h"
#include "train/dialogue_text.h"

namespace helpline::eval {

// Corpus chrF (sacrebleu's CHRF defaults), shared with the reply chooser.
using generation::reply::ChrfAccumulator;
using generation::reply::SentenceChrf;

// The retrieval baseline's text and index (services/generation/reply/retrieval.h).
using generation::reply::RetrievalKey;
using generation::reply::TfidfIndex;

// One sequence to score: the target tokens given the prompt tokens.
struct ScoringInput {
  std::vector<int32_t> prompt;  // not empty
  std::vector<int32_t> target;  // not empty; prompt + target fit the model's context
};

// Sum of the natural log-probabilities of each input's target tokens given its prompt and
// the target tokens before it (teacher forcing), through model.Step: the prompt in chunks of
// at most `prefill_chunk` tokens, then one target token per step, `max_sequences` sequences
// per batch. `on_done` (may be empty) is called with the count of finished inputs. Uses the
// model from the calling thread only. INVALID_ARGUMENT from Step (ids, lengths).
absl::StatusOr<std::vector<double>> TargetLogProbs(
    lm::Gpt2Model& model, absl::Span<const ScoringInput> inputs, int max_sequences = 32,
    int prefill_chunk = 256, const std::function<void(size_t done)>& on_done = {});

// The domain the filter and the template fallback use for a data set: language "en", no
// intents, the templates "fallback" and "escalate" (generic sentences), and one slot per slot
// name of the records' states, sorted by name, typed by its values: email, phone or number
// (amount) when at least 80 % of its distinct values (ignoring "dontcare"/"none") are one
// entity of that kind by the filter's own detector, else free text. Typed slots are what the
// serving filter's slot_contradiction rule checks.
absl::StatusOr<std::shared_ptr<const domain::Domain>> EvaluationDomain(
    const std::vector<const train::ExampleRecord*>& records);

// The slot_fidelity test of one reply: the serving filter (`chooser`, over EvaluationDomain)
// finds neither slot_contradiction (a value of a typed slot's kind that is none of the state's
// values) nor unfilled_placeholder (a {{name}} without a value, or "{{" / "}}" left) in
// `text` for the turn `context`. The text is checked as sent: placeholders the state can fill
// are filled first, exactly as the filter does.
bool KeepsSlotValues(const generation::reply::ReplyChooser& chooser,
                     const generation::v1::GenerationContext& context, absl::string_view text);

struct GenerationEvalOptions {
  std::string model_dir;
  std::string data;
  train::TextFormat format = train::TextFormat::kSgd;
  std::string split = "dev";
  // Empty: the train split of `data` (of its folder when `data` is a file).
  std::string retrieval_data;
  // 0: every example; else this many, spread evenly over the split (every k-th).
  size_t limit = 0;
  uint64_t seed = 1;
  int threads = 2;
  // Tokens per reply, as the service's default_max_tokens.
  int max_tokens = static_cast<int>(generation::kDefaultMaxTokens);
  // The n-gram repeat ban of decoding (lm::SamplingOptions); the service's default.
  int no_repeat_ngram = generation::kDefaultNoRepeatNgram;
  // Candidates per reply (the greedy one, then samples at candidate_temperature); the
  // service's defaults.
  int candidates = generation::kDefaultReplyCandidates;
  float candidate_temperature = generation::kDefaultCandidateTemperature;
  // Weight of the chooser's consensus term (agreement among the candidates); the service's
  // default (reply::RerankWeights).
  double consensus_weight = generation::reply::RerankWeights{}.consensus;
  // Votes of the exemplar in that consensus (reply::RerankWeights::exemplar_votes).
  double exemplar_votes = generation::reply::RerankWeights{}.exemplar_votes;
  // Next-nearest training replies each example gets as context.similar_replies (one vote
  // each in the consensus); the service's default. Only with exemplars.
  int similar_replies = generation::kDefaultSimilarReplies;
  // Decode only the {{placeholders}} the state can fill, as the service does.
  bool constrain_placeholders = true;
  // The data set's placeholders that no state fills (names the train split's replies write
  // that are no slot: Bitext's {{website_url}}, {{currency_symbol}}) are constants kept as
  // written (reply::ChooserOptions::constants), as a deployment would give them its own
  // values with reply.constants: the references and the retrieval baseline keep them so.
  // false: the model may not write them (a deployment without reply.constants).
  bool data_constants = true;
  // Give each example's prompt the reply of the nearest retrieval example as its exemplar
  // (train::AddExemplars, none left out), as the service does with an exemplar index.
  bool exemplars = true;
  // Progress lines (examples done, rate, ETA); null for none.
  std::ostream* progress = nullptr;
  // When set: one JSON line per evaluated example (origin, customer text, reference, the
  // model's candidate and its rejection reasons, the reply sent, the exemplar, the retrieval
  // baseline's reply and the cosine of its context to this one), for reading what the numbers
  // mean.
  std::string samples_file;
};

// Reads, scores and returns the metrics (name -> number). INVALID_ARGUMENT / NOT_FOUND name
// the bad input (model folder, data path, split, empty data); FAILED_PRECONDITION when the
// retrieval data cannot be found; INTERNAL for a model failure.
absl::StatusOr<std::map<std::string, double>> EvaluateGeneration(
    const GenerationEvalOptions& options);

// The metrics as one JSON object, keys sorted, one per line.
std::string MetricsJson(const std::map<std::string, double>& metrics);

// `helpline-eval generation ...` (argv[0] is "generation"): parses the flags, evaluates,
// prints the JSON on stdout and writes it to --report. Exit codes: 0 done, 2 bad input
// (flags, unknown format, missing model folder, unreadable or empty data), 1 a model or
// I/O failure during the run.
int RunGenerationEval(int argc, char** argv);

}  // namespace helpline::eval
