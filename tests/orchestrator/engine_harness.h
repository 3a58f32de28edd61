// Test helpers for the engine: compile journey text, and drive one customer through one
// journey the way a store would (apply each outcome, keep sends and routing counters).
#ifndef ITINERA_TESTS_ORCHESTRATOR_ENGINE_HARNESS_H_
#define ITINERA_TESTS_ORCHESTRATOR_ENGINE_HARNESS_H_

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dsl/checker.h"
#include "dsl/diagnostic.h"
#include "orchestrator/engine.h"
#include "util/time.h"

namespace itinera::orch::testing {

using nlohmann::json;

// Two teams (prague_sales: anna, ben, cyril; brno_sales: dana) and one webhook (crm_task).
inline Directory TestDirectory() {
  Directory d;
  auto rep = [](std::string id, std::string name, std::string territory, std::string team) {
    Rep r;
    r.id = id;
    r.name = name;
    r.email = id + "@dealer.example";
    r.phone = "+420700000000";
    r.territory = territory;
    r.team = team;
    return r;
  };
  d.teams["prague_sales"] = {rep("rep_anna", "Anna Novak", "prague", "prague_sales"),
                             rep("rep_ben", "Ben Dvorak", "Central Bohemia", "prague_sales"),
                             rep("rep_cyril", "Cyril Maly", "", "prague_sales")};
  d.teams["brno_sales"] = {rep("rep_dana", "Dana Kral", "brno", "brno_sales")};
  d.webhooks["crm_task"] = Webhook{"crm_task", "http://127.0.0.1:9001/tasks", ""};
  return d;
}

inline dsl::CheckEnvironment TestEnvironment() {
  dsl::CheckEnvironment env;
  Directory d = TestDirectory();
  for (const auto& [team, reps] : d.teams) {
    env.teams.insert(team);
    for (const auto& r : reps) env.reps.insert(r.id);
  }
  for (const auto& [name, hook] : d.webhooks) env.webhooks.insert(name);
  return env;
}

inline dsl::Program CompileJourney(const std::string& text) {
  auto result = dsl::CompileText(text, "test.journey", TestEnvironment());
  if (!result.program) {
    ADD_FAILURE() << dsl::FormatDiagnostics(result.diagnostics, text);
    return dsl::Program{};
  }
  return *result.program;
}

// The value expression of `set customer.result = <expr>` compiled in a one-step journey.
inline dsl::ExprPtr CompileExpr(const std::string& expr) {
  dsl::Program p = CompileJourney(
      "journey t {\n enter when event \"x\"\n step s {\n  set customer.result = " + expr +
      "\n  exit\n }\n}\n");
  if (p.steps.empty() || p.steps[0].actions.empty()) return nullptr;
  return std::get<dsl::SetAction>(p.steps[0].actions[0]).value;
}

inline Time At(const char* text) {
  auto t = ParseTime(text);
  EXPECT_TRUE(t.has_value()) << text;
  return t.value_or(Time{});
}

inline json MakeEvent(const std::string& customer, const std::string& type, Time at,
                      json properties = json::object()) {
  return {{"customer_id", customer},
          {"type", type},
          {"timestamp", FormatTime(at)},
          {"properties", std::move(properties)}};
}

inline json Profile(const std::string& id, json extra = json::object()) {
  json p = {{"id", id},
            {"email", id + "@example.com"},
            {"phone", "+420600000000"},
            {"consent", {{"email", true}, {"sms", true}}},
            {"attributes", json::object()}};
  p.merge_patch(extra);
  return p;
}

// One customer in one journey, with the effects of every call kept in order.
class Harness {
 public:
  Harness(const std::string& journey_text, json profile)
      : program(CompileJourney(journey_text)), profile(std::move(profile)) {}

  std::vector<Effect> Event(const std::string& type, Time at, json properties = json::object()) {
    return Apply(
        OnEvent(program, state, MakeEvent(profile["id"], type, at, properties), at, Context()));
  }
  std::vector<Effect> Timer(Time at) { return Apply(OnTimer(program, state, at, Context())); }
  // Fires every due wake-up up to `until`, in order.
  std::vector<Effect> RunUntil(Time until) {
    std::vector<Effect> all;
    while (auto wake = state.NextWake()) {
      if (*wake > until) break;
      auto effects = Timer(*wake);
      all.insert(all.end(), effects.begin(), effects.end());
    }
    return all;
  }
  std::vector<Effect> ProfileChange(json updated, Time at) {
    json previous = profile;
    profile = std::move(updated);
    return Apply(OnProfileChange(program, state, previous, at, Context()));
  }

  CustomerContext Context() const {
    CustomerContext c;
    c.profile = profile;
    c.recent_sends = sends;
    c.directory = &directory;
    c.routing = routing;
    return c;
  }

  // Every call of every engine test also checks the outcome's change flags: a state reported
  // unchanged is exactly the input (the processor then skips persisting it), and a profile not
  // written is not returned.
  std::vector<Effect> Apply(Outcome o) {
    if (!o.state_changed) {
      EXPECT_EQ(ToJson(o.state), ToJson(state)) << "state_changed is false, yet the state moved";
    }
    if (!o.profile_changed) {
      EXPECT_TRUE(o.profile.is_null());
    }
    state = std::move(o.state);
    if (o.profile_changed) profile = std::move(o.profile);
    for (const auto& [team, n] : o.routing.round_robin) routing.round_robin[team] += n;
    for (const auto& [rep, n] : o.routing.load) routing.load[rep] += n;
    for (const auto& e : o.effects) {
      if (e.kind == Effect::Kind::kSent) sends.push_back({e.channel, e.at});
      effects.push_back(e);
    }
    return o.effects;
  }

  const Instance* active() const { return state.Active(); }

  dsl::Program program;
  json profile;
  JourneyState state;
  Directory directory = TestDirectory();
  RoutingSnapshot routing;
  std::vector<SendRecord> sends;
  std::vector<Effect> effects;
};

// "kind" or "kind:detail" strings for compact assertions: step:confirm, sent:email,
// skipped:no_consent, held:email, exited:completed, goal:x, entered, set:score, alert:rep_anna,
// assigned:rep_anna, webhook:crm.
inline std::vector<std::string> Trace(const std::vector<Effect>& effects) {
  std::vector<std::string> out;
  for (const auto& e : effects) {
    std::string s = Effect::KindName(e.kind);
    switch (e.kind) {
      case Effect::Kind::kStep:
        s += ":" + e.step;
        break;
      case Effect::Kind::kSent:
        s += ":" + e.channel;
        break;
      case Effect::Kind::kHeld:
        s += ":" + e.channel;
        break;
      case Effect::Kind::kSkipped:
        s += ":" + e.reason;
        break;
      case Effect::Kind::kExited:
        s += ":" + e.reason;
        break;
      case Effect::Kind::kGoal:
        s += ":" + e.goal;
        break;
      case Effect::Kind::kSet:
        s += ":" + e.attribute;
        break;
      case Effect::Kind::kAlert:
        s += ":" + e.rep;
        break;
      case Effect::Kind::kAssigned:
        s += ":" + e.rep;
        break;
      case Effect::Kind::kWebhook:
        s += ":" + e.name;
        break;
      default:
        break;
    }
    out.push_back(s);
  }
  return out;
}

inline std::vector<std::string> Only(const std::vector<Effect>& effects, Effect::Kind kind) {
  std::vector<Effect> kept;
  for (const auto& e : effects)
    if (e.kind == kind) kept.push_back(e);
  return Trace(kept);
}

}  // namespace itinera::orch::testing

#endif  // ITINERA_TESTS_ORCHESTRATOR_ENGINE_HARNESS_H_
