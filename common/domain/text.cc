#include "common/domain/text.h"

namespace helpline::domain::text {

void AppendUtf8(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

char32_t NextCodePoint(absl::string_view text, size_t* pos) {
  const size_t i = *pos;
  const auto b0 = static_cast<unsigned char>(text[i]);
  if (b0 < 0x80) {
    *pos = i + 1;
    return b0;
  }
  int len = 0;
  char32_t cp = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2;
    cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3;
    cp = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4;
    cp = b0 & 0x07;
  } else {
    *pos = i + 1;
    return 0xFFFD;
  }
  if (i + len > text.size()) {
    *pos = i + 1;
    return 0xFFFD;
  }
  for (int k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(text[i + k]);
    if ((b & 0xC0) != 0x80) {
      *pos = i + 1;
      return 0xFFFD;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  *pos = i + len;
  return cp;
}

bool IsCjk(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0xF900 && cp <= 0xFAFF) ||
         (cp >= 0x3040 && cp <= 0x30FF);
}

bool IsSpace(char32_t cp) {
  return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == '\f' || cp == '\v' ||
         cp == 0xA0 || cp == 0x3000 || (cp >= 0x2000 && cp <= 0x200A);
}

bool IsWordChar(char32_t cp) {
  if (cp < 0x80) {
    return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9');
  }
  if (cp < 0xC0 || cp == 0xD7 || cp == 0xF7 || cp == 0xFFFD) return false;
  if (IsCjk(cp) || IsSpace(cp)) return false;
  if (cp >= 0x2000 && cp <= 0x206F) return false;
  if (cp >= 0x3000 && cp <= 0x303F) return false;
  if ((cp >= 0xFF00 && cp <= 0xFF0F) || (cp >= 0xFF1A && cp <= 0xFF20) ||
      (cp >= 0xFF3B && cp <= 0xFF40) || (cp >= 0xFF5B && cp <= 0xFF65)) {
    return false;
  }
  return true;
}

std::string AsciiLower(absl::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool ContainsCjk(absl::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    if (IsCjk(NextCodePoint(text, &pos))) return true;
  }
  return false;
}

std::vector<std::pair<size_t, size_t>> TokenUnits(absl::string_view text) {
  std::vector<std::pair<size_t, size_t>> units;
  size_t pos = 0;
  size_t run_begin = std::string::npos;
  while (pos < text.size()) {
    const size_t begin = pos;
    const char32_t cp = NextCodePoint(text, &pos);
    if (IsSpace(cp) || IsCjk(cp)) {
      if (run_begin != std::string::npos) {
        units.emplace_back(run_begin, begin);
        run_begin = std::string::npos;
      }
      if (IsCjk(cp)) units.emplace_back(begin, pos);
    } else if (run_begin == std::string::npos) {
      run_begin = begin;
    }
  }
  if (run_begin != std::string::npos) units.emplace_back(run_begin, text.size());
  return units;
}

size_t CountTokenUnits(absl::string_view text) {
  size_t count = 0;
  bool in_run = false;
  size_t pos = 0;
  while (pos < text.size()) {
    const auto b = static_cast<unsigned char>(text[pos]);
    char32_t cp;
    if (b < 0x80) {
      cp = b;
      ++pos;
    } else {
      cp = NextCodePoint(text, &pos);
    }
    const bool cjk = IsCjk(cp);
    if (cjk || IsSpace(cp)) {
      if (in_run) ++count;
      in_run = false;
      if (cjk) ++count;
    } else {
      in_run = true;
    }
  }
  return in_run ? count + 1 : count;
}

}  // namespace helpline::domain::text
