#include "services/dst/dialogue_model.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "nlu/dst/dst_features.h"
#include "nlu/dst/dst_model.h"

namespace helpline::dst {

namespace data = nlu::data;
namespace ndst = nlu::dst;

namespace {

// "order_id" -> "order id": a slot without description is known by its name.
std::string NameInWords(const std::string& name) {
  return absl::StrReplaceAll(absl::AsciiStrToLower(name), {{"_", " "}, {".", " "}});
}

}  // namespace

data::ServiceSchema ServiceFromDomain(const domain::Domain& domain) {
  data::ServiceSchema service;
  service.name = domain.name;
  service.description = domain.description;
  for (const domain::Slot& slot : domain.slots) {
    data::SlotSchema s;
    s.name = slot.name;
    s.description = slot.description.empty() ? NameInWords(slot.name) : slot.description;
    s.is_categorical = slot.type == domain::SlotType::kEnum;
    for (const domain::EnumValue& v : slot.values) s.possible_values.push_back(v.value);
    service.slots.push_back(std::move(s));
  }
  for (const domain::Intent& intent : domain.intents) {
    data::IntentSchema i;
    i.name = intent.name;
    i.description = intent.description.empty() ? NameInWords(intent.name) : intent.description;
    i.is_transactional = intent.transactional;
    i.required_slots = intent.required_slots;
    for (const std::string& slot : intent.optional_slots) i.optional_slots[slot] = "";
    service.intents.push_back(std::move(i));
  }
  return service;
}

absl::StatusOr<std::unique_ptr<LearnedDialogueModel>> LearnedDialogueModel::Load(
    const std::string& dir, const domain::Domain& domain) {
  std::error_code error;
  if (!std::filesystem::is_directory(dir, error)) {
    return absl::NotFoundError(absl::StrCat("dialogue model folder ", dir, " does not exist"));
  }
  absl::StatusOr<std::unique_ptr<ndst::DstModel>> loaded = ndst::DstModel::Load(dir);
  if (!loaded.ok()) return loaded.status();
  std::shared_ptr<const ndst::DstModel> model(*std::move(loaded));
  const std::string folder = std::filesystem::path(dir).lexically_normal().filename().string();
  const std::string name =
      absl::StrCat("helpline-dst-1 ", folder.empty() ? dir : folder, " (",
                   model->config().model_dim(), ")");
  return std::unique_ptr<LearnedDialogueModel>(
      new LearnedDialogueModel(std::move(model), name, {ServiceFromDomain(domain)}, false));
}

std::unique_ptr<LearnedDialogueModel> LearnedDialogueModel::ForServices(
    std::shared_ptr<const ndst::DstModel> model, std::string name,
    std::vector<data::ServiceSchema> services) {
  return std::unique_ptr<LearnedDialogueModel>(
      new LearnedDialogueModel(std::move(model), std::move(name), std::move(services), true));
}

LearnedDialogueModel::LearnedDialogueModel(std::shared_ptr<const ndst::DstModel> model,
                                           std::string name,
                                           std::vector<data::ServiceSchema> services,
                                           bool prefixed)
    : model_(std::move(model)),
      name_(std::move(name)),
      services_(std::move(services)),
      prefixed_(prefixed) {}

LearnedDialogueModel::~LearnedDialogueModel() = default;

size_t LearnedDialogueModel::context_size() const {
  return static_cast<size_t>(model_->config().model_dim());
}

std::pair<int, std::string> LearnedDialogueModel::Split(const std::string& domain_name) const {
  if (!prefixed_) return {0, domain_name};
  const size_t dot = domain_name.find('.');
  if (dot == std::string::npos) return {-1, ""};
  const std::string service = domain_name.substr(0, dot);
  for (size_t i = 0; i < services_.size(); ++i) {
    if (services_[i].name == service) return {static_cast<int>(i), domain_name.substr(dot + 1)};
  }
  return {-1, ""};
}

std::string LearnedDialogueModel::Join(int service, const std::string& name) const {
  return prefixed_ ? absl::StrCat(services_[service].name, ".", name) : name;
}

std::vector<int> LearnedDialogueModel::TrackedServices(
    const common::v1::DialogueContext& context) const {
  std::vector<int> out;
  for (const std::string& name : context.services()) {
    for (size_t i = 0; i < services_.size(); ++i) {
      if (services_[i].name == name) out.push_back(static_cast<int>(i));
    }
  }
  if (out.empty()) {
    for (size_t i = 0; i < services_.size(); ++i) out.push_back(static_cast<int>(i));
  }
  return out;
}

absl::StatusOr<DialogueAnalysis> LearnedDialogueModel::Analyze(
    const common::v1::DialogueState& prior, absl::string_view text) const {
  const common::v1::DialogueContext& context = prior.context();
  const std::vector<int> tracked = TrackedServices(context);
  const auto is_tracked = [&tracked](int i) {
    return i >= 0 && std::find(tracked.begin(), tracked.end(), i) != tracked.end();
  };
  std::vector<const data::ServiceSchema*> schemas;
  for (int i : tracked) schemas.push_back(&services_[i]);

  // The session as it was after the last customer turn: the state's values (what the
  // conversation holds after the rules), the tracker's own intents, history and vector.
  ndst::Snapshot snapshot;
  if (context.model() == name_ && static_cast<size_t>(context.vector_size()) == context_size()) {
    snapshot.context_vector.assign(context.vector().begin(), context.vector().end());
  }
  for (const auto& [name, value] : prior.slots()) {
    const auto [service, slot] = Split(name);
    if (is_tracked(service) && !value.value().empty()) {
      snapshot.values[services_[service].name][slot] = value.value();
    }
  }
  for (const auto& [service, intent] : context.service_intents()) {
    snapshot.intents[service] = intent;
  }
  // A state without the tracker's intents (an older one): the active intent is its service's.
  if (const auto [service, intent] = Split(prior.active_intent());
      is_tracked(service) && !intent.empty() &&
      !context.service_intents().contains(services_[service].name)) {
    snapshot.intents[services_[service].name] = intent;
  }
  for (const common::v1::ContextValue& h : context.history()) {
    const auto [service, slot] = Split(h.slot());
    if (is_tracked(service)) {
      snapshot.history.push_back({services_[service].name, slot, h.value(), h.from_system(),
                                  static_cast<int>(h.turn())});
    }
  }
  snapshot.user_turn = static_cast<int>(context.user_turns());
  std::map<std::string, std::map<std::string, std::string>> before = snapshot.values;
  std::map<std::string, std::string> intents_before;
  for (const data::ServiceSchema* s : schemas) {
    auto it = snapshot.intents.find(s->name);
    intents_before[s->name] = it != snapshot.intents.end() ? it->second : ndst::kNoIntent;
  }

  absl::StatusOr<std::unique_ptr<ndst::DstSession>> session =
      model_->ResumeSession(schemas, snapshot);
  if (!session.ok()) return session.status();
  // The reply the customer answers: its acts, as the system turn of the training dialogues.
  data::Turn reply;
  reply.speaker = data::Speaker::kSystem;
  reply.utterance = context.system_utterance();
  std::map<int, size_t> frame_of;
  for (const common::v1::ContextAct& act : context.system_acts()) {
    int service = -1;
    std::string slot;
    if (!act.slot().empty()) {
      std::tie(service, slot) = Split(act.slot());
    } else {
      for (int i : tracked) service = services_[i].name == act.service() ? i : service;
    }
    if (!is_tracked(service)) continue;
    auto [it, added] = frame_of.emplace(service, reply.frames.size());
    if (added) reply.frames.push_back({services_[service].name, {}, {}, false, {}});
    reply.frames[it->second].actions.push_back(
        {act.act(), slot, {act.values().begin(), act.values().end()}});
  }
  if (absl::Status s = (*session)->SystemTurn(reply); !s.ok()) return s;
  absl::StatusOr<std::map<std::string, data::FrameState>> after = (*session)->UserTurn(text);
  if (!after.ok()) return after.status();

  DialogueAnalysis out;
  for (int i : tracked) {
    const data::ServiceSchema& service = services_[i];
    const data::FrameState& state = (*after)[service.name];
    const auto& old_values = before[service.name];
    for (const auto& [slot, forms] : state.slot_values) {
      if (forms.empty()) continue;
      auto it = old_values.find(slot);
      if (it != old_values.end() && it->second == forms.front()) continue;
      const data::SlotSchema* schema = service.FindSlot(slot);
      const bool open = prefixed_ && schema != nullptr &&
                        (!schema->is_categorical || forms.front() == "dontcare");
      out.values.push_back({Join(i, slot), forms.front(), open});
    }
    if (out.intent.empty() && !state.active_intent.empty() &&
        state.active_intent != ndst::kNoIntent &&
        state.active_intent != intents_before[service.name]) {
      out.intent = Join(i, state.active_intent);
    }
  }

  const ndst::Snapshot now = (*session)->snapshot();
  common::v1::DialogueContext& c = out.context;
  c.set_model(name_);
  c.mutable_vector()->Assign(now.context_vector.begin(), now.context_vector.end());
  c.set_user_turns(static_cast<uint32_t>(now.user_turn));
  for (int i : tracked) c.add_services(services_[i].name);
  for (const auto& [service, intent] : now.intents) (*c.mutable_service_intents())[service] = intent;
  for (const ndst::Snapshot::Value& h : now.history) {
    int service = -1;
    for (int i : tracked) service = services_[i].name == h.service ? i : service;
    if (service < 0) continue;
    common::v1::ContextValue* v = c.add_history();
    v->set_slot(Join(service, h.slot));
    v->set_value(h.value);
    v->set_from_system(h.from_system);
    v->set_turn(static_cast<uint32_t>(h.turn));
  }
  return out;
}

}  // namespace helpline::dst
