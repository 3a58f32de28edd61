// Evaluation of journey expressions (DSL.md "Expressions") against JSON data.
//
// A Scope names what paths read: `customer.*` from the profile, `event.*` from the event being
// matched (or the last event that moved the customer), `entry.*` from the entry event, and a
// single-segment path from the instance's message handles. Evaluation is total: a missing path
// is null, a type mismatch or a division by zero gives null, nothing throws. Pure; thread-safe.
#ifndef ITINERA_ORCHESTRATOR_EVAL_H_
#define ITINERA_ORCHESTRATOR_EVAL_H_

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dsl/ast.h"

namespace itinera::orch {

struct Scope {
  const nlohmann::json* profile = nullptr;  // {"id", "email", ..., "attributes": {...}}
  const nlohmann::json* event = nullptr;    // {"type", "customer_id", "timestamp", "properties"}
  const nlohmann::json* entry = nullptr;    // same shape as event
  const std::map<std::string, std::string>* handles = nullptr;  // handle -> message id
};

// The value of `expr`; null for anything undefined. A handle with no message yet reads as null.
nlohmann::json Evaluate(const dsl::Expr& expr, const Scope& scope);

// `expr` as a condition: false for null, false, 0 and "", true otherwise. Comparisons with a
// handle that has no message yet are false.
bool IsTrue(const dsl::Expr& expr, const Scope& scope);

// Truthiness of a value: null, false, 0 and "" are false.
bool Truthy(const nlohmann::json& value);

// The profile fields that live at the top of the profile; every other `customer.X` is an
// attribute under "attributes".
bool IsCoreProfileField(const std::string& name);

// Where `customer.<path>` lives in the profile, as a JSON pointer ("/email", "/consent/email",
// "/attributes/address/city").
nlohmann::json::json_pointer ProfilePointer(const std::vector<std::string>& path);

// Writes `value` at `customer.<path>`, creating objects on the way (a non-object in the way is
// replaced by an object).
void SetProfileValue(nlohmann::json& profile, const std::vector<std::string>& path,
                     const nlohmann::json& value);

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_EVAL_H_
