// A reader of the safetensors format (Hugging Face): a little-endian u64 header length N,
// N bytes of JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}},
// then the raw little-endian tensor data (offsets relative to its start).
//
// The file is memory-mapped; tensors are views into the mapping, valid while the
// SafetensorsFile lives. Every structural problem (truncated file, header length past the end,
// bad JSON, offsets out of range or overlapping, a byte range that does not match shape x dtype,
// an unsupported dtype) is an INVALID_ARGUMENT naming the file and, where there is one, the
// tensor. No libtorch here.
//
// Thread-safety: immutable after Open; any number of threads may read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace helpline::lm {

// Exact widening of IEEE half (all values: subnormals, infinities, NaN payloads) and bfloat16.
float HalfToFloat(uint16_t h);
float Bf16ToFloat(uint16_t h);

enum class SafetensorsDtype { kF32, kF16, kBF16 };

// Bytes per element of a dtype.
size_t DtypeSize(SafetensorsDtype dtype);
// "F32", "F16", "BF16".
const char* DtypeName(SafetensorsDtype dtype);

struct SafetensorsTensor {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // into the mapping; not aligned in general
  size_t nbytes = 0;

  int64_t numel() const;
};

class SafetensorsFile {
 public:
  // Maps and validates `path`. NOT_FOUND when the file cannot be opened; INVALID_ARGUMENT
  // for any malformed content (the message names the file and the tensor).
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // All tensors by name (sorted).
  const std::map<std::string, SafetensorsTensor>& tensors() const { return tensors_; }
  // The tensor called `name`, or null.
  const SafetensorsTensor* Find(const std::string& name) const;
  // String values of "__metadata__" (non-string values are kept as their JSON text).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // Widens a tensor to float32 into out[0 .. numel).
  static void ToFloat32(const SafetensorsTensor& tensor, float* out);

 private:
  SafetensorsFile() = default;

  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::map<std::string, SafetensorsTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace helpline::lm
