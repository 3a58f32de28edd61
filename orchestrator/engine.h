// The engine: the pure, deterministic step function that moves customers through a journey.
//
// Every function takes the state of one customer in one journey (every entry so far), one input
// (an event, the clock reaching a wake-up time, or a profile change), the instant `now` and a
// snapshot of the customer's context, and returns the new state, the profile when it wrote it, the
// effects in order and the routing deltas. No clock, no I/O, no randomness: splits and holdouts
// hash ids, message ids hash (journey, version, customer, entry, step, action). The caller
// persists the outcome and performs the effects (render and send, alert, call webhooks). The
// caller passes the Program of the version the in-flight instance entered with.
//
// Processing one event: goals first (every entry still inside its goal window), then exit
// rules, then a matching `wait up to`, then entry. An email or SMS that falls in quiet hours is
// held (recorded on the instance, delivered at the window's end by OnTimer through DeliverHeld)
// and the customer moves on at once. Thread-safe: no shared mutable state.
#ifndef ITINERA_ORCHESTRATOR_ENGINE_H_
#define ITINERA_ORCHESTRATOR_ENGINE_H_

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "dsl/program.h"
#include "orchestrator/model.h"
#include "util/time.h"

namespace itinera::orch {

// At most this many steps run within one call; past it the instance exits with "loop_limit".
inline constexpr int kMaxStepsPerCall = 1000;

// The state is taken by value: a caller that moves its state in saves the engine a copy of
// every entry's events and maps, and gets it back in Outcome::state.
//
// An event: {"customer_id", "type", "timestamp", "properties": {...}}.
Outcome OnEvent(const dsl::Program& program, JourneyState state, const nlohmann::json& event,
                Time now, const CustomerContext& context);

// The clock reached JourneyState::NextWake(): delivers the held messages due by `now` (of every
// entry), then resumes the in-flight instance when its wake_at has come.
Outcome OnTimer(const dsl::Program& program, JourneyState state, Time now,
                const CustomerContext& context);

// The profile was created (`previous` is null) or updated to context.profile: enters when an
// `enter when customer` condition is true now and was not before.
Outcome OnProfileChange(const dsl::Program& program, JourneyState state,
                        const nlohmann::json& previous, Time now, const CustomerContext& context);

// What became of a held message at delivery time.
struct HeldDelivery {
  enum class Kind { kSent, kSkipped, kHeld };
  Kind kind = Kind::kSent;
  std::string to;             // kSent: the address
  std::string reason;         // kSkipped: no_consent, no_address, frequency_cap
  std::optional<Time> until;  // kHeld: quiet hours again (the window moved): the new end
};

// Delivers a held message at `now`: consent, address, frequency caps (delivered sends only:
// `held` records are ignored) and quiet hours are checked again, as the daemon's dispatcher
// does with exactly this function. Pure.
HeldDelivery DeliverHeld(const dsl::Program& program, const HeldMessage& message,
                         const nlohmann::json& profile, const std::vector<SendRecord>& recent_sends,
                         Time now);

// Whether an entry now is allowed by re_enter and "never twice at once".
bool MayEnter(const dsl::Program& program, const JourneyState& state, Time now);

// True when the customer falls in the journey's holdout group (stable per journey and customer).
bool InHoldout(const dsl::Program& program, const std::string& customer_id);

// The split branch (index into SplitTransition::branches) this customer takes at `step_id`.
size_t SplitBranch(const dsl::SplitTransition& split, const std::string& journey_id,
                   const std::string& customer_id, const std::string& step_id);

// The idempotency key of the message sent by action `action` of step `step_id`. `visit` > 1
// when the step is entered again within the same entry (a loop through a wait).
std::string MessageId(const std::string& journey, int64_t version, const std::string& customer,
                      int64_t entry, const std::string& step_id, int action, int64_t visit = 1);

// The template data model of DSL.md "Templates" for an instance.
nlohmann::json TemplateData(const dsl::Program& program, const Instance& instance,
                            const nlohmann::json& profile, const Directory& directory,
                            const std::string& unsubscribe_url);

// The profile with attributes merged at the top level (core fields win), as templates see it.
nlohmann::json FlattenProfile(const nlohmann::json& profile);

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_ENGINE_H_
