#include "services/dst/date_time.h"

#include <algorithm>
#include <array>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "common/domain/text.h"
#include "re2/re2.h"

namespace helpline::dst {
namespace {

using re2::StringPiece;

// One side of a match before dates and times are paired up.
struct Part {
  size_t begin = 0;
  size_t end = 0;
  std::optional<absl::CivilDay> date;
  std::optional<int> minutes;
};

RE2::Options Quiet() {
  RE2::Options o;
  o.set_log_errors(false);
  return o;
}

constexpr char kMonths[] =
    "jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    "sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?";
constexpr char kCnDigits[] = "[零〇一二两三四五六七八九十百千]";

// The compiled patterns, built once.
struct Patterns {
  RE2 iso{R"(\b(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})\b)", Quiet()};
  RE2 relative_en{R"(\b(the day after tomorrow|day after tomorrow|the day before yesterday|)"
                  R"(day before yesterday|today|tonight|tomorrow|tmrw|tmr|yesterday)\b)",
                  Quiet()};
  RE2 in_days_en{
      R"(\bin\s+(\d{1,3}|a|an|one|two|three|four|five|six|seven|eight|nine|ten)\s+(days?|weeks?)\b)",
      Quiet()};
  RE2 weekday_en{
      R"(\b(?:(next|this|coming|last|on)\s+)?(monday|tuesday|wednesday|thursday|friday|saturday|)"
      R"(sunday|mon|tues|tue|wed|thurs|thur|thu|fri|sat|sun)\b)",
      Quiet()};
  RE2 day_month_en{std::string(R"(\b(\d{1,2})(?:st|nd|rd|th)?(?:\s+of)?\s+()") + kMonths +
                       R"()\b\.?(?:,?\s+(\d{4})\b)?)",
                   Quiet()};
  RE2 month_day_en{
      std::string(R"(\b()") + kMonths + R"()\.?\s+(\d{1,2})(st|nd|rd|th)?\b(?:,?\s+(\d{4})\b)?)",
      Quiet()};
  RE2 relative_zh{"(大后天|后天|明天|明日|今天|今日|昨天|昨日|前天)", Quiet()};
  RE2 in_days_zh{std::string(R"((\d{1,3}|)") + kCnDigits + "{1,3})(?:天|日)(?:以后|之后|后)",
                 Quiet()};
  RE2 weekday_zh{"(下下|下|这|這|本|上)?个?(?:周|星期|礼拜|禮拜)([一二三四五六日天1-7])", Quiet()};
  RE2 date_zh{
      std::string(
          R"((?:(\d{4}|[零〇一二三四五六七八九]{4})年)?(\d{1,2}|[一二三四五六七八九十]{1,3})月)") +
          R"((\d{1,2}|[一二三四五六七八九十]{1,3})(?:日|号|號))",
      Quiet()};

  RE2 twelve_hour{R"(\b(\d{1,2})(?:[:.]([0-5]\d))?\s?(a\.m\.?|p\.m\.?|am|pm))", Quiet()};
  RE2 clock{R"(\b([01]?\d|2[0-3])[:：]([0-5]\d)\b)", Quiet()};
  RE2 noon{R"(\b(noon|midday|midnight)\b)", Quiet()};
  RE2 at_hour{R"(\b(?:at|around|by)\s+(\d{1,2})(?:\s*o'?clock)?\b)", Quiet()};
  RE2 oclock{R"(\b(\d{1,2})\s*o'?clock\b)", Quiet()};
  RE2 time_zh{std::string("(凌晨|清晨|早上|早晨|上午|中午|下午|傍晚|晚上|夜里|夜间|今晚|今早)?") +
                  R"((\d{1,2}|)" + kCnDigits + "{1,3})(?:点钟|点|點|时|時)" +
                  R"((?:(半)|(一刻)|(三刻)|(\d{1,2})分?|()" + kCnDigits + "{2,3})分?|(" +
                  kCnDigits + ")分)?",
              Quiet()};
  RE2 filler{R"(^(?:\s|,|，|、|at\b|on\b|by\b|around\b|@|的)*$)", Quiet()};
};

const Patterns& GetPatterns() {
  static const Patterns* patterns = new Patterns();
  return *patterns;
}

// Calls fn(groups) for each match of `re` (group 0 = whole match; empty pieces for groups that
// did not take part). `n` = number of capturing groups.
template <typename Fn>
void ForEach(const RE2& re, absl::string_view s, Fn fn) {
  const int n = re.NumberOfCapturingGroups();
  std::vector<StringPiece> groups(n + 1);
  StringPiece input(s.data(), s.size());
  size_t pos = 0;
  while (pos <= s.size() && re.Match(input, pos, s.size(), RE2::UNANCHORED, groups.data(), n + 1)) {
    const size_t begin = static_cast<size_t>(groups[0].data() - s.data());
    const size_t end = begin + groups[0].size();
    fn(begin, end, groups);
    pos = end > begin ? end : end + 1;
  }
}

absl::string_view Str(const StringPiece& p) { return absl::string_view(p.data(), p.size()); }

// Digits or Chinese numerals; nullopt otherwise.
std::optional<int> Number(const StringPiece& p) {
  if (p.empty()) return std::nullopt;
  int value = 0;
  if (absl::SimpleAtoi(Str(p), &value)) return value;
  return ParseChineseNumber(Str(p));
}

std::optional<absl::CivilDay> ValidDay(int64_t year, int month, int day) {
  if (month < 1 || month > 12 || day < 1 || day > 31) return std::nullopt;
  const absl::CivilDay d(year, month, day);
  if (d.year() != year || d.month() != month || d.day() != day) return std::nullopt;  // Feb 30
  return d;
}

// A day and month without a year: the year that puts the date nearest to today.
std::optional<absl::CivilDay> NearestDay(int month, int day, absl::CivilDay today) {
  std::optional<absl::CivilDay> best;
  for (int64_t y = today.year() - 1; y <= today.year() + 1; ++y) {
    std::optional<absl::CivilDay> d = ValidDay(y, month, day);
    if (d && (!best || std::abs(*d - today) < std::abs(*best - today))) best = d;
  }
  return best;
}

int MonthIndex(absl::string_view name) {  // "dec" / "december" -> 12
  static constexpr std::array<const char*, 12> kPrefixes = {
      "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"};
  for (size_t i = 0; i < kPrefixes.size(); ++i) {
    if (absl::StartsWith(name, kPrefixes[i])) return static_cast<int>(i) + 1;
  }
  return 0;
}

// 0 = Monday ... 6 = Sunday.
int WeekdayIndex(absl::CivilDay day) {
  switch (absl::GetWeekday(day)) {
    case absl::Weekday::monday:
      return 0;
    case absl::Weekday::tuesday:
      return 1;
    case absl::Weekday::wednesday:
      return 2;
    case absl::Weekday::thursday:
      return 3;
    case absl::Weekday::friday:
      return 4;
    case absl::Weekday::saturday:
      return 5;
    case absl::Weekday::sunday:
      return 6;
  }
  return 0;
}

int EnglishWeekday(absl::string_view name) {
  static constexpr std::array<const char*, 7> kPrefixes = {"mon", "tue", "wed", "thu",
                                                           "fri", "sat", "sun"};
  for (size_t i = 0; i < kPrefixes.size(); ++i) {
    if (absl::StartsWith(name, kPrefixes[i])) return static_cast<int>(i);
  }
  return -1;
}

// The first `weekday` on or after (`strictly_after`: after) today.
absl::CivilDay Upcoming(int weekday, absl::CivilDay today, bool strictly_after) {
  int days = (weekday - WeekdayIndex(today) + 7) % 7;
  if (days == 0 && strictly_after) days = 7;
  return today + days;
}

void FindDates(absl::string_view s, absl::CivilDay today, std::vector<Part>& out) {
  const Patterns& p = GetPatterns();
  auto add = [&out](size_t b, size_t e, std::optional<absl::CivilDay> d) {
    if (d) out.push_back({b, e, d, std::nullopt});
  };
  ForEach(p.iso, s, [&](size_t b, size_t e, const std::vector<StringPiece>& g) {
    add(b, e, ValidDay(*Number(g[1]), *Number(g[2]), *Number(g[3])));
  });
  ForEach(p.relative_en, s, [&](size_t b, size_t e, const std::vector<StringPiece>& g) {
    const absl::string_view w = Str(g[1]);
    int offset = 0;
    if (absl::StrContains(w, "after tomorrow")) {
      offset = 2;
    } else if (absl::StrContains(w, "before yesterday")) {
      offset = -2;
    } else if (absl::StartsWith(w, "tom") || absl::StartsWith(w, "tm")) {
      offset = 1;
    } else if (w == "yesterday") {
      offset = -1;
    }
    add(b, e, today + offset);
  });
  ForEach(p.in_days_en, s, [&](size_t b, size_t e, const std::vector<StringPiece>& g) {
    static constexpr std::array<const char*, 11> kWords = {
        "", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"};
    int n = 0;
    if (!absl::SimpleAtoi(Str(g[1]), &n)) {
      n = (Str(g[1]) == "a" || Str(g[1]) == "an") ? 1 : 0;
      for (size_t i = 1; i < kWords.size(); ++i) {
        if (Str(g[1]) == kWords[i]) n = static_cast<int>(i);
      }
    }
    add(b, e, today + n * (absl::StartsWith(Str(g[2]), "week") ? 7 : 1));
  });
  ForEach(p.weekday_en, s, [&](size_t b, size_t e, const std::vector<StringPiece>& g) {
    const absl::string_view modifier = Str(g[1]);
    const absl::string_view name = Str(g[2]);
    // "sat", "sun", "wed" are also words: abbreviations only after next/this/last/on.
    if (name.size() <= 5 && !absl::EndsWith(name, "day") && modifier.empty()) return;
    const int weekday = EnglishWeekday(name);
    if (modifier == "last") {
      const int back = (WeekdayIndex(today) - weekday + 7) % 7;
      add(b, e, today - (back == 0 ? 7 : back));
    } else {
      add(b, e, Upcoming(weekday, today, modifier == "next"));
    }
  });
  ForEach(p.day_month_en, s, [&](size_t b, size_t e, const std::vector<StringPiece>& g) {
    const int month = MonthIndex(Str(g[2]));
    add(b, e,
        g[3].empty() ? NearestDay(month, *Number(g[1]), today)
                     : ValidDay(*Number(g[3]), month, *Number(g[1])));
  });
  ForEach(p.month_day_en, s, [&](size_t b, size_t e, const std::vector<StringPiece>& g) {
    const int month = MonthIndex(Str(g[1]));
    // "I may 2 ..." is not the 2nd of May: the modal needs an ordinal or a year to be a month.
    if (Str(g[1]) == "may" && g[3].empty() && g[4].empty()) return;
    add(b, e,
        g[4].empty() ? NearestDay(month, *Number(g[2]), today)
                     : ValidDay(*Number(g[4]), month, *Number(g[2])));
  });
  ForEach(p.relative_zh, s, [&](size_t b, size_t e, const std::vector<StringPiece>& g) {
    const absl::string_view w = Str(g[1]);
    int offset = 0;
    if (w == "大后天") {
      offset = 3;
    } else if (w == "后天") {
      offset = 2;
    } else if (w == "明天" || w == "明日") {
      offset = 1;
    } else if (w == "昨天" || w == "昨日") {
      offset = -1;
    } else if (w == "前天") {
      offset = -2;
    }
    add(b, e, today + offset);
  });
  ForEach(p.in_days_zh, s, [&](size_t b, size_t e, const std::vector<StringPiece>& g) {
    if (std::optional<int> n = Number(g[1])) add(b, e, today + *n);
  });
  ForEach(p.weekday_zh, s, [&](size_t b, size_t e, const std::vector<StringPiece>& g) {
    const absl::string_view modifier = Str(g[1]);
    const absl::string_view name = Str(g[2]);
    // "一周一次" (once a week) is not Monday: a bare 周 right after a numeral counts weeks.
    if (modifier.empty() && b >= 3 && ParseChineseNumber(s.substr(b - 3, 3)).has_value()) {
      return;
    }
    int weekday = 6;  // 日, 天, 7
    static constexpr std::array<const char*, 6> kDays = {"一", "二", "三", "四", "五", "六"};
    for (size_t i = 0; i < kDays.size(); ++i) {
      if (name == kDays[i] || name == std::string(1, static_cast<char>('1' + i))) {
        weekday = static_cast<int>(i);
      }
    }
    if (modifier.empty()) {
      add(b, e, Upcoming(weekday, today, false));
      return;
    }
    // 下周五 is Friday of next (Monday-based) week, not the next Friday.
    const absl::CivilDay monday = today - WeekdayIndex(today);
    int week = 0;
    if (modifier == "下下") {
      week = 2;
    } else if (modifier == "下") {
      week = 1;
    } else if (modifier == "上") {
      week = -1;
    }
    add(b, e, monday + 7 * week + weekday);
  });
  ForEach(p.date_zh, s, [&](size_t b, size_t e, const std::vector<StringPiece>& g) {
    std::optional<int> month = Number(g[2]);
    std::optional<int> day = Number(g[3]);
    if (!month || !day) return;
    if (g[1].empty()) {
      add(b, e, NearestDay(*month, *day, today));
    } else if (std::optional<int> year = Number(g[1])) {
      add(b, e, ValidDay(*year, *month, *day));
    }
  });
}

// Hours 1-7 without am/pm are read as afternoon (a shop's opening hours).
int BusinessHour(int hour) { return hour >= 1 && hour <= 7 ? hour + 12 : hour; }

void FindTimes(absl::string_view s, absl::CivilDay today, std::vector<Part>& out) {
  const Patterns& p = GetPatterns();
  auto add = [&out](size_t b, size_t e, int hour, int minute,
                    std::optional<absl::CivilDay> date = std::nullopt) {
    if (hour < 0 || hour > 23 || minute < 0 || minute > 59) return;
    out.push_back({b, e, date, hour * 60 + minute});
  };
  ForEach(p.twelve_hour, s, [&](size_t b, size_t e, const std::vector<StringPiece>& g) {
    if (e < s.size() && absl::ascii_isalpha(static_cast<unsigned char>(s[e]))) return;  // "5 amp"
    const int hour = *Number(g[1]);
    const int minute = g[2].empty() ? 0 : *Number(g[2]);
    if (hour < 1 || hour > 12) return;
    const bool pm = Str(g[3])[0] == 'p';
    add(b, e, hour % 12 + (pm ? 12 : 0), minute);
  });
  ForEach(p.clock, s, [&](size_t b, size_t e, const std::vector<StringPiece>& g) {
    add(b, e, *Number(g[1]), *Number(g[2]));
  });
  ForEach(p.noon, s, [&](size_t b, size_t e, const std::vector<StringPiece>& g) {
    add(b, e, Str(g[1]) == "midnight" ? 0 : 12, 0);
  });
  for (const RE2* re : {&p.at_hour, &p.oclock}) {
    ForEach(*re, s, [&](size_t b, size_t e, const std::vector<StringPiece>& g) {
      if (e < s.size() && (s[e] == ':' || s[e] == '.')) return;  // "at 5:30" is the clock's
      const absl::string_view rest = absl::StripLeadingAsciiWhitespace(s.substr(e));
      if (absl::StartsWith(rest, "am") || absl::StartsWith(rest, "pm") ||
          absl::StartsWith(rest, "a.m") || absl::StartsWith(rest, "p.m")) {
        return;  // "at 9 pm" is the 12-hour pattern's.
      }
      const int hour = *Number(g[1]);
      if (hour >= 1 && hour <= 12) add(b, e, BusinessHour(hour), 0);
    });
  }
  ForEach(p.time_zh, s, [&](size_t b, size_t e, const std::vector<StringPiece>& g) {
    const absl::string_view period = Str(g[1]);
    std::optional<int> hour = Number(g[2]);
    if (!hour) return;
    int minute = 0;
    bool has_minutes = true;
    if (!g[3].empty()) {
      minute = 30;
    } else if (!g[4].empty()) {
      minute = 15;
    } else if (!g[5].empty()) {
      minute = 45;
    } else if (!g[6].empty() || !g[7].empty() || !g[8].empty()) {
      minute = Number(!g[6].empty() ? g[6] : (!g[7].empty() ? g[7] : g[8])).value_or(-1);
    } else {
      has_minutes = false;
    }
    int digit = 0;
    const bool digits = absl::SimpleAtoi(Str(g[2]), &digit);
    if (period.empty() && !digits && !has_minutes) return;  // "快一点": "a bit faster"
    int h = *hour;
    std::optional<absl::CivilDay> date;
    if (period == "今晚" || period == "今早") date = today;
    if (period == "中午") {
      if (h <= 3) h += 12;
    } else if (period == "下午" || period == "傍晚" || period == "晚上" || period == "夜里" ||
               period == "夜间" || period == "今晚") {
      if (h < 12) h += 12;
      if (h == 24) h = 0;
    }
    if (h == 24) h = 0;
    add(b, e, h, minute, date);
  });
}

// Keeps the earliest, then longest, of overlapping parts.
std::vector<Part> NonOverlapping(std::vector<Part> parts) {
  std::sort(parts.begin(), parts.end(), [](const Part& a, const Part& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end > b.end;
  });
  std::vector<Part> out;
  for (Part& p : parts) {
    if (!out.empty() && p.begin < out.back().end) continue;
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace

std::optional<int> ParseChineseNumber(absl::string_view text) {
  if (text.empty()) return std::nullopt;
  std::vector<int> digits;  // -10, -100, -1000 for the unit characters
  size_t pos = 0;
  while (pos < text.size()) {
    const char32_t cp = domain::text::NextCodePoint(text, &pos);
    static constexpr std::array<std::pair<char32_t, int>, 15> kValues = {{{U'零', 0},
                                                                          {U'〇', 0},
                                                                          {U'一', 1},
                                                                          {U'二', 2},
                                                                          {U'两', 2},
                                                                          {U'三', 3},
                                                                          {U'四', 4},
                                                                          {U'五', 5},
                                                                          {U'六', 6},
                                                                          {U'七', 7},
                                                                          {U'八', 8},
                                                                          {U'九', 9},
                                                                          {U'十', -10},
                                                                          {U'百', -100},
                                                                          {U'千', -1000}}};
    bool known = false;
    for (const auto& [c, v] : kValues) {
      if (c == cp) {
        digits.push_back(v);
        known = true;
      }
    }
    if (!known) return std::nullopt;
  }
  const bool has_unit = std::any_of(digits.begin(), digits.end(), [](int d) { return d < 0; });
  int value = 0;
  if (!has_unit) {  // 二〇二六: digit by digit.
    if (digits.size() > 4) return std::nullopt;
    for (int d : digits) value = value * 10 + d;
    return value;
  }
  int pending = -1;  // A digit waiting for its unit.
  int last_unit = 10000;
  for (int d : digits) {
    if (d >= 0) {
      if (pending > 0) return std::nullopt;  // Two digits in a row: 三四十.
      pending = d;
      continue;
    }
    const int unit = -d;
    if (unit >= last_unit) return std::nullopt;   // 十百
    value += (pending < 0 ? 1 : pending) * unit;  // 十二: the leading 一 is implied.
    if (pending == 0) return std::nullopt;
    pending = -1;
    last_unit = unit;
  }
  if (pending > 0) value += pending;
  return value;
}

std::vector<DateTimeMatch> FindDateTimes(absl::string_view text, absl::CivilDay today) {
  const std::string lowered = domain::text::AsciiLower(text);
  std::vector<Part> dates, times;
  FindDates(lowered, today, dates);
  FindTimes(lowered, today, times);
  dates = NonOverlapping(std::move(dates));
  times = NonOverlapping(std::move(times));
  // A time inside a date ("2026.12.03" read as 12.03) is not a time.
  std::vector<Part> parts = dates;
  for (Part& t : times) {
    bool inside = false;
    for (const Part& d : dates) inside = inside || (t.begin < d.end && d.begin < t.end);
    if (!inside) parts.push_back(std::move(t));
  }
  std::sort(parts.begin(), parts.end(),
            [](const Part& a, const Part& b) { return a.begin < b.begin; });

  const Patterns& p = GetPatterns();
  std::vector<DateTimeMatch> out;
  for (size_t i = 0; i < parts.size(); ++i) {
    const Part& a = parts[i];
    DateTimeMatch m;
    m.begin = a.begin;
    m.end = a.end;
    m.date = a.date;
    m.minutes = a.minutes;
    m.date_begin = m.time_begin = a.begin;
    m.date_end = m.time_end = a.end;
    // Pair a date with a time next to it (either order), across fillers such as " at ".
    if (i + 1 < parts.size()) {
      const Part& b = parts[i + 1];
      const bool complementary = (a.minutes.has_value() != b.minutes.has_value()) &&
                                 !(a.date && a.minutes) && !(b.date && b.minutes);
      const absl::string_view gap = absl::string_view(lowered).substr(a.end, b.begin - a.end);
      if (complementary && gap.size() <= 12 &&
          RE2::FullMatch(StringPiece(gap.data(), gap.size()), p.filler)) {
        const Part& date = a.date ? a : b;
        const Part& time = a.minutes ? a : b;
        m.end = b.end;
        m.date = date.date;
        m.minutes = time.minutes;
        m.date_begin = date.begin;
        m.date_end = date.end;
        m.time_begin = time.begin;
        m.time_end = time.end;
        ++i;
      }
    }
    out.push_back(m);
  }
  return out;
}

std::string FormatIsoDate(absl::CivilDay day) {
  return absl::StrFormat("%04d-%02d-%02d", day.year(), day.month(), day.day());
}

std::string FormatTime(int minutes) {
  return absl::StrFormat("%02d:%02d", minutes / 60, minutes % 60);
}

std::string FormatDateTime(const DateTimeMatch& match) {
  if (match.date && match.minutes) {
    return FormatIsoDate(*match.date) + "T" + FormatTime(*match.minutes);
  }
  if (match.date) return FormatIsoDate(*match.date);
  if (match.minutes) return FormatTime(*match.minutes);
  return "";
}

}  // namespace helpline::dst
