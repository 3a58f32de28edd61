// Parser tests: every construct of the journey language reads into the tree a checker expects,
// and well-formed files produce no diagnostics. Syntax errors are in parser_errors_test.cc.
#include "dsl/parser.h"

#include <gtest/gtest.h>

#include <string>
#include <variant>

#include "tests/dsl/example_journey.h"
#include "tests/dsl/parser_test_util.h"

namespace itinera::dsl {
namespace {

using testing::kExampleJourney;
using testing::ParseActionOk;
using testing::ParseExprOk;
using testing::ParseSettingOk;
using testing::ParseStepOk;
using testing::Show;

// ---- The complete example -------------------------------------------------------------------

TEST(ParserTest, ParsesCompleteExampleWithoutDiagnostics) {
  ParseResult r = Parse(kExampleJourney, "journeys/test_drive_followup.journey");
  EXPECT_EQ(FormatDiagnostics(r.diagnostics, kExampleJourney), "");
  const Journey& j = r.journey;
  EXPECT_EQ(j.file, "journeys/test_drive_followup.journey");
  EXPECT_EQ(j.id.text, "test_drive_followup");
  EXPECT_EQ(j.id.pos.line, 2);
  EXPECT_EQ(j.id.pos.column, 9);
  EXPECT_EQ(j.title, "Test-drive lead follow-up");
  ASSERT_EQ(j.settings.size(), 9u);
  ASSERT_EQ(j.steps.size(), 7u);
  std::vector<std::string> ids;
  for (const Step& s : j.steps) ids.push_back(s.id.text);
  EXPECT_EQ(ids, (std::vector<std::string>{"confirm", "wait_for_open", "hot_lead", "sms_nudge",
                                           "reminder", "second_chance", "done"}));
}

TEST(ParserTest, ExampleSettingsInSourceOrder) {
  ParseResult r = Parse(kExampleJourney, "x.journey");
  const std::vector<Setting>& s = r.journey.settings;
  ASSERT_EQ(s.size(), 9u);

  EXPECT_EQ(std::get<VersionSetting>(s[0]).version, 2);
  EXPECT_EQ(std::get<VersionSetting>(s[0]).pos.line, 3);
  EXPECT_EQ(std::get<VersionSetting>(s[0]).pos.column, 3);

  const auto& enter = std::get<EnterSetting>(s[1]);
  ASSERT_TRUE(enter.event.has_value());
  EXPECT_EQ(enter.event->type.text, "form_submitted");
  EXPECT_EQ(Show(enter.event->where), "(== event.form \"test_drive\")");
  EXPECT_EQ(enter.customer_condition, nullptr);

  const auto& re_enter = std::get<ReEnterSetting>(s[2]);
  EXPECT_EQ(re_enter.kind, ReEnterSetting::Kind::kAfter);
  EXPECT_EQ(re_enter.after_seconds, 90 * 86400);

  const auto& tz = std::get<TimezoneSetting>(s[3]);
  EXPECT_EQ(Show(tz.path), "customer.timezone");
  ASSERT_TRUE(tz.fallback.has_value());
  EXPECT_EQ(tz.fallback->text, "Europe/Prague");

  const auto& quiet = std::get<QuietHoursSetting>(s[4]);
  EXPECT_EQ(quiet.from.hour, 21);
  EXPECT_EQ(quiet.from.minute, 0);
  EXPECT_EQ(quiet.to.hour, 8);
  EXPECT_EQ(quiet.to.pos.column, 24);

  const auto& cap = std::get<FrequencyCapSetting>(s[5]);
  EXPECT_EQ(cap.channel.text, "email");
  EXPECT_EQ(cap.count, 3);
  EXPECT_EQ(cap.per_seconds, 7 * 86400);

  EXPECT_DOUBLE_EQ(std::get<HoldoutSetting>(s[6]).percent, 5);

  const auto& exit = std::get<ExitSetting>(s[7]);
  EXPECT_EQ(exit.event.type.text, "purchase");
  EXPECT_EQ(exit.event.where, nullptr);

  const auto& goal = std::get<GoalSetting>(s[8]);
  EXPECT_EQ(goal.name.text, "test_drive_booked");
  EXPECT_EQ(goal.event.type.text, "test_drive_done");
  EXPECT_EQ(goal.within_seconds, 14 * 86400);
}

TEST(ParserTest, ExampleStepsActionsAndTransitions) {
  ParseResult r = Parse(kExampleJourney, "x.journey");
  const std::vector<Step>& steps = r.journey.steps;
  ASSERT_EQ(steps.size(), 7u);

  const Step& confirm = steps[0];
  EXPECT_EQ(confirm.pos.line, 13);
  EXPECT_EQ(confirm.pos.column, 3);
  EXPECT_EQ(confirm.id.pos.column, 8);
  EXPECT_EQ(confirm.close_pos.line, 17);
  EXPECT_EQ(confirm.close_pos.column, 3);
  ASSERT_EQ(confirm.actions.size(), 2u);
  const auto& assign = std::get<AssignAction>(confirm.actions[0]);
  EXPECT_EQ(assign.team.text, "prague_sales");
  EXPECT_EQ(assign.strategy, AssignAction::Strategy::kRoundRobin);
  const auto& send = std::get<SendAction>(confirm.actions[1]);
  EXPECT_EQ(send.channel.text, "email");
  EXPECT_EQ(send.template_name.text, "test_drive_confirmation");
  ASSERT_TRUE(send.handle.has_value());
  EXPECT_EQ(send.handle->text, "offer");
  EXPECT_EQ(std::get<ThenTransition>(*confirm.transition).target.id, "wait_for_open");

  const auto& wait = std::get<WaitForTransition>(*steps[1].transition);
  EXPECT_EQ(wait.timeout_seconds, 3 * 86400);
  EXPECT_EQ(wait.event.type.text, "email_opened");
  EXPECT_EQ(Show(wait.event.where), "(== event.message offer)");
  EXPECT_EQ(wait.received->id, "hot_lead");
  EXPECT_EQ(wait.timed_out->id, "reminder");

  const Step& hot = steps[2];
  ASSERT_EQ(hot.actions.size(), 3u);
  EXPECT_EQ(std::get<AlertAction>(hot.actions[0]).target, AlertAction::Target::kOwner);
  EXPECT_EQ(std::get<AlertAction>(hot.actions[0]).template_name.text, "hot_lead_alert");
  EXPECT_EQ(std::get<SetAction>(hot.actions[1]).attribute, std::vector<std::string>{"lead_stage"});
  EXPECT_EQ(Show(std::get<SetAction>(hot.actions[2]).value), "(+ customer.score 20)");
  const auto& branch = std::get<IfTransition>(*hot.transition);
  ASSERT_EQ(branch.branches.size(), 1u);
  EXPECT_EQ(Show(branch.branches[0].condition), "(and (has customer.phone) customer.consent.sms)");
  EXPECT_EQ(branch.branches[0].target.id, "sms_nudge");
  EXPECT_EQ(branch.otherwise->id, "done");

  const auto& until = std::get<WaitUntilAction>(steps[3].actions[0]);
  EXPECT_EQ(until.at.hour, 10);
  EXPECT_EQ(until.weekdays, (std::vector<int>{1, 2, 3, 4, 5}));

  const auto& split = std::get<SplitTransition>(*steps[4].transition);
  ASSERT_EQ(split.branches.size(), 2u);
  EXPECT_DOUBLE_EQ(split.branches[1].percent, 50);
  EXPECT_EQ(split.branches[1].target.id, "second_chance");

  EXPECT_EQ(std::get<WaitAction>(steps[5].actions[0]).seconds, 2 * 86400);
  EXPECT_EQ(std::get<WebhookAction>(steps[5].actions[1]).name.text, "crm_task");

  const auto& exit = std::get<ExitTransition>(*steps[6].transition);
  EXPECT_EQ(exit.reason, "completed");
  EXPECT_EQ(steps[6].close_pos.line, steps[6].pos.line);
}

// ---- Settings -------------------------------------------------------------------------------

TEST(ParserTest, TitleIsOptional) {
  ParseResult r = Parse("journey plain {\n  step a { exit }\n}\n", "x.journey");
  EXPECT_TRUE(r.diagnostics.empty());
  EXPECT_EQ(r.journey.id.text, "plain");
  EXPECT_FALSE(r.journey.title.has_value());
}

TEST(ParserTest, EnterWhenCustomer) {
  auto e = std::get<EnterSetting>(ParseSettingOk("enter when customer customer.score >= 50"));
  EXPECT_FALSE(e.event.has_value());
  EXPECT_EQ(Show(e.customer_condition), "(>= customer.score 50)");
}

TEST(ParserTest, EnterWhenEventWithoutWhere) {
  auto e = std::get<EnterSetting>(ParseSettingOk("enter when event \"signup\""));
  EXPECT_EQ(e.event->type.text, "signup");
  EXPECT_EQ(e.event->where, nullptr);
}

TEST(ParserTest, ReEnterModes) {
  EXPECT_EQ(std::get<ReEnterSetting>(ParseSettingOk("re_enter never")).kind,
            ReEnterSetting::Kind::kNever);
  EXPECT_EQ(std::get<ReEnterSetting>(ParseSettingOk("re_enter always")).kind,
            ReEnterSetting::Kind::kAlways);
  auto after = std::get<ReEnterSetting>(ParseSettingOk("re_enter after 1d12h"));
  EXPECT_EQ(after.kind, ReEnterSetting::Kind::kAfter);
  EXPECT_EQ(after.after_seconds, 36 * 3600);
}

TEST(ParserTest, TimezoneForms) {
  auto path_only = std::get<TimezoneSetting>(ParseSettingOk("timezone customer.tz"));
  EXPECT_EQ(Show(path_only.path), "customer.tz");
  EXPECT_FALSE(path_only.fallback.has_value());
  auto fixed = std::get<TimezoneSetting>(ParseSettingOk("timezone \"Europe/Prague\""));
  EXPECT_EQ(fixed.path, nullptr);
  EXPECT_EQ(fixed.fallback->text, "Europe/Prague");
}

TEST(ParserTest, QuietHoursKeepsOutOfRangeTimesForTheChecker) {
  auto q = std::get<QuietHoursSetting>(ParseSettingOk("quiet_hours 25:00 to 08:75"));
  EXPECT_EQ(q.from.hour, 25);
  EXPECT_EQ(q.to.minute, 75);
}

TEST(ParserTest, FrequencyCapAcceptsAnyChannelName) {
  auto cap = std::get<FrequencyCapSetting>(ParseSettingOk("frequency_cap pigeon 2 per 1w"));
  EXPECT_EQ(cap.channel.text, "pigeon");
  EXPECT_EQ(cap.count, 2);
  EXPECT_EQ(cap.per_seconds, 7 * 86400);
}

TEST(ParserTest, HoldoutWithFraction) {
  EXPECT_DOUBLE_EQ(std::get<HoldoutSetting>(ParseSettingOk("holdout 12.5%")).percent, 12.5);
}

TEST(ParserTest, GoalWithoutWindowAndWithWhere) {
  auto g = std::get<GoalSetting>(
      ParseSettingOk("goal \"bought\" when event \"purchase\" where event.total > 19.99"));
  EXPECT_FALSE(g.within_seconds.has_value());
  EXPECT_EQ(Show(g.event.where), "(> event.total 19.99)");
}

TEST(ParserTest, SettingsKeepSourceOrderAndRepeats) {
  ParseResult r = Parse(
      "journey j {\n  enter when event \"a\"\n  holdout 1%\n  enter when event \"b\"\n"
      "  step s { exit }\n}\n",
      "x.journey");
  ASSERT_TRUE(r.diagnostics.empty());
  ASSERT_EQ(r.journey.settings.size(), 3u);
  EXPECT_EQ(std::get<EnterSetting>(r.journey.settings[0]).event->type.text, "a");
  EXPECT_TRUE(std::holds_alternative<HoldoutSetting>(r.journey.settings[1]));
  EXPECT_EQ(std::get<EnterSetting>(r.journey.settings[2]).event->type.text, "b");
}

// ---- Actions --------------------------------------------------------------------------------

TEST(ParserTest, SendWithoutHandleAndUnknownChannel) {
  auto send = std::get<SendAction>(ParseActionOk("send fax \"promo\""));
  EXPECT_EQ(send.channel.text, "fax");
  EXPECT_EQ(send.template_name.text, "promo");
  EXPECT_FALSE(send.handle.has_value());
}

TEST(ParserTest, AlertTargets) {
  auto team = std::get<AlertAction>(ParseActionOk("alert team \"prague_sales\" \"hot\""));
  EXPECT_EQ(team.target, AlertAction::Target::kTeam);
  EXPECT_EQ(team.target_name.text, "prague_sales");
  EXPECT_EQ(team.template_name.text, "hot");
  auto rep = std::get<AlertAction>(ParseActionOk("alert rep \"jana\" \"hot\""));
  EXPECT_EQ(rep.target, AlertAction::Target::kRep);
  EXPECT_EQ(rep.target_name.text, "jana");
  auto owner = std::get<AlertAction>(ParseActionOk("alert owner \"hot\""));
  EXPECT_EQ(owner.target_name.text, "");
}

TEST(ParserTest, AssignStrategies) {
  auto least =
      std::get<AssignAction>(ParseActionOk("assign owner from team \"t\" by least_loaded"));
  EXPECT_EQ(least.strategy, AssignAction::Strategy::kLeastLoaded);
  EXPECT_EQ(least.territory, nullptr);
  auto territory = std::get<AssignAction>(
      ParseActionOk("assign owner from team \"t\" by territory customer.region"));
  EXPECT_EQ(territory.strategy, AssignAction::Strategy::kTerritory);
  EXPECT_EQ(Show(territory.territory), "customer.region");
}

TEST(ParserTest, SetNestedAttribute) {
  auto set = std::get<SetAction>(ParseActionOk("set customer.prefs.color = \"red\""));
  EXPECT_EQ(set.attribute, (std::vector<std::string>{"prefs", "color"}));
  EXPECT_EQ(set.attribute_pos.column, 9);  // `    set ` in the step body
  EXPECT_EQ(set.pos.column, 5);
  EXPECT_EQ(Show(set.value), "\"red\"");
}

TEST(ParserTest, WaitUntilEveryDay) {
  auto until = std::get<WaitUntilAction>(ParseActionOk("wait until 09:30"));
  EXPECT_EQ(until.at.hour, 9);
  EXPECT_EQ(until.at.minute, 30);
  EXPECT_TRUE(until.weekdays.empty());
  auto weekend = std::get<WaitUntilAction>(ParseActionOk("wait until 10:00 on sat, sun"));
  EXPECT_EQ(weekend.weekdays, (std::vector<int>{6, 7}));
}

TEST(ParserTest, DurationUnits) {
  EXPECT_EQ(std::get<WaitAction>(ParseActionOk("wait 45s")).seconds, 45);
  EXPECT_EQ(std::get<WaitAction>(ParseActionOk("wait 30m")).seconds, 1800);
  EXPECT_EQ(std::get<WaitAction>(ParseActionOk("wait 12h")).seconds, 12 * 3600);
  EXPECT_EQ(std::get<WaitAction>(ParseActionOk("wait 2w1d")).seconds, 15 * 86400);
}

// ---- Transitions ----------------------------------------------------------------------------

TEST(ParserTest, ExitWithoutReason) {
  Step s = ParseStepOk("exit");
  EXPECT_FALSE(std::get<ExitTransition>(*s.transition).reason.has_value());
}

TEST(ParserTest, IfElseIfChain) {
  Step s = ParseStepOk(
      "if customer.score > 80 then hot else if customer.score > 50 then warm "
      "else cold");
  const auto& t = std::get<IfTransition>(*s.transition);
  ASSERT_EQ(t.branches.size(), 2u);
  EXPECT_EQ(Show(t.branches[1].condition), "(> customer.score 50)");
  EXPECT_EQ(t.branches[1].target.id, "warm");
  EXPECT_EQ(t.otherwise->id, "cold");
}

TEST(ParserTest, IfWithoutElseIsLeftToTheChecker) {
  Step s = ParseStepOk("if has customer.phone then sms");
  const auto& t = std::get<IfTransition>(*s.transition);
  EXPECT_FALSE(t.otherwise.has_value());
}

TEST(ParserTest, SplitThreeWaysNotSummingTo100) {
  Step s = ParseStepOk("split 33.3% -> a, 33.3% -> b, 10% -> c");
  const auto& t = std::get<SplitTransition>(*s.transition);
  ASSERT_EQ(t.branches.size(), 3u);
  EXPECT_DOUBLE_EQ(t.branches[0].percent, 33.3);
  EXPECT_EQ(t.branches[2].target.id, "c");
  EXPECT_EQ(t.branches[2].pos.column, t.branches[2].target.pos.column - 7);
}

TEST(ParserTest, WaitForOutcomesInEitherOrderOrMissing) {
  Step s = ParseStepOk(
      "wait up to 1h for event \"click\"\n    when timed_out then late\n    when received then "
      "early");
  const auto& w = std::get<WaitForTransition>(*s.transition);
  EXPECT_EQ(w.timeout_seconds, 3600);
  EXPECT_EQ(w.received->id, "early");
  EXPECT_EQ(w.timed_out->id, "late");
  EXPECT_EQ(w.timed_out->pos.line, 4);

  Step none = ParseStepOk("wait up to 1h for event \"click\"");
  const auto& n = std::get<WaitForTransition>(*none.transition);
  EXPECT_FALSE(n.received.has_value());
  EXPECT_FALSE(n.timed_out.has_value());
}

TEST(ParserTest, StepWithoutTransitionIsLeftToTheChecker) {
  Step s = ParseStepOk("send email \"x\"");
  EXPECT_FALSE(s.transition.has_value());
  EXPECT_EQ(s.actions.size(), 1u);
  EXPECT_GT(s.close_pos.line, 0);
}

// ---- Expressions ----------------------------------------------------------------------------

TEST(ParserTest, PrecedenceLoosestFirst) {
  EXPECT_EQ(Show(ParseExprOk("a or b and not c == d + e * -f")),
            "(or a (and b (not (== c (+ d (* e (- f)))))))");
  EXPECT_EQ(Show(ParseExprOk("a - b - c")), "(- (- a b) c)");
  EXPECT_EQ(Show(ParseExprOk("a / b * c")), "(* (/ a b) c)");
  EXPECT_EQ(Show(ParseExprOk("(a or b) and c")), "(and (or a b) c)");
  EXPECT_EQ(Show(ParseExprOk("not not a")), "(not (not a))");
}

TEST(ParserTest, ComparisonOperators) {
  EXPECT_EQ(Show(ParseExprOk("a != 1")), "(!= a 1)");
  EXPECT_EQ(Show(ParseExprOk("a < 1")), "(< a 1)");
  EXPECT_EQ(Show(ParseExprOk("a <= 1")), "(<= a 1)");
  EXPECT_EQ(Show(ParseExprOk("a > 1")), "(> a 1)");
  EXPECT_EQ(Show(ParseExprOk("a >= 1")), "(>= a 1)");
  EXPECT_EQ(Show(ParseExprOk("customer.country in [\"CZ\", \"SK\"]")),
            "(in customer.country [\"CZ\", \"SK\"])");
  EXPECT_EQ(Show(ParseExprOk("customer.tags contains \"vip\"")),
            "(contains customer.tags \"vip\")");
}

TEST(ParserTest, Literals) {
  EXPECT_EQ(Show(ParseExprOk("-3")), "-3");
  EXPECT_EQ(Show(ParseExprOk("19.99")), "19.99");
  EXPECT_EQ(Show(ParseExprOk("true")), "true");
  EXPECT_EQ(Show(ParseExprOk("false")), "false");
  EXPECT_EQ(Show(ParseExprOk("null")), "null");
  EXPECT_EQ(Show(ParseExprOk("1d12h")), "129600");
  EXPECT_EQ(Show(ParseExprOk("[]")), "[]");
  EXPECT_EQ(Show(ParseExprOk("[1, [2]]")), "[1, [2]]");
  EXPECT_EQ(ParseExprOk("\"a\\\"b\\\\c\\nd\\te\"")->literal, "a\"b\\c\nd\te");
  EXPECT_TRUE(ParseExprOk("42")->literal.is_number_integer());
  EXPECT_TRUE(ParseExprOk("-2.5")->literal.is_number_float());
}

TEST(ParserTest, KeywordsAreWholeWords) {
  EXPECT_EQ(Show(ParseExprOk("order or notes and hasty")), "(or order (and notes hasty))");
  EXPECT_EQ(Show(ParseExprOk("steps.in.contains")), "steps.in.contains");
  EXPECT_EQ(Show(ParseExprOk("truely")), "truely");
}

TEST(ParserTest, ExpressionPositions) {
  // The expression starts at column 22: `    set customer.x = `.
  ExprPtr e = ParseExprOk("a + -b");
  EXPECT_EQ(e->pos.column, 24);  // the operator
  EXPECT_EQ(e->operands[0]->pos.column, 22);
  EXPECT_EQ(e->operands[1]->pos.column, 26);
  EXPECT_EQ(e->operands[1]->op, Op::kNeg);
}

TEST(ParserTest, ColumnsCountCodePoints) {
  ParseResult r = Parse("journey j \"Čeština ☕\" {\n  step a { exit }\n}\n", "x.journey");
  ASSERT_TRUE(r.diagnostics.empty());
  EXPECT_EQ(r.journey.title, "Čeština ☕");
  // `journey j "Čeština ☕" ` is 23 code points but 27 bytes.
  ParseResult bad = Parse("journey j \"Čeština ☕\" x\n", "x.journey");
  ASSERT_FALSE(bad.diagnostics.empty());
  EXPECT_EQ(bad.diagnostics[0].pos.column, 23);
  EXPECT_EQ(bad.diagnostics[0].pos.byte, 26u);
}

TEST(ParserTest, CommentsAndCrlfAreWhitespace) {
  ParseResult r = Parse(
      "# heading\r\njourney j { # trailing\r\n  # step x { }\r\n  step a {\r\n    exit # done\r\n"
      "  }\r\n}\r\n# end",
      "x.journey");
  EXPECT_EQ(FormatDiagnostics(r.diagnostics, ""), "");
  ASSERT_EQ(r.journey.steps.size(), 1u);
  EXPECT_EQ(r.journey.steps[0].pos.line, 4);
}

}  // namespace
}  // namespace itinera::dsl
