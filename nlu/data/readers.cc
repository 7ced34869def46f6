// The format-independent part of the readers: format names, file content (gunzip), IOB
// spans. The formats are in utterance_readers.cc and dialogue_readers.cc.
#include "nlu/data/readers.h"

#include <zlib.h>

#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "nlu/data/read_util.h"

namespace helpline::nlu::data {

const SlotSchema* ServiceSchema::FindSlot(absl::string_view name) const {
  for (const SlotSchema& slot : slots) {
    if (slot.name == name) return &slot;
  }
  return nullptr;
}

const ServiceSchema* DialogueDataset::FindService(absl::string_view name) const {
  for (const ServiceSchema& service : services) {
    if (service.name == name) return &service;
  }
  return nullptr;
}

namespace {

struct FormatEntry {
  Format format;
  const char* name;
};
constexpr FormatEntry kFormats[] = {
    {Format::kBanking77, "banking77"}, {Format::kClinc150, "clinc150"},
    {Format::kSnips, "snips"},         {Format::kBitext, "bitext"},
    {Format::kSgd, "sgd"},             {Format::kMultiwoz21, "multiwoz21"},
};

absl::StatusOr<std::string> Gunzip(const std::string& compressed, const std::string& path) {
  std::string out;
  z_stream stream{};
  // 16 + MAX_WBITS: gzip wrapper only.
  if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK) {
    return absl::InternalError(absl::StrCat(path, ": zlib inflateInit2 failed"));
  }
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  stream.avail_in = static_cast<uInt>(compressed.size());
  char buffer[1 << 16];
  int rc = Z_OK;
  while (true) {
    stream.next_out = reinterpret_cast<Bytef*>(buffer);
    stream.avail_out = sizeof(buffer);
    rc = inflate(&stream, Z_NO_FLUSH);
    out.append(buffer, sizeof(buffer) - stream.avail_out);
    if (rc == Z_STREAM_END) {
      // A gzip file may hold several members, one after another.
      if (stream.avail_in == 0) break;
      if (inflateReset(&stream) != Z_OK) break;
      continue;
    }
    if (rc != Z_OK) break;
    if (stream.avail_in == 0 && stream.avail_out != 0) {
      rc = Z_BUF_ERROR;  // Input ended inside a member.
      break;
    }
  }
  const char* msg = stream.msg;
  inflateEnd(&stream);
  if (rc != Z_STREAM_END) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": corrupt or truncated gzip data",
        msg != nullptr ? absl::StrCat(" (", msg, ")") : std::string(),
        rc == Z_BUF_ERROR ? " (unexpected end of file)" : ""));
  }
  return out;
}

}  // namespace

absl::StatusOr<Format> ParseFormat(absl::string_view name) {
  for (const FormatEntry& e : kFormats) {
    if (name == e.name) return e.format;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown format '", name, "' (banking77, clinc150, snips, bitext, sgd, multiwoz21)"));
}

absl::string_view FormatName(Format format) {
  for (const FormatEntry& e : kFormats) {
    if (e.format == format) return e.name;
  }
  return "unknown";
}

bool IsDialogueFormat(Format format) {
  return format == Format::kSgd || format == Format::kMultiwoz21;
}

absl::StatusOr<std::string> ReadFileContent(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return absl::NotFoundError(absl::StrCat(path, ": read error"));
  std::string content = std::move(buffer).str();
  if (content.size() >= 2 && static_cast<unsigned char>(content[0]) == 0x1f &&
      static_cast<unsigned char>(content[1]) == 0x8b) {
    return Gunzip(content, path);
  }
  return content;
}

absl::StatusOr<std::vector<SlotSpan>> SpansFromIob(const std::vector<std::string>& tokens,
                                                   const std::vector<std::string>& tags) {
  if (tokens.size() != tags.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(tags.size(), " tags for ", tokens.size(), " tokens"));
  }
  std::vector<SlotSpan> spans;
  std::string text;
  // The open chunk's type; empty when none.
  std::string open;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (i > 0) text.push_back(' ');
    const size_t begin = text.size();
    text += tokens[i];
    const std::string& tag = tags[i];
    char kind = 'O';
    std::string type;
    if (tag != "O") {
      if (tag.size() < 3 || (tag[0] != 'B' && tag[0] != 'I') || tag[1] != '-') {
        return absl::InvalidArgumentError(absl::StrCat("token ", i + 1, ": bad tag '", tag, "'"));
      }
      kind = tag[0];
      type = tag.substr(2);
    }
    const bool continues = kind == 'I' && !open.empty() && type == open;
    if (continues) {
      spans.back().end = text.size();
      spans.back().value = text.substr(spans.back().begin);
      continue;
    }
    open.clear();
    if (kind != 'O') {
      spans.push_back({type, begin, text.size(), tokens[i]});
      open = type;
    }
  }
  return spans;
}

}  // namespace helpline::nlu::data
