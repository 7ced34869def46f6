// What a customer turn does besides naming an intent and giving slot values, read from cue
// words in English and Chinese: a yes/no answer, a correction, a negation in front of a
// value, a return to an earlier topic, signs of frustration. Pure functions of the text;
// the tracker (tracker.h) decides what they do to the dialogue state.
//
// Every function takes `lowered`: the customer's text with ASCII lower-cased (byte offsets
// equal to the original's, so spans of slot values apply to it). Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace helpline::dst {

enum class Answer { kNone, kAffirm, kDeny };

struct AnswerCue {
  Answer answer = Answer::kNone;
  // True when the answer (or an acknowledgement such as "got it") is the whole turn, apart
  // from punctuation: such a turn names no intent.
  bool whole_turn = false;
};

// A yes or no at the start of the turn (a turn ending with a question mark or "吗" is a
// question, not an answer): "yes", "yes please, go ahead", "ok", "confirm",
// "好的", "确认取消" affirm; "no", "nope, the order is ...", "不是", "不要取消" deny.
// A one-character Chinese answer ("好", "对", "不") must stand alone or be followed by
// punctuation or a space.
AnswerCue ReadAnswer(absl::string_view lowered);

// When the turn starts by correcting what was said before ("no, it's AB123", "actually
// ...", "sorry, I meant ...", "不是，是...", "说错了"): the byte offset where the corrected
// content begins (after the cue, separators and a leading "it's"/"是"). -1 otherwise. A
// bare "no" is an answer, not a correction.
int CorrectionBody(absl::string_view lowered);

enum class NegationKind {
  kNone,
  // "not", "isn't", "never", "不是", "没有": the value that follows is not so.
  kNot,
  // "no" right before the value: "no express shipping".
  kNo,
  // "cancel", "remove", "drop", "forget", "without", "don't want", "不要", "取消", "去掉":
  // the customer takes the value or the slot back.
  kRemoval,
};

struct Negation {
  NegationKind kind = NegationKind::kNone;
  // Byte offset of the cue in `lowered`.
  size_t cue_begin = 0;
};

// The negation cue in front of the span that starts at `begin` in `lowered`, if any: at most
// two words between the cue and the span (English; "not" may be followed by "want"/"need",
// which makes it a removal) or at most two characters (Chinese), within one clause
// (punctuation, "but", "it's" and the like end the search).
Negation NegationBefore(absl::string_view lowered, size_t begin);

// Which kinds of negation cue `lowered` contains (a cheap test before NegationBefore).
struct NegationCues {
  // Any cue.
  bool any = false;
  // A cue that can take a slot back by naming it (kNo or kRemoval): "no", "cancel", "don't
  // want", "不要", "取消".
  bool removal = false;
};
NegationCues FindNegationCues(absl::string_view lowered);

// The turn asks something rather than stating a value: a question mark anywhere ("?", "？");
// English starting (after fillers such as "so", "ok", "hi") with a question word ("what",
// "where", "how", ...) or an auxiliary before a pronoun or article ("can I", "do you", "is
// the"); Chinese ending with a question particle (吗, 呢, 么) or holding a question word
// (什么, 怎么, 哪里, 多少, 能不能, 是不是, ...). "which" alone and "can opener" do not count.
bool IsQuestion(absl::string_view lowered);

// The length of a turn in words: ASCII words plus one per two CJK characters (Chinese has
// about two characters a word), rounded up.
size_t TurnWords(absl::string_view lowered);

// "back to my refund", "as I was saying", "回到刚才的问题", "继续": the customer returns to an
// earlier topic.
bool AsksToResume(absl::string_view lowered);

// Negative wording that signals frustration: "this is ridiculous", "useless", "waste of
// time", "垃圾", "气死".
bool HasNegativeWording(absl::string_view lowered);

// `text` (original case) shouts: at least 10 letters in at least 3 words without digits, and
// at least 90% of those letters upper-case ("WHERE IS MY ORDER"). Order numbers such as
// "AB123456" do not count.
bool IsAllCaps(absl::string_view text);

// A stable fingerprint of a request, to notice the same question asked again: 64-bit
// FNV-1a of the turn's words (letters, digits, CJK) joined by single spaces, so case,
// punctuation and spacing do not matter. 0 when the turn is too short to be a question (fewer
// than 3 words or 3 CJK characters).
uint64_t RequestFingerprint(absl::string_view lowered);

}  // namespace helpline::dst
