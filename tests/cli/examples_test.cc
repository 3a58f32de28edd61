// The bundled examples, end to end: `itinera check`, `graph` and `simulate` on journeys/*.journey
// with the inputs in examples/, run from the repository root as a user would. Every customer row
// of the tables in examples/README.md and every summary line under them is asserted here.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/cli/run.h"

namespace itinera::testing {
namespace {

using nlohmann::json;
using Strings = std::vector<std::string>;

const Strings kJourneys = {"test_drive_followup", "welcome_series", "abandoned_cart", "winback",
                           "b2b_lead_nurture"};

// The README's shorthand "11-02 09:15" (UTC, 2026) as the simulator prints it.
std::string At(const std::string& month_day_time) {
  return "2026-" + month_day_time.substr(0, 5) + "T" + month_day_time.substr(6) + ":00Z";
}

// "2026-11-02T09:15:00Z" back to "11-02 09:15".
std::string Short(const std::string& iso) {
  return iso.size() >= 16 ? iso.substr(5, 5) + " " + iso.substr(11, 5) : iso;
}

struct Simulation {
  std::vector<json> records;  // every record but the summary, in printed order
  json summary;
  std::string error;  // set when the run or its output was not as the contract says
};

// Runs the example once per test binary run and keeps the result.
const Simulation& Simulate(const std::string& journey) {
  static std::map<std::string, Simulation> cache;
  if (auto it = cache.find(journey); it != cache.end()) return it->second;
  Simulation& sim = cache[journey];
  RunResult r =
      RunItinera("simulate journeys/" + journey + ".journey --customers examples/" + journey +
                 ".customers.jsonl --events examples/" + journey + ".events.jsonl --format json");
  if (r.status != 0) {
    sim.error = "simulate exited " + std::to_string(r.status) + ": " + r.err;
    return sim;
  }
  std::istringstream lines(r.out);
  std::string line;
  while (std::getline(lines, line)) {
    json record = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (record.is_discarded()) {
      sim.error = "not JSON: " + line;
      return sim;
    }
    if (!sim.summary.is_null()) {
      sim.error = "a record after the summary: " + line;
      return sim;
    }
    if (record.value("kind", "") == "summary") {
      sim.summary = record;
    } else {
      sim.records.push_back(record);
    }
  }
  if (sim.summary.is_null()) sim.error = "no summary record";
  return sim;
}

const std::vector<json>& Records(const std::string& journey) {
  const Simulation& sim = Simulate(journey);
  EXPECT_EQ(sim.error, "") << journey;
  return sim.records;
}

const json& Summary(const std::string& journey) {
  const Simulation& sim = Simulate(journey);
  EXPECT_EQ(sim.error, "") << journey;
  return sim.summary;
}

bool Matches(const json& record, const std::string& customer, const std::string& kind,
             const json& fields) {
  if (record.value("customer", "") != customer || record.value("kind", "") != kind) return false;
  for (const auto& [key, value] : fields.items())
    if (!record.contains(key) || record[key] != value) return false;
  return true;
}

int Count(const std::vector<json>& records, const std::string& customer, const std::string& kind,
          const json& fields = json::object()) {
  int n = 0;
  for (const json& record : records) n += Matches(record, customer, kind, fields);
  return n;
}

std::string Timeline(const std::vector<json>& records, const std::string& customer) {
  std::string out;
  for (const json& record : records)
    if (record.value("customer", "") == customer) out += "  " + record.dump() + "\n";
  return out.empty() ? "  (none)\n" : out;
}

// At least one `kind` record for `customer` that has every one of `fields`.
::testing::AssertionResult Has(const std::vector<json>& records, const std::string& customer,
                               const std::string& kind, const json& fields = json::object()) {
  if (Count(records, customer, kind, fields) > 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "no \"" << kind << "\" record " << fields.dump()
                                       << " for " << customer << "; its records:\n"
                                       << Timeline(records, customer);
}

// The values of `keys` of each `kind` record of `customer`, space-joined, in order.
Strings Column(const std::vector<json>& records, const std::string& customer,
               const std::string& kind, const Strings& keys) {
  Strings out;
  for (const json& record : records) {
    if (!Matches(record, customer, kind, json::object())) continue;
    std::string cell;
    for (const std::string& key : keys) {
      const json& value = record.contains(key) ? record[key] : json();
      if (!cell.empty()) cell += " ";
      cell += value.is_string() ? value.get<std::string>() : value.dump();
    }
    out.push_back(cell);
  }
  return out;
}

Strings Entries(const std::vector<json>& records, const std::string& customer) {
  Strings out;
  for (const std::string& holdout : Column(records, customer, "entered", {"holdout"}))
    out.push_back(holdout == "true" ? "holdout" : "treatment");
  return out;
}

Strings Held(const std::vector<json>& records, const std::string& customer) {
  Strings out;
  for (const json& record : records)
    if (Matches(record, customer, "held", json::object()))
      out.push_back(record.value("channel", "") + " " + record.value("template", "") + " until " +
                    Short(record.value("until", "")));
  return out;
}

// The values a customer's `attribute` was set to, in order.
Strings SetValues(const std::vector<json>& records, const std::string& customer,
                  const std::string& attribute) {
  Strings out;
  for (const json& record : records)
    if (Matches(record, customer, "set", {{"attribute", attribute}}))
      out.push_back(record["value"].is_string() ? record["value"].get<std::string>()
                                                : record["value"].dump());
  return out;
}

// One row of a README table. Every list is exact: an empty list means "none".
struct Outcome {
  Strings entered = {"treatment"};  // one per entry: "treatment" or "holdout"
  Strings path;                     // steps entered, in order
  Strings sent;                     // "channel template", in order
  Strings skipped;                  // "channel template reason"
  Strings held;                     // "channel template until MM-DD HH:MM"
  Strings assigned;                 // reps
  Strings alerts;                   // "rep template"
  Strings webhooks;                 // names
  Strings goals;                    // goal names, in order
  Strings exits;                    // exit reasons, one per entry
};

void ExpectOutcome(const std::vector<json>& r, const std::string& c, const Outcome& want) {
  SCOPED_TRACE("customer " + c + "; its records:\n" + Timeline(r, c));
  EXPECT_EQ(Entries(r, c), want.entered) << "entries of " << c;
  EXPECT_EQ(Column(r, c, "step", {"step"}), want.path) << "path of " << c;
  EXPECT_EQ(Column(r, c, "sent", {"channel", "template"}), want.sent) << "sent to " << c;
  EXPECT_EQ(Column(r, c, "skipped", {"channel", "template", "reason"}), want.skipped)
      << "skipped for " << c;
  EXPECT_EQ(Held(r, c), want.held) << "held for " << c;
  EXPECT_EQ(Column(r, c, "assigned", {"rep"}), want.assigned) << "assigned to " << c;
  EXPECT_EQ(Column(r, c, "alert", {"rep", "template"}), want.alerts) << "alerts about " << c;
  EXPECT_EQ(Column(r, c, "webhook", {"name"}), want.webhooks) << "webhooks for " << c;
  EXPECT_EQ(Column(r, c, "goal", {"goal"}), want.goals) << "goals of " << c;
  EXPECT_EQ(Column(r, c, "exited", {"reason"}), want.exits) << "exits of " << c;
}

void ExpectNeverEnters(const std::vector<json>& r, const std::string& c) {
  EXPECT_EQ(Timeline(r, c), "  (none)\n") << c << " should never enter";
}

// ---- the whole bundle ------------------------------------------------------------------------

TEST(ExamplesTest, CheckFindsNoErrorsInTheBundledJourneys) {
  RunResult r = RunItinera("check journeys/*.journey");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "checked 5 journeys: no errors\n");
  EXPECT_EQ(r.err, "");
  RunResult configured = RunItinera("check");  // [paths] journeys in itinera.toml
  EXPECT_EQ(configured.status, 0) << configured.err;
  EXPECT_EQ(configured.out, "checked 5 journeys: no errors\n");
}

TEST(ExamplesTest, GraphDrawsEveryStepOfEveryJourneyInDotAndMermaid) {
  for (const std::string& journey : kJourneys) {
    SCOPED_TRACE(journey);
    std::string source =
        ReadFile(std::filesystem::path(ITINERA_SOURCE_DIR) / "journeys" / (journey + ".journey"));
    Strings steps;
    std::regex step_re(R"(\n\s*step (\w+) \{)");
    for (std::sregex_iterator it(source.begin(), source.end(), step_re), end; it != end; ++it)
      steps.push_back((*it)[1]);
    ASSERT_GE(steps.size(), 5u);

    RunResult dot = RunItinera("graph journeys/" + journey + ".journey");
    ASSERT_EQ(dot.status, 0) << dot.err;
    EXPECT_EQ(dot.out.rfind("digraph \"" + journey + "\" {\n", 0), 0u) << dot.out;
    EXPECT_EQ(dot.out.substr(dot.out.size() - 2), "}\n");
    RunResult mermaid = RunItinera("graph journeys/" + journey + ".journey --format mermaid");
    ASSERT_EQ(mermaid.status, 0) << mermaid.err;
    EXPECT_EQ(mermaid.out.rfind("flowchart", 0), 0u) << mermaid.out;
    for (const std::string& step : steps) {
      // Every step is a node and has an edge into it.
      EXPECT_NE(dot.out.find("\"step_" + step + "\" [label=\"" + step), std::string::npos) << step;
      EXPECT_NE(dot.out.find("-> \"step_" + step + "\""), std::string::npos) << step;
      EXPECT_NE(mermaid.out.find("\n  step_" + step + "[\"" + step), std::string::npos) << step;
      EXPECT_NE(mermaid.out.find(" step_" + step + "\n"), std::string::npos) << step;
    }
  }
}

TEST(ExamplesTest, EverySimulationPrintsOrderedRecordsOfItsJourneyThenASummary) {
  for (const std::string& journey : kJourneys) {
    SCOPED_TRACE(journey);
    const std::vector<json>& records = Records(journey);
    ASSERT_FALSE(records.empty());
    std::string previous;
    for (const json& record : records) {
      EXPECT_EQ(record.value("journey", ""), journey) << record.dump();
      EXPECT_GE(record.value("at", ""), previous) << record.dump();
      previous = record.value("at", "");
    }
    const json& summary = Summary(journey);
    EXPECT_EQ(summary["kind"], "summary");
    // Every entry ends in exactly one exit.
    EXPECT_EQ(summary["exited"], summary["entered"]);
  }
}

// ---- test_drive_followup ---------------------------------------------------------------------

TEST(ExamplesTest, TestDriveOpenerAlertsTheRepAndGetsTheSmsNextWeekdayMorning) {
  const auto& r = Records("test_drive_followup");
  ExpectOutcome(
      r, "c-1",
      {.path = {"confirm", "offer", "wait_for_open", "hot_lead", "sms_nudge", "done"},
       .sent = {"email test_drive_confirmation", "email test_drive_offer", "sms test_drive_sms"},
       .assigned = {"rep_anna"},
       .alerts = {"rep_anna hot_lead_alert"},
       .goals = {"test_drive_booked"},
       .exits = {"completed"}});
  EXPECT_TRUE(Has(r, "c-1", "entered", {{"version", 2}, {"holdout", false}}));
  EXPECT_TRUE(Has(r, "c-1", "sent",
                  {{"channel", "email"},
                   {"template", "test_drive_offer"},
                   {"handle", "offer"},
                   {"at", At("11-02 09:15")}}));
  EXPECT_TRUE(
      Has(r, "c-1", "alert",
          {{"rep", "rep_anna"}, {"template", "hot_lead_alert"}, {"at", At("11-02 11:40")}}));
  EXPECT_TRUE(Has(r, "c-1", "sent",
                  {{"channel", "sms"}, {"template", "test_drive_sms"}, {"at", At("11-03 09:00")}}));
  EXPECT_TRUE(Has(r, "c-1", "exited", {{"reason", "completed"}, {"at", At("11-03 09:00")}}));
  // The goal counts after she left: within 14 days of entry.
  EXPECT_TRUE(Has(r, "c-1", "goal", {{"goal", "test_drive_booked"}, {"at", At("11-07 10:30")}}));
  EXPECT_EQ(SetValues(r, "c-1", "lead_stage"), (Strings{"new", "hot"}));
}

TEST(ExamplesTest, TestDriveSilentLeadGetsAReminderAndACrmTask) {
  const auto& r = Records("test_drive_followup");
  ExpectOutcome(
      r, "c-2",
      {.path = {"confirm", "offer", "wait_for_open", "reminder", "second_chance", "done"},
       .sent = {"email test_drive_confirmation", "email test_drive_offer", "email offer_reminder"},
       .assigned = {"rep_tomas"},
       .webhooks = {"crm_task"},
       .exits = {"completed"}});
  EXPECT_TRUE(Has(r, "c-2", "sent", {{"template", "test_drive_offer"}, {"at", At("11-02 10:05")}}));
  EXPECT_TRUE(Has(r, "c-2", "step", {{"step", "reminder"}, {"at", At("11-05 10:05")}}));
  EXPECT_TRUE(Has(r, "c-2", "sent", {{"template", "offer_reminder"}, {"at", At("11-05 10:05")}}));
  EXPECT_TRUE(Has(r, "c-2", "webhook", {{"name", "crm_task"}, {"at", At("11-07 10:05")}}));
  EXPECT_TRUE(Has(r, "c-2", "exited", {{"reason", "completed"}, {"at", At("11-07 10:05")}}));
  EXPECT_EQ(SetValues(r, "c-2", "lead_stage"), (Strings{"new", "cold"}));
}

TEST(ExamplesTest, TestDriveOpenerWithoutAPhoneGetsNoSms) {
  const auto& r = Records("test_drive_followup");
  ExpectOutcome(r, "c-3",
                {.path = {"confirm", "offer", "wait_for_open", "hot_lead", "done"},
                 .sent = {"email test_drive_confirmation", "email test_drive_offer"},
                 .assigned = {"rep_klara"},
                 .alerts = {"rep_klara hot_lead_alert"},
                 .exits = {"completed"}});
  EXPECT_TRUE(Has(r, "c-3", "sent", {{"template", "test_drive_offer"}, {"at", At("11-02 12:30")}}));
  EXPECT_TRUE(Has(r, "c-3", "exited", {{"reason", "completed"}, {"at", At("11-02 16:20")}}));
}

TEST(ExamplesTest, TestDriveLeadWithoutEmailConsentIsSkippedButStillRouted) {
  const auto& r = Records("test_drive_followup");
  ExpectOutcome(
      r, "c-4",
      {.path = {"confirm", "offer", "wait_for_open", "reminder", "second_chance", "done"},
       .skipped = {"email test_drive_confirmation no_consent", "email test_drive_offer no_consent",
                   "email offer_reminder no_consent"},
       .assigned = {"rep_anna"},
       .webhooks = {"crm_task"},
       .exits = {"completed"}});
  EXPECT_TRUE(Has(r, "c-4", "webhook", {{"name", "crm_task"}, {"at", At("11-07 14:00")}}));
  EXPECT_TRUE(Has(r, "c-4", "exited", {{"reason", "completed"}, {"at", At("11-07 14:00")}}));
}

TEST(ExamplesTest, TestDrivePurchaseEndsTheWaitForTheSms) {
  const auto& r = Records("test_drive_followup");
  ExpectOutcome(r, "c-5",
                {.path = {"confirm", "offer", "wait_for_open", "hot_lead", "sms_nudge"},
                 .sent = {"email test_drive_confirmation", "email test_drive_offer"},
                 .assigned = {"rep_klara"},
                 .alerts = {"rep_klara hot_lead_alert"},
                 .exits = {"event:purchase"}});
  EXPECT_TRUE(Has(r, "c-5", "sent", {{"template", "test_drive_offer"}, {"at", At("11-06 17:00")}}));
  EXPECT_TRUE(Has(r, "c-5", "alert", {{"rep", "rep_klara"}, {"at", At("11-06 19:30")}}));
  EXPECT_TRUE(Has(r, "c-5", "exited", {{"reason", "event:purchase"}, {"at", At("11-07 09:00")}}));
}

TEST(ExamplesTest, TestDriveNightFormInNewYorkIsHeldUntilEightLocal) {
  const auto& r = Records("test_drive_followup");
  // Both emails are held; she moves on to wait for the open at once.
  ExpectOutcome(
      r, "c-6",
      {.path = {"confirm", "offer", "wait_for_open", "hot_lead", "sms_nudge", "done"},
       .sent = {"email test_drive_confirmation", "email test_drive_offer", "sms test_drive_sms"},
       .held = {"email test_drive_confirmation until 11-03 13:00",
                "email test_drive_offer until 11-03 13:00"},
       .assigned = {"rep_tomas"},
       .alerts = {"rep_tomas hot_lead_alert"},
       .exits = {"completed"}});
  EXPECT_TRUE(
      Has(r, "c-6", "sent", {{"template", "test_drive_confirmation"}, {"at", At("11-03 13:00")}}));
  EXPECT_TRUE(Has(r, "c-6", "sent", {{"template", "test_drive_offer"}, {"at", At("11-03 13:00")}}));
  EXPECT_TRUE(Has(r, "c-6", "step", {{"step", "wait_for_open"}, {"at", At("11-03 08:30")}}));
  EXPECT_TRUE(Has(r, "c-6", "alert", {{"rep", "rep_tomas"}, {"at", At("11-03 14:10")}}));
  EXPECT_TRUE(Has(r, "c-6", "sent",
                  {{"channel", "sms"}, {"template", "test_drive_sms"}, {"at", At("11-03 15:00")}}));
  EXPECT_TRUE(Has(r, "c-6", "exited", {{"reason", "completed"}, {"at", At("11-03 15:00")}}));
}

TEST(ExamplesTest, TestDriveMissingSmsConsentMeansNoSms) {
  const auto& r = Records("test_drive_followup");
  ExpectOutcome(r, "c-7",
                {.path = {"confirm", "offer", "wait_for_open", "hot_lead", "done"},
                 .sent = {"email test_drive_confirmation", "email test_drive_offer"},
                 .assigned = {"rep_klara"},
                 .alerts = {"rep_klara hot_lead_alert"},
                 .exits = {"completed"}});
  EXPECT_TRUE(Has(r, "c-7", "sent", {{"template", "test_drive_offer"}, {"at", At("11-03 09:00")}}));
  EXPECT_TRUE(Has(r, "c-7", "exited", {{"reason", "completed"}, {"at", At("11-04 07:45")}}));
}

TEST(ExamplesTest, TestDriveNewsletterFormDoesNotEnter) {
  ExpectNeverEnters(Records("test_drive_followup"), "c-8");
}

TEST(ExamplesTest, TestDriveOpenOfAnotherMessageDoesNotCount) {
  const auto& r = Records("test_drive_followup");
  ExpectOutcome(
      r, "c-9",
      {.path = {"confirm", "offer", "wait_for_open", "reminder", "done"},
       .sent = {"email test_drive_confirmation", "email test_drive_offer", "email offer_reminder"},
       .assigned = {"rep_tomas"},
       .goals = {"test_drive_booked"},
       .exits = {"completed"}});
  EXPECT_TRUE(Has(r, "c-9", "sent", {{"template", "test_drive_offer"}, {"at", At("11-04 08:00")}}));
  EXPECT_TRUE(Has(r, "c-9", "sent", {{"template", "offer_reminder"}, {"at", At("11-07 08:00")}}));
  EXPECT_TRUE(Has(r, "c-9", "exited", {{"reason", "completed"}, {"at", At("11-07 08:00")}}));
  EXPECT_TRUE(Has(r, "c-9", "goal", {{"goal", "test_drive_booked"}, {"at", At("11-10 14:00")}}));
}

TEST(ExamplesTest, TestDriveHoldoutIsRoutedButNotMessaged) {
  const auto& r = Records("test_drive_followup");
  ExpectOutcome(r, "c-10",
                {.entered = {"holdout"},
                 .path = {"confirm", "offer", "wait_for_open", "reminder", "done"},
                 .skipped = {"email test_drive_confirmation holdout",
                             "email test_drive_offer holdout", "email offer_reminder holdout"},
                 .assigned = {"rep_anna"},
                 .goals = {"test_drive_booked"},
                 .exits = {"completed"}});
  EXPECT_TRUE(Has(r, "c-10", "goal", {{"goal", "test_drive_booked"}, {"at", At("11-09 16:00")}}));
  EXPECT_TRUE(Has(r, "c-10", "exited", {{"reason", "completed"}, {"at", At("11-06 11:00")}}));
}

TEST(ExamplesTest, TestDriveRoutesRoundRobinInOrderOfEntry) {
  Strings order;
  for (const json& record : Records("test_drive_followup"))
    if (record["kind"] == "assigned")
      order.push_back(record.value("customer", "") + " " + record.value("rep", ""));
  EXPECT_EQ(order, (Strings{"c-1 rep_anna", "c-2 rep_tomas", "c-3 rep_klara", "c-4 rep_anna",
                            "c-6 rep_tomas", "c-7 rep_klara", "c-10 rep_anna", "c-9 rep_tomas",
                            "c-5 rep_klara"}));
}

TEST(ExamplesTest, TestDriveSummaryCounts) {
  const json& s = Summary("test_drive_followup");
  EXPECT_EQ(s["entered"], 9);
  EXPECT_EQ(s["holdout"], 1);
  EXPECT_EQ(s["sent"], json({{"email", 16}, {"sms", 2}}));
  EXPECT_EQ(s["skipped"], 6);
  EXPECT_EQ(s["alerts"], 5);
  EXPECT_EQ(s["webhooks"], 2);
  EXPECT_EQ(s["goals"], json({{"test_drive_booked", 3}}));
}

// ---- welcome_series --------------------------------------------------------------------------

TEST(ExamplesTest, WelcomeElectricFanClicksEverythingAndBuysDuringTheSeries) {
  const auto& r = Records("welcome_series");
  ExpectOutcome(r, "c-1",
                {.path = {"welcome", "guide", "ev_guide", "guide_clicks", "engaged", "app_invite",
                          "app_sms", "app_clicks", "app_clicked", "first_service", "cool_down"},
                 .sent = {"email welcome_1", "email welcome_ev_guide", "sms welcome_app_sms",
                          "email welcome_first_service"},
                 .goals = {"app_installed", "first_purchase"},
                 .exits = {"series_finished"}});
  EXPECT_TRUE(Has(r, "c-1", "sent", {{"template", "welcome_1"}, {"at", At("11-02 08:30")}}));
  // Exactly 09:30 local two days later: the wait until 09:30 does not wait a further day.
  EXPECT_TRUE(Has(r, "c-1", "sent", {{"template", "welcome_ev_guide"}, {"at", At("11-04 08:30")}}));
  EXPECT_TRUE(
      Has(r, "c-1", "sent",
          {{"channel", "sms"}, {"template", "welcome_app_sms"}, {"at", At("11-07 10:00")}}));
  EXPECT_TRUE(
      Has(r, "c-1", "sent", {{"template", "welcome_first_service"}, {"at", At("11-08 08:00")}}));
  EXPECT_TRUE(Has(r, "c-1", "goal", {{"goal", "app_installed"}, {"at", At("11-07 10:20")}}));
  EXPECT_TRUE(Has(r, "c-1", "goal", {{"goal", "first_purchase"}, {"at", At("11-09 15:00")}}));
  EXPECT_TRUE(Has(r, "c-1", "exited", {{"reason", "series_finished"}, {"at", At("11-11 08:00")}}));
  EXPECT_TRUE(Has(r, "c-1", "set", {{"attribute", "engaged"}, {"value", true}}));
}

TEST(ExamplesTest, WelcomeLateSignupIsHeldAndAPurchaseAfterLeavingCounts) {
  const auto& r = Records("welcome_series");
  ExpectOutcome(r, "c-2",
                {.path = {"welcome", "guide", "service_guide", "guide_clicks", "app_invite",
                          "app_email", "app_clicks", "first_service", "cool_down"},
                 .sent = {"email welcome_1", "email welcome_service_plan", "email welcome_app",
                          "email welcome_first_service"},
                 .held = {"email welcome_1 until 11-03 07:00"},
                 // first_purchase has no `within`: it counts after he left.
                 .goals = {"first_purchase"},
                 .exits = {"series_finished"}});
  EXPECT_TRUE(Has(r, "c-2", "step", {{"step", "guide"}, {"at", At("11-02 21:45")}}));
  EXPECT_TRUE(Has(r, "c-2", "goal", {{"goal", "first_purchase"}, {"at", At("11-28 10:00")}}));
  EXPECT_TRUE(Has(r, "c-2", "sent", {{"template", "welcome_1"}, {"at", At("11-03 07:00")}}));
  EXPECT_TRUE(
      Has(r, "c-2", "sent", {{"template", "welcome_service_plan"}, {"at", At("11-05 08:30")}}));
  EXPECT_TRUE(Has(r, "c-2", "sent", {{"template", "welcome_app"}, {"at", At("11-14 10:00")}}));
  EXPECT_TRUE(
      Has(r, "c-2", "sent", {{"template", "welcome_first_service"}, {"at", At("11-17 08:00")}}));
  EXPECT_TRUE(Has(r, "c-2", "exited", {{"reason", "series_finished"}, {"at", At("11-20 08:00")}}));
}

TEST(ExamplesTest, WelcomeLondonerWithoutPhoneGetsEverythingByEmail) {
  const auto& r = Records("welcome_series");
  ExpectOutcome(r, "c-3",
                {.path = {"welcome", "guide", "general_guide", "guide_clicks", "app_invite",
                          "app_email", "app_clicks", "first_service", "cool_down"},
                 .sent = {"email welcome_1", "email welcome_models", "email welcome_app",
                          "email welcome_first_service"},
                 .exits = {"series_finished"}});
  EXPECT_TRUE(Has(r, "c-3", "sent", {{"template", "welcome_1"}, {"at", At("11-03 18:10")}}));
  EXPECT_TRUE(Has(r, "c-3", "sent", {{"template", "welcome_models"}, {"at", At("11-06 09:30")}}));
  EXPECT_TRUE(Has(r, "c-3", "sent", {{"template", "welcome_app"}, {"at", At("11-14 11:00")}}));
  EXPECT_TRUE(
      Has(r, "c-3", "sent", {{"template", "welcome_first_service"}, {"at", At("11-17 09:00")}}));
  EXPECT_TRUE(Has(r, "c-3", "exited", {{"reason", "series_finished"}, {"at", At("11-20 09:00")}}));
}

TEST(ExamplesTest, WelcomeTokyoCustomerWithoutEmailConsentOnlyGetsTheSms) {
  const auto& r = Records("welcome_series");
  ExpectOutcome(r, "c-4",
                {.path = {"welcome", "guide", "ev_guide", "guide_clicks", "app_invite", "app_sms",
                          "app_clicks", "first_service", "cool_down"},
                 .sent = {"sms welcome_app_sms"},
                 .skipped = {"email welcome_1 no_consent", "email welcome_ev_guide no_consent",
                             "email welcome_first_service no_consent"},
                 .exits = {"series_finished"}});
  EXPECT_TRUE(
      Has(r, "c-4", "sent",
          {{"channel", "sms"}, {"template", "welcome_app_sms"}, {"at", At("11-14 02:00")}}));
  // 09:30 JST.
  EXPECT_TRUE(
      Has(r, "c-4", "skipped", {{"template", "welcome_ev_guide"}, {"at", At("11-06 00:30")}}));
  EXPECT_TRUE(Has(r, "c-4", "exited", {{"reason", "series_finished"}, {"at", At("11-20 00:00")}}));
}

TEST(ExamplesTest, WelcomeUnsubscribeEndsTheSeries) {
  const auto& r = Records("welcome_series");
  ExpectOutcome(
      r, "c-5",
      {.path = {"welcome", "guide"}, .sent = {"email welcome_1"}, .exits = {"event:unsubscribed"}});
  EXPECT_TRUE(Has(r, "c-5", "sent", {{"template", "welcome_1"}, {"at", At("11-04 07:30")}}));
  EXPECT_TRUE(
      Has(r, "c-5", "exited", {{"reason", "event:unsubscribed"}, {"at", At("11-04 19:00")}}));
}

TEST(ExamplesTest, WelcomePartnerPortalSignupDoesNotEnter) {
  ExpectNeverEnters(Records("welcome_series"), "c-6");
}

TEST(ExamplesTest, WelcomeSecondSignupDoesNotReEnter) {
  const auto& r = Records("welcome_series");
  ExpectOutcome(r, "c-7",
                {.path = {"welcome", "guide", "general_guide", "guide_clicks", "app_invite",
                          "app_sms", "app_clicks", "first_service", "cool_down"},
                 .sent = {"email welcome_1", "email welcome_models", "sms welcome_app_sms",
                          "email welcome_first_service"},
                 .goals = {"first_purchase"},
                 .exits = {"series_finished"}});
  EXPECT_TRUE(Has(r, "c-7", "sent", {{"template", "welcome_1"}, {"at", At("11-05 13:00")}}));
  EXPECT_TRUE(Has(r, "c-7", "sent", {{"template", "welcome_models"}, {"at", At("11-08 08:30")}}));
  EXPECT_TRUE(
      Has(r, "c-7", "sent",
          {{"channel", "sms"}, {"template", "welcome_app_sms"}, {"at", At("11-14 10:00")}}));
  EXPECT_TRUE(
      Has(r, "c-7", "sent", {{"template", "welcome_first_service"}, {"at", At("11-17 08:00")}}));
  EXPECT_TRUE(Has(r, "c-7", "goal", {{"goal", "first_purchase"}, {"at", At("11-10 16:45")}}));
  EXPECT_TRUE(Has(r, "c-7", "exited", {{"reason", "series_finished"}, {"at", At("11-20 08:00")}}));
}

TEST(ExamplesTest, WelcomeSummaryCounts) {
  const json& s = Summary("welcome_series");
  EXPECT_EQ(s["entered"], 6);
  EXPECT_EQ(s["holdout"], 0);
  EXPECT_EQ(s["sent"], json({{"email", 15}, {"sms", 3}}));
  EXPECT_EQ(s["skipped"], 3);
  EXPECT_EQ(s["alerts"], 0);
  EXPECT_EQ(s["webhooks"], 0);
  EXPECT_EQ(s["goals"], json({{"first_purchase", 3}, {"app_installed", 1}}));
}

// ---- abandoned_cart --------------------------------------------------------------------------

TEST(ExamplesTest, CartClickAndPurchaseEndsTheJourneyAsRecovered) {
  const auto& r = Records("abandoned_cart");
  ExpectOutcome(r, "c-1",
                {.path = {"cool_off", "cart_email", "cart_clicks", "browsing"},
                 .sent = {"email cart_reminder"},
                 .goals = {"recovered"},
                 .exits = {"event:purchase"}});
  EXPECT_TRUE(Has(r, "c-1", "entered", {{"version", 3}, {"holdout", false}}));
  EXPECT_TRUE(Has(r, "c-1", "sent", {{"template", "cart_reminder"}, {"at", At("11-02 11:00")}}));
  EXPECT_TRUE(Has(r, "c-1", "step", {{"step", "browsing"}, {"at", At("11-02 11:20")}}));
  EXPECT_TRUE(Has(r, "c-1", "goal", {{"goal", "recovered"}, {"at", At("11-02 12:05")}}));
  EXPECT_TRUE(Has(r, "c-1", "exited", {{"reason", "event:purchase"}, {"at", At("11-02 12:05")}}));
}

TEST(ExamplesTest, CartHighValueWithSmsConsentGetsTheSmsAndLastCall) {
  const auto& r = Records("abandoned_cart");
  ExpectOutcome(r, "c-2",
                {.path = {"cool_off", "cart_email", "cart_clicks", "by_value", "high_value",
                          "cart_sms", "last_call"},
                 .sent = {"email cart_reminder", "sms cart_sms", "email cart_last_call"},
                 .goals = {"recovered"},
                 .exits = {"last_call"}});
  EXPECT_TRUE(Has(r, "c-2", "sent", {{"template", "cart_reminder"}, {"at", At("11-02 10:00")}}));
  EXPECT_TRUE(Has(r, "c-2", "sent",
                  {{"channel", "sms"}, {"template", "cart_sms"}, {"at", At("11-03 10:00")}}));
  EXPECT_TRUE(Has(r, "c-2", "sent", {{"template", "cart_last_call"}, {"at", At("11-04 10:00")}}));
  EXPECT_TRUE(Has(r, "c-2", "exited", {{"reason", "last_call"}, {"at", At("11-04 10:00")}}));
  // After she left, but within 7 days of the abandonment.
  EXPECT_TRUE(Has(r, "c-2", "goal", {{"goal", "recovered"}, {"at", At("11-06 18:30")}}));
  EXPECT_EQ(SetValues(r, "c-2", "last_cart_value"), (Strings{"389"}));
}

TEST(ExamplesTest, CartHighValueWithoutSmsConsentAlertsCustomerCare) {
  const auto& r = Records("abandoned_cart");
  ExpectOutcome(r, "c-3",
                {.path = {"cool_off", "cart_email", "cart_clicks", "by_value", "high_value",
                          "care_call", "last_call"},
                 .sent = {"email cart_reminder", "email cart_last_call"},
                 .alerts = {"rep_eva big_cart_alert"},
                 .exits = {"last_call"}});
  EXPECT_TRUE(Has(r, "c-3", "sent", {{"template", "cart_reminder"}, {"at", At("11-02 14:00")}}));
  EXPECT_TRUE(Has(r, "c-3", "alert",
                  {{"rep", "rep_eva"}, {"template", "big_cart_alert"}, {"at", At("11-03 14:00")}}));
  EXPECT_TRUE(Has(r, "c-3", "sent", {{"template", "cart_last_call"}, {"at", At("11-04 14:00")}}));
}

TEST(ExamplesTest, CartSmallCartGetsOnlyTheReminder) {
  const auto& r = Records("abandoned_cart");
  ExpectOutcome(r, "c-4",
                {.path = {"cool_off", "cart_email", "cart_clicks", "by_value", "small_cart"},
                 .sent = {"email cart_reminder"},
                 .exits = {"small_cart"}});
  EXPECT_TRUE(Has(r, "c-4", "sent", {{"template", "cart_reminder"}, {"at", At("11-02 16:00")}}));
  EXPECT_TRUE(Has(r, "c-4", "exited", {{"reason", "small_cart"}, {"at", At("11-03 16:00")}}));
}

TEST(ExamplesTest, CartReminderInQuietHoursIsHeldUntilMorning) {
  const auto& r = Records("abandoned_cart");
  ExpectOutcome(
      r, "c-5",
      {.path = {"cool_off", "cart_email", "cart_clicks", "by_value", "last_call"},
       .sent = {"email cart_reminder", "email cart_last_call"},
       .held = {"email cart_reminder until 11-03 07:00", "email cart_last_call until 11-05 07:00"},
       .exits = {"last_call"}});
  // The customer is not paused by the hold: the day's wait runs from 21:30, so the last call
  // falls in quiet hours too; he leaves at once and it is delivered in the morning.
  EXPECT_TRUE(Has(r, "c-5", "sent", {{"template", "cart_reminder"}, {"at", At("11-03 07:00")}}));
  EXPECT_TRUE(Has(r, "c-5", "sent", {{"template", "cart_last_call"}, {"at", At("11-05 07:00")}}));
  EXPECT_TRUE(Has(r, "c-5", "exited", {{"reason", "last_call"}, {"at", At("11-04 21:30")}}));
}

TEST(ExamplesTest, CartSecondEntryHitsTheSmsFrequencyCapAndIsRecoveredOnce) {
  const auto& r = Records("abandoned_cart");
  const Strings entry = {"cool_off",   "cart_email", "cart_clicks", "by_value",
                         "high_value", "cart_sms",   "last_call"};
  Strings path = entry;
  path.insert(path.end(), entry.begin(), entry.end());
  ExpectOutcome(r, "c-6",
                {.entered = {"treatment", "treatment"},
                 .path = path,
                 .sent = {"email cart_reminder", "sms cart_sms", "email cart_last_call",
                          "email cart_reminder", "email cart_last_call"},
                 .skipped = {"sms cart_sms frequency_cap"},
                 .goals = {"recovered"},
                 .exits = {"last_call", "last_call"}});
  // Entry 1 (Monday).
  EXPECT_TRUE(Has(r, "c-6", "sent", {{"template", "cart_reminder"}, {"at", At("11-02 09:00")}}));
  EXPECT_TRUE(Has(r, "c-6", "sent",
                  {{"channel", "sms"}, {"template", "cart_sms"}, {"at", At("11-03 09:00")}}));
  EXPECT_TRUE(Has(r, "c-6", "sent", {{"template", "cart_last_call"}, {"at", At("11-04 09:00")}}));
  EXPECT_TRUE(Has(r, "c-6", "exited", {{"reason", "last_call"}, {"at", At("11-04 09:00")}}));
  // Entry 2 (Thursday): 1 SMS per 7 days.
  EXPECT_TRUE(Has(r, "c-6", "sent", {{"template", "cart_reminder"}, {"at", At("11-05 10:00")}}));
  EXPECT_TRUE(Has(r, "c-6", "skipped",
                  {{"channel", "sms"}, {"template", "cart_sms"}, {"reason", "frequency_cap"}}));
  EXPECT_TRUE(Has(r, "c-6", "sent", {{"template", "cart_last_call"}, {"at", At("11-07 10:00")}}));
  EXPECT_TRUE(Has(r, "c-6", "exited", {{"reason", "last_call"}, {"at", At("11-07 10:00")}}));
  // Once, for entry 2; entry 1's 7 days are over.
  EXPECT_TRUE(Has(r, "c-6", "goal", {{"goal", "recovered"}, {"at", At("11-09 10:00")}}));
  EXPECT_EQ(SetValues(r, "c-6", "abandoned_carts"), (Strings{"1", "2"}));
}

TEST(ExamplesTest, CartLondonerWithoutPhoneAlertsCustomerCare) {
  const auto& r = Records("abandoned_cart");
  ExpectOutcome(r, "c-7",
                {.path = {"cool_off", "cart_email", "cart_clicks", "by_value", "high_value",
                          "care_call", "last_call"},
                 .sent = {"email cart_reminder", "email cart_last_call"},
                 .alerts = {"rep_eva big_cart_alert"},
                 .exits = {"last_call"}});
  EXPECT_TRUE(Has(r, "c-7", "sent", {{"template", "cart_reminder"}, {"at", At("11-03 12:00")}}));
  EXPECT_TRUE(Has(r, "c-7", "alert",
                  {{"rep", "rep_eva"}, {"template", "big_cart_alert"}, {"at", At("11-04 12:00")}}));
  EXPECT_TRUE(Has(r, "c-7", "sent", {{"template", "cart_last_call"}, {"at", At("11-05 12:00")}}));
}

TEST(ExamplesTest, CartFromTheShopTillDoesNotEnter) {
  ExpectNeverEnters(Records("abandoned_cart"), "c-8");
}

TEST(ExamplesTest, CartHoldoutGetsNothingButCountsAsRecovered) {
  const auto& r = Records("abandoned_cart");
  ExpectOutcome(r, "c-16",
                {.entered = {"holdout"},
                 .path = {"cool_off", "cart_email", "cart_clicks", "by_value", "last_call"},
                 .skipped = {"email cart_reminder holdout", "email cart_last_call holdout"},
                 .goals = {"recovered"},
                 .exits = {"last_call"}});
  EXPECT_TRUE(Has(r, "c-16", "exited", {{"reason", "last_call"}, {"at", At("11-05 17:00")}}));
  EXPECT_TRUE(Has(r, "c-16", "goal", {{"goal", "recovered"}, {"at", At("11-05 19:00")}}));
}

TEST(ExamplesTest, CartSummaryCounts) {
  const auto& r = Records("abandoned_cart");
  std::set<std::string> customers;
  for (const json& record : r)
    if (record["kind"] == "entered") customers.insert(record.value("customer", ""));
  EXPECT_EQ(customers.size(), 8u);
  const json& s = Summary("abandoned_cart");
  EXPECT_EQ(s["entered"], 9);
  EXPECT_EQ(s["holdout"], 1);
  EXPECT_EQ(s["sent"], json({{"email", 14}, {"sms", 2}}));
  EXPECT_EQ(s["skipped"], 3);
  EXPECT_EQ(s["alerts"], 2);
  EXPECT_EQ(s["webhooks"], 0);
  EXPECT_EQ(s["goals"], json({{"recovered", 4}}));
}

// ---- winback ---------------------------------------------------------------------------------

TEST(ExamplesTest, WinbackClickAlertsTheExistingOwner) {
  const auto& r = Records("winback");
  ExpectOutcome(r, "c-1",
                {.path = {"start", "winter_check_offer", "offer_clicks", "interested", "tell_rep"},
                 .sent = {"email winback_winter_check"},
                 .alerts = {"rep_tomas winback_clicked_alert"},
                 .goals = {"offer_redeemed", "won_back"},
                 .exits = {"clicked"}});
  EXPECT_TRUE(Has(r, "c-1", "entered", {{"version", 1}, {"at", At("11-02 06:00")}}));
  EXPECT_TRUE(
      Has(r, "c-1", "sent", {{"template", "winback_winter_check"}, {"at", At("11-03 09:00")}}));
  EXPECT_TRUE(Has(r, "c-1", "alert", {{"rep", "rep_tomas"}, {"at", At("11-03 12:30")}}));
  EXPECT_TRUE(Has(r, "c-1", "exited", {{"reason", "clicked"}, {"at", At("11-03 12:30")}}));
  EXPECT_TRUE(Has(r, "c-1", "goal", {{"goal", "offer_redeemed"}, {"at", At("11-05 08:00")}}));
  EXPECT_TRUE(Has(r, "c-1", "goal", {{"goal", "won_back"}, {"at", At("11-12 15:00")}}));
  EXPECT_EQ(SetValues(r, "c-1", "winback_variant"), (Strings{"winter_check"}));
}

TEST(ExamplesTest, WinbackLongLapsedSilentCustomerGetsSmsAndLastChance) {
  const auto& r = Records("winback");
  ExpectOutcome(r, "c-2",
                {.path = {"start", "discount_offer", "offer_clicks", "sms_nudge", "last_chance",
                          "no_response"},
                 .sent = {"email winback_discount", "sms winback_sms", "email winback_last_chance"},
                 .exits = {"no_response"}});
  EXPECT_TRUE(Has(r, "c-2", "entered", {{"at", At("11-02 06:00")}}));
  EXPECT_TRUE(Has(r, "c-2", "sent", {{"template", "winback_discount"}, {"at", At("11-03 09:00")}}));
  EXPECT_TRUE(Has(r, "c-2", "sent",
                  {{"channel", "sms"}, {"template", "winback_sms"}, {"at", At("11-08 09:00")}}));
  EXPECT_TRUE(
      Has(r, "c-2", "sent", {{"template", "winback_last_chance"}, {"at", At("11-15 09:00")}}));
  EXPECT_TRUE(Has(r, "c-2", "exited", {{"reason", "no_response"}, {"at", At("11-15 09:00")}}));
}

TEST(ExamplesTest, WinbackClickWithoutOwnerAssignsTheLeastLoadedRep) {
  const auto& r = Records("winback");
  ExpectOutcome(
      r, "c-3",
      {.path = {"start", "discount_offer", "offer_clicks", "interested", "find_rep", "tell_rep"},
       .sent = {"email winback_discount"},
       .assigned = {"rep_anna"},
       .alerts = {"rep_anna winback_clicked_alert"},
       .exits = {"clicked"}});
  // 10:00 in Vienna.
  EXPECT_TRUE(Has(r, "c-3", "sent", {{"template", "winback_discount"}, {"at", At("11-03 09:00")}}));
  EXPECT_TRUE(Has(r, "c-3", "exited", {{"reason", "clicked"}, {"at", At("11-04 09:30")}}));
}

TEST(ExamplesTest, WinbackLapsedEventEntersAShortLapsedCustomer) {
  const auto& r = Records("winback");
  ExpectOutcome(r, "c-4",
                {.path = {"start", "discount_offer", "offer_clicks", "sms_nudge", "no_response"},
                 .sent = {"email winback_discount", "sms winback_sms"},
                 .exits = {"no_response"}});
  EXPECT_TRUE(Has(r, "c-4", "sent", {{"template", "winback_discount"}, {"at", At("11-03 09:00")}}));
  EXPECT_TRUE(Has(r, "c-4", "sent",
                  {{"channel", "sms"}, {"template", "winback_sms"}, {"at", At("11-08 09:00")}}));
  EXPECT_TRUE(Has(r, "c-4", "exited", {{"reason", "no_response"}, {"at", At("11-08 09:00")}}));
}

TEST(ExamplesTest, WinbackExcludesMovedAbroadFleetAndTooLongLapsed) {
  const auto& r = Records("winback");
  ExpectNeverEnters(r, "c-5");
  ExpectNeverEnters(r, "c-6");
  ExpectNeverEnters(r, "c-7");
}

TEST(ExamplesTest, WinbackPurchaseBeforeTheOfferEndsTheJourney) {
  const auto& r = Records("winback");
  ExpectOutcome(r, "c-8", {.path = {"start"}, .goals = {"won_back"}, .exits = {"event:purchase"}});
  EXPECT_TRUE(Has(r, "c-8", "goal", {{"goal", "won_back"}, {"at", At("11-02 16:00")}}));
  EXPECT_TRUE(Has(r, "c-8", "exited", {{"reason", "event:purchase"}, {"at", At("11-02 16:00")}}));
}

TEST(ExamplesTest, WinbackChicagoCustomerWithoutEmailConsentOnlyGetsTheSms) {
  const auto& r = Records("winback");
  ExpectOutcome(
      r, "c-9",
      {.path = {"start", "discount_offer", "offer_clicks", "sms_nudge", "last_chance",
                "no_response"},
       .sent = {"sms winback_sms"},
       .skipped = {"email winback_discount no_consent", "email winback_last_chance no_consent"},
       .exits = {"no_response"}});
  // 10:00 in Chicago.
  EXPECT_TRUE(
      Has(r, "c-9", "skipped", {{"template", "winback_discount"}, {"at", At("11-03 16:00")}}));
  EXPECT_TRUE(Has(r, "c-9", "sent",
                  {{"channel", "sms"}, {"template", "winback_sms"}, {"at", At("11-08 16:00")}}));
  EXPECT_TRUE(Has(r, "c-9", "exited", {{"reason", "no_response"}, {"at", At("11-15 16:00")}}));
}

TEST(ExamplesTest, WinbackSmsWithoutPhoneIsSkippedForNoAddress) {
  const auto& r = Records("winback");
  ExpectOutcome(
      r, "c-10",
      {.path = {"start", "winter_check_offer", "offer_clicks", "sms_nudge", "no_response"},
       .sent = {"email winback_winter_check"},
       .skipped = {"sms winback_sms no_address"},
       .exits = {"no_response"}});
  EXPECT_TRUE(
      Has(r, "c-10", "sent", {{"template", "winback_winter_check"}, {"at", At("11-03 09:00")}}));
  EXPECT_TRUE(Has(r, "c-10", "exited", {{"reason", "no_response"}, {"at", At("11-08 09:00")}}));
}

TEST(ExamplesTest, WinbackHoldoutGetsNothingButCountsAsWonBack) {
  const auto& r = Records("winback");
  ExpectOutcome(r, "c-25",
                {.entered = {"holdout"},
                 .path = {"start", "discount_offer", "offer_clicks", "sms_nudge", "no_response"},
                 .skipped = {"email winback_discount holdout", "sms winback_sms holdout"},
                 .goals = {"won_back"},
                 .exits = {"no_response"}});
  EXPECT_TRUE(Has(r, "c-25", "exited", {{"reason", "no_response"}, {"at", At("11-08 09:00")}}));
  EXPECT_TRUE(Has(r, "c-25", "goal", {{"goal", "won_back"}, {"at", At("11-20 11:00")}}));
}

TEST(ExamplesTest, WinbackSummaryCounts) {
  const json& s = Summary("winback");
  EXPECT_EQ(s["entered"], 8);
  EXPECT_EQ(s["holdout"], 1);
  EXPECT_EQ(s["sent"], json({{"email", 6}, {"sms", 3}}));
  EXPECT_EQ(s["skipped"], 5);
  EXPECT_EQ(s["alerts"], 2);
  EXPECT_EQ(s["webhooks"], 0);
  EXPECT_EQ(s["goals"], json({{"won_back", 3}, {"offer_redeemed", 1}}));
}

// ---- b2b_lead_nurture ------------------------------------------------------------------------

TEST(ExamplesTest, FleetEngagedLeadReachesFiftyAndGoesToTheTerritoryRep) {
  const auto& r = Records("b2b_lead_nurture");
  ExpectOutcome(
      r, "c-1",
      {.path = {"welcome", "listen", "opened", "clicks", "clicked", "pricing_interest",
                "score_check", "next_round", "case_study", "listen", "opened", "clicks", "clicked",
                "score_check", "handoff", "meet_your_rep"},
       .sent = {"email fleet_welcome", "email fleet_case_study", "email fleet_meet_your_rep"},
       .assigned = {"rep_lucie"},
       .alerts = {"rep_lucie fleet_handoff_alert"},
       .webhooks = {"crm_task"},
       // meeting_booked has no `within`: booked after he left, it still counts.
       .goals = {"meeting_booked", "deal_won"},
       .exits = {"handed_to_sales"}});
  EXPECT_EQ(SetValues(r, "c-1", "score"), (Strings{"10", "15", "25", "40", "45", "55"}));
  EXPECT_TRUE(Has(r, "c-1", "sent", {{"template", "fleet_welcome"}, {"at", At("11-02 09:00")}}));
  EXPECT_TRUE(Has(r, "c-1", "sent", {{"template", "fleet_case_study"}, {"at", At("11-05 08:00")}}));
  EXPECT_TRUE(
      Has(r, "c-1", "sent", {{"template", "fleet_meet_your_rep"}, {"at", At("11-05 10:10")}}));
  EXPECT_TRUE(Has(r, "c-1", "exited", {{"reason", "handed_to_sales"}, {"at", At("11-05 10:10")}}));
  EXPECT_TRUE(Has(r, "c-1", "goal", {{"goal", "meeting_booked"}, {"at", At("11-09 09:00")}}));
  EXPECT_TRUE(Has(r, "c-1", "goal", {{"goal", "deal_won"}, {"at", At("12-15 14:00")}}));
}

TEST(ExamplesTest, FleetKeyAccountIsHandedOffAtOnceAndMarekIsAlerted) {
  const auto& r = Records("b2b_lead_nurture");
  ExpectOutcome(r, "c-2",
                {.path = {"welcome", "handoff", "key_account", "meet_your_rep"},
                 .sent = {"email fleet_welcome", "email fleet_meet_your_rep"},
                 .assigned = {"rep_peter"},
                 .alerts = {"rep_peter fleet_handoff_alert", "rep_marek key_account_alert"},
                 .webhooks = {"crm_task"},
                 .exits = {"handed_to_sales"}});
  EXPECT_TRUE(
      Has(r, "c-2", "sent", {{"template", "fleet_meet_your_rep"}, {"at", At("11-02 10:30")}}));
  EXPECT_TRUE(Has(r, "c-2", "exited", {{"reason", "handed_to_sales"}, {"at", At("11-02 10:30")}}));
}

TEST(ExamplesTest, FleetLeadIgnoringFourRoundsRests) {
  const auto& r = Records("b2b_lead_nurture");
  ExpectOutcome(
      r, "c-3",
      {.path = {"welcome",        "listen",  "ignored", "score_check", "next_round",
                "case_study",     "listen",  "ignored", "score_check", "next_round",
                "webinar_invite", "webinar", "ignored", "score_check", "next_round",
                "tco_guide",      "listen",  "ignored", "score_check", "next_round",
                "check_in",       "listen",  "ignored", "score_check", "rest"},
       .sent = {"email fleet_welcome", "email fleet_case_study", "email fleet_webinar_invite",
                "email fleet_tco_guide", "email fleet_check_in", "email fleet_stay_in_touch"},
       .exits = {"completed"}});
  EXPECT_EQ(SetValues(r, "c-3", "score"), (Strings{"10", "5", "0", "-5", "-10", "-15"}));
  EXPECT_TRUE(Has(r, "c-3", "sent", {{"template", "fleet_welcome"}, {"at", At("11-02 13:00")}}));
  EXPECT_TRUE(Has(r, "c-3", "sent", {{"template", "fleet_case_study"}, {"at", At("11-10 08:00")}}));
  EXPECT_TRUE(
      Has(r, "c-3", "sent", {{"template", "fleet_webinar_invite"}, {"at", At("11-17 08:00")}}));
  // Rounds 3 and 4 start exactly at 09:00 local: `wait until 09:00` does not wait.
  EXPECT_TRUE(Has(r, "c-3", "sent", {{"template", "fleet_tco_guide"}, {"at", At("11-26 08:00")}}));
  EXPECT_TRUE(Has(r, "c-3", "sent", {{"template", "fleet_check_in"}, {"at", At("12-01 08:00")}}));
  EXPECT_TRUE(
      Has(r, "c-3", "sent", {{"template", "fleet_stay_in_touch"}, {"at", At("12-04 08:00")}}));
  EXPECT_TRUE(Has(r, "c-3", "exited", {{"reason", "completed"}, {"at", At("12-04 08:00")}}));
}

TEST(ExamplesTest, FleetLeadOutsideEveryTerritoryIsRoutedRoundRobinAfterTheWebinar) {
  const auto& r = Records("b2b_lead_nurture");
  ExpectOutcome(
      r, "c-4",
      {.path = {"welcome",    "listen",           "opened",      "clicks",     "score_check",
                "next_round", "case_study",       "listen",      "opened",     "clicks",
                "clicked",    "pricing_interest", "score_check", "next_round", "webinar_invite",
                "webinar",    "webinar_points",   "score_check", "handoff",    "meet_your_rep"},
       .sent = {"email fleet_welcome", "email fleet_case_study", "email fleet_webinar_invite",
                "email fleet_meet_your_rep"},
       .assigned = {"rep_marek"},
       .alerts = {"rep_marek fleet_handoff_alert"},
       .webhooks = {"crm_task"},
       .exits = {"handed_to_sales"}});
  EXPECT_EQ(SetValues(r, "c-4", "score"), (Strings{"10", "15", "20", "30", "45", "70"}));
  EXPECT_TRUE(Has(r, "c-4", "sent", {{"template", "fleet_welcome"}, {"at", At("11-02 14:00")}}));
  EXPECT_TRUE(Has(r, "c-4", "sent", {{"template", "fleet_case_study"}, {"at", At("11-10 08:00")}}));
  EXPECT_TRUE(
      Has(r, "c-4", "sent", {{"template", "fleet_webinar_invite"}, {"at", At("11-17 08:00")}}));
  EXPECT_TRUE(
      Has(r, "c-4", "sent", {{"template", "fleet_meet_your_rep"}, {"at", At("11-19 15:00")}}));
  EXPECT_TRUE(Has(r, "c-4", "exited", {{"reason", "handed_to_sales"}, {"at", At("11-19 15:00")}}));
}

TEST(ExamplesTest, FleetHomeChargingDownloadDoesNotEnter) {
  ExpectNeverEnters(Records("b2b_lead_nurture"), "c-5");
}

TEST(ExamplesTest, FleetDisqualifiedLeadLeaves) {
  const auto& r = Records("b2b_lead_nurture");
  ExpectOutcome(r, "c-6",
                {.path = {"welcome", "listen"},
                 .sent = {"email fleet_welcome"},
                 .exits = {"event:crm_status_changed"}});
  EXPECT_TRUE(Has(r, "c-6", "sent", {{"template", "fleet_welcome"}, {"at", At("11-03 09:00")}}));
  EXPECT_TRUE(
      Has(r, "c-6", "exited", {{"reason", "event:crm_status_changed"}, {"at", At("11-03 15:00")}}));
}

TEST(ExamplesTest, FleetUrgentEnquiryIsHandedOffAtOnce) {
  const auto& r = Records("b2b_lead_nurture");
  ExpectOutcome(r, "c-7",
                {.path = {"welcome", "handoff", "meet_your_rep"},
                 .sent = {"email fleet_welcome", "email fleet_meet_your_rep"},
                 .assigned = {"rep_marek"},
                 .alerts = {"rep_marek fleet_handoff_alert"},
                 .webhooks = {"crm_task"},
                 .exits = {"handed_to_sales"}});
  EXPECT_TRUE(
      Has(r, "c-7", "sent", {{"template", "fleet_meet_your_rep"}, {"at", At("11-03 10:00")}}));
  EXPECT_TRUE(Has(r, "c-7", "exited", {{"reason", "handed_to_sales"}, {"at", At("11-03 10:00")}}));
}

TEST(ExamplesTest, FleetNightDownloadIsHeldAndTheMeetingCountsWhileInTheJourney) {
  const auto& r = Records("b2b_lead_nurture");
  ExpectOutcome(r, "c-8",
                {.path = {"welcome", "listen", "opened", "clicks"},
                 .sent = {"email fleet_welcome"},
                 .held = {"email fleet_welcome until 11-04 07:00"},
                 .goals = {"meeting_booked"},
                 .exits = {"event:crm_status_changed"}});
  EXPECT_TRUE(Has(r, "c-8", "sent", {{"template", "fleet_welcome"}, {"at", At("11-04 07:00")}}));
  EXPECT_TRUE(Has(r, "c-8", "goal", {{"goal", "meeting_booked"}, {"at", At("11-05 10:00")}}));
  EXPECT_TRUE(
      Has(r, "c-8", "exited", {{"reason", "event:crm_status_changed"}, {"at", At("11-05 10:30")}}));
}

TEST(ExamplesTest, FleetSummaryCounts) {
  const json& s = Summary("b2b_lead_nurture");
  EXPECT_EQ(s["entered"], 7);
  EXPECT_EQ(s["holdout"], 0);
  EXPECT_EQ(s["sent"]["email"], 19);
  EXPECT_EQ(s["sent"].value("sms", 0), 0);
  EXPECT_EQ(s["skipped"], 0);
  EXPECT_EQ(s["alerts"], 5);
  EXPECT_EQ(s["webhooks"], 4);
  EXPECT_EQ(s["goals"], json({{"meeting_booked", 2}, {"deal_won", 1}}));
}

}  // namespace
}  // namespace itinera::testing
