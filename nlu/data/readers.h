// Readers of the public NLU / DST data sets, as they are laid out in shared/data (see the
// README of each). Every file may be gzip-compressed (recognised by its magic bytes, not its
// name). The format is named by the caller; there is no auto-detection.
//
//   format      path may be                               splits
//   banking77   a CSV file (text,category) or a folder    <split>.csv
//   clinc150    a JSON file {key: [[text, label], ...]}   keys train/val/test (+ oos_<key>)
//               or a folder of data_*.json files
//   snips       a split folder (seq.in, seq.out, label)   subfolders train/valid/test
//               or a folder of split folders
//   bitext      a CSV file (utterance,intent,entity_...)  <split>.csv
//               or a folder
//   sgd         a split folder (dialogues_*.json[.gz] +   subfolders train/dev/test
//               schema.json[.gz]) or a folder of them
//   multiwoz21  a JSON file {id: {log: [...]}} or a       files whose name starts with the
//               folder                                    split name (train*, dev*/val*, test*)
//
// Errors: NOT_FOUND when a path or the requested split does not exist; INVALID_ARGUMENT
// naming the file and the line (CSV, line files) or entry (JSON) of malformed data, e.g.
// "dev.csv:14: expected 2 fields, got 3" or "dialogues_003.json: [12].turns[4].frames[0]:
// 'service' missing".
//
// Thread-compatible: the functions share no state.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlu/data/dataset.h"

namespace helpline::nlu::data {

enum class Format { kBanking77, kClinc150, kSnips, kBitext, kSgd, kMultiwoz21 };

// "banking77", "clinc150", "snips", "bitext", "sgd", "multiwoz21"; INVALID_ARGUMENT listing
// these otherwise.
absl::StatusOr<Format> ParseFormat(absl::string_view name);
absl::string_view FormatName(Format format);
// True for sgd and multiwoz21 (ReadDialogues), false for the utterance formats
// (ReadUtterances).
bool IsDialogueFormat(Format format);

struct ReadOptions {
  // Which split to read when the path holds several: "train", "dev" ("val", "valid" and
  // "validation" are the same), "test", or "" for the evaluation split: test when present,
  // else dev, else (a path holding a single unnamed split, e.g. one CSV file) that one.
  // A path that is itself one split's file or folder is read whatever this says.
  std::string split;
};

// Reads an utterance data set. INVALID_ARGUMENT for a dialogue format.
absl::StatusOr<UtteranceDataset> ReadUtterances(const std::string& path, Format format,
                                                const ReadOptions& options = {});

// Reads a dialogue data set with its schema. INVALID_ARGUMENT for an utterance format.
// SGD: the schema is the split folder's schema.json. MultiWOZ: the schema lists the domains
// and slots met in the belief states, with the possible values of ontology_convlab2.json
// when that file is next to the data.
absl::StatusOr<DialogueDataset> ReadDialogues(const std::string& path, Format format,
                                              const ReadOptions& options = {});

// The whole content of a file, gunzipped when it starts with the gzip magic bytes.
// NOT_FOUND when it cannot be opened, INVALID_ARGUMENT naming the file when the gzip data
// is corrupt or truncated.
absl::StatusOr<std::string> ReadFileContent(const std::string& path);

// The spans of IOB2 tags (CoNLL rules: a chunk starts at B-X, or at I-X after O or after a
// tag of another type; it ends before O, B-, or a tag of another type). `tokens` are the
// words of `text` joined by single spaces, so span offsets are byte offsets into that text.
// INVALID_ARGUMENT when the sizes differ or a tag is neither O nor B-/I- with a type.
absl::StatusOr<std::vector<SlotSpan>> SpansFromIob(const std::vector<std::string>& tokens,
                                                   const std::vector<std::string>& tags);

}  // namespace helpline::nlu::data
