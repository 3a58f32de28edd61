// Checks on each step on its own: duplicate ids, what its actions refer to (channels, teams,
// reps, webhooks, templates), and the shape of its transition (an `else`, both outcomes of a
// wait, split percentages).

#include <cmath>
#include <map>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "dsl/check_internal.h"
#include "util/time.h"

namespace itinera::dsl::internal {
namespace {

// "unknown team \"x\"", completed with "did you mean", or else with what would be accepted.
std::string Unknown(const std::string& what, const std::string& word,
                    const std::vector<std::string>& known, const std::string& otherwise) {
  std::string message = "unknown " + what + " \"" + word + "\"";
  if (SuggestSpelling(word, known)) return WithSuggestion(std::move(message), word, known);
  return message + ": " + otherwise;
}

// `what` is "team", "rep" or "webhook"; `known` comes from the configuration.
void CheckKnown(const std::string& what, const Name& name, const std::set<std::string>& known,
                Reporter& report) {
  if (known.contains(name.text)) return;
  std::vector<std::string> candidates(known.begin(), known.end());
  std::string otherwise;
  if (candidates.empty()) {
    otherwise = "the configuration defines no " + what + "s";
  } else if (candidates.size() <= 6) {
    otherwise = "the configuration defines ";
    for (size_t i = 0; i < candidates.size(); ++i) {
      if (i > 0) otherwise += i + 1 == candidates.size() ? " and " : ", ";
      otherwise += "\"" + candidates[i] + "\"";
    }
  } else {
    otherwise = "it is not in the configuration";
  }
  report.Error(name.pos, Unknown(what, name.text, candidates, otherwise));
}

void CheckTemplate(const CheckContext& ctx, std::string_view channel, const Name& name) {
  if (!ctx.env.template_problem) return;
  if (std::optional<std::string> problem = ctx.env.template_problem(channel, name.text)) {
    ctx.report.Error(name.pos, *problem);
  }
}

void CheckAction(const CheckContext& ctx, const Action& action) {
  Reporter& report = ctx.report;
  const CheckEnvironment& env = ctx.env;
  if (const auto* a = std::get_if<SendAction>(&action)) {
    if (CheckChannel(a->channel, report)) CheckTemplate(ctx, a->channel.text, a->template_name);
  } else if (const auto* a = std::get_if<AlertAction>(&action)) {
    if (a->target == AlertAction::Target::kTeam)
      CheckKnown("team", a->target_name, env.teams, report);
    if (a->target == AlertAction::Target::kRep) CheckKnown("rep", a->target_name, env.reps, report);
    CheckTemplate(ctx, "alert", a->template_name);
  } else if (const auto* a = std::get_if<AssignAction>(&action)) {
    CheckKnown("team", a->team, env.teams, report);
  } else if (const auto* a = std::get_if<SetAction>(&action)) {
    if (!a->attribute.empty() && a->attribute[0] == "id") {
      report.Error(a->attribute_pos, "customer.id cannot be changed: it identifies the customer");
    }
  } else if (const auto* a = std::get_if<WebhookAction>(&action)) {
    CheckKnown("webhook", a->name, env.webhooks, report);
  } else if (const auto* a = std::get_if<WaitAction>(&action)) {
    if (a->seconds <= 0) {
      report.Warning(a->pos, "wait 0s does not wait: remove it, or give a duration such as 1d");
    }
  } else if (const auto* a = std::get_if<WaitUntilAction>(&action)) {
    CheckTimeOfDay(a->at, report);
  }
}

void CheckIf(const CheckContext& ctx, const IfTransition& t) {
  if (ctx.structural && !t.otherwise) {
    ctx.report.Error(t.pos, "an if needs an else: add \"else <step>\"");
  }
}

void CheckSplit(const CheckContext& ctx, const SplitTransition& t) {
  double sum = 0;
  for (const SplitTransition::Branch& b : t.branches) {
    sum += b.percent;
    if (!(b.percent > 0)) {
      ctx.report.Error(b.pos, "a split branch of " + FormatPercent(b.percent) +
                                  "% is never taken: give it more than 0%");
    }
  }
  // A tolerance because 33.3% + 33.3% + 33.4% is not exactly 100 in binary floating point.
  if (ctx.structural && !t.branches.empty() && !(std::fabs(sum - 100) < 1e-9)) {
    ctx.report.Error(
        t.pos, "split percentages add up to " + FormatPercent(sum) + "%, they must add up to 100%");
  }
}

void CheckWaitFor(const CheckContext& ctx, const WaitForTransition& t) {
  if (t.timeout_seconds <= 0) {
    ctx.report.Error(t.pos, "a wait up to 0s never waits for anything: give a duration such as 3d");
  }
  if (!ctx.structural || (t.received && t.timed_out)) return;
  std::string missing;
  if (!t.received) missing = "\"when received then <step>\"";
  if (!t.timed_out) {
    if (!missing.empty()) missing += " and ";
    missing += "\"when timed_out then <step>\"";
  }
  ctx.report.Error(t.pos, "this wait needs both outcomes: add " + missing);
}

}  // namespace

void CheckSteps(const CheckContext& ctx) {
  if (ctx.structural && ctx.journey.steps.empty()) {
    const Journey& j = ctx.journey;
    ctx.report.Error(j.id.pos.line > 0 ? j.id.pos : j.pos,
                     "this journey has no steps: add at least one \"step <id> { ... }\"");
  }
  std::map<std::string, int> first_line;  // step id -> line of its first definition
  for (const Step& step : ctx.journey.steps) {
    auto [it, inserted] = first_line.emplace(step.id.text, step.id.pos.line);
    if (!inserted) {
      ctx.report.Error(step.id.pos, "step \"" + step.id.text + "\" is already defined on line " +
                                        std::to_string(it->second));
    }
    for (const Action& action : step.actions) CheckAction(ctx, action);
    if (!step.transition) {
      if (ctx.structural) {
        ctx.report.Error(step.close_pos.line > 0 ? step.close_pos : step.id.pos,
                         "step \"" + step.id.text +
                             "\" has no transition: end it with then, exit, if, split or wait "
                             "up to");
      }
      continue;
    }
    if (const auto* t = std::get_if<IfTransition>(&*step.transition)) CheckIf(ctx, *t);
    if (const auto* t = std::get_if<SplitTransition>(&*step.transition)) CheckSplit(ctx, *t);
    if (const auto* t = std::get_if<WaitForTransition>(&*step.transition)) CheckWaitFor(ctx, *t);
  }
}

bool CheckChannel(const Name& channel, Reporter& report) {
  static const std::vector<std::string> kChannels = {"email", "sms"};
  for (const std::string& known : kChannels) {
    if (channel.text == known) return true;
  }
  report.Error(channel.pos, Unknown("channel", channel.text, kChannels, "use email or sms"));
  return false;
}

std::string FormatSeconds(int64_t seconds) {
  if (seconds <= 0) return "0s";
  return FormatDuration(Seconds(seconds));
}

std::vector<const StepRef*> TargetsOf(const Transition& t) {
  std::vector<const StepRef*> out;
  if (const auto* x = std::get_if<ThenTransition>(&t)) {
    out.push_back(&x->target);
  } else if (const auto* x = std::get_if<IfTransition>(&t)) {
    for (const IfTransition::Branch& b : x->branches) out.push_back(&b.target);
    if (x->otherwise) out.push_back(&*x->otherwise);
  } else if (const auto* x = std::get_if<SplitTransition>(&t)) {
    for (const SplitTransition::Branch& b : x->branches) out.push_back(&b.target);
  } else if (const auto* x = std::get_if<WaitForTransition>(&t)) {
    if (x->received) out.push_back(&*x->received);
    if (x->timed_out) out.push_back(&*x->timed_out);
  }
  return out;
}

}  // namespace itinera::dsl::internal
