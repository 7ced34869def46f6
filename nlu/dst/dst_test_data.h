// Test helper (header only): a tiny SGD-like data set of a shop service whose dialogues need
// context to track: a bare order number right after the system asked for it, "yes" (or "no")
// to a delivery time the system offered, a bare city after a request, and carry-over of
// everything said before. Values are drawn from lists, so the test can hold some back.
#pragma once

#include <string>
#include <vector>

#include "nlu/data/dataset.h"
#include "nlu/dst/dst_model.h"

namespace helpline::nlu::dst::testing {

inline data::ServiceSchema ShopService() {
  data::ServiceSchema s;
  s.name = "Shop_1";
  s.description = "Track and deliver orders";
  s.slots = {{"order_id", "Order number of the purchase", false, {}},
             {"city", "City to deliver to", false, {}},
             {"delivery_time", "Time of the delivery", false, {}},
             {"speed", "Delivery speed", true, {"standard", "express"}}};
  data::IntentSchema track;
  track.name = "TrackOrder";
  track.description = "Find where an order is";
  track.required_slots = {"order_id"};
  data::IntentSchema deliver;
  deliver.name = "ScheduleDelivery";
  deliver.description = "Schedule the delivery of an order";
  deliver.required_slots = {"order_id", "city", "delivery_time"};
  deliver.optional_slots = {{"speed", "standard"}};
  s.intents = {track, deliver};
  return s;
}

inline data::Turn SystemTurn(const std::string& text, std::vector<data::DialogueAct> acts) {
  data::Turn t;
  t.speaker = data::Speaker::kSystem;
  t.utterance = text;
  data::Frame f;
  f.service = "Shop_1";
  f.actions = std::move(acts);
  t.frames.push_back(std::move(f));
  return t;
}

// A user turn with the state after it; `value` (if not empty) is a span of the text for
// `slot`.
inline data::Turn UserTurn(const std::string& text, const std::string& intent,
                           const std::map<std::string, std::string>& state,
                           const std::string& slot = "", const std::string& value = "") {
  data::Turn t;
  t.speaker = data::Speaker::kUser;
  t.utterance = text;
  data::Frame f;
  f.service = "Shop_1";
  f.has_state = true;
  f.state.active_intent = intent;
  for (const auto& [k, v] : state) f.state.slot_values[k] = {v};
  if (!value.empty()) {
    const size_t at = text.find(value);
    f.spans.push_back({slot, at, at + value.size(), value});
  }
  t.frames.push_back(std::move(f));
  return t;
}

inline const std::vector<std::string>& OrderIds() {
  static const std::vector<std::string> kIds = {
      "AB123456", "CD204411", "EF993812", "GH550127", "JK781234", "LM100200", "NP345678",
      "QR909090", "ST121314", "UV565758", "WX131415", "YZ777111", "BC246810", "DF135791"};
  return kIds;
}
inline const std::vector<std::string>& Cities() {
  static const std::vector<std::string> kCities = {
      "Berlin", "Paris", "Madrid", "Lisbon", "Vienna", "Prague", "Oslo",
      "Dublin", "Rome",  "Athens", "Warsaw", "Zurich", "Geneva", "Milan"};
  return kCities;
}
inline const std::vector<std::string>& Times() {
  static const std::vector<std::string> kTimes = {"5 pm", "10 am", "noon", "3:30 pm", "9 am",
                                                  "11 am", "6 pm"};
  return kTimes;
}

// Dialogue i: track an order (bare id after a request), then schedule its delivery (the
// system offers a time: "yes" takes it, "no" does not; a bare city after a request; express
// or standard said in words).
inline data::Dialogue ShopDialogue(size_t i, size_t value_offset) {
  const std::string id = OrderIds()[(i + value_offset) % OrderIds().size()];
  const std::string city = Cities()[(i * 3 + value_offset) % Cities().size()];
  const std::string time = Times()[(i + value_offset) % Times().size()];
  const bool accept = i % 3 != 2;
  const bool express = i % 2 == 0;
  data::Dialogue d;
  d.id = "shop_" + std::to_string(i);
  d.services = {"Shop_1"};
  std::map<std::string, std::string> state;
  const char* const kOpenings[] = {"where is my order", "I want to track my order",
                                   "can you track a parcel for me"};
  d.turns.push_back(UserTurn(kOpenings[i % 3], "TrackOrder", state));
  d.turns.push_back(SystemTurn("What is your order number?", {{"REQUEST", "order_id", {}}}));
  state["order_id"] = id;
  d.turns.push_back(UserTurn(id, "TrackOrder", state, "order_id", id));
  d.turns.push_back(SystemTurn("It is on its way. Shall I schedule the delivery?",
                               {{"OFFER_INTENT", "intent", {"ScheduleDelivery"}}}));
  d.turns.push_back(UserTurn("please schedule the delivery", "ScheduleDelivery", state));
  d.turns.push_back(SystemTurn("Can it be delivered at " + time + "?",
                               {{"OFFER", "delivery_time", {time}}}));
  if (accept) state["delivery_time"] = time;
  d.turns.push_back(UserTurn(accept ? (i % 2 ? "yes" : "yes that works") : "no, not then",
                             "ScheduleDelivery", state));
  d.turns.push_back(SystemTurn("Which city should it go to?", {{"REQUEST", "city", {}}}));
  state["city"] = city;
  d.turns.push_back(UserTurn(city, "ScheduleDelivery", state, "city", city));
  d.turns.push_back(SystemTurn("Standard or express?", {{"REQUEST", "speed", {}}}));
  state["speed"] = express ? "express" : "standard";
  d.turns.push_back(UserTurn(express ? "express please" : "standard is fine", "ScheduleDelivery",
                             state));
  return d;
}

// `count` dialogues; `value_offset` shifts which values they use.
inline data::DialogueDataset ShopDialogues(size_t count, size_t value_offset = 0) {
  data::DialogueDataset set;
  set.format = "sgd";
  set.origin = "inline shop dialogues";
  set.split = "train";
  set.services = {ShopService()};
  for (size_t i = 0; i < count; ++i) set.dialogues.push_back(ShopDialogue(i, value_offset));
  return set;
}

// Options that train a tiny tracker on ShopDialogues in seconds (tests only).
inline DstTrainOptions TinyTrainOptions() {
  DstTrainOptions o;
  o.config.embedding_dim = 24;
  o.config.hidden_dim = 24;
  o.config.schema_dim = 24;
  o.config.mlp_dim = 48;
  o.config.min_count = 1;
  o.config.dropout = 0.1;
  o.epochs = 30;
  o.batch_dialogues = 4;
  o.learning_rate = 5e-3;
  return o;
}

}  // namespace helpline::nlu::dst::testing
