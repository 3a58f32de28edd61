// The delivery checks shared by a send at its step and a held message at its delivery: consent,
// address, frequency caps and quiet hours. Internal to the engine; pure functions.
#ifndef ITINERA_ORCHESTRATOR_ENGINE_DELIVERY_H_
#define ITINERA_ORCHESTRATOR_ENGINE_DELIVERY_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "dsl/program.h"
#include "orchestrator/model.h"
#include "util/time.h"

namespace itinera::orch {

// Why a message on `channel` may not go to the customer now (nullptr when it may), with the
// address in `to`. Caps count the delivered sends in each window; with `count_held`, every held
// record counts too (whatever its time), plus `pending` more messages the caller knows of.
const char* SendBlocked(const dsl::Program& program, const std::string& channel,
                        const nlohmann::json& profile, const std::vector<SendRecord>& sends,
                        bool count_held, int64_t pending, Time now, std::string* to);

// The end of the quiet window when `now` is inside it in the customer's zone; else nullopt.
std::optional<Time> QuietUntil(const dsl::Program& program, const nlohmann::json& profile,
                               const nlohmann::json& entry_event, Time now);

// Delivers (through DeliverHeld) the held messages of `in` due by `now`, appending `sent`,
// `skipped` or `held` (again) effects made from `base`; delivered sends are added to `sends`.
void DeliverDueHeld(const dsl::Program& program, Instance& in, const nlohmann::json& profile,
                    const Directory& directory, const std::string& public_url, Time now,
                    const Effect& base, std::vector<SendRecord>& sends,
                    std::vector<Effect>& effects);

// Drops every held message of `in`, each recorded as `skipped` with reason "exited".
void CancelHeldMessages(Instance& in, const Effect& base, std::vector<Effect>& effects);

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_ENGINE_DELIVERY_H_
