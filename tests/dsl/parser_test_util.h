// Helpers for the parser tests: parse one construct inside a minimal journey, and print
// expressions as compact s-expressions so precedence is visible in one string.
#ifndef ITINERA_TESTS_DSL_PARSER_TEST_UTIL_H_
#define ITINERA_TESTS_DSL_PARSER_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <string>

#include "dsl/graph.h"
#include "dsl/parser.h"

namespace itinera::dsl::testing {

inline const char* OpName(Op op) { return OpText(op); }

// `(op a b)`, `[a, b]`, `customer.x`, literals as JSON; "<null>" for a missing expression.
inline std::string Show(const ExprPtr& e) {
  if (!e) return "<null>";
  std::string out;
  switch (e->kind) {
    case Expr::Kind::kLiteral:
      return e->literal.dump();
    case Expr::Kind::kPath:
      for (const std::string& segment : e->path) out += (out.empty() ? "" : ".") + segment;
      return out;
    case Expr::Kind::kList:
      for (const ExprPtr& item : e->operands) out += (out.empty() ? "" : ", ") + Show(item);
      return "[" + out + "]";
    case Expr::Kind::kHas:
      return "(has " + Show(e->operands.at(0)) + ")";
    case Expr::Kind::kUnary:
      return std::string("(") + OpName(e->op) + " " + Show(e->operands.at(0)) + ")";
    case Expr::Kind::kBinary:
      return std::string("(") + OpName(e->op) + " " + Show(e->operands.at(0)) + " " +
             Show(e->operands.at(1)) + ")";
  }
  return "?";
}

// The body goes on line 3 from column 5: "journey j {\n  step a {\n    <body>\n  }\n}\n".
inline Step ParseStepOk(const std::string& body) {
  std::string text = "journey j {\n  step a {\n    " + body + "\n  }\n}\n";
  ParseResult r = Parse(text, "t.journey");
  EXPECT_EQ(FormatDiagnostics(r.diagnostics, text), "") << text;
  if (r.journey.steps.empty()) return Step{};
  return r.journey.steps[0];
}

inline Action ParseActionOk(const std::string& action) {
  Step s = ParseStepOk(action + "\n    exit");
  if (s.actions.empty()) return WaitAction{};
  return s.actions[0];
}

// The expression starts at column 22 of line 3.
inline ExprPtr ParseExprOk(const std::string& expr) {
  Action a = ParseActionOk("set customer.x = " + expr);
  const auto* set = std::get_if<SetAction>(&a);
  return set ? set->value : nullptr;
}

// The setting goes on line 2 from column 3.
inline Setting ParseSettingOk(const std::string& line) {
  std::string text = "journey j {\n  " + line + "\n  step a { exit }\n}\n";
  ParseResult r = Parse(text, "t.journey");
  EXPECT_EQ(FormatDiagnostics(r.diagnostics, text), "") << text;
  if (r.journey.settings.empty()) return VersionSetting{};
  return r.journey.settings[0];
}

}  // namespace itinera::dsl::testing

#endif  // ITINERA_TESTS_DSL_PARSER_TEST_UTIL_H_
