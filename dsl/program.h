// The compiled journey: the state machine the engine runs.
//
// A Program is a checked Journey with every name resolved: transitions carry step indices,
// settings are gathered into typed fields with their defaults applied. Immutable once built;
// safe to share between threads.
#ifndef ITINERA_DSL_PROGRAM_H_
#define ITINERA_DSL_PROGRAM_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dsl/ast.h"

namespace itinera::dsl {

struct Program {
  std::string id;
  std::string title;  // the id when the file gives none
  int64_t version = 1;
  std::string fingerprint;  // hash of the source text: tells a changed file that kept its version

  std::vector<EnterSetting> enter;  // alternatives
  ReEnterSetting re_enter;          // default: never
  TimezoneSetting timezone;         // default: fixed "UTC"
  std::optional<QuietHoursSetting> quiet_hours;
  std::vector<FrequencyCapSetting> frequency_caps;
  double holdout_percent = 0;
  std::vector<ExitSetting> exits;
  std::vector<GoalSetting> goals;

  std::vector<Step> steps;  // steps[0] is the entry step; every StepRef::index is resolved
  std::map<std::string, int> step_index;

  // Named message handles (`send ... as offer`) in order of first definition.
  std::vector<std::string> handles;

  const Step& step(int i) const { return steps[static_cast<size_t>(i)]; }
};

}  // namespace itinera::dsl

#endif  // ITINERA_DSL_PROGRAM_H_
