#include "lm/model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace helpline::lm {
namespace {

// A header larger than this is certainly not a tensor index (HF caps it at 100 MB too).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

absl::Status Malformed(const std::string& path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

absl::Status BadTensor(const std::string& path, const std::string& name, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": tensor ", name, ": ", what));
}


}  // namespace

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  uint32_t bits;
  if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else {  // subnormal half: normalize
      exponent = 127 - 15 + 1;
      while ((mantissa & 0x400u) == 0) {
        mantissa <<= 1;
        --exponent;
      }
      mantissa &= 0x3ffu;
      bits = sign | (exponent << 23) | (mantissa << 13);
    }
  } else if (exponent == 0x1f) {  // inf / nan
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else {
    bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

float Bf16ToFloat(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

size_t DtypeSize(SafetensorsDtype dtype) { return dtype == SafetensorsDtype::kF32 ? 4 : 2; }

const char* DtypeName(SafetensorsDtype dtype) {
  switch (dtype) {
    case SafetensorsDtype::kF32:
      return "F32";
    case SafetensorsDtype::kF16:
      return "F16";
    case SafetensorsDtype::kBF16:
      return "BF16";
  }
  return "?";
}

int64_t SafetensorsTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) munmap(map_, map_size_);
}

const SafetensorsTensor* SafetensorsFile::Find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;

  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot open: ", std::strerror(err)));
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Malformed(path, "not a regular file");
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return Malformed(path, absl::StrCat("truncated: ", size, " bytes, shorter than the 8-byte header length"));
  }
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": mmap failed: ", std::strerror(errno)));
  }
  file->map_ = map;
  file->map_size_ = size;
  const auto* bytes = static_cast<const uint8_t*>(map);

  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > size - 8) {
    return Malformed(path, absl::StrCat("truncated: header length ", header_len, " runs past the end of the ",
                                        size, "-byte file"));
  }
  if (header_len > kMaxHeaderBytes) {
    return Malformed(path, absl::StrCat("header length ", header_len, " is implausibly large"));
  }
  const char* header_text = reinterpret_cast<const char*>(bytes + 8);
  nlohmann::json header =
      nlohmann::json::parse(header_text, header_text + header_len, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) return Malformed(path, "header is not valid JSON");
  if (!header.is_object()) return Malformed(path, "header is not a JSON object");

  const uint8_t* data = bytes + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;   // (begin, end)
  std::vector<const std::string*> range_names;

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& info = it.value();
    if (name == "__metadata__") {
      if (!info.is_object()) return Malformed(path, "__metadata__ is not an object");
      for (auto m = info.begin(); m != info.end(); ++m) {
        file->metadata_[m.key()] = m.value().is_string() ? m.value().get<std::string>() : m.value().dump();
      }
      continue;
    }
    if (!info.is_object()) return BadTensor(path, name, "entry is not an object");
    auto dtype_it = info.find("dtype");
    auto shape_it = info.find("shape");
    auto offsets_it = info.find("data_offsets");
    if (dtype_it == info.end() || !dtype_it->is_string()) return BadTensor(path, name, "missing dtype");
    if (shape_it == info.end() || !shape_it->is_array()) return BadTensor(path, name, "missing shape");
    if (offsets_it == info.end() || !offsets_it->is_array() || offsets_it->size() != 2 ||
        !(*offsets_it)[0].is_number_unsigned() || !(*offsets_it)[1].is_number_unsigned()) {
      return BadTensor(path, name, "data_offsets is not [begin, end]");
    }
    SafetensorsTensor tensor;
    tensor.name = name;
    const std::string dtype = dtype_it->get<std::string>();
    if (dtype == "F32") {
      tensor.dtype = SafetensorsDtype::kF32;
    } else if (dtype == "F16") {
      tensor.dtype = SafetensorsDtype::kF16;
    } else if (dtype == "BF16") {
      tensor.dtype = SafetensorsDtype::kBF16;
    } else {
      return BadTensor(path, name, absl::StrCat("dtype ", dtype, " is not supported (F32, F16, BF16)"));
    }
    // numel * size must not overflow: each dimension is bounded by the data size.
    uint64_t numel = 1;
    for (const auto& d : *shape_it) {
      if (!d.is_number_unsigned()) return BadTensor(path, name, "shape holds a non-integer or negative dimension");
      const uint64_t dim = d.get<uint64_t>();
      if (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / 16 / dim) {
        return BadTensor(path, name, "shape is too large");
      }
      numel *= dim;
      tensor.shape.push_back(static_cast<int64_t>(dim));
    }
    const uint64_t begin = (*offsets_it)[0].get<uint64_t>();
    const uint64_t end = (*offsets_it)[1].get<uint64_t>();
    if (begin > end) return BadTensor(path, name, absl::StrCat("data_offsets [", begin, ", ", end, "] are reversed"));
    if (end > data_size) {
      return BadTensor(path, name,
                       absl::StrCat("data_offsets [", begin, ", ", end, "] run past the end of the data (",
                                    data_size, " bytes; file truncated?)"));
    }
    const uint64_t want = numel * DtypeSize(tensor.dtype);
    if (want != end - begin) {
      return BadTensor(path, name,
                       absl::StrCat("shape [", absl::StrJoin(tensor.shape, ", "), "] of ", dtype, " needs ", want,
                                    " bytes, data_offsets give ", end - begin));
    }
    tensor.data = data + begin;
    tensor.nbytes = end - begin;
    auto [pos, inserted] = file->tensors_.emplace(name, std::move(tensor));
    if (!inserted) return BadTensor(path, name, "appears twice");
    ranges.emplace_back(begin, end);
    range_names.push_back(&pos->first);
  }

  // Overlap check: sort the byte ranges; each must start at or after the previous end.
  std::vector<size_t> order(ranges.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ranges[a] < ranges[b]; });
  uint64_t max_end = 0;
  const std::string* max_end_name = nullptr;
  for (size_t i : order) {
    const auto& [begin, end] = ranges[i];
    if (begin == end) continue;  // empty tensors occupy no bytes
    if (max_end_name != nullptr && begin < max_end) {
      return BadTensor(path, *range_names[i],
                       absl::StrCat("data_offsets overlap those of tensor ", *max_end_name));
    }
    max_end = end;
    max_end_name = range_names[i];
  }
  return file;
}

void SafetensorsFile::ToFloat32(const SafetensorsTensor& tensor, float* out) {
  const int64_t n = tensor.numel();
  switch (tensor.dtype) {
    case SafetensorsDtype::kF32:
      std::memcpy(out, tensor.data, static_cast<size_t>(n) * 4);
      return;
    case SafetensorsDtype::kF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, tensor.data + 2 * i, 2);
        out[i] = HalfToFloat(h);
      }
      return;
    case SafetensorsDtype::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, tensor.data + 2 * i, 2);
        const uint32_t bits = static_cast<uint32_t>(h) << 16;
        std::memcpy(out + i, &bits, 4);
      }
      return;
  }
}

}  // namespace helpline::lm
