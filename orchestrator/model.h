// The engine's data: journey instances, the customer context snapshot, effects and outcomes.
//
// An Instance is one customer's one entry into one journey; a JourneyState is every entry of
// one customer into one journey, oldest first (at most the last one is in flight). A
// CustomerContext is a read-only snapshot the caller takes before calling the engine: the
// profile, the customer's recent sends on every journey (for frequency caps), the directory and
// the lead-routing counters. An Outcome is what the engine decided: the new state, the updated
// profile, the effects in the order they happened and the routing deltas the caller applies.
// All plain values; Instance and JourneyState round-trip through JSON so a store can persist
// them. Not synchronised: one customer is processed by one caller at a time.
#ifndef ITINERA_ORCHESTRATOR_MODEL_H_
#define ITINERA_ORCHESTRATOR_MODEL_H_

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "orchestrator/directory.h"
#include "util/result.h"
#include "util/time.h"

namespace itinera::orch {

enum class InstanceStatus { kActive, kWaiting, kExited };

enum class WaitKind {
  kNone,
  kTimer,  // `wait <dur>` or `wait until`: resume at the next action
  kEvent,  // `wait up to ... for event`: received or timed out at wake_at
};

// An email or SMS held by quiet hours, to be delivered at `until` (the customer moved on). The
// message keeps the events its template data is rendered from.
struct HeldMessage {
  std::string channel;  // "email" or "sms"
  std::string template_name;
  std::string handle;  // empty when none
  std::string message_id;
  std::string step;  // the step whose action held it
  Time held_at{};
  Time until{};
  nlohmann::json entry_event = nlohmann::json::object();
  nlohmann::json last_event = nlohmann::json::object();
};

struct Instance {
  std::string journey;
  int64_t version = 1;
  std::string customer;
  int64_t entry = 1;  // 1 for the first entry of this customer into this journey, then 2, ...
  Time entered_at{};
  bool holdout = false;

  InstanceStatus status = InstanceStatus::kActive;
  int step = 0;         // index into Program::steps
  int next_action = 0;  // the action to run when the instance resumes
  WaitKind wait = WaitKind::kNone;
  std::optional<Time> wake_at;
  Time wait_started_at{};

  nlohmann::json entry_event = nlohmann::json::object();  // the event that made it enter
  nlohmann::json last_event = nlohmann::json::object();   // the last event that moved it
  std::map<std::string, std::string> handles;             // handle -> message id
  std::map<std::string, int64_t> step_visits;             // step id -> times entered
  std::set<std::string> goals;                            // goals reached in this entry
  std::vector<HeldMessage> held;                          // pending, in the order held

  std::string exit_reason;
  std::optional<Time> exited_at;

  bool in_flight() const { return status != InstanceStatus::kExited; }
};

struct JourneyState {
  std::vector<Instance> instances;  // oldest first

  Instance* Active();
  const Instance* Active() const;
  // The earliest of the in-flight instance's clock wait and every pending held message (of any
  // entry: a customer who left normally still gets what was held).
  std::optional<Time> NextWake() const;
};

// One message sent to the customer, on any journey. `held`: a message held by quiet hours and
// not yet delivered; it counts against every cap window until it is delivered or dropped.
struct SendRecord {
  std::string channel;  // "email" or "sms"
  Time at{};
  bool held = false;
};

// Lead-routing counters shared by every journey.
struct RoutingSnapshot {
  std::map<std::string, int64_t> round_robin;  // team -> assignments made by rotation so far
  std::map<std::string, int64_t> load;         // rep id -> customers currently owned
};

struct CustomerContext {
  nlohmann::json profile = nlohmann::json::object();  // {"id", "email", ..., "attributes"}
  // Every journey's delivered sends, any order, plus (held = true) the messages other journeys
  // hold and have not delivered yet; this journey's held messages are read from its state.
  std::vector<SendRecord> recent_sends;
  const Directory* directory = nullptr;  // required
  RoutingSnapshot routing;
  std::string public_url = "http://127.0.0.1:8080";  // base of links.unsubscribe
};

struct Effect {
  enum class Kind {
    kEntered,
    kStep,
    kSent,
    kSkipped,
    kHeld,
    kAlert,
    kAssigned,
    kSet,
    kWebhook,
    kGoal,
    kExited,
  };
  Kind kind = Kind::kStep;
  Time at{};
  std::string journey;
  std::string customer;
  int64_t entry = 0;

  int64_t version = 0;        // entered
  bool holdout = false;       // entered
  std::string step;           // step; also the step of sent/skipped/held/alert/... effects
  std::string channel;        // sent, skipped, held: "email", "sms", "alert", "webhook"
  std::string template_name;  // sent, skipped, held, alert
  std::string to;             // sent: address; alert: the rep's address on its channel
  std::string handle;         // sent: empty when none
  std::string message_id;     // sent, held, alert, webhook: the idempotency key
  std::string reason;         // skipped (also "exited": a held message cancelled), exited
  std::optional<Time> until;  // held
  std::string rep;            // alert, assigned
  std::string team;           // assigned
  std::string attribute;      // set: "lead_stage", "address.city"
  std::string name;           // webhook
  std::string goal;           // goal
  nlohmann::json value;       // set: the value; webhook: the payload
  nlohmann::json data;        // sent, alert: the template data model

  static const char* KindName(Kind kind);
};

struct RoutingDelta {
  std::map<std::string, int64_t> round_robin;  // team -> increment
  std::map<std::string, int64_t> load;         // rep -> change
};

struct Outcome {
  JourneyState state;
  // Whether `state` may differ from the input: false means it is exactly the input. Set on
  // every effect and on the waits that move without one (a timer resuming into another wait).
  bool state_changed = false;
  // The profile after the call when the call wrote it (`profile_changed`); null otherwise, so
  // the caller's profile stands and was never copied.
  nlohmann::json profile;
  bool profile_changed = false;
  std::vector<Effect> effects;
  RoutingDelta routing;
};

const char* StatusName(InstanceStatus status);
const char* WaitKindName(WaitKind kind);

nlohmann::json ToJson(const HeldMessage& message);
Result<HeldMessage> HeldMessageFromJson(const nlohmann::json& json);
nlohmann::json ToJson(const Instance& instance);
Result<Instance> InstanceFromJson(const nlohmann::json& json);
nlohmann::json ToJson(const JourneyState& state);
Result<JourneyState> JourneyStateFromJson(const nlohmann::json& json);

// Deterministic 64-bit hash (FNV-1a, then a splitmix64 finaliser so low bits are well mixed)
// of the parts joined with a separator. The same on every run and platform.
uint64_t StableHash(const std::vector<std::string>& parts);

// 16 lower-case hex digits.
std::string HexId(uint64_t hash);

// StableHash(parts) mapped to [0, 10000): hundredths of a percent.
int Bucket(const std::vector<std::string>& parts);

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_MODEL_H_
