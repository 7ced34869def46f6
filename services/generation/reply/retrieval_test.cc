#include "services/generation/reply/retrieval.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace helpline::generation::reply {
namespace {

TEST(TfidfTest, FindsTheDuplicateAndPrefersRareWords) {
  const TfidfIndex index({"where is my order", "i want a refund for my order",
                          "cancel my subscription", "where is my parcel"});
  EXPECT_EQ(index.Nearest("i want a refund for my order"), 1u);
  EXPECT_EQ(index.Nearest("Cancel my Subscription!"), 2u);
  // "parcel" is rarer than "order": it decides.
  EXPECT_EQ(index.Nearest("my parcel"), 3u);
  // Nothing in common: the first document, with score 0.
  EXPECT_EQ(index.Nearest("zzz"), 0u);
  EXPECT_EQ(index.Best("zzz").score, 0.0);
  // Skipping the best leaves the next best.
  EXPECT_EQ(index.Best("where is my parcel", [](size_t d) { return d == 3; }).document, 0u);
  EXPECT_GT(index.Best("where is my parcel").score, 0.0);
  // The cosine: 1 for a duplicate (case and punctuation aside), below for a partial match,
  // 0 with nothing in common; words the index does not know do not count.
  EXPECT_NEAR(index.Best("Cancel my subscription?").cosine, 1.0, 1e-9);
  EXPECT_NEAR(index.Best("cancel my subscription zzz").cosine, 1.0, 1e-9);
  const double partial = index.Best("cancel my order").cosine;
  EXPECT_GT(partial, 0.1);
  EXPECT_LT(partial, 0.9);
  EXPECT_EQ(index.Best("zzz").cosine, 0.0);
}

v1::GenerationContext Context(const std::string& intent, const std::string& user,
                              const std::string& previous_reply = "") {
  v1::GenerationContext c;
  c.mutable_state()->set_active_intent(intent);
  c.set_user_text(user);
  if (!previous_reply.empty()) c.add_history()->set_reply(previous_reply);
  return c;
}

TEST(RetrievalKeyTest, PreviousReplyIntentSortedSlotsMissingAndTheCustomer) {
  v1::GenerationContext c = Context("track_order", "where is it", "Hello!");
  (*c.mutable_state()->mutable_slots())["order_id"].set_value("A-1");
  (*c.mutable_state()->mutable_slots())["email"].set_value("a@b.c");
  c.mutable_state()->add_missing_slots("zip");
  c.set_exemplar("not part of the key");
  EXPECT_EQ(RetrievalKey(c), "Hello!\ntrack_order\nemail a@b.c order_id A-1\nzip\nwhere is it");
}

TEST(ExemplarIndexTest, NearestReplyOutsideTheSkippedGroupAndNoneWithoutSharedWords) {
  auto entry = [](const v1::GenerationContext& c, std::string reply, std::string group) {
    return ExemplarIndex::Entry{RetrievalKey(c), std::move(reply), std::move(group)};
  };
  const ExemplarIndex index({
      entry(Context("track_order", "where is my parcel"), "Your {{order_id}} ships today.", "d1"),
      entry(Context("track_order", "where is my parcel now"), "It is on its way.", "d2"),
      entry(Context("refund", "i want my money back"), "I can refund {{order_id}}.", "d3"),
  });
  ASSERT_EQ(index.size(), 3u);
  const v1::GenerationContext query = Context("track_order", "where is my parcel");
  const std::string* found = index.Find(query);
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(*found, "Your {{order_id}} ships today.");
  // The turn's own dialogue is left out: the next nearest.
  found = index.Find(query, "d1");
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(*found, "It is on its way.");
  EXPECT_EQ(index.Find(Context("", "zzz")), nullptr);
  EXPECT_EQ(ExemplarIndex({}).Find(query), nullptr);
}

}  // namespace
}  // namespace helpline::generation::reply
