#include "common/domain/domain.h"

#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "re2/re2.h"
#include "yaml-cpp/yaml.h"

namespace helpline::domain {

absl::string_view SlotTypeName(SlotType type) {
  switch (type) {
    case SlotType::kEnum:
      return "categorical";
    case SlotType::kRegex:
      return "regex";
    case SlotType::kNumber:
      return "number";
    case SlotType::kEmail:
      return "email";
    case SlotType::kPhone:
      return "phone";
    case SlotType::kFreeText:
      return "free_text";
    case SlotType::kAmount:
      return "amount";
    case SlotType::kDate:
      return "date";
    case SlotType::kTime:
      return "time";
    case SlotType::kDateTime:
      return "datetime";
  }
  return "free_text";
}

std::string Slot::Display(const std::string& value, absl::string_view language) const {
  if (type != SlotType::kEnum) return value;
  for (const EnumValue& v : values) {
    if (v.value != value) continue;
    auto it = v.labels.find(std::string(language));
    if (it != v.labels.end()) return it->second;
  }
  return value;
}

bool Intent::Uses(absl::string_view slot) const {
  for (const auto& s : required_slots) {
    if (s == slot) return true;
  }
  for (const auto& s : optional_slots) {
    if (s == slot) return true;
  }
  return false;
}

const Slot* Domain::FindSlot(absl::string_view name) const {
  for (const Slot& s : slots) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

const Intent* Domain::FindIntent(absl::string_view name) const {
  for (const Intent& i : intents) {
    if (i.name == name) return &i;
  }
  return nullptr;
}

bool Domain::SupportsLanguage(absl::string_view language) const {
  for (const auto& l : languages) {
    if (l == language) return true;
  }
  return false;
}

const std::vector<std::string>* Domain::FindTemplate(absl::string_view key,
                                                     absl::string_view language) const {
  auto it = templates.find(std::string(key));
  if (it == templates.end()) return nullptr;
  auto lit = it->second.find(std::string(language));
  if (lit == it->second.end() || lit->second.empty()) return nullptr;
  return &lit->second;
}

absl::StatusOr<std::vector<std::string>> TemplatePlaceholders(absl::string_view text) {
  std::vector<std::string> names;
  size_t pos = 0;
  while (true) {
    const size_t open = text.find("{{", pos);
    if (open == absl::string_view::npos) break;
    const size_t close = text.find("}}", open + 2);
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("unterminated placeholder at byte ", open));
    }
    std::string name(absl::StripAsciiWhitespace(text.substr(open + 2, close - open - 2)));
    if (name.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("empty placeholder at byte ", open));
    }
    names.push_back(std::move(name));
    pos = close + 2;
  }
  return names;
}

namespace {

// An example as compared for duplicates: ASCII lower-cased, runs of spaces as one, trimmed.
std::string NormalizedExample(absl::string_view text) {
  std::string out;
  for (char c : absl::StripAsciiWhitespace(text)) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
      if (!out.empty() && out.back() != ' ') out.push_back(' ');
    } else {
      out.push_back(absl::ascii_tolower(static_cast<unsigned char>(c)));
    }
  }
  return out;
}

bool IsIdentifier(absl::string_view s, bool allow_dot) {
  if (s.empty() || !(s[0] >= 'a' && s[0] <= 'z')) return false;
  for (char c : s) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || (allow_dot && c == '.');
    if (!ok) return false;
  }
  return true;
}

// Walks the YAML tree, checking shapes and collecting errors that name file and path.
class Parser {
 public:
  explicit Parser(absl::string_view origin) : origin_(origin) {}

  absl::StatusOr<Domain> Parse(const YAML::Node& root);

 private:
  absl::Status Error(const std::string& path, const YAML::Node& node,
                     absl::string_view message) const {
    std::string where;
    if (node.IsDefined() && !node.Mark().is_null()) {
      where = absl::StrCat(" (line ", node.Mark().line + 1, ")");
    }
    if (path.empty())
      return absl::InvalidArgumentError(absl::StrCat(origin_, ": ", message, where));
    return absl::InvalidArgumentError(absl::StrCat(origin_, ": ", path, ": ", message, where));
  }

  // A mapping whose keys are distinct strings. YAML parsers differ on duplicate keys (ours
  // keeps both, and node[key] finds the first), so a second "track_order:" would silently
  // vanish; it is an error naming both lines. `what` names a key in that message ("intent").
  absl::Status ExpectMap(const YAML::Node& node, const std::string& path,
                         absl::string_view what = "key") const {
    if (!node.IsMap()) return Error(path, node, "expected a mapping");
    std::map<std::string, int> first_line;
    for (const auto& kv : node) {
      if (!kv.first.IsScalar()) return Error(path, kv.first, "keys must be strings");
      const std::string key = kv.first.Scalar();
      const int line = kv.first.Mark().is_null() ? 0 : kv.first.Mark().line + 1;
      auto [it, inserted] = first_line.emplace(key, line);
      if (!inserted) {
        return Error(
            Join(path, key), kv.first,
            absl::StrCat("duplicate ", what, " '", key, "' (first at line ", it->second, ")"));
      }
    }
    return absl::OkStatus();
  }

  absl::Status ExpectKeys(const YAML::Node& node, const std::string& path,
                          const std::set<std::string>& allowed) const {
    if (auto s = ExpectMap(node, path); !s.ok()) return s;
    for (const auto& kv : node) {
      const std::string key = kv.first.Scalar();
      if (allowed.count(key) == 0) {
        return Error(Join(path, key), kv.first,
                     absl::StrCat("unknown key '", key,
                                  "' (expected one of: ", absl::StrJoin(allowed, ", "), ")"));
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> String(const YAML::Node& node, const std::string& path,
                                     bool allow_empty = false) const {
    if (!node.IsDefined() || node.IsNull()) {
      if (allow_empty) return std::string();
      return Error(path, node, "required");
    }
    if (!node.IsScalar()) return Error(path, node, "expected a string");
    std::string value = node.Scalar();
    if (value.empty() && !allow_empty) return Error(path, node, "must not be empty");
    return value;
  }

  absl::StatusOr<std::vector<std::string>> StringList(const YAML::Node& node,
                                                      const std::string& path) const {
    std::vector<std::string> out;
    if (!node.IsDefined() || node.IsNull()) return out;
    if (!node.IsSequence()) return Error(path, node, "expected a list");
    for (size_t i = 0; i < node.size(); ++i) {
      auto s = String(node[i], absl::StrCat(path, "[", i, "]"));
      if (!s.ok()) return s.status();
      out.push_back(*std::move(s));
    }
    return out;
  }

  // A string or a list of strings.
  absl::StatusOr<std::vector<std::string>> StringOrList(const YAML::Node& node,
                                                        const std::string& path) const {
    if (node.IsScalar()) {
      auto s = String(node, path);
      if (!s.ok()) return s.status();
      return std::vector<std::string>{*s};
    }
    auto list = StringList(node, path);
    if (!list.ok()) return list.status();
    if (list->empty()) return Error(path, node, "must not be empty");
    return list;
  }

  absl::Status CheckLanguage(const std::string& language, const std::string& path,
                             const YAML::Node& node) const {
    for (const auto& l : domain_.languages) {
      if (l == language) return absl::OkStatus();
    }
    return Error(path, node,
                 absl::StrCat("unknown language '", language, "' (the domain's languages are ",
                              absl::StrJoin(domain_.languages, ", "), ")"));
  }

  absl::Status CheckAllLanguages(const std::set<std::string>& present, const std::string& path,
                                 const YAML::Node& node) const {
    for (const auto& l : domain_.languages) {
      if (present.count(l) == 0) {
        return Error(path, node, absl::StrCat("missing language '", l, "'"));
      }
    }
    return absl::OkStatus();
  }

  static std::string Join(const std::string& path, absl::string_view key) {
    return path.empty() ? std::string(key) : absl::StrCat(path, ".", key);
  }

  absl::Status ParseLanguages(const YAML::Node& node);
  absl::Status ParseSlot(const std::string& name, const YAML::Node& node, const std::string& path);
  absl::Status ParseIntent(const std::string& name, const YAML::Node& node,
                           const std::string& path);
  absl::Status ParseTemplates(const YAML::Node& node);
  absl::Status CheckReferences(const YAML::Node& root);
  absl::Status CheckExamplesAreDistinct(const YAML::Node& root) const;
  absl::Status CheckSynonymsAreDistinct(const Slot& slot, const YAML::Node& values,
                                        const std::string& path) const;

  std::string origin_;
  Domain domain_;
};

absl::StatusOr<Domain> Parser::Parse(const YAML::Node& root) {
  domain_.origin = origin_;
  if (!root.IsDefined() || root.IsNull()) return Error("", root, "the file is empty");
  if (auto s = ExpectKeys(root, "",
                          {"name", "description", "languages", "system_prompt", "slots", "intents",
                           "templates", "escalation_phrases"});
      !s.ok()) {
    return s;
  }

  auto name = String(root["name"], "name");
  if (!name.ok()) return name.status();
  if (!IsIdentifier(*name, false)) {
    return Error("name", root["name"], "must be lower-case letters, digits and '_'");
  }
  domain_.name = *name;
  auto description = String(root["description"], "description", true);
  if (!description.ok()) return description.status();
  domain_.description = *description;

  if (auto s = ParseLanguages(root["languages"]); !s.ok()) return s;

  // system_prompt: language -> text.
  {
    const YAML::Node node = root["system_prompt"];
    if (!node.IsDefined()) return Error("system_prompt", node, "required");
    if (auto s = ExpectMap(node, "system_prompt"); !s.ok()) return s;
    std::set<std::string> present;
    for (const auto& kv : node) {
      const std::string lang = kv.first.Scalar();
      const std::string path = Join("system_prompt", lang);
      if (auto s = CheckLanguage(lang, path, kv.first); !s.ok()) return s;
      auto text = String(kv.second, path);
      if (!text.ok()) return text.status();
      domain_.system_prompt[lang] = *text;
      present.insert(lang);
    }
    if (auto s = CheckAllLanguages(present, "system_prompt", node); !s.ok()) return s;
  }

  // slots: name -> spec.
  {
    const YAML::Node node = root["slots"];
    if (node.IsDefined() && !node.IsNull()) {
      if (auto s = ExpectMap(node, "slots", "slot"); !s.ok()) return s;
      for (const auto& kv : node) {
        const std::string name = kv.first.Scalar();
        if (auto s = ParseSlot(name, kv.second, Join("slots", name)); !s.ok()) return s;
      }
    }
  }

  // intents: name -> spec.
  {
    const YAML::Node node = root["intents"];
    if (!node.IsDefined() || node.IsNull()) return Error("intents", node, "required");
    if (auto s = ExpectMap(node, "intents", "intent"); !s.ok()) return s;
    if (node.size() == 0) return Error("intents", node, "must not be empty");
    for (const auto& kv : node) {
      const std::string name = kv.first.Scalar();
      if (auto s = ParseIntent(name, kv.second, Join("intents", name)); !s.ok()) return s;
    }
  }

  if (auto s = ParseTemplates(root["templates"]); !s.ok()) return s;

  // escalation_phrases: language -> list (optional).
  {
    const YAML::Node node = root["escalation_phrases"];
    if (node.IsDefined() && !node.IsNull()) {
      if (auto s = ExpectMap(node, "escalation_phrases"); !s.ok()) return s;
      for (const auto& kv : node) {
        const std::string lang = kv.first.Scalar();
        const std::string path = Join("escalation_phrases", lang);
        if (auto s = CheckLanguage(lang, path, kv.first); !s.ok()) return s;
        auto list = StringList(kv.second, path);
        if (!list.ok()) return list.status();
        domain_.escalation_phrases[lang] = *std::move(list);
      }
    }
  }

  if (auto s = CheckReferences(root); !s.ok()) return s;
  if (auto s = CheckExamplesAreDistinct(root); !s.ok()) return s;
  return std::move(domain_);
}

absl::Status Parser::ParseLanguages(const YAML::Node& node) {
  auto list = StringList(node, "languages");
  if (!list.ok()) return list.status();
  if (list->empty()) return Error("languages", node, "required: at least one language");
  std::set<std::string> seen;
  for (size_t i = 0; i < list->size(); ++i) {
    const std::string& l = (*list)[i];
    const std::string path = absl::StrCat("languages[", i, "]");
    if (!IsIdentifier(l, false) || l.size() > 8) {
      return Error(path, node[i], absl::StrCat("'", l, "' is not a language code such as en"));
    }
    if (!seen.insert(l).second) return Error(path, node[i], absl::StrCat("duplicate '", l, "'"));
  }
  domain_.languages = *std::move(list);
  return absl::OkStatus();
}

absl::Status Parser::ParseSlot(const std::string& name, const YAML::Node& node,
                               const std::string& path) {
  if (!IsIdentifier(name, false)) {
    return Error(path, node, "slot names must be lower-case letters, digits and '_'");
  }
  if (auto s = ExpectKeys(
          node, path,
          {"description", "type", "values", "pattern", "normalize", "prompt", "default_currency"});
      !s.ok()) {
    return s;
  }
  Slot slot;
  slot.name = name;
  auto description = String(node["description"], Join(path, "description"), true);
  if (!description.ok()) return description.status();
  slot.description = *description;

  auto type = String(node["type"], Join(path, "type"));
  if (!type.ok()) return type.status();
  static const std::map<std::string, SlotType> kTypes = {
      {"categorical", SlotType::kEnum},  {"enum", SlotType::kEnum},
      {"regex", SlotType::kRegex},       {"number", SlotType::kNumber},
      {"amount", SlotType::kAmount},     {"date", SlotType::kDate},
      {"time", SlotType::kTime},         {"datetime", SlotType::kDateTime},
      {"email", SlotType::kEmail},       {"phone", SlotType::kPhone},
      {"free_text", SlotType::kFreeText}};
  auto it = kTypes.find(*type);
  if (it == kTypes.end()) {
    return Error(Join(path, "type"), node["type"],
                 absl::StrCat("unknown type '", *type,
                              "' (expected categorical, regex, number, amount, date, time, "
                              "datetime, email, phone or free_text)"));
  }
  slot.type = it->second;

  const YAML::Node values = node["values"];
  if (slot.type == SlotType::kEnum) {
    const std::string vpath = Join(path, "values");
    if (!values.IsDefined() || values.IsNull()) {
      return Error(vpath, node, "required for a categorical slot (its possible values)");
    }
    if (auto s = ExpectMap(values, vpath, "value"); !s.ok()) return s;
    if (values.size() == 0) return Error(vpath, values, "must not be empty");
    for (const auto& kv : values) {
      EnumValue v;
      v.value = kv.first.Scalar();
      const std::string epath = Join(vpath, v.value);
      if (v.value.empty()) return Error(epath, kv.first, "empty value");
      const YAML::Node spec = kv.second;
      if (spec.IsDefined() && !spec.IsNull()) {
        if (auto s = ExpectKeys(spec, epath, {"label", "synonyms"}); !s.ok()) return s;
        if (const YAML::Node labels = spec["label"]; labels.IsDefined()) {
          if (auto s = ExpectMap(labels, Join(epath, "label")); !s.ok()) return s;
          for (const auto& lkv : labels) {
            const std::string lang = lkv.first.Scalar();
            const std::string lpath = Join(Join(epath, "label"), lang);
            if (auto s = CheckLanguage(lang, lpath, lkv.first); !s.ok()) return s;
            auto label = String(lkv.second, lpath);
            if (!label.ok()) return label.status();
            v.labels[lang] = *label;
          }
        }
        if (const YAML::Node syn = spec["synonyms"]; syn.IsDefined()) {
          if (auto s = ExpectMap(syn, Join(epath, "synonyms")); !s.ok()) return s;
          for (const auto& skv : syn) {
            const std::string lang = skv.first.Scalar();
            const std::string spath = Join(Join(epath, "synonyms"), lang);
            if (auto s = CheckLanguage(lang, spath, skv.first); !s.ok()) return s;
            auto list = StringList(skv.second, spath);
            if (!list.ok()) return list.status();
            v.synonyms[lang] = *std::move(list);
          }
        }
      }
      slot.values.push_back(std::move(v));
    }
    if (auto s = CheckSynonymsAreDistinct(slot, values, vpath); !s.ok()) return s;
  } else if (values.IsDefined()) {
    return Error(Join(path, "values"), values, "only categorical slots have values");
  }

  const YAML::Node pattern = node["pattern"];
  if (slot.type == SlotType::kRegex) {
    const std::string ppath = Join(path, "pattern");
    auto p = String(pattern, ppath);
    if (!p.ok()) return p.status();
    RE2::Options options;
    options.set_log_errors(false);
    auto re = std::make_shared<RE2>(*p, options);
    if (!re->ok()) return Error(ppath, pattern, absl::StrCat("invalid regex: ", re->error()));
    if (re->NumberOfCapturingGroups() > 1) {
      return Error(ppath, pattern, "at most one capturing group (the value)");
    }
    if (RE2::FullMatch("", *re)) {
      return Error(ppath, pattern,
                   "matches the empty string (it would fill the slot from any text)");
    }
    slot.pattern = *p;
    slot.regex = std::move(re);
  } else if (pattern.IsDefined()) {
    return Error(Join(path, "pattern"), pattern, "only regex slots have a pattern");
  }

  const YAML::Node normalize = node["normalize"];
  if (normalize.IsDefined()) {
    const std::string npath = Join(path, "normalize");
    if (slot.type != SlotType::kRegex) return Error(npath, normalize, "only for regex slots");
    auto n = String(normalize, npath);
    if (!n.ok()) return n.status();
    if (*n != "upper" && *n != "lower") {
      return Error(npath, normalize, absl::StrCat("'", *n, "' is not upper or lower"));
    }
    slot.normalize = *n;
  }

  const YAML::Node currency = node["default_currency"];
  if (currency.IsDefined()) {
    const std::string cpath = Join(path, "default_currency");
    if (slot.type != SlotType::kAmount) return Error(cpath, currency, "only for amount slots");
    auto c = String(currency, cpath);
    if (!c.ok()) return c.status();
    if (!RE2::FullMatch(*c, "[A-Z]{3}")) {
      return Error(cpath, currency, absl::StrCat("'", *c, "' is not an ISO 4217 code such as USD"));
    }
    slot.default_currency = *c;
  }

  auto prompt = String(node["prompt"], Join(path, "prompt"), true);
  if (!prompt.ok()) return prompt.status();
  slot.prompt = prompt->empty() ? absl::StrCat("ask.", name) : *prompt;
  domain_.slots.push_back(std::move(slot));
  return absl::OkStatus();
}

absl::Status Parser::ParseIntent(const std::string& name, const YAML::Node& node,
                                 const std::string& path) {
  if (!IsIdentifier(name, false)) {
    return Error(path, node, "intent names must be lower-case letters, digits and '_'");
  }
  if (auto s = ExpectKeys(node, path,
                          {"description", "examples", "required_slots", "optional_slots",
                           "escalate", "transactional"});
      !s.ok()) {
    return s;
  }
  Intent intent;
  intent.name = name;
  auto description = String(node["description"], Join(path, "description"), true);
  if (!description.ok()) return description.status();
  intent.description = *description;

  const std::string epath = Join(path, "examples");
  const YAML::Node examples = node["examples"];
  if (!examples.IsDefined() || examples.IsNull()) return Error(epath, node, "required");
  if (auto s = ExpectMap(examples, epath); !s.ok()) return s;
  std::set<std::string> present;
  for (const auto& kv : examples) {
    const std::string lang = kv.first.Scalar();
    const std::string lpath = Join(epath, lang);
    if (auto s = CheckLanguage(lang, lpath, kv.first); !s.ok()) return s;
    auto list = StringList(kv.second, lpath);
    if (!list.ok()) return list.status();
    if (list->empty()) return Error(lpath, kv.second, "must not be empty");
    std::map<std::string, size_t> seen_examples;
    for (size_t i = 0; i < list->size(); ++i) {
      auto [it, inserted] = seen_examples.emplace(NormalizedExample((*list)[i]), i);
      if (!inserted) {
        return Error(
            absl::StrCat(lpath, "[", i, "]"), kv.second[i],
            absl::StrCat("duplicate example '", (*list)[i], "' (also at [", it->second, "])"));
      }
    }
    intent.examples[lang] = *std::move(list);
    present.insert(lang);
  }
  if (auto s = CheckAllLanguages(present, epath, examples); !s.ok()) return s;

  std::set<std::string> seen;
  for (const char* field : {"required_slots", "optional_slots"}) {
    const std::string fpath = Join(path, field);
    const YAML::Node list_node = node[field];
    auto list = StringList(list_node, fpath);
    if (!list.ok()) return list.status();
    for (size_t i = 0; i < list->size(); ++i) {
      const std::string& slot = (*list)[i];
      const std::string spath = absl::StrCat(fpath, "[", i, "]");
      if (domain_.FindSlot(slot) == nullptr) {
        return Error(spath, list_node[i], absl::StrCat("unknown slot '", slot, "'"));
      }
      if (!seen.insert(slot).second) {
        return Error(spath, list_node[i], absl::StrCat("slot '", slot, "' is listed twice"));
      }
    }
    (std::string(field) == "required_slots" ? intent.required_slots : intent.optional_slots) =
        *std::move(list);
  }

  for (auto [field, target] : {std::pair<const char*, bool*>{"escalate", &intent.escalate},
                               {"transactional", &intent.transactional}}) {
    const YAML::Node flag = node[field];
    if (!flag.IsDefined() || flag.IsNull()) continue;
    if (!flag.IsScalar() || !YAML::convert<bool>::decode(flag, *target)) {
      return Error(Join(path, field), flag, "expected true or false");
    }
  }
  if (intent.escalate && intent.transactional) {
    return Error(Join(path, "transactional"), node["transactional"],
                 "an intent with escalate: true is served by a person, not confirmed and "
                 "carried out here");
  }
  domain_.intents.push_back(std::move(intent));
  return absl::OkStatus();
}

absl::Status Parser::ParseTemplates(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return Error("templates", node, "required");
  if (auto s = ExpectMap(node, "templates", "template"); !s.ok()) return s;
  for (const auto& kv : node) {
    const std::string key = kv.first.Scalar();
    const std::string path = Join("templates", key);
    if (!IsIdentifier(key, true)) {
      return Error(path, kv.first, "template keys must be lower-case letters, digits, '_', '.'");
    }
    if (auto s = ExpectMap(kv.second, path, "language"); !s.ok()) return s;
    std::set<std::string> present;
    for (const auto& lkv : kv.second) {
      const std::string lang = lkv.first.Scalar();
      const std::string lpath = Join(path, lang);
      if (auto s = CheckLanguage(lang, lpath, lkv.first); !s.ok()) return s;
      auto variants = StringOrList(lkv.second, lpath);
      if (!variants.ok()) return variants.status();
      for (size_t i = 0; i < variants->size(); ++i) {
        const std::string vpath =
            lkv.second.IsSequence() ? absl::StrCat(lpath, "[", i, "]") : lpath;
        const YAML::Node vnode = lkv.second.IsSequence() ? lkv.second[i] : lkv.second;
        auto names = TemplatePlaceholders((*variants)[i]);
        if (!names.ok()) return Error(vpath, vnode, names.status().message());
        for (const auto& n : *names) {
          if (domain_.FindSlot(n) == nullptr) {
            return Error(vpath, vnode, absl::StrCat("placeholder '{{", n, "}}' names no slot"));
          }
        }
      }
      domain_.templates[key][lang] = *std::move(variants);
      present.insert(lang);
    }
    if (auto s = CheckAllLanguages(present, path, kv.second); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status Parser::CheckReferences(const YAML::Node& root) {
  const YAML::Node templates = root["templates"];
  for (const char* key : {"escalate", "fallback"}) {
    if (domain_.templates.count(key) == 0) {
      return Error("templates", templates, absl::StrCat("missing template '", key, "'"));
    }
  }
  for (const Slot& slot : domain_.slots) {
    const YAML::Node prompt = root["slots"][slot.name]["prompt"];
    if (prompt.IsDefined() && domain_.templates.count(slot.prompt) == 0) {
      return Error(absl::StrCat("slots.", slot.name, ".prompt"), prompt,
                   absl::StrCat("unknown template '", slot.prompt, "'"));
    }
  }
  for (const Intent& intent : domain_.intents) {
    const std::string path = absl::StrCat("intents.", intent.name);
    const YAML::Node inode = root["intents"][intent.name];
    if (intent.escalate) continue;  // Answered by "escalate".
    const std::string done = absl::StrCat(intent.name, ".done");
    if (domain_.templates.count(done) == 0) {
      return Error(path, inode, absl::StrCat("missing template '", done, "'"));
    }
    // A transactional intent asks before it is carried out and answers a "no" (the reply
    // scheme of template.h); without these the reply would fall back or claim it was done.
    if (intent.transactional) {
      for (const auto& [suffix, what] :
           {std::pair<const char*, const char*>{".confirm",
                                                "repeats the values and asks yes or no"},
            {".declined", "says nothing was done after a no"}}) {
        const std::string key = absl::StrCat(intent.name, suffix);
        if (domain_.templates.count(key) == 0) {
          return Error(absl::StrCat(path, ".transactional"), inode["transactional"],
                       absl::StrCat("a transactional intent needs template '", key, "' (",
                                    what, ")"));
        }
      }
    }
    for (size_t i = 0; i < intent.required_slots.size(); ++i) {
      const Slot* slot = domain_.FindSlot(intent.required_slots[i]);
      if (domain_.templates.count(slot->prompt) == 0) {
        return Error(
            absl::StrCat(path, ".required_slots[", i, "]"), inode["required_slots"][i],
            absl::StrCat("slot '", slot->name, "' has no prompt template '", slot->prompt, "'"));
      }
    }
  }
  return absl::OkStatus();
}

// One example in two intents teaches a classifier both answers for the same words.
absl::Status Parser::CheckExamplesAreDistinct(const YAML::Node& root) const {
  std::map<std::string, std::string> owner;  // Normalized example -> "intents.x.examples.en[3]".
  for (const Intent& intent : domain_.intents) {
    for (const auto& [lang, list] : intent.examples) {
      for (size_t i = 0; i < list.size(); ++i) {
        const std::string path =
            absl::StrCat("intents.", intent.name, ".examples.", lang, "[", i, "]");
        auto [it, inserted] = owner.emplace(NormalizedExample(list[i]), path);
        if (!inserted) {
          return Error(path, root["intents"][intent.name]["examples"][lang][i],
                       absl::StrCat("example '", list[i], "' is also ", it->second,
                                    " (an example belongs to one intent)"));
        }
      }
    }
  }
  return absl::OkStatus();
}

// A phrase that means two values of one slot makes the extracted value depend on the order
// of the file.
absl::Status Parser::CheckSynonymsAreDistinct(const Slot& slot, const YAML::Node& values,
                                              const std::string& path) const {
  std::map<std::string, std::string> owner;  // Lower-cased phrase -> value.
  for (const EnumValue& v : slot.values) {
    std::vector<std::string> phrases = {v.value};
    for (const auto& [lang, list] : v.synonyms)
      phrases.insert(phrases.end(), list.begin(), list.end());
    std::set<std::string> own;
    for (const std::string& p : phrases) {
      const std::string key = NormalizedExample(p);
      if (!own.insert(key).second) continue;  // Repeated within one value: harmless.
      auto [it, inserted] = owner.emplace(key, v.value);
      if (!inserted) {
        return Error(Join(Join(path, v.value), "synonyms"), values[v.value],
                     absl::StrCat("'", p, "' also means '", it->second, "'"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Domain> ParseDomain(absl::string_view yaml_text, absl::string_view origin) {
  try {
    YAML::Node root = YAML::Load(std::string(yaml_text));
    Parser parser(origin);
    return parser.Parse(root);
  } catch (const YAML::Exception& e) {
    const std::string where =
        e.mark.is_null() ? "" : absl::StrCat(":", e.mark.line + 1, ":", e.mark.column + 1);
    return absl::InvalidArgumentError(absl::StrCat(origin, where, ": ", e.msg));
  }
}

absl::StatusOr<Domain> LoadDomainFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot read the domain file"));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return ParseDomain(buffer.str(), path);
}

}  // namespace helpline::domain
