// Writing libtorch tensors as an F32 safetensors file: the weights of nlu/model's utterance
// model and nlu/dst's tracker. Include only from translation units that already use libtorch
// (nlu_model.cc, dst_model.cc); reading goes through lm/model/safetensors.h.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace helpline::nlu::model {

// Writes `tensors` (name, tensor; converted to contiguous F32) to `path` in the safetensors
// layout, in the given order. INTERNAL naming the path when it cannot be written.
absl::Status WriteSafetensors(const std::string& path,
                              const std::vector<std::pair<std::string, torch::Tensor>>& tensors);

}  // namespace helpline::nlu::model
