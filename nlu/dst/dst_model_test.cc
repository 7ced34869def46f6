#include "nlu/dst/dst_model.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlu/dst/dst_features.h"
#include "nlu/dst/dst_test_data.h"
#include "nlu/model/word_vectors.h"

namespace helpline::nlu::dst {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

DstTrainOptions TinyOptions() { return testing::TinyTrainOptions(); }

std::string TempDir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("dst_model_test_" + name);
  fs::remove_all(dir);
  return dir.string();
}

// One trained model for the tests that only read it (training takes a few seconds).
const DstModel& Trained() {
  static const DstModel* model = [] {
    model::SetTorchThreads(1);
    auto m = DstModel::Train(testing::ShopDialogues(36), TinyOptions(), nullptr);
    EXPECT_TRUE(m.ok()) << m.status();
    return m->release();
  }();
  return *model;
}

// Runs a dialogue through a session and returns the state after each user turn.
std::vector<data::FrameState> Track(const DstModel& model, const data::Dialogue& dialogue,
                                    const data::ServiceSchema& service) {
  auto session = model.NewSession({&service});
  EXPECT_TRUE(session.ok()) << session.status();
  std::vector<data::FrameState> out;
  for (const data::Turn& turn : dialogue.turns) {
    if (turn.speaker == data::Speaker::kSystem) {
      EXPECT_TRUE((*session)->SystemTurn(turn).ok());
      continue;
    }
    auto state = (*session)->UserTurn(turn.utterance);
    EXPECT_TRUE(state.ok()) << state.status();
    out.push_back((*state)[service.name]);
  }
  return out;
}

TEST(DstFeatures, MatchFormAndBags) {
  EXPECT_EQ(MatchForm("Book TWO seats, at 5:30!"), " book 2 seats at 5 30 ");
  EXPECT_TRUE(ContainsValue(MatchForm("for two people please"), "2"));
  EXPECT_FALSE(ContainsValue(MatchForm("for twenty people"), "2"));
  EXPECT_EQ(TextBag("city"), TextBag("City"));
  EXPECT_NE(TextBag("city"), TextBag("time"));
  EXPECT_FALSE(TextBag("").empty());
}

Snapshot::Value HistoryEntry(const std::string& service, const std::string& slot,
                             const std::string& value, bool from_system, int turn) {
  return {service, slot, value, from_system, turn};
}

std::vector<std::string> Describe(const std::vector<Snapshot::Value>& history) {
  std::vector<std::string> out;
  for (const Snapshot::Value& h : history) {
    out.push_back(
        absl::StrCat(h.service, ".", h.slot, "=", h.value, h.from_system ? " sys " : " ", h.turn));
  }
  return out;
}

TEST(DstFeatures, RecentHistoryKeepsTheNewestOfEachValueUpToTheLimit) {
  const std::vector<Snapshot::Value> history = {
      HistoryEntry("Shop_1", "city", "Paris", true, 0),
      HistoryEntry("Shop_1", "order_id", "AB123456", false, 1),
      HistoryEntry("Shop_1", "city", "Rome", false, 2),
      HistoryEntry("Shop_1", "city", "Paris", false, 3),           // met again: the older one goes
      HistoryEntry("Shop_1", "delivery_time", "Paris", false, 3),  // same value, other slot
      HistoryEntry("Other_1", "city", "Rome", false, 4),           // same slot name, other service
  };
  EXPECT_THAT(Describe(RecentHistory(history, 100)),
              ::testing::ElementsAre("Shop_1.order_id=AB123456 1", "Shop_1.city=Rome 2",
                                     "Shop_1.city=Paris 3", "Shop_1.delivery_time=Paris 3",
                                     "Other_1.city=Rome 4"));
  EXPECT_THAT(Describe(RecentHistory(history, 3)),
              ::testing::ElementsAre("Shop_1.city=Paris 3", "Shop_1.delivery_time=Paris 3",
                                     "Other_1.city=Rome 4"));
  EXPECT_TRUE(RecentHistory(history, 0).empty());
  EXPECT_TRUE(RecentHistory({}, 5).empty());
}

// Dropping the older copies of a value met again under the same slot changes no refer
// candidate of any slot (values, features and order), however the history repeats itself.
TEST(DstFeatures, DedupedHistoryGivesTheSameReferCandidates) {
  const data::ServiceSchema service = testing::ShopService();
  const std::vector<std::string> slots = {"order_id", "city", "delivery_time", "speed"};
  const std::vector<std::string> values = {"Paris", "paris",   "AB123456", "5 pm",
                                           "Rome",  "express", "Lisbon"};
  Snapshot full;
  for (int i = 0; i < 60; ++i) {
    full.history.push_back(HistoryEntry("Shop_1", slots[(i * 7) % slots.size()],
                                        values[(i * 5 + i / 3) % values.size()], i % 4 == 0,
                                        i / 3));
  }
  full.user_turn = 20;
  Snapshot deduped = full;
  deduped.history = RecentHistory(full.history, full.history.size());
  ASSERT_LT(deduped.history.size(), full.history.size());  // the test repeats values
  DialogueContext a({&service}), b({&service});
  a.Restore(full);
  b.Restore(deduped);
  TurnInputs turn;
  turn.match_form = MatchForm("the same as paris, at 5 pm");
  int compared = 0;
  for (size_t j = 0; j < service.slots.size(); ++j) {
    SlotInstance slot;
    slot.slot = static_cast<int>(j);
    const std::vector<ReferCandidate> x = ReferCandidates(a, turn, slot);
    const std::vector<ReferCandidate> y = ReferCandidates(b, turn, slot);
    ASSERT_EQ(x.size(), y.size()) << service.slots[j].name;
    for (size_t c = 0; c < x.size(); ++c) {
      EXPECT_EQ(x[c].slot, y[c].slot);
      EXPECT_EQ(x[c].value, y[c].value);
      EXPECT_EQ(x[c].features, y[c].features);
      ++compared;
    }
  }
  EXPECT_GT(compared, 8);
}

TEST(DstFeatures, LabelsFollowTheGoldState) {
  const data::DialogueDataset set = testing::ShopDialogues(3);
  const data::ServiceSchema& service = set.services[0];
  model::Featurizer featurizer = model::Featurizer::Build({"yes", "AB123456"});
  DialogueContext context({&service});
  const data::Dialogue& d = set.dialogues[0];
  context.AddSystemTurn(d.turns[5]);  // OFFER delivery_time
  ASSERT_EQ(context.system_acts.size(), 1u);
  EXPECT_EQ(context.system_acts[0].slot, 2);
  const data::Turn& yes = d.turns[6];
  const TurnInputs turn = BuildTurnInputs(context, yes.utterance, featurizer);
  ASSERT_EQ(turn.slots.size(), 4u);
  EXPECT_EQ(turn.slots[2].system_value, testing::Times()[0]);
  EXPECT_EQ(turn.slots[2].features[2], 1.0f);  // offered
  const SlotLabel label =
      LabelSlot(context, yes.utterance, turn, turn.slots[2], &yes.frames[0].state, {}, {});
  EXPECT_EQ(label.status, kSystem);
  const SlotLabel unchanged =
      LabelSlot(context, yes.utterance, turn, turn.slots[1], &yes.frames[0].state, {}, {});
  EXPECT_EQ(unchanged.status, kNone);
}

// MultiWOZ's states write "guesthouse" where its ontology says "guest house": the label is
// still the categorical value (not "unreachable"), and a value that is not in the list is.
TEST(DstFeatures, CategoricalLabelsMatchLoosely) {
  data::ServiceSchema hotel;
  hotel.name = "hotel";
  data::SlotSchema type;
  type.name = "type";
  type.is_categorical = true;
  type.possible_values = {"hotel", "guest house"};
  hotel.slots.push_back(type);
  model::Featurizer featurizer = model::Featurizer::Build({"a guesthouse please"});
  DialogueContext context({&hotel});
  const std::string utterance = "a guesthouse please";
  const TurnInputs turn = BuildTurnInputs(context, utterance, featurizer);
  ASSERT_EQ(turn.slots.size(), 1u);
  EXPECT_TRUE(turn.slots[0].categorical);
  data::FrameState gold;
  gold.slot_values["type"] = {"Guesthouse"};
  const SlotLabel label = LabelSlot(context, utterance, turn, turn.slots[0], &gold, {}, {});
  EXPECT_EQ(label.status, kCategorical);
  EXPECT_EQ(label.value_index, 1);
  gold.slot_values["type"] = {"hostel"};
  EXPECT_EQ(LabelSlot(context, utterance, turn, turn.slots[0], &gold, {}, {}).status, -1);
}

TEST(DstModel, ResolvesContextDependentTurns) {
  const DstModel& model = Trained();
  // Values the training dialogues never used in these positions: an offset shifts them.
  const data::DialogueDataset test = testing::ShopDialogues(6, 7);
  int checked = 0;
  for (const data::Dialogue& d : test.dialogues) {
    const std::vector<data::FrameState> states = Track(model, d, test.services[0]);
    ASSERT_EQ(states.size(), 6u);
    // Gold of each user turn.
    std::vector<const data::FrameState*> gold;
    for (const data::Turn& t : d.turns) {
      if (t.speaker == data::Speaker::kUser) gold.push_back(&t.frames[0].state);
    }
    // A bare order number after the request.
    EXPECT_EQ(states[1].slot_values, gold[1]->slot_values) << d.id << " turn 2";
    // "yes" takes the offered time, "no" does not; the order number is carried over.
    EXPECT_EQ(states[3].slot_values, gold[3]->slot_values) << d.id << " turn 4";
    // A bare city after the request, everything before carried over.
    EXPECT_EQ(states[4].slot_values, gold[4]->slot_values) << d.id << " turn 5";
    EXPECT_EQ(states[5].slot_values, gold[5]->slot_values) << d.id << " turn 6";
    EXPECT_EQ(states[5].active_intent, "ScheduleDelivery");
    EXPECT_EQ(states[0].active_intent, "TrackOrder");
    ++checked;
  }
  EXPECT_EQ(checked, 6);
}

TEST(DstModel, ContextVectorMoves) {
  const DstModel& model = Trained();
  const data::DialogueDataset test = testing::ShopDialogues(1);
  auto session = model.NewSession({&test.services[0]});
  ASSERT_TRUE(session.ok());
  const std::vector<float> before = (*session)->context_vector();
  ASSERT_EQ(before.size(), static_cast<size_t>(model.config().model_dim()));
  ASSERT_TRUE((*session)->UserTurn("where is my order").ok());
  EXPECT_NE((*session)->context_vector(), before);
}

// A stateless service resumes the session from a snapshot at every turn: after each user
// turn of each dialogue, a session resumed from the snapshot (through a copy, as another
// process would get it) predicts the rest of the dialogue exactly as the uninterrupted one,
// states and context vectors alike.
TEST(DstModel, ResumedSessionEqualsTheUninterruptedOne) {
  const DstModel& model = Trained();
  const data::DialogueDataset test = testing::ShopDialogues(3, 4);
  const data::ServiceSchema* service = &test.services[0];
  int compared = 0;
  for (const data::Dialogue& d : test.dialogues) {
    for (size_t cut = 0; cut < d.turns.size(); ++cut) {
      if (d.turns[cut].speaker != data::Speaker::kUser) continue;
      auto whole = model.NewSession({service});
      ASSERT_TRUE(whole.ok());
      std::unique_ptr<DstSession> resumed;
      for (size_t i = 0; i < d.turns.size(); ++i) {
        const data::Turn& turn = d.turns[i];
        if (turn.speaker == data::Speaker::kSystem) {
          ASSERT_TRUE((*whole)->SystemTurn(turn).ok());
          if (resumed != nullptr) {
            ASSERT_TRUE(resumed->SystemTurn(turn).ok());
          }
          continue;
        }
        auto a = (*whole)->UserTurn(turn.utterance);
        ASSERT_TRUE(a.ok());
        if (resumed != nullptr) {
          auto b = resumed->UserTurn(turn.utterance);
          ASSERT_TRUE(b.ok());
          EXPECT_EQ((*b)[service->name].slot_values, (*a)[service->name].slot_values)
              << d.id << " cut " << cut << " turn " << i;
          EXPECT_EQ((*b)[service->name].active_intent, (*a)[service->name].active_intent);
          EXPECT_EQ((*b)[service->name].requested_slots, (*a)[service->name].requested_slots);
          EXPECT_EQ(resumed->context_vector(), (*whole)->context_vector());
          ++compared;
        }
        if (i == cut) {
          const Snapshot copy = (*whole)->snapshot();
          ASSERT_EQ(copy.context_vector, (*whole)->context_vector());
          auto r = model.ResumeSession({service}, copy);
          ASSERT_TRUE(r.ok()) << r.status();
          resumed = *std::move(r);
        }
      }
    }
  }
  EXPECT_GT(compared, 30);
}

// What the resumed session needs and the snapshot lacks: without the GRU state (an older
// dialogue state) it starts from zeros and still tracks; a vector of another size is refused.
TEST(DstModel, ResumeWithoutVectorOrWithAWrongOne) {
  const DstModel& model = Trained();
  const data::DialogueDataset test = testing::ShopDialogues(1, 3);
  const data::ServiceSchema* service = &test.services[0];
  const data::Dialogue& d = test.dialogues[0];
  Snapshot snapshot;
  snapshot.values["Shop_1"]["city"] = "Rome";
  snapshot.values["Shop_1"]["no_such_slot"] = "x";
  snapshot.values["Other_9"]["city"] = "x";
  snapshot.intents["Shop_1"] = "TrackOrder";
  auto session = model.ResumeSession({service}, snapshot);
  ASSERT_TRUE(session.ok()) << session.status();
  EXPECT_EQ((*session)->context_vector(),
            std::vector<float>(static_cast<size_t>(model.config().model_dim()), 0.0f));
  ASSERT_TRUE((*session)->SystemTurn(d.turns[1]).ok());  // REQUEST order_id
  auto state = (*session)->UserTurn(d.turns[2].utterance);
  ASSERT_TRUE(state.ok());
  const auto& values = (*state)["Shop_1"].slot_values;
  EXPECT_EQ(values.at("city"), std::vector<std::string>{"Rome"});  // carried over
  EXPECT_EQ(values.at("order_id"), std::vector<std::string>{d.turns[2].utterance});
  EXPECT_EQ(values.count("no_such_slot"), 0u);

  snapshot.context_vector = {0.5f, 0.25f};
  auto wrong = model.ResumeSession({service}, snapshot);
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(wrong.status().message(), HasSubstr("2 floats"));
}

// One user turn's result: the state of the shop service and the context vector after it.
struct TurnResult {
  data::FrameState state;
  std::vector<float> vector;
};

void ExpectSameTurns(const std::vector<TurnResult>& a, const std::vector<TurnResult>& b,
                     const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].state.slot_values, b[i].state.slot_values) << what << " turn " << i;
    EXPECT_EQ(a[i].state.active_intent, b[i].state.active_intent) << what << " turn " << i;
    EXPECT_EQ(a[i].state.requested_slots, b[i].state.requested_slots) << what << " turn " << i;
    EXPECT_EQ(a[i].vector, b[i].vector) << what << " turn " << i;  // bit for bit
  }
}

// The dialogue in one session of NewSession(services): the schema encoded for it alone.
std::vector<TurnResult> TrackInOneSession(const DstModel& model, const data::Dialogue& d,
                                          const data::ServiceSchema* service) {
  std::vector<TurnResult> out;
  auto session = model.NewSession({service});
  EXPECT_TRUE(session.ok()) << session.status();
  for (const data::Turn& turn : d.turns) {
    if (turn.speaker == data::Speaker::kSystem) {
      EXPECT_TRUE((*session)->SystemTurn(turn).ok());
      continue;
    }
    auto state = (*session)->UserTurn(turn.utterance);
    EXPECT_TRUE(state.ok()) << state.status();
    out.push_back({(*state)[service->name], (*session)->context_vector()});
  }
  return out;
}

// The dialogue as the stateless service runs it: every user turn a new session resumed from
// the last snapshot, all of them from the same encodings.
std::vector<TurnResult> TrackResumingEveryTurn(
    const DstModel& model, const data::Dialogue& d, const std::string& service_name,
    const std::shared_ptr<const ServiceEncodings>& encodings) {
  std::vector<TurnResult> out;
  Snapshot snapshot;
  const data::Turn* reply = nullptr;
  for (const data::Turn& turn : d.turns) {
    if (turn.speaker == data::Speaker::kSystem) {
      reply = &turn;
      continue;
    }
    auto session = model.ResumeSession(encodings, snapshot);
    EXPECT_TRUE(session.ok()) << session.status();
    if (!session.ok()) return out;
    if (reply != nullptr) {
      EXPECT_TRUE((*session)->SystemTurn(*reply).ok());
    }
    reply = nullptr;
    auto state = (*session)->UserTurn(turn.utterance);
    EXPECT_TRUE(state.ok()) << state.status();
    out.push_back({(*state)[service_name], (*session)->context_vector()});
    snapshot = (*session)->snapshot();
  }
  return out;
}

// Encodings made once and shared by every turn's session (the service's cache) track exactly
// as a session that encodes the schema for itself: states and context vectors bit for bit,
// also with two threads using the same encodings at once.
TEST(DstModel, SharedEncodingsTrackExactlyAsFreshOnes) {
  const DstModel& model = Trained();
  const data::DialogueDataset test = testing::ShopDialogues(6, 2);
  const data::ServiceSchema* service = &test.services[0];
  auto encodings = model.EncodeServices({service});
  ASSERT_TRUE(encodings.ok()) << encodings.status();
  std::vector<std::vector<TurnResult>> fresh;
  for (const data::Dialogue& d : test.dialogues) {
    fresh.push_back(TrackInOneSession(model, d, service));
    ExpectSameTurns(TrackResumingEveryTurn(model, d, service->name, *encodings), fresh.back(),
                    d.id);
  }
  std::vector<std::vector<TurnResult>> by_thread[2];
  std::vector<std::thread> threads;
  for (auto& results : by_thread) {
    threads.emplace_back([&model, &test, &encodings, &results, service] {
      for (int round = 0; round < 3; ++round) {
        for (const data::Dialogue& d : test.dialogues) {
          results.push_back(TrackResumingEveryTurn(model, d, service->name, *encodings));
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const auto& results : by_thread) {
    ASSERT_EQ(results.size(), 3 * test.dialogues.size());
    for (size_t i = 0; i < results.size(); ++i) {
      ExpectSameTurns(results[i], fresh[i % test.dialogues.size()], "threaded");
    }
  }
}

TEST(DstModel, EncodingsAreThisModelsOnly) {
  const DstModel& model = Trained();
  const data::ServiceSchema service = testing::ShopService();
  EXPECT_EQ(model.EncodeServices({}).status().code(), absl::StatusCode::kInvalidArgument);
  auto null_session = model.ResumeSession(std::shared_ptr<const ServiceEncodings>(), Snapshot());
  EXPECT_EQ(null_session.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(null_session.status().message(), HasSubstr("service encodings"));
  // A copy of the same weights is still another model: its encodings are its own.
  const std::string dir = TempDir("encodings");
  ASSERT_TRUE(model.Save(dir).ok());
  auto copy = DstModel::Load(dir);
  ASSERT_TRUE(copy.ok()) << copy.status();
  auto theirs = (*copy)->EncodeServices({&service});
  ASSERT_TRUE(theirs.ok());
  auto refused = model.NewSession(*theirs);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("another model"));
  EXPECT_TRUE((*copy)->NewSession(*theirs).ok());
  fs::remove_all(dir);
}

TEST(DstModel, EmptyUtteranceKeepsTheState) {
  const DstModel& model = Trained();
  const data::DialogueDataset test = testing::ShopDialogues(1);
  const data::Dialogue& d = test.dialogues[0];
  auto session = model.NewSession({&test.services[0]});
  ASSERT_TRUE(session.ok());
  ASSERT_TRUE((*session)->UserTurn(d.turns[0].utterance).ok());
  ASSERT_TRUE((*session)->SystemTurn(d.turns[1]).ok());
  auto after_id = (*session)->UserTurn(d.turns[2].utterance);
  ASSERT_TRUE(after_id.ok());
  auto after_empty = (*session)->UserTurn("  ");
  ASSERT_TRUE(after_empty.ok());
  EXPECT_EQ((*after_empty)["Shop_1"].slot_values, (*after_id)["Shop_1"].slot_values);
}

TEST(DstModel, SaveLoadRoundTrip) {
  const DstModel& model = Trained();
  const std::string dir = TempDir("roundtrip");
  ASSERT_TRUE(model.Save(dir).ok());
  auto loaded = DstModel::Load(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->Weights(), model.Weights());
  EXPECT_EQ((*loaded)->training()["dialogues"], model.training()["dialogues"]);
  const data::DialogueDataset test = testing::ShopDialogues(3, 5);
  for (const data::Dialogue& d : test.dialogues) {
    const auto a = Track(model, d, test.services[0]);
    const auto b = Track(**loaded, d, test.services[0]);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].slot_values, b[i].slot_values);
      EXPECT_EQ(a[i].active_intent, b[i].active_intent);
    }
  }
  fs::remove_all(dir);
}

TEST(DstModel, WordVectorsAreFrozenAndTravelWithTheFolder) {
  // "order" occurs in the shop dialogues; "crate" in none of them.
  const std::string dir = TempDir("vectors");
  fs::create_directories(dir);
  const std::string file = dir + "/vectors.txt";
  std::ofstream(file) << "order 1 0 0\ncrate 0.5 -0.5 2\n";
  auto vectors = model::WordVectors::Read(file);
  ASSERT_TRUE(vectors.ok()) << vectors.status();
  DstTrainOptions o = TinyOptions();
  o.epochs = 4;
  o.word_vectors = &*vectors;
  auto trained = DstModel::Train(testing::ShopDialogues(8), o, nullptr);
  ASSERT_TRUE(trained.ok()) << trained.status();
  const auto weights = (*trained)->Weights();
  const std::vector<float>& table = weights.at("vectors.weight");
  const std::vector<float>& word = weights.at("word.weight");
  const size_t emb = static_cast<size_t>(o.config.embedding_dim);
  size_t crate = 0, order = 0;
  for (size_t r = 0; r < table.size() / 3; ++r) {
    const std::vector<float> row(table.begin() + 3 * r, table.begin() + 3 * r + 3);
    if (row == std::vector<float>{0.5f, -0.5f, 2.0f}) crate = r;
    if (row == std::vector<float>{1.0f, 0.0f, 0.0f}) order = r;
  }
  ASSERT_GT(crate, 1u);
  ASSERT_GT(order, 1u);
  // The vector-only word has <unk>'s trained row; a trained word its own.
  EXPECT_TRUE(
      std::equal(word.begin() + crate * emb, word.begin() + (crate + 1) * emb, word.begin() + emb));
  EXPECT_FALSE(
      std::equal(word.begin() + order * emb, word.begin() + (order + 1) * emb, word.begin() + emb));
  ASSERT_TRUE((*trained)->Save(dir + "/model").ok());
  auto loaded = DstModel::Load(dir + "/model");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->Weights(), weights);
  const data::DialogueDataset test = testing::ShopDialogues(2, 3);
  for (const data::Dialogue& d : test.dialogues) {
    const auto a = Track(**trained, d, test.services[0]);
    const auto b = Track(**loaded, d, test.services[0]);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].slot_values, b[i].slot_values);
  }
  fs::remove_all(dir);
}

TEST(DstModel, SameSeedSameWeights) {
  DstTrainOptions o = TinyOptions();
  o.epochs = 2;
  const data::DialogueDataset set = testing::ShopDialogues(8);
  auto a = DstModel::Train(set, o, nullptr);
  auto b = DstModel::Train(set, o, nullptr);
  o.seed = 2;
  auto c = DstModel::Train(set, o, nullptr);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ((*a)->Weights(), (*b)->Weights());
  EXPECT_NE((*a)->Weights(), (*c)->Weights());
}

TEST(DstModel, BadInputsAreNamed) {
  // No user turn with a state.
  data::DialogueDataset empty = testing::ShopDialogues(2);
  for (data::Dialogue& d : empty.dialogues) {
    for (data::Turn& t : d.turns) {
      for (data::Frame& f : t.frames) f.has_state = false;
    }
  }
  auto none = DstModel::Train(empty, TinyOptions(), nullptr);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(none.status().message(), HasSubstr("no user turn with a state"));
  DstTrainOptions zero = TinyOptions();
  zero.epochs = 0;
  EXPECT_EQ(DstModel::Train(testing::ShopDialogues(2), zero, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  DstTrainOptions no_weight = TinyOptions();
  no_weight.status_weight = 0;
  auto weightless = DstModel::Train(testing::ShopDialogues(2), no_weight, nullptr);
  EXPECT_EQ(weightless.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(weightless.status().message(), HasSubstr("status weight"));

  // A session without services.
  EXPECT_EQ(Trained().NewSession(std::vector<const data::ServiceSchema*>()).status().code(),
            absl::StatusCode::kInvalidArgument);

  // Missing folder, broken JSON, weights of another architecture.
  EXPECT_EQ(DstModel::Load(TempDir("missing")).status().code(), absl::StatusCode::kNotFound);
  const std::string dir = TempDir("broken");
  ASSERT_TRUE(Trained().Save(dir).ok());
  const std::string json_path = dir + "/" + kDstModelJsonName;
  std::string json;
  {
    std::ifstream in(json_path);
    json.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::ofstream(json_path, std::ios::trunc) << "{not json";
  auto broken = DstModel::Load(dir);
  EXPECT_EQ(broken.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(broken.status().message(), HasSubstr(kDstModelJsonName));

  DstTrainOptions other = TinyOptions();
  other.config.hidden_dim = 8;
  other.epochs = 1;
  auto small = DstModel::Train(testing::ShopDialogues(2), other, nullptr);
  ASSERT_TRUE(small.ok());
  const std::string small_dir = TempDir("small");
  ASSERT_TRUE((*small)->Save(small_dir).ok());
  fs::copy_file(small_dir + "/" + kDstWeightsName, dir + "/" + kDstWeightsName,
                fs::copy_options::overwrite_existing);
  std::ofstream(json_path, std::ios::trunc) << json;
  auto mismatched = DstModel::Load(dir);
  EXPECT_EQ(mismatched.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(mismatched.status().message(), HasSubstr("model.safetensors"));
  fs::remove_all(dir);
  fs::remove_all(small_dir);
}

}  // namespace
}  // namespace helpline::nlu::dst
