// Syntax diagnostics: exact text (file:line:col, source line, caret) for a table of broken
// journeys, several errors per file, and hostile input. Golden strings, as Ninja tests its
// parser errors, because the wording and the caret are what a marketer sees.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dsl/parser.h"

namespace itinera::dsl {
namespace {

std::string Diagnose(const std::string& text) {
  return FormatDiagnostics(Parse(text, "t.journey").diagnostics, text);
}

// The body goes on line 3 from column 5.
std::string InStep(const std::string& body) {
  return "journey j {\n  step a {\n    " + body + "\n  }\n}\n";
}

struct Golden {
  const char* name;
  std::string text;
  std::string expected;
};

class ParserGoldenTest : public ::testing::TestWithParam<Golden> {};

TEST_P(ParserGoldenTest, ReportsExactDiagnostic) {
  EXPECT_EQ(Diagnose(GetParam().text), GetParam().expected) << GetParam().text;
}

const Golden kGoldens[] = {
    {"MissingDurationAtEndOfLine", InStep("wait\n    exit"),
     "t.journey:3:9: error: expected a duration such as 3d, 12h or 30m\n"
     "    wait\n"
     "        ^\n"},
    {"DurationWithWordUnit", InStep("wait 3 days\n    exit"),
     "t.journey:3:10: error: expected a duration such as 3d, 12h or 30m\n"
     "    wait 3 days\n"
     "         ^\n"},
    {"TimeWithOneDigitHour", "journey j {\n  quiet_hours 9:00 to 08:00\n  step a { exit }\n}\n",
     "t.journey:2:15: error: expected a time of day such as 09:30\n"
     "  quiet_hours 9:00 to 08:00\n"
     "              ^\n"},
    {"MissingStepAfterThen", InStep("send email \"x\"\n    then\n"),
     "t.journey:4:9: error: expected a step name after `then`\n"
     "    then\n"
     "        ^\n"},
    {"MissingStepBrace", "journey j {\n  step a\n    exit\n  }\n}\n",
     "t.journey:2:9: error: expected `{` to open the step\n"
     "  step a\n"
     "        ^\n"},
    {"UnquotedTemplate", InStep("send email welcome\n    exit"),
     "t.journey:3:16: error: expected a string in double quotes such as \"welcome\"\n"
     "    send email welcome\n"
     "               ^\n"},
    {"MisspelledAction", InStep("sned email \"welcome\"\n    exit"),
     "t.journey:3:5: error: unknown action `sned`; did you mean `send`?\n"
     "    sned email \"welcome\"\n"
     "    ^\n"},
    {"MisspelledSetting", "journey j {\n  timezon customer.tz\n  step a { exit }\n}\n",
     "t.journey:2:3: error: unknown setting `timezon`; did you mean `timezone`?\n"
     "  timezon customer.tz\n"
     "  ^\n"},
    {"PercentWithoutSign", "journey j {\n  holdout 5\n  step a { exit }\n}\n",
     "t.journey:2:12: error: expected `%` after the percentage\n"
     "  holdout 5\n"
     "           ^\n"},
    {"UnclosedString", InStep("send email \"welcome\n    exit"),
     "t.journey:3:16: error: this text is missing its closing quote\n"
     "    send email \"welcome\n"
     "               ^\n"},
    {"UnknownEscape", InStep("exit \"a\\qb\""),
     "t.journey:3:12: error: unknown escape `\\q` in text; write \\\", \\\\, \\n or \\t\n"
     "    exit \"a\\qb\"\n"
     "           ^\n"},
    {"SingleEqualsInCondition", InStep("if customer.score = 3 then a else a"),
     "t.journey:3:23: error: use `==` to compare; a single `=` is only for `set`\n"
     "    if customer.score = 3 then a else a\n"
     "                      ^\n"},
    {"ActionAfterTransition", InStep("then a\n    send email \"x\""),
     "t.journey:4:5: error: the step's transition (then/exit/if/split/wait up to) must come "
     "last\n"
     "    send email \"x\"\n"
     "    ^\n"},
    {"SecondTransition", InStep("then a\n    exit"),
     "t.journey:4:5: error: a step has one transition, and this one already has `then` at line "
     "3\n"
     "    exit\n"
     "    ^\n"},
    {"UnclosedParenthesis", InStep("if (a or b then c"),
     "t.journey:3:16: error: expected `)` to close the `(`\n"
     "    if (a or b then c\n"
     "               ^\n"},
    {"SplitWithoutArrow", InStep("split 50% a, 50% -> b"),
     "t.journey:3:15: error: expected `->` and a step name after the percentage\n"
     "    split 50% a, 50% -> b\n"
     "              ^\n"},
    {"UnknownWaitOutcome", InStep("wait up to 3d for event \"x\"\n    when opened then a"),
     "t.journey:4:10: error: expected `received` or `timed_out` after `when`\n"
     "    when opened then a\n"
     "         ^\n"},
    {"RepeatedWaitOutcome",
     InStep("wait up to 3d for event \"x\"\n    when received then a\n    when received then b"),
     "t.journey:5:24: error: this wait already says where to go when the event is received, at "
     "line 4\n"
     "    when received then b\n"
     "                       ^\n"},
    {"SettingAfterSteps", "journey j {\n  step a { exit }\n  holdout 5%\n}\n",
     "t.journey:3:3: error: settings such as `holdout` must come before the first step\n"
     "  holdout 5%\n"
     "  ^\n"},
    {"ActionOutsideStep", "journey j {\n  send email \"x\"\n  step a { exit }\n}\n",
     "t.journey:2:3: error: `send` belongs inside a step: step <id> { ... }\n"
     "  send email \"x\"\n"
     "  ^\n"},
    {"MissingJourneyId", "journey {\n  step a { exit }\n}\n",
     "t.journey:1:9: error: expected the journey's id (letters, digits and _) after `journey`\n"
     "journey {\n"
     "        ^\n"},
    {"MissingJourneyBrace", "journey j\n  step a { exit }\n}\n",
     "t.journey:1:10: error: expected `{` to open the journey\n"
     "journey j\n"
     "         ^\n"},
    {"EnterWithoutEvent", "journey j {\n  enter when \"signup\"\n  step a { exit }\n}\n",
     "t.journey:2:14: error: expected `event \"<type>\"` or `customer <condition>` after `enter "
     "when`\n"
     "  enter when \"signup\"\n"
     "             ^\n"},
    {"AlertWithoutTarget", InStep("alert \"t\""),
     "t.journey:3:11: error: expected `owner`, `team \"<team>\"` or `rep \"<rep>\"` after "
     "`alert`\n"
     "    alert \"t\"\n"
     "          ^\n"},
    {"UnknownRoutingRule", InStep("assign owner from team \"t\" by random"),
     "t.journey:3:35: error: expected `round_robin`, `least_loaded` or `territory "
     "<expression>` after `by`\n"
     "    assign owner from team \"t\" by random\n"
     "                                  ^\n"},
    {"SetWithoutCustomer", InStep("set lead_stage = \"hot\""),
     "t.journey:3:9: error: expected a profile attribute such as customer.lead_stage after "
     "`set`\n"
     "    set lead_stage = \"hot\"\n"
     "        ^\n"},
    {"LongWeekday", InStep("wait until 10:00 on monday"),
     "t.journey:3:25: error: expected a weekday: mon, tue, wed, thu, fri, sat or sun\n"
     "    wait until 10:00 on monday\n"
     "                        ^\n"},
    {"CountInWords", "journey j {\n  frequency_cap email three per 7d\n  step a { exit }\n}\n",
     "t.journey:2:23: error: expected how many messages are allowed, such as 3\n"
     "  frequency_cap email three per 7d\n"
     "                      ^\n"},
    {"CaretKeepsTabs", "journey j {\n\tstep a {\n\t\tthen\t\t}\n}\n",
     "t.journey:3:9: error: expected a step name after `then`\n"
     "\t\tthen\t\t}\n"
     "\t\t    \t\t^\n"},
    {"EmptyFile", "",
     "t.journey:1:1: error: expected `journey <id> {`\n"
     "\n"
     "^\n"},
    {"TextAfterJourney", "journey j {\n  step a { exit }\n}\njourney k {\n",
     "t.journey:4:1: error: unexpected text after the journey's closing `}`; a file holds one "
     "journey\n"
     "journey k {\n"
     "^\n"},
    {"MissingJourneyClose", "journey j {\n  step a { exit }\n",
     "t.journey:2:18: error: expected `}` to close the journey\n"
     "  step a { exit }\n"
     "                 ^\n"},
    {"NumberTooLarge", InStep("set customer.x = 99999999999999999999"),
     "t.journey:3:22: error: number is too large\n"
     "    set customer.x = 99999999999999999999\n"
     "                     ^\n"},
    {"DurationOverflow", InStep("wait 9999999999999999w"),
     "t.journey:3:10: error: number is too large\n"
     "    wait 9999999999999999w\n"
     "         ^\n"},
    {"InvalidUtf8InComment", "journey j {\n  # caf\xe9\n  step a { exit }\n}\n",
     "t.journey:2:8: error: invalid UTF-8 byte\n"
     "  # caf\xe9\n"
     "       ^\n"},
};

INSTANTIATE_TEST_SUITE_P(Table, ParserGoldenTest, ::testing::ValuesIn(kGoldens),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(ParserErrorsTest, RejectsMissingDuration) {
  ParseResult r = Parse(InStep("wait up to for event \"x\""), "t.journey");
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_EQ(r.diagnostics[0].message, "expected a duration such as 3d, 12h or 30m");
  EXPECT_EQ(r.diagnostics[0].pos.line, 3);
  EXPECT_EQ(r.diagnostics[0].pos.column, 16);
}

TEST(ParserErrorsTest, ReportsSeveralErrorsAndKeepsTheRest) {
  std::string text =
      "journey j {\n"
      "  holdout 5\n"          // 2: missing %
      "  version 2\n"          // 3: fine
      "  re_enter after 3x\n"  // 4: bad duration
      "  step a {\n"
      "    sned email \"x\"\n"   // 6: unknown action
      "    send email \"ok\"\n"  // 7: fine
      "    then\n"               // 8: missing step
      "  }\n"
      "  step b {\n"
      "    wait until 9:00\n"          // 11: bad time
      "    split 50% -> a, 50 -> b\n"  // 12: missing %
      "  }\n"
      "  step c { exit }\n"
      "}\n";
  ParseResult r = Parse(text, "t.journey");
  std::vector<std::pair<int, int>> where;
  for (const Diagnostic& d : r.diagnostics) where.emplace_back(d.pos.line, d.pos.column);
  EXPECT_EQ(where, (std::vector<std::pair<int, int>>{
                       {2, 12}, {4, 18}, {6, 5}, {8, 9}, {11, 16}, {12, 23}}))
      << FormatDiagnostics(r.diagnostics, text);
  // What was well-formed is still in the tree for the checker.
  ASSERT_EQ(r.journey.settings.size(), 1u);
  EXPECT_EQ(std::get<VersionSetting>(r.journey.settings[0]).version, 2);
  ASSERT_EQ(r.journey.steps.size(), 3u);
  ASSERT_EQ(r.journey.steps[0].actions.size(), 1u);
  EXPECT_EQ(std::get<SendAction>(r.journey.steps[0].actions[0]).template_name.text, "ok");
  EXPECT_EQ(r.journey.steps[2].id.text, "c");
  EXPECT_TRUE(r.journey.steps[2].transition.has_value());
}

TEST(ParserErrorsTest, MissingStepBraceStillReadsTheNextStep) {
  std::string text = "journey j {\n  step a {\n    then b\n  step b { exit }\n}\n";
  ParseResult r = Parse(text, "t.journey");
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_EQ(r.diagnostics[0].message, "expected `}` to close step `a` before the next step");
  EXPECT_EQ(r.journey.steps.size(), 2u);
}

TEST(ParserErrorsTest, BrokenWaitDoesNotEchoOnItsWhenLines) {
  ParseResult r = Parse(InStep("wait up to 3x for event \"x\"\n    when received then a\n"
                               "    when timed_out then a"),
                        "t.journey");
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_EQ(r.diagnostics[0].message, "expected a duration such as 3d, 12h or 30m");
}

TEST(ParserErrorsTest, CapsTheNumberOfErrors) {
  std::string text = "journey j {\n  step a {\n";
  for (int i = 0; i < 500; ++i) text += "    sned email \"x\"\n";
  text += "    exit\n  }\n}\n";
  ParseResult r = Parse(text, "t.journey");
  EXPECT_LE(r.diagnostics.size(), 50u);
  EXPECT_GE(r.diagnostics.size(), 10u);
}

TEST(ParserErrorsTest, NulByteIsLocated) {
  std::string text("journey j {\n  step a { exit \"a\0b\" }\n}\n", 38);
  ParseResult r = Parse(text, "t.journey");
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_EQ(r.diagnostics[0].message, "unexpected NUL byte");
  EXPECT_EQ(r.diagnostics[0].pos.line, 2);
  EXPECT_EQ(r.diagnostics[0].pos.column, 19);
}

TEST(ParserErrorsTest, DeepNestingIsAnErrorNotACrash) {
  for (const std::string& expr : {std::string(10000, '('), std::string(10000, '[')}) {
    ParseResult r = Parse(InStep("set customer.x = " + expr), "t.journey");
    ASSERT_FALSE(r.diagnostics.empty());
    EXPECT_EQ(r.diagnostics[0].message, "expression is nested too deeply");
  }
  std::string nots, negs;
  for (int i = 0; i < 5000; ++i) nots += "not ";
  for (int i = 0; i < 5000; ++i) negs += "- ";
  for (const std::string& prefix : {nots, negs}) {
    ParseResult r = Parse(InStep("if " + prefix + "x then a else a"), "t.journey");
    ASSERT_FALSE(r.diagnostics.empty());
    EXPECT_EQ(r.diagnostics[0].message, "expression is nested too deeply");
  }
}

TEST(ParserErrorsTest, LongOperatorChainIsAnErrorNotACrash) {
  // Without parentheses a chain is still a deep tree; 50k terms would overflow the stack when
  // evaluated or freed.
  std::string chain = "1";
  for (int i = 0; i < 50000; ++i) chain += " + 1";
  ParseResult r = Parse(InStep("set customer.x = " + chain + "\n    exit"), "t.journey");
  ASSERT_FALSE(r.diagnostics.empty());
  EXPECT_EQ(r.diagnostics[0].message,
            "expression is too long: split it into simpler conditions or steps");
  std::string ok = "1";
  for (int i = 0; i < 100; ++i) ok += " + 1";
  EXPECT_TRUE(
      Parse(InStep("set customer.x = " + ok + "\n    exit"), "t.journey").diagnostics.empty());
}

TEST(ParserErrorsTest, ModestNestingIsFine) {
  std::string expr = std::string(50, '(') + "1" + std::string(50, ')');
  ParseResult r = Parse(InStep("set customer.x = " + expr + "\n    exit"), "t.journey");
  EXPECT_TRUE(r.diagnostics.empty());
}

TEST(ParserErrorsTest, LargestNumbersAccepted) {
  ParseResult r = Parse(InStep("set customer.x = 9007199254740992\n    exit"), "t.journey");
  EXPECT_TRUE(r.diagnostics.empty());
}

}  // namespace
}  // namespace itinera::dsl
