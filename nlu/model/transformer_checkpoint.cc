#include "nlu/model/transformer_checkpoint.h"

#include <filesystem>
#include <functional>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "nlu/data/readers.h"

namespace helpline::nlu::model {
namespace {

struct Source {
  std::vector<int64_t> shape;
  size_t offset = 0;  // in floats, into the concatenated shards
};

// Where each parameter comes from in the graph model: the weight's name there, and whether
// its [.., in, out] kernel becomes a libtorch [out, in] matrix.
struct Mapping {
  std::string ours;
  std::string theirs;
  bool kernel = false;
};

std::vector<Mapping> Mappings() {
  const std::string enc = "module_apply_default/Encoder_en/KonaTransformer/Encode/";
  const std::string stack = enc + "TransformerStack/";
  const std::string var = "module/Encoder_en/KonaTransformer/Encode/";
  std::vector<Mapping> m = {
      {"embedding", "module/Embeddings_en", false},
      {"pool.weight", "module/Encoder_en/hidden_layers/tanh_layer_0/weights", true},
      {"pool.bias", "module/Encoder_en/hidden_layers/tanh_layer_0/bias", false},
      {"l0.residual.weight", enc + "Layer_0/TransformerLayer/dense/kernel/ConcatPartitions/concat",
       true},
      {"l0.residual.bias", enc + "Layer_0/TransformerLayer/dense/bias/ConcatPartitions/concat",
       false},
  };
  for (int l = 0; l < 2; ++l) {
    const std::string p = absl::StrCat("l", l, ".");
    const std::string layer = absl::StrCat("Layer_", l, "/TransformerLayer/");
    const std::string concat = "/ConcatPartitions/concat";
    const std::string norm = "layer_prepostprocess/layer_norm/layer_norm_";
    m.push_back({p + "norm1.weight", enc + layer + norm + "scale" + concat});
    m.push_back({p + "norm1.bias", enc + layer + norm + "bias" + concat});
    m.push_back({p + "norm2.weight", enc + layer + "FFN/" + norm + "scale" + concat});
    m.push_back({p + "norm2.bias", enc + layer + "FFN/" + norm + "bias" + concat});
    m.push_back({p + "qkv.weight",
                 var + layer + "MultiheadAttention/qkv_transform_single/kernel/part_0", true});
    m.push_back(
        {p + "qkv.bias", enc + layer + "MultiheadAttention/qkv_transform_single/bias" + concat});
    m.push_back({p + "out.weight",
                 var + layer + "MultiheadAttention/output_transform_single/kernel/part_0", true});
    m.push_back(
        {p + "out.bias", enc + layer + "MultiheadAttention/output_transform_single/bias" + concat});
    m.push_back({p + "ffn1.weight", stack + layer + "FFN/conv1/Tensordot/Reshape_1", true});
    m.push_back({p + "ffn1.bias", enc + layer + "FFN/conv1/bias" + concat});
    m.push_back({p + "ffn2.weight", stack + layer + "FFN/conv2/Tensordot/Reshape_1", true});
    m.push_back({p + "ffn2.bias", enc + layer + "FFN/conv2/bias" + concat});
  }
  return m;
}

}  // namespace

absl::StatusOr<TransformerCheckpoint> TransformerCheckpoint::Read(const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string model_path = (fs::path(dir) / "model.json").string();
  const std::string vocab_path = (fs::path(dir) / "vocab.json").string();
  TransformerCheckpoint out;
  {
    absl::StatusOr<std::string> text = data::ReadFileContent(vocab_path);
    if (!text.ok()) return text.status();
    nlohmann::json json = nlohmann::json::parse(*text, nullptr, false);
    if (json.is_discarded()) {
      return absl::InvalidArgumentError(absl::StrCat(vocab_path, ": not JSON"));
    }
    absl::StatusOr<SentencePieces> pieces = SentencePieces::FromJson(json);
    if (!pieces.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(vocab_path, ": ", pieces.status().message()));
    }
    out.pieces = *std::move(pieces);
  }
  absl::StatusOr<std::string> text = data::ReadFileContent(model_path);
  if (!text.ok()) return text.status();
  nlohmann::json json = nlohmann::json::parse(*text, nullptr, false);
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(model_path, ": ", what));
  };
  if (json.is_discarded()) return bad("not JSON");
  if (!json.is_object() || !json.contains("weightsManifest") ||
      !json["weightsManifest"].is_array()) {
    return bad("'weightsManifest' missing");
  }
  // The shards hold the weights back to back, in manifest order.
  std::map<std::string, Source> sources;
  std::string data;
  size_t floats = 0;
  for (const nlohmann::json& group : json["weightsManifest"]) {
    if (!group.is_object() || !group.contains("paths") || !group.contains("weights") ||
        !group["paths"].is_array() || !group["weights"].is_array()) {
      return bad("a weights group lacks 'paths' or 'weights'");
    }
    for (const nlohmann::json& path : group["paths"]) {
      if (!path.is_string()) return bad("a shard path is not a string");
      const std::string shard = (fs::path(dir) / path.get<std::string>()).string();
      absl::StatusOr<std::string> bytes = data::ReadFileContent(shard);
      if (!bytes.ok()) return bytes.status();
      data += *bytes;
    }
    for (const nlohmann::json& w : group["weights"]) {
      if (!w.is_object() || !w.contains("name") || !w["name"].is_string() || !w.contains("shape") ||
          !w["shape"].is_array()) {
        return bad("a weight lacks 'name' or 'shape'");
      }
      const std::string name = w["name"].get<std::string>();
      const std::string dtype = w.value("dtype", "float32");
      if (dtype != "float32" && dtype != "int32") {
        return bad(absl::StrCat("weight '", name, "' has dtype ", dtype));
      }
      if (w.contains("quantization")) return bad(absl::StrCat("weight '", name, "' is quantized"));
      Source s;
      s.offset = floats;
      for (const nlohmann::json& d : w["shape"]) {
        if (!d.is_number_integer() || d.get<int64_t>() < 0) {
          return bad(absl::StrCat("weight '", name, "' has a bad shape"));
        }
        s.shape.push_back(d.get<int64_t>());
      }
      floats += std::accumulate(s.shape.begin(), s.shape.end(), size_t{1}, std::multiplies<>());
      if (dtype == "float32") sources[name] = std::move(s);
    }
  }
  if (data.size() != floats * sizeof(float)) {
    return bad(absl::StrCat("the shards hold ", data.size(), " bytes, the manifest describes ",
                            floats * sizeof(float)));
  }
  const float* values = reinterpret_cast<const float*>(data.data());
  for (const Mapping& m : Mappings()) {
    auto it = sources.find(m.theirs);
    if (it == sources.end()) return bad(absl::StrCat("weight '", m.theirs, "' missing"));
    EncoderTensor t;
    const Source& s = it->second;
    const size_t n =
        std::accumulate(s.shape.begin(), s.shape.end(), size_t{1}, std::multiplies<>());
    if (m.kernel) {
      // [1, 1, in, out] or [in, out] -> [out, in].
      if (s.shape.size() < 2) return bad(absl::StrCat("weight '", m.theirs, "' is not a matrix"));
      const int64_t in = s.shape[s.shape.size() - 2], o = s.shape.back();
      if (static_cast<size_t>(in * o) != n) {
        return bad(absl::StrCat("weight '", m.theirs, "' is not a matrix"));
      }
      t.shape = {o, in};
      t.values.resize(n);
      for (int64_t i = 0; i < in; ++i) {
        for (int64_t j = 0; j < o; ++j) t.values[j * in + i] = values[s.offset + i * o + j];
      }
    } else {
      t.shape = s.shape;
      t.values.assign(values + s.offset, values + s.offset + n);
    }
    out.tensors[m.ours] = std::move(t);
  }
  // Shapes the network needs (E, H from the embedding and layer 1).
  const auto& emb = out.tensors["embedding"].shape;
  if (emb.size() != 2 || emb[0] < out.pieces.size()) {
    return bad("the piece embedding does not cover vocab.json");
  }
  out.embedding_dim = emb[1];
  out.hidden_dim = out.tensors["l1.out.weight"].shape[0];
  const int64_t e = out.embedding_dim, h = out.hidden_dim;
  const std::map<std::string, std::vector<int64_t>> expected = {
      {"pool.weight", {h, h}},       {"pool.bias", {h}},       {"l0.residual.weight", {h, e}},
      {"l0.residual.bias", {h}},     {"l0.norm1.weight", {e}}, {"l0.norm1.bias", {e}},
      {"l0.qkv.weight", {3 * e, e}}, {"l0.qkv.bias", {3 * e}}, {"l0.out.weight", {h, e}},
      {"l0.out.bias", {h}},          {"l1.norm1.weight", {h}}, {"l1.norm1.bias", {h}},
      {"l1.qkv.weight", {3 * h, h}}, {"l1.qkv.bias", {3 * h}}, {"l1.out.weight", {h, h}},
      {"l1.out.bias", {h}},
  };
  for (const auto& [name, shape] : expected) {
    if (out.tensors[name].shape != shape)
      return bad(absl::StrCat("'", name, "' has the wrong shape"));
  }
  for (int l = 0; l < 2; ++l) {
    const std::string p = absl::StrCat("l", l, ".");
    const int64_t f =
        out.tensors[p + "ffn1.bias"].shape.empty() ? 0 : out.tensors[p + "ffn1.bias"].shape[0];
    const std::map<std::string, std::vector<int64_t>> ffn = {
        {p + "norm2.weight", {h}}, {p + "norm2.bias", {h}},     {p + "ffn1.weight", {f, h}},
        {p + "ffn1.bias", {f}},    {p + "ffn2.weight", {h, f}}, {p + "ffn2.bias", {h}}};
    for (const auto& [name, shape] : ffn) {
      if (f == 0 || out.tensors[name].shape != shape) {
        return bad(absl::StrCat("'", name, "' has the wrong shape"));
      }
    }
    if (l == 0) out.ffn_dim = f;
    if (f != out.ffn_dim) return bad("the layers' feed-forward widths differ");
  }
  return out;
}

}  // namespace helpline::nlu::model
