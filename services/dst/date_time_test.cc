#include "services/dst/date_time.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace helpline::dst {
namespace {

// A Sunday.
const absl::CivilDay kToday(2026, 11, 29);

// The values of every match, as a datetime slot would store them.
std::vector<std::string> Values(absl::string_view text, absl::CivilDay today = kToday) {
  std::vector<std::string> out;
  for (const DateTimeMatch& m : FindDateTimes(text, today)) out.push_back(FormatDateTime(m));
  return out;
}

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(DateTimeTest, EnglishRelativeDays) {
  EXPECT_THAT(Values("today"), ElementsAre("2026-11-29"));
  EXPECT_THAT(Values("Tomorrow please"), ElementsAre("2026-11-30"));
  EXPECT_THAT(Values("the day after tomorrow"), ElementsAre("2026-12-01"));
  EXPECT_THAT(Values("it came yesterday"), ElementsAre("2026-11-28"));
  EXPECT_THAT(Values("in 3 days"), ElementsAre("2026-12-02"));
  EXPECT_THAT(Values("in two weeks"), ElementsAre("2026-12-13"));
}

TEST(DateTimeTest, EnglishWeekdays) {
  // Today is Sunday 29 Nov 2026.
  EXPECT_THAT(Values("next Monday"), ElementsAre("2026-11-30"));
  EXPECT_THAT(Values("on Friday"), ElementsAre("2026-12-04"));
  EXPECT_THAT(Values("this sunday"), ElementsAre("2026-11-29"));  // Today counts...
  EXPECT_THAT(Values("next sunday"), ElementsAre("2026-12-06"));  // ...but not for "next".
  EXPECT_THAT(Values("last Sunday"), ElementsAre("2026-11-22"));
  EXPECT_THAT(Values("on Tue"), ElementsAre("2026-12-01"));
  // Abbreviations that are words need a modifier.
  EXPECT_THAT(Values("I sat in the sun"), IsEmpty());
}

TEST(DateTimeTest, EnglishCalendarDates) {
  EXPECT_THAT(Values("2026-12-03"), ElementsAre("2026-12-03"));
  EXPECT_THAT(Values("on 2026/1/5"), ElementsAre("2026-01-05"));
  EXPECT_THAT(Values("3 Dec"), ElementsAre("2026-12-03"));
  EXPECT_THAT(Values("the 3rd of December 2027"), ElementsAre("2027-12-03"));
  EXPECT_THAT(Values("Dec. 3"), ElementsAre("2026-12-03"));
  EXPECT_THAT(Values("December 3rd, 2025"), ElementsAre("2025-12-03"));
  // No year: the nearest such day, past or future.
  EXPECT_THAT(Values("I ordered on 2 Jan"), ElementsAre("2027-01-02"));
  EXPECT_THAT(Values("I ordered on 2 June"), ElementsAre("2026-06-02"));
  EXPECT_THAT(Values("on 2026-02-30"), IsEmpty());  // No such day.
  EXPECT_THAT(Values("31 Feb"), IsEmpty());
  EXPECT_THAT(Values("I may 2 or 3 things"), IsEmpty());
  EXPECT_THAT(Values("May 2nd"), ElementsAre("2027-05-02"));  // 154 days ahead, 211 back
  EXPECT_THAT(Values("let me decide"), IsEmpty());
}

TEST(DateTimeTest, EnglishTimes) {
  EXPECT_THAT(Values("at 5pm"), ElementsAre("17:00"));
  EXPECT_THAT(Values("5:30 p.m."), ElementsAre("17:30"));
  EXPECT_THAT(Values("12am"), ElementsAre("00:00"));
  EXPECT_THAT(Values("12 pm"), ElementsAre("12:00"));
  EXPECT_THAT(Values("9.15am"), ElementsAre("09:15"));
  EXPECT_THAT(Values("17:45"), ElementsAre("17:45"));
  EXPECT_THAT(Values("at noon"), ElementsAre("12:00"));
  EXPECT_THAT(Values("midnight"), ElementsAre("00:00"));
  EXPECT_THAT(Values("at 5"), ElementsAre("17:00"));  // Business hours.
  EXPECT_THAT(Values("at 10 o'clock"), ElementsAre("10:00"));
  EXPECT_THAT(Values("5 amps"), IsEmpty());
  EXPECT_THAT(Values("25:00"), IsEmpty());
  EXPECT_THAT(Values("13pm"), IsEmpty());
}

TEST(DateTimeTest, DateAndTimeTogether) {
  EXPECT_THAT(Values("tomorrow at 5pm"), ElementsAre("2026-11-30T17:00"));
  EXPECT_THAT(Values("call me 3pm on Friday"), ElementsAre("2026-12-04T15:00"));
  EXPECT_THAT(Values("2026-12-03 17:00"), ElementsAre("2026-12-03T17:00"));
  EXPECT_THAT(Values("tomorrow, at 5pm"), ElementsAre("2026-11-30T17:00"));
  EXPECT_THAT(Values("tomorrow, or at 5pm"), ElementsAre("2026-11-30", "17:00"));  // Either.
  EXPECT_THAT(Values("at 9 pm"), ElementsAre("21:00"));
  EXPECT_THAT(Values("tomorrow and then friday"), ElementsAre("2026-11-30", "2026-12-04"));
  std::vector<DateTimeMatch> m = FindDateTimes("call tomorrow at 5pm", kToday);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].begin, 5u);
  EXPECT_EQ(m[0].end, 20u);
  EXPECT_EQ(m[0].date_end, 13u);    // "tomorrow"
  EXPECT_EQ(m[0].time_begin, 17u);  // "5pm"
}

TEST(DateTimeTest, ChineseDates) {
  EXPECT_THAT(Values("明天"), ElementsAre("2026-11-30"));
  EXPECT_THAT(Values("后天可以吗"), ElementsAre("2026-12-01"));
  EXPECT_THAT(Values("大后天"), ElementsAre("2026-12-02"));
  EXPECT_THAT(Values("昨天到的"), ElementsAre("2026-11-28"));
  EXPECT_THAT(Values("3天后"), ElementsAre("2026-12-02"));
  EXPECT_THAT(Values("十天以后"), ElementsAre("2026-12-09"));
  EXPECT_THAT(Values("12月3日"), ElementsAre("2026-12-03"));
  EXPECT_THAT(Values("12月3号"), ElementsAre("2026-12-03"));
  EXPECT_THAT(Values("2025年12月3日"), ElementsAre("2025-12-03"));
  EXPECT_THAT(Values("十二月三日"), ElementsAre("2026-12-03"));
  EXPECT_THAT(Values("二〇二七年一月二十日"), ElementsAre("2027-01-20"));
}

TEST(DateTimeTest, ChineseWeekdaysCountCalendarWeeks) {
  // Today is Sunday 29 Nov 2026; the week runs Monday 23 to Sunday 29.
  EXPECT_THAT(Values("下周一"), ElementsAre("2026-11-30"));
  EXPECT_THAT(Values("下星期五"), ElementsAre("2026-12-04"));
  EXPECT_THAT(Values("这周五"), ElementsAre("2026-11-27"));
  EXPECT_THAT(Values("上周五下的单"), ElementsAre("2026-11-20"));
  EXPECT_THAT(Values("下下周日"), ElementsAre("2026-12-13"));
  EXPECT_THAT(Values("周三"), ElementsAre("2026-12-02"));  // Bare: the next one.
  EXPECT_THAT(Values("礼拜天"), ElementsAre("2026-11-29"));
  // On a Wednesday, 下周五 is Friday of next week, not the coming Friday.
  EXPECT_THAT(Values("下周五", absl::CivilDay(2026, 12, 2)), ElementsAre("2026-12-11"));
  EXPECT_THAT(Values("一周一次"), IsEmpty());  // Once a week.
}

TEST(DateTimeTest, ChineseTimes) {
  EXPECT_THAT(Values("下午三点"), ElementsAre("15:00"));
  EXPECT_THAT(Values("晚上8点半"), ElementsAre("20:30"));
  EXPECT_THAT(Values("上午十点十五分"), ElementsAre("10:15"));
  EXPECT_THAT(Values("上午十点十五"), ElementsAre("10:15"));
  EXPECT_THAT(Values("中午12点"), ElementsAre("12:00"));
  EXPECT_THAT(Values("中午一点"), ElementsAre("13:00"));
  EXPECT_THAT(Values("3点"), ElementsAre("03:00"));
  EXPECT_THAT(Values("三点一刻"), ElementsAre("03:15"));
  EXPECT_THAT(Values("下午15:00"), ElementsAre("15:00"));
  EXPECT_THAT(Values("能快一点吗"), IsEmpty());  // "a bit faster"
  EXPECT_THAT(Values("便宜一点"), IsEmpty());
  EXPECT_THAT(Values("明天下午三点"), ElementsAre("2026-11-30T15:00"));
  EXPECT_THAT(Values("今晚八点"), ElementsAre("2026-11-29T20:00"));
  EXPECT_THAT(Values("下周一上午10点"), ElementsAre("2026-11-30T10:00"));
}

TEST(DateTimeTest, ChineseNumbers) {
  EXPECT_EQ(ParseChineseNumber("十"), 10);
  EXPECT_EQ(ParseChineseNumber("十二"), 12);
  EXPECT_EQ(ParseChineseNumber("二十三"), 23);
  EXPECT_EQ(ParseChineseNumber("两"), 2);
  EXPECT_EQ(ParseChineseNumber("一百零五"), 105);
  EXPECT_EQ(ParseChineseNumber("二〇二六"), 2026);
  EXPECT_EQ(ParseChineseNumber("三千二百"), 3200);
  EXPECT_EQ(ParseChineseNumber("三四十"), std::nullopt);
  EXPECT_EQ(ParseChineseNumber("十百"), std::nullopt);
  EXPECT_EQ(ParseChineseNumber("点"), std::nullopt);
  EXPECT_EQ(ParseChineseNumber(""), std::nullopt);
}

TEST(DateTimeTest, NothingInOrdinaryText) {
  EXPECT_THAT(Values("where is my order 12345678?"), IsEmpty());
  EXPECT_THAT(Values("my card ends in 4242"), IsEmpty());
  EXPECT_THAT(Values("我的订单到哪了"), IsEmpty());
  EXPECT_THAT(Values(""), IsEmpty());
}

}  // namespace
}  // namespace helpline::dst
