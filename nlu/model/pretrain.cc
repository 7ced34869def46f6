// Forward + backward language-model pretraining of the utterance encoder (pretrain.h).
#include "nlu/model/pretrain.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "lm/model/safetensors.h"
#include "nlu/data/readers.h"
#include "nlu/model/torch_batch.h"
#include "nlu/model/torch_safetensors.h"

namespace helpline::nlu::model {
namespace {

namespace F = torch::nn::functional;

constexpr char kEncoderFormat[] = "helpline-nlu-encoder-1";

// The encoder of the utterance model (same parameter names: word, chars, shape, gru) with
// the language-model output layer (not saved).
struct LmNetImpl : torch::nn::Module {
  LmNetImpl(int64_t embedding_dim, int64_t hidden_dim, int64_t num_words, int64_t num_chars,
            double dropout_p)
      : dropout(dropout_p),
        hidden(hidden_dim),
        word(register_module(
            "word", torch::nn::Embedding(
                        torch::nn::EmbeddingOptions(num_words, embedding_dim).padding_idx(0)))),
        chars(register_module(
            "chars", torch::nn::EmbeddingBag(torch::nn::EmbeddingBagOptions(
                                                 std::max<int64_t>(num_chars, 1), embedding_dim)
                                                 .mode(torch::kMean)))),
        shape(register_module("shape", torch::nn::Embedding(kNumShapes, embedding_dim))),
        gru(register_module("gru",
                            torch::nn::GRU(torch::nn::GRUOptions(embedding_dim, hidden_dim)
                                               .bidirectional(true)
                                               .batch_first(true)))),
        // Output words: the vocabulary, then <s> (num_words) and </s> (num_words + 1).
        out_weight(register_parameter("out_weight", torch::zeros({num_words + 2, hidden_dim}))),
        out_bias(register_parameter("out_bias", torch::zeros({num_words + 2}))) {
    torch::NoGradGuard no_grad;
    for (torch::Tensor w : {word->weight, chars->weight, shape->weight}) w.uniform_(-0.1, 0.1);
    word->weight[0].zero_();
    out_weight.normal_(0, 1.0 / std::sqrt(static_cast<double>(hidden_dim)));
  }

  // Token states [B, T, 2H] (forward direction first).
  torch::Tensor States(const Batch& b) {
    const int64_t batch = b.words.size(0), len = b.words.size(1);
    torch::Tensor x = word(b.words) +
                      chars(b.char_ids, b.char_offsets).view({batch, len, -1}) + shape(b.shapes);
    x = F::dropout(x, F::DropoutFuncOptions().p(dropout).training(is_training()));
    if (batch == 1) return std::get<0>(gru(x));
    auto packed = torch::nn::utils::rnn::pack_padded_sequence(x, b.lengths, true, false);
    auto out = gru->forward_with_packed_input(packed);
    return std::get<0>(torch::nn::utils::rnn::pad_packed_sequence(std::get<0>(out), true, 0.0, len));
  }

  double dropout;
  int64_t hidden;
  torch::nn::Embedding word;
  torch::nn::EmbeddingBag chars;
  torch::nn::Embedding shape;
  torch::nn::GRU gru;
  torch::Tensor out_weight, out_bias;
};
TORCH_MODULE(LmNet);

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Targets of one batch: flat positions into [B * T] and output word ids, for the forward
// direction (next word) and the backward one (previous word). Unknown words are skipped.
struct Targets {
  std::vector<int64_t> fwd_pos, fwd_word, bwd_pos, bwd_word;
};

Targets MakeTargets(const std::vector<const Features*>& items, int64_t len, int64_t num_words) {
  Targets t;
  const int64_t bos = num_words, eos = num_words + 1;
  for (size_t i = 0; i < items.size(); ++i) {
    const std::vector<int64_t>& w = items[i]->word_ids;
    const int64_t n = static_cast<int64_t>(w.size());
    for (int64_t j = 0; j < n; ++j) {
      const int64_t pos = static_cast<int64_t>(i) * len + j;
      const int64_t next = j + 1 < n ? w[j + 1] : eos;
      const int64_t prev = j > 0 ? w[j - 1] : bos;
      if (next != Featurizer::kUnknown) {
        t.fwd_pos.push_back(pos);
        t.fwd_word.push_back(next);
      }
      if (prev != Featurizer::kUnknown) {
        t.bwd_pos.push_back(pos);
        t.bwd_word.push_back(prev);
      }
    }
  }
  return t;
}

torch::Tensor Longs(std::vector<int64_t>& v) {
  return torch::from_blob(v.data(), {static_cast<int64_t>(v.size())}, torch::kInt64).clone();
}

EncoderTensor ToEncoderTensor(const torch::Tensor& tensor) {
  torch::Tensor t = tensor.detach().to(torch::kFloat32).contiguous();
  EncoderTensor out;
  out.shape = t.sizes().vec();
  out.values.assign(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
  return out;
}

absl::Status CheckOptions(const PretrainOptions& o) {
  if (o.embedding_dim <= 0 || o.hidden_dim <= 0 || o.epochs <= 0 || o.batch_size <= 0 ||
      o.negatives < 0 || o.min_count < 1 || o.max_words == 0 || o.learning_rate <= 0 ||
      o.dropout < 0 || o.dropout >= 1 || o.max_seconds < 0) {
    return absl::InvalidArgumentError(
        "pretraining: dims, epochs, batch size, max words, learning rate and min count must be "
        "positive, negatives >= 0, dropout in [0, 1)");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<PretrainedEncoder>> PretrainedEncoder::Train(
    const std::vector<std::string>& texts, const PretrainOptions& options,
    PretrainReport* report) {
  const auto start = std::chrono::steady_clock::now();
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  std::vector<int64_t> counts;
  std::unique_ptr<PretrainedEncoder> encoder(new PretrainedEncoder());
  encoder->featurizer_ = Featurizer::BuildCapped(texts, options.min_count, options.max_words,
                                                 options.max_char_ngrams, &counts);
  encoder->embedding_dim_ = options.embedding_dim;
  encoder->hidden_dim_ = options.hidden_dim;
  const Featurizer& featurizer = encoder->featurizer_;
  std::vector<Features> features;
  features.reserve(texts.size());
  size_t tokens = 0;
  for (const std::string& text : texts) {
    Features f = featurizer.Featurize(text);
    if (f.tokens.empty()) continue;
    f.tokens.clear();  // only the ids are needed; keeps the corpus small in memory
    f.tokens.resize(f.word_ids.size());
    f.sentence_ngrams.clear();
    tokens += f.word_ids.size();
    features.push_back(std::move(f));
  }
  if (features.empty()) return absl::InvalidArgumentError("pretraining: no text has a word");
  const int64_t num_words = featurizer.num_words();
  PretrainReport local;
  PretrainReport& r = report != nullptr ? *report : local;
  r.sentences = features.size();
  r.tokens = tokens;
  r.words = static_cast<size_t>(num_words);
  r.char_ngrams = static_cast<size_t>(featurizer.num_char_ngrams());

  try {
    torch::manual_seed(options.seed);
    std::mt19937_64 rng(options.seed);
    LmNet net(options.embedding_dim, options.hidden_dim, num_words, featurizer.num_char_ngrams(),
              options.dropout);
    net->train();
    // Sampling distribution of the negatives: unigram^0.75 over the output words (<s>, </s>
    // once per sentence).
    std::vector<float> weights(num_words + 2, 0.0f);
    for (int64_t i = 2; i < num_words; ++i) weights[i] = std::pow(static_cast<float>(counts[i]), 0.75f);
    weights[num_words] = weights[num_words + 1] =
        std::pow(static_cast<float>(features.size()), 0.75f);
    const torch::Tensor sampling = torch::tensor(weights);
    torch::optim::Adam optimizer(net->parameters(),
                                 torch::optim::AdamOptions(options.learning_rate));
    const size_t n = features.size();
    EpochBatches batches(n, static_cast<size_t>(options.batch_size));
    const size_t total_steps = batches.count() * options.epochs;
    size_t step = 0;
    for (int epoch = 1; epoch <= options.epochs; ++epoch) {
      batches.Shuffle(rng);
      double loss_sum = 0;
      size_t right = 0, seen = 0;
      for (size_t bi = 0; bi < batches.count(); ++bi) {
        std::vector<const Features*> items;
        for (size_t i = batches.begin(bi); i < batches.end(bi); ++i) {
          items.push_back(&features[batches[i]]);
        }
        const Batch batch = MakeBatch(items);
        const int64_t len = batch.words.size(1);
        Targets t = MakeTargets(items, len, num_words);
        if (t.fwd_pos.empty() && t.bwd_pos.empty()) continue;
        double done = static_cast<double>(step) / total_steps;
        if (options.max_seconds > 0) {
          done = std::max(done, Seconds(start) / options.max_seconds);
          if (done >= 1.0) {
            r.stopped_by_time = true;
            break;
          }
        }
        SetLearningRate(optimizer, options.learning_rate * (1.0 - done));
        optimizer.zero_grad();
        torch::Tensor states = net->States(batch).reshape({-1, 2 * options.hidden_dim});
        torch::Tensor fwd = states.slice(1, 0, options.hidden_dim).index_select(0, Longs(t.fwd_pos));
        torch::Tensor bwd =
            states.slice(1, options.hidden_dim, 2 * options.hidden_dim).index_select(0, Longs(t.bwd_pos));
        torch::Tensor h = torch::cat({fwd, bwd}, 0);
        h = F::dropout(h, F::DropoutFuncOptions().p(options.dropout).training(true));
        torch::Tensor gold = torch::cat({Longs(t.fwd_word), Longs(t.bwd_word)}, 0);
        // Candidates: the targets and the sampled negatives, each once, sorted.
        torch::Tensor candidates = gold;
        if (options.negatives > 0) {
          candidates = torch::cat({gold, torch::multinomial(sampling, options.negatives, true)});
        }
        candidates = std::get<0>(torch::_unique(candidates, /*sorted=*/true));
        torch::Tensor target = torch::searchsorted(candidates, gold);
        torch::Tensor logits = torch::matmul(h, net->out_weight.index_select(0, candidates).t()) +
                               net->out_bias.index_select(0, candidates);
        torch::Tensor loss = F::cross_entropy(logits, target);
        loss.backward();
        torch::nn::utils::clip_grad_norm_(net->parameters(), 5.0);
        optimizer.step();
        ++step;
        const size_t count = static_cast<size_t>(gold.size(0));
        loss_sum += loss.item<double>() * count;
        right += logits.argmax(1).eq(target).sum().item<int64_t>();
        seen += count;
        if (options.progress) {
          TrainProgress p;
          p.epoch = epoch;
          p.epochs = options.epochs;
          p.step = step;
          p.steps = total_steps;
          p.loss = loss_sum / seen;
          p.intent_accuracy = static_cast<double>(right) / seen;
          p.elapsed_seconds = Seconds(start);
          options.progress(p);
        }
      }
      const double mean = seen > 0 ? loss_sum / seen : 0;
      if (epoch == 1) r.first_epoch_loss = mean;
      r.final_epoch_loss = mean;
      if (r.stopped_by_time) break;
    }
    r.steps = step;
    for (const auto& item : net->named_parameters()) {
      const std::string& name = item.key();
      if (name == "out_weight" || name == "out_bias") continue;
      encoder->tensors_[name] = ToEncoderTensor(item.value());
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("libtorch: ", e.what_without_backtrace()));
  }
  r.seconds = Seconds(start);
  encoder->training_ = {{"sentences", r.sentences},
                        {"tokens", r.tokens},
                        {"epochs", options.epochs},
                        {"batch_size", options.batch_size},
                        {"learning_rate", options.learning_rate},
                        {"negatives", options.negatives},
                        {"dropout", options.dropout},
                        {"seed", options.seed},
                        {"seconds", r.seconds},
                        {"steps", r.steps},
                        {"max_seconds", options.max_seconds},
                        {"stopped_by_time", r.stopped_by_time},
                        {"first_epoch_loss", r.first_epoch_loss},
                        {"final_epoch_loss", r.final_epoch_loss}};
  return encoder;
}

absl::Status PretrainedEncoder::Save(const std::string& dir) const {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  const nlohmann::json json = {{"format", kEncoderFormat},
                               {"embedding_dim", embedding_dim_},
                               {"hidden_dim", hidden_dim_},
                               {"training", training_},
                               {"vocabulary", featurizer_.ToJson()}};
  const std::string path = (std::filesystem::path(dir) / kEncoderJsonName).string();
  std::ofstream out(path, std::ios::trunc);
  out << json.dump(1) << "\n";
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& [name, t] : tensors_) {
    tensors.emplace_back(
        name, torch::from_blob(const_cast<float*>(t.values.data()), t.shape, torch::kFloat32));
  }
  return WriteSafetensors((std::filesystem::path(dir) / kEncoderWeightsName).string(), tensors);
}

absl::StatusOr<std::unique_ptr<PretrainedEncoder>> PretrainedEncoder::Load(const std::string& dir) {
  const std::string json_path = (std::filesystem::path(dir) / kEncoderJsonName).string();
  absl::StatusOr<std::string> text = data::ReadFileContent(json_path);
  if (!text.ok()) return text.status();
  const nlohmann::json json = nlohmann::json::parse(*text, nullptr, false);
  auto bad = [&json_path](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(json_path, ": ", what));
  };
  if (json.is_discarded() || !json.is_object()) return bad("not a JSON object");
  if (json.value("format", "") != kEncoderFormat) {
    return bad(absl::StrCat("'format' is not ", kEncoderFormat));
  }
  std::unique_ptr<PretrainedEncoder> encoder(new PretrainedEncoder());
  for (auto [key, field] : {std::pair{"embedding_dim", &encoder->embedding_dim_},
                            std::pair{"hidden_dim", &encoder->hidden_dim_}}) {
    auto it = json.find(key);
    if (it == json.end() || !it->is_number_integer() || it->get<int64_t>() <= 0) {
      return bad(absl::StrCat("'", key, "' missing or not a positive integer"));
    }
    *field = it->get<int64_t>();
  }
  auto vocabulary = json.find("vocabulary");
  if (vocabulary == json.end()) return bad("'vocabulary' missing");
  absl::StatusOr<Featurizer> featurizer = Featurizer::FromJson(*vocabulary);
  if (!featurizer.ok()) return bad(featurizer.status().message());
  encoder->featurizer_ = *std::move(featurizer);
  encoder->training_ = json.value("training", nlohmann::json::object());

  const std::string weights_path = (std::filesystem::path(dir) / kEncoderWeightsName).string();
  absl::StatusOr<std::unique_ptr<lm::SafetensorsFile>> weights =
      lm::SafetensorsFile::Open(weights_path);
  if (!weights.ok()) return weights.status();
  // The expected shapes come from a fresh network of the same dims and vocabulary.
  try {
    LmNet reference(encoder->embedding_dim_, encoder->hidden_dim_, encoder->featurizer_.num_words(),
                    encoder->featurizer_.num_char_ngrams(), 0.0);
    for (const auto& item : reference->named_parameters()) {
      const std::string& name = item.key();
      if (name == "out_weight" || name == "out_bias") continue;
      const lm::SafetensorsTensor* t = (*weights)->Find(name);
      if (t == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(weights_path, ": tensor '", name, "' missing"));
      }
      if (t->shape != item.value().sizes().vec()) {
        return absl::InvalidArgumentError(
            absl::StrCat(weights_path, ": tensor '", name, "' has the wrong shape for encoder.json"));
      }
      EncoderTensor& out = encoder->tensors_[name];
      out.shape = t->shape;
      out.values.resize(item.value().numel());
      lm::SafetensorsFile::ToFloat32(*t, out.values.data());
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("libtorch: ", e.what_without_backtrace()));
  }
  return encoder;
}

}  // namespace helpline::nlu::model
