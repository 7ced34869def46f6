#include "services/generation/reply/entities.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/shop_domain.h"

namespace helpline::generation::reply {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::unique_ptr<const EntityDetector> Detector() {
  const auto& shop = testutil::ShopDomain();
  EXPECT_TRUE(shop.ok()) << shop.status();
  absl::StatusOr<std::unique_ptr<const EntityDetector>> d = EntityDetector::Create(*shop);
  EXPECT_TRUE(d.ok()) << d.status();
  return *std::move(d);
}

std::vector<std::string> Describe(const EntityDetector& d, absl::string_view text) {
  std::vector<std::string> out;
  for (const Entity& e : d.Find(text)) {
    out.push_back(std::string(EntityKindName(e.kind)) + ":" + e.key);
  }
  return out;
}

TEST(EntityKeysTest, CanonicalForms) {
  EXPECT_EQ(EmailKey(" Jane.Doe@Example.COM "), "jane.doe@example.com");
  EXPECT_EQ(DigitsKey("+1 (415) 555-0100"), "14155550100");
  EXPECT_EQ(AmountKey("1,299.00"), "1299");
  EXPECT_EQ(AmountKey("49.90"), "49.9");
  EXPECT_EQ(AmountKey("49,9"), "49.9");
  EXPECT_EQ(AmountKey("0.50"), "0.5");
  EXPECT_EQ(AmountKey("1,299"), "1299");
  EXPECT_EQ(AlnumKey("a-1234567"), "A1234567");
  EXPECT_TRUE(SamePhone("442079460958", "02079460958"));
  EXPECT_TRUE(SamePhone("8613812345678", "13812345678"));
  EXPECT_FALSE(SamePhone("13812345678", "13812345679"));
  EXPECT_FALSE(SamePhone("12345", "912345"));  // Too short to match by suffix.
  EXPECT_TRUE(PassesLuhn("4111111111111111"));
  EXPECT_FALSE(PassesLuhn("4111111111111112"));
}

TEST(EntityDetectorTest, FindsEachKindInEnglish) {
  auto d = Detector();
  EXPECT_THAT(Describe(*d, "I sent the label to jane.doe@example.com for order A-1234567."),
              ElementsAre("email:jane.doe@example.com", "slot_pattern:A1234567"));
  EXPECT_THAT(Describe(*d, "Call us on +44 20 7946 0958 or (415) 555-0100."),
              ElementsAre("phone:442079460958", "phone:4155550100"));
  EXPECT_THAT(Describe(*d, "Your card 4111 1111 1111 1111 was charged $1,299.00 twice."),
              ElementsAre("card:4111111111111111", "amount:1299"));
}

TEST(EntityDetectorTest, FindsEachKindInChinese) {
  auto d = Detector();
  EXPECT_THAT(Describe(*d, "已为订单12345678退款49.9元，到账后短信通知13812345678。"),
              ElementsAre("slot_pattern:12345678", "amount:49.9", "phone:13812345678"));
  EXPECT_THAT(Describe(*d, "退款￥88会原路退回。"), ElementsAre("amount:88"));
}

TEST(EntityDetectorTest, OrdinaryNumbersAreNotEntities) {
  auto d = Detector();
  EXPECT_THAT(d->Find("Refunds take 5 to 10 business days; the link is valid for 1 hour, "
                      "and returns are free within 30 days."),
              IsEmpty());
  EXPECT_THAT(d->Find("一般 5 至 10 个工作日到账，请在 30 天内寄回。"), IsEmpty());
}

TEST(EntityDetectorTest, LooseKeysCoverUnformattedValues) {
  auto d = Detector();
  std::vector<std::string> keys = d->LooseKeys("my number is 415 555 0100 and order a-1234567");
  EXPECT_THAT(keys, testing::Contains("4155550100"));
  EXPECT_THAT(keys, testing::Contains("A1234567"));
}

TEST(EntityDetectorTest, SlotValueKeys) {
  auto d = Detector();
  const domain::Domain& shop = **testutil::ShopDomain();
  EXPECT_EQ(d->SlotValueKey(*shop.FindSlot("order_id"), "A-1234567"), "A1234567");
  EXPECT_EQ(d->SlotValueKey(*shop.FindSlot("amount"), "49.90"), "49.9");
  EXPECT_EQ(d->SlotValueKey(*shop.FindSlot("email"), "Jane@Example.com"), "jane@example.com");
  EXPECT_EQ(d->SlotValueKey(*shop.FindSlot("phone"), "+8613812345678"), "8613812345678");
  EXPECT_EQ(d->SlotValueKey(*shop.FindSlot("reason"), "damaged"), "");
}

TEST(KeySetTest, PhonesMatchBySuffix) {
  KeySet keys;
  keys.Add("13812345678");
  keys.Add("");
  Entity phone;
  phone.kind = EntityKind::kPhone;
  phone.key = "8613812345678";
  EXPECT_TRUE(keys.Contains(phone));
  Entity order = phone;
  order.kind = EntityKind::kSlotPattern;
  EXPECT_FALSE(keys.Contains(order));  // Only phone numbers match by suffix.
  order.key = "13812345678";
  EXPECT_TRUE(keys.Contains(order));
}

}  // namespace
}  // namespace helpline::generation::reply
