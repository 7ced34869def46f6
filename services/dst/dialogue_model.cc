#include "services/dst/dialogue_model.h"

#include <algorithm>
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
    const std::string& dir, const domain::Domain& domain,
    const LearnedDialogueModelOptions& options) {
  if (options.max_history < 1 || options.max_history > kMaxDialogueHistory) {
    return absl::InvalidArgumentError(absl::StrCat("history size ", options.max_history,
                                                   " is not in [1, ", kMaxDialogueHistory, "]"));
  }
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
  std::unique_ptr<LearnedDialogueModel> out(new LearnedDialogueModel(
      std::move(model), name, {ServiceFromDomain(domain)}, false, options));
  // The domain's one service is every turn's: encoded now, a broken schema stops the start.
  if (options.cache_encodings) {
    if (absl::Status s = out->Encodings({0}).status(); !s.ok()) return s;
  }
  return out;
}

std::unique_ptr<LearnedDialogueModel> LearnedDialogueModel::ForServices(
    std::shared_ptr<const ndst::DstModel> model, std::string name,
    std::vector<data::ServiceSchema> services, const LearnedDialogueModelOptions& options) {
  LearnedDialogueModelOptions checked = options;
  if (checked.max_history == 0) checked.max_history = kDefaultDialogueHistory;
  checked.max_history = std::min(checked.max_history, kMaxDialogueHistory);
  return std::unique_ptr<LearnedDialogueModel>(new LearnedDialogueModel(
      std::move(model), std::move(name), std::move(services), true, checked));
}

LearnedDialogueModel::LearnedDialogueModel(std::shared_ptr<const ndst::DstModel> model,
                                           std::string name,
                                           std::vector<data::ServiceSchema> services, bool prefixed,
                                           const LearnedDialogueModelOptions& options)
    : model_(std::move(model)),
      name_(std::move(name)),
      services_(std::move(services)),
      prefixed_(prefixed),
      options_(options) {}

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

absl::StatusOr<std::shared_ptr<const ndst::ServiceEncodings>> LearnedDialogueModel::Encodings(
    const std::vector<int>& tracked) const {
  if (options_.cache_encodings) {
    std::lock_guard<std::mutex> lock(encodings_mu_);
    auto it = encodings_.find(tracked);
    if (it != encodings_.end()) return it->second;
  }
  std::vector<const data::ServiceSchema*> schemas;
  for (int i : tracked) schemas.push_back(&services_[i]);
  // Encoded outside the lock so that turns of other service sets do not wait on it; two turns
  // of a new set at once both encode it (the same tensors) and the first to finish is kept.
  absl::StatusOr<std::shared_ptr<const ndst::ServiceEncodings>> encoded =
      model_->EncodeServices(schemas);
  if (!encoded.ok() || !options_.cache_encodings) return encoded;
  std::lock_guard<std::mutex> lock(encodings_mu_);
  if (encodings_.size() >= kMaxCachedServiceSets) encodings_.clear();
  return encodings_.emplace(tracked, *std::move(encoded)).first->second;
}

absl::StatusOr<DialogueAnalysis> LearnedDialogueModel::Analyze(
    const common::v1::DialogueState& prior, absl::string_view text) const {
  const common::v1::DialogueContext& context = prior.context();
  const std::vector<int> tracked = TrackedServices(context);
  const auto is_tracked = [&tracked](int i) {
    return i >= 0 && std::find(tracked.begin(), tracked.end(), i) != tracked.end();
  };

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
  // A state written under a larger cap (or before there was one) is cut back here, so that
  // the resumed session reads what a capped one would have written.
  snapshot.history = ndst::RecentHistory(snapshot.history, options_.max_history);
  snapshot.user_turn = static_cast<int>(context.user_turns());
  std::map<std::string, std::map<std::string, std::string>> before = snapshot.values;
  std::map<std::string, std::string> intents_before;
  for (int i : tracked) {
    const std::string& service = services_[i].name;
    auto it = snapshot.intents.find(service);
    intents_before[service] = it != snapshot.intents.end() ? it->second : ndst::kNoIntent;
  }

  absl::StatusOr<std::shared_ptr<const ndst::ServiceEncodings>> encodings = Encodings(tracked);
  if (!encodings.ok()) return encodings.status();
  absl::StatusOr<std::unique_ptr<ndst::DstSession>> session =
      model_->ResumeSession(*std::move(encodings), snapshot);
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
  // The state is stored every turn: only the most recent values met travel on.
  for (const ndst::Snapshot::Value& h : ndst::RecentHistory(now.history, options_.max_history)) {
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
