// The utterance model (libtorch; pretrain.cc holds the encoder pretraining): the network,
// training, calibration, inference and the safetensors round trip.
#include "nlu/model/nlu_model.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <numeric>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "lm/model/safetensors.h"
#include "nlu/data/readers.h"
#include "nlu/metrics/utterance_metrics.h"
#include "nlu/model/featurizer.h"
#include "nlu/model/pretrain.h"
#include "nlu/model/torch_batch.h"
#include "nlu/model/torch_gru.h"
#include "nlu/model/torch_safetensors.h"
#include "nlu/model/torch_transformer.h"
#include "nlu/model/torch_word_vectors.h"
#include "nlu/model/transfer_set.h"
#include "nlu/model/transformer_checkpoint.h"
#include "nlu/model/utterance_inference.h"
#include "nlu/model/word_vectors.h"

namespace helpline::nlu::model {
namespace {

namespace F = torch::nn::functional;

// Inverted dropout drawing from `gen` (each ensemble member has its own generator, so members
// trained on parallel threads draw exactly what they would one after the other).
torch::Tensor Dropout(const torch::Tensor& x, double p, bool training, at::Generator& gen) {
  if (!training || p <= 0) return x;
  return x * torch::empty_like(x).bernoulli_(1.0 - p, gen) / (1.0 - p);
}

// A score added to the IOB2-invalid tag bigrams (O -> I-x, B-x -> I-y, ...) and to an I-x
// start in the CRF's likelihood: such sequences get no probability mass (Viterbi forbids
// them outright).
constexpr float kForbidden = -1e4f;

// Distillation (TrainOptions::distill): the softening temperature and the weight of the
// teachers' term (the gold labels get 1 - weight).
constexpr double kDistillTemperature = 2.0;
constexpr double kDistillWeight = 0.7;

// Dropout on the fine-tuned transformer's attention and feed-forward outputs.
constexpr double kTransformerDropout = 0.1;

bool TagBigramAllowed(int64_t from, int64_t to) {
  if (to == 0 || to % 2 == 1) return true;
  return from == to || from + 1 == to;
}

struct Output {
  torch::Tensor intent_logits;  // [B, C]
  torch::Tensor tag_logits;     // [B, T, K]
  torch::Tensor encoding;       // [B, D]
};

struct NetImpl : torch::nn::Module {
  NetImpl(const NluModelConfig& c, int64_t num_words, int64_t num_chars, int64_t num_sents,
          int64_t num_intents, int64_t num_tags)
      : config(c),
        word(register_module(
            "word", torch::nn::Embedding(
                        torch::nn::EmbeddingOptions(num_words, c.embedding_dim).padding_idx(0)))),
        chars(register_module(
            "chars", torch::nn::EmbeddingBag(torch::nn::EmbeddingBagOptions(
                                                 std::max<int64_t>(num_chars, 1), c.embedding_dim)
                                                 .mode(torch::kMean)))),
        shape(register_module("shape", torch::nn::Embedding(kNumShapes, c.embedding_dim))),
        sent(register_module(
            "sent", torch::nn::EmbeddingBag(torch::nn::EmbeddingBagOptions(
                                                std::max<int64_t>(num_sents, 1), c.sentence_dim)
                                                .mode(torch::kMean)))),
        gru(register_module("gru",
                            torch::nn::GRU(torch::nn::GRUOptions(c.embedding_dim, c.hidden_dim)
                                               .bidirectional(true)
                                               .batch_first(true)))),
        intent_out(register_module("intent_out", torch::nn::Linear(c.encoding_dim(), num_intents))),
        tag_out(register_module("tag_out", torch::nn::Linear(2 * c.hidden_dim, num_tags))) {
    if (c.word_vectors_dim > 0) {
      RegisterWordVectors(*this, num_words, c.word_vectors_dim, c.embedding_dim, vectors,
                          vectors_proj);
    }
    if (c.has_transformer()) {
      transformer = register_module(
          "transformer", PieceTransformer(c.transformer_pieces, c.transformer_embedding_dim,
                                          c.transformer_hidden_dim, c.transformer_ffn_dim));
      transformer_proj = register_module(
          "transformer_proj", torch::nn::Linear(c.transformer_hidden_dim, c.embedding_dim));
    }
    if (c.crf) {
      crf_transitions = register_parameter("crf_transitions", torch::zeros({num_tags, num_tags}));
      crf_start = register_parameter("crf_start", torch::zeros({num_tags}));
      crf_end = register_parameter("crf_end", torch::zeros({num_tags}));
      crf_forbidden = torch::zeros({num_tags, num_tags});
      crf_start_forbidden = torch::zeros({num_tags});
      for (int64_t from = 0; from < num_tags; ++from) {
        for (int64_t to = 0; to < num_tags; ++to) {
          if (!TagBigramAllowed(from, to)) crf_forbidden[from][to] = kForbidden;
        }
        if (from != 0 && from % 2 == 0) crf_start_forbidden[from] = kForbidden;
      }
    }
    torch::NoGradGuard no_grad;
    for (torch::Tensor w : {word->weight, chars->weight, shape->weight, sent->weight}) {
      w.uniform_(-0.1, 0.1);
    }
    word->weight[0].zero_();
  }

  // `gen` draws the dropout masks (used only when training).
  Output Forward(const Batch& b, bool training, at::Generator& gen) {
    if (training && inference_gru.ready()) {  // the weights change
      inference_net = UtteranceInference();
      inference_gru = BiGruInference();
      inference_transformer = PieceTransformerInference();
    }
    const int64_t batch = b.words.size(0), len = b.words.size(1);
    torch::Tensor words = b.words;
    if (training && config.word_dropout > 0) {
      torch::Tensor drop =
          (torch::rand({batch, len}, gen) < config.word_dropout).logical_and(b.mask);
      words = torch::where(drop, torch::full_like(words, Featurizer::kUnknown), words);
    }
    torch::Tensor x = word(words) +
                      chars(b.char_ids, b.char_offsets).view({batch, len, config.embedding_dim}) +
                      shape(b.shapes);
    // Word dropout leaves the pretrained vectors alone: a dropped word is then known by its
    // vector only, as a word met first at run time is.
    if (vectors) x = x + vectors_proj(vectors(b.words));
    torch::Tensor sentence_vector;
    if (transformer) {
      auto drop = [&](const torch::Tensor& t) {
        return Dropout(t, kTransformerDropout, training, gen);
      };
      // Training with bf16_training: the transformer's matrix products in bfloat16 (autocast;
      // the weights and their gradients stay float32). The cast weights are cached for one
      // forward pass only: the optimizer changes them.
      const bool autocast = training && bf16_training;
      if (autocast) {
        at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
        at::autocast::set_cpu_enabled(true);
      }
      torch::Tensor pieces;  // [B, P, H]
      if (batch == 1 && !training && inference_transformer.ready() && b.pieces.size(1) > 0) {
        std::tie(pieces, sentence_vector) = RunTransformer(inference_transformer, b.pieces);
      } else {
        pieces = transformer->States(b.pieces, b.piece_mask, drop);
        if (autocast) {
          at::autocast::set_cpu_enabled(false);
          at::autocast::clear_cache();
          pieces = pieces.to(torch::kFloat32);
        }
        sentence_vector = transformer->Pool(pieces, b.piece_mask);
      }
      torch::Tensor first = b.first_piece.unsqueeze(2).expand({-1, -1, pieces.size(2)});
      x = x + transformer_proj(pieces.gather(1, first));
    }
    x = Dropout(x, config.dropout, training, gen);
    torch::Tensor states;
    if (batch == 1 && !training && inference_gru.ready()) {
      states = RunGru(inference_gru, x);
    } else if (batch == 1) {
      states = std::get<0>(gru(x));
    } else {
      auto packed = torch::nn::utils::rnn::pack_padded_sequence(x, b.lengths, true, false);
      auto out = gru->forward_with_packed_input(packed);
      states =
          std::get<0>(torch::nn::utils::rnn::pad_packed_sequence(std::get<0>(out), true, 0.0, len));
    }
    torch::Tensor mask = b.mask.unsqueeze(2);
    torch::Tensor max_pool = states.masked_fill(mask.logical_not(), -1e4).amax(1);
    torch::Tensor mean_pool = (states * mask).sum(1) / b.lengths.to(torch::kFloat32).unsqueeze(1);
    torch::Tensor bag = sent(b.sent_ids, b.sent_offsets);
    Output out;
    out.encoding = sentence_vector.defined()
                       ? torch::cat({max_pool, mean_pool, bag, sentence_vector}, 1)
                       : torch::cat({max_pool, mean_pool, bag}, 1);
    out.intent_logits = intent_out(Dropout(out.encoding, config.dropout, training, gen));
    out.tag_logits = tag_out(Dropout(states, config.dropout, training, gen));
    return out;
  }

  // Makes the network ready to serve (after training or loading, before any concurrent use):
  // the BiGRU's weights copied for BiGruInference (one utterance at a time, in eval mode), and
  // with `transformer_bf16` (config.transformer_bf16_inference) the transformer's weights in
  // bfloat16: copied for PieceTransformerInference (one utterance) and for libtorch (batches).
  // The whole network then runs off libtorch for one utterance (UtteranceInference), unless it
  // has a transformer kept in float32.
  void PrepareInference(bool transformer_bf16) {
    CopyGruWeights(gru, inference_gru);
    if (transformer && transformer_bf16) {
      transformer->UseBf16ForInference();
      CopyTransformerWeights(transformer, inference_transformer);
    }
    inference_net = UtteranceInference();
    if (transformer && !transformer_bf16) return;
    auto data = [](const torch::Tensor& v) { return v.data_ptr<float>(); };
    auto rows = [](const torch::Tensor& v) { return static_cast<int>(v.size(0)); };
    inference_net.SetTokenTables(data(word->weight), rows(word->weight), data(chars->weight),
                                 rows(chars->weight), data(shape->weight), rows(shape->weight),
                                 static_cast<int>(config.embedding_dim));
    inference_net.SetSentenceBag(data(sent->weight), rows(sent->weight),
                                 static_cast<int>(config.sentence_dim));
    if (vectors) {
      inference_net.SetWordVectors(data(vectors->weight), rows(vectors->weight),
                                   static_cast<int>(vectors->weight.size(1)),
                                   data(vectors_proj->weight), data(vectors_proj->bias));
    }
    if (transformer) {
      inference_net.SetTransformer(&inference_transformer, data(transformer_proj->weight),
                                   data(transformer_proj->bias));
    }
    inference_net.SetGru(&inference_gru);
    inference_net.SetHeads(data(intent_out->weight), data(intent_out->bias),
                           rows(intent_out->weight), data(tag_out->weight), data(tag_out->bias),
                           rows(tag_out->weight));
  }

  // Sum over the batch of the CRF's negative log-likelihood of the gold tag sequences `tags`
  // ([B, T], any tag past an utterance's end) under the emission scores `emissions` [B, T, K].
  torch::Tensor CrfNll(const torch::Tensor& emissions, const torch::Tensor& tags,
                       const Batch& b) const {
    const int64_t len = emissions.size(1), k = emissions.size(2);
    const torch::Tensor transitions = crf_transitions + crf_forbidden;
    const torch::Tensor start = crf_start + crf_start_forbidden;
    // Log partition function by the forward algorithm.
    torch::Tensor alpha = start.unsqueeze(0) + emissions.select(1, 0);  // [B, K]
    for (int64_t t = 1; t < len; ++t) {
      torch::Tensor next = torch::logsumexp(alpha.unsqueeze(2) + transitions.unsqueeze(0), 1) +
                           emissions.select(1, t);
      alpha = torch::where(b.mask.select(1, t).unsqueeze(1), next, alpha);
    }
    torch::Tensor log_z = torch::logsumexp(alpha + crf_end.unsqueeze(0), 1);  // [B]
    // Score of the gold sequence.
    const torch::Tensor maskf = b.mask.to(torch::kFloat32);
    torch::Tensor gold = (emissions.gather(2, tags.unsqueeze(2)).squeeze(2) * maskf).sum(1) +
                         start.index_select(0, tags.select(1, 0));
    if (len > 1) {
      torch::Tensor pairs = tags.slice(1, 0, len - 1) * k + tags.slice(1, 1, len);
      torch::Tensor bigrams = transitions.reshape({-1}).index_select(0, pairs.reshape({-1}));
      gold = gold + (bigrams.view({-1, len - 1}) * maskf.slice(1, 1, len)).sum(1);
    }
    torch::Tensor last = tags.gather(1, (b.lengths - 1).unsqueeze(1)).squeeze(1);
    gold = gold + crf_end.index_select(0, last);
    return (log_z - gold).sum();
  }

  NluModelConfig config;
  torch::nn::Embedding word;
  torch::nn::EmbeddingBag chars;
  torch::nn::Embedding shape;
  torch::nn::EmbeddingBag sent;
  torch::nn::GRU gru;
  torch::nn::Linear intent_out;
  torch::nn::Linear tag_out;
  // config.word_vectors_dim > 0 only: frozen pretrained vectors and their projection.
  torch::nn::Embedding vectors{nullptr};
  torch::nn::Linear vectors_proj{nullptr};
  // config.has_transformer() only: the fine-tuned transformer and its projection to tokens.
  PieceTransformer transformer{nullptr};
  torch::nn::Linear transformer_proj{nullptr};
  // Set by the trainer (TrainOptions::transformer_bf16).
  bool bf16_training = false;
  // The BiGRU for one utterance at inference (PrepareInference; emptied when training).
  BiGruInference inference_gru;
  // The same for the transformer, with transformer_bf16_inference only.
  PieceTransformerInference inference_transformer;
  // The whole network for one utterance (PrepareInference; emptied when training). Reads the
  // embedding tables in place and the two objects above.
  UtteranceInference inference_net;
  // config.crf only: learned tag bigram / start / end scores, and the constant IOB2 masks.
  torch::Tensor crf_transitions, crf_start, crf_end, crf_forbidden, crf_start_forbidden;
};
TORCH_MODULE(Net);

// Per example, the members' calibrated outputs combined.
struct Combined {
  std::vector<float> intent_probs;  // [C]
  // [T * K]: log of the mean tag probabilities; with a CRF the mean emission scores.
  std::vector<float> tag_scores;
  std::vector<float> encoding;       // member 0
};

}  // namespace

struct NluModel::Impl {
  NluModelInfo info;
  Featurizer featurizer;
  SentencePieces pieces;             // info.config.has_transformer() only
  mutable std::vector<Net> members;  // Forward is not const in libtorch; inference does not mutate
  std::vector<std::string> tag_names;
  // config.crf: the members' mean transition scores (with their mean emissions, the mean of
  // the members' sequence scores).
  TagTransitions transitions;

  // After the members are trained or loaded.
  void AverageTransitions() {
    if (!info.config.crf || members.empty()) return;
    torch::NoGradGuard no_grad;
    auto mean = [this](torch::Tensor NetImpl::*field) {
      torch::Tensor sum;
      for (const Net& net : members) {
        torch::Tensor t = (*net).*field;
        sum = sum.defined() ? sum + t : t.clone();
      }
      torch::Tensor m = (sum / static_cast<double>(members.size())).contiguous();
      return std::vector<float>(m.data_ptr<float>(), m.data_ptr<float>() + m.numel());
    };
    transitions.transition = mean(&NetImpl::crf_transitions);
    transitions.start = mean(&NetImpl::crf_start);
    transitions.end = mean(&NetImpl::crf_end);
  }

  Features Featurize(absl::string_view text) const {
    Features f = featurizer.Featurize(text);
    if (info.config.has_transformer() && !f.tokens.empty()) AddSentencePieces(pieces, text, f);
    return f;
  }

  Net NewNet() const {
    return Net(info.config, featurizer.num_words(), featurizer.num_char_ngrams(),
               featurizer.num_sentence_ngrams(), static_cast<int64_t>(info.intents.size()),
               static_cast<int64_t>(tag_names.size()));
  }

  // Runs every member on `items` (eval mode) and combines at `temperature`.
  std::vector<Combined> Run(const std::vector<const Features*>& items, double temperature,
                            std::vector<torch::Tensor>* member_logits = nullptr) const {
    if (items.size() == 1 && member_logits == nullptr) {
      std::optional<Combined> one = RunOne(*items[0], temperature);
      if (one.has_value()) return {*std::move(one)};
    }
    torch::InferenceMode guard;
    const Batch batch = MakeBatch(items);
    const int64_t b = static_cast<int64_t>(items.size());
    const bool crf = info.config.crf;
    at::Generator unused = at::detail::getDefaultCPUGenerator();  // no dropout in eval mode
    torch::Tensor probs, tag_probs, encoding;
    for (size_t m = 0; m < members.size(); ++m) {
      Output out = members[m]->Forward(batch, false, unused);
      if (member_logits != nullptr) member_logits->push_back(out.intent_logits);
      torch::Tensor p = torch::softmax(out.intent_logits / temperature, 1);
      torch::Tensor tp = crf ? out.tag_logits : torch::softmax(out.tag_logits, 2);
      if (m == 0) {
        probs = p;
        tag_probs = tp;
        encoding = out.encoding;
      } else {
        probs = probs + p;
        tag_probs = tag_probs + tp;
      }
    }
    const double n = static_cast<double>(members.size());
    probs = (probs / n).contiguous();
    tag_probs =
        crf ? (tag_probs / n).contiguous() : (tag_probs / n).clamp_min(1e-12).log().contiguous();
    encoding = encoding.contiguous();
    std::vector<Combined> out(b);
    const int64_t c = probs.size(1), t = tag_probs.size(1), k = tag_probs.size(2),
                  d = encoding.size(1);
    const float* pp = probs.data_ptr<float>();
    const float* tp = tag_probs.data_ptr<float>();
    const float* ep = encoding.data_ptr<float>();
    for (int64_t i = 0; i < b; ++i) {
      out[i].intent_probs.assign(pp + i * c, pp + (i + 1) * c);
      const int64_t n_tok = static_cast<int64_t>(items[i]->tokens.size());
      out[i].tag_scores.assign(tp + i * t * k, tp + (i * t + n_tok) * k);
      out[i].encoding.assign(ep + i * d, ep + (i + 1) * d);
    }
    return out;
  }

  // Run's arithmetic for one utterance off libtorch (UtteranceInference in every member);
  // nullopt when a member has no such path or the features do not fit it.
  std::optional<Combined> RunOne(const Features& f, double temperature) const {
    for (const Net& net : members) {
      if (!net->inference_net.ready()) return std::nullopt;
    }
    const bool crf = info.config.crf;
    thread_local UtteranceInference::Output out;
    Combined c;
    const size_t t = f.tokens.size();
    for (size_t m = 0; m < members.size(); ++m) {
      if (!members[m]->inference_net.Run(f, out)) return std::nullopt;
      const size_t classes = out.intent_logits.size(), k = out.tag_logits.size() / t;
      if (m == 0) {
        c.intent_probs.assign(classes, 0.0f);
        c.tag_scores.assign(t * k, 0.0f);
        c.encoding = out.encoding;
      }
      // softmax(logits / temperature), added up over the members.
      float top = out.intent_logits[0];
      for (float v : out.intent_logits) top = std::max(top, v);
      const float inv_t = static_cast<float>(1.0 / temperature);
      std::vector<float> e(classes);
      float sum = 0;
      for (size_t i = 0; i < classes; ++i) {
        e[i] = std::exp((out.intent_logits[i] - top) * inv_t);
        sum += e[i];
      }
      for (size_t i = 0; i < classes; ++i) c.intent_probs[i] += e[i] / sum;
      // Tags: the emission scores with a CRF, else each token's softmax.
      for (size_t j = 0; j < t; ++j) {
        const float* row = out.tag_logits.data() + j * k;
        float* acc = c.tag_scores.data() + j * k;
        if (crf) {
          for (size_t i = 0; i < k; ++i) acc[i] += row[i];
          continue;
        }
        const float row_top = *std::max_element(row, row + k);
        float row_sum = 0;
        for (size_t i = 0; i < k; ++i) row_sum += std::exp(row[i] - row_top);
        for (size_t i = 0; i < k; ++i) acc[i] += std::exp(row[i] - row_top) / row_sum;
      }
    }
    const float n = static_cast<float>(members.size());
    for (float& v : c.intent_probs) v /= n;
    for (float& v : c.tag_scores) v = crf ? v / n : std::log(std::max(v / n, 1e-12f));
    return c;
  }

  NluPrediction Decide(absl::string_view text, const Features& features, Combined combined,
                       bool use_threshold) const {
    NluPrediction p;
    const std::vector<float>& probs = combined.intent_probs;
    int best = -1;
    float oos_prob = 0;
    for (size_t i = 0; i < probs.size(); ++i) {
      if (info.intents[i] == info.oos_label && !info.oos_label.empty()) {
        oos_prob = probs[i];
        continue;
      }
      if (best < 0 || probs[i] > probs[best]) best = static_cast<int>(i);
    }
    if (best >= 0) {
      p.best_intent = info.intents[best];
      p.confidence = probs[best];
      p.intent = p.best_intent;
    }
    if (!info.oos_label.empty() && oos_prob > p.confidence) {
      p.intent.clear();
      p.confidence = oos_prob;
    } else if (use_threshold && p.confidence < info.oos_threshold) {
      p.intent.clear();
    }
    if (info.slot_types.size() > 0) {
      const std::vector<int> tags =
          DecodeBio(combined.tag_scores, features.tokens.size(), tag_names.size(),
                    info.config.crf ? &transitions : nullptr);
      p.slots = SpansFromTags(text, features.tokens, tags, info.slot_types);
    }
    p.encoding = std::move(combined.encoding);
    return p;
  }
};

namespace {

// An utterance's length for batching: its pieces with a transformer, else its tokens.
size_t BatchLength(const Features& f) { return std::max(f.pieces.size(), f.tokens.size()); }

std::vector<std::string> SortedIntents(const std::vector<data::UtteranceExample>& train) {
  std::set<std::string> s;
  for (const auto& e : train) s.insert(e.intent);
  return {s.begin(), s.end()};
}

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Mean NLL of gold intents under the members' softmax(z / T), averaged over members.
double Nll(const std::vector<torch::Tensor>& logits, const torch::Tensor& gold, double t) {
  torch::Tensor p;
  for (const torch::Tensor& z : logits) {
    torch::Tensor q = torch::softmax(z / t, 1);
    p = p.defined() ? p + q : q;
  }
  p = p / static_cast<double>(logits.size());
  return -p.gather(1, gold.unsqueeze(1)).clamp_min(1e-12).log().mean().item<double>();
}

// Copies `src` (shape [rows, dim]) row by row into `dst` where `map[i]` >= 0 is the source row
// of destination row i.
void CopyRows(const EncoderTensor& src, const std::vector<int64_t>& map, torch::Tensor dst) {
  const int64_t dim = dst.size(1);
  float* out = dst.data_ptr<float>();
  for (size_t i = 0; i < map.size(); ++i) {
    if (map[i] < 0) continue;
    std::copy_n(src.values.data() + map[i] * dim, dim, out + i * dim);
  }
}

// The token embeddings (by word / n-gram text) and the BiGRU (by parameter name) of `net`
// from the pretrained encoder. Rows of words the encoder does not know keep their random
// start; <pad> stays zero.
void InitFromEncoder(const PretrainedEncoder& encoder, const Featurizer& featurizer, NetImpl& net) {
  torch::NoGradGuard no_grad;
  const Featurizer& source = encoder.featurizer();
  const auto& tensors = encoder.tensors();
  std::vector<int64_t> word_map(featurizer.num_words(), -1);
  word_map[Featurizer::kUnknown] = Featurizer::kUnknown;
  for (size_t i = 2; i < word_map.size(); ++i) word_map[i] = source.FindWord(featurizer.words()[i]);
  CopyRows(tensors.at("word.weight"), word_map, net.word->weight);
  std::vector<int64_t> char_map(featurizer.num_char_ngrams(), -1);
  for (size_t i = 0; i < char_map.size(); ++i) {
    char_map[i] = source.FindCharNgram(featurizer.char_ngrams()[i]);
  }
  if (!char_map.empty()) CopyRows(tensors.at("chars.weight"), char_map, net.chars->weight);
  for (const auto& item : net.named_parameters()) {
    const std::string& name = item.key();
    if (name != "shape.weight" && name.rfind("gru.", 0) != 0) continue;
    const EncoderTensor& t = tensors.at(name);
    torch::Tensor dst = item.value();
    std::copy(t.values.begin(), t.values.end(), dst.data_ptr<float>());
  }
}

}  // namespace

absl::Status WriteSafetensors(const std::string& path,
                              const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  size_t offset = 0;
  std::vector<torch::Tensor> data;
  for (const auto& [name, tensor] : tensors) {
    torch::Tensor t = tensor.detach().to(torch::kFloat32).contiguous();
    const size_t bytes = static_cast<size_t>(t.numel()) * sizeof(float);
    header[name] = {
        {"dtype", "F32"}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(t);
  }
  header["__metadata__"] = {{"format", "pt"}};
  std::string text = header.dump();
  while (text.size() % 8 != 0) text.push_back(' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  const uint64_t n = text.size();
  out.write(reinterpret_cast<const char*>(&n), sizeof(n));  // little-endian host (x86-64)
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const torch::Tensor& t : data) {
    out.write(reinterpret_cast<const char*>(t.data_ptr<float>()),
              static_cast<std::streamsize>(t.numel() * sizeof(float)));
  }
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TransformerEmbedding>> EmbedWithTransformer(
    const TransformerCheckpoint& checkpoint, const std::vector<std::string>& texts) {
  try {
    torch::InferenceMode guard;
    PieceTransformer net(checkpoint.tensors.at("embedding").shape[0], checkpoint.embedding_dim,
                         checkpoint.hidden_dim, checkpoint.ffn_dim);
    if (absl::Status s = net->LoadFrom(checkpoint); !s.ok()) return s;
    net->eval();
    std::vector<TransformerEmbedding> out(texts.size());
    for (size_t i = 0; i < texts.size(); ++i) {
      Features features;
      features.tokens = Tokenize(texts[i]);
      if (features.tokens.empty()) continue;
      AddSentencePieces(checkpoint.pieces, texts[i], features);
      const int64_t p = static_cast<int64_t>(features.pieces.size());
      torch::Tensor ids = torch::tensor(features.pieces, torch::kInt64).view({1, p});
      torch::Tensor mask = torch::ones({1, p}, torch::kBool);
      torch::Tensor v =
          net->Pool(net->States(ids, mask, [](const torch::Tensor& t) { return t; }), mask);
      v = (v / v.norm(2, 1, true).clamp_min(1e-6)).contiguous();
      out[i].pieces = features.pieces;
      out[i].embedding.assign(v.data_ptr<float>(), v.data_ptr<float>() + v.numel());
    }
    return out;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("libtorch: ", e.what_without_backtrace()));
  }
}

absl::Status TakeFineTunedTransformer(const std::string& model_dir,
                                      TransformerCheckpoint& checkpoint) {
  const std::string json_path = (std::filesystem::path(model_dir) / kModelJsonName).string();
  absl::StatusOr<std::string> text = data::ReadFileContent(json_path);
  if (!text.ok()) return text.status();
  nlohmann::json json = nlohmann::json::parse(*text, nullptr, false);
  if (json.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(json_path, ": not JSON"));
  auto pieces = json.find("pieces");
  if (pieces == json.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat(model_dir, ": the model has no transformer ('pieces' missing)"));
  }
  if (*pieces != checkpoint.pieces.ToJson()) {
    return absl::InvalidArgumentError(
        absl::StrCat(model_dir,
                     ": its transformer reads other pieces than this checkpoint's (trained from "
                     "another checkpoint)"));
  }
  const std::string weights_path = (std::filesystem::path(model_dir) / kWeightsName).string();
  absl::StatusOr<std::unique_ptr<lm::SafetensorsFile>> weights =
      lm::SafetensorsFile::Open(weights_path);
  if (!weights.ok()) return weights.status();
  // Checked in full before anything changes.
  std::vector<std::pair<EncoderTensor*, const lm::SafetensorsTensor*>> copies;
  for (auto& [name, tensor] : checkpoint.tensors) {
    const std::string key = absl::StrCat("m0.transformer.", name);
    const lm::SafetensorsTensor* t = (*weights)->Find(key);
    if (t == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(weights_path, ": tensor '", key, "' missing"));
    }
    if (t->shape != tensor.shape) {
      return absl::InvalidArgumentError(absl::StrCat(weights_path, ": tensor '", key,
                                                     "' has another shape than the checkpoint's"));
    }
    copies.emplace_back(&tensor, t);
  }
  for (auto& [dst, src] : copies) lm::SafetensorsFile::ToFloat32(*src, dst->values.data());
  return absl::OkStatus();
}

void SetTorchThreads(int threads) { torch::set_num_threads(std::max(1, threads)); }

NluModel::NluModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
NluModel::~NluModel() = default;
const NluModelInfo& NluModel::info() const { return impl_->info; }
NluModelInfo& NluModel::mutable_info() { return impl_->info; }

absl::StatusOr<std::unique_ptr<NluModel>> NluModel::Train(
    const std::vector<data::UtteranceExample>& train_in,
    const std::vector<data::UtteranceExample>& dev_in, const std::string& oos_label,
    const std::vector<std::string>& slot_types, const TrainOptions& options, TrainReport* report) {
  const auto start = std::chrono::steady_clock::now();
  if (train_in.empty()) return absl::InvalidArgumentError("no training examples");
  if (options.epochs <= 0 || options.batch_size <= 0 || options.config.ensemble <= 0 ||
      options.parallel_members <= 0) {
    return absl::InvalidArgumentError(
        "epochs, batch size, ensemble and parallel members must be positive");
  }
  if (options.init_encoder != nullptr &&
      (options.init_encoder->embedding_dim() != options.config.embedding_dim ||
       options.init_encoder->hidden_dim() != options.config.hidden_dim)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the pretrained encoder has embedding dim ", options.init_encoder->embedding_dim(),
        " and hidden dim ", options.init_encoder->hidden_dim(), ", the model ",
        options.config.embedding_dim, " and ", options.config.hidden_dim));
  }
  if (options.init_encoder != nullptr && options.word_vectors != nullptr) {
    return absl::InvalidArgumentError(
        "a pretrained encoder and pretrained word vectors cannot be combined");
  }
  if (options.student_epochs < 0) {
    return absl::InvalidArgumentError("the student's epochs must be >= 0");
  }
  if (options.transfer_copies < 0 || (options.transfer_copies > 0 && !options.distill)) {
    return absl::InvalidArgumentError("transfer copies need distillation and must be >= 0");
  }
  if (options.transfer_drop < 0 || options.transfer_drop >= 1) {
    return absl::InvalidArgumentError("the transfer copies' drop rate must be in [0, 1)");
  }
  if (options.transformer_learning_rate < 0) {
    return absl::InvalidArgumentError("the transformer's learning rate must be >= 0");
  }
  if (options.label_smoothing < 0 || options.label_smoothing >= 1) {
    return absl::InvalidArgumentError("label smoothing must be in [0, 1)");
  }
  if (options.rdrop < 0) {
    return absl::InvalidArgumentError("the R-Drop weight must be >= 0");
  }
  std::vector<data::UtteranceExample> train = train_in, dev = dev_in;
  if (dev.empty()) {
    // Hold out every tenth example of each intent (after a seeded shuffle) when it has >= 5.
    std::mt19937_64 rng(options.seed);
    std::vector<size_t> order(train.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    std::map<std::string, size_t> count, seen;
    for (const auto& e : train) ++count[e.intent];
    std::vector<data::UtteranceExample> kept;
    for (size_t i : order) {
      const std::string& intent = train[i].intent;
      if (count[intent] >= 5 && seen[intent]++ % 10 == 0) {
        dev.push_back(train[i]);
      } else {
        kept.push_back(train[i]);
      }
    }
    train = std::move(kept);
  }

  auto impl = std::make_unique<Impl>();
  std::vector<int64_t> untrained_words;  // ids of vector words not in the training texts
  NluModelInfo& info = impl->info;
  info.config = options.config;
  info.config.word_vectors_dim = options.word_vectors != nullptr ? options.word_vectors->dim() : 0;
  if (options.transformer != nullptr) {
    const TransformerCheckpoint& t = *options.transformer;
    info.config.transformer_pieces = t.tensors.at("embedding").shape[0];
    info.config.transformer_embedding_dim = t.embedding_dim;
    info.config.transformer_hidden_dim = t.hidden_dim;
    info.config.transformer_ffn_dim = t.ffn_dim;
    impl->pieces = t.pieces;
  } else {
    info.config.transformer_pieces = info.config.transformer_embedding_dim =
        info.config.transformer_hidden_dim = info.config.transformer_ffn_dim = 0;
  }
  info.intents = SortedIntents(train);
  info.oos_label = oos_label;
  if (!slot_types.empty()) {
    info.slot_types = slot_types;
  } else {
    std::set<std::string> types;
    for (const auto& e : train) {
      for (const auto& s : e.spans) types.insert(s.slot);
    }
    info.slot_types.assign(types.begin(), types.end());
  }
  impl->tag_names = TagNames(info.slot_types);
  {
    std::vector<std::string> texts;
    for (const auto& e : train) texts.push_back(e.text);
    impl->featurizer = options.init_encoder == nullptr || !options.extend_vocabulary
                           ? Featurizer::Build(texts)
                           : Featurizer::BuildWith(texts, options.init_encoder->featurizer());
    if (options.word_vectors != nullptr) {
      // Words of the training texts (they keep their trained embedding; see TrainOptions).
      const Featurizer trained = impl->featurizer;
      impl->featurizer = Featurizer::BuildWith(texts, options.word_vectors->words());
      untrained_words = WordsOnlyIn(impl->featurizer, trained);
    }
  }
  std::map<std::string, int64_t> intent_index;
  for (size_t i = 0; i < info.intents.size(); ++i) intent_index[info.intents[i]] = i;

  // Featurized training set (utterances without tokens are skipped).
  std::vector<Features> features;
  std::vector<int64_t> intent_targets;
  std::vector<std::vector<int>> tag_targets;
  std::vector<std::string> feature_texts;  // the texts of `features`
  for (const auto& e : train) {
    Features f = impl->Featurize(e.text);
    if (f.tokens.empty()) continue;
    feature_texts.push_back(e.text);
    tag_targets.push_back(TagsFromSpans(f.tokens, e.spans, info.slot_types));
    intent_targets.push_back(intent_index.at(e.intent));
    features.push_back(std::move(f));
  }
  if (features.empty()) return absl::InvalidArgumentError("no training example has a word");
  const bool has_tags = !info.slot_types.empty();
  if (options.transfer_copies > 0 && has_tags) {
    return absl::InvalidArgumentError(
        "transfer copies are for intent data only: these examples have slot types, and a copy "
        "would have no gold tags");
  }
  const size_t n = features.size();
  std::vector<size_t> lengths(n);
  for (size_t i = 0; i < n; ++i) lengths[i] = BatchLength(features[i]);
  // Weight of each example's gold-label loss (empty: 1 for all); transfer copies have 0.
  std::vector<float> gold_weight;

  try {
    // Members start one after the other from the global seed (parameter initialisation),
    // then train on up to `parallel_members` threads, each with its own generator and
    // shuffle: the weights do not depend on how many run at once.
    const int members = options.config.ensemble;
    std::vector<Net> nets;
    for (int m = 0; m < members; ++m) {
      torch::manual_seed(options.seed + m);
      nets.push_back(impl->NewNet());
      if (options.init_encoder != nullptr) {
        InitFromEncoder(*options.init_encoder, impl->featurizer, *nets.back());
      }
      if (options.word_vectors != nullptr) {
        FillWordVectors(*options.word_vectors, impl->featurizer, nets.back()->vectors->weight);
      }
      if (options.transformer != nullptr) {
        if (absl::Status s = nets.back()->transformer->LoadFrom(*options.transformer); !s.ok()) {
          return s;
        }
      }
    }
    std::mutex progress_mu;
    // `soft` (distillation, [features.size(), C]): the teachers' intent probabilities at
    // kDistillTemperature for every training example and transfer copy; undefined for an
    // ordinary member.
    const int progress_members = members + (options.distill ? 1 : 0);
    // Trains nets[index] with dropout and shuffles from `seed` on every example of `features`
    // (for the student: the transfer copies too); progress names it `shown`.
    auto train_member = [&](int index, uint64_t seed, const torch::Tensor& soft, int shown,
                            int epochs) {
      const size_t count = features.size();
      const size_t total_steps =
          EpochBatches(count, static_cast<size_t>(options.batch_size)).count() * epochs;
      Net& net = nets[index];
      net->bf16_training = options.transformer_bf16;
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
      std::mt19937_64 rng(seed);
      EpochBatches batches(count, static_cast<size_t>(options.batch_size));
      net->train();
      // The transformer's weights (pretrained) in a second group at their own rate.
      std::vector<torch::Tensor> own, pretrained;
      for (const auto& item : net->named_parameters()) {
        (item.key().rfind("transformer.", 0) == 0 ? pretrained : own).push_back(item.value());
      }
      std::vector<torch::optim::OptimizerParamGroup> groups;
      groups.emplace_back(own);
      if (!pretrained.empty()) {
        groups.emplace_back(pretrained, std::make_unique<torch::optim::AdamOptions>(
                                            options.transformer_learning_rate));
      }
      const double base_rates[] = {options.learning_rate, options.transformer_learning_rate};
      torch::optim::Adam optimizer(std::move(groups),
                                   torch::optim::AdamOptions(options.learning_rate));
      size_t step = 0;
      for (int epoch = 1; epoch <= epochs; ++epoch) {
        if (options.length_buckets) {
          batches.ShuffleInLengthBuckets(rng, lengths);
        } else {
          batches.Shuffle(rng);
        }
        double loss_sum = 0;
        size_t right = 0, seen = 0;
        for (size_t bi = 0; bi < batches.count(); ++bi) {
          const size_t lo = batches.begin(bi), hi = batches.end(bi);
          // Positions in `batches` of this step's rows: the batch, twice with R-Drop.
          std::vector<size_t> at;
          for (int copy = 0; copy < (options.rdrop > 0 ? 2 : 1); ++copy) {
            for (size_t i = lo; i < hi; ++i) at.push_back(i);
          }
          const int64_t half = static_cast<int64_t>(hi - lo);
          std::vector<const Features*> items;
          std::vector<int64_t> gold;
          int64_t max_len = 1;
          std::vector<int64_t> rows;
          for (size_t i : at) {
            items.push_back(&features[batches[i]]);
            gold.push_back(intent_targets[batches[i]]);
            rows.push_back(static_cast<int64_t>(batches[i]));
            max_len = std::max<int64_t>(max_len, features[batches[i]].tokens.size());
          }
          const Batch batch = MakeBatch(items);
          // Linear decay of the learning rate to 0.
          const double decay = 1.0 - static_cast<double>(step) / total_steps;
          for (size_t g = 0; g < optimizer.param_groups().size(); ++g) {
            static_cast<torch::optim::AdamOptions&>(optimizer.param_groups()[g].options())
                .lr(base_rates[g] * decay);
          }
          optimizer.zero_grad();
          Output out = net->Forward(batch, true, gen);
          torch::Tensor gold_t =
              torch::from_blob(gold.data(), {static_cast<int64_t>(gold.size())}, torch::kInt64)
                  .clone();
          torch::Tensor loss;
          if (gold_weight.empty()) {
            loss = F::cross_entropy(
                out.intent_logits, gold_t,
                F::CrossEntropyFuncOptions().label_smoothing(options.label_smoothing));
          } else {
            std::vector<float> w;
            for (size_t i : at) w.push_back(gold_weight[batches[i]]);
            loss = (F::cross_entropy(out.intent_logits, gold_t,
                                     F::CrossEntropyFuncOptions()
                                         .label_smoothing(options.label_smoothing)
                                         .reduction(torch::kNone)) *
                    torch::tensor(w))
                       .sum() /
                   static_cast<double>(w.size());
          }
          if (soft.defined()) {
            // Hinton et al.'s distillation loss: KL to the teachers' softened distribution,
            // scaled by T^2, mixed with the gold labels' cross-entropy.
            const double t = kDistillTemperature;
            torch::Tensor target = soft.index_select(0, torch::tensor(rows, torch::kInt64));
            torch::Tensor kl = F::kl_div(torch::log_softmax(out.intent_logits / t, 1), target,
                                         F::KLDivFuncOptions().reduction(torch::kBatchMean));
            loss = (1 - kDistillWeight) * loss + kDistillWeight * t * t * kl;
          }
          if (options.rdrop > 0) {
            torch::Tensor log_p = torch::log_softmax(out.intent_logits, 1);
            torch::Tensor a = log_p.narrow(0, 0, half), b = log_p.narrow(0, half, half);
            torch::Tensor kl =
                ((a.exp() * (a - b)).sum() + (b.exp() * (b - a)).sum()) / (2.0 * half);
            loss = loss + options.rdrop * kl;
          }
          if (has_tags) {
            // Padding: -100 (ignored) for the softmax tagger, O for the CRF (masked there).
            const bool crf = impl->info.config.crf;
            std::vector<int64_t> tags(items.size() * max_len, crf ? 0 : -100);
            int64_t tokens = 0;
            for (size_t r = 0; r < at.size(); ++r) {
              const auto& t = tag_targets[batches[at[r]]];
              for (size_t j = 0; j < t.size(); ++j) tags[r * max_len + j] = t[j];
              tokens += static_cast<int64_t>(t.size());
            }
            torch::Tensor tags_t =
                torch::from_blob(tags.data(), {static_cast<int64_t>(tags.size())}, torch::kInt64)
                    .clone();
            if (crf) {
              // Per token, like the softmax tagger's cross-entropy.
              loss = loss + net->CrfNll(out.tag_logits, tags_t.view({-1, max_len}), batch) /
                                static_cast<double>(tokens);
            } else {
              loss =
                  loss + F::cross_entropy(out.tag_logits.reshape({-1, out.tag_logits.size(2)}),
                                          tags_t, F::CrossEntropyFuncOptions().ignore_index(-100));
            }
            if (options.rdrop > 0) {
              // The same divergence between the copies' per-token tag distributions (the
              // CRF's emissions normalised per token), over real tokens only.
              std::vector<float> real(static_cast<size_t>(half * max_len), 0.0f);
              for (int64_t r = 0; r < half; ++r) {
                const size_t n = tag_targets[batches[at[r]]].size();
                for (size_t j = 0; j < n; ++j) real[r * max_len + j] = 1.0f;
              }
              torch::Tensor mask = torch::from_blob(real.data(), {half, max_len, 1}).clone();
              torch::Tensor log_q = torch::log_softmax(out.tag_logits, 2);
              torch::Tensor a = log_q.narrow(0, 0, half), b = log_q.narrow(0, half, half);
              torch::Tensor kl = (((a.exp() * (a - b)) + (b.exp() * (b - a))) * mask).sum() /
                                 (2.0 * std::max<double>(tokens / 2.0, 1.0));
              loss = loss + options.rdrop * kl;
            }
          }
          loss.backward();
          torch::nn::utils::clip_grad_norm_(net->parameters(), 5.0);
          optimizer.step();
          ++step;
          loss_sum += loss.item<double>() * half;
          right += out.intent_logits.narrow(0, 0, half)
                       .argmax(1)
                       .eq(gold_t.narrow(0, 0, half))
                       .sum()
                       .item<int64_t>();
          seen += half;
          if (options.progress) {
            TrainProgress p;
            p.member = shown;
            p.members = progress_members;
            p.epoch = epoch;
            p.epochs = epochs;
            p.step = step;
            p.steps = total_steps;
            p.loss = loss_sum / seen;
            p.intent_accuracy = static_cast<double>(right) / seen;
            p.elapsed_seconds = Seconds(start);
            std::lock_guard<std::mutex> lock(progress_mu);
            options.progress(p);
          }
        }
      }
      net->eval();
    };
    const int parallel = std::clamp(options.parallel_members, 1, members);
    if (parallel == 1) {
      for (int m = 0; m < members; ++m) {
        train_member(m, options.seed + m, torch::Tensor(), m, options.epochs);
      }
    } else {
      std::atomic<int> next{0};
      std::vector<std::string> errors(members);
      std::vector<std::thread> threads;
      for (int w = 0; w < parallel; ++w) {
        threads.emplace_back([&] {
          for (int m = next++; m < members; m = next++) {
            try {
              train_member(m, options.seed + m, torch::Tensor(), m, options.epochs);
            } catch (const c10::Error& e) {
              errors[m] = e.what_without_backtrace();
            } catch (const std::exception& e) {
              errors[m] = e.what();
            }
          }
        });
      }
      for (std::thread& t : threads) t.join();
      for (int m = 0; m < members; ++m) {
        if (!errors[m].empty()) {
          return absl::InternalError(absl::StrCat("libtorch (member ", m + 1, "): ", errors[m]));
        }
      }
    }
    impl->members = std::move(nets);
    if (options.distill) {
      // The members are the teachers: their mean probabilities at kDistillTemperature on
      // every training example (eval mode), then one student from seed + ensemble.
      // The teachers read the examples in order of length (little padding); each row goes
      // back to its example's place.
      if (options.transfer_copies > 0) {
        gold_weight.assign(n, 1.0f);
        for (TransferCopy& c : MakeTransferCopies(feature_texts, options.transfer_copies,
                                                  options.transfer_drop, options.seed + members)) {
          Features f = impl->Featurize(c.text);
          if (f.tokens.empty()) continue;
          lengths.push_back(BatchLength(f));
          features.push_back(std::move(f));
          intent_targets.push_back(intent_targets[c.source]);
          tag_targets.emplace_back();
          gold_weight.push_back(0.0f);
        }
        if (report != nullptr) report->transfer_copies = features.size() - n;
      }
      const size_t total = features.size();
      std::vector<size_t> by_length(total);
      std::iota(by_length.begin(), by_length.end(), size_t{0});
      std::stable_sort(by_length.begin(), by_length.end(),
                       [&](size_t a, size_t b) { return lengths[a] < lengths[b]; });
      torch::Tensor soft;
      {
        torch::InferenceMode guard;
        for (size_t lo = 0; lo < total; lo += 256) {
          std::vector<const Features*> items;
          std::vector<int64_t> rows;
          for (size_t i = lo; i < std::min(total, lo + 256); ++i) {
            items.push_back(&features[by_length[i]]);
            rows.push_back(static_cast<int64_t>(by_length[i]));
          }
          std::vector<torch::Tensor> logits;
          impl->Run(items, 1.0, &logits);
          torch::Tensor p;
          for (const torch::Tensor& z : logits) {
            torch::Tensor q = torch::softmax(z / kDistillTemperature, 1);
            p = p.defined() ? p + q : q;
          }
          p = p / static_cast<double>(logits.size());
          if (!soft.defined()) soft = torch::zeros({static_cast<int64_t>(total), p.size(1)});
          soft.index_copy_(0, torch::tensor(rows, torch::kInt64), p);
        }
      }
      soft = soft.clone();  // out of inference mode, for autograd
      if (options.distill_without_transformer) {
        // The student has no transformer: it answers at the cost of the recurrent network.
        info.config.transformer_pieces = info.config.transformer_embedding_dim =
            info.config.transformer_hidden_dim = info.config.transformer_ffn_dim = 0;
      }
      torch::manual_seed(options.seed + members);
      nets.assign(1, impl->NewNet());
      if (options.word_vectors != nullptr) {
        FillWordVectors(*options.word_vectors, impl->featurizer, nets.back()->vectors->weight);
      }
      if (info.config.has_transformer()) {
        if (absl::Status s = nets.back()->transformer->LoadFrom(*options.transformer); !s.ok()) {
          return s;
        }
      }
      train_member(0, options.seed + members, soft, members,
                   options.student_epochs > 0 ? options.student_epochs : options.epochs);
      impl->members = std::move(nets);
      impl->info.config.ensemble = 1;
    }
    impl->AverageTransitions();
    for (Net& net : impl->members) ShareUnknownRow(net->word->weight, untrained_words);
    // From here on (calibration included) the model runs as it will after loading.
    info.config.transformer_bf16_inference =
        options.transformer_bf16_inference && info.config.has_transformer();
    for (Net& net : impl->members) net->PrepareInference(info.config.transformer_bf16_inference);

    // Calibration and the out-of-scope threshold on dev (nothing there depends on the
    // order of the examples: they go in order of length, for little padding).
    std::vector<std::pair<Features, const data::UtteranceExample*>> usable;
    for (const auto& e : dev) {
      Features f = impl->Featurize(e.text);
      if (f.tokens.empty() || intent_index.count(e.intent) == 0) continue;
      usable.emplace_back(std::move(f), &e);
    }
    std::stable_sort(usable.begin(), usable.end(), [](const auto& a, const auto& b) {
      return BatchLength(a.first) < BatchLength(b.first);
    });
    std::vector<Features> dev_features;
    std::vector<const data::UtteranceExample*> dev_examples;
    std::vector<int64_t> dev_gold;
    for (auto& [f, e] : usable) {
      dev_features.push_back(std::move(f));
      dev_examples.push_back(e);
      dev_gold.push_back(intent_index.at(e->intent));
    }
    if (!dev_features.empty()) {
      std::vector<torch::Tensor> logits;  // per member, [N, C]
      std::vector<Combined> combined;
      for (size_t lo = 0; lo < dev_features.size(); lo += 256) {
        std::vector<const Features*> items;
        for (size_t i = lo; i < std::min(dev_features.size(), lo + 256); ++i) {
          items.push_back(&dev_features[i]);
        }
        std::vector<torch::Tensor> part;
        std::vector<Combined> c = impl->Run(items, 1.0, &part);
        for (size_t m = 0; m < part.size(); ++m) {
          if (logits.size() <= m) {
            logits.push_back(part[m]);
          } else {
            logits[m] = torch::cat({logits[m], part[m]}, 0);
          }
        }
        for (auto& x : c) combined.push_back(std::move(x));
      }
      torch::Tensor gold = torch::tensor(dev_gold, torch::kInt64);
      double best_t = 1.0, best_nll = Nll(logits, gold, 1.0);
      if (report != nullptr) report->dev_nll_before = best_nll;
      for (double t = 0.25; t <= 5.0; t += 0.05) {
        const double nll = Nll(logits, gold, t);
        if (nll < best_nll) {
          best_nll = nll;
          best_t = t;
        }
      }
      info.temperature = best_t;
      if (report != nullptr) report->dev_nll_after = best_nll;

      // Recombine at the fitted temperature.
      torch::Tensor probs;
      for (const torch::Tensor& z : logits) {
        torch::Tensor q = torch::softmax(z / best_t, 1);
        probs = probs.defined() ? probs + q : q;
      }
      probs = (probs / static_cast<double>(logits.size())).contiguous();
      const int64_t c = probs.size(1);
      for (size_t i = 0; i < combined.size(); ++i) {
        combined[i].intent_probs.assign(probs.data_ptr<float>() + i * c,
                                        probs.data_ptr<float>() + (i + 1) * c);
      }
      // Decisions without a threshold, then the threshold.
      std::vector<NluPrediction> predictions;
      info.oos_threshold = 0;
      for (size_t i = 0; i < combined.size(); ++i) {
        predictions.push_back(
            impl->Decide(dev_examples[i]->text, dev_features[i], combined[i], false));
      }
      const bool has_oos_examples =
          !oos_label.empty() && std::any_of(dev_examples.begin(), dev_examples.end(),
                                            [&](const auto* e) { return e->intent == oos_label; });
      if (has_oos_examples) {
        std::vector<float> candidates = {0.0f};
        for (const auto& p : predictions) candidates.push_back(p.confidence + 1e-6f);
        std::sort(candidates.begin(), candidates.end());
        double best_score = -1, best_thr = 0;
        bool best_reaches = false;
        size_t in_scope = 0, oos = 0;
        for (const auto* e : dev_examples) (e->intent == oos_label ? oos : in_scope)++;
        for (size_t ci = 0; ci < candidates.size();
             ci += std::max<size_t>(1, candidates.size() / 2000)) {
          const float thr = candidates[ci];
          size_t in_right = 0, oos_found = 0;
          for (size_t i = 0; i < predictions.size(); ++i) {
            const auto& p = predictions[i];
            const bool says_oos = p.intent.empty() || p.confidence < thr;
            if (dev_examples[i]->intent == oos_label) {
              oos_found += says_oos;
            } else {
              in_right += !says_oos && p.intent == dev_examples[i]->intent;
            }
          }
          const double in_acc = in_scope ? static_cast<double>(in_right) / in_scope : 0;
          const double recall = static_cast<double>(oos_found) / oos;
          const bool reaches = recall >= options.oos_recall_target;
          const double score = reaches ? in_acc : in_acc + recall - 10;
          if ((reaches && !best_reaches) || (reaches == best_reaches && score > best_score)) {
            best_score = score;
            best_thr = thr;
            best_reaches = reaches;
          }
        }
        info.oos_threshold = best_thr;
      } else {
        std::vector<float> right;
        for (size_t i = 0; i < predictions.size(); ++i) {
          if (predictions[i].intent == dev_examples[i]->intent) {
            right.push_back(predictions[i].confidence);
          }
        }
        if (!right.empty()) {
          std::sort(right.begin(), right.end());
          info.oos_threshold =
              right[static_cast<size_t>(options.closed_set_reject * (right.size() - 1))];
        }
      }
      if (report != nullptr) {
        metrics::UtteranceScorer scorer(
            oos_label, has_tags ? metrics::SlotMetric::kSlots : metrics::SlotMetric::kNone);
        const bool threshold_applies = has_oos_examples;
        for (size_t i = 0; i < predictions.size(); ++i) {
          metrics::UtterancePrediction p;
          p.intent = predictions[i].intent;
          if (threshold_applies && predictions[i].confidence < info.oos_threshold) p.intent.clear();
          p.confidence = predictions[i].confidence;
          p.slots = predictions[i].slots;
          scorer.Add(*dev_examples[i], p);
        }
        report->dev_metrics = scorer.Result();
      }
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("libtorch: ", e.what_without_backtrace()));
  }
  if (report != nullptr) report->seconds = Seconds(start);
  return std::unique_ptr<NluModel>(new NluModel(std::move(impl)));
}

absl::StatusOr<NluPrediction> NluModel::Predict(absl::string_view text, bool use_threshold) const {
  Features features = impl_->Featurize(text);
  if (features.tokens.empty()) return NluPrediction{};
  try {
    std::vector<Combined> c = impl_->Run({&features}, impl_->info.temperature);
    return impl_->Decide(text, features, std::move(c[0]), use_threshold);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("libtorch: ", e.what_without_backtrace()));
  }
}

absl::StatusOr<std::vector<NluPrediction>> NluModel::PredictBatch(
    const std::vector<std::string>& texts, bool use_threshold) const {
  std::vector<NluPrediction> out(texts.size());
  std::vector<Features> features;
  std::vector<size_t> rows;  // the texts with tokens
  features.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    Features f = impl_->Featurize(texts[i]);
    if (f.tokens.empty()) continue;
    features.push_back(std::move(f));
    rows.push_back(i);
  }
  if (features.empty()) return out;
  std::vector<const Features*> items;
  for (const Features& f : features) items.push_back(&f);
  try {
    std::vector<Combined> c = impl_->Run(items, impl_->info.temperature);
    for (size_t r = 0; r < rows.size(); ++r) {
      out[rows[r]] = impl_->Decide(texts[rows[r]], features[r], std::move(c[r]), use_threshold);
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("libtorch: ", e.what_without_backtrace()));
  }
  return out;
}

bool NluModel::PredictsOffLibtorch() const {
  return std::all_of(impl_->members.begin(), impl_->members.end(),
                     [](const Net& net) { return net->inference_net.ready(); });
}

absl::Status NluModel::Save(const std::string& dir) const {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  nlohmann::json json = ToJson(impl_->info);
  json["vocabulary"] = impl_->featurizer.ToJson();
  if (impl_->info.config.has_transformer()) json["pieces"] = impl_->pieces.ToJson();
  {
    const std::string path = (std::filesystem::path(dir) / kModelJsonName).string();
    std::ofstream out(path, std::ios::trunc);
    out << json.dump(1) << "\n";
    out.close();
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  }
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (size_t m = 0; m < impl_->members.size(); ++m) {
    for (const auto& item : impl_->members[m]->named_parameters()) {
      tensors.emplace_back(absl::StrCat("m", m, ".", item.key()), item.value());
    }
  }
  return WriteSafetensors((std::filesystem::path(dir) / kWeightsName).string(), tensors);
}

absl::StatusOr<std::unique_ptr<NluModel>> NluModel::Load(const std::string& dir) {
  const std::string json_path = (std::filesystem::path(dir) / kModelJsonName).string();
  absl::StatusOr<std::string> text = data::ReadFileContent(json_path);
  if (!text.ok()) return text.status();
  nlohmann::json json = nlohmann::json::parse(*text, nullptr, false);
  if (json.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(json_path, ": not JSON"));
  auto impl = std::make_unique<Impl>();
  absl::StatusOr<NluModelInfo> info = NluModelInfoFromJson(json);
  if (!info.ok())
    return absl::InvalidArgumentError(absl::StrCat(json_path, ": ", info.status().message()));
  impl->info = *std::move(info);
  auto vocabulary = json.find("vocabulary");
  if (vocabulary == json.end()) {
    return absl::InvalidArgumentError(absl::StrCat(json_path, ": 'vocabulary' missing"));
  }
  absl::StatusOr<Featurizer> featurizer = Featurizer::FromJson(*vocabulary);
  if (!featurizer.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(json_path, ": ", featurizer.status().message()));
  }
  impl->featurizer = *std::move(featurizer);
  impl->tag_names = TagNames(impl->info.slot_types);
  if (impl->info.config.has_transformer()) {
    auto pieces = json.find("pieces");
    if (pieces == json.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(json_path, ": 'pieces' missing (the config has a transformer)"));
    }
    absl::StatusOr<SentencePieces> p = SentencePieces::FromJson(*pieces);
    if (!p.ok())
      return absl::InvalidArgumentError(absl::StrCat(json_path, ": ", p.status().message()));
    if (p->size() > impl->info.config.transformer_pieces) {
      return absl::InvalidArgumentError(
          absl::StrCat(json_path, ": more pieces than the transformer's embedding has rows"));
    }
    impl->pieces = *std::move(p);
  }

  const std::string weights_path = (std::filesystem::path(dir) / kWeightsName).string();
  absl::StatusOr<std::unique_ptr<lm::SafetensorsFile>> weights =
      lm::SafetensorsFile::Open(weights_path);
  if (!weights.ok()) return weights.status();
  try {
    torch::NoGradGuard no_grad;
    size_t used = 0;
    for (int m = 0; m < impl->info.config.ensemble; ++m) {
      Net net = impl->NewNet();
      for (auto& item : net->named_parameters()) {
        const std::string name = absl::StrCat("m", m, ".", item.key());
        const lm::SafetensorsTensor* t = (*weights)->Find(name);
        if (t == nullptr) {
          return absl::InvalidArgumentError(
              absl::StrCat(weights_path, ": tensor '", name, "' missing"));
        }
        if (t->shape != item.value().sizes().vec()) {
          return absl::InvalidArgumentError(absl::StrCat(
              weights_path, ": tensor '", name, "' has the wrong shape for nlu_model.json"));
        }
        torch::Tensor dst = item.value();
        lm::SafetensorsFile::ToFloat32(*t, dst.data_ptr<float>());
        ++used;
      }
      net->eval();
      net->PrepareInference(impl->info.config.transformer_bf16_inference);
      impl->members.push_back(net);
    }
    impl->AverageTransitions();
    if (used != (*weights)->tensors().size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(weights_path, ": holds tensors that nlu_model.json does not describe"));
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("libtorch: ", e.what_without_backtrace()));
  }
  return std::unique_ptr<NluModel>(new NluModel(std::move(impl)));
}

std::map<std::string, std::vector<float>> NluModel::Weights() const {
  std::map<std::string, std::vector<float>> out;
  for (size_t m = 0; m < impl_->members.size(); ++m) {
    for (const auto& item : impl_->members[m]->named_parameters()) {
      torch::Tensor t = item.value().detach().contiguous();
      out[absl::StrCat("m", m, ".", item.key())].assign(t.data_ptr<float>(),
                                                        t.data_ptr<float>() + t.numel());
    }
  }
  return out;
}

}  // namespace helpline::nlu::model
