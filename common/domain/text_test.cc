#include "common/domain/text.h"

#include <string>

#include "gtest/gtest.h"

namespace helpline::domain::text {
namespace {

TEST(CountTokenUnitsTest, EqualsTheNumberOfTokenUnits) {
  const std::string invalid = "ab\xFF\xFE cd \xE4\xBD";  // Invalid and truncated UTF-8.
  for (const std::string& s : {std::string(""), std::string("   "), std::string("order"),
                               std::string("  Where is   my order? "),
                               std::string("订单 12345678 已找到。"), std::string("我的订单A-1234567还没到"),
                               std::string("a\u3000b\u00A0c\u2003d\te\nf"),
                               std::string("かな カナ ok"), invalid}) {
    EXPECT_EQ(CountTokenUnits(s), TokenUnits(s).size()) << s;
  }
  EXPECT_EQ(CountTokenUnits("  Where is   my order? "), 4u);
  EXPECT_EQ(CountTokenUnits("订单 12345678 已找到。"), 7u);
}

}  // namespace
}  // namespace helpline::domain::text
