// The engine's stateless rules: who may enter, the stable hashes behind holdouts, splits and
// message ids, and the data model templates are rendered with. Pure functions; thread-safe.
#include "orchestrator/engine.h"

namespace itinera::orch {

using nlohmann::json;

namespace {

std::string StringField(const json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

json EventProperties(const json& event) {
  if (event.is_object()) {
    auto it = event.find("properties");
    if (it != event.end() && it->is_object()) return *it;
  }
  return json::object();
}

}  // namespace

bool MayEnter(const dsl::Program& program, const JourneyState& state, Time now) {
  if (state.instances.empty()) return true;
  if (state.Active() != nullptr) return false;
  switch (program.re_enter.kind) {
    case dsl::ReEnterSetting::Kind::kNever:
      return false;
    case dsl::ReEnterSetting::Kind::kAlways:
      return true;
    case dsl::ReEnterSetting::Kind::kAfter:
      return (now - state.instances.back().entered_at).count() >= program.re_enter.after_seconds;
  }
  return false;
}

bool InHoldout(const dsl::Program& program, const std::string& customer_id) {
  if (program.holdout_percent <= 0) return false;
  return Bucket({"holdout", program.id, customer_id}) < program.holdout_percent * 100;
}

size_t SplitBranch(const dsl::SplitTransition& split, const std::string& journey_id,
                   const std::string& customer_id, const std::string& step_id) {
  int bucket = Bucket({"split", journey_id, customer_id, step_id});
  double cumulative = 0;
  for (size_t i = 0; i < split.branches.size(); ++i) {
    cumulative += split.branches[i].percent * 100;
    if (bucket < cumulative) return i;
  }
  return split.branches.empty() ? 0 : split.branches.size() - 1;
}

std::string MessageId(const std::string& journey, int64_t version, const std::string& customer,
                      int64_t entry, const std::string& step_id, int action, int64_t visit) {
  std::vector<std::string> parts = {journey,  std::to_string(version),
                                    customer, std::to_string(entry),
                                    step_id,  std::to_string(action)};
  if (visit > 1) parts.push_back(std::to_string(visit));
  return HexId(StableHash(parts));
}

json FlattenProfile(const json& profile) {
  json flat = json::object();
  if (!profile.is_object()) return flat;
  // Core fields first, in key order (so each insertion is at the end); attributes then only
  // fill the names the core fields left free: core fields win.
  json::object_t& out = flat.get_ref<json::object_t&>();
  for (const auto& [key, value] : profile.get_ref<const json::object_t&>()) {
    if (key != "attributes") out.emplace_hint(out.end(), key, value);
  }
  auto attributes = profile.find("attributes");
  if (attributes != profile.end() && attributes->is_object()) {
    for (const auto& [key, value] : attributes->get_ref<const json::object_t&>()) {
      out.emplace(key, value);
    }
  }
  return flat;
}

json TemplateData(const dsl::Program& program, const Instance& instance, const json& profile,
                  const Directory& directory, const std::string& unsubscribe_url) {
  // Built member by member, in key order (so each insertion is at the end): a braced
  // initializer would build and take apart a temporary array for every pair.
  json data = json::object();
  json::object_t& members = data.get_ref<json::object_t&>();
  auto add = [&members](const char* key, json value) -> json& {
    return members.emplace_hint(members.end(), key, std::move(value))->second;
  };
  add("customer", FlattenProfile(profile));
  add("entry", EventProperties(instance.entry_event));
  add("event", EventProperties(instance.last_event));
  json& journey = add("journey", json::object());
  journey["id"] = program.id;
  journey["title"] = program.title;
  journey["version"] = instance.version;
  add("links", json::object())["unsubscribe"] = unsubscribe_url;
  json& owner = add("owner", nullptr);  // no owner: `{{#owner}}...{{/owner}}` renders nothing
  if (const Rep* rep = directory.FindRep(StringField(profile, "owner"))) {
    owner["id"] = rep->id;
    owner["name"] = rep->name;
    owner["email"] = rep->email;
    owner["phone"] = rep->phone;
  }
  return data;
}

}  // namespace itinera::orch
