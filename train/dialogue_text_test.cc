#include "train/dialogue_text.h"

#include <cmath>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace helpline::train {
namespace {

TEST(DialogueTextTest, PlaceholdersReplaceWordBoundedStateValues) {
  const std::map<std::string, std::string> slots = {
      {"city", "San Jose"}, {"people", "2"}, {"area", "dontcare"}, {"food", "Indian"}};
  EXPECT_EQ(InsertPlaceholders("A table for 2 in san jose at 12:00, indian food.", slots),
            "A table for {{people}} in {{city}} at 12:00, {{food}} food.");
  // Not inside words or numbers, and dontcare is never a value.
  EXPECT_EQ(InsertPlaceholders("Indiana has 22 San Joseans; dontcare.", slots),
            "Indiana has 22 San Joseans; dontcare.");
  // The longest value first; never inside an earlier placeholder.
  EXPECT_EQ(InsertPlaceholders("Royal Spice is in the north, Royal.",
                               {{"name", "Royal Spice"}, {"brand", "Royal"}, {"x", "name"}}),
            "{{name}} is in the north, {{brand}}.");
}

TEST(DialogueTextTest, BitextExampleHasTheServingLayout) {
  TextOptions options;
  options.system_prompt = "You help.";
  absl::StatusOr<std::vector<TextDialogue>> d = ParseBitext(
      "{\"instruction\": \"where is order {{Order Number}}\", \"response\": \"Order  {{Order Number}}\\n is "
      "shipped.\"}\n\n",
      "train.jsonl", options);
  ASSERT_TRUE(d.ok()) << d.status();
  absl::StatusOr<std::vector<TrainingExample>> ex = RenderExamples(*d, options);
  ASSERT_TRUE(ex.ok()) << ex.status();
  ASSERT_EQ(ex->size(), 1u);
  EXPECT_EQ((*ex)[0].Text(),
            "You help.\n"
            "Intent: none\n"
            "Known: none\n"
            "Missing: none\n"
            "Customer: where is order {{order_number}}\n"
            "Agent: Order {{order_number}} is shipped.<|endoftext|>");
  EXPECT_EQ((*ex)[0].origin, "train.jsonl:1#0");
}

TEST(DialogueTextTest, CamrestKeepsHistoryAndStateAndPlaceholders) {
  const std::string content = R"([{"dial": [
    {"turn": 0, "usr": {"transcript": "Cheap food in the north please", "slu": [
        {"act": "inform", "slots": [["pricerange", "cheap"]]}, {"act": "inform", "slots": [["area", "north"]]}]},
     "sys": {"sent": "What food would you like?"}},
    {"turn": 1, "usr": {"transcript": "Indian", "slu": [
        {"act": "inform", "slots": [["pricerange", "cheap"]]}, {"act": "inform", "slots": [["area", "north"]]},
        {"act": "inform", "slots": [["food", "indian"]]}, {"act": "request", "slots": [["slot", "phone"]]}]},
     "sys": {"sent": "Royal Spice serves cheap Indian food in the north."}}]}])";
  TextOptions options;
  options.max_history_turns = 1;
  absl::StatusOr<std::vector<TextDialogue>> d = ParseCamrest(content, "val.json", options);
  ASSERT_TRUE(d.ok()) << d.status();
  absl::StatusOr<std::vector<TrainingExample>> ex = RenderExamples(*d, options);
  ASSERT_TRUE(ex.ok());
  ASSERT_EQ(ex->size(), 2u);
  const std::string& text = (*ex)[1].Text();
  EXPECT_EQ(text.substr(text.find('\n') + 1),
            "Intent: find_restaurant\n"
            "Known: area=north, pricerange=cheap\n"
            "Missing: none\n"
            "Customer: Cheap food in the north please\n"
            "Agent: What food would you like?\n"
            "Intent: find_restaurant\n"
            "Known: area=north, food=indian, pricerange=cheap\n"
            "Missing: none\n"
            "Customer: Indian\n"
            "Agent: Royal Spice serves {{pricerange}} {{food}} food in the {{area}}.<|endoftext|>");
  EXPECT_EQ(text.rfind("You are the assistant of a Cambridge restaurant guide.", 0), 0u);
}

TEST(DialogueTextTest, TaskmasterStateComesFromApiAnnotations) {
  const std::string content = R"([{"conversation_id": "dlg-1", "utterances": [
    {"index": 0, "speaker": "user", "text": "A latte please.", "annotations": [
      {"name": "api_call", "value": "add_order_item", "context": "api_call_0"},
      {"name": "request", "value": "{\"menu_item_id\": \"latte-1\", \"quantity\": \"1\"}", "context": "api_call_0"},
      {"name": "response", "value": "{\"order_id\": \"89540\"}", "context": "api_response_0"}]},
    {"index": 1, "speaker": "assistant", "text": "Sure."},
    {"index": 2, "speaker": "assistant", "text": "Your order 89540 is placed."}]}])";
  TextOptions options;
  absl::StatusOr<std::vector<TrainingExample>> ex =
      RenderExamples(*ParseTaskmaster(content, "dev.json", options), options);
  ASSERT_TRUE(ex.ok());
  ASSERT_EQ(ex->size(), 1u);
  EXPECT_NE((*ex)[0].prompt.find("Intent: order_drink\nKnown: order_id=89540, quantity=1\n"), std::string::npos);
  EXPECT_EQ((*ex)[0].reply, " Sure. Your order {{order_id}} is placed.");
}

TEST(DialogueTextTest, SgdUsesTheActiveFrameAndTheSchemaRequiredSlots) {
  nlu::data::DialogueDataset data;
  data.format = "sgd";
  data.origin = "dialogues_001.json";
  nlu::data::ServiceSchema service;
  service.name = "Restaurants_1";
  service.description = "A leading provider for restaurant search";
  nlu::data::IntentSchema intent;
  intent.name = "ReserveRestaurant";
  intent.required_slots = {"restaurant_name", "city", "time"};
  service.intents.push_back(intent);
  data.services.push_back(service);
  nlu::data::Dialogue d;
  d.id = "1_00000";
  d.services = {"Restaurants_1"};
  nlu::data::Turn user;
  user.speaker = nlu::data::Speaker::kUser;
  user.utterance = "Book a table at Sino in Palo Alto.";
  nlu::data::Frame frame;
  frame.service = "Restaurants_1";
  frame.has_state = true;
  frame.state.active_intent = "ReserveRestaurant";
  frame.state.slot_values = {{"restaurant_name", {"Sino"}}, {"city", {"Palo Alto", "palo alto"}}};
  user.frames.push_back(frame);
  nlu::data::Turn system;
  system.speaker = nlu::data::Speaker::kSystem;
  system.utterance = "What time at Sino?";
  d.turns = {user, system};
  data.dialogues.push_back(d);
  TextOptions options;
  absl::StatusOr<std::vector<TrainingExample>> ex = RenderExamples(FromDialogueDataset(data, options), options);
  ASSERT_TRUE(ex.ok());
  ASSERT_EQ(ex->size(), 1u);
  EXPECT_EQ((*ex)[0].Text(),
            "You are the customer service assistant of a leading provider for restaurant search. Be brief, "
            "warm and precise.\n"
            "Intent: ReserveRestaurant\n"
            "Known: city=Palo Alto, restaurant_name=Sino\n"
            "Missing: time\n"
            "Customer: Book a table at Sino in Palo Alto.\n"
            "Agent: What time at {{restaurant_name}}?<|endoftext|>");
}

TEST(DialogueTextTest, BadFilesAreNamedWithTheirLine) {
  TextOptions options;
  absl::StatusOr<std::vector<TextDialogue>> bitext = ParseBitext(
      "{\"instruction\": \"a\", \"response\": \"b\"}\n{\"instruction\": \"a\"\n", "train.jsonl", options);
  EXPECT_EQ(bitext.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bitext.status().message().find("train.jsonl:2"), std::string::npos) << bitext.status();
  absl::StatusOr<std::vector<TextDialogue>> missing =
      ParseBitext("{\"instruction\": \"a\"}\n", "x.jsonl", options);
  EXPECT_NE(missing.status().message().find("x.jsonl:1"), std::string::npos);
  absl::StatusOr<std::vector<TextDialogue>> camrest =
      ParseCamrest("[{\"dial\": [\n{\"turn\": 0,\n \"usr\": }]}]", "val.json", options);
  EXPECT_EQ(camrest.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(camrest.status().message().find("val.json:3"), std::string::npos) << camrest.status();
  absl::StatusOr<std::vector<TextDialogue>> tm = ParseTaskmaster("[{\"utterances\": [{}]}]", "t.json", options);
  EXPECT_NE(tm.status().message().find("t.json"), std::string::npos);
  EXPECT_EQ(ReadTextDialogues("/nonexistent/dir", TextFormat::kCamrest, options).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(ParseTextFormat("woz").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*ParseTextFormat("taskmaster"), TextFormat::kTaskmaster);
}

// Three one-turn Bitext dialogues: two about refunds, one about delivery. Each example's
// exemplar is the nearest reply of another dialogue (never its own), placeholders kept, on an
// Example: line just before the customer's; a drop share of 1 leaves every prompt as it was.
// The example records of a Bitext JSON-lines text, rendered with the system prompt "You help.".
absl::StatusOr<std::vector<ExampleRecord>> BitextRecords(const std::string& jsonl) {
  TextOptions options;
  options.system_prompt = "You help.";
  absl::StatusOr<std::vector<TextDialogue>> d = ParseBitext(jsonl, "train.jsonl", options);
  if (!d.ok()) return d.status();
  return RenderExampleRecords(*d, options);
}

TEST(DialogueTextTest, ExemplarsComeFromOtherDialoguesAndCanBeDropped) {
  absl::StatusOr<std::vector<ExampleRecord>> records = BitextRecords(
      "{\"instruction\": \"i want a refund for order {{Order Number}}\", \"response\": \"Refund "
      "{{Order Number}} is on its way.\"}\n"
      "{\"instruction\": \"can i get a refund please\", \"response\": \"Sure, which order?\"}\n"
      "{\"instruction\": \"where is my parcel\", \"response\": \"It ships today.\"}\n");
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 3u);
  const std::string plain = (*records)[0].example.prompt;

  ExemplarOptions exemplars;
  exemplars.drop_share = 0.0;
  ASSERT_TRUE(AddExemplars(*records, *records, exemplars).ok());
  EXPECT_EQ((*records)[0].context.exemplar(), "Sure, which order?");
  EXPECT_EQ((*records)[1].context.exemplar(), "Refund {{order_number}} is on its way.");
  EXPECT_EQ((*records)[0].example.prompt,
            "You help.\nIntent: none\nKnown: none\nMissing: none\n"
            "Example: Sure, which order?\n"
            "Customer: i want a refund for order {{order_number}}\nAgent:");
  // "where is my parcel" shares no word with the other dialogues: no exemplar, no line.
  EXPECT_EQ((*records)[2].context.exemplar(), "");
  EXPECT_EQ((*records)[2].example.prompt.find("Example:"), std::string::npos);

  exemplars.drop_share = 1.0;
  ASSERT_TRUE(AddExemplars(*records, *records, exemplars).ok());
  EXPECT_EQ((*records)[0].context.exemplar(), "");
  EXPECT_EQ((*records)[0].example.prompt, plain);

  exemplars.drop_share = 1.5;
  EXPECT_EQ(AddExemplars(*records, *records, exemplars).code(), absl::StatusCode::kInvalidArgument);
}

// similar_replies: after the exemplar, the next nearest replies of other dialogues, nearest
// first, in context.similar_replies (not on the prompt); dialogues that share no word with the
// turn are not among them.
TEST(DialogueTextTest, SimilarRepliesFollowTheExemplar) {
  absl::StatusOr<std::vector<ExampleRecord>> records = BitextRecords(
      "{\"instruction\": \"i want a refund for my order\", \"response\": \"Refunds take a week.\"}\n"
      "{\"instruction\": \"i want a refund for my order today\", \"response\": \"Sure, which order?\"}\n"
      "{\"instruction\": \"a refund please\", \"response\": \"I can help with that.\"}\n"
      "{\"instruction\": \"where is my parcel\", \"response\": \"It ships today.\"}\n"
      "{\"instruction\": \"hello there\", \"response\": \"Hi!\"}\n");
  ASSERT_TRUE(records.ok()) << records.status();
  ExemplarOptions exemplars;
  exemplars.drop_share = 0.0;
  exemplars.similar_replies = 8;
  ASSERT_TRUE(AddExemplars(*records, *records, exemplars).ok());
  const generation::v1::GenerationContext& first = (*records)[0].context;
  EXPECT_EQ(first.exemplar(), "Sure, which order?");
  ASSERT_EQ(first.similar_replies_size(), 2);
  EXPECT_EQ(first.similar_replies(0), "I can help with that.");  // shares "a refund"
  EXPECT_EQ(first.similar_replies(1), "It ships today.");        // shares "my" only
  EXPECT_EQ((*records)[0].example.prompt.find("I can help"), std::string::npos);
  // Fewer asked: the nearest only; none shown an exemplar: none either.
  exemplars.similar_replies = 1;
  ASSERT_TRUE(AddExemplars(*records, *records, exemplars).ok());
  ASSERT_EQ((*records)[0].context.similar_replies_size(), 1);
  EXPECT_EQ((*records)[0].context.similar_replies(0), "I can help with that.");
  EXPECT_EQ((*records)[4].context.exemplar(), "");
  EXPECT_EQ((*records)[4].context.similar_replies_size(), 0);
  exemplars.drop_share = 1.0;
  ASSERT_TRUE(AddExemplars(*records, *records, exemplars).ok());
  EXPECT_EQ((*records)[0].context.similar_replies_size(), 0);
}

TEST(DialogueTextTest, WeightExamplesRepeatsOrThinsEvenly) {
  std::vector<TrainingExample> examples(5);
  for (size_t i = 0; i < examples.size(); ++i) examples[i].reply = std::to_string(i);
  auto replies = [](const std::vector<TrainingExample>& v) {
    std::string out;
    for (const TrainingExample& e : v) out += e.reply;
    return out;
  };
  EXPECT_EQ(replies(*WeightExamples(examples, 1.0)), "01234");
  EXPECT_EQ(replies(*WeightExamples(examples, 3.0)), "000111222333444");
  EXPECT_EQ(replies(*WeightExamples(examples, 0.5)), "13");
  EXPECT_EQ(replies(*WeightExamples(examples, 1.5)), "0112334");
  EXPECT_TRUE(WeightExamples(examples, 0.0)->empty());
  EXPECT_NE(WeightExamples(examples, -1.0).status().message().find("weight -1"),
            absl::string_view::npos);
  EXPECT_FALSE(WeightExamples(examples, std::nan("")).ok());
}

}  // namespace
}  // namespace helpline::train
