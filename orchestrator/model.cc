#include "orchestrator/model.h"

namespace itinera::orch {

using nlohmann::json;

Instance* JourneyState::Active() {
  if (instances.empty() || !instances.back().in_flight()) return nullptr;
  return &instances.back();
}

const Instance* JourneyState::Active() const {
  if (instances.empty() || !instances.back().in_flight()) return nullptr;
  return &instances.back();
}

std::optional<Time> JourneyState::NextWake() const {
  std::optional<Time> wake;
  const Instance* active = Active();
  if (active != nullptr && active->status == InstanceStatus::kWaiting) wake = active->wake_at;
  for (const auto& in : instances) {
    for (const auto& m : in.held) {
      if (!wake || m.until < *wake) wake = m.until;
    }
  }
  return wake;
}

const char* Effect::KindName(Kind kind) {
  switch (kind) {
    case Kind::kEntered:
      return "entered";
    case Kind::kStep:
      return "step";
    case Kind::kSent:
      return "sent";
    case Kind::kSkipped:
      return "skipped";
    case Kind::kHeld:
      return "held";
    case Kind::kAlert:
      return "alert";
    case Kind::kAssigned:
      return "assigned";
    case Kind::kSet:
      return "set";
    case Kind::kWebhook:
      return "webhook";
    case Kind::kGoal:
      return "goal";
    case Kind::kExited:
      return "exited";
  }
  return "?";
}

const char* StatusName(InstanceStatus status) {
  switch (status) {
    case InstanceStatus::kActive:
      return "active";
    case InstanceStatus::kWaiting:
      return "waiting";
    case InstanceStatus::kExited:
      return "exited";
  }
  return "?";
}

const char* WaitKindName(WaitKind kind) {
  switch (kind) {
    case WaitKind::kNone:
      return "none";
    case WaitKind::kTimer:
      return "timer";
    case WaitKind::kEvent:
      return "event";
  }
  return "?";
}

namespace {

json OptionalTime(const std::optional<Time>& t) { return t ? json(FormatTime(*t)) : json(); }

bool ReadTime(const json& j, const char* key, std::optional<Time>& out) {
  if (!j.contains(key) || j[key].is_null()) {
    out.reset();
    return true;
  }
  if (!j[key].is_string()) return false;
  out = ParseTime(j[key].get<std::string>());
  return out.has_value();
}

}  // namespace

json ToJson(const HeldMessage& m) {
  return json{{"channel", m.channel},
              {"template", m.template_name},
              {"handle", m.handle},
              {"message_id", m.message_id},
              {"step", m.step},
              {"held_at", FormatTime(m.held_at)},
              {"until", FormatTime(m.until)},
              {"entry_event", m.entry_event},
              {"last_event", m.last_event}};
}

Result<HeldMessage> HeldMessageFromJson(const json& j) {
  try {
    HeldMessage m;
    m.channel = j.at("channel").get<std::string>();
    m.template_name = j.at("template").get<std::string>();
    m.handle = j.value("handle", "");
    m.message_id = j.at("message_id").get<std::string>();
    m.step = j.value("step", "");
    std::optional<Time> t;
    if (!ReadTime(j, "held_at", t) || !t) return Error{"invalid_instance", "bad held_at"};
    m.held_at = *t;
    if (!ReadTime(j, "until", t) || !t) return Error{"invalid_instance", "bad until"};
    m.until = *t;
    m.entry_event = j.value("entry_event", json::object());
    m.last_event = j.value("last_event", json::object());
    return m;
  } catch (const json::exception& e) {
    return Error{"invalid_instance", e.what()};
  }
}

json ToJson(const Instance& in) {
  json j = json::object();
  j["journey"] = in.journey;
  j["version"] = in.version;
  j["customer"] = in.customer;
  j["entry"] = in.entry;
  j["entered_at"] = FormatTime(in.entered_at);
  j["holdout"] = in.holdout;
  j["status"] = StatusName(in.status);
  j["step"] = in.step;
  j["next_action"] = in.next_action;
  j["wait"] = WaitKindName(in.wait);
  j["wake_at"] = OptionalTime(in.wake_at);
  j["wait_started_at"] = FormatTime(in.wait_started_at);
  j["entry_event"] = in.entry_event;
  j["last_event"] = in.last_event;
  j["handles"] = in.handles;
  j["step_visits"] = in.step_visits;
  j["goals"] = in.goals;
  json held = json::array();
  for (const auto& m : in.held) held.push_back(ToJson(m));
  j["held"] = held;
  j["exit_reason"] = in.exit_reason;
  j["exited_at"] = OptionalTime(in.exited_at);
  return j;
}

Result<Instance> InstanceFromJson(const json& j) {
  try {
    Instance in;
    in.journey = j.at("journey").get<std::string>();
    in.version = j.at("version").get<int64_t>();
    in.customer = j.at("customer").get<std::string>();
    in.entry = j.at("entry").get<int64_t>();
    std::optional<Time> t;
    if (!ReadTime(j, "entered_at", t) || !t) return Error{"invalid_instance", "bad entered_at"};
    in.entered_at = *t;
    in.holdout = j.at("holdout").get<bool>();
    std::string status = j.at("status").get<std::string>();
    if (status == "active") {
      in.status = InstanceStatus::kActive;
    } else if (status == "waiting") {
      in.status = InstanceStatus::kWaiting;
    } else if (status == "exited") {
      in.status = InstanceStatus::kExited;
    } else {
      return Error{"invalid_instance", "unknown status \"" + status + "\""};
    }
    in.step = j.at("step").get<int>();
    in.next_action = j.at("next_action").get<int>();
    std::string wait = j.at("wait").get<std::string>();
    if (wait == "none") {
      in.wait = WaitKind::kNone;
    } else if (wait == "timer") {
      in.wait = WaitKind::kTimer;
    } else if (wait == "event") {
      in.wait = WaitKind::kEvent;
    } else {
      return Error{"invalid_instance", "unknown wait kind \"" + wait + "\""};
    }
    if (!ReadTime(j, "wake_at", in.wake_at)) return Error{"invalid_instance", "bad wake_at"};
    if (!ReadTime(j, "wait_started_at", t) || !t) {
      return Error{"invalid_instance", "bad wait_started_at"};
    }
    in.wait_started_at = *t;
    in.entry_event = j.value("entry_event", json::object());
    in.last_event = j.value("last_event", json::object());
    in.handles = j.value("handles", std::map<std::string, std::string>{});
    in.step_visits = j.value("step_visits", std::map<std::string, int64_t>{});
    in.goals = j.value("goals", std::set<std::string>{});
    if (j.contains("held")) {
      if (!j["held"].is_array()) return Error{"invalid_instance", "bad held"};
      for (const auto& item : j["held"]) {
        auto m = HeldMessageFromJson(item);
        if (!m.ok()) return m.error();
        in.held.push_back(std::move(m).value());
      }
    }
    in.exit_reason = j.value("exit_reason", "");
    if (!ReadTime(j, "exited_at", in.exited_at)) return Error{"invalid_instance", "bad exited_at"};
    return in;
  } catch (const json::exception& e) {
    return Error{"invalid_instance", e.what()};
  }
}

json ToJson(const JourneyState& state) {
  json list = json::array();
  for (const auto& in : state.instances) list.push_back(ToJson(in));
  return json{{"instances", list}};
}

Result<JourneyState> JourneyStateFromJson(const json& j) {
  if (!j.is_object() || !j.contains("instances") || !j["instances"].is_array()) {
    return Error{"invalid_instance", "expected {\"instances\": [...]}"};
  }
  JourneyState state;
  for (const auto& item : j["instances"]) {
    auto in = InstanceFromJson(item);
    if (!in.ok()) return in.error();
    state.instances.push_back(std::move(in).value());
  }
  return state;
}

uint64_t StableHash(const std::vector<std::string>& parts) {
  uint64_t h = 14695981039346656037ull;
  for (const auto& part : parts) {
    for (unsigned char c : part) {
      h ^= c;
      h *= 1099511628211ull;
    }
    h ^= 0x1f;  // unit separator, so ("ab","c") != ("a","bc")
    h *= 1099511628211ull;
  }
  // splitmix64 finaliser.
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

std::string HexId(uint64_t hash) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex(16, '0');
  for (int i = 15; i >= 0; --i, hash >>= 4) hex[static_cast<size_t>(i)] = kDigits[hash & 0xf];
  return hex;
}

int Bucket(const std::vector<std::string>& parts) {
  return static_cast<int>(StableHash(parts) % 10000);
}

}  // namespace itinera::orch
