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

TEST(TfidfTest, TopListsTheSharingDocumentsBestFirst) {
  const TfidfIndex index({"where is my order", "i want a refund for my order",
                          "cancel my subscription", "where is my parcel", "hello there"});
  auto documents = [](const std::vector<TfidfIndex::Match>& top) {
    std::vector<size_t> d;
    for (const TfidfIndex::Match& m : top) d.push_back(m.document);
    return d;
  };
  const std::vector<TfidfIndex::Match> top = index.Top("where is my parcel", 10);
  // Document 4 shares no word: left out; the first is Best's, scores fall.
  ASSERT_EQ(top.size(), 4u);
  EXPECT_EQ(top[0].document, index.Best("where is my parcel").document);
  EXPECT_NEAR(top[0].cosine, 1.0, 1e-9);
  for (size_t i = 1; i < top.size(); ++i) EXPECT_GE(top[i - 1].score, top[i].score);
  // 2 and 1 share only "my"; the shorter document weighs it more.
  EXPECT_EQ(documents(top), (std::vector<size_t>{3, 0, 2, 1}));
  // Fewer asked: the best ones; skipped documents are not counted.
  EXPECT_EQ(documents(index.Top("where is my parcel", 2)), (std::vector<size_t>{3, 0}));
  EXPECT_EQ(documents(index.Top("where is my parcel", 2, [](size_t d) { return d == 3; })),
            (std::vector<size_t>{0, 2}));
  // "my" alone: documents 0-3 tie on the word; ties go to the lower index after the score.
  const std::vector<TfidfIndex::Match> tied = index.Top("my", 4);
  ASSERT_EQ(tied.size(), 4u);
  for (size_t i = 1; i < tied.size(); ++i) {
    EXPECT_TRUE(tied[i - 1].score > tied[i].score ||
                (tied[i - 1].score == tied[i].score && tied[i - 1].document < tied[i].document));
  }
  EXPECT_TRUE(index.Top("zzz", 3).empty());
  EXPECT_TRUE(index.Top("where", 0).empty());
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
  // The nearest few, nearest first; the skipped group and word-less entries are not among them.
  std::vector<const std::string*> nearest = index.FindNearest(query, 3);
  ASSERT_EQ(nearest.size(), 3u);
  EXPECT_EQ(*nearest[0], "Your {{order_id}} ships today.");
  EXPECT_EQ(*nearest[1], "It is on its way.");
  EXPECT_EQ(*nearest[2], "I can refund {{order_id}}.");
  nearest = index.FindNearest(query, 3, "d2");
  ASSERT_EQ(nearest.size(), 2u);
  EXPECT_EQ(*nearest[1], "I can refund {{order_id}}.");
  EXPECT_TRUE(index.FindNearest(Context("", "zzz"), 3).empty());
}

// A pool of one-turn dialogues has no previous replies: a request's previous reply does not
// take part in the match (here it would pull in the refund entry, whose customer shares its
// words); with one entry that has a previous reply it does.
TEST(ExemplarIndexTest, APreviousReplyCountsOnlyWhenThePoolHasThem) {
  auto entry = [](const v1::GenerationContext& c, const std::string& reply) {
    return ExemplarIndex::Entry{RetrievalKey(c), reply, /*group=*/reply, !c.history().empty()};
  };
  const v1::GenerationContext query =
      Context("", "where is my parcel", "Your refund for the returned shoes was refunded.");
  EXPECT_EQ(RetrievalKey(query, /*with_previous_reply=*/false), "\n\n\nwhere is my parcel");
  std::vector<ExemplarIndex::Entry> one_turn = {
      entry(Context("", "where is my parcel"), "It ships today."),
      entry(Context("", "refund for returned shoes refunded"), "Refunds take a week."),
  };
  const ExemplarIndex without(one_turn);
  const std::string* found = without.Find(query);
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(*found, "It ships today.");
  one_turn.push_back(entry(Context("", "hi", "Hello!"), "Hi!"));
  const ExemplarIndex with(one_turn);
  found = with.Find(query);
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(*found, "Refunds take a week.");
}

}  // namespace
}  // namespace helpline::generation::reply
