// Checks on the journey header and its settings: each setting's values on their own, settings
// that may appear only once, and the rules a journey as a whole must follow to be enterable.

#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <utility>

#include "dsl/check_internal.h"

namespace itinera::dsl::internal {
namespace {

// A value written in the file, named as the marketer wrote it ("re_enter", "quiet_hours").
void CheckOnce(const std::string& what, SourcePos pos, std::map<std::string, int>& first_line,
               Reporter& report) {
  auto [it, inserted] = first_line.emplace(what, pos.line);
  if (!inserted) {
    report.Error(pos, what + " is already set on line " + std::to_string(it->second) +
                          "; it may appear only once");
  }
}

// "journeys/test_drive.journey" -> "test_drive"; empty when the file is not a .journey file
// (standard input, a test), where there is no name to compare.
std::string JourneyFileStem(const std::string& file) {
  constexpr std::string_view kExtension = ".journey";
  std::string_view base = file;
  if (size_t slash = base.find_last_of("/\\"); slash != std::string_view::npos) {
    base.remove_prefix(slash + 1);
  }
  if (base.size() <= kExtension.size() || !base.ends_with(kExtension)) return "";
  base.remove_suffix(kExtension.size());
  return std::string(base);
}

void CheckHeader(const CheckContext& ctx, bool has_enter) {
  const Journey& j = ctx.journey;
  SourcePos at = j.id.pos.line > 0 ? j.id.pos : j.pos;
  if (std::string stem = JourneyFileStem(j.file);
      !stem.empty() && !j.id.text.empty() && stem != j.id.text) {
    // Only a warning: the file still works, but `itinera` and colleagues look journeys up by
    // file name, and the id is what customers in flight are recorded under.
    ctx.report.Warning(at, "journey \"" + j.id.text + "\" is in the file \"" + stem +
                               ".journey\": name the file \"" + j.id.text +
                               ".journey\" so it can be found by its id");
  }
  if (ctx.structural && !has_enter) {
    ctx.report.Error(at, "this journey has no \"enter when\" rule, so no customer can enter it");
  }
}

}  // namespace

void CheckSettings(const CheckContext& ctx) {
  Reporter& report = ctx.report;
  std::map<std::string, int> once;                      // setting name -> line first set
  std::map<std::string, int> goals;                     // goal name -> line first defined
  std::map<std::pair<std::string, int64_t>, int> caps;  // (channel, window) -> line
  bool has_enter = false;

  for (const Setting& setting : ctx.journey.settings) {
    if (const auto* s = std::get_if<VersionSetting>(&setting)) {
      CheckOnce("version", s->pos, once, report);
      if (s->version < 1) {
        report.Error(s->pos, "version must be 1 or more, not " + std::to_string(s->version));
      }
    } else if (std::holds_alternative<EnterSetting>(setting)) {
      has_enter = true;
    } else if (const auto* s = std::get_if<ReEnterSetting>(&setting)) {
      CheckOnce("re_enter", s->pos, once, report);
      if (s->kind == ReEnterSetting::Kind::kAfter && s->after_seconds <= 0) {
        report.Error(s->pos,
                     "re_enter after 0s would let a customer straight back in: use "
                     "\"re_enter always\", or a duration such as 30d");
      }
    } else if (const auto* s = std::get_if<TimezoneSetting>(&setting)) {
      CheckOnce("timezone", s->pos, once, report);
      if (s->path && s->path->kind == Expr::Kind::kPath && !s->path->path.empty() &&
          s->path->path[0] != "customer" && s->path->path[0] != "entry") {
        report.Error(s->path->pos,
                     "the time zone must come from the customer or the entry event, such as "
                     "customer.timezone");
      }
      if (s->fallback && ctx.env.zone_exists && !ctx.env.zone_exists(s->fallback->text)) {
        report.Error(s->fallback->pos, "unknown time zone \"" + s->fallback->text +
                                           "\": use an IANA name such as \"Europe/Prague\"");
      }
    } else if (const auto* s = std::get_if<QuietHoursSetting>(&setting)) {
      CheckOnce("quiet_hours", s->pos, once, report);
      CheckTimeOfDay(s->from, report);
      CheckTimeOfDay(s->to, report);
      if (s->from.hour == s->to.hour && s->from.minute == s->to.minute) {
        report.Error(s->pos, "quiet hours from " + FormatTimeOfDay(s->from) + " to " +
                                 FormatTimeOfDay(s->to) +
                                 " is an empty window: give two different times");
      }
    } else if (const auto* s = std::get_if<FrequencyCapSetting>(&setting)) {
      CheckChannel(s->channel, report);
      auto [it, inserted] = caps.emplace(std::pair(s->channel.text, s->per_seconds), s->pos.line);
      if (!inserted) {
        // Named in words: the window as written ("7d") may be printed differently ("1w").
        report.Error(s->pos, "a frequency_cap for " + s->channel.text +
                                 " over the same window is already set on line " +
                                 std::to_string(it->second));
      }
      if (s->count < 1) {
        report.Error(s->pos, "a frequency cap of " + std::to_string(s->count) +
                                 " allows no message at all: the count must be 1 or more");
      }
      if (s->per_seconds <= 0) {
        report.Error(s->pos, "a frequency cap needs a period longer than 0s, such as 7d");
      }
    } else if (const auto* s = std::get_if<HoldoutSetting>(&setting)) {
      CheckOnce("holdout", s->pos, once, report);
      if (!(s->percent >= 0 && s->percent <= 100)) {
        report.Error(s->pos,
                     "holdout must be from 0% to 100%, not " + FormatPercent(s->percent) + "%");
      }
    } else if (const auto* s = std::get_if<GoalSetting>(&setting)) {
      auto [it, inserted] = goals.emplace(s->name.text, s->name.pos.line);
      if (!inserted) {
        report.Error(s->name.pos, "goal \"" + s->name.text + "\" is already defined on line " +
                                      std::to_string(it->second));
      }
      if (s->within_seconds && *s->within_seconds <= 0) {
        report.Error(s->pos, "a goal within 0s can never be reached: give a window such as 14d");
      }
    }
    // ExitSetting: nothing to check on its own; its `where` is checked with the other names.
  }
  CheckHeader(ctx, has_enter);
}

void CheckTimeOfDay(const TimeOfDay& t, Reporter& report) {
  if (t.hour < 0 || t.hour > 23 || t.minute < 0 || t.minute > 59) {
    report.Error(t.pos,
                 FormatTimeOfDay(t) + " is not a time of day: use HH:MM from 00:00 to 23:59");
  }
}

std::string FormatTimeOfDay(const TimeOfDay& t) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02d:%02d", t.hour, t.minute);
  return buf;
}

std::string FormatPercent(double percent) {
  if (!std::isfinite(percent)) return "?";
  char buf[64];
  // Up to 6 decimals, trailing zeros dropped: 50 -> "50", 12.5 -> "12.5", 33.333 -> "33.333".
  std::snprintf(buf, sizeof buf, "%.6f", percent);
  std::string s = buf;
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  if (s == "-0") s = "0";
  return s;
}

}  // namespace itinera::dsl::internal
