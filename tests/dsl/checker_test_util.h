// Helpers shared by the checker tests: an environment with a few teams, reps and webhooks, and
// diagnostics rendered as "line:col: message" lines to compare whole.
#ifndef ITINERA_TESTS_DSL_CHECKER_TEST_UTIL_H_
#define ITINERA_TESTS_DSL_CHECKER_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "dsl/checker.h"

namespace itinera::dsl::testing {

// Diagnostics or names, in order.
using Lines = std::vector<std::string>;

inline CheckEnvironment TestEnv() {
  CheckEnvironment env;
  env.teams = {"prague_sales", "brno_sales"};
  env.reps = {"anna", "petr"};
  env.webhooks = {"crm_task"};
  return env;
}

// "line:col: message" for every diagnostic, warnings marked, in the order reported.
inline std::vector<std::string> Diagnose(std::string_view text,
                                         const CheckEnvironment& env = TestEnv(),
                                         const std::string& file = "t.journey") {
  CompileResult r = CompileText(text, file, env);
  std::vector<std::string> out;
  for (const Diagnostic& d : r.diagnostics) {
    EXPECT_EQ(d.file, file);
    out.push_back(std::to_string(d.pos.line) + ":" + std::to_string(d.pos.column) + ": " +
                  (d.severity == Diagnostic::Severity::kWarning ? "warning: " : "") + d.message);
  }
  EXPECT_EQ(r.program.has_value(), !HasErrors(r.diagnostics));
  return out;
}

}  // namespace itinera::dsl::testing

#endif  // ITINERA_TESTS_DSL_CHECKER_TEST_UTIL_H_
