// Dates and times in customer text, English and Chinese, resolved to ISO values: the typed
// extractor of date, time and datetime slots (extractors.h). Rules, not a model:
//   dates  "today", "tomorrow", "the day after tomorrow", "yesterday", "in 3 days",
//          "next Monday", "this Friday", "on Tue", "last Sunday", "2026-12-03", "2026/12/3",
//          "3 Dec", "3rd of December 2026", "Dec 3", "December 3rd, 2026";
//          今天 明天 后天 大后天 昨天 前天, "3天后", 下周一 这周五 本星期六 上礼拜天 周日,
//          12月3日 / 12月3号 / 2026年12月3日 / 十二月三日
//   times  "5pm", "5:30 p.m.", "17:00", "at 5" (1-7 read as p.m.: business hours), "noon",
//          "midnight", "5 o'clock"; 下午三点 / 晚上8点半 / 上午十点十五分 / 3点 / 15:00
//          (a bare Chinese numeral hour needs a period word or 分/半: "一点" also means "a bit")
// A date and a time next to each other ("tomorrow at 5pm", "明天下午三点", "3pm on Friday")
// are one match with both parts. A day and month without a year take the year that puts the
// date nearest to today (customers speak of past orders and future deliveries alike).
//
// Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"

namespace helpline::dst {

struct DateTimeMatch {
  // Byte span of the whole expression (date and time together when both were said).
  size_t begin = 0;
  size_t end = 0;
  std::optional<absl::CivilDay> date;
  // Minutes after midnight, 0..1439.
  std::optional<int> minutes;
  // Byte spans of the date part and the time part (equal to [begin, end) when only one).
  size_t date_begin = 0, date_end = 0;
  size_t time_begin = 0, time_end = 0;
};

// Every date/time expression of `text`, in text order, not overlapping. `today` resolves
// relative dates.
std::vector<DateTimeMatch> FindDateTimes(absl::string_view text, absl::CivilDay today);

// "2026-12-03".
std::string FormatIsoDate(absl::CivilDay day);
// "17:05".
std::string FormatTime(int minutes);
// The value of a datetime slot: "2026-12-03T17:05", or the part that is present.
std::string FormatDateTime(const DateTimeMatch& match);

// The value of Chinese numerals such as 十二, 二十三, 两, 二〇二六 (digit by digit), 一百零五;
// nullopt when `text` is not one. Up to 9999.
std::optional<int> ParseChineseNumber(absl::string_view text);

}  // namespace helpline::dst
