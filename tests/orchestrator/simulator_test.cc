#include "orchestrator/simulator.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "orchestrator/clock.h"
#include "tests/orchestrator/engine_harness.h"

namespace itinera::orch {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;
using testing::CompileJourney;
using V = std::vector<std::string>;

const char* kTestDrive = R"(# Test-drive lead follow-up (car dealer)
journey test_drive_followup "Test-drive lead follow-up" {
  version 2
  enter when event "form_submitted" where event.form == "test_drive"
  re_enter after 90d
  timezone customer.timezone or "Europe/Prague"
  quiet_hours 21:00 to 08:00
  frequency_cap email 3 per 7d
  exit when event "purchase"
  goal "test_drive_booked" when event "test_drive_done" within 14d

  step confirm {
    assign owner from team "prague_sales" by round_robin
    send email "test_drive_confirmation" as offer
    then wait_for_open
  }
  step wait_for_open {
    wait up to 3d for event "email_opened" where event.message == offer
    when received then hot_lead
    when timed_out then reminder
  }
  step hot_lead {
    alert owner "hot_lead_alert"
    set customer.lead_stage = "hot"
    set customer.score = customer.score + 20
    if has customer.phone and customer.consent.sms then sms_nudge else done
  }
  step sms_nudge {
    wait until 10:00 on mon, tue, wed, thu, fri
    send sms "test_drive_sms"
    then done
  }
  step reminder {
    send email "offer_reminder"
    split 50% -> done, 50% -> second_chance
  }
  step second_chance {
    wait 2d
    webhook "crm_task"
    then done
  }
  step done { exit "completed" }
}
)";

class SimulatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("itinera-sim-" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::create_directories(dir_);
    Write("test_drive_confirmation.email.mustache",
          "---\nsubject: Your test drive is booked, {{customer.first_name}}\n---\n<p>Hi</p>\n");
    Write("offer_reminder.email.mustache", "---\nsubject: Still interested?\n---\n<p>...</p>\n");
    templates_ = std::make_unique<TemplateSet>(dir_.string());
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Write(const std::string& file, const std::string& text) {
    std::ofstream(dir_ / file) << text;
  }

  Simulation Run(const std::vector<const dsl::Program*>& programs,
                 const std::vector<json>& customers, const std::vector<json>& events,
                 SimulationOptions options = {}) {
    auto result =
        Simulate(programs, customers, events, testing::TestDirectory(), *templates_, options);
    EXPECT_TRUE(result.ok()) << (result.ok() ? "" : result.error().message);
    return result.ok() ? std::move(result).value() : Simulation{};
  }

  static V Kinds(const Simulation& sim, const std::string& customer) {
    V out;
    for (const auto& r : sim.records) {
      if (r.value("customer", "") != customer) continue;
      std::string k = r["kind"];
      if (k == "step") k += ":" + r["step"].get<std::string>();
      if (k == "sent") k += ":" + r["channel"].get<std::string>();
      if (k == "exited" || k == "skipped") k += ":" + r["reason"].get<std::string>();
      out.push_back(k);
    }
    return out;
  }

  static const ordered_json* Find(const Simulation& sim, const std::string& customer,
                                  const std::string& kind, int nth = 0) {
    for (const auto& r : sim.records) {
      if (r.value("customer", "") == customer && r["kind"] == kind && nth-- == 0) return &r;
    }
    return nullptr;
  }

  fs::path dir_;
  std::unique_ptr<TemplateSet> templates_;
};

json Customer(const std::string& id, json extra = json::object()) {
  json c = {{"id", id},
            {"email", id + "@example.com"},
            {"phone", "+420600000001"},
            {"timezone", "Europe/Prague"},
            {"consent", {{"email", true}, {"sms", true}}},
            {"attributes", {{"first_name", "Ann"}}}};
  c.merge_patch(extra);
  return c;
}

json Ev(const std::string& customer, const std::string& type, const std::string& at,
        json properties = json::object()) {
  return {{"customer_id", customer}, {"type", type}, {"timestamp", at}, {"properties", properties}};
}

TEST_F(SimulatorTest, TestDriveJourneyEndToEnd) {
  dsl::Program p = CompileJourney(kTestDrive);
  Simulation sim =
      Run({&p}, {Customer("c-1")},
          {Ev("c-1", "form_submitted", "2026-11-22T10:00:00Z", {{"form", "test_drive"}}),
           Ev("c-1", "email_opened", "2026-11-22T11:00:00Z", {{"handle", "offer"}}),
           Ev("c-1", "test_drive_done", "2026-11-24T15:00:00Z")});
  EXPECT_EQ(Kinds(sim, "c-1"),
            (V{"entered", "step:confirm", "assigned", "sent:email", "step:wait_for_open",
               "step:hot_lead", "alert", "set", "set", "step:sms_nudge", "sent:sms", "step:done",
               "exited:completed", "goal"}));
  const ordered_json* entered = Find(sim, "c-1", "entered");
  ASSERT_NE(entered, nullptr);
  EXPECT_EQ(entered->dump(),
            R"({"at":"2026-11-22T10:00:00Z","customer":"c-1","journey":"test_drive_followup",)"
            R"("kind":"entered","version":2,"holdout":false})");
  const ordered_json* email = Find(sim, "c-1", "sent");
  ASSERT_NE(email, nullptr);
  EXPECT_EQ(email->dump(),
            R"({"at":"2026-11-22T10:00:00Z","customer":"c-1","journey":"test_drive_followup",)"
            R"("kind":"sent","channel":"email","template":"test_drive_confirmation",)"
            R"("to":"c-1@example.com","handle":"offer",)"
            R"("subject":"Your test drive is booked, Ann","message":")" +
                MessageId("test_drive_followup", 2, "c-1", 1, "confirm", 1) + R"("})");
  // Sunday noon in Prague: the SMS waits for Monday 10:00 CET, and carries no subject.
  const ordered_json* sms = Find(sim, "c-1", "sent", 1);
  ASSERT_NE(sms, nullptr);
  EXPECT_EQ((*sms)["at"], "2026-11-23T09:00:00Z");
  EXPECT_FALSE(sms->contains("subject"));
  EXPECT_EQ((*sms)["handle"], nullptr);
  EXPECT_EQ((*Find(sim, "c-1", "assigned"))["rep"], "rep_anna");
  EXPECT_EQ((*Find(sim, "c-1", "alert"))["rep"], "rep_anna");
  EXPECT_EQ((*Find(sim, "c-1", "set", 1))["value"], 20);

  const ordered_json& summary = sim.records.back();
  EXPECT_EQ(summary.dump(),
            R"({"kind":"summary","steps":{"confirm":1,"wait_for_open":1,"hot_lead":1,)"
            R"("sms_nudge":1,"reminder":0,"second_chance":0,"done":1},)"
            R"("sent":{"email":1,"sms":1},"goals":{"test_drive_booked":1},)"
            R"("entered":1,"holdout":0,"exited":1,"skipped":0,"alerts":1,"webhooks":0})");
}

TEST_F(SimulatorTest, TimedOutCustomersSplitAndRunToTheEnd) {
  dsl::Program p = CompileJourney(kTestDrive);
  std::vector<json> customers, events;
  for (int i = 0; i < 40; ++i) {
    std::string id = "c-" + std::to_string(i);
    customers.push_back(Customer(id));
    events.push_back(Ev(id, "form_submitted", "2026-11-22T10:00:00Z", {{"form", "test_drive"}}));
  }
  Simulation sim = Run({&p}, customers, events);
  const ordered_json& summary = sim.records.back();
  EXPECT_EQ(summary["steps"]["reminder"], 40);
  int split = summary["steps"]["second_chance"].get<int>();
  EXPECT_GT(split, 5);
  EXPECT_LT(split, 35);
  EXPECT_EQ(summary["steps"]["done"], 40);
  EXPECT_EQ(summary["webhooks"], split);
  EXPECT_EQ(summary["exited"], 40);
  // Records are in time order.
  for (size_t i = 1; i + 1 < sim.records.size(); ++i) {
    EXPECT_LE(sim.records[i - 1]["at"].get<std::string>(), sim.records[i]["at"].get<std::string>());
  }
}

TEST_F(SimulatorTest, IdenticalInputGivesIdenticalRecords) {
  dsl::Program p = CompileJourney(kTestDrive);
  std::vector<json> customers, events;
  for (int i = 0; i < 25; ++i) {
    std::string id = "c-" + std::to_string(i);
    customers.push_back(Customer(id));
    events.push_back(Ev(id, "form_submitted", "2026-11-22T1" + std::to_string(i % 10) + ":00:00Z",
                        {{"form", "test_drive"}}));
    if (i % 3 == 0) {
      events.push_back(Ev(id, "email_opened", "2026-11-23T08:00:00Z", {{"handle", "offer"}}));
    }
    if (i % 5 == 0) events.push_back(Ev(id, "purchase", "2026-11-24T08:00:00Z"));
  }
  auto dump = [](const Simulation& s) {
    std::string out;
    for (const auto& r : s.records) out += r.dump() + "\n";
    return out;
  };
  std::string first = dump(Run({&p}, customers, events));
  std::string second = dump(Run({&p}, customers, events));
  EXPECT_EQ(first, second);
  EXPECT_NE(first.find("event:purchase"), std::string::npos);
}

TEST_F(SimulatorTest, QuietHoursHoldRecordsUntil) {
  dsl::Program p = CompileJourney(kTestDrive);
  // 22:30 in Prague: the confirmation is held until 08:00 CET.
  Simulation sim =
      Run({&p}, {Customer("c-1")},
          {Ev("c-1", "form_submitted", "2026-11-22T21:30:00Z", {{"form", "test_drive"}})},
          {.until = std::nullopt, .until_after_start = Seconds{3600 * 12}});
  const ordered_json* held = Find(sim, "c-1", "held");
  ASSERT_NE(held, nullptr);
  EXPECT_EQ(held->dump(),
            R"({"at":"2026-11-22T21:30:00Z","customer":"c-1","journey":"test_drive_followup",)"
            R"("kind":"held","channel":"email","template":"test_drive_confirmation",)"
            R"("until":"2026-11-23T07:00:00Z","message":")" +
                MessageId("test_drive_followup", 2, "c-1", 1, "confirm", 1) + R"("})");
  // The customer moves on at once; the email goes out, with its subject, when the hold ends.
  EXPECT_EQ((*Find(sim, "c-1", "step", 1))["at"], "2026-11-22T21:30:00Z");
  const ordered_json* sent = Find(sim, "c-1", "sent");
  ASSERT_NE(sent, nullptr);
  EXPECT_EQ((*sent)["at"], "2026-11-23T07:00:00Z");
  EXPECT_EQ((*sent)["subject"], "Your test drive is booked, Ann");
  EXPECT_EQ((*sent)["handle"], "offer");
  EXPECT_EQ((*sent)["message"], (*held)["message"]);
}

TEST_F(SimulatorTest, ExitEventCancelsAHeldMessage) {
  dsl::Program p = CompileJourney(kTestDrive);
  Simulation sim =
      Run({&p}, {Customer("c-1")},
          {Ev("c-1", "form_submitted", "2026-11-22T21:30:00Z", {{"form", "test_drive"}}),
           Ev("c-1", "purchase", "2026-11-22T23:00:00Z")});
  EXPECT_EQ(Kinds(sim, "c-1"),
            (V{"entered", "step:confirm", "assigned", "held", "step:wait_for_open",
               "exited:event:purchase", "skipped:exited"}));
  EXPECT_EQ((*Find(sim, "c-1", "skipped"))["reason"], "exited");
  EXPECT_EQ(sim.records.back()["sent"]["email"], 0);
}

TEST_F(SimulatorTest, RepeatedEventIdIsAcceptedWithoutEffect) {
  dsl::Program p = CompileJourney(R"(journey j {
    enter when event "signup"
    re_enter always
    step a { set customer.visits = customer.visits + 1  exit }
  })");
  json first = Ev("c-1", "signup", "2026-11-22T10:00:00Z");
  first["id"] = "evt-1";
  json again = Ev("c-1", "signup", "2026-11-22T11:00:00Z");
  again["id"] = "evt-1";
  json other = Ev("c-1", "signup", "2026-11-22T12:00:00Z");
  other["id"] = "evt-2";
  Simulation sim = Run({&p}, {Customer("c-1")}, {first, again, other});
  EXPECT_EQ(sim.records.back()["entered"], 2);
  EXPECT_EQ((*Find(sim, "c-1", "entered", 1))["at"], "2026-11-22T12:00:00Z");
}

TEST_F(SimulatorTest, HandleNameAsMessageResolvesToLatestMessage) {
  dsl::Program p = CompileJourney(kTestDrive);
  Simulation sim =
      Run({&p}, {Customer("c-1")},
          {Ev("c-1", "form_submitted", "2026-11-22T21:30:00Z", {{"form", "test_drive"}}),
           Ev("c-1", "email_opened", "2026-11-23T07:30:00Z", {{"message", "offer"}})});
  const ordered_json* hot = Find(sim, "c-1", "step", 2);
  ASSERT_NE(hot, nullptr);
  EXPECT_EQ((*hot)["step"], "hot_lead");
  EXPECT_EQ((*hot)["at"], "2026-11-23T07:30:00Z");
  // A top-level "message" is read too; a real message id is kept as it is.
  const std::string id = MessageId("test_drive_followup", 2, "c-2", 1, "confirm", 1);
  json opened = Ev("c-2", "email_opened", "2026-11-22T11:00:00Z");
  opened["message"] = id;
  sim =
      Run({&p}, {Customer("c-2")},
          {Ev("c-2", "form_submitted", "2026-11-22T10:00:00Z", {{"form", "test_drive"}}), opened});
  EXPECT_EQ((*Find(sim, "c-2", "step", 2))["step"], "hot_lead");
}

TEST_F(SimulatorTest, UntilStopsTheClock) {
  dsl::Program p = CompileJourney(kTestDrive);
  std::vector<json> events = {
      Ev("c-1", "form_submitted", "2026-11-22T10:00:00Z", {{"form", "test_drive"}}),
      Ev("c-1", "test_drive_done", "2026-11-30T10:00:00Z")};
  Simulation sim = Run({&p}, {Customer("c-1")}, events, {.until_after_start = Seconds{86400}});
  EXPECT_EQ(Kinds(sim, "c-1"),
            (V{"entered", "step:confirm", "assigned", "sent:email", "step:wait_for_open"}));
  Simulation absolute =
      Run({&p}, {Customer("c-1")}, events, {.until = testing::At("2026-11-25T10:00:00Z")});
  V kinds = Kinds(absolute, "c-1");
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "step:reminder"), kinds.end());
  EXPECT_EQ(absolute.records.back()["steps"]["reminder"], 1);
  EXPECT_EQ(absolute.records.back()["goals"]["test_drive_booked"], 0);
}

TEST_F(SimulatorTest, TimerDueAtTheSameSecondAsAnEventRunsFirst) {
  dsl::Program p = CompileJourney(kTestDrive);
  // The wait up to 3d ends at 2026-11-25T10:00:00Z; an open stamped exactly then is too late.
  Simulation sim =
      Run({&p}, {Customer("c-1")},
          {Ev("c-1", "form_submitted", "2026-11-22T10:00:00Z", {{"form", "test_drive"}}),
           Ev("c-1", "email_opened", "2026-11-25T10:00:00Z", {{"handle", "offer"}})});
  V kinds = Kinds(sim, "c-1");
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "step:reminder"), kinds.end());
  EXPECT_EQ(std::find(kinds.begin(), kinds.end(), "step:hot_lead"), kinds.end());
}

TEST_F(SimulatorTest, ExitEventInterruptsAWait) {
  dsl::Program p = CompileJourney(kTestDrive);
  Simulation sim =
      Run({&p}, {Customer("c-1")},
          {Ev("c-1", "form_submitted", "2026-11-22T10:00:00Z", {{"form", "test_drive"}}),
           Ev("c-1", "purchase", "2026-11-23T10:00:00Z")});
  EXPECT_EQ(Kinds(sim, "c-1").back(), "exited:event:purchase");
  EXPECT_EQ((*Find(sim, "c-1", "exited"))["at"], "2026-11-23T10:00:00Z");
}

TEST_F(SimulatorTest, FrequencyCapCountsAcrossTwoJourneys) {
  dsl::Program news = CompileJourney(R"(journey news {
    enter when event "signup"
    step a { send email "newsletter" exit }
  })");
  dsl::Program promo = CompileJourney(R"(journey promo {
    enter when event "signup"
    frequency_cap email 1 per 1d
    step a { send email "promo" send sms "promo_sms" exit }
  })");
  Simulation sim =
      Run({&news, &promo}, {Customer("c-1")}, {Ev("c-1", "signup", "2026-11-22T10:00:00Z")});
  const ordered_json* skipped = Find(sim, "c-1", "skipped");
  ASSERT_NE(skipped, nullptr);
  EXPECT_EQ(skipped->dump(),
            R"({"at":"2026-11-22T10:00:00Z","customer":"c-1","journey":"promo","kind":"skipped",)"
            R"("channel":"email","template":"promo","reason":"frequency_cap"})");
  const ordered_json& summary = sim.records.back();
  EXPECT_EQ(summary["steps"].dump(), R"({"news.a":1,"promo.a":1})");
  EXPECT_EQ(summary["sent"].dump(), R"({"email":1,"sms":1})");
  EXPECT_EQ((*Find(sim, "c-1", "sent"))["subject"], nullptr);  // no template file: null subject
}

TEST_F(SimulatorTest, FrequencyCapCountsAnotherJourneysHeldMessage) {
  dsl::Program news = CompileJourney(R"(journey news {
    enter when event "signup"
    quiet_hours 21:00 to 08:00
    step a { send email "newsletter" exit }
  })");
  dsl::Program promo = CompileJourney(R"(journey promo {
    enter when event "signup"
    frequency_cap email 1 per 1d
    step a { send email "promo" exit }
  })");
  // 22:30 UTC (the default zone): news holds its email; promo may not squeeze another one in.
  Simulation sim =
      Run({&news, &promo}, {Customer("c-1")}, {Ev("c-1", "signup", "2026-11-22T22:30:00Z")});
  EXPECT_EQ((*Find(sim, "c-1", "skipped"))["reason"], "frequency_cap");
  EXPECT_EQ((*Find(sim, "c-1", "sent"))["at"], "2026-11-23T08:00:00Z");
  EXPECT_EQ(sim.records.back()["sent"]["email"], 1);
}

TEST_F(SimulatorTest, ProfileRuleEntersAtStartAndAfterSet) {
  dsl::Program vip = CompileJourney(R"(journey vip {
    enter when customer customer.tier == "gold"
    step a { alert rep "rep_dana" "vip_alert" exit }
  })");
  dsl::Program upgrade = CompileJourney(R"(journey upgrade {
    enter when event "purchase"
    step a { set customer.tier = "gold" exit }
  })");
  Simulation sim = Run(
      {&vip, &upgrade}, {Customer("gold-1", {{"attributes", {{"tier", "gold"}}}}), Customer("c-2")},
      {Ev("c-2", "purchase", "2026-11-22T12:00:00Z"), Ev("x", "noop", "2026-11-22T10:00:00Z")});
  EXPECT_EQ(Kinds(sim, "gold-1"), (V{"entered", "step:a", "alert", "exited:completed"}));
  EXPECT_EQ((*Find(sim, "gold-1", "entered"))["at"], "2026-11-22T10:00:00Z");
  EXPECT_EQ(Kinds(sim, "c-2"), (V{"entered", "step:a", "set", "exited:completed", "entered",
                                  "step:a", "alert", "exited:completed"}));
}

TEST_F(SimulatorTest, HandleInEventResolvesToLatestMessage) {
  dsl::Program p = CompileJourney(R"(journey j {
    enter when event "signup"
    step a { send email "first" as offer  wait 1h  then b }
    step b { send email "second" as offer then c }
    step c {
      wait up to 1d for event "link_clicked" where event.message == offer
      when received then yes
      when timed_out then no
    }
    step yes { exit "clicked" }
    step no { exit "ignored" }
  })");
  Simulation sim = Run({&p}, {Customer("c-1")},
                       {Ev("c-1", "signup", "2026-11-22T10:00:00Z"),
                        {{"customer_id", "c-1"},
                         {"type", "link_clicked"},
                         {"timestamp", "2026-11-22T12:00:00Z"},
                         {"handle", "offer"},
                         {"journey", "j"}}});
  EXPECT_EQ(Kinds(sim, "c-1").back(), "exited:clicked");
}

TEST_F(SimulatorTest, GoalCountsInSummaryWithZeros) {
  dsl::Program p = CompileJourney(R"(journey j {
    enter when event "signup"
    goal "bought" when event "purchase" within 7d
    goal "called" when event "call"
    step a { wait 1d then b }
    step b { exit }
  })");
  Simulation sim =
      Run({&p}, {Customer("c-1"), Customer("c-2")},
          {Ev("c-1", "signup", "2026-11-22T10:00:00Z"), Ev("c-2", "signup", "2026-11-22T10:00:00Z"),
           Ev("c-1", "purchase", "2026-11-25T10:00:00Z"),
           Ev("c-2", "purchase", "2026-12-25T10:00:00Z")});
  EXPECT_EQ(sim.records.back()["goals"].dump(), R"({"bought":1,"called":0})");
}

TEST_F(SimulatorTest, RejectsBadInput) {
  dsl::Program p = CompileJourney(kTestDrive);
  Directory dir;
  EXPECT_EQ(Simulate({&p}, {}, {}, dir, *templates_, {}).error().code, "no_events");
  EXPECT_FALSE(
      Simulate({&p}, {}, {json{{"customer_id", "c"}, {"type", "x"}}}, dir, *templates_, {}).ok());
  EXPECT_FALSE(Simulate({&p}, {}, {Ev("c", "x", "yesterday")}, dir, *templates_, {}).ok());
  EXPECT_FALSE(Simulate({&p}, {json{{"email", "x@y"}}}, {Ev("c", "x", "2026-11-22T10:00:00Z")}, dir,
                        *templates_, {})
                   .ok());
}

TEST_F(SimulatorTest, DefaultRunIsCappedAtOneYear) {
  dsl::Program p = CompileJourney(R"(journey j {
    enter when event "signup"
    step a { wait 400d then b }
    step b { exit }
  })");
  Simulation sim = Run({&p}, {Customer("c-1")}, {Ev("c-1", "signup", "2026-11-22T10:00:00Z")});
  EXPECT_EQ(Kinds(sim, "c-1"), (V{"entered", "step:a"}));
}

TEST(ManualClockTest, MovesOnlyWhenTold) {
  ManualClock clock(testing::At("2026-11-22T10:00:00Z"));
  EXPECT_EQ(clock.Now(), testing::At("2026-11-22T10:00:00Z"));
  clock.Advance(std::chrono::days{3});
  EXPECT_EQ(clock.Now(), testing::At("2026-11-25T10:00:00Z"));
  clock.Set(testing::At("2027-01-01T00:00:00Z"));
  const Clock& as_clock = clock;
  EXPECT_EQ(as_clock.Now(), testing::At("2027-01-01T00:00:00Z"));
  SystemClock system;
  EXPECT_GT(system.Now(), testing::At("2020-01-01T00:00:00Z"));
}

}  // namespace
}  // namespace itinera::orch
