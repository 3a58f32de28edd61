// Quiet hours: an email or SMS inside the window is held and delivered when it ends, while the
// customer moves on at once (DSL.md "quiet_hours"; DESIGN.md "checked again at dispatch time").
#include <gtest/gtest.h>

#include "orchestrator/engine.h"
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

const char* kQuietJourney = R"(journey j {
    enter when event "signup"
    timezone customer.timezone or "UTC"
    quiet_hours 21:00 to 08:00
    exit when event "purchase"
    step a {
      send email "welcome" as w
      alert rep "rep_anna" "hot_lead"
      wait up to 2d for event "email_opened" where event.message == w
      when received then b
      when timed_out then b
    }
    step b { exit }
  })";

TEST(EngineQuietHoursTest, HeldEmailDoesNotDelayTheAlertOfTheSameStep) {
  Harness h(kQuietJourney, Profile("c", {{"timezone", "Europe/Prague"}}));
  // 22:30 in Prague: the email is held, the customer moves on at once.
  auto effects = h.Event("signup", At("2026-11-22T21:30:00Z"));
  EXPECT_EQ(Trace(effects), (V{"entered", "step:a", "held:email", "alert:rep_anna"}));
  EXPECT_EQ(effects[2].until, At("2026-11-23T07:00:00Z"));
  EXPECT_EQ(effects[3].at, At("2026-11-22T21:30:00Z"));
  EXPECT_EQ(h.active()->wait, WaitKind::kEvent);
  ASSERT_EQ(h.active()->held.size(), 1u);
  EXPECT_EQ(h.active()->handles.at("w"), effects[2].message_id);  // set when held
}

TEST(EngineQuietHoursTest, HeldMessageIsDeliveredWhenTheWindowEnds) {
  Harness h(kQuietJourney, Profile("c", {{"timezone", "Europe/Prague"}}));
  auto held = h.Event("signup", At("2026-11-22T21:30:00Z"))[2];
  EXPECT_EQ(h.state.NextWake(), At("2026-11-23T07:00:00Z"));  // before the wait's timeout
  EXPECT_TRUE(h.Timer(At("2026-11-23T06:59:59Z")).empty());
  auto effects = h.Timer(At("2026-11-23T07:00:00Z"));
  ASSERT_EQ(Trace(effects), (V{"sent:email"}));
  EXPECT_EQ(effects[0].message_id, held.message_id);
  EXPECT_EQ(effects[0].handle, "w");
  EXPECT_EQ(effects[0].step, "a");
  EXPECT_EQ(effects[0].to, "c@example.com");
  EXPECT_EQ(effects[0].data["links"]["unsubscribe"], "http://127.0.0.1:8080/u/" + held.message_id);
  EXPECT_TRUE(h.active()->held.empty());
  // The handle matches opens of the delivered message.
  EXPECT_EQ(
      Trace(h.Event("email_opened", At("2026-11-23T08:00:00Z"), {{"message", held.message_id}})),
      (V{"step:b", "exited:completed"}));
}

TEST(EngineQuietHoursTest, ConsentRevokedBeforeDeliveryIsSkipped) {
  Harness h(kQuietJourney, Profile("c"));
  h.Event("signup", At("2026-11-22T23:00:00Z"));
  h.profile["consent"]["email"] = false;  // unsubscribed during the night
  EXPECT_EQ(Trace(h.Timer(At("2026-11-23T08:00:00Z"))), (V{"skipped:no_consent"}));
  EXPECT_TRUE(h.active()->held.empty());
  EXPECT_EQ(h.state.NextWake(), At("2026-11-24T23:00:00Z"));  // only the wait remains
}

TEST(EngineQuietHoursTest, ExitByEventCancelsHeldMessages) {
  Harness h(kQuietJourney, Profile("c"));
  h.Event("signup", At("2026-11-22T23:00:00Z"));
  auto effects = h.Event("purchase", At("2026-11-23T01:00:00Z"));
  EXPECT_EQ(Trace(effects), (V{"exited:event:purchase", "skipped:exited"}));
  EXPECT_EQ(effects[1].template_name, "welcome");
  EXPECT_EQ(effects[1].channel, "email");
  EXPECT_FALSE(h.state.NextWake());
  EXPECT_TRUE(h.Timer(At("2026-11-23T08:00:00Z")).empty());
}

TEST(EngineQuietHoursTest, CompletedJourneyStillDeliversHeldMessages) {
  Harness h(R"(journey j {
    enter when event "signup"
    quiet_hours 21:00 to 08:00
    step a { send email "welcome" send sms "hi" then b }
    step b { exit "done" }
  })",
            Profile("c"));
  EXPECT_EQ(Trace(h.Event("signup", At("2026-11-22T23:00:00Z"))),
            (V{"entered", "step:a", "held:email", "held:sms", "step:b", "exited:done"}));
  EXPECT_EQ(h.active(), nullptr);
  EXPECT_EQ(h.state.NextWake(), At("2026-11-23T08:00:00Z"));
  EXPECT_EQ(Trace(h.RunUntil(At("2026-11-24T00:00:00Z"))), (V{"sent:email", "sent:sms"}));
  EXPECT_FALSE(h.state.NextWake());
}

TEST(EngineQuietHoursTest, FrequencyCapCountsHeldMessages) {
  Harness h(R"(journey j {
    enter when event "signup"
    quiet_hours 21:00 to 08:00
    frequency_cap email 1 per 1d
    step a { send email "one" send email "two" exit }
  })",
            Profile("c"));
  EXPECT_EQ(Trace(h.Event("signup", At("2026-11-22T23:00:00Z"))),
            (V{"entered", "step:a", "held:email", "skipped:frequency_cap", "exited:completed"}));
  // Another journey's held message counts too.
  Harness other(R"(journey j {
    enter when event "signup"
    frequency_cap email 1 per 1d
    step a { send email "one" exit }
  })",
                Profile("c"));
  other.sends.push_back({"email", At("2026-11-22T20:00:00Z"), true});
  EXPECT_EQ(Only(other.Event("signup", At("2026-11-23T23:00:00Z")), Effect::Kind::kSkipped),
            (V{"skipped:frequency_cap"}));
}

TEST(EngineQuietHoursTest, DeliverHeldChecksAgainAndHoldsAgainInsideTheWindow) {
  dsl::Program p = testing::CompileJourney(R"(journey j {
    enter when event "signup"
    quiet_hours 21:00 to 08:00
    frequency_cap sms 1 per 1d
    step a { send sms "hi" exit }
  })");
  HeldMessage m;
  m.channel = "sms";
  m.template_name = "hi";
  m.message_id = "m1";
  json profile = Profile("c");
  HeldDelivery d = DeliverHeld(p, m, profile, {}, At("2026-11-23T08:00:00Z"));
  EXPECT_EQ(d.kind, HeldDelivery::Kind::kSent);
  EXPECT_EQ(d.to, "+420600000000");
  d = DeliverHeld(p, m, profile, {}, At("2026-11-23T22:00:00Z"));
  EXPECT_EQ(d.kind, HeldDelivery::Kind::kHeld);
  EXPECT_EQ(d.until, At("2026-11-24T08:00:00Z"));
  d = DeliverHeld(p, m, profile, {{"sms", At("2026-11-23T07:00:00Z")}}, At("2026-11-23T08:00:00Z"));
  EXPECT_EQ(d.kind, HeldDelivery::Kind::kSkipped);
  EXPECT_EQ(d.reason, "frequency_cap");
  // A held record (its own, or another one still pending) does not count at delivery.
  d = DeliverHeld(p, m, profile, {{"sms", At("2026-11-22T23:00:00Z"), true}},
                  At("2026-11-23T08:00:00Z"));
  EXPECT_EQ(d.kind, HeldDelivery::Kind::kSent);
  profile.erase("phone");
  EXPECT_EQ(DeliverHeld(p, m, profile, {}, At("2026-11-23T08:00:00Z")).reason, "no_address");
}

TEST(EngineQuietHoursTest, QuietHoursDoNotHoldAlerts) {
  Harness h(R"(journey j {
    enter when event "signup"
    quiet_hours 21:00 to 08:00
    step a { alert rep "rep_anna" "hot_lead" exit }
  })",
            Profile("c"));
  EXPECT_EQ(Trace(h.Event("signup", At("2026-11-22T23:00:00Z"))),
            (V{"entered", "step:a", "alert:rep_anna", "exited:completed"}));
}

TEST(EngineStateTest, PendingHeldMessagesRoundTripThroughJson) {
  Harness h(kQuietJourney, Profile("c", {{"timezone", "Europe/Prague"}}));
  h.Event("signup", At("2026-11-22T21:30:00Z"), {{"source", "web"}});
  json saved = ToJson(h.state);
  ASSERT_EQ(saved["instances"][0]["held"].size(), 1u);
  auto restored = JourneyStateFromJson(saved);
  ASSERT_TRUE(restored.ok()) << restored.error().message;
  EXPECT_EQ(ToJson(*restored), saved);
  EXPECT_EQ(restored->NextWake(), At("2026-11-23T07:00:00Z"));
  const HeldMessage& m = restored->instances[0].held[0];
  EXPECT_EQ(m.template_name, "welcome");
  EXPECT_EQ(m.handle, "w");
  EXPECT_EQ(m.entry_event["properties"]["source"], "web");
  // Delivery after the round trip works as before it.
  h.state = *restored;
  EXPECT_EQ(Trace(h.Timer(At("2026-11-23T07:00:00Z"))), (V{"sent:email"}));
  saved["instances"][0]["held"][0]["until"] = "soon";
  EXPECT_FALSE(JourneyStateFromJson(saved).ok());
}

}  // namespace
}  // namespace itinera::orch
