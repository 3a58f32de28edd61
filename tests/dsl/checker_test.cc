// Compilation to a Program, and how diagnostics come out: several per file, in source order,
// with syntax errors first. Journeys are fed as text, as a marketer would write them.

#include "dsl/checker.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/dsl/checker_test_util.h"
#include "tests/dsl/example_journey.h"

namespace itinera::dsl {
namespace {

using testing::Diagnose;
using testing::Lines;
using testing::TestEnv;

// The example of DSL.md, verbatim (shared with the parser tests).
constexpr std::string_view kDslExample = testing::kExampleJourney;

// ---- Compilation --------------------------------------------------------------------------

TEST(CheckerTest, CompilesTheDslExampleClean) {
  CheckEnvironment env;
  env.teams = {"prague_sales"};
  env.webhooks = {"crm_task"};
  CompileResult r = CompileText(kDslExample, "journeys/test_drive_followup.journey", env);
  EXPECT_EQ(Diagnose(kDslExample, env, "journeys/test_drive_followup.journey"), Lines{});
  ASSERT_TRUE(r.program.has_value());
  const Program& p = *r.program;
  EXPECT_EQ(p.id, "test_drive_followup");
  EXPECT_EQ(p.title, "Test-drive lead follow-up");
  EXPECT_EQ(p.version, 2);
  EXPECT_EQ(p.enter.size(), 1u);
  EXPECT_EQ(p.re_enter.kind, ReEnterSetting::Kind::kAfter);
  EXPECT_EQ(p.re_enter.after_seconds, 90 * 86400);
  ASSERT_TRUE(p.timezone.path);
  EXPECT_EQ(p.timezone.path->path, (std::vector<std::string>{"customer", "timezone"}));
  ASSERT_TRUE(p.timezone.fallback);
  EXPECT_EQ(p.timezone.fallback->text, "Europe/Prague");
  ASSERT_TRUE(p.quiet_hours);
  EXPECT_EQ(p.quiet_hours->from.hour, 21);
  EXPECT_EQ(p.quiet_hours->to.hour, 8);
  ASSERT_EQ(p.frequency_caps.size(), 1u);
  EXPECT_EQ(p.frequency_caps[0].count, 3);
  EXPECT_DOUBLE_EQ(p.holdout_percent, 5);
  EXPECT_EQ(p.exits.size(), 1u);
  ASSERT_EQ(p.goals.size(), 1u);
  EXPECT_EQ(p.goals[0].name.text, "test_drive_booked");
  EXPECT_EQ(p.handles, (std::vector<std::string>{"offer"}));

  ASSERT_EQ(p.steps.size(), 7u);
  EXPECT_EQ(p.step_index.at("confirm"), 0);
  EXPECT_EQ(p.step_index.at("done"), 6);
  EXPECT_EQ(std::get<ThenTransition>(*p.step(0).transition).target.index, 1);
  const auto& wait = std::get<WaitForTransition>(*p.step(1).transition);
  EXPECT_EQ(wait.received->index, p.step_index.at("hot_lead"));
  EXPECT_EQ(wait.timed_out->index, p.step_index.at("reminder"));
  const auto& branch = std::get<IfTransition>(*p.step(2).transition);
  EXPECT_EQ(branch.branches[0].target.index, p.step_index.at("sms_nudge"));
  EXPECT_EQ(branch.otherwise->index, p.step_index.at("done"));
  const auto& split = std::get<SplitTransition>(*p.step(4).transition);
  EXPECT_EQ(split.branches[0].target.index, 6);
  EXPECT_EQ(split.branches[1].target.index, 5);
}

TEST(CheckerTest, AppliesDefaults) {
  CompileResult r = CompileText(R"(journey t {
  enter when event "signup"
  step a { exit }
}
)",
                                "t.journey", TestEnv());
  ASSERT_TRUE(r.program.has_value());
  const Program& p = *r.program;
  EXPECT_EQ(p.title, "t");
  EXPECT_EQ(p.version, 1);
  EXPECT_EQ(p.re_enter.kind, ReEnterSetting::Kind::kNever);
  EXPECT_EQ(p.timezone.path, nullptr);
  ASSERT_TRUE(p.timezone.fallback);
  EXPECT_EQ(p.timezone.fallback->text, "UTC");
  EXPECT_FALSE(p.quiet_hours);
  EXPECT_DOUBLE_EQ(p.holdout_percent, 0);
  EXPECT_EQ(p.handles, Lines{});
}

TEST(CheckerTest, TimezoneWithoutFallbackFallsBackToUtc) {
  CompileResult r = CompileText(R"(journey t {
  enter when event "signup"
  timezone customer.timezone
  step a { exit }
}
)",
                                "t.journey", TestEnv());
  ASSERT_TRUE(r.program.has_value());
  ASSERT_TRUE(r.program->timezone.path);
  EXPECT_EQ(r.program->timezone.fallback->text, "UTC");
}

TEST(CheckerTest, FingerprintIsFnv1aOfTheSource) {
  // FNV-1a 64 of this exact text, computed independently (Python: fnv1a_64).
  constexpr std::string_view kText =
      "journey t {\n  enter when event \"x\"\n  step a { exit }\n}\n";
  CompileResult a = CompileText(kText, "t.journey", TestEnv());
  ASSERT_TRUE(a.program.has_value());
  EXPECT_EQ(a.program->fingerprint, "44cf85b3cefb7c80");
  std::string edited(kText);
  edited += "# a comment changes the file, not the journey\n";
  CompileResult b = CompileText(edited, "t.journey", TestEnv());
  ASSERT_TRUE(b.program.has_value());
  EXPECT_NE(a.program->fingerprint, b.program->fingerprint);
}

TEST(CheckerTest, ListsHandlesInOrderOfFirstDefinition) {
  CompileResult r = CompileText(R"(journey t {
  enter when event "signup"
  step a {
    send email "one" as first
    send sms "two" as second
    send email "three" as first
    then b
  }
  step b {
    send email "four" as third
    exit
  }
}
)",
                                "t.journey", TestEnv());
  ASSERT_TRUE(r.program.has_value());
  EXPECT_EQ(r.program->handles, (std::vector<std::string>{"first", "second", "third"}));
}

// ---- Several errors -----------------------------------------------------------------------

TEST(CheckerTest, ReportsSeveralErrorsInSourceOrder) {
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup"
  quiet_hours 21:00 to 08:60
  step a {
    send emal "welcome"
    if customer.vip then b
  }
  step b {
    split 50% -> c, 40% -> c
  }
  step c { then c }
}
)"),
            (Lines{"3:24: 08:60 is not a time of day: use HH:MM from 00:00 to 23:59",
                   "5:10: unknown channel \"emal\"; did you mean \"email\"?",
                   "6:5: an if needs an else: add \"else <step>\"",
                   "9:5: split percentages add up to 90%, they must add up to 100%",
                   "11:17: steps \"c\" -> \"c\" form a loop with no wait: a customer "
                   "would go round it forever"}));
}

TEST(CheckerTest, SyntaxErrorsStillRunLocalChecksButNeverCompile) {
  CompileResult r = CompileText(R"(journey t {
  enter when event "signup"
  step a {
    wait 3x
    then b
  }
  step b {
    alert team "nobody" "new_lead"
    then c
  }
}
)",
                                "t.journey", TestEnv());
  EXPECT_FALSE(r.program.has_value());
  ASSERT_GE(r.diagnostics.size(), 2u);
  EXPECT_EQ(r.diagnostics.front().pos.line, 4);  // the syntax error comes first
  // The unknown team is still found; the missing step "c" is not reported, since the parser
  // may have skipped whatever defined it.
  const Diagnostic& team = r.diagnostics.back();
  EXPECT_EQ(team.pos.line, 8);
  EXPECT_EQ(team.pos.column, 16);
  EXPECT_EQ(team.message.substr(0, 22), "unknown team \"nobody\":");
  for (const Diagnostic& d : r.diagnostics) {
    EXPECT_EQ(d.message.find("unknown step"), std::string::npos) << d.message;
  }
}

}  // namespace
}  // namespace itinera::dsl
