// The filter-and-prune step: takes the n candidates the model generated for a turn, cuts
// length-limited ones back to their last complete sentence, fills {{placeholders}} from the
// dialogue state, rejects what must not reach the customer, and reranks the survivors by
// length-normalized log-probability and by how well they cover the state. When nothing
// survives, the caller sends the template reply marked degraded (ReplyChoice::chosen is
// empty).
//
// Per candidate, in this order:
//   1. prune   cut at the first "\n<role label>" (a model writing the next turn); when the
//              candidate finished by length, cut to the last complete sentence
//              (CutToLastSentence) — no complete sentence: rejected `truncated`
//              (options.reject_truncated; else the raw text is kept); when the text
//              repeats itself, cut to the whole sentences before the repetition
//              (CutBeforeRepetition; none left: the `repetition` filter rejects it);
//   2. fill    {{slot}} -> the state's value (enum label in the reply language), as the
//              templates do (domain::RenderTemplate);
//   3. filter  every applicable reason below is recorded (not only the first), on the
//              filled text.
//
// Rejection reasons (stable strings: metric label values and Candidate.rejection_reasons):
//   empty                  nothing but whitespace/punctuation after pruning and filling
//   truncated              finished by length with no complete sentence to cut back to
//   unsafe                 a blocklisted phrase (Blocklist: English words at word
//                          boundaries, Chinese as substrings, case-insensitive)
//   pii_not_from_customer  an e-mail, phone number, card number or order-number-like value
//                          that is not in the customer's messages of this session (history
//                          user turns, this turn's text and evidence) nor in the state's
//                          slot values nor in the domain's own texts / allowed_values
//   unsupported_value      an amount of money that nothing supports: not in the customer's
//                          messages, the state's slot values, nor the domain's texts /
//                          allowed_values (a small model invents prices and refunds)
//   slot_contradiction     a value of the type of a filled slot (order number pattern,
//                          amount, e-mail, phone) that differs from the state's value(s)
//   unfilled_placeholder   a {{name}} whose slot has no value, or "{{" / "}}" left over
//                          (a placeholder the customer wrote is echoed as written instead:
//                          CustomerPlaceholders)
//   repetition             degenerate repetition (FindRepetition)
//
// Score of a candidate (computed for every candidate, used among survivors):
//   score = w_logprob * logprob_sum / max(1, tokens)
//         + w_coverage * coverage
//         + w_length * min(1, units / length_target_units)
//         + w_consensus * consensus
// coverage = share of the coverage items the reply mentions: each filled slot the active
// intent uses (by value, enum label, or enum synonym) and the first missing required slot
// (by one of its ask keywords); 0 when there are no items. units = RepetitionUnits of the
// final text (words / CJK characters). consensus = the mean chrF (0..1) of the candidate
// against each other survivor as reference: the reply the model's other candidates agree
// with most (a minimum-Bayes-risk choice over the samples; 0 with one survivor, computed
// only when w_consensus is not 0); with exemplar_votes v > 0 and an exemplar in the context,
// consensus = (sum of chrF against the other survivors + v chrF against the exemplar) /
// (survivors - 1 + v); each of the context's similar_replies adds one more reference of one
// vote (to the sum and to the divisor). Ties go to the lower index.
//
// Immutable after construction; Choose() is const, thread-safe and does not block.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/domain/domain.h"
#include "helpline/generation/v1/generation_service.pb.h"
#include "services/generation/reply/blocklist.h"
#include "services/generation/reply/entities.h"
#include "services/generation/reply/reply_text.h"

namespace helpline::generation::reply {

inline constexpr char kRejectEmpty[] = "empty";
inline constexpr char kRejectTruncated[] = "truncated";
inline constexpr char kRejectUnsafe[] = "unsafe";
inline constexpr char kRejectPii[] = "pii_not_from_customer";
inline constexpr char kRejectUnsupportedValue[] = "unsupported_value";
inline constexpr char kRejectSlotContradiction[] = "slot_contradiction";
inline constexpr char kRejectUnfilledPlaceholder[] = "unfilled_placeholder";
inline constexpr char kRejectRepetition[] = "repetition";

// Every reason above, for creating metric series up front.
const std::vector<absl::string_view>& AllRejectionReasons();

// The {{name}} placeholders the fill step can fill for this state: its slots that have a
// value, sorted. Decoding is kept to these (lm::GenerationRequest::allowed_placeholders), so
// that `unfilled_placeholder` does not throw replies away.
std::vector<std::string> FillablePlaceholders(const common::v1::DialogueState& state);
// The same, plus the placeholders the customer wrote (CustomerPlaceholders): what decoding
// may write for this turn.
std::vector<std::string> FillablePlaceholders(const v1::GenerationContext& context);

// True when `name` is a placeholder name: not empty, letters, digits and "_" only.
bool IsPlaceholderName(absl::string_view name);

// The {{name}} placeholders in `text`, in order, once each.
std::vector<std::string> PlaceholderNames(absl::string_view text);

// The {{name}} placeholders (name: letters, digits, "_") in the customer's text, in order,
// once each. Templated data writes the customer's values so (Bitext: "where is order
// {{order_number}}"); a reply may echo them as written, like any value the customer gave, so
// the fill step keeps them and they are not `unfilled_placeholder`. A real customer's text
// has none.
std::vector<std::string> CustomerPlaceholders(absl::string_view user_text);

// One candidate as the engine produced it.
struct RawCandidate {
  // Decoded text, cut before any stop sequence.
  std::string text;
  // Generated tokens.
  size_t tokens = 0;
  // Sum of the log-probabilities of the generated tokens (<= 0).
  double logprob_sum = 0.0;
  // True when max_tokens ended the candidate.
  bool finished_by_length = false;
};

struct RerankWeights {
  double logprob = 1.0;
  double coverage = 1.0;
  double length = 0.1;
  // Replies of at least this many units (words / CJK characters) get the whole length
  // bonus; shorter ones a share of it.
  size_t length_target_units = 12;
  // Weight of the agreement with the other surviving candidates (chrF); 0: not computed.
  // It makes the choice a minimum-Bayes-risk one (the other terms break near-ties): on the
  // dev splits, with 8 candidates against 4 without it (weight 10): +2.8 to +4.0 chrF on all
  // five sets; 100 rather than 10 (the logprob then only breaks near-ties), shipped model:
  // Bitext 51.1 -> 51.9, Taskmaster 42.6 -> 42.8 (models/helpline-small/MODEL_CARD.md).
  double consensus = 100.0;
  // Votes of the context's exemplar (GenerationContext.exemplar: a similar past turn's reply)
  // in the consensus: it counts as this many more candidates to agree with, so the choice
  // leans toward the wording agents used in similar turns. 0: the exemplar has no say. Dev,
  // the exemplar-trained model: Taskmaster chrF 39.8 / 40.7 / 41.0 / 41.0 / 41.1 with 0 / 2 /
  // 4 / 8 / 16 votes, Bitext 46.4 / 47.0 / 47.0 with 0 / 4 / 8.
  double exemplar_votes = 4.0;
};

struct ChooserOptions {
  // Reject a length-limited candidate without a complete sentence (`truncated`); when
  // false, such a candidate keeps its raw text and goes on to the other filters.
  bool reject_truncated = true;
  RepetitionOptions repetition;
  RerankWeights weights;
  // Values the replies may always mention (the shop's own phone number or address): they
  // never count as personal data nor as a contradiction. The domain's templates and system
  // prompt are always allowed (e.g. the example order numbers in ask.order_id).
  std::vector<std::string> allowed_values;
  // The business's own placeholders and their values ("website_url" -> "https://shop.example"):
  // not slots of the dialogue but facts of the deployment that the training replies write
  // as {{name}} (Bitext: {{website_url}}, {{customer_support_phone_number}}). Decoding may
  // write them (AllowedPlaceholders), the fill step writes the value (a state slot of the
  // same name wins), and the values never count as personal data nor as a contradiction.
  // A value that is the placeholder itself ("{{name}}") keeps it as written: for evaluating
  // on templated data whose reference replies keep them (helpline-eval generation). Names:
  // letters, digits and "_"; values: not empty, no "{{" / "}}" other than that.
  std::map<std::string, std::string> constants;
  // Other names of the domain's slots, as the model's training replies write them
  // ("order_number" -> "order_id": Bitext's {{order_number}} is the shop's order_id). When the
  // state has a value for the slot, decoding may write the alias too and the fill step writes
  // the slot's value there (a state slot named like the alias wins). Both names: letters,
  // digits and "_"; an alias is not its own slot.
  std::map<std::string, std::string> placeholder_aliases;
  // Phrases that show a reply asks for a slot, by slot name, any language. A slot not
  // listed here gets its name with "_" as " " ("order id"), "<x> number" for a name
  // "<x>_id", and "e-mail" for "email".
  std::map<std::string, std::vector<std::string>> ask_keywords;
  // Role labels whose "\n<label>" ends a reply (the prompt format's labels).
  std::vector<std::string> role_labels = {"Customer:", "Agent:"};
};

struct ScoredCandidate {
  // The final text: pruned and filled (for a rejected candidate: as far as it got).
  std::string text;
  // Empty when the candidate survived.
  std::vector<std::string> rejection_reasons;
  // Human-readable details of the reasons, same order ("unsafe: 'idiot'"); for logs and
  // debug output only (may contain the matched text).
  std::vector<std::string> details;
  double score = 0.0;
  double mean_logprob = 0.0;
  double coverage = 0.0;
  // Mean chrF (0..1) against the other survivors (and the exemplar, with its votes, and the
  // similar replies); 0 when not computed.
  double consensus = 0.0;
  // True when the text was cut (sentence or role label).
  bool pruned = false;

  bool rejected() const { return !rejection_reasons.empty(); }
};

struct ReplyChoice {
  // One per input candidate, same order.
  std::vector<ScoredCandidate> candidates;
  // Index of the best surviving candidate; empty when none survived (send the template
  // reply, degraded).
  std::optional<size_t> chosen;
};

class ReplyChooser {
 public:
  // INVALID_ARGUMENT naming "constants[<name>]" for a bad constant,
  // "placeholder_aliases[<name>]" for a bad alias; INTERNAL if the entity
  // patterns do not compile (a bug).
  static absl::StatusOr<std::unique_ptr<const ReplyChooser>> Create(
      std::shared_ptr<const domain::Domain> domain, Blocklist blocklist, ChooserOptions options);

  // Filters, fills and ranks `candidates` for the turn described by `context` (its state,
  // user_text, evidence, history and language).
  ReplyChoice Choose(const v1::GenerationContext& context,
                     absl::Span<const RawCandidate> candidates) const;

  // The {{name}} placeholders decoding may write for this turn: FillablePlaceholders(context),
  // the constants and the placeholder_aliases of slots with a value, sorted.
  std::vector<std::string> AllowedPlaceholders(const v1::GenerationContext& context) const;

  const EntityDetector& entities() const { return *entities_; }

 private:
  ReplyChooser() = default;

  struct TurnFacts;  // What Choose derives from the context once for all candidates.
  ScoredCandidate Evaluate(const TurnFacts& facts, const RawCandidate& raw) const;
  double Coverage(const TurnFacts& facts, absl::string_view text) const;
  // Adds w_consensus * consensus to the survivors' scores.
  void AddConsensus(std::vector<ScoredCandidate>& candidates,
                    const v1::GenerationContext& context) const;
  std::vector<std::string> AskKeywords(const std::string& slot) const;

  std::shared_ptr<const domain::Domain> domain_;
  Blocklist blocklist_;
  ChooserOptions options_;
  std::unique_ptr<const EntityDetector> entities_;
  // Keys of the values the domain's own texts and allowed_values mention.
  KeySet allowed_keys_;
};

// Writes a scored candidate into the response proto (text, score, rejection reasons,
// origin "model"); the finish reason is the caller's.
void ToProto(const ScoredCandidate& candidate, v1::Candidate& out);

}  // namespace helpline::generation::reply
