#!/usr/bin/env bash
# The shipped default model (models/helpline-small) is what its model card says, and still
# meets the generation goals on a sample of real held-out dialogues:
#   - the folder loads (config, F16 weights, 8k tokenizer), at most 40 MB, with a MODEL_CARD.md;
#   - helpline-eval generation on 60 dev examples of two shared data sets (greedy decoding is
#     batch-invariant and the sampled candidates are seeded, so the figures are reproducible):
#     the perplexity of the reference replies stays within 15 % of the card's figure for that
#     sample (the card's "sample" line), chrF does not fall more
#     than 3 points below it, and every sent reply keeps the state's slot values
#     (slot_fidelity 1.0, the issue's goal). The issue's other goal, chrF above the retrieval
#     baseline, is met on all five dev sets (see the card); it is asserted on both samples.
#     Bitext is left out: 60 of its long replies take 90 s, and on 60 examples its margin
#     (0.7 on all 217) is within the sample's noise.
# Usage: shipped_model_test.sh BUILD_DIR SOURCE_DIR. Skips (77) without the shared data.
set -euo pipefail
BUILD_DIR=$1
SOURCE_DIR=$2
MODEL="$SOURCE_DIR/models/helpline-small"
SHARED="${HELPLINE_SHARED_DIR:-$SOURCE_DIR/../shared}"
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

for file in config.json model.safetensors vocab.json merges.txt MODEL_CARD.md; do
  [[ -s $MODEL/$file ]] || fail "$MODEL/$file is missing"
done
bytes=$(du -sb "$MODEL" | cut -f1)
((bytes <= 40 * 1024 * 1024)) || fail "$MODEL is $bytes bytes, more than 40 MB"
[[ $(jq -r .torch_dtype "$MODEL/config.json") == float16 ]] || fail "weights are not F16"
[[ $(jq -r .vocab_size "$MODEL/config.json") == 8192 ]] || fail "vocabulary is not 8,192"
echo "ok: $MODEL ($bytes bytes)"

if [[ ! -d $SHARED/data/camrest676 ]]; then
  echo "skip: no shared data in $SHARED (set HELPLINE_SHARED_DIR)"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# data set, format, examples, the card's perplexity and chrF on that sample.
check() {
  local set=$1 format=$2 limit=$3 card_ppl=$4 card_chrf=$5 above_retrieval=${6:-}
  "$BUILD_DIR/bin/helpline-eval" generation --model "$MODEL" --data "$SHARED/data/$set" \
    --format "$format" --split dev --limit "$limit" --report "$work/$set.json" --quiet >/dev/null
  jq -c '{examples, perplexity, chrf, retrieval_chrf, slot_fidelity}' "$work/$set.json"
  jq -e --argjson card "$card_ppl" '.perplexity < $card * 1.15' "$work/$set.json" >/dev/null ||
    fail "$set: perplexity $(jq .perplexity "$work/$set.json") vs the card's $card_ppl"
  jq -e --argjson card "$card_chrf" '.chrf >= $card - 3' "$work/$set.json" >/dev/null ||
    fail "$set: chrF $(jq .chrf "$work/$set.json") vs the card's $card_chrf"
  if [[ $above_retrieval == above-retrieval ]]; then
    jq -e '.chrf > .retrieval_chrf' "$work/$set.json" >/dev/null ||
      fail "$set: chrF $(jq .chrf "$work/$set.json") not above retrieval's $(jq .retrieval_chrf "$work/$set.json")"
  fi
  jq -e '.slot_fidelity == 1' "$work/$set.json" >/dev/null ||
    fail "$set: slot_fidelity $(jq .slot_fidelity "$work/$set.json")"
}
check camrest676 camrest 60 10.41 36.62 above-retrieval
check taskmaster4_coffee taskmaster 60 7.26 44.02 above-retrieval
echo "ok: the model still meets its card on the samples"
