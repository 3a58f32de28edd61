// PUT, GET and DELETE /v1/customers/{id}: the profile and the customer's 360 view.
#include <map>

#include "dsl/diagnostic.h"
#include "orchestrator/api_router.h"
#include "orchestrator/zone.h"
#include "util/time.h"

namespace itinera::orch {
namespace {

using json = nlohmann::json;

// Checks a PUT body strictly: a misspelt key must be refused, not silently dropped. The error's
// message names the field.
Status CheckProfilePatch(const json& body, const std::string& id) {
  if (!body.is_object()) return Error{"invalid_field", "the body is a JSON object"};
  static const std::vector<std::string> kFields = {"email",      "phone",   "timezone",
                                                   "attributes", "consent", "id"};
  for (const auto& [key, value] : body.items()) {
    auto nullable_string = [&]() -> Status {
      if (value.is_null() || value.is_string()) return Status::Ok();
      return Error{"invalid_field", key + ": a string or null expected"};
    };
    if (key == "email" || key == "phone") {
      if (Status s = nullable_string(); !s.ok()) return s;
    } else if (key == "timezone") {
      if (Status s = nullable_string(); !s.ok()) return s;
      if (value.is_string() && !FindZone(value.get<std::string>())) {
        return Error{"invalid_field", "timezone: \"" + value.get<std::string>() +
                                          "\" is not an IANA time zone (\"Europe/Prague\")"};
      }
    } else if (key == "attributes") {
      if (!value.is_object()) return Error{"invalid_field", "attributes: an object expected"};
    } else if (key == "consent") {
      if (!value.is_object()) return Error{"invalid_field", "consent: an object expected"};
      for (const auto& [channel, granted] : value.items()) {
        if (!granted.is_boolean() && !granted.is_null()) {
          return Error{"invalid_field", "consent." + channel + ": true, false or null expected"};
        }
      }
    } else if (key == "id") {
      // Allowed so a profile read by GET can be sent back; it cannot rename the customer.
      if (!value.is_string() || value.get<std::string>() != id) {
        return Error{"invalid_field", "id: must be absent or equal to the id in the path"};
      }
    } else {
      return Error{"invalid_field",
                   dsl::WithSuggestion("unknown field \"" + key + "\"", key, kFields)};
    }
  }
  return Status::Ok();
}

// One entry of a journey state for the 360 view. The step is named by its id when the entry
// runs the journey's current version (whose steps are known), else by its index.
json InstanceJson(const Instance& in, const JourneyInfo* journey) {
  json step = in.step;
  if (journey && in.version == journey->current_version && in.step >= 0 &&
      static_cast<size_t>(in.step) < journey->steps.size()) {
    step = journey->steps[static_cast<size_t>(in.step)];
  }
  json out = {{"journey", in.journey}, {"version", in.version},
              {"entry", in.entry},     {"step", std::move(step)},
              {"step_index", in.step}, {"status", StatusName(in.status)},
              {"holdout", in.holdout}, {"entered_at", FormatTime(in.entered_at)}};
  if (in.exited_at) out["exited_at"] = FormatTime(*in.exited_at);
  if (!in.exit_reason.empty()) out["exit_reason"] = in.exit_reason;
  return out;
}

}  // namespace

ApiResponse ApiRouter::PutCustomer(const ApiRequest& request, const std::string& id) const {
  auto body = ParseJsonBody(request.body);
  if (!body.ok()) return BadRequest(body.error());
  if (Status s = CheckProfilePatch(*body, id); !s.ok()) return BadRequest(s.error());
  json patch = std::move(*body);
  patch.erase("id");
  auto change = backend_.upsert_customer(id, patch);
  if (!change.ok()) {
    if (change.error().code == "invalid_argument") {
      return ErrorResponse(400, "invalid_field", change.error().message);
    }
    return Unavailable(change.error());
  }
  return JsonResponse(200, change->after);
}

ApiResponse ApiRouter::GetCustomer(const ApiRequest& request, const std::string& id) const {
  auto limit = ParseLimit(request);
  if (!limit.ok()) return BadRequest(limit.error());
  auto profile = backend_.store->GetProfile(id);
  if (!profile.ok()) return Unavailable(profile.error());
  if (!*profile) return ErrorResponse(404, "customer_not_found", "no customer \"" + id + "\"");
  auto states = backend_.store->ListStates(id);
  if (!states.ok()) return Unavailable(states.error());
  auto timeline = backend_.store->Timeline(id, *limit);
  if (!timeline.ok()) return Unavailable(timeline.error());

  std::map<std::string, JourneyInfo> journeys;
  for (JourneyInfo& j : backend_.journeys()) journeys[j.id] = std::move(j);
  json journey_list = json::array();
  for (const StoredState& s : *states) {
    auto it = journeys.find(s.journey);
    for (const Instance& in : s.state.instances) {
      journey_list.push_back(InstanceJson(in, it == journeys.end() ? nullptr : &it->second));
    }
  }

  json entries = json::array();
  for (const TimelineEntry& t : *timeline) {
    json entry = t.data.is_object() ? t.data : json::object();
    entry["at"] = FormatTime(t.at);
    entry["kind"] = t.kind;
    // A message's delivery status changes after the timeline line was written: read it now.
    if (auto m = entry.find("message"); m != entry.end() && m->is_string()) {
      auto message = backend_.store->GetMessage(m->get<std::string>());
      if (!message.ok()) return Unavailable(message.error());
      if (*message) entry["status"] = MessageStatusName((*message)->status);
    }
    entries.push_back(std::move(entry));
  }
  return JsonResponse(200, {{"profile", std::move(**profile)},
                            {"journeys", std::move(journey_list)},
                            {"timeline", std::move(entries)}});
}

ApiResponse ApiRouter::DeleteCustomer(const std::string& id) const {
  // Known: a profile, a journey state, a timeline line or an unprocessed event. Erasure must
  // reach a customer who only ever sent events, so the profile alone does not decide.
  auto profile = backend_.store->GetProfile(id);
  if (!profile.ok()) return Unavailable(profile.error());
  bool known = profile->has_value();
  if (!known) {
    auto states = backend_.store->ListStates(id);
    if (!states.ok()) return Unavailable(states.error());
    auto timeline = backend_.store->Timeline(id, 1);
    if (!timeline.ok()) return Unavailable(timeline.error());
    auto pending = backend_.store->PendingEvents(id, 1);
    if (!pending.ok()) return Unavailable(pending.error());
    known = !states->empty() || !timeline->empty() || !pending->empty();
  }
  if (!known) return ErrorResponse(404, "customer_not_found", "no customer \"" + id + "\"");
  if (Status s = backend_.store->EraseCustomer(id); !s.ok()) return Unavailable(s.error());
  return JsonResponse(200, {{"erased", id}});
}

}  // namespace itinera::orch
