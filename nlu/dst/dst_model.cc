// The one libtorch translation unit of nlu/dst: the network, the training loop, the session
// (inference) and the safetensors round trip.
#include "nlu/dst/dst_model.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "lm/model/safetensors.h"
#include "nlu/data/readers.h"
#include "nlu/dst/dst_features.h"
#include "nlu/model/featurizer.h"
#include "nlu/model/torch_gru.h"
#include "nlu/model/torch_safetensors.h"
#include "nlu/model/torch_word_vectors.h"
#include "nlu/model/word_vectors.h"

namespace helpline::nlu::dst {
namespace {

namespace F = torch::nn::functional;
using model::Features;
using model::Featurizer;

constexpr char kFormatName[] = "helpline-dst-1";
const char* const kStatusNames[kNumStatuses] = {"none",   "dontcare",    "span",
                                                "system", "categorical", "refer"};

torch::Tensor Longs(const std::vector<int64_t>& v, std::vector<int64_t> shape) {
  return torch::from_blob(const_cast<int64_t*>(v.data()), shape, torch::kInt64).clone();
}
torch::Tensor Floats(const std::vector<float>& v, std::vector<int64_t> shape) {
  return torch::from_blob(const_cast<float*>(v.data()), shape, torch::kFloat32).clone();
}
torch::Tensor Bools(const std::vector<uint8_t>& v, std::vector<int64_t> shape) {
  return torch::from_blob(const_cast<uint8_t*>(v.data()), shape, torch::kUInt8).to(torch::kBool);
}

// A list of hashed bags for one EmbeddingBag call.
struct Bags {
  std::vector<int64_t> ids;
  std::vector<int64_t> offsets;

  int64_t Add(const std::vector<int64_t>& bag) {
    offsets.push_back(static_cast<int64_t>(ids.size()));
    ids.insert(ids.end(), bag.begin(), bag.end());
    return static_cast<int64_t>(offsets.size()) - 1;
  }
  int64_t size() const { return static_cast<int64_t>(offsets.size()); }
};

// The schema bags of one dialogue's services, as indices into a Bags list.
struct ServiceRows {
  std::vector<int64_t> slots;                 // per slot
  std::vector<int64_t> intents;               // per intent
  std::vector<std::vector<int64_t>> values;   // per slot, per possible value
};

ServiceRows AddService(const data::ServiceSchema& service, Bags& bags) {
  ServiceRows rows;
  for (const data::SlotSchema& slot : service.slots) {
    rows.slots.push_back(bags.Add(TextBag(SlotText(service, slot))));
    std::vector<int64_t> values;
    for (const std::string& v : slot.possible_values) values.push_back(bags.Add(TextBag(v)));
    rows.values.push_back(std::move(values));
  }
  for (const data::IntentSchema& intent : service.intents) {
    rows.intents.push_back(bags.Add(TextBag(IntentText(intent))));
  }
  return rows;
}

int IntentIndex(const data::ServiceSchema& service, absl::string_view name) {
  for (size_t k = 0; k < service.intents.size(); ++k) {
    if (service.intents[k].name == name) return static_cast<int>(k) + 1;
  }
  return 0;  // NONE
}

// ---- Network ----

struct Encoded {
  torch::Tensor states;  // [N, T, D]
  torch::Tensor mask;    // [N, T] bool
  torch::Tensor u;       // [N, D]
  torch::Tensor x;       // [N, D + S]: the context GRU's input
};

struct SlotHeads {
  torch::Tensor q, a, h, u;  // [N, S, D] each
  torch::Tensor status;      // [N, S, kNumStatuses] (masked)
  torch::Tensor requested;   // [N, S] logits
  torch::Tensor start, end;  // [N, S, T] (masked)
};

struct NetImpl : torch::nn::Module {
  NetImpl(const DstModelConfig& c, int64_t num_words, int64_t num_chars)
      : config(c),
        word(register_module("word", torch::nn::Embedding(torch::nn::EmbeddingOptions(
                                                              num_words, c.embedding_dim)
                                                              .padding_idx(0)))),
        chars(register_module("chars", torch::nn::EmbeddingBag(torch::nn::EmbeddingBagOptions(
                                                                    std::max<int64_t>(num_chars, 1),
                                                                    c.embedding_dim)
                                                                    .mode(torch::kMean)))),
        shape(register_module("shape", torch::nn::Embedding(model::kNumShapes, c.embedding_dim))),
        utt_gru(register_module("utt_gru", torch::nn::GRU(torch::nn::GRUOptions(c.embedding_dim,
                                                                                c.hidden_dim)
                                                              .bidirectional(true)
                                                              .batch_first(true)))),
        pool(register_module("pool", torch::nn::Linear(2 * c.model_dim(), c.model_dim()))),
        schema(register_module("schema", torch::nn::EmbeddingBag(torch::nn::EmbeddingBagOptions(
                                                                     kHashBuckets, c.schema_dim)
                                                                     .mode(torch::kMean)))),
        ctx_gru(register_module(
            "ctx_gru", torch::nn::GRU(torch::nn::GRUOptions(c.model_dim() + c.schema_dim,
                                                            c.model_dim())
                                          .batch_first(true)))),
        slot_proj(register_module("slot_proj", torch::nn::Linear(c.schema_dim, c.model_dim()))),
        value_proj(register_module("value_proj", torch::nn::Linear(c.schema_dim, c.model_dim()))),
        intent_proj(
            register_module("intent_proj", torch::nn::Linear(c.schema_dim, c.model_dim()))),
        none_intent(register_parameter("none_intent", torch::zeros({c.model_dim()}))),
        att(register_module("att", torch::nn::Linear(c.model_dim(), c.model_dim()))),
        status_h(register_module("status_h", torch::nn::Linear(4 * c.model_dim() + kSlotFeatures,
                                                               c.mlp_dim))),
        status_out(register_module("status_out", torch::nn::Linear(c.mlp_dim, kNumStatuses))),
        requested_out(register_module("requested_out", torch::nn::Linear(c.mlp_dim, 1))),
        span_start(
            register_module("span_start", torch::nn::Linear(2 * c.model_dim(), c.model_dim()))),
        span_end(register_module("span_end", torch::nn::Linear(2 * c.model_dim(), c.model_dim()))),
        value_h(register_module("value_h", torch::nn::Linear(5 * c.model_dim() + kValueFeatures,
                                                             c.mlp_dim))),
        value_out(register_module("value_out", torch::nn::Linear(c.mlp_dim, 1))),
        refer_h(register_module("refer_h", torch::nn::Linear(3 * c.model_dim() + kReferFeatures,
                                                             c.mlp_dim / 2))),
        refer_out(register_module("refer_out", torch::nn::Linear(c.mlp_dim / 2, 1))),
        intent_h(register_module("intent_h",
                                 torch::nn::Linear(4 * c.model_dim() + 1, c.mlp_dim))),
        intent_out(register_module("intent_out", torch::nn::Linear(c.mlp_dim, 1))) {
    if (c.word_vectors_dim > 0) {
      model::RegisterWordVectors(*this, num_words, c.word_vectors_dim, c.embedding_dim, vectors,
                                 vectors_proj);
    }
    torch::NoGradGuard no_grad;
    for (torch::Tensor w : {word->weight, chars->weight, shape->weight, schema->weight}) {
      w.uniform_(-0.1, 0.1);
    }
    word->weight[0].zero_();
    none_intent.normal_(0, 0.1);
  }

  torch::Tensor Drop(const torch::Tensor& x, bool training) {
    return F::dropout(x, F::DropoutFuncOptions().p(config.dropout).training(training));
  }

  // Utterances -> token states, pooled encoding, and the context GRU input.
  Encoded Encode(const torch::Tensor& words_in, const torch::Tensor& shapes,
                 const torch::Tensor& char_ids, const torch::Tensor& char_offsets,
                 const torch::Tensor& lengths, const torch::Tensor& mask,
                 const torch::Tensor& sys_ids, const torch::Tensor& sys_offsets, bool training) {
    if (training && inference_gru.ready()) {
      inference_gru = model::BiGruInference();  // the weights change
    }
    const int64_t n = words_in.size(0), len = words_in.size(1);
    torch::Tensor words = words_in;
    if (training && config.word_dropout > 0) {
      torch::Tensor drop = (torch::rand({n, len}) < config.word_dropout).logical_and(mask);
      words = torch::where(drop, torch::full_like(words, Featurizer::kUnknown), words);
    }
    torch::Tensor x = word(words) +
                      chars(char_ids, char_offsets).view({n, len, config.embedding_dim}) +
                      shape(shapes);
    // Word dropout leaves the pretrained vectors alone (see nlu_model.cc).
    if (vectors) x = x + vectors_proj(vectors(words_in));
    x = Drop(x, training);
    torch::Tensor states;
    if (n == 1 && !training && inference_gru.ready()) {
      states = model::RunGru(inference_gru, x);
    } else if (n == 1) {
      states = std::get<0>(utt_gru(x));
    } else {
      auto packed = torch::nn::utils::rnn::pack_padded_sequence(x, lengths, true, false);
      auto out = utt_gru->forward_with_packed_input(packed);
      states =
          std::get<0>(torch::nn::utils::rnn::pad_packed_sequence(std::get<0>(out), true, 0.0, len));
    }
    Encoded e;
    e.states = states;
    e.mask = mask;
    torch::Tensor m = mask.unsqueeze(2);
    torch::Tensor max_pool = states.masked_fill(m.logical_not(), -1e4).amax(1);
    torch::Tensor mean_pool = (states * m).sum(1) / lengths.to(torch::kFloat32).unsqueeze(1);
    e.u = torch::tanh(pool(torch::cat({max_pool, mean_pool}, 1)));
    e.x = torch::cat({Drop(e.u, training), schema(sys_ids, sys_offsets)}, 1);
    return e;
  }

  SlotHeads Slots(const Encoded& e, const torch::Tensor& h, const torch::Tensor& q_rows,
                  const torch::Tensor& slot_rows, const torch::Tensor& features,
                  const torch::Tensor& allowed, bool training) {
    const int64_t n = slot_rows.size(0), s = slot_rows.size(1), d = config.model_dim();
    SlotHeads out;
    out.q = q_rows.index_select(0, slot_rows.reshape({-1})).view({n, s, d});
    torch::Tensor keys = e.states.transpose(1, 2);  // [N, D, T]
    torch::Tensor token_mask = e.mask.unsqueeze(1);  // [N, 1, T]
    torch::Tensor scores = torch::bmm(att(out.q), keys).masked_fill(token_mask.logical_not(), -1e9);
    out.a = torch::bmm(torch::softmax(scores, 2), e.states);
    out.h = h.unsqueeze(1).expand({n, s, d});
    out.u = e.u.unsqueeze(1).expand({n, s, d});
    torch::Tensor hidden = torch::relu(
        status_h(Drop(torch::cat({out.q, out.h, out.u, out.a, features}, 2), training)));
    hidden = Drop(hidden, training);
    out.status = status_out(hidden).masked_fill(allowed.logical_not(), -1e9);
    out.requested = requested_out(hidden).squeeze(2);
    torch::Tensor qh = torch::cat({out.q, out.h}, 2);
    out.start = torch::bmm(span_start(qh), keys).masked_fill(token_mask.logical_not(), -1e9);
    out.end = torch::bmm(span_end(qh), keys).masked_fill(token_mask.logical_not(), -1e9);
    return out;
  }

  // Categorical values: instance rows [K] (into N * S), value rows [K, V] -> logits [K, V].
  torch::Tensor Values(const SlotHeads& heads, const torch::Tensor& instances,
                       const torch::Tensor& v_rows, const torch::Tensor& value_rows,
                       const torch::Tensor& features, const torch::Tensor& mask, bool training) {
    const int64_t d = config.model_dim(), k = value_rows.size(0), v = value_rows.size(1);
    auto pick = [&](const torch::Tensor& t) {
      return t.reshape({-1, d}).index_select(0, instances).unsqueeze(1).expand({k, v, d});
    };
    torch::Tensor q = pick(heads.q), a = pick(heads.a), h = pick(heads.h);
    torch::Tensor val = v_rows.index_select(0, value_rows.reshape({-1})).view({k, v, d});
    torch::Tensor hidden = torch::relu(
        value_h(Drop(torch::cat({q, val, a, val * a, h, features}, 2), training)));
    return value_out(Drop(hidden, training)).squeeze(2).masked_fill(mask.logical_not(), -1e9);
  }

  // Refer candidates: source slot rows [K, C] -> logits [K, C].
  torch::Tensor Refer(const SlotHeads& heads, const torch::Tensor& instances,
                      const torch::Tensor& q_rows, const torch::Tensor& source_rows,
                      const torch::Tensor& features, const torch::Tensor& mask, bool training) {
    const int64_t d = config.model_dim(), k = source_rows.size(0), c = source_rows.size(1);
    torch::Tensor q = heads.q.reshape({-1, d}).index_select(0, instances).unsqueeze(1).expand(
        {k, c, d});
    torch::Tensor src = q_rows.index_select(0, source_rows.reshape({-1})).view({k, c, d});
    torch::Tensor hidden =
        torch::relu(refer_h(Drop(torch::cat({q, src, q * src, features}, 2), training)));
    return refer_out(hidden).squeeze(2).masked_fill(mask.logical_not(), -1e9);
  }

  // Active intents: groups [G] (utterance rows), candidates [G, K] (intent rows; -1 = NONE)
  // -> logits [G, K].
  torch::Tensor Intents(const Encoded& e, const torch::Tensor& h, const torch::Tensor& i_rows,
                        const torch::Tensor& utterances, const torch::Tensor& candidates,
                        const torch::Tensor& previous, const torch::Tensor& mask, bool training) {
    const int64_t d = config.model_dim(), g = candidates.size(0), k = candidates.size(1);
    torch::Tensor is_none = candidates.lt(0).unsqueeze(2);
    torch::Tensor rows = i_rows.index_select(0, candidates.clamp_min(0).reshape({-1})).view(
        {g, k, d});
    torch::Tensor cand = torch::where(is_none, none_intent.view({1, 1, d}).expand({g, k, d}), rows);
    torch::Tensor hu = h.index_select(0, utterances).unsqueeze(1).expand({g, k, d});
    torch::Tensor uu = e.u.index_select(0, utterances).unsqueeze(1).expand({g, k, d});
    torch::Tensor hidden = torch::relu(intent_h(
        Drop(torch::cat({cand, hu, uu, cand * uu, previous.unsqueeze(2)}, 2), training)));
    return intent_out(hidden).squeeze(2).masked_fill(mask.logical_not(), -1e9);
  }

  DstModelConfig config;
  torch::nn::Embedding word;
  torch::nn::EmbeddingBag chars;
  torch::nn::Embedding shape;
  // config.word_vectors_dim > 0 only: frozen pretrained vectors and their projection.
  torch::nn::Embedding vectors{nullptr};
  torch::nn::Linear vectors_proj{nullptr};
  torch::nn::GRU utt_gru;
  // utt_gru for one utterance at inference (copied after training and loading; emptied when
  // training): model/gru_inference.h.
  model::BiGruInference inference_gru;
  torch::nn::Linear pool;
  torch::nn::EmbeddingBag schema;
  torch::nn::GRU ctx_gru;
  torch::nn::Linear slot_proj, value_proj, intent_proj;
  torch::Tensor none_intent;
  torch::nn::Linear att;
  torch::nn::Linear status_h, status_out, requested_out;
  torch::nn::Linear span_start, span_end;
  torch::nn::Linear value_h, value_out;
  torch::nn::Linear refer_h, refer_out;
  torch::nn::Linear intent_h, intent_out;
};
TORCH_MODULE(Net);

// The schema rows of a Bags list, projected.
struct SchemaRows {
  torch::Tensor q, v, i;  // slots, values, intents: [M, D] each (all rows, every projection)
};

SchemaRows ProjectSchema(Net& net, const Bags& bags) {
  torch::Tensor e = net->schema(Longs(bags.ids, {static_cast<int64_t>(bags.ids.size())}),
                                Longs(bags.offsets, {bags.size()}));
  return {torch::tanh(net->slot_proj(e)), torch::tanh(net->value_proj(e)),
          torch::tanh(net->intent_proj(e))};
}

// Utterance tensors of a list of turns.
struct UtteranceTensors {
  torch::Tensor words, shapes, char_ids, char_offsets, lengths, mask, sys_ids, sys_offsets;
};

UtteranceTensors MakeUtterances(const std::vector<const TurnInputs*>& turns) {
  const int64_t n = static_cast<int64_t>(turns.size());
  int64_t t = 1;
  for (const TurnInputs* x : turns) t = std::max<int64_t>(t, x->utterance.tokens.size());
  std::vector<int64_t> words(n * t, 0), shapes(n * t, 0), lengths(n), char_ids, char_offsets;
  std::vector<uint8_t> mask(n * t, 0);
  Bags sys;
  char_offsets.reserve(n * t);
  for (int64_t i = 0; i < n; ++i) {
    const Features& f = turns[i]->utterance;
    const int64_t len = static_cast<int64_t>(f.tokens.size());
    lengths[i] = std::max<int64_t>(len, 1);  // An empty utterance reads as one padding token.
    if (len == 0) mask[i * t] = 1;
    for (int64_t j = 0; j < t; ++j) {
      char_offsets.push_back(static_cast<int64_t>(char_ids.size()));
      if (j >= len) continue;
      words[i * t + j] = f.word_ids[j];
      shapes[i * t + j] = f.shape_ids[j];
      mask[i * t + j] = 1;
      char_ids.insert(char_ids.end(), f.char_ngrams[j].begin(), f.char_ngrams[j].end());
    }
    sys.Add(turns[i]->system_bag);
  }
  UtteranceTensors u;
  u.words = Longs(words, {n, t});
  u.shapes = Longs(shapes, {n, t});
  u.char_ids = Longs(char_ids, {static_cast<int64_t>(char_ids.size())});
  u.char_offsets = Longs(char_offsets, {n * t});
  u.lengths = Longs(lengths, {n});
  u.mask = Bools(mask, {n, t});
  u.sys_ids = Longs(sys.ids, {static_cast<int64_t>(sys.ids.size())});
  u.sys_offsets = Longs(sys.offsets, {n});
  return u;
}

Encoded EncodeTurns(Net& net, const UtteranceTensors& u, bool training) {
  return net->Encode(u.words, u.shapes, u.char_ids, u.char_offsets, u.lengths, u.mask, u.sys_ids,
                     u.sys_offsets, training);
}

// Slot tensors [N, S] of a list of turns, the slot rows taken from `rows` per turn.
struct SlotTensors {
  torch::Tensor rows, features, allowed, valid;
  int64_t width = 0;
};

std::array<uint8_t, kNumStatuses> AllowedStatuses(const SlotInstance& slot) {
  std::array<uint8_t, kNumStatuses> a{};
  a[kNone] = a[kDontcare] = 1;
  if (slot.categorical) {
    a[kCategorical] = 1;
  } else {
    a[kSpan] = a[kRefer] = 1;
    a[kSystem] = !slot.system_value.empty();
  }
  return a;
}

SlotTensors MakeSlots(const std::vector<const TurnInputs*>& turns,
                      const std::vector<const ServiceRows*>& service_rows) {
  const int64_t n = static_cast<int64_t>(turns.size());
  int64_t s = 1;
  for (const TurnInputs* t : turns) s = std::max<int64_t>(s, t->slots.size());
  std::vector<int64_t> rows(n * s, 0);
  std::vector<float> features(n * s * kSlotFeatures, 0);
  std::vector<uint8_t> allowed(n * s * kNumStatuses, 0), valid(n * s, 0);
  for (int64_t i = 0; i < n; ++i) {
    const ServiceRows* r = service_rows[i];
    for (size_t j = 0; j < turns[i]->slots.size(); ++j) {
      const SlotInstance& slot = turns[i]->slots[j];
      const int64_t at = i * s + static_cast<int64_t>(j);
      rows[at] = r[slot.service].slots[slot.slot];
      std::copy(slot.features.begin(), slot.features.end(), features.begin() + at * kSlotFeatures);
      const auto a = AllowedStatuses(slot);
      std::copy(a.begin(), a.end(), allowed.begin() + at * kNumStatuses);
      valid[at] = 1;
    }
    for (int64_t j = static_cast<int64_t>(turns[i]->slots.size()); j < s; ++j) {
      allowed[(i * s + j) * kNumStatuses + kNone] = 1;  // padding: a valid softmax
    }
  }
  SlotTensors t;
  t.rows = Longs(rows, {n, s});
  t.features = Floats(features, {n, s, kSlotFeatures});
  t.allowed = Bools(allowed, {n, s, kNumStatuses});
  t.valid = Bools(valid, {n, s});
  t.width = s;
  return t;
}

// ---- Training data ----

struct PreparedTurn {
  TurnInputs inputs;
  std::vector<SlotLabel> labels;                            // per slot instance
  std::vector<std::vector<ValueFeatures>> value_features;  // per instance labelled categorical
  std::vector<std::vector<ReferCandidate>> refer;           // per instance labelled refer
  std::vector<int> previous_intent;                         // per service (0 NONE, 1 + k)
  std::vector<int> intent_target;                           // per service, -1: no intents
};

struct PreparedDialogue {
  std::vector<const data::ServiceSchema*> services;
  std::vector<int> service_ids;  // into the training schema
  std::vector<PreparedTurn> turns;
};

const data::Frame* FrameOf(const data::Turn& turn, const std::string& service) {
  for (const data::Frame& f : turn.frames) {
    if (f.has_state && f.service == service) return &f;
  }
  return nullptr;
}

// Follows the gold states of a dialogue, building each user turn's inputs and labels.
PreparedDialogue PrepareDialogue(const data::DialogueDataset& set, const data::Dialogue& dialogue,
                                 const Featurizer& featurizer, DstTrainReport& report) {
  PreparedDialogue out;
  for (const std::string& name : dialogue.services) {
    for (size_t k = 0; k < set.services.size(); ++k) {
      if (set.services[k].name == name) {
        out.services.push_back(&set.services[k]);
        out.service_ids.push_back(static_cast<int>(k));
      }
    }
  }
  if (out.services.empty()) return out;
  DialogueContext context(out.services);
  for (const data::Turn& turn : dialogue.turns) {
    if (turn.speaker == data::Speaker::kSystem) {
      context.AddSystemTurn(turn);
      continue;
    }
    bool has_state = false;
    for (const data::Frame& f : turn.frames) has_state |= f.has_state;
    if (!has_state) continue;
    PreparedTurn p;
    p.inputs = BuildTurnInputs(context, turn.utterance, featurizer);
    p.labels.resize(p.inputs.slots.size());
    p.value_features.resize(p.inputs.slots.size());
    p.refer.resize(p.inputs.slots.size());
    for (size_t j = 0; j < p.inputs.slots.size(); ++j) {
      const SlotInstance& slot = p.inputs.slots[j];
      const data::Frame* frame = FrameOf(turn, out.services[slot.service]->name);
      static const std::vector<data::SlotSpan> kNoSpans;
      const data::FrameState* gold = frame != nullptr ? &frame->state : nullptr;
      const auto& spans = frame != nullptr ? frame->spans : kNoSpans;
      SlotLabel label = LabelSlot(context, turn.utterance, p.inputs, slot, gold, spans, {});
      if (label.status < 0 && !slot.categorical && gold != nullptr &&
          gold->slot_values.count(out.services[slot.service]->slots[slot.slot].name)) {
        std::vector<ReferCandidate> candidates = ReferCandidates(context, p.inputs, slot);
        label = LabelSlot(context, turn.utterance, p.inputs, slot, gold, spans, candidates);
        if (label.status == kRefer) p.refer[j] = std::move(candidates);
      }
      if (label.status == kCategorical) {
        p.value_features[j] = CategoricalFeatures(context, p.inputs, slot);
      }
      ++report.status_counts[label.status < 0 ? "unreachable" : kStatusNames[label.status]];
      p.labels[j] = std::move(label);
    }
    for (size_t i = 0; i < out.services.size(); ++i) {
      const data::ServiceSchema& service = *out.services[i];
      const int previous = IntentIndex(service, context.intents[i]);
      p.previous_intent.push_back(previous);
      if (service.intents.empty()) {
        p.intent_target.push_back(-1);
        continue;
      }
      const data::Frame* frame = FrameOf(turn, service.name);
      p.intent_target.push_back(frame != nullptr ? IntentIndex(service, frame->state.active_intent)
                                                 : previous);
    }
    report.slot_instances += p.inputs.slots.size();
    ++report.user_turns;
    out.turns.push_back(std::move(p));
    // The gold state becomes the context of the next turn (teacher forcing).
    for (size_t i = 0; i < out.services.size(); ++i) {
      const data::Frame* frame = FrameOf(turn, out.services[i]->name);
      if (frame == nullptr) continue;
      const data::ServiceSchema& service = *out.services[i];
      context.intents[i] = frame->state.active_intent.empty() ? kNoIntent
                                                               : frame->state.active_intent;
      std::map<std::string, std::string> before = context.values[i];
      context.values[i].clear();
      for (size_t j = 0; j < service.slots.size(); ++j) {
        auto it = frame->state.slot_values.find(service.slots[j].name);
        if (it == frame->state.slot_values.end()) continue;
        auto old = before.find(service.slots[j].name);
        if (old != before.end() &&
            std::find(it->second.begin(), it->second.end(), old->second) != it->second.end()) {
          context.values[i][old->first] = old->second;  // unchanged: not a new history entry
        } else {
          context.SetValue(static_cast<int>(i), static_cast<int>(j), it->second[0]);
        }
      }
    }
    ++context.user_turn;
  }
  return out;
}

nlohmann::json ConfigToJson(const DstModelConfig& c) {
  return {{"embedding_dim", c.embedding_dim},
          {"hidden_dim", c.hidden_dim},
          {"schema_dim", c.schema_dim},
          {"mlp_dim", c.mlp_dim},
          {"dropout", c.dropout},
          {"word_dropout", c.word_dropout},
          {"min_count", c.min_count},
          {"word_vectors_dim", c.word_vectors_dim}};
}

absl::StatusOr<DstModelConfig> ConfigFromJson(const nlohmann::json& j) {
  DstModelConfig c;
  for (const char* key : {"embedding_dim", "hidden_dim", "schema_dim", "mlp_dim"}) {
    if (!j.contains(key) || !j[key].is_number_integer() || j[key].get<int64_t>() <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("config.", key, " missing or not a positive integer"));
    }
  }
  c.embedding_dim = j["embedding_dim"].get<int64_t>();
  c.hidden_dim = j["hidden_dim"].get<int64_t>();
  c.schema_dim = j["schema_dim"].get<int64_t>();
  c.mlp_dim = j["mlp_dim"].get<int64_t>();
  c.dropout = j.value("dropout", c.dropout);
  c.word_dropout = j.value("word_dropout", c.word_dropout);
  c.min_count = j.value("min_count", c.min_count);
  c.word_vectors_dim = j.value("word_vectors_dim", c.word_vectors_dim);
  if (c.word_vectors_dim < 0) {
    return absl::InvalidArgumentError("config.word_vectors_dim must be >= 0");
  }
  return c;
}

}  // namespace

// ---- The model ----

struct DstModel::Impl {
  DstModelConfig config;
  Featurizer featurizer;
  nlohmann::json training = nlohmann::json::object();
  mutable Net net{nullptr};  // Forward is not const in libtorch; inference does not mutate.

  Net NewNet() const {
    return Net(config, featurizer.num_words(), featurizer.num_char_ngrams());
  }
};

// The encodings are a function of the weights and the schema texts alone: computed once they
// stand for every session over the same services (the rows index the projected tensors).
struct ServiceEncodings {
  const DstModel::Impl* model = nullptr;  // the model that made them
  std::vector<const data::ServiceSchema*> services;
  std::vector<ServiceRows> rows;  // per service: its slots', values' and intents' rows
  SchemaRows schema;              // the projected rows, made under InferenceMode
};

namespace {

// One step of training on a batch of dialogues: the summed loss and the status accuracy.
struct StepResult {
  torch::Tensor loss;
  int64_t correct = 0;
  int64_t counted = 0;
};

StepResult TrainStep(Net& net, const std::vector<const PreparedDialogue*>& batch,
                     const std::vector<ServiceRows>& all_rows, const Bags& schema_bags,
                     const torch::Tensor& status_weights) {
  // Utterances, dialogue-major.
  std::vector<const TurnInputs*> turns;
  std::vector<const PreparedTurn*> prepared;
  std::vector<const ServiceRows*> rows_of_turn;
  std::vector<std::vector<ServiceRows>> dialogue_rows(batch.size());
  std::vector<int64_t> lengths, positions;
  int64_t max_turns = 1;
  for (const PreparedDialogue* d : batch) max_turns = std::max<int64_t>(max_turns, d->turns.size());
  for (size_t b = 0; b < batch.size(); ++b) {
    for (int id : batch[b]->service_ids) dialogue_rows[b].push_back(all_rows[id]);
  }
  for (size_t b = 0; b < batch.size(); ++b) {
    lengths.push_back(static_cast<int64_t>(batch[b]->turns.size()));
    for (size_t t = 0; t < batch[b]->turns.size(); ++t) {
      turns.push_back(&batch[b]->turns[t].inputs);
      prepared.push_back(&batch[b]->turns[t]);
      rows_of_turn.push_back(dialogue_rows[b].data());
      positions.push_back(static_cast<int64_t>(b) * max_turns + static_cast<int64_t>(t));
    }
  }
  const int64_t n = static_cast<int64_t>(turns.size());
  const int64_t d = net->config.model_dim();
  Encoded e = EncodeTurns(net, MakeUtterances(turns), true);
  // The context GRU over each dialogue's user turns.
  const int64_t in_dim = e.x.size(1);
  torch::Tensor pos = Longs(positions, {n});
  torch::Tensor padded = torch::zeros({static_cast<int64_t>(batch.size()) * max_turns, in_dim})
                             .index_copy(0, pos, e.x)
                             .view({static_cast<int64_t>(batch.size()), max_turns, in_dim});
  auto packed =
      torch::nn::utils::rnn::pack_padded_sequence(padded, Longs(lengths, {(int64_t)batch.size()}),
                                                  true, false);
  auto ctx_out = net->ctx_gru->forward_with_packed_input(packed);
  torch::Tensor h_padded = std::get<0>(
      torch::nn::utils::rnn::pad_packed_sequence(std::get<0>(ctx_out), true, 0.0, max_turns));
  torch::Tensor h = net->Drop(h_padded.reshape({-1, d}).index_select(0, pos), true);

  SchemaRows schema = ProjectSchema(net, schema_bags);
  SlotTensors slots = MakeSlots(turns, rows_of_turn);
  SlotHeads heads =
      net->Slots(e, h, schema.q, slots.rows, slots.features, slots.allowed, true);
  const int64_t s = slots.width;

  // Labels.
  std::vector<int64_t> status(n * s, -1);
  std::vector<float> requested(n * s, 0), requested_mask(n * s, 0);
  std::vector<int64_t> span_rows, span_begin, span_end;
  std::vector<int64_t> cat_rows, cat_target;
  std::vector<std::vector<int64_t>> cat_values;
  std::vector<std::vector<ValueFeatures>> cat_features;
  std::vector<int64_t> refer_rows;
  std::vector<const std::vector<ReferCandidate>*> refer_cands;
  std::vector<const std::vector<int>*> refer_gold;
  std::vector<const ServiceRows*> refer_service_rows;
  std::vector<int64_t> intent_utts, intent_target;
  std::vector<std::vector<int64_t>> intent_cands;
  std::vector<std::vector<float>> intent_prev;
  for (int64_t i = 0; i < n; ++i) {
    const PreparedTurn& p = *prepared[i];
    for (size_t j = 0; j < p.labels.size(); ++j) {
      const SlotLabel& label = p.labels[j];
      const int64_t at = i * s + static_cast<int64_t>(j);
      status[at] = label.status;
      requested[at] = label.requested;
      requested_mask[at] = 1;
      const SlotInstance& slot = p.inputs.slots[j];
      if (label.status == kSpan) {
        span_rows.push_back(at);
        span_begin.push_back(label.span_begin);
        span_end.push_back(label.span_end);
      } else if (label.status == kCategorical) {
        cat_rows.push_back(at);
        cat_target.push_back(label.value_index);
        cat_values.push_back(rows_of_turn[i][slot.service].values[slot.slot]);
        cat_features.push_back(p.value_features[j]);
      } else if (label.status == kRefer) {
        refer_rows.push_back(at);
        refer_cands.push_back(&p.refer[j]);
        refer_gold.push_back(&label.refer_gold);
        refer_service_rows.push_back(rows_of_turn[i]);
      }
    }
    for (size_t k = 0; k < p.intent_target.size(); ++k) {
      if (p.intent_target[k] < 0) continue;
      const ServiceRows& r = rows_of_turn[i][k];
      std::vector<int64_t> cands = {-1};
      std::vector<float> prev = {p.previous_intent[k] == 0 ? 1.0f : 0.0f};
      for (size_t x = 0; x < r.intents.size(); ++x) {
        cands.push_back(r.intents[x]);
        prev.push_back(p.previous_intent[k] == static_cast<int>(x) + 1 ? 1.0f : 0.0f);
      }
      intent_utts.push_back(i);
      intent_target.push_back(p.intent_target[k]);
      intent_cands.push_back(std::move(cands));
      intent_prev.push_back(std::move(prev));
    }
  }
  StepResult result;
  torch::Tensor status_t = Longs(status, {n * s});
  torch::Tensor logits = heads.status.reshape({n * s, kNumStatuses});
  result.loss = F::cross_entropy(
      logits, status_t, F::CrossEntropyFuncOptions().ignore_index(-1).weight(status_weights));
  {
    torch::NoGradGuard no_grad;
    torch::Tensor counted = status_t.ge(0);
    result.counted = counted.sum().item<int64_t>();
    result.correct = logits.argmax(1).eq(status_t).logical_and(counted).sum().item<int64_t>();
  }
  torch::Tensor req_mask = Floats(requested_mask, {n, s});
  result.loss = result.loss +
                (F::binary_cross_entropy_with_logits(
                     heads.requested, Floats(requested, {n, s}),
                     F::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone)) *
                 req_mask)
                        .sum() /
                    req_mask.sum().clamp_min(1);
  if (!span_rows.empty()) {
    const int64_t k = static_cast<int64_t>(span_rows.size());
    torch::Tensor r = Longs(span_rows, {k});
    const int64_t t = heads.start.size(2);
    torch::Tensor start = heads.start.reshape({-1, t}).index_select(0, r);
    torch::Tensor end = heads.end.reshape({-1, t}).index_select(0, r);
    result.loss = result.loss + F::cross_entropy(start, Longs(span_begin, {k})) +
                  F::cross_entropy(end, Longs(span_end, {k}));
  }
  if (!cat_rows.empty()) {
    const int64_t k = static_cast<int64_t>(cat_rows.size());
    int64_t v = 1;
    for (const auto& x : cat_values) v = std::max<int64_t>(v, x.size());
    std::vector<int64_t> values(k * v, 0);
    std::vector<float> features(k * v * kValueFeatures, 0);
    std::vector<uint8_t> mask(k * v, 0);
    for (int64_t i = 0; i < k; ++i) {
      for (size_t j = 0; j < cat_values[i].size(); ++j) {
        values[i * v + j] = cat_values[i][j];
        mask[i * v + j] = 1;
        std::copy(cat_features[i][j].begin(), cat_features[i][j].end(),
                  features.begin() + (i * v + j) * kValueFeatures);
      }
    }
    torch::Tensor out = net->Values(heads, Longs(cat_rows, {k}), schema.v, Longs(values, {k, v}),
                                    Floats(features, {k, v, kValueFeatures}), Bools(mask, {k, v}),
                                    true);
    result.loss = result.loss + F::cross_entropy(out, Longs(cat_target, {k}));
  }
  if (!refer_rows.empty()) {
    const int64_t k = static_cast<int64_t>(refer_rows.size());
    int64_t c = 1;
    for (const auto* x : refer_cands) c = std::max<int64_t>(c, x->size());
    std::vector<int64_t> sources(k * c, 0);
    std::vector<float> features(k * c * kReferFeatures, 0);
    std::vector<uint8_t> mask(k * c, 0), gold(k * c, 0);
    for (int64_t i = 0; i < k; ++i) {
      for (size_t j = 0; j < refer_cands[i]->size(); ++j) {
        const ReferCandidate& cand = (*refer_cands[i])[j];
        sources[i * c + j] = refer_service_rows[i][cand.service].slots[cand.slot];
        mask[i * c + j] = 1;
        std::copy(cand.features.begin(), cand.features.end(),
                  features.begin() + (i * c + j) * kReferFeatures);
      }
      for (int g : *refer_gold[i]) gold[i * c + g] = 1;
    }
    torch::Tensor out = net->Refer(heads, Longs(refer_rows, {k}), schema.q, Longs(sources, {k, c}),
                                   Floats(features, {k, c, kReferFeatures}), Bools(mask, {k, c}),
                                   true);
    // Any matching candidate is right: -log of their summed probability.
    torch::Tensor log_p = torch::log_softmax(out, 1);
    torch::Tensor gold_lp = log_p.masked_fill(Bools(gold, {k, c}).logical_not(), -1e9);
    result.loss = result.loss - torch::logsumexp(gold_lp, 1).mean();
  }
  if (!intent_utts.empty()) {
    const int64_t g = static_cast<int64_t>(intent_utts.size());
    int64_t k = 1;
    for (const auto& x : intent_cands) k = std::max<int64_t>(k, x.size());
    std::vector<int64_t> cands(g * k, 0);
    std::vector<float> prev(g * k, 0);
    std::vector<uint8_t> mask(g * k, 0);
    for (int64_t i = 0; i < g; ++i) {
      for (size_t j = 0; j < intent_cands[i].size(); ++j) {
        cands[i * k + j] = intent_cands[i][j];
        prev[i * k + j] = intent_prev[i][j];
        mask[i * k + j] = 1;
      }
    }
    torch::Tensor out = net->Intents(e, h, schema.i, Longs(intent_utts, {g}), Longs(cands, {g, k}),
                                     Floats(prev, {g, k}), Bools(mask, {g, k}), true);
    result.loss = result.loss + F::cross_entropy(out, Longs(intent_target, {g}));
  }
  return result;
}

// ---- The session ----

// The schema of `services` through the model's encoder (ServiceEncodings).
std::shared_ptr<const ServiceEncodings> Encode(
    const DstModel::Impl& model, const std::vector<const data::ServiceSchema*>& services) {
  torch::InferenceMode guard;
  auto out = std::make_shared<ServiceEncodings>();
  out->model = &model;
  out->services = services;
  Bags bags;
  for (const data::ServiceSchema* s : services) out->rows.push_back(AddService(*s, bags));
  out->schema = ProjectSchema(model.net, bags);
  return out;
}

class TorchDstSession : public DstSession {
 public:
  // Keeps `encodings` (of `model`) alive: other sessions may share them.
  TorchDstSession(const DstModel::Impl& model, std::shared_ptr<const ServiceEncodings> encodings)
      : model_(model),
        encodings_(std::move(encodings)),
        context_(encodings_->services),
        rows_(encodings_->rows),
        schema_(encodings_->schema) {
    torch::InferenceMode guard;
    hidden_ = torch::zeros({1, 1, model_.config.model_dim()});
  }

  absl::Status SystemTurn(const data::Turn& turn) override {
    context_.AddSystemTurn(turn);
    return absl::OkStatus();
  }

  absl::StatusOr<std::map<std::string, data::FrameState>> UserTurn(
      absl::string_view utterance) override {
    try {
      return Track(utterance);
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("libtorch: ", e.what_without_backtrace()));
    }
  }

  std::vector<float> context_vector() const override {
    torch::Tensor h = hidden_.reshape({-1}).contiguous();
    return std::vector<float>(h.data_ptr<float>(), h.data_ptr<float>() + h.numel());
  }

  Snapshot snapshot() const override {
    Snapshot out = context_.snapshot();
    out.context_vector = context_vector();
    return out;
  }

  // Continues from `snapshot` (ResumeSession checked the vector's size).
  void Restore(const Snapshot& snapshot) {
    context_.Restore(snapshot);
    if (snapshot.context_vector.empty()) return;
    torch::InferenceMode guard;
    hidden_ = torch::tensor(snapshot.context_vector, torch::kFloat32)
                  .reshape({1, 1, model_.config.model_dim()});
  }

 private:
  std::map<std::string, data::FrameState> Track(absl::string_view utterance) {
    torch::InferenceMode guard;
    Net& net = model_.net;
    const TurnInputs turn = BuildTurnInputs(context_, utterance, model_.featurizer);
    const std::vector<const TurnInputs*> turns = {&turn};
    Encoded e = EncodeTurns(net, MakeUtterances(turns), false);
    auto ctx = net->ctx_gru(e.x.unsqueeze(1), hidden_);
    hidden_ = std::get<1>(ctx);
    torch::Tensor h = std::get<0>(ctx).squeeze(1);  // [1, D]
    const std::vector<const ServiceRows*> rows = {rows_.data()};
    SlotTensors slots = MakeSlots(turns, rows);
    SlotHeads heads = net->Slots(e, h, schema_.q, slots.rows, slots.features, slots.allowed, false);
    const torch::Tensor status_t = heads.status.squeeze(0).contiguous();       // [S, 6]
    const torch::Tensor requested_t = heads.requested.squeeze(0).contiguous();  // [S]
    const float* status = status_t.data_ptr<float>();
    const float* requested = requested_t.data_ptr<float>();
    const int64_t tokens = static_cast<int64_t>(turn.utterance.tokens.size());

    std::map<std::string, data::FrameState> out;
    std::vector<std::vector<std::string>> requested_slots(context_.services.size());
    // Decisions first, then the updates: every slot decides on the same context.
    std::vector<std::pair<int, std::pair<int, std::string>>> updates;  // service, slot, value
    for (size_t j = 0; j < turn.slots.size(); ++j) {
      const SlotInstance& slot = turn.slots[j];
      const data::SlotSchema& schema = context_.services[slot.service]->slots[slot.slot];
      if (requested[j] > 0) requested_slots[slot.service].push_back(schema.name);
      if (tokens == 0) continue;  // Nothing said: the state stays.
      std::vector<std::pair<float, int>> order;
      for (int k = 0; k < kNumStatuses; ++k) order.push_back({status[j * kNumStatuses + k], k});
      std::sort(order.begin(), order.end(), std::greater<>());
      for (const auto& [score, choice] : order) {
        if (score < -1e8) break;
        std::string value;
        if (!Decide(net, heads, turn, utterance, j, choice, value)) continue;
        if (choice != kNone) updates.push_back({slot.service, {slot.slot, value}});
        break;
      }
    }
    if (std::getenv("HELPLINE_DST_DEBUG") != nullptr) {
      std::fprintf(stderr, "[dst] %s\n", std::string(utterance).c_str());
      for (const auto& [service, change] : updates) {
        std::fprintf(stderr, "[dst]   %s.%s = %s\n", context_.services[service]->name.c_str(),
                     context_.services[service]->slots[change.first].name.c_str(),
                     change.second.c_str());
      }
    }
    for (const auto& [service, change] : updates) {
      auto& values = context_.values[service];
      auto it = values.find(context_.services[service]->slots[change.first].name);
      if (it != values.end() && it->second == change.second) continue;
      context_.SetValue(service, change.first, change.second);
    }
    UpdateIntents(net, e, h);
    ++context_.user_turn;
    for (size_t i = 0; i < context_.services.size(); ++i) {
      const data::ServiceSchema& service = *context_.services[i];
      data::FrameState& state = out[service.name];
      state.active_intent = service.intents.empty() ? "" : context_.intents[i];
      state.requested_slots = requested_slots[i];
      for (const auto& [slot, value] : context_.values[i]) state.slot_values[slot] = {value};
    }
    return out;
  }

  // The value of status `choice` for slot instance j; false when the status cannot give one
  // here (no refer candidate, an empty span).
  bool Decide(Net& net, const SlotHeads& heads, const TurnInputs& turn,
              absl::string_view utterance, size_t j, int choice, std::string& value) {
    const SlotInstance& slot = turn.slots[j];
    const data::SlotSchema& schema = context_.services[slot.service]->slots[slot.slot];
    const torch::Tensor row = torch::tensor({static_cast<int64_t>(j)}, torch::kInt64);
    switch (choice) {
      case kNone:
        return true;
      case kDontcare:
        value = "dontcare";
        return true;
      case kSystem:
        value = slot.system_value;
        return !value.empty();
      case kSpan: {
        const int64_t t = static_cast<int64_t>(turn.utterance.tokens.size());
        const torch::Tensor start_t = heads.start[0][j].contiguous();
        const torch::Tensor end_t = heads.end[0][j].contiguous();
        const float* start = start_t.data_ptr<float>();
        const float* end = end_t.data_ptr<float>();
        float best = -1e30f;
        int bb = -1, be = -1;
        for (int64_t b = 0; b < t; ++b) {
          for (int64_t x = b; x < t && x < b + kMaxSpanTokens; ++x) {
            if (start[b] + end[x] > best) {
              best = start[b] + end[x];
              bb = static_cast<int>(b);
              be = static_cast<int>(x);
            }
          }
        }
        if (bb < 0) return false;
        value = SpanText(utterance, turn.utterance, bb, be);
        return true;
      }
      case kCategorical: {
        const std::vector<ValueFeatures> features = CategoricalFeatures(context_, turn, slot);
        const int64_t v = static_cast<int64_t>(features.size());
        if (v == 0) return false;
        std::vector<float> flat;
        for (const ValueFeatures& f : features) flat.insert(flat.end(), f.begin(), f.end());
        const std::vector<int64_t>& value_rows = rows_[slot.service].values[slot.slot];
        torch::Tensor out = net->Values(heads, row, schema_.v, Longs(value_rows, {1, v}),
                                        Floats(flat, {1, v, kValueFeatures}),
                                        torch::ones({1, v}, torch::kBool), false);
        value = schema.possible_values[out.argmax(1).item<int64_t>()];
        return true;
      }
      case kRefer: {
        const std::vector<ReferCandidate> cands = ReferCandidates(context_, turn, slot);
        const int64_t c = static_cast<int64_t>(cands.size());
        if (c == 0) return false;
        std::vector<int64_t> sources;
        std::vector<float> flat;
        for (const ReferCandidate& x : cands) {
          sources.push_back(rows_[x.service].slots[x.slot]);
          flat.insert(flat.end(), x.features.begin(), x.features.end());
        }
        torch::Tensor out = net->Refer(heads, row, schema_.q, Longs(sources, {1, c}),
                                       Floats(flat, {1, c, kReferFeatures}),
                                       torch::ones({1, c}, torch::kBool), false);
        value = cands[out.argmax(1).item<int64_t>()].value;
        return true;
      }
      default:
        return false;
    }
  }

  void UpdateIntents(Net& net, const Encoded& e, const torch::Tensor& h) {
    for (size_t i = 0; i < context_.services.size(); ++i) {
      const data::ServiceSchema& service = *context_.services[i];
      if (service.intents.empty()) continue;
      const int previous = IntentIndex(service, context_.intents[i]);
      std::vector<int64_t> cands = {-1};
      std::vector<float> prev = {previous == 0 ? 1.0f : 0.0f};
      for (size_t x = 0; x < service.intents.size(); ++x) {
        cands.push_back(rows_[i].intents[x]);
        prev.push_back(previous == static_cast<int>(x) + 1 ? 1.0f : 0.0f);
      }
      const int64_t k = static_cast<int64_t>(cands.size());
      torch::Tensor out = net->Intents(e, h, schema_.i, torch::zeros({1}, torch::kInt64),
                                       Longs(cands, {1, k}), Floats(prev, {1, k}),
                                       torch::ones({1, k}, torch::kBool), false);
      const int64_t best = out.argmax(1).item<int64_t>();
      context_.intents[i] = best == 0 ? kNoIntent : service.intents[best - 1].name;
    }
  }

  const DstModel::Impl& model_;
  const std::shared_ptr<const ServiceEncodings> encodings_;
  DialogueContext context_;
  // Borrowed from encodings_ (read only: sessions on other threads read them too).
  const std::vector<ServiceRows>& rows_;
  const SchemaRows& schema_;
  torch::Tensor hidden_;
};

}  // namespace

DstModel::DstModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DstModel::~DstModel() = default;
const DstModelConfig& DstModel::config() const { return impl_->config; }
const nlohmann::json& DstModel::training() const { return impl_->training; }
nlohmann::json& DstModel::mutable_training() { return impl_->training; }

absl::StatusOr<std::unique_ptr<DstModel>> DstModel::Train(const data::DialogueDataset& train,
                                                          const DstTrainOptions& options,
                                                          DstTrainReport* report_out) {
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&start] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  if (options.epochs <= 0 || options.batch_dialogues <= 0 || options.learning_rate <= 0 ||
      options.status_weight <= 0) {
    return absl::InvalidArgumentError(
        "epochs, batch size, learning rate and status weight must be positive");
  }
  DstTrainReport report;
  std::vector<const data::Dialogue*> dialogues;
  const size_t total = train.dialogues.size();
  const size_t keep =
      options.max_dialogues > 0 ? std::min(options.max_dialogues, total) : total;
  for (size_t i = 0; i < keep; ++i) dialogues.push_back(&train.dialogues[i * total / keep]);
  auto impl = std::make_unique<Impl>();
  impl->config = options.config;
  std::vector<std::string> texts;
  for (const data::Dialogue* d : dialogues) {
    for (const data::Turn& t : d->turns) {
      if (t.speaker == data::Speaker::kUser) texts.push_back(t.utterance);
    }
  }
  impl->featurizer = Featurizer::Build(texts, options.config.min_count);
  std::vector<int64_t> untrained_words;  // ids of vector words that no training turn has
  if (options.word_vectors != nullptr) {
    impl->config.word_vectors_dim = options.word_vectors->dim();
    const Featurizer trained = impl->featurizer;
    impl->featurizer =
        Featurizer::BuildWith(texts, options.word_vectors->words(), options.config.min_count);
    untrained_words = model::WordsOnlyIn(impl->featurizer, trained);
  } else {
    impl->config.word_vectors_dim = 0;
  }
  std::vector<PreparedDialogue> prepared;
  for (const data::Dialogue* d : dialogues) {
    PreparedDialogue p = PrepareDialogue(train, *d, impl->featurizer, report);
    if (!p.turns.empty()) prepared.push_back(std::move(p));
  }
  if (prepared.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(train.origin, ": no user turn with a state to train on"));
  }
  report.dialogues = prepared.size();
  report.prepare_seconds = seconds();
  Bags schema_bags;
  std::vector<ServiceRows> all_rows;
  for (const data::ServiceSchema& s : train.services) all_rows.push_back(AddService(s, schema_bags));

  try {
    torch::manual_seed(options.seed);
    impl->net = impl->NewNet();
    Net& net = impl->net;
    if (options.word_vectors != nullptr) {
      model::FillWordVectors(*options.word_vectors, impl->featurizer, net->vectors->weight);
    }
    net->train();
    torch::optim::Adam optimizer(net->parameters(),
                                 torch::optim::AdamOptions(options.learning_rate));
    std::mt19937_64 rng(options.seed);
    std::vector<float> weights(kNumStatuses, static_cast<float>(options.status_weight));
    weights[kNone] = 1.0f;
    const torch::Tensor status_weights = Floats(weights, {kNumStatuses});
    std::vector<size_t> order(prepared.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    const size_t per_epoch =
        (prepared.size() + options.batch_dialogues - 1) / options.batch_dialogues;
    const size_t steps = per_epoch * static_cast<size_t>(options.epochs);
    size_t step = 0;
    for (int epoch = 1; epoch <= options.epochs; ++epoch) {
      std::shuffle(order.begin(), order.end(), rng);
      double loss_sum = 0;
      int64_t correct = 0, counted = 0;
      for (size_t b = 0; b < per_epoch; ++b) {
        std::vector<const PreparedDialogue*> batch;
        for (size_t i = b * options.batch_dialogues;
             i < std::min(order.size(), (b + 1) * options.batch_dialogues); ++i) {
          batch.push_back(&prepared[order[i]]);
        }
        const double lr = options.learning_rate * (1.0 - static_cast<double>(step) / steps);
        for (auto& group : optimizer.param_groups()) {
          static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
        }
        optimizer.zero_grad();
        StepResult r = TrainStep(net, batch, all_rows, schema_bags, status_weights);
        r.loss.backward();
        torch::nn::utils::clip_grad_norm_(net->parameters(), 5.0);
        optimizer.step();
        ++step;
        loss_sum += r.loss.item<double>();
        correct += r.correct;
        counted += r.counted;
        report.final_loss = loss_sum / static_cast<double>(b + 1);
        if (options.progress) {
          model::TrainProgress p;
          p.epoch = epoch;
          p.epochs = options.epochs;
          p.step = step;
          p.steps = steps;
          p.loss = report.final_loss;
          p.intent_accuracy = counted > 0 ? static_cast<double>(correct) / counted : 0;
          p.elapsed_seconds = seconds();
          options.progress(p);
        }
      }
    }
    net->eval();
    model::ShareUnknownRow(net->word->weight, untrained_words);
    model::CopyGruWeights(net->utt_gru, net->inference_gru);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("libtorch: ", e.what_without_backtrace()));
  }
  report.seconds = seconds();
  std::vector<std::string> services;
  for (const data::ServiceSchema& s : train.services) services.push_back(s.name);
  impl->training = {{"source", train.origin},
                    {"format", train.format},
                    {"dialogues", report.dialogues},
                    {"user_turns", report.user_turns},
                    {"slot_instances", report.slot_instances},
                    {"status_counts", report.status_counts},
                    {"seed", options.seed},
                    {"epochs", options.epochs},
                    {"batch_dialogues", options.batch_dialogues},
                    {"learning_rate", options.learning_rate},
                    {"status_weight", options.status_weight},
                    {"seconds", report.seconds},
                    {"final_loss", report.final_loss},
                    {"services", services}};
  if (report_out != nullptr) *report_out = report;
  return std::unique_ptr<DstModel>(new DstModel(std::move(impl)));
}

absl::Status DstModel::Save(const std::string& dir) const {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  nlohmann::json json = {{"format", kFormatName},
                         {"config", ConfigToJson(impl_->config)},
                         {"training", impl_->training},
                         {"vocabulary", impl_->featurizer.ToJson()}};
  {
    const std::string path = (std::filesystem::path(dir) / kDstModelJsonName).string();
    std::ofstream out(path, std::ios::trunc);
    out << json.dump(1) << "\n";
    out.close();
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  }
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& item : impl_->net->named_parameters()) {
    tensors.emplace_back(item.key(), item.value());
  }
  return model::WriteSafetensors((std::filesystem::path(dir) / kDstWeightsName).string(), tensors);
}

absl::StatusOr<std::unique_ptr<DstModel>> DstModel::Load(const std::string& dir) {
  const std::string json_path = (std::filesystem::path(dir) / kDstModelJsonName).string();
  absl::StatusOr<std::string> text = data::ReadFileContent(json_path);
  if (!text.ok()) return text.status();
  nlohmann::json json = nlohmann::json::parse(*text, nullptr, false);
  auto bad = [&json_path](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(json_path, ": ", what));
  };
  if (json.is_discarded() || !json.is_object()) return bad("not a JSON object");
  if (json.value("format", "") != kFormatName) {
    return bad(absl::StrCat("'format' is not ", kFormatName));
  }
  if (!json.contains("config") || !json["config"].is_object()) return bad("'config' missing");
  auto impl = std::make_unique<Impl>();
  absl::StatusOr<DstModelConfig> config = ConfigFromJson(json["config"]);
  if (!config.ok()) return bad(config.status().message());
  impl->config = *config;
  if (!json.contains("vocabulary")) return bad("'vocabulary' missing");
  absl::StatusOr<Featurizer> featurizer = Featurizer::FromJson(json["vocabulary"]);
  if (!featurizer.ok()) return bad(featurizer.status().message());
  impl->featurizer = *std::move(featurizer);
  if (json.contains("training")) impl->training = json["training"];

  const std::string weights_path = (std::filesystem::path(dir) / kDstWeightsName).string();
  absl::StatusOr<std::unique_ptr<lm::SafetensorsFile>> weights =
      lm::SafetensorsFile::Open(weights_path);
  if (!weights.ok()) return weights.status();
  try {
    torch::NoGradGuard no_grad;
    impl->net = impl->NewNet();
    size_t used = 0;
    for (auto& item : impl->net->named_parameters()) {
      const lm::SafetensorsTensor* t = (*weights)->Find(item.key());
      if (t == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat(weights_path, ": tensor '", item.key(), "' missing"));
      }
      if (t->shape != item.value().sizes().vec()) {
        return absl::InvalidArgumentError(absl::StrCat(
            weights_path, ": tensor '", item.key(), "' has the wrong shape for dst_model.json"));
      }
      torch::Tensor dst = item.value();
      lm::SafetensorsFile::ToFloat32(*t, dst.data_ptr<float>());
      ++used;
    }
    if (used != (*weights)->tensors().size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(weights_path, ": holds tensors that dst_model.json does not describe"));
    }
    impl->net->eval();
    model::CopyGruWeights(impl->net->utt_gru, impl->net->inference_gru);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("libtorch: ", e.what_without_backtrace()));
  }
  return std::unique_ptr<DstModel>(new DstModel(std::move(impl)));
}

absl::Status DstModel::CheckEncodings(const ServiceEncodings* encodings) const {
  if (encodings == nullptr) return absl::InvalidArgumentError("service encodings: null");
  if (encodings->model != impl_.get()) {
    return absl::InvalidArgumentError("service encodings: made by another model");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const ServiceEncodings>> DstModel::EncodeServices(
    const std::vector<const data::ServiceSchema*>& services) const {
  if (services.empty()) return absl::InvalidArgumentError("a dialogue needs at least one service");
  try {
    return Encode(*impl_, services);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("libtorch: ", e.what_without_backtrace()));
  }
}

absl::StatusOr<std::unique_ptr<DstSession>> DstModel::NewSession(
    const std::vector<const data::ServiceSchema*>& services) const {
  absl::StatusOr<std::shared_ptr<const ServiceEncodings>> encodings = EncodeServices(services);
  if (!encodings.ok()) return encodings.status();
  return NewSession(*std::move(encodings));
}

absl::StatusOr<std::unique_ptr<DstSession>> DstModel::NewSession(
    std::shared_ptr<const ServiceEncodings> encodings) const {
  if (absl::Status s = CheckEncodings(encodings.get()); !s.ok()) return s;
  try {
    return std::unique_ptr<DstSession>(new TorchDstSession(*impl_, std::move(encodings)));
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("libtorch: ", e.what_without_backtrace()));
  }
}

absl::StatusOr<std::unique_ptr<DstSession>> DstModel::ResumeSession(
    const std::vector<const data::ServiceSchema*>& services, const Snapshot& snapshot) const {
  absl::StatusOr<std::shared_ptr<const ServiceEncodings>> encodings = EncodeServices(services);
  if (!encodings.ok()) return encodings.status();
  return ResumeSession(*std::move(encodings), snapshot);
}

absl::StatusOr<std::unique_ptr<DstSession>> DstModel::ResumeSession(
    std::shared_ptr<const ServiceEncodings> encodings, const Snapshot& snapshot) const {
  if (absl::Status s = CheckEncodings(encodings.get()); !s.ok()) return s;
  const size_t dim = static_cast<size_t>(impl_->config.model_dim());
  if (!snapshot.context_vector.empty() && snapshot.context_vector.size() != dim) {
    return absl::InvalidArgumentError(
        absl::StrCat("context vector: ", snapshot.context_vector.size(),
                     " floats where this model's context GRU has ", dim));
  }
  try {
    auto session = std::make_unique<TorchDstSession>(*impl_, std::move(encodings));
    session->Restore(snapshot);
    return std::unique_ptr<DstSession>(std::move(session));
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("libtorch: ", e.what_without_backtrace()));
  }
}

std::map<std::string, std::vector<float>> DstModel::Weights() const {
  std::map<std::string, std::vector<float>> out;
  for (const auto& item : impl_->net->named_parameters()) {
    torch::Tensor t = item.value().detach().contiguous();
    out[item.key()].assign(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
  }
  return out;
}

}  // namespace helpline::nlu::dst
