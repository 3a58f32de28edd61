// Checks over the step graph (dsl/flow.cc) and on each step's shape: unknown, unreachable and
// duplicate steps, loops with no wait, names and message handles in expressions.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dsl/checker.h"
#include "tests/dsl/checker_test_util.h"

namespace itinera::dsl {
namespace {

using testing::Diagnose;
using testing::Lines;
using testing::TestEnv;

// ---- Steps and the graph ------------------------------------------------------------------

TEST(CheckerTest, ReportsUnknownStepWithSuggestion) {
  // Only the typo is reported: "reminder" is not also called unreachable, since the typo was
  // evidently meant to lead there.
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup"
  step a {
    then reminde
  }
  step reminder { exit }
}
)"),
            (Lines{"4:10: unknown step \"reminde\"; did you mean \"reminder\"?"}));
}

TEST(CheckerTest, ReportsUnknownStepInEveryKindOfTransition) {
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup"
  step a {
    if customer.vip then bb else cc
  }
  step b {
    split 50% -> dd, 50% -> a
  }
  step c {
    wait up to 1d for event "open"
    when received then zz
    when timed_out then yy
  }
  step d { exit }
}
)"),
            (Lines{"4:26: unknown step \"bb\"; did you mean \"b\"?",
                   "4:34: unknown step \"cc\"; did you mean \"c\"?",
                   "7:18: unknown step \"dd\"; did you mean \"d\"?", "11:24: unknown step \"zz\"",
                   "12:25: unknown step \"yy\""}));
}

TEST(CheckerTest, ReportsUnreachableStep) {
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup"
  step a { exit }
  step orphan {
    then later
  }
  step later { exit }
}
)"),
            (Lines{"4:8: step \"orphan\" is never reached: no step leads to it",
                   "7:8: step \"later\" is never reached: only steps that are never "
                   "reached lead to it"}));
}

TEST(CheckerTest, ReportsDuplicateStepAtTheSecond) {
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup"
  step a { then b }
  step b { exit }
  step b { exit }
}
)"),
            (Lines{"5:8: step \"b\" is already defined on line 4"}));
}

TEST(CheckerTest, ReportsStepWithoutTransition) {
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup"
  step a {
    send email "welcome"
  }
}
)"),
            (Lines{"5:3: step \"a\" has no transition: end it with then, exit, if, split "
                   "or wait up to"}));
}

TEST(CheckerTest, ReportsLoopWithNoWait) {
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup"
  step a {
    send email "hello"
    then b
  }
  step b {
    set customer.n = customer.n + 1
    then a
  }
}
)"),
            (Lines{"9:10: steps \"a\" -> \"b\" -> \"a\" form a loop with no wait: a "
                   "customer would go round it forever"}));
}

TEST(CheckerTest, ReportsStepLoopingToItself) {
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup"
  step a {
    if customer.vip then a else b
  }
  step b { exit }
}
)"),
            (Lines{"4:26: steps \"a\" -> \"a\" form a loop with no wait: a customer would "
                   "go round it forever"}));
}

TEST(CheckerTest, ReportsEachLoopOnce) {
  // One tangle of three steps with several ways round is reported once, by its shortest loop
  // through the first step.
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup"
  step a { then b }
  step b { split 50% -> c, 50% -> a }
  step c { if customer.vip then a else b }
}
)"),
            (Lines{"4:35: steps \"a\" -> \"b\" -> \"a\" form a loop with no wait: a "
                   "customer would go round it forever"}));
}

TEST(CheckerTest, AcceptsLoopsThatWait) {
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup"
  step a {
    wait 1d
    then b
  }
  step b {
    wait up to 3d for event "open"
    when received then c
    when timed_out then a
  }
  step c {
    wait until 09:00
    if customer.vip then c else d
  }
  step d { exit }
}
)"),
            Lines{});
}

// ---- Names and message handles ------------------------------------------------------------

TEST(CheckerTest, ReportsHandleNotSentOnEveryPath) {
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup"
  step a {
    if customer.vip then vip else plain
  }
  step vip {
    send email "vip_offer" as offer
    then wait_open
  }
  step plain {
    send email "plain_offer"
    then wait_open
  }
  step wait_open {
    wait up to 3d for event "email_opened" where event.message == offer
    when received then done
    when timed_out then done
  }
  step done { exit }
}
)"),
            (Lines{"15:67: message \"offer\" is not sent on every path to this step; "
                   "every path must pass a \"send ... as offer\" before it is used"}));
}

TEST(CheckerTest, ReportsHandleUsedBeforeItsSendInTheSameStep) {
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup"
  step a {
    set customer.last = offer
    send email "offer" as offer
    exit
  }
}
)"),
            (Lines{"4:25: message \"offer\" is not sent on every path to this step; "
                   "every path must pass a \"send ... as offer\" before it is used"}));
}

TEST(CheckerTest, AcceptsHandleSentOnEveryPathAndInTheSameStep) {
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup"
  goal "opened" when event "email_opened" where event.message == later
  step a {
    send email "offer" as offer
    wait up to 3d for event "email_opened" where event.message == offer
    when received then b
    when timed_out then c
  }
  step b {
    send email "again" as offer
    then d
  }
  step c { then d }
  step d {
    if has later then e else e
  }
  step e {
    send sms "later" as later
    send sms "later_again" as later
    wait up to 1d for event "sms_clicked" where event.message == offer or event.message == later
    when received then done
    when timed_out then done
  }
  step done { exit }
}
)"),
            Lines{});
}

TEST(CheckerTest, ReportsUnknownNameWithSuggestion) {
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup" where custmer.plan == "pro"
  step a {
    send email "offer" as offer
    wait up to 3d for event "email_opened" where event.message == ofer
    when received then b
    when timed_out then b
  }
  step b {
    set customer.note = zzz
    exit
  }
}
)"),
            (Lines{"2:35: unknown name \"custmer\"; did you mean \"customer\"?",
                   "5:67: unknown name \"ofer\"; did you mean \"offer\"?",
                   "10:25: unknown name \"zzz\": use customer.<attribute>, "
                   "event.<property>, entry.<property> or a message named by \"send ... "
                   "as\""}));
}

}  // namespace
}  // namespace itinera::dsl
