// Compile: run the checks (check_settings.cc, check_steps.cc, flow.cc), then, when nothing is
// wrong, turn the Journey into the Program the engine runs.

#include "dsl/checker.h"

#include <algorithm>
#include <cstdio>
#include <variant>

#include "dsl/check_internal.h"
#include "dsl/parser.h"

namespace itinera::dsl {
namespace {

// 64-bit FNV-1a: cheap, stable across platforms and releases, and only needs to tell an edited
// file from the one a customer entered with, not resist an adversary.
std::string Fingerprint(std::string_view source) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char c : source) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(hash));
  return buf;
}

void ResolveTargets(Transition& t, const std::map<std::string, int>& index) {
  auto resolve = [&](StepRef& ref) { ref.index = index.at(ref.id); };
  if (auto* x = std::get_if<ThenTransition>(&t)) {
    resolve(x->target);
  } else if (auto* x = std::get_if<IfTransition>(&t)) {
    for (IfTransition::Branch& b : x->branches) resolve(b.target);
    if (x->otherwise) resolve(*x->otherwise);
  } else if (auto* x = std::get_if<SplitTransition>(&t)) {
    for (SplitTransition::Branch& b : x->branches) resolve(b.target);
  } else if (auto* x = std::get_if<WaitForTransition>(&t)) {
    if (x->received) resolve(*x->received);
    if (x->timed_out) resolve(*x->timed_out);
  }
}

// Only called on a journey the checks passed: every step id is unique and every target exists.
Program BuildProgram(const Journey& j, std::string_view source) {
  Program p;
  p.id = j.id.text;
  p.title = j.title && !j.title->empty() ? *j.title : j.id.text;
  p.fingerprint = Fingerprint(source);
  p.timezone.fallback = Name{"UTC", {}};
  for (const Setting& setting : j.settings) {
    if (const auto* s = std::get_if<VersionSetting>(&setting)) {
      p.version = s->version;
    } else if (const auto* s = std::get_if<EnterSetting>(&setting)) {
      p.enter.push_back(*s);
    } else if (const auto* s = std::get_if<ReEnterSetting>(&setting)) {
      p.re_enter = *s;
    } else if (const auto* s = std::get_if<TimezoneSetting>(&setting)) {
      p.timezone = *s;
      if (!p.timezone.fallback) p.timezone.fallback = Name{"UTC", s->pos};
    } else if (const auto* s = std::get_if<QuietHoursSetting>(&setting)) {
      p.quiet_hours = *s;
    } else if (const auto* s = std::get_if<FrequencyCapSetting>(&setting)) {
      p.frequency_caps.push_back(*s);
    } else if (const auto* s = std::get_if<HoldoutSetting>(&setting)) {
      p.holdout_percent = s->percent;
    } else if (const auto* s = std::get_if<ExitSetting>(&setting)) {
      p.exits.push_back(*s);
    } else if (const auto* s = std::get_if<GoalSetting>(&setting)) {
      p.goals.push_back(*s);
    }
  }
  for (size_t i = 0; i < j.steps.size(); ++i) {
    p.step_index.emplace(j.steps[i].id.text, static_cast<int>(i));
  }
  p.steps = j.steps;
  for (Step& step : p.steps) {
    if (step.transition) ResolveTargets(*step.transition, p.step_index);
    for (const Action& a : step.actions) {
      const auto* send = std::get_if<SendAction>(&a);
      if (send && send->handle &&
          std::find(p.handles.begin(), p.handles.end(), send->handle->text) == p.handles.end()) {
        p.handles.push_back(send->handle->text);
      }
    }
  }
  return p;
}

// Source order; a diagnostic about the whole file (line 0) first; ties keep the order they
// were found in, so a syntax error stays ahead of a check at the same place.
void SortByPosition(std::vector<Diagnostic>& ds) {
  std::stable_sort(ds.begin(), ds.end(), [](const Diagnostic& a, const Diagnostic& b) {
    if (a.pos.line != b.pos.line) return a.pos.line < b.pos.line;
    return a.pos.column < b.pos.column;
  });
}

CompileResult Run(const Journey& journey, std::string_view source, const CheckEnvironment& env,
                  std::vector<Diagnostic> diagnostics) {
  bool syntax_ok = !HasErrors(diagnostics);
  internal::Reporter report(journey.file, &diagnostics);
  internal::CheckContext ctx{journey, env, report, syntax_ok};
  internal::CheckSettings(ctx);
  internal::CheckSteps(ctx);
  internal::CheckFlow(ctx);
  SortByPosition(diagnostics);
  CompileResult result;
  if (!HasErrors(diagnostics)) result.program = BuildProgram(journey, source);
  result.diagnostics = std::move(diagnostics);
  return result;
}

}  // namespace

CompileResult Compile(const Journey& journey, std::string_view source,
                      const CheckEnvironment& env) {
  return Run(journey, source, env, {});
}

CompileResult CompileText(std::string_view source, const std::string& file,
                          const CheckEnvironment& env) {
  ParseResult parsed = Parse(source, file);
  if (parsed.journey.file.empty()) parsed.journey.file = file;
  return Run(parsed.journey, source, env, std::move(parsed.diagnostics));
}

}  // namespace itinera::dsl
