// Engine behaviour, one test per row of DSL.md's actions table.
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

const Time kT0 = At("2026-11-22T10:00:00Z");  // a Sunday

std::string Journey(const std::string& actions, const std::string& settings = "") {
  return "journey j {\n enter when event \"signup\"\n" + settings + "\n step a {\n" + actions +
         "\n exit\n }\n}\n";
}

TEST(EngineSendTest, SendsEmailWithHandleAndStableMessageId) {
  Harness h(Journey(R"(send email "welcome" as hello)"), Profile("c"));
  auto effects = h.Event("signup", kT0);
  ASSERT_EQ(Trace(effects), (V{"entered", "step:a", "sent:email", "exited:completed"}));
  const Effect& sent = effects[2];
  EXPECT_EQ(sent.to, "c@example.com");
  EXPECT_EQ(sent.template_name, "welcome");
  EXPECT_EQ(sent.handle, "hello");
  EXPECT_EQ(sent.message_id, MessageId("j", 1, "c", 1, "a", 0));
  EXPECT_EQ(sent.message_id.size(), 16u);
  EXPECT_EQ(h.state.instances[0].handles.at("hello"), sent.message_id);
}

TEST(EngineSendTest, SendsSmsToPhone) {
  Harness h(Journey(R"(send sms "nudge")"), Profile("c"));
  auto sent = h.Event("signup", kT0)[2];
  EXPECT_EQ(sent.kind, Effect::Kind::kSent);
  EXPECT_EQ(sent.channel, "sms");
  EXPECT_EQ(sent.to, "+420600000000");
  EXPECT_TRUE(sent.handle.empty());
}

TEST(EngineSendTest, SkipsWithoutConsentOrAddress) {
  std::string text = Journey(R"(send email "welcome"  send sms "nudge")");
  Harness no_consent(text, Profile("c", {{"consent", {{"email", false}, {"sms", "yes"}}}}));
  EXPECT_EQ(Only(no_consent.Event("signup", kT0), Effect::Kind::kSkipped),
            (V{"skipped:no_consent", "skipped:no_consent"}));  // consent must be exactly true
  Harness no_address(text, Profile("c", {{"email", nullptr}, {"phone", ""}}));
  EXPECT_EQ(Only(no_address.Event("signup", kT0), Effect::Kind::kSkipped),
            (V{"skipped:no_address", "skipped:no_address"}));
  json bare = {{"id", "c"}};
  Harness nothing(text, bare);
  EXPECT_EQ(Only(nothing.Event("signup", kT0), Effect::Kind::kSkipped),
            (V{"skipped:no_consent", "skipped:no_consent"}));
}

TEST(EngineSendTest, MessageIdsDifferPerActionEntryAndVisit) {
  std::set<std::string> ids = {
      MessageId("j", 1, "c", 1, "a", 0),   MessageId("j", 1, "c", 1, "a", 1),
      MessageId("j", 1, "c", 2, "a", 0),   MessageId("j", 2, "c", 1, "a", 0),
      MessageId("j", 1, "d", 1, "a", 0),   MessageId("j", 1, "c", 1, "b", 0),
      MessageId("j", 1, "c", 1, "a", 0, 2)};
  EXPECT_EQ(ids.size(), 7u);
  EXPECT_EQ(MessageId("j", 1, "c", 1, "a", 0), MessageId("j", 1, "c", 1, "a", 0));
  EXPECT_EQ(MessageId("j", 1, "c", 1, "a", 0), MessageId("j", 1, "c", 1, "a", 0, 1));
}

TEST(EngineSendTest, TemplateDataFlattensProfileAndCarriesOwnerAndLinks) {
  Harness h(Journey(R"(send email "welcome")"),
            Profile("c", {{"owner", "rep_ben"}, {"attributes", {{"first_name", "Eva"}}}}));
  auto sent = h.Event("signup", kT0, {{"model", "Octavia"}})[2];
  EXPECT_EQ(sent.data["customer"]["first_name"], "Eva");
  EXPECT_EQ(sent.data["customer"]["email"], "c@example.com");
  EXPECT_EQ(sent.data["entry"]["model"], "Octavia");
  EXPECT_EQ(sent.data["event"]["model"], "Octavia");
  EXPECT_EQ(sent.data["owner"]["name"], "Ben Dvorak");
  EXPECT_EQ(sent.data["journey"]["id"], "j");
  EXPECT_EQ(sent.data["journey"]["version"], 1);
  EXPECT_EQ(sent.data["links"]["unsubscribe"], "http://127.0.0.1:8080/u/" + sent.message_id);
}

TEST(EngineSendTest, TemplateDataHasNoOwnerWithoutOne) {
  // null, so a template's {{#owner}}...{{/owner}} section renders nothing.
  Harness h(Journey(R"(send email "welcome")"), Profile("c"));
  auto sent = h.Event("signup", kT0)[2];
  EXPECT_TRUE(sent.data["owner"].is_null());
}

TEST(EngineAlertTest, AlertOwner) {
  std::string text = Journey(R"(alert owner "hot_lead")");
  Harness owned(text, Profile("c", {{"owner", "rep_anna"}}));
  auto effects = owned.Event("signup", kT0);
  EXPECT_EQ(Only(effects, Effect::Kind::kAlert), (V{"alert:rep_anna"}));
  EXPECT_EQ(effects[2].to, "rep_anna@dealer.example");
  EXPECT_EQ(effects[2].data["rep"]["name"], "Anna Novak");
  Harness orphan(text, Profile("c"));
  EXPECT_EQ(Only(orphan.Event("signup", kT0), Effect::Kind::kSkipped), (V{"skipped:no_owner"}));
}

TEST(EngineAlertTest, AlertTeamAlertsEveryRepInOrder) {
  Harness h(Journey(R"(alert team "prague_sales" "hot_lead")"), Profile("c"));
  auto effects = h.Event("signup", kT0);
  EXPECT_EQ(Only(effects, Effect::Kind::kAlert),
            (V{"alert:rep_anna", "alert:rep_ben", "alert:rep_cyril"}));
  EXPECT_NE(effects[2].message_id, effects[3].message_id);
}

TEST(EngineAlertTest, AlertRep) {
  Harness h(Journey(R"(alert rep "rep_dana" "hot_lead")"), Profile("c"));
  EXPECT_EQ(Only(h.Event("signup", kT0), Effect::Kind::kAlert), (V{"alert:rep_dana"}));
}

TEST(EngineAssignTest, RoundRobinRotatesInConfiguredOrder) {
  std::string text = Journey(R"(assign owner from team "prague_sales" by round_robin)");
  RoutingSnapshot routing;
  std::vector<std::string> owners;
  for (int i = 0; i < 4; ++i) {
    Harness h(text, Profile("c" + std::to_string(i)));
    h.routing = routing;
    auto effects = h.Event("signup", kT0);
    routing = h.routing;
    owners.push_back(h.profile["owner"]);
    EXPECT_EQ(Only(effects, Effect::Kind::kAssigned), (V{"assigned:" + owners.back()}));
  }
  EXPECT_EQ(owners, (V{"rep_anna", "rep_ben", "rep_cyril", "rep_anna"}));
  EXPECT_EQ(routing.round_robin["prague_sales"], 4);
  EXPECT_EQ(routing.load["rep_anna"], 2);
}

TEST(EngineAssignTest, LeastLoadedTiesGoToConfiguredOrder) {
  std::string text = Journey(R"(assign owner from team "prague_sales" by least_loaded)");
  Harness h(text, Profile("c"));
  h.routing.load = {{"rep_anna", 5}, {"rep_ben", 2}, {"rep_cyril", 2}};
  h.Event("signup", kT0);
  EXPECT_EQ(h.profile["owner"], "rep_ben");
  EXPECT_EQ(h.routing.load["rep_ben"], 3);
}

TEST(EngineAssignTest, ReassignMovesLoadFromPreviousOwner) {
  Harness h(Journey(R"(assign owner from team "prague_sales" by least_loaded)"),
            Profile("c", {{"owner", "rep_anna"}}));
  h.routing.load = {{"rep_anna", 5}, {"rep_ben", 2}, {"rep_cyril", 3}};
  h.Event("signup", kT0);
  EXPECT_EQ(h.profile["owner"], "rep_ben");
  EXPECT_EQ(h.routing.load["rep_anna"], 4);
  EXPECT_EQ(h.routing.load["rep_ben"], 3);
}

TEST(EngineAssignTest, TerritoryMatchesCaseInsensitivelyElseRoundRobin) {
  std::string text =
      Journey(R"(assign owner from team "prague_sales" by territory customer.region)");
  Harness match(text, Profile("c", {{"attributes", {{"region", "central bohemia"}}}}));
  match.Event("signup", kT0);
  EXPECT_EQ(match.profile["owner"], "rep_ben");
  EXPECT_EQ(match.routing.round_robin["prague_sales"], 0);
  Harness none(text, Profile("c", {{"attributes", {{"region", "Ostrava"}}}}));
  none.routing.round_robin["prague_sales"] = 2;
  none.Event("signup", kT0);
  EXPECT_EQ(none.profile["owner"], "rep_cyril");
  EXPECT_EQ(none.routing.round_robin["prague_sales"], 3);
}

TEST(EngineSetTest, SetUpdatesProfileAndRecordsIt) {
  Harness h(Journey(R"(set customer.score = customer.score + 20
    set customer.lead_stage = "hot"
    set customer.address.city = entry.city
    set customer.consent.sms = false)"),
            Profile("c"));
  auto effects = h.Event("signup", kT0, {{"city", "Brno"}});
  EXPECT_EQ(Only(effects, Effect::Kind::kSet),
            (V{"set:score", "set:lead_stage", "set:address.city", "set:consent.sms"}));
  EXPECT_EQ(effects[2].value, 20);
  EXPECT_EQ(h.profile["attributes"]["score"], 20);
  EXPECT_EQ(h.profile["attributes"]["lead_stage"], "hot");
  EXPECT_EQ(h.profile["attributes"]["address"]["city"], "Brno");
  EXPECT_EQ(h.profile["consent"]["sms"], false);
}

TEST(EngineSetTest, LaterActionsSeeEarlierSets) {
  Harness h(Journey(R"(set customer.consent.email = false
    send email "welcome")"),
            Profile("c"));
  EXPECT_EQ(Only(h.Event("signup", kT0), Effect::Kind::kSkipped), (V{"skipped:no_consent"}));
}

TEST(EngineWebhookTest, WebhookCarriesCustomerJourneyAndEvent) {
  Harness h(Journey(R"(webhook "crm_task")"), Profile("c"));
  auto effects = h.Event("signup", kT0, {{"form", "quote"}});
  ASSERT_EQ(Only(effects, Effect::Kind::kWebhook), (V{"webhook:crm_task"}));
  const Effect& hook = effects[2];
  EXPECT_EQ(hook.value["customer"]["id"], "c");
  EXPECT_EQ(hook.value["journey"]["id"], "j");
  EXPECT_EQ(hook.value["event"]["properties"]["form"], "quote");
}

TEST(EngineWaitTest, WaitDurationPausesMidStep) {
  Harness h(Journey(R"(send email "one"  wait 2d  send email "two")"), Profile("c"));
  EXPECT_EQ(Trace(h.Event("signup", kT0)), (V{"entered", "step:a", "sent:email"}));
  EXPECT_EQ(h.active()->status, InstanceStatus::kWaiting);
  EXPECT_EQ(h.active()->next_action, 2);
  EXPECT_TRUE(h.Timer(kT0 + std::chrono::hours{47}).empty());
  EXPECT_EQ(Trace(h.Timer(kT0 + std::chrono::days{2})), (V{"sent:email", "exited:completed"}));
}

// A timer that ends one wait and starts the next records no effect, yet the state moved: the
// outcome says so (the harness checks state_changed on every call), or a caller that skips
// unchanged states would keep the first wait and run the second one late.
TEST(EngineWaitTest, AWaitEndingInAnotherWaitChangesTheStateWithoutEffects) {
  Harness h(Journey(R"(wait 1d  wait 2d  send email "late")"), Profile("c"));
  h.Event("signup", kT0);
  Outcome o = OnTimer(h.program, h.state, kT0 + std::chrono::days{1}, h.Context());
  EXPECT_TRUE(o.effects.empty());
  EXPECT_TRUE(o.state_changed);
  EXPECT_TRUE(h.Apply(std::move(o)).empty());
  EXPECT_EQ(h.state.NextWake(), kT0 + std::chrono::days{3});
  EXPECT_EQ(Trace(h.Timer(kT0 + std::chrono::days{3})), (V{"sent:email", "exited:completed"}));
}

TEST(EngineWaitTest, AnEventThatMovesNothingLeavesTheStateUnchanged) {
  Harness h(Journey(R"(wait 1d  send email "late")"), Profile("c"));
  h.Event("signup", kT0);
  Outcome o =
      OnEvent(h.program, h.state, testing::MakeEvent("c", "page_viewed", kT0), kT0, h.Context());
  EXPECT_FALSE(o.state_changed);
  EXPECT_FALSE(o.profile_changed);
  EXPECT_TRUE(o.profile.is_null());
}

TEST(EngineWaitTest, WaitUntilWeekdayMorningInCustomerZone) {
  Harness h(Journey(R"(wait until 10:00 on mon, tue, wed, thu, fri  send sms "nudge")",
                    R"(timezone customer.timezone or "UTC")"),
            Profile("c", {{"timezone", "Europe/Prague"}}));
  // Friday 2026-11-20 17:00 Prague: Monday 10:00 CET.
  h.Event("signup", At("2026-11-20T16:00:00Z"));
  EXPECT_EQ(h.state.NextWake(), At("2026-11-23T09:00:00Z"));
  auto effects = h.RunUntil(At("2026-11-30T00:00:00Z"));
  ASSERT_EQ(Trace(effects), (V{"sent:sms", "exited:completed"}));
  EXPECT_EQ(effects[0].at, At("2026-11-23T09:00:00Z"));
}

TEST(EngineWaitTest, WaitUntilAcrossSpringForwardInNewYork) {
  Harness h(Journey(R"(wait until 02:30  send sms "nudge")", R"(timezone "America/New_York")"),
            Profile("c"));
  // 2026-03-08 00:30 EST; 02:30 does not exist that night: 03:00 EDT = 07:00Z.
  h.Event("signup", At("2026-03-08T05:30:00Z"));
  EXPECT_EQ(h.state.NextWake(), At("2026-03-08T07:00:00Z"));
}

TEST(EngineWaitTest, QuietHoursAfterWaitUntilFallBackNight) {
  Harness h(Journey(R"(wait until 02:30  send email "night")",
                    "timezone \"Europe/Prague\"\n quiet_hours 22:00 to 07:00"),
            Profile("c"));
  h.Event("signup", At("2026-10-24T20:00:00Z"));              // 22:00 CEST
  EXPECT_EQ(h.state.NextWake(), At("2026-10-25T00:30:00Z"));  // the first 02:30 (CEST)
  auto effects = h.Timer(At("2026-10-25T00:30:00Z"));
  ASSERT_EQ(Trace(effects), (V{"held:email", "exited:completed"}));
  EXPECT_EQ(effects[0].until, At("2026-10-25T06:00:00Z"));  // 07:00 CET
  // Delivered at the window's end after the clocks went back, not an hour early or late.
  EXPECT_EQ(h.state.NextWake(), At("2026-10-25T06:00:00Z"));
  EXPECT_TRUE(h.Timer(At("2026-10-25T05:00:00Z")).empty());  // 06:00 CET: still quiet
  effects = h.Timer(At("2026-10-25T06:00:00Z"));
  ASSERT_EQ(Trace(effects), (V{"sent:email"}));
  EXPECT_EQ(effects[0].at, At("2026-10-25T06:00:00Z"));
}

TEST(EngineWaitTest, HeldMessageAcrossSpringForwardInNewYork) {
  Harness h(
      Journey(R"(send sms "nudge")", "timezone \"America/New_York\"\n quiet_hours 22:00 to 02:30"),
      Profile("c"));
  // 2026-03-08 00:30 EST; 02:30 does not exist that night: the hold ends at 03:00 EDT.
  auto effects = h.Event("signup", At("2026-03-08T05:30:00Z"));
  ASSERT_EQ(Only(effects, Effect::Kind::kHeld), (V{"held:sms"}));
  EXPECT_EQ(h.state.NextWake(), At("2026-03-08T07:00:00Z"));
  effects = h.RunUntil(At("2026-03-09T00:00:00Z"));
  ASSERT_EQ(Trace(effects), (V{"sent:sms"}));
  EXPECT_EQ(effects[0].at, At("2026-03-08T07:00:00Z"));
}

}  // namespace
}  // namespace itinera::orch
