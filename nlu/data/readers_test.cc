#include "nlu/data/readers.h"

#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlu/data/csv.h"

namespace helpline::nlu::data {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

class ReadersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           absl::StrCat("nlu_data_test_", getpid(), "_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& content) {
    const fs::path path = dir_ / name;
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << content;
    return path.string();
  }
  std::string WriteGz(const std::string& name, const std::string& content) {
    const fs::path path = dir_ / name;
    fs::create_directories(path.parent_path());
    gzFile f = gzopen(path.c_str(), "wb");
    gzwrite(f, content.data(), static_cast<unsigned>(content.size()));
    gzclose(f);
    return path.string();
  }
  std::string Dir(const std::string& sub = "") const { return (dir_ / sub).string(); }

  fs::path dir_;
};

TEST(CsvTest, QuotesCommasNewlinesAndCrlf) {
  auto records = ParseCsv("a,b\r\n\"x, \"\"y\"\"\",2\n\"multi\nline\",3\n\nlast,4", "f.csv");
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_THAT(*records, SizeIs(4));
  EXPECT_THAT((*records)[1].fields, ElementsAre("x, \"y\"", "2"));
  EXPECT_THAT((*records)[2].fields, ElementsAre("multi\nline", "3"));
  EXPECT_EQ((*records)[2].line, 3);
  EXPECT_EQ((*records)[3].line, 6);  // After the blank line 5.
  EXPECT_THAT((*records)[3].fields, ElementsAre("last", "4"));
}

TEST(CsvTest, MalformedQuotesNameTheLine) {
  auto unterminated = ParseCsv("a,b\nok,1\n\"open,2\nmore\n", "f.csv");
  ASSERT_FALSE(unterminated.ok());
  EXPECT_THAT(unterminated.status().message(), HasSubstr("f.csv:3: unterminated"));
  auto stray = ParseCsv("a,b\nx\"y,1\n", "f.csv");
  EXPECT_THAT(stray.status().message(), HasSubstr("f.csv:2: quote inside"));
  auto after = ParseCsv("a,b\n\"x\"y,1\n", "f.csv");
  EXPECT_THAT(after.status().message(), HasSubstr("f.csv:2: text after a closing quote"));
}

TEST(IobTest, ConllChunkRules) {
  // I- after O starts a chunk; I- of another type starts a new one.
  auto spans = SpansFromIob({"play", "the", "new", "york", "song", "now"},
                            {"O", "I-artist", "B-city", "I-city", "I-track", "O"});
  ASSERT_TRUE(spans.ok()) << spans.status();
  ASSERT_THAT(*spans, SizeIs(3));
  EXPECT_EQ((*spans)[0], (SlotSpan{"artist", 5, 8, "the"}));
  EXPECT_EQ((*spans)[1], (SlotSpan{"city", 9, 17, "new york"}));
  EXPECT_EQ((*spans)[2], (SlotSpan{"track", 18, 22, "song"}));
  EXPECT_FALSE(SpansFromIob({"a"}, {"X-y"}).ok());
  EXPECT_FALSE(SpansFromIob({"a", "b"}, {"O"}).ok());
}

TEST_F(ReadersTest, Banking77FolderSplitsAndGzip) {
  Write("b77/train.csv", "text,category\nhello,greet\n\"where, oh where\nis my card\",card_arrival\n");
  WriteGz("b77/dev.csv.gz", "text,category\n\"is it here, yet?\",card_arrival\n");
  auto dev = ReadUtterances(Dir("b77"), Format::kBanking77);  // Default: dev (no test).
  ASSERT_TRUE(dev.ok()) << dev.status();
  EXPECT_EQ(dev->split, "dev");
  ASSERT_THAT(dev->examples, SizeIs(1));
  EXPECT_EQ(dev->examples[0].text, "is it here, yet?");
  EXPECT_EQ(dev->examples[0].intent, "card_arrival");
  EXPECT_TRUE(dev->examples[0].in_scope);
  auto train = ReadUtterances(Dir("b77"), Format::kBanking77, {"train"});
  ASSERT_TRUE(train.ok()) << train.status();
  ASSERT_THAT(train->examples, SizeIs(2));
  EXPECT_EQ(train->examples[1].text, "where, oh where\nis my card");
  EXPECT_THAT(train->examples[1].origin, HasSubstr("train.csv:3"));
  // A file is read whatever the split says; a missing split is NOT_FOUND.
  auto file = ReadUtterances(Dir("b77/train.csv"), Format::kBanking77, {"test"});
  EXPECT_TRUE(file.ok());
  auto test = ReadUtterances(Dir("b77"), Format::kBanking77, {"test"});
  EXPECT_EQ(test.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(test.status().message(), HasSubstr("found: dev, train"));
}

TEST_F(ReadersTest, Banking77BadRecords) {
  const std::string extra = Write("extra.csv", "text,category\nok,a\ntoo,many,fields\n");
  auto r = ReadUtterances(extra, Format::kBanking77);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("extra.csv:3: expected 2 fields, got 3"));
  const std::string header = Write("header.csv", "sentence,label\nok,a\n");
  EXPECT_THAT(ReadUtterances(header, Format::kBanking77).status().message(),
              HasSubstr("header.csv:1: header has no 'text' column"));
  const std::string empty = Write("empty.csv", "text,category\nok,\n");
  EXPECT_THAT(ReadUtterances(empty, Format::kBanking77).status().message(),
              HasSubstr("empty.csv:2: empty category"));
  EXPECT_EQ(ReadUtterances(Dir("nope.csv"), Format::kBanking77).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ReadersTest, GzipCorruptOrTruncated) {
  const std::string content(5000, 'x');
  const std::string good = WriteGz("good.csv.gz", "text,category\n" + content + ",a\n");
  std::string bytes;
  {
    std::ifstream in(good, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::string truncated = Write("truncated.csv.gz", bytes.substr(0, bytes.size() / 2));
  auto r = ReadFileContent(truncated);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("truncated.csv.gz: corrupt or truncated gzip"));
  std::string corrupt = bytes;
  for (size_t i = 12; i < corrupt.size() - 8; ++i) corrupt[i] = static_cast<char>(corrupt[i] ^ 0x5a);
  EXPECT_FALSE(ReadFileContent(Write("corrupt.gz", corrupt)).ok());
  auto ok = ReadFileContent(good);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->size(), 14 + content.size() + 3);
}

TEST_F(ReadersTest, Clinc150SplitsAndOos) {
  const std::string file = Write("clinc/data_full.json", R"({
    "train": [["how do i say hi in french", "translate"]],
    "oos_train": [["what is love", "oos"]],
    "val": [["say cat in german", "translate"], ["balance please", "balance"]],
    "oos_val": [["sing to me", "oos"]]
  })");
  Write("clinc/domains.json", R"({"utility": ["translate"]})");
  for (const std::string& path : {file, Dir("clinc")}) {
    auto dev = ReadUtterances(path, Format::kClinc150);
    ASSERT_TRUE(dev.ok()) << dev.status();
    EXPECT_EQ(dev->split, "dev");
    EXPECT_EQ(dev->oos_label, "oos");
    ASSERT_THAT(dev->examples, SizeIs(3));
    EXPECT_EQ(dev->examples[1].intent, "balance");
    EXPECT_TRUE(dev->examples[1].in_scope);
    EXPECT_EQ(dev->examples[2].text, "sing to me");
    EXPECT_FALSE(dev->examples[2].in_scope);
  }
  auto train = ReadUtterances(file, Format::kClinc150, {"train"});
  ASSERT_TRUE(train.ok());
  EXPECT_THAT(train->examples, SizeIs(2));
  const std::string bad = Write("bad.json", R"({"val": [["ok", "a"], ["no label"]]})");
  EXPECT_THAT(ReadUtterances(bad, Format::kClinc150).status().message(),
              HasSubstr("bad.json: val[1]: expected [text, label]"));
  const std::string broken = Write("broken.json", "{\"val\": [[\"ok\", \"a\"],\n}");
  EXPECT_THAT(ReadUtterances(broken, Format::kClinc150).status().message(),
              HasSubstr("broken.json: "));
}

TEST_F(ReadersTest, SnipsFoldersSpansAndErrors) {
  Write("snips/train/seq.in", "play jazz \n");
  Write("snips/train/seq.out", "O B-genre \n");
  Write("snips/train/label", "PlayMusic\n");
  WriteGz("snips/valid/seq.in.gz", "add la isla bonita to my list \nrain in new york\n");
  Write("snips/valid/seq.out", "O B-entity I-entity I-entity O B-owner O\nB-cond O B-city I-city\n");
  Write("snips/valid/label", "AddToPlaylist\nGetWeather\n");
  auto dev = ReadUtterances(Dir("snips"), Format::kSnips);
  ASSERT_TRUE(dev.ok()) << dev.status();
  EXPECT_EQ(dev->split, "dev");
  EXPECT_TRUE(dev->has_slots);
  ASSERT_THAT(dev->examples, SizeIs(2));
  const UtteranceExample& e = dev->examples[0];
  EXPECT_EQ(e.text, "add la isla bonita to my list");
  EXPECT_EQ(e.intent, "AddToPlaylist");
  ASSERT_THAT(e.spans, SizeIs(2));
  EXPECT_EQ(e.spans[0], (SlotSpan{"entity", 4, 18, "la isla bonita"}));
  EXPECT_EQ(e.spans[1], (SlotSpan{"owner", 22, 24, "my"}));
  // A split folder itself.
  auto train = ReadUtterances(Dir("snips/train"), Format::kSnips);
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ(train->split, "train");
  EXPECT_EQ(train->examples[0].text, "play jazz");

  Write("bad/valid/seq.in", "a b\nc d e\n");
  Write("bad/valid/seq.out", "O O\nO O\n");
  Write("bad/valid/label", "X\nY\n");
  auto bad = ReadUtterances(Dir("bad"), Format::kSnips);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("seq.out:2: 2 tags for 3 tokens"));
  Write("short/seq.in", "a\nb\n");
  Write("short/seq.out", "O\nO\n");
  Write("short/label", "X\n");
  EXPECT_THAT(ReadUtterances(Dir("short"), Format::kSnips).status().message(),
              HasSubstr("label: 1 lines, but"));
}

TEST_F(ReadersTest, BitextEntitySpans) {
  const std::string header =
      "utterance,intent,entity_type,entity_value,start_offset,end_offset,category,tags\n";
  const std::string dev = Write(
      "bitext/dev.csv",
      header + "\"cancel order 1234, please\",cancel_order,order_id,1234,13,17,ORDER,B\n" +
          "upgrade to platinum,switch_account,account_type,Platinum,11,19,ACCOUNT,B\n" +
          "caf\xC3\xA9 refund 12,track_refund,refund_amount,12,12,14,REFUND,B\n" +
          "hello,contact,,,,,CONTACT,B\n");
  auto r = ReadUtterances(Dir("bitext"), Format::kBitext);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_THAT(r->examples, SizeIs(4));
  EXPECT_THAT(r->examples[0].spans, ElementsAre(SlotSpan{"order_id", 13, 17, "1234"}));
  EXPECT_THAT(r->examples[1].spans, ElementsAre(SlotSpan{"account_type", 11, 19, "Platinum"}));
  // Offsets count code points: "café" is 4 characters, 5 bytes.
  EXPECT_THAT(r->examples[2].spans, ElementsAre(SlotSpan{"refund_amount", 13, 15, "12"}));
  EXPECT_TRUE(r->examples[3].spans.empty());
  const std::string bad = Write("bad.csv", header + "short,x,order_id,1,3,99,O,B\n");
  EXPECT_THAT(ReadUtterances(bad, Format::kBitext).status().message(),
              HasSubstr("bad.csv:2: entity span [3, 99) outside"));
  const std::string nonum = Write("nonum.csv", header + "short,x,order_id,1,,,O,B\n");
  EXPECT_THAT(ReadUtterances(nonum, Format::kBitext).status().message(),
              HasSubstr("nonum.csv:2: entity 'order_id' without numeric"));
}

constexpr char kSgdSchema[] = R"([{
  "service_name": "Cars_1", "description": "rent cars",
  "slots": [{"name": "city", "description": "pickup city", "is_categorical": false, "possible_values": []},
            {"name": "type", "description": "car type", "is_categorical": true, "possible_values": ["Compact", "SUV"]}],
  "intents": [{"name": "GetCars", "description": "find cars", "is_transactional": false,
               "required_slots": ["city"], "optional_slots": {"type": "dontcare"}, "result_slots": ["city"]}]
}])";

constexpr char kSgdDialogues[] = R"([{
  "dialogue_id": "1_00000", "services": ["Cars_1"],
  "turns": [
    {"speaker": "USER", "utterance": "I need a car in San Jos\u00e9.",
     "frames": [{"service": "Cars_1", "actions": [{"act": "INFORM", "slot": "city", "values": ["San Jos\u00e9"], "canonical_values": ["San Jos\u00e9"]}],
                 "slots": [{"slot": "city", "start": 16, "exclusive_end": 24}],
                 "state": {"active_intent": "GetCars", "requested_slots": [], "slot_values": {"city": ["San Jos\u00e9", "SJ"]}}}]},
    {"speaker": "SYSTEM", "utterance": "What type?",
     "frames": [{"service": "Cars_1", "actions": [{"act": "REQUEST", "slot": "type", "values": []}], "slots": []}]}
  ]}])";

TEST_F(ReadersTest, SgdSchemaDialoguesAndGzip) {
  Write("sgd/dev/schema.json", kSgdSchema);
  WriteGz("sgd/dev/dialogues_001.json.gz", kSgdDialogues);
  Write("sgd/train/schema.json", kSgdSchema);
  Write("sgd/train/dialogues_001.json", kSgdDialogues);
  auto dev = ReadDialogues(Dir("sgd"), Format::kSgd);
  ASSERT_TRUE(dev.ok()) << dev.status();
  EXPECT_EQ(dev->split, "dev");
  ASSERT_THAT(dev->services, SizeIs(1));
  const ServiceSchema& service = dev->services[0];
  EXPECT_EQ(service.name, "Cars_1");
  ASSERT_NE(service.FindSlot("type"), nullptr);
  EXPECT_TRUE(service.FindSlot("type")->is_categorical);
  EXPECT_THAT(service.FindSlot("type")->possible_values, ElementsAre("Compact", "SUV"));
  EXPECT_EQ(service.intents[0].optional_slots.at("type"), "dontcare");
  ASSERT_THAT(dev->dialogues, SizeIs(1));
  const Dialogue& d = dev->dialogues[0];
  EXPECT_EQ(d.id, "1_00000");
  ASSERT_THAT(d.turns, SizeIs(2));
  const Frame& user = d.turns[0].frames[0];
  EXPECT_TRUE(user.has_state);
  EXPECT_EQ(user.state.active_intent, "GetCars");
  EXPECT_THAT(user.state.slot_values.at("city"), ElementsAre("San Jos\u00e9", "SJ"));
  // Character offsets 16..24 are bytes 16..25 (é is two bytes).
  EXPECT_THAT(user.spans, ElementsAre(SlotSpan{"city", 16, 25, "San Jos\u00e9"}));
  EXPECT_EQ(d.turns[1].speaker, Speaker::kSystem);
  EXPECT_FALSE(d.turns[1].frames[0].has_state);
  EXPECT_EQ(d.turns[1].frames[0].actions[0].act, "REQUEST");
  auto train = ReadDialogues(Dir("sgd"), Format::kSgd, {"train"});
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ(train->split, "train");
}

TEST_F(ReadersTest, SgdErrorsNameFileAndEntry) {
  Write("s1/schema.json", kSgdSchema);
  std::string unknown = kSgdDialogues;
  unknown.replace(unknown.find("\"service\": \"Cars_1\""), 19, "\"service\": \"Bus_9\"");
  Write("s1/dialogues_002.json", unknown);
  auto r = ReadDialogues(Dir("s1"), Format::kSgd);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              HasSubstr("dialogues_002.json: [0] (1_00000).turns[0].frames[0]: service 'Bus_9'"));
  Write("s2/schema.json", kSgdSchema);
  std::string no_speaker = kSgdDialogues;
  no_speaker.replace(no_speaker.find("\"speaker\": \"SYSTEM\""), 19, "\"speakr\": \"SYSTEM\"");
  Write("s2/dialogues_001.json", no_speaker);
  EXPECT_THAT(ReadDialogues(Dir("s2"), Format::kSgd).status().message(),
              HasSubstr("[0] (1_00000).turns[1]: 'speaker' missing"));
  Write("s3/schema.json", R"([{"service_name": "X", "slots": [], "intents": [{"name": "I", "required_slots": ["nope"]}]}])");
  Write("s3/dialogues_001.json", "[]");
  EXPECT_THAT(ReadDialogues(Dir("s3"), Format::kSgd).status().message(),
              HasSubstr("schema.json: [0] (X).intents[0]: required slot 'nope'"));
  Write("s4/schema.json", kSgdSchema);
  EXPECT_EQ(ReadDialogues(Dir("s4"), Format::kSgd).status().code(), absl::StatusCode::kNotFound);
}

constexpr char kMultiwoz[] = R"({"MUL0001": {"goal": {}, "log": [
  {"text": "i want a cheap hotel in the center .", "metadata": {},
   "dialog_act": {"Hotel-Inform": [["Price", "cheap"], ["Area", "centre"]]}, "span_info": []},
  {"text": "for how many nights ?",
   "metadata": {"hotel": {"book": {"booked": [], "stay": "", "people": ""},
                          "semi": {"pricerange": "cheap", "area": "centre", "stars": "not mentioned", "type": "dont care"}},
                "police": {"book": {"booked": []}, "semi": {}}},
   "dialog_act": {"Hotel-Request": [["Stay", "?"]]}, "span_info": []},
  {"text": "3 nights . what is the phone ?", "metadata": {},
   "dialog_act": {"Hotel-Inform": [["Stay", "3"]], "Hotel-Request": [["Phone", "?"]]}, "span_info": []},
  {"text": "it is 01223 .",
   "metadata": {"hotel": {"book": {"booked": [], "stay": "3", "people": ""},
                          "semi": {"pricerange": "cheap", "area": "centre", "stars": "", "type": "dont care"}},
                "police": {"book": {"booked": []}, "semi": {}}},
   "dialog_act": {}, "span_info": []}
]}})";

TEST_F(ReadersTest, MultiwozBeliefStatesAndOntology) {
  WriteGz("mwoz/dev_from_val.json.gz", kMultiwoz);
  Write("mwoz/train_from_val.json.gz", "{}");
  Write("mwoz/ontology_convlab2.json",
        R"({"hotel-price range": ["cheap", "expensive"], "hotel-book stay": ["1", "3"]})");
  auto r = ReadDialogues(Dir("mwoz"), Format::kMultiwoz21);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->split, "dev");
  ASSERT_THAT(r->dialogues, SizeIs(1));
  const Dialogue& d = r->dialogues[0];
  EXPECT_THAT(d.services, ElementsAre("hotel", "police"));
  ASSERT_THAT(d.turns, SizeIs(4));
  const Turn& first = d.turns[0];
  EXPECT_EQ(first.speaker, Speaker::kUser);
  ASSERT_THAT(first.frames, SizeIs(2));
  const Frame& hotel = first.frames[0];
  EXPECT_EQ(hotel.service, "hotel");
  EXPECT_TRUE(hotel.has_state);
  EXPECT_EQ(hotel.state.slot_values.size(), 3u);  // pricerange, area, type; stars not set.
  EXPECT_THAT(hotel.state.slot_values.at("type"), ElementsAre("dont care"));
  EXPECT_THAT(hotel.actions[0].slot, "price");
  const Frame& second = d.turns[2].frames[0];
  EXPECT_THAT(second.state.slot_values.at("book stay"), ElementsAre("3"));
  EXPECT_THAT(second.state.requested_slots, ElementsAre("phone"));
  EXPECT_EQ(d.turns[1].speaker, Speaker::kSystem);
  EXPECT_EQ(d.turns[1].frames[0].actions[0].act, "REQUEST");
  const ServiceSchema* schema = r->FindService("hotel");
  ASSERT_NE(schema, nullptr);
  ASSERT_NE(schema->FindSlot("pricerange"), nullptr);
  EXPECT_THAT(schema->FindSlot("pricerange")->possible_values, ElementsAre("cheap", "expensive"));
  EXPECT_THAT(schema->FindSlot("book stay")->possible_values, ElementsAre("1", "3"));
  EXPECT_TRUE(schema->FindSlot("area")->possible_values.empty());

  const std::string bad = Write(
      "bad.json", R"({"X1": {"log": [{"text": "hi", "metadata": {}}, {"text": "yo", "metadata": {"hotel": {"semi": {"area": 3}}}}]}})");
  EXPECT_THAT(ReadDialogues(bad, Format::kMultiwoz21).status().message(),
              HasSubstr("bad.json: X1.log[1].metadata.hotel.semi: 'area' is not a string"));
  EXPECT_THAT(ReadDialogues(bad, Format::kSnips).status().message(),
              HasSubstr("snips is an utterance format"));
}

TEST(FormatTest, Names) {
  for (const char* name : {"banking77", "clinc150", "snips", "bitext", "sgd", "multiwoz21"}) {
    auto f = ParseFormat(name);
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(FormatName(*f), name);
  }
  EXPECT_THAT(ParseFormat("atis").status().message(), HasSubstr("banking77, clinc150"));
  EXPECT_TRUE(IsDialogueFormat(Format::kSgd));
  EXPECT_FALSE(IsDialogueFormat(Format::kBitext));
}

}  // namespace
}  // namespace helpline::nlu::data
