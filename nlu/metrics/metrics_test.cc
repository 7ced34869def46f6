// Small cases whose answers were worked out by hand (the arithmetic is in the comments).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "nlu/metrics/dst_metrics.h"
#include "nlu/metrics/utterance_metrics.h"

namespace helpline::nlu::metrics {
namespace {

using data::SlotSpan;
using ::testing::DoubleNear;
using ::testing::ElementsAre;
using ::testing::Key;
using ::testing::Pair;

data::UtteranceExample Example(const std::string& intent, std::vector<SlotSpan> spans = {},
                               bool in_scope = true) {
  data::UtteranceExample e;
  e.text = "some text here that is long enough";
  e.intent = intent;
  e.in_scope = in_scope;
  e.spans = std::move(spans);
  return e;
}

TEST(SpanTest, ExactTypeAndBothEnds) {
  const std::vector<SlotSpan> gold = {{"city", 0, 8, ""}, {"date", 9, 14, ""}, {"time", 20, 24, ""}};
  // Right; wrong end; wrong type over a gold span; a duplicate of the right one.
  const std::vector<SlotSpan> predicted = {
      {"city", 0, 8, ""}, {"date", 9, 13, ""}, {"city", 20, 24, ""}, {"city", 0, 8, ""}};
  const SpanCounts c = CompareSpans(gold, predicted);
  EXPECT_EQ(c.correct, 1u);
  EXPECT_EQ(c.predicted, 4u);
  EXPECT_EQ(c.gold, 3u);
  // P = 1/4, R = 1/3, F1 = 2 * (1/12) / (7/12) = 2/7.
  EXPECT_DOUBLE_EQ(c.F1(), 2.0 / 7);
  EXPECT_DOUBLE_EQ(SpanCounts{}.F1(), 1.0);
  EXPECT_DOUBLE_EQ((SpanCounts{0, 2, 0}).F1(), 0.0);
}

TEST(UtteranceScorerTest, ClincDefinitions) {
  UtteranceScorer scorer("oos", SlotMetric::kNone);
  scorer.Add(Example("balance"), {"balance", 0.9f, {}});       // in scope, right
  scorer.Add(Example("transfer"), {"", 0.1f, {}});             // in scope, called oos
  scorer.Add(Example("oos", {}, false), {"", 0.2f, {}});       // oos found ("" = oos)
  scorer.Add(Example("oos", {}, false), {"oos", 0.9f, {}});    // oos found
  scorer.Add(Example("oos", {}, false), {"balance", 0.8f, {}});  // oos missed
  EXPECT_THAT(scorer.Result(),
              ElementsAre(Pair("in_scope_accuracy", 0.5), Pair("intent_accuracy", 0.6),
                          Pair("oos_recall", DoubleNear(2.0 / 3, 1e-12))));
}

TEST(UtteranceScorerTest, SlotsAndSentences) {
  UtteranceScorer scorer("", SlotMetric::kSlots);
  // 1: all right. 2: intent right, one of two spans. 3: spans right, intent wrong.
  scorer.Add(Example("Play", {{"artist", 5, 10, ""}}), {"Play", 1, {{"artist", 5, 10, ""}}});
  scorer.Add(Example("Rate", {{"book", 0, 4, ""}, {"stars", 6, 7, ""}}),
             {"Rate", 1, {{"book", 0, 4, ""}}});
  scorer.Add(Example("Play", {{"song", 1, 3, ""}}), {"Rate", 1, {{"song", 1, 3, ""}}});
  // Spans: 3 correct of 3 predicted and 4 gold: P 1, R 3/4, F1 = 1.5 / 1.75 = 6/7.
  EXPECT_THAT(scorer.Result(),
              ElementsAre(Pair("intent_accuracy", DoubleNear(2.0 / 3, 1e-12)),
                          Pair("sentence_accuracy", DoubleNear(1.0 / 3, 1e-12)),
                          Pair("slot_f1", DoubleNear(6.0 / 7, 1e-12))));
  UtteranceScorer entities("", SlotMetric::kEntities);
  entities.Add(Example("x", {{"order_id", 3, 9, ""}}), {"x", 1, {{"order_id", 3, 9, ""}}});
  EXPECT_THAT(entities.Result(), ElementsAre(Key("entity_f1"), Key("intent_accuracy")));
}

TEST(TokenSortRatioTest, FuzzywuzzyDefinition) {
  EXPECT_DOUBLE_EQ(TokenSortRatio("New York", "york, NEW!"), 1.0);
  // LCS("abc", "abd") = 2: 2 * 2 / 6 = 0.667 -> 0.67.
  EXPECT_DOUBLE_EQ(TokenSortRatio("abc", "abd"), 0.67);
  // "3 pm" vs "00 3 pm" (sorted tokens of "3:00 pm"): LCS 4, 8 / 11 = 0.727 -> 0.73.
  EXPECT_DOUBLE_EQ(TokenSortRatio("3 pm", "3:00 pm"), 0.73);
  // U+00E9 is in the range force_ascii drops.
  EXPECT_DOUBLE_EQ(TokenSortRatio("caf\xC3\xA9", "caf"), 1.0);
  EXPECT_DOUBLE_EQ(TokenSortRatio("", "x"), 0.0);
  EXPECT_DOUBLE_EQ(TokenSortRatio("!!", "x"), 0.0);
  // LCS("abcd", "wxyz") = 0.
  EXPECT_DOUBLE_EQ(TokenSortRatio("abcd", "wxyz"), 0.0);
}

data::ServiceSchema Service() {
  data::ServiceSchema s;
  s.name = "Cars_1";
  s.slots = {{"a", "", true, {"X", "Y"}}, {"b", "", false, {}}, {"c", "", false, {}}};
  return s;
}

data::FrameState State(std::string intent, std::map<std::string, std::vector<std::string>> values,
                       std::vector<std::string> requested = {}) {
  data::FrameState s;
  s.active_intent = std::move(intent);
  s.slot_values = std::move(values);
  s.requested_slots = std::move(requested);
  return s;
}

TEST(SgdFrameTest, JointIsTheProductOverAllSlots) {
  const data::ServiceSchema service = Service();
  const data::FrameState gold = State("Get", {{"a", {"X"}}, {"b", {"new york", "NYC"}}}, {"x", "y"});
  // Token-sorted "york new" matches; c unset on both sides.
  SgdFrameScores s = ScoreSgdFrame(gold, State("Get", {{"a", {"X"}}, {"b", {"york new"}}}, {"x"}),
                                   service);
  EXPECT_DOUBLE_EQ(s.joint_goal, 1.0);
  EXPECT_DOUBLE_EQ(*s.average_goal, 1.0);
  EXPECT_DOUBLE_EQ(s.active_intent, 1.0);
  EXPECT_NEAR(s.requested_slot_f1, 2.0 / 3, 1e-12);  // P 1, R 1/2.
  // Categorical values compare exactly ("x" != "X"); b scores 0.67: joint 0, average 0.335.
  s = ScoreSgdFrame(State("Get", {{"a", {"X"}}, {"b", {"abc"}}}),
                    State("Other", {{"a", {"x"}}, {"b", {"abd"}}}), service);
  EXPECT_DOUBLE_EQ(s.joint_goal, 0.0);
  EXPECT_DOUBLE_EQ(*s.average_goal, 0.335);
  EXPECT_DOUBLE_EQ(s.active_intent, 0.0);
  EXPECT_DOUBLE_EQ(s.requested_slot_f1, 1.0);  // Both empty.
  // A fuzzy score multiplies into the joint; a slot set only by the prediction zeroes it.
  s = ScoreSgdFrame(State("Get", {{"b", {"abc"}}}), State("Get", {{"b", {"abd"}}}), service);
  EXPECT_DOUBLE_EQ(s.joint_goal, 0.67);
  s = ScoreSgdFrame(State("Get", {{"b", {"abc"}}}), State("Get", {{"b", {"abd"}}, {"c", {"q"}}}, {"z"}),
                    service);
  EXPECT_DOUBLE_EQ(s.joint_goal, 0.0);
  EXPECT_DOUBLE_EQ(*s.average_goal, 0.67);
  EXPECT_DOUBLE_EQ(s.requested_slot_f1, 0.0);  // P 0 (claimed z), R 1 (nothing asked).
  // No gold slot: no average goal accuracy for the frame.
  EXPECT_FALSE(ScoreSgdFrame(State("NONE", {}), State("NONE", {}), service).average_goal);
}

TEST(SgdScorerTest, SeenAndUnseenServices) {
  SgdScorer scorer({"Cars_1"});
  scorer.AddFrame("Cars_1", {1.0, 1.0, 1.0, 1.0});
  scorer.AddFrame("Cars_1", {0.0, std::nullopt, 1.0, 0.5});
  scorer.AddFrame("Bus_9", {0.67, 0.67, 0.0, 1.0});
  const auto r = scorer.Result();
  EXPECT_NEAR(r.at("joint_goal_accuracy"), 1.67 / 3, 1e-12);
  EXPECT_DOUBLE_EQ(r.at("joint_goal_accuracy_seen"), 0.5);
  EXPECT_DOUBLE_EQ(r.at("joint_goal_accuracy_unseen"), 0.67);
  EXPECT_NEAR(r.at("active_intent_accuracy"), 2.0 / 3, 1e-12);
  EXPECT_DOUBLE_EQ(r.at("requested_slot_f1_seen"), 0.75);
  EXPECT_DOUBLE_EQ(r.at("average_goal_accuracy"), (1.0 + 0.67) / 2);  // Two frames with goals.
  EXPECT_EQ(r.count("joint_goal_accuracy_unseen"), 1u);
  EXPECT_EQ(SgdScorer({}).Result().size(), 0u);
}

TEST(SgdScorerTest, AddTurnScoresGoldFramesAndMissingPredictionsAsEmpty) {
  data::DialogueDataset schema;
  schema.services = {Service()};
  data::Frame frame;
  frame.service = "Cars_1";
  frame.has_state = true;
  frame.state = State("NONE", {});
  SgdScorer scorer({});
  scorer.AddTurn({frame}, {}, schema);  // Nothing predicted = NONE, no slots: all right.
  frame.state = State("Get", {{"c", {"x"}}});
  scorer.AddTurn({frame}, {}, schema);  // Intent and c wrong.
  EXPECT_EQ(scorer.frames(), 2u);
  EXPECT_DOUBLE_EQ(scorer.Result().at("joint_goal_accuracy"), 0.5);
  EXPECT_DOUBLE_EQ(scorer.Result().at("active_intent_accuracy"), 0.5);
}

TEST(MultiwozTest, Normalisation) {
  EXPECT_EQ(NormalizeMultiwozValue("  Don't  Care "), "dontcare");
  EXPECT_EQ(NormalizeMultiwozValue("do n't care"), "dontcare");
  EXPECT_EQ(NormalizeMultiwozValue("not mentioned"), "");
  EXPECT_EQ(NormalizeMultiwozValue("none"), "");
  EXPECT_EQ(NormalizeMultiwozValue("Guest House"), "guesthouse");
  EXPECT_EQ(NormalizeMultiwozValue("center"), "centre");
  EXPECT_EQ(NormalizeMultiwozValue("Pizza  Hut"), "pizza hut");
}

TEST(MultiwozTest, JointGoalAndSlotAccuracy) {
  data::DialogueDataset schema;
  schema.format = "multiwoz21";
  data::ServiceSchema hotel;
  hotel.name = "hotel";
  hotel.slots = {{"area", "", true, {}}, {"pricerange", "", true, {}}, {"type", "", true, {}},
                 {"stars", "", true, {}}};
  data::ServiceSchema police;
  police.name = "police";
  schema.services = {hotel, police};
  data::Frame gold_hotel;
  gold_hotel.service = "hotel";
  gold_hotel.has_state = true;
  gold_hotel.state = State("", {{"area", {"centre"}}, {"type", {"dont care"}}, {"pricerange", {"cheap"}}});
  data::Frame gold_police;
  gold_police.service = "police";
  gold_police.has_state = true;
  MultiwozScorer scorer(schema);
  // Turn 1: right after normalisation; a "none" value and a non-evaluated domain are ignored.
  scorer.AddTurn({gold_hotel, gold_police},
                 {{"hotel", State("", {{"area", {"center"}}, {"type", {"dontcare"}},
                                       {"pricerange", {"Cheap"}}, {"stars", {"none"}}})},
                  {"hospital", State("", {{"department", {"x"}}})}});
  // Turn 2: type missing: joint wrong, 3 of 4 slots right.
  scorer.AddTurn({gold_hotel, gold_police},
                 {{"hotel", State("", {{"area", {"centre"}}, {"pricerange", {"cheap"}}})}});
  EXPECT_EQ(scorer.turns(), 2u);
  EXPECT_THAT(scorer.Result(), ElementsAre(Pair("joint_goal_accuracy", 0.5),
                                           Pair("slot_accuracy", 7.0 / 8)));
}

}  // namespace
}  // namespace helpline::nlu::metrics
