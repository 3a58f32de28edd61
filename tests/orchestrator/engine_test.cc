// Engine behaviour, one test per row of DSL.md's settings and transitions tables (actions are
// in engine_actions_test.cc).
#include "orchestrator/engine.h"

#include <gtest/gtest.h>

#include "tests/orchestrator/engine_harness.h"

namespace itinera::orch {
namespace {

using nlohmann::json;
using testing::At;
using testing::Harness;
using testing::Only;
using testing::Profile;
using testing::Trace;
using V = std::vector<std::string>;

const Time kT0 = At("2026-11-22T10:00:00Z");  // a Sunday

TEST(EngineSettingsTest, VersionIsRecordedOnEntry) {
  Harness h(R"(journey j { version 3 enter when event "signup" step a { exit } })", Profile("c"));
  auto effects = h.Event("signup", kT0);
  ASSERT_FALSE(effects.empty());
  EXPECT_EQ(effects[0].kind, Effect::Kind::kEntered);
  EXPECT_EQ(effects[0].version, 3);
  EXPECT_EQ(h.state.instances.at(0).version, 3);
  EXPECT_EQ(Trace(effects), (V{"entered", "step:a", "exited:completed"}));
}

TEST(EngineSettingsTest, EnterWhenEventWithWhere) {
  Harness h(R"(journey j {
    enter when event "form_submitted" where event.form == "test_drive"
    step a { wait 1d then b }
    step b { exit }
  })",
            Profile("c"));
  EXPECT_TRUE(h.Event("form_submitted", kT0, {{"form", "newsletter"}}).empty());
  EXPECT_TRUE(h.Event("page_viewed", kT0, {{"form", "test_drive"}}).empty());
  EXPECT_EQ(Trace(h.Event("form_submitted", kT0, {{"form", "test_drive"}})),
            (V{"entered", "step:a"}));
  EXPECT_EQ(h.state.NextWake(), kT0 + std::chrono::days{1});
}

TEST(EngineSettingsTest, SeveralEnterLinesAreAlternatives) {
  const char* text = R"(journey j {
    enter when event "signup"
    enter when event "form_submitted" where event.form == "quote"
    step a { exit }
  })";
  Harness one(text, Profile("c1"));
  EXPECT_EQ(Only(one.Event("signup", kT0), Effect::Kind::kEntered), (V{"entered"}));
  Harness two(text, Profile("c2"));
  EXPECT_EQ(Only(two.Event("form_submitted", kT0, {{"form", "quote"}}), Effect::Kind::kEntered),
            (V{"entered"}));
}

TEST(EngineSettingsTest, EnterWhenCustomerConditionBecomesTrue) {
  Harness h(R"(journey j {
    enter when customer customer.score >= 50
    step a { wait 1d then b }
    step b { exit }
  })",
            Profile("c", {{"attributes", {{"score", 10}}}}));
  json updated = h.profile;
  updated["attributes"]["score"] = 20;
  EXPECT_TRUE(h.ProfileChange(updated, kT0).empty());
  updated["attributes"]["score"] = 60;
  EXPECT_EQ(Trace(h.ProfileChange(updated, kT0)), (V{"entered", "step:a"}));
  // Still true after another update: not a new entry (and never twice at once anyway).
  updated["attributes"]["score"] = 70;
  EXPECT_TRUE(h.ProfileChange(updated, kT0).empty());
}

TEST(EngineSettingsTest, EnterWhenCustomerOnCreationWithNoPreviousProfile) {
  dsl::Program p = testing::CompileJourney(
      R"(journey j { enter when customer customer.vip == true step a { exit } })");
  CustomerContext ctx;
  Directory dir;
  ctx.directory = &dir;
  ctx.profile = Profile("c", {{"attributes", {{"vip", true}}}});
  Outcome o = OnProfileChange(p, JourneyState{}, json(), kT0, ctx);
  EXPECT_EQ(Trace(o.effects), (V{"entered", "step:a", "exited:completed"}));
  ctx.profile["attributes"]["vip"] = false;
  EXPECT_TRUE(OnProfileChange(p, JourneyState{}, json(), kT0, ctx).effects.empty());
}

TEST(EngineSettingsTest, ReEnterNeverIsTheDefault) {
  Harness h(R"(journey j { enter when event "signup" step a { exit } })", Profile("c"));
  h.Event("signup", kT0);
  EXPECT_TRUE(h.Event("signup", kT0 + std::chrono::days{400}).empty());
  EXPECT_EQ(h.state.instances.size(), 1u);
}

TEST(EngineSettingsTest, ReEnterAfterDurationSincePreviousEntry) {
  Harness h(R"(journey j { enter when event "signup" re_enter after 90d step a { exit } })",
            Profile("c"));
  h.Event("signup", kT0);
  EXPECT_TRUE(h.Event("signup", kT0 + std::chrono::days{89}).empty());
  auto effects = h.Event("signup", kT0 + std::chrono::days{90});
  ASSERT_FALSE(effects.empty());
  EXPECT_EQ(effects[0].entry, 2);
  EXPECT_EQ(h.state.instances.size(), 2u);
}

TEST(EngineSettingsTest, ReEnterAlwaysButNeverTwiceAtOnce) {
  Harness h(R"(journey j {
    enter when event "signup"
    re_enter always
    step a { wait 1d then b }
    step b { exit }
  })",
            Profile("c"));
  h.Event("signup", kT0);
  EXPECT_TRUE(h.Event("signup", kT0 + std::chrono::hours{1}).empty());  // still in flight
  h.RunUntil(kT0 + std::chrono::days{2});
  EXPECT_EQ(Only(h.Event("signup", kT0 + std::chrono::days{2}), Effect::Kind::kEntered),
            (V{"entered"}));
  EXPECT_EQ(h.state.instances.size(), 2u);
}

TEST(EngineSettingsTest, TimezoneFromProfileWithFallback) {
  const char* text = R"(journey j {
    enter when event "signup"
    timezone customer.timezone or "America/New_York"
    step a { wait until 09:00 then b }
    step b { exit }
  })";
  Harness prague(text, Profile("c1", {{"timezone", "Europe/Prague"}}));
  prague.Event("signup", At("2026-11-22T12:00:00Z"));
  EXPECT_EQ(prague.state.NextWake(), At("2026-11-23T08:00:00Z"));
  Harness fallback(text, Profile("c2", {{"timezone", "Nowhere/Atlantis"}}));
  fallback.Event("signup", At("2026-11-22T12:00:00Z"));
  EXPECT_EQ(fallback.state.NextWake(), At("2026-11-22T14:00:00Z"));  // 09:00 EST
  Harness utc(R"(journey j { enter when event "signup" step a { wait until 09:00 then b }
                 step b { exit } })",
              Profile("c3", {{"timezone", "Europe/Prague"}}));
  utc.Event("signup", At("2026-11-22T12:00:00Z"));
  EXPECT_EQ(utc.state.NextWake(), At("2026-11-23T09:00:00Z"));
}

TEST(EngineSettingsTest, TimezoneFromTheEntryEvent) {
  Harness h(R"(journey j {
    enter when event "signup"
    timezone entry.tz or "UTC"
    step a { wait until 09:00 then b }
    step b { exit }
  })",
            Profile("c1"));
  h.Event("signup", At("2026-11-22T12:00:00Z"), {{"tz", "Asia/Tokyo"}});
  EXPECT_EQ(h.state.NextWake(), At("2026-11-23T00:00:00Z"));  // 09:00 in Tokyo
}

TEST(EngineSettingsTest, FrequencyCapSkipsAndMovesOn) {
  Harness h(R"(journey j {
    enter when event "signup"
    frequency_cap email 2 per 7d
    step a { send email "one" send email "two" send email "three" send sms "s" exit }
  })",
            Profile("c"));
  EXPECT_EQ(Only(h.Event("signup", kT0), Effect::Kind::kSent),
            (V{"sent:email", "sent:email", "sent:sms"}));
  EXPECT_EQ(Only(h.effects, Effect::Kind::kSkipped), (V{"skipped:frequency_cap"}));
}

TEST(EngineSettingsTest, FrequencyCapCountsSendsOfOtherJourneysInsideTheWindow) {
  const char* text = R"(journey j {
    enter when event "signup"
    frequency_cap email 1 per 1d
    step a { send email "one" exit }
  })";
  Harness h(text, Profile("c"));
  h.sends.push_back({"email", kT0 - std::chrono::hours{23}});  // sent by another journey
  EXPECT_EQ(Only(h.Event("signup", kT0), Effect::Kind::kSkipped), (V{"skipped:frequency_cap"}));
  Harness later(text, Profile("c"));
  later.sends.push_back({"email", kT0 - std::chrono::hours{24}});  // just outside (now-1d, now]
  later.sends.push_back({"sms", kT0});                             // another channel
  EXPECT_EQ(Only(later.Event("signup", kT0), Effect::Kind::kSent), (V{"sent:email"}));
}

TEST(EngineSettingsTest, HoldoutWalksTheJourneyButSendsNothing) {
  Harness h(R"(journey j {
    enter when event "signup"
    holdout 100%
    goal "bought" when event "purchase"
    step a {
      send email "welcome"
      alert rep "rep_anna" "hot"
      webhook "crm_task"
      set customer.stage = "contacted"
      wait 1d
      then b
    }
    step b { exit }
  })",
            Profile("c"));
  auto effects = h.Event("signup", kT0);
  EXPECT_TRUE(effects[0].holdout);
  EXPECT_EQ(Trace(effects), (V{"entered", "step:a", "skipped:holdout", "skipped:holdout",
                               "skipped:holdout", "set:stage"}));
  EXPECT_EQ(effects[3].channel, "alert");
  EXPECT_EQ(effects[4].channel, "webhook");
  EXPECT_EQ(Trace(h.Event("purchase", kT0 + std::chrono::hours{1})), (V{"goal:bought"}));
}

TEST(EngineSettingsTest, HoldoutIsStableAndProportional) {
  dsl::Program p = testing::CompileJourney(
      R"(journey j { enter when event "signup" holdout 5% step a { exit } })");
  int held = 0;
  for (int i = 0; i < 10000; ++i) {
    std::string id = "c-" + std::to_string(i);
    bool first = InHoldout(p, id);
    EXPECT_EQ(first, InHoldout(p, id));
    held += first ? 1 : 0;
  }
  EXPECT_GT(held, 400);
  EXPECT_LT(held, 600);
  dsl::Program none =
      testing::CompileJourney(R"(journey j { enter when event "signup" step a { exit } })");
  EXPECT_FALSE(InHoldout(none, "c-1"));
}

TEST(EngineSettingsTest, ExitWhenEventCancelsWait) {
  Harness h(R"(journey j {
    enter when event "signup"
    exit when event "purchase" where event.amount > 100
    step a { wait 3d then b }
    step b { send email "late" exit }
  })",
            Profile("c"));
  h.Event("signup", kT0);
  EXPECT_TRUE(h.Event("purchase", kT0 + std::chrono::hours{1}, {{"amount", 50}}).empty());
  EXPECT_EQ(Trace(h.Event("purchase", kT0 + std::chrono::hours{2}, {{"amount", 500}})),
            (V{"exited:event:purchase"}));
  EXPECT_FALSE(h.state.NextWake());
  EXPECT_TRUE(h.Timer(kT0 + std::chrono::days{3}).empty());
}

TEST(EngineSettingsTest, ExitWhenEventInterruptsWaitUpTo) {
  Harness h(R"(journey j {
    enter when event "signup"
    exit when event "unsubscribed"
    step a {
      wait up to 3d for event "email_opened"
      when received then b
      when timed_out then b
    }
    step b { exit }
  })",
            Profile("c"));
  h.Event("signup", kT0);
  EXPECT_EQ(Trace(h.Event("unsubscribed", kT0 + std::chrono::days{1})),
            (V{"exited:event:unsubscribed"}));
}

const char* kGoalJourney = R"(journey j {
    enter when event "signup"
    re_enter always
    exit when event "purchase"
    goal "drive" when event "test_drive_done" within 14d
    goal "bought" when event "purchase"
    step a { wait 30d then b }
    step b { exit }
  })";

TEST(EngineSettingsTest, GoalWithinWindowCountsOncePerEntry) {
  Harness h(kGoalJourney, Profile("c"));
  h.Event("signup", kT0);
  EXPECT_EQ(Trace(h.Event("test_drive_done", kT0 + std::chrono::days{3})), (V{"goal:drive"}));
  EXPECT_TRUE(h.Event("test_drive_done", kT0 + std::chrono::days{4}).empty());
}

TEST(EngineSettingsTest, GoalAfterWindowDoesNotCount) {
  Harness h(kGoalJourney, Profile("c"));
  h.Event("signup", kT0);
  EXPECT_TRUE(h.Event("test_drive_done", kT0 + std::chrono::days{15}).empty());
}

TEST(EngineSettingsTest, GoalWithWindowCountsAfterExit) {
  Harness h(kGoalJourney, Profile("c"));
  h.Event("signup", kT0);
  EXPECT_EQ(Trace(h.Event("purchase", kT0 + std::chrono::days{1})),
            (V{"goal:bought", "exited:event:purchase"}));  // goals first, then exit rules
  EXPECT_EQ(Trace(h.Event("test_drive_done", kT0 + std::chrono::days{2})), (V{"goal:drive"}));
}

TEST(EngineSettingsTest, GoalWithoutWindowCountsAfterExitUntilTheNextEntry) {
  Harness h(R"(journey j {
    enter when event "signup"
    re_enter always
    goal "bought" when event "purchase"
    step a { wait 1d then b }
    step b { exit }
  })",
            Profile("c"));
  h.Event("signup", kT0);
  h.RunUntil(kT0 + std::chrono::days{2});
  ASSERT_EQ(h.active(), nullptr);
  auto effects = h.Event("purchase", kT0 + std::chrono::days{60});  // long after she left
  ASSERT_EQ(Trace(effects), (V{"goal:bought"}));
  EXPECT_EQ(effects[0].entry, 1);
  EXPECT_TRUE(h.Event("purchase", kT0 + std::chrono::days{61}).empty());  // once per entry
  // A new entry starts a new attribution: the old entry no longer counts.
  h.Event("signup", kT0 + std::chrono::days{62});
  h.RunUntil(kT0 + std::chrono::days{64});
  effects = h.Event("purchase", kT0 + std::chrono::days{70});
  ASSERT_EQ(Trace(effects), (V{"goal:bought"}));
  EXPECT_EQ(effects[0].entry, 2);
}

TEST(EngineSettingsTest, ExitedCustomerMayReEnterOnTheSameEvent) {
  Harness h(R"(journey j {
    enter when event "ping"
    re_enter always
    exit when event "ping"
    step a { wait 1d then b }
    step b { exit }
  })",
            Profile("c"));
  h.Event("ping", kT0);
  EXPECT_EQ(Trace(h.Event("ping", kT0 + std::chrono::hours{1})),
            (V{"exited:event:ping", "entered", "step:a"}));
  EXPECT_EQ(h.state.instances.size(), 2u);
}

// ---- Transitions ---------------------------------------------------------------------------

TEST(EngineTransitionsTest, ThenGoesOn) {
  Harness h(R"(journey j { enter when event "s" step a { then b } step b { then c }
                 step c { exit } })",
            Profile("c"));
  EXPECT_EQ(Trace(h.Event("s", kT0)),
            (V{"entered", "step:a", "step:b", "step:c", "exited:completed"}));
}

TEST(EngineTransitionsTest, ExitWithReason) {
  Harness h(R"(journey j { enter when event "s" step a { exit "not_interested" } })", Profile("c"));
  EXPECT_EQ(Trace(h.Event("s", kT0)).back(), "exited:not_interested");
  EXPECT_EQ(h.state.instances[0].exit_reason, "not_interested");
  EXPECT_EQ(h.state.instances[0].status, InstanceStatus::kExited);
}

TEST(EngineTransitionsTest, IfFirstTrueBranchWins) {
  const char* text = R"(journey j {
    enter when event "s"
    step a {
      if customer.score > 80 then hot
      else if customer.score > 40 then warm
      else cold
    }
    step hot { exit "hot" }
    step warm { exit "warm" }
    step cold { exit "cold" }
  })";
  for (auto [score, expected] :
       std::vector<std::pair<json, std::string>>{{90, "exited:hot"},
                                                 {50, "exited:warm"},
                                                 {10, "exited:cold"},
                                                 {nullptr, "exited:cold"}}) {
    Harness h(text, Profile("c", {{"attributes", {{"score", score}}}}));
    EXPECT_EQ(Trace(h.Event("s", kT0)).back(), expected) << score;
  }
}

TEST(EngineTransitionsTest, SplitIsStablePerCustomerAndProportional) {
  dsl::Program p = testing::CompileJourney(R"(journey j {
    enter when event "s"
    step a { split 20% -> x, 30% -> y, 50% -> z }
    step x { exit "x" }
    step y { exit "y" }
    step z { exit "z" }
  })");
  const auto& split = std::get<dsl::SplitTransition>(*p.steps[0].transition);
  int counts[3] = {0, 0, 0};
  for (int i = 0; i < 10000; ++i) {
    std::string id = "cust-" + std::to_string(i);
    size_t b = SplitBranch(split, "j", id, "a");
    ASSERT_LT(b, 3u);
    EXPECT_EQ(b, SplitBranch(split, "j", id, "a"));
    ++counts[b];
  }
  EXPECT_NEAR(counts[0], 2000, 200);
  EXPECT_NEAR(counts[1], 3000, 200);
  EXPECT_NEAR(counts[2], 5000, 200);
  // Through the engine: the same customer twice takes the same branch.
  CustomerContext ctx;
  Directory dir;
  ctx.directory = &dir;
  ctx.profile = Profile("c-42");
  json event = testing::MakeEvent("c-42", "s", kT0);
  auto first = OnEvent(p, JourneyState{}, event, kT0, ctx).effects.back().reason;
  auto second = OnEvent(p, JourneyState{}, event, kT0, ctx).effects.back().reason;
  EXPECT_EQ(first, second);
}

const char* kWaitForJourney = R"(journey j {
    enter when event "signup"
    step a { send email "offer" as offer  wait 1d  then b }
    step b {
      wait up to 3d for event "email_opened" where event.message == offer
      when received then opened
      when timed_out then reminder
    }
    step opened { set customer.opened_from = event.device  exit "opened" }
    step reminder { exit "timed_out" }
  })";

TEST(EngineTransitionsTest, WaitUpToReceived) {
  Harness h(kWaitForJourney, Profile("c"));
  h.Event("signup", kT0);
  std::string offer = h.active()->handles.at("offer");
  h.RunUntil(kT0 + std::chrono::days{1});
  EXPECT_TRUE(h.Event("email_opened", kT0 + std::chrono::days{2}, {{"message", "other"}}).empty());
  auto effects = h.Event("email_opened", kT0 + std::chrono::days{2},
                         {{"message", offer}, {"device", "phone"}});
  EXPECT_EQ(Trace(effects), (V{"step:opened", "set:opened_from", "exited:opened"}));
  EXPECT_EQ(effects[1].value, "phone");  // event.X in a step: the event that moved it
}

TEST(EngineTransitionsTest, WaitUpToTimedOut) {
  Harness h(kWaitForJourney, Profile("c"));
  h.Event("signup", kT0);
  h.RunUntil(kT0 + std::chrono::days{1});
  EXPECT_EQ(h.state.NextWake(), kT0 + std::chrono::days{4});
  EXPECT_EQ(Trace(h.RunUntil(kT0 + std::chrono::days{10})),
            (V{"step:reminder", "exited:timed_out"}));
}

TEST(EngineTransitionsTest, WaitUpToIgnoresEventsBeforeTheWait) {
  Harness h(kWaitForJourney, Profile("c"));
  h.Event("signup", kT0);
  std::string offer = h.active()->handles.at("offer");
  // Opened during the 1d wait in step a, before the wait up to began.
  EXPECT_TRUE(h.Event("email_opened", kT0 + std::chrono::hours{2}, {{"message", offer}}).empty());
  h.RunUntil(kT0 + std::chrono::days{1});
  EXPECT_EQ(h.active()->wait, WaitKind::kEvent);
}

TEST(EngineTransitionsTest, LoopLimitStopsARunawayChain) {
  dsl::Program p = testing::CompileJourney(R"(journey j {
    enter when event "s"
    step a { then b }
    step b { wait 1s then a }
  })");
  p.steps[1].actions.clear();  // a cycle without a wait, which the checker would refuse
  CustomerContext ctx;
  Directory dir;
  ctx.directory = &dir;
  ctx.profile = Profile("c");
  Outcome o = OnEvent(p, JourneyState{}, testing::MakeEvent("c", "s", kT0), kT0, ctx);
  EXPECT_EQ(Trace(o.effects).back(), "exited:loop_limit");
  EXPECT_LE(o.effects.size(), static_cast<size_t>(kMaxStepsPerCall) + 3);
}

TEST(EngineStateTest, InstanceRoundTripsThroughJson) {
  Harness h(kWaitForJourney, Profile("c"));
  h.Event("signup", kT0);
  json saved = ToJson(h.state);
  auto restored = JourneyStateFromJson(saved);
  ASSERT_TRUE(restored.ok()) << restored.error().message;
  EXPECT_EQ(ToJson(*restored), saved);
  EXPECT_EQ(restored->NextWake(), kT0 + std::chrono::days{1});
  EXPECT_FALSE(InstanceFromJson(json{{"journey", "j"}}).ok());
}

}  // namespace
}  // namespace itinera::orch
