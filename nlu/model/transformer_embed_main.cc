// helpline-transformer-embed: the pretrained transformer's sentence embedding of each line of
// stdin, as JSON lines {"pieces": [ids], "embedding": [floats]} (an empty object for a line
// without tokens). For tests/node/transformer_compare.mjs, which checks it against TensorFlow.js
// running the same checkpoint.
//
//   helpline-transformer-embed --transformer DIR < lines.txt
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "nlohmann/json.hpp"
#include "nlu/model/nlu_model.h"
#include "nlu/model/transformer_checkpoint.h"

int main(int argc, char** argv) {
  namespace model = helpline::nlu::model;
  CLI::App app{"Sentence embeddings of the pretrained transformer, one JSON line per input line"};
  std::string dir;
  app.add_option("--transformer", dir, "checkpoint folder (scripts/fetch-sentence-encoder)")
      ->required();
  CLI11_PARSE(app, argc, argv);
  model::SetTorchThreads(1);
  auto checkpoint = model::TransformerCheckpoint::Read(dir);
  if (!checkpoint.ok()) {
    std::fprintf(stderr, "helpline-transformer-embed: %s\n",
                 std::string(checkpoint.status().message()).c_str());
    return 1;
  }
  std::vector<std::string> lines;
  for (std::string line; std::getline(std::cin, line);) lines.push_back(line);
  auto embeddings = model::EmbedWithTransformer(*checkpoint, lines);
  if (!embeddings.ok()) {
    std::fprintf(stderr, "helpline-transformer-embed: %s\n",
                 std::string(embeddings.status().message()).c_str());
    return 1;
  }
  for (const model::TransformerEmbedding& e : *embeddings) {
    nlohmann::json out = nlohmann::json::object();
    if (!e.pieces.empty()) {
      out["pieces"] = e.pieces;
      out["embedding"] = e.embedding;
    }
    std::cout << out.dump() << "\n";
  }
  return 0;
}
