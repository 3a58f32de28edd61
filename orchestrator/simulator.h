// The simulator: the daemon's engine driven by a virtual clock over an in-memory store.
//
// Simulate feeds the given customers and events through the same engine functions the daemon
// uses and returns one record per effect, in time order, then a summary. Runs are reproducible:
// identical input gives byte-identical records.
//
// Ordering rules: the clock starts at the earliest event. Customers whose profile satisfies an
// `enter when customer` rule enter at that start, in input order. Then the earliest pending
// input runs next: events in timestamp order (ties: input order), due timers in (wake time,
// creation order). A timer and an event due at the same second: the timer runs first (a
// `wait up to 3d` has timed out when an event stamped exactly 3d later arrives). Each event is
// offered to every program in the order given. The run ends at `until`, or by default when no
// event is left and no customer waits on a clock, but never later than 365 days after the start.
// Not thread-safe (the TemplateSet is used to render subjects).
#ifndef ITINERA_ORCHESTRATOR_SIMULATOR_H_
#define ITINERA_ORCHESTRATOR_SIMULATOR_H_

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "dsl/program.h"
#include "orchestrator/directory.h"
#include "orchestrator/templates.h"
#include "util/result.h"
#include "util/time.h"

namespace itinera::orch {

struct SimulationOptions {
  std::optional<Time> until;                         // absolute end (from --until TIME)
  std::optional<Seconds> until_after_start;          // from --until DUR: start + DUR
  std::string public_url = "http://127.0.0.1:8080";  // base of links.unsubscribe
};

struct Simulation {
  std::vector<nlohmann::ordered_json> records;  // in time order, the last one is the summary
};

// `customers`: {"id", "email", "phone", "timezone", "consent", "attributes", ...}.
// `events`: {"customer_id", "type", "timestamp", "properties"}; an `email_opened` or
// `link_clicked` event may name `"handle"` (and `"journey"`) instead of `"message"`, or give a
// handle's name as the `"message"`: both resolve to the latest message sent under that handle.
// An event whose `"id"` appeared earlier in the list is accepted again without effect. Held
// messages are delivered as timers at their `until` (`sent` then, with the subject); `sent`
// and `held` records carry the message id as `"message"`.
// Errors: no events, an event without a valid timestamp, type or customer_id, a customer
// without an id.
Result<Simulation> Simulate(const std::vector<const dsl::Program*>& programs,
                            const std::vector<nlohmann::json>& customers,
                            const std::vector<nlohmann::json>& events, const Directory& directory,
                            TemplateSet& templates, const SimulationOptions& options);

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_SIMULATOR_H_
