// Semantic checks and compilation of a parsed journey to a Program.
//
// Check finds every error DSL.md lists that the grammar alone cannot: unknown and unreachable
// steps (with "did you mean"), duplicate steps and settings, cycles with no wait, waits without
// both outcomes, a missing `else`, splits that do not sum to 100, unknown channels, teams,
// reps, webhooks and templates, handles used before they are defined on every path, and times
// out of range. It reports them all, in source order.
//
// The names a journey may refer to come from the CheckEnvironment, which the caller fills from
// its configuration; the dsl module does no I/O of its own beyond reading the file.
#ifndef ITINERA_DSL_CHECKER_H_
#define ITINERA_DSL_CHECKER_H_

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "dsl/ast.h"
#include "dsl/diagnostic.h"
#include "dsl/program.h"

namespace itinera::dsl {

struct CheckEnvironment {
  std::set<std::string> teams;
  std::set<std::string> reps;
  std::set<std::string> webhooks;
  // Returns nullopt when template `name` exists for `channel` ("email", "sms", "alert") and
  // compiles; otherwise what is wrong with it, in words ("no template file
  // templates/x.email.mustache", "templates/x.email.mustache:3: unclosed section"). Unset: every
  // template is taken to exist.
  std::function<std::optional<std::string>(std::string_view channel, std::string_view name)>
      template_problem;
  // True when `zone` is an IANA time-zone name ("Europe/Prague"). Unset: every name is taken.
  std::function<bool(std::string_view zone)> zone_exists;
};

struct CompileResult {
  std::optional<Program> program;       // set when there are no errors
  std::vector<Diagnostic> diagnostics;  // parse and check diagnostics, in source order
};

// Checks an already parsed journey. `source` is the file text (for the fingerprint).
CompileResult Compile(const Journey& journey, std::string_view source, const CheckEnvironment& env);

// Parse + Compile. Syntax errors are reported; the checks run on whatever parsed.
CompileResult CompileText(std::string_view source, const std::string& file,
                          const CheckEnvironment& env);

}  // namespace itinera::dsl

#endif  // ITINERA_DSL_CHECKER_H_
