// Checks on each step's transition and actions (dsl/check_steps.cc): waits with both outcomes,
// `else`, splits, and the channels, teams, reps, webhooks and templates actions refer to.

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

TEST(CheckerTest, ReportsWaitWithoutTimedOut) {
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup"
  step a {
    wait up to 3d for event "email_opened"
    when received then b
  }
  step b { exit }
}
)"),
            (Lines{"4:5: this wait needs both outcomes: add \"when timed_out then "
                   "<step>\""}));
}

TEST(CheckerTest, ReportsWaitWithoutReceived) {
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup"
  step a {
    wait up to 3d for event "email_opened"
    when timed_out then b
  }
  step b { exit }
}
)"),
            (Lines{"4:5: this wait needs both outcomes: add \"when received then "
                   "<step>\""}));
}

TEST(CheckerTest, ReportsIfWithoutElse) {
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup"
  step a {
    if customer.vip then b
  }
  step b { exit }
}
)"),
            (Lines{"4:5: an if needs an else: add \"else <step>\""}));
}

TEST(CheckerTest, ReportsSplitNotAddingUpTo100) {
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup"
  step a {
    split 40% -> b, 50% -> c
  }
  step b { exit }
  step c { exit }
}
)"),
            (Lines{"4:5: split percentages add up to 90%, they must add up to 100%"}));
}

TEST(CheckerTest, AcceptsSplitOfFractionalPercentages) {
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup"
  step a { split 33.3% -> b, 33.3% -> c, 33.4% -> d }
  step b { exit }
  step c { exit }
  step d { exit }
}
)"),
            Lines{});
}

TEST(CheckerTest, ReportsSplitBranchOfZero) {
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup"
  step a {
    split 100% -> b, 0% -> c
  }
  step b { exit }
  step c { exit }
}
)"),
            (Lines{"4:22: a split branch of 0% is never taken: give it more than 0%"}));
}

// ---- Channels, teams, reps, webhooks, templates -------------------------------------------

TEST(CheckerTest, ReportsUnknownChannelInSend) {
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup"
  step a {
    send emial "welcome"
    send pigeon "welcome"
    exit
  }
}
)"),
            (Lines{"4:10: unknown channel \"emial\"; did you mean \"email\"?",
                   "5:10: unknown channel \"pigeon\": use email or sms"}));
}

TEST(CheckerTest, ReportsUnknownChannelInFrequencyCap) {
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup"
  frequency_cap smss 2 per 1d
  step a { exit }
}
)"),
            (Lines{"3:17: unknown channel \"smss\"; did you mean \"sms\"?"}));
}

TEST(CheckerTest, ReportsUnknownTeamRepAndWebhook) {
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup"
  step a {
    assign owner from team "prage_sales" by round_robin
    alert team "ostrava_sales" "new_lead"
    alert rep "ana" "new_lead"
    webhook "crm_tsk"
    exit
  }
}
)"),
            (Lines{"4:28: unknown team \"prage_sales\"; did you mean \"prague_sales\"?",
                   "5:16: unknown team \"ostrava_sales\": the configuration defines "
                   "\"brno_sales\" and \"prague_sales\"",
                   "6:15: unknown rep \"ana\"; did you mean \"anna\"?",
                   "7:13: unknown webhook \"crm_tsk\"; did you mean \"crm_task\"?"}));
}

TEST(CheckerTest, ReportsTeamWhenNoneAreConfigured) {
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup"
  step a {
    alert team "sales" "new_lead"
    exit
  }
}
)",
                     CheckEnvironment{}),
            (Lines{"4:16: unknown team \"sales\": the configuration defines no teams"}));
}

TEST(CheckerTest, ReportsTemplateProblemsPerChannel) {
  CheckEnvironment env = TestEnv();
  std::vector<std::string> asked;
  env.template_problem = [&](std::string_view channel,
                             std::string_view name) -> std::optional<std::string> {
    asked.push_back(std::string(channel) + ":" + std::string(name));
    if (name == "good") return std::nullopt;
    return "no template \"" + std::string(name) + "\" for " + std::string(channel) +
           ": expected templates/" + std::string(name) + "." + std::string(channel) + ".mustache";
  };
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup"
  step a {
    send email "good"
    send email "x"
    send sms "y"
    alert owner "z"
    send fax "never_asked"
    exit
  }
}
)",
                     env),
            (Lines{"5:16: no template \"x\" for email: expected templates/x.email.mustache",
                   "6:14: no template \"y\" for sms: expected templates/y.sms.mustache",
                   "7:17: no template \"z\" for alert: expected templates/z.alert.mustache",
                   "8:10: unknown channel \"fax\": use email or sms"}));
  EXPECT_EQ(asked, (Lines{"email:good", "email:x", "sms:y", "alert:z"}));
}

}  // namespace
}  // namespace itinera::dsl
