// Checks on the journey header and settings (dsl/check_settings.cc).

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

// ---- Settings -----------------------------------------------------------------------------

TEST(CheckerTest, ReportsDuplicateSettingsThatMayAppearOnce) {
  EXPECT_EQ(Diagnose(R"(journey t {
  version 1
  enter when event "signup"
  enter when event "form_submitted"
  re_enter never
  timezone customer.timezone
  quiet_hours 21:00 to 08:00
  holdout 5%
  version 2
  re_enter always
  timezone "Europe/Prague"
  quiet_hours 22:00 to 07:00
  holdout 10%
  step a { exit }
}
)"),
            (Lines{"9:3: version is already set on line 2; it may appear only once",
                   "10:3: re_enter is already set on line 5; it may appear only once",
                   "11:3: timezone is already set on line 6; it may appear only once",
                   "12:3: quiet_hours is already set on line 7; it may appear only once",
                   "13:3: holdout is already set on line 8; it may appear only once"}));
}

TEST(CheckerTest, ReportsDuplicateGoal) {
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup"
  goal "booked" when event "test_drive_done"
  goal "booked" when event "purchase"
  step a { exit }
}
)"),
            (Lines{"4:8: goal \"booked\" is already defined on line 3"}));
}

TEST(CheckerTest, ReportsDuplicateFrequencyCapOnlyForSameChannelAndWindow) {
  EXPECT_EQ(
      Diagnose(R"(journey t {
  enter when event "signup"
  frequency_cap email 3 per 7d
  frequency_cap email 1 per 1d
  frequency_cap sms 3 per 7d
  frequency_cap email 5 per 7d
  step a { exit }
}
)"),
      (Lines{"6:3: a frequency_cap for email over the same window is already set on line 3"}));
}

TEST(CheckerTest, ReportsTimesOfDayOutOfRange) {
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup"
  quiet_hours 24:00 to 08:00
  step a {
    wait until 09:75
    exit
  }
}
)"),
            (Lines{"3:15: 24:00 is not a time of day: use HH:MM from 00:00 to 23:59",
                   "5:16: 09:75 is not a time of day: use HH:MM from 00:00 to 23:59"}));
}

TEST(CheckerTest, ReportsEmptyQuietHours) {
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup"
  quiet_hours 21:00 to 21:00
  step a { exit }
}
)"),
            (Lines{"3:3: quiet hours from 21:00 to 21:00 is an empty window: give two "
                   "different times"}));
}

// Values that parse but make no sense, one journey each.
TEST(CheckerTest, ReportsValuesOutOfRange) {
  struct Case {
    std::string setting_or_action;
    bool is_action;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"holdout 150%", false, "3:3: holdout must be from 0% to 100%, not 150%"},
      {"frequency_cap email 0 per 7d", false,
       "3:3: a frequency cap of 0 allows no message at all: the count must be 1 or more"},
      {"frequency_cap sms 2 per 0s", false,
       "3:3: a frequency cap needs a period longer than 0s, such as 7d"},
      {"version 0", false, "3:3: version must be 1 or more, not 0"},
      {"re_enter after 0d", false,
       "3:3: re_enter after 0s would let a customer straight back in: use \"re_enter "
       "always\", or a duration such as 30d"},
      {"goal \"g\" when event \"e\" within 0s", false,
       "3:3: a goal within 0s can never be reached: give a window such as 14d"},
      {"set customer.id = \"x\"", true,
       "4:9: customer.id cannot be changed: it identifies the customer"},
      {"wait 0s", true,
       "4:5: warning: wait 0s does not wait: remove it, or give a duration such "
       "as 1d"},
  };
  for (const Case& c : cases) {
    std::string text = "journey t {\n  enter when event \"signup\"\n";
    if (c.is_action) {
      text += "  step a {\n    " + c.setting_or_action + "\n    exit\n  }\n}\n";
    } else {
      text += "  " + c.setting_or_action + "\n  step a { exit }\n}\n";
    }
    EXPECT_EQ(Diagnose(text), (Lines{c.expected})) << text;
  }
}

TEST(CheckerTest, ReportsWaitUpToZero) {
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup"
  step a {
    wait up to 0s for event "open"
    when received then b
    when timed_out then b
  }
  step b { exit }
}
)"),
            (Lines{"4:5: a wait up to 0s never waits for anything: give a duration such "
                   "as 3d"}));
}

TEST(CheckerTest, ReportsUnknownTimeZone) {
  CheckEnvironment env = TestEnv();
  env.zone_exists = [](std::string_view zone) { return zone == "Europe/Prague"; };
  EXPECT_EQ(Diagnose(R"(journey t {
  enter when event "signup"
  timezone customer.timezone or "Europe/Praha"
  step a { exit }
}
)",
                     env),
            (Lines{"3:33: unknown time zone \"Europe/Praha\": use an IANA name such as "
                   "\"Europe/Prague\""}));
}

TEST(CheckerTest, ReportsJourneyWithoutEnter) {
  EXPECT_EQ(Diagnose(R"(journey t {
  exit when event "purchase"
  step a { exit }
}
)"),
            (Lines{"1:9: this journey has no \"enter when\" rule, so no customer can "
                   "enter it"}));
}

TEST(CheckerTest, WarnsWhenIdDiffersFromFileNameButStillCompiles) {
  constexpr std::string_view kText = R"(journey welcome {
  enter when event "signup"
  step a { exit }
}
)";
  EXPECT_EQ(Diagnose(kText, TestEnv(), "journeys/welcome_v2.journey"),
            (Lines{"1:9: warning: journey \"welcome\" is in the file "
                   "\"welcome_v2.journey\": name the file \"welcome.journey\" so it can be "
                   "found by its id"}));
  EXPECT_TRUE(CompileText(kText, "journeys/welcome_v2.journey", TestEnv()).program.has_value());
  EXPECT_EQ(Diagnose(kText, TestEnv(), "journeys/welcome.journey"), Lines{});
}

}  // namespace
}  // namespace itinera::dsl
