// Internal to dsl/: the pieces the checker is split into, and what they share.
//
// Checks come in two kinds. Local checks look at one setting, action or transition on its own
// (a time out of range, an unknown team); they are sound even when the parser had to skip part
// of the file, so they always run. Structural checks reason about the whole step graph or the
// whole file (unknown or unreachable steps, loops, handle dataflow, a missing transition or
// `else`); after a syntax error the missing pieces would make them report nonsense, so they run
// only on a file that parsed cleanly.
#ifndef ITINERA_DSL_CHECK_INTERNAL_H_
#define ITINERA_DSL_CHECK_INTERNAL_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "dsl/ast.h"
#include "dsl/checker.h"
#include "dsl/diagnostic.h"

namespace itinera::dsl::internal {

// Collects diagnostics for one file. Not thread-safe; one per Compile call.
class Reporter {
 public:
  Reporter(std::string file, std::vector<Diagnostic>* out) : file_(std::move(file)), out_(out) {}

  void Error(SourcePos pos, std::string message) {
    Add(Diagnostic::Severity::kError, pos, std::move(message));
  }
  void Warning(SourcePos pos, std::string message) {
    Add(Diagnostic::Severity::kWarning, pos, std::move(message));
  }

 private:
  void Add(Diagnostic::Severity severity, SourcePos pos, std::string message) {
    out_->push_back(Diagnostic{severity, file_, pos, std::move(message)});
  }

  std::string file_;
  std::vector<Diagnostic>* out_;
};

// What every check reads, and where it reports. Borrowed references, valid for one Compile.
struct CheckContext {
  const Journey& journey;
  const CheckEnvironment& env;
  Reporter& report;
  bool structural;  // false after a syntax error: run local checks only
};

// Settings and the journey header (check_settings.cc).
void CheckSettings(const CheckContext& ctx);

// Each step's actions and transition on their own, and duplicate step ids (check_steps.cc).
void CheckSteps(const CheckContext& ctx);

// The step graph: unknown and unreachable steps, loops with no wait, and which names and
// message handles each expression may use (flow.cc).
void CheckFlow(const CheckContext& ctx);

// ---- Shared helpers -----------------------------------------------------------------------

// Reports a channel other than email and sms (with "did you mean"); true when it is known.
bool CheckChannel(const Name& channel, Reporter& report);

// Reports an hour or minute out of range.
void CheckTimeOfDay(const TimeOfDay& t, Reporter& report);

// "21:00" (zero-padded, whatever the values).
std::string FormatTimeOfDay(const TimeOfDay& t);

// "50", "12.5" — a percentage as a marketer wrote it.
std::string FormatPercent(double percent);

// "3d", "1d12h", "0s".
std::string FormatSeconds(int64_t seconds);

// Every StepRef a transition holds, in source order.
std::vector<const StepRef*> TargetsOf(const Transition& t);

}  // namespace itinera::dsl::internal

#endif  // ITINERA_DSL_CHECK_INTERNAL_H_
