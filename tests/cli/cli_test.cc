// The `itinera` command as users meet it: exit statuses, messages, and the simulate contract.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/cli/run.h"

namespace itinera::testing {
namespace {

using nlohmann::json;

// A small workspace: config, templates and one journey, in a temporary folder.
class Workspace : public TempDir {
 public:
  Workspace() {
    Write("itinera.toml", R"(
[[teams.sales]]
id = "rep_a"
name = "Ann"
email = "ann@dealer.example"
alert_via = "email"
)");
    Write("templates/hello.email.mustache",
          "---\nsubject: Hello {{customer.first_name}}\n---\n<p>Hi {{customer.first_name}}</p>\n");
    Write("templates/nudge.sms.mustache", "Hi {{customer.first_name}}! Reply STOP to opt out.");
    Write("templates/lead.alert.mustache", "New lead {{customer.first_name}}");
    Write("journeys/hello.journey", R"(journey hello "Hello" {
  enter when event "signed_up"
  step start {
    assign owner from team "sales" by round_robin
    send email "hello" as greeting
    then wait_open
  }
  step wait_open {
    wait up to 2d for event "email_opened" where event.message == greeting
    when received then hot
    when timed_out then nudge
  }
  step hot {
    alert owner "lead"
    exit "opened"
  }
  step nudge {
    send sms "nudge"
    exit
  }
}
)");
    Write(
        "customers.jsonl",
        R"({"id": "c-1", "email": "one@example.com", "phone": "+420600000011", "attributes": {"first_name": "One"}, "consent": {"email": true, "sms": true}}
{"id": "c-2", "email": "two@example.com", "phone": "+420600000012", "attributes": {"first_name": "Two"}, "consent": {"email": true, "sms": true}}
)");
    Write("events.jsonl",
          R"({"customer_id": "c-1", "type": "signed_up", "timestamp": "2026-11-02T09:00:00Z"}
{"customer_id": "c-2", "type": "signed_up", "timestamp": "2026-11-02T09:30:00Z"}
{"customer_id": "c-1", "type": "email_opened", "timestamp": "2026-11-03T12:00:00Z", "properties": {"handle": "greeting"}}
)");
  }
  std::string dir() const { return path().string(); }
};

std::vector<json> JsonLines(const std::string& text) {
  std::vector<json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(json::parse(line));
  return out;
}

TEST(CliTest, NoCommandPrintsUsage) {
  RunResult r = RunItinera("");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("usage: itinera <command>"), std::string::npos);
}

// The binary allocates through jemalloc, not glibc's malloc (see CMakeLists.txt): jemalloc reads
// MALLOC_CONF and prints its statistics at exit when asked to.
TEST(CliTest, TheBinaryAllocatesThroughJemalloc) {
  RunResult r = RunItinera("check", ITINERA_SOURCE_DIR);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err.find("jemalloc statistics"), std::string::npos);
  r = RunItinera("check", ITINERA_SOURCE_DIR, "MALLOC_CONF=stats_print:true");
  EXPECT_NE(r.err.find("jemalloc statistics"), std::string::npos) << r.err.substr(0, 500);
}

TEST(CliTest, UnknownCommandSuggestsTheClosestOne) {
  RunResult r = RunItinera("chek");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("unknown command \"chek\"; did you mean \"check\"?"), std::string::npos)
      << r.err;
}

TEST(CliTest, UnknownOptionSuggestsTheClosestOne) {
  RunResult r = RunItinera("simulate x.journey --customer c.jsonl");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("unknown option --customer; did you mean \"customers\"?"), std::string::npos)
      << r.err;
}

TEST(CliTest, CheckOfACleanWorkspaceSucceeds) {
  Workspace w;
  RunResult r = RunItinera("check", w.dir());
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "checked 1 journey: no errors\n");
}

TEST(CliTest, CheckFailsWithLocatedDiagnostics) {
  Workspace w;
  w.Write("journeys/bad.journey", R"(journey bad {
  enter when event "x"
  step one {
    send email "hello"
    then tow
  }
  step two { exit }
}
)");
  RunResult r = RunItinera("check journeys/bad.journey", w.dir());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("journeys/bad.journey:5:10: error: unknown step \"tow\"; did you mean "
                       "\"two\"?\n    then tow\n         ^\n"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("1 error"), std::string::npos) << r.err;
}

TEST(CliTest, CheckReadsTeamsFromTheConfig) {
  Workspace w;
  w.Write("other.toml", "");
  RunResult with = RunItinera("check journeys/hello.journey", w.dir());
  EXPECT_EQ(with.status, 0) << with.err;
  RunResult without = RunItinera("check --config other.toml journeys/hello.journey", w.dir());
  EXPECT_EQ(without.status, 1);
  EXPECT_NE(without.err.find("\"sales\""), std::string::npos) << without.err;
}

TEST(CliTest, CheckReportsAMissingTemplateWithSuggestion) {
  Workspace w;
  w.Write("journeys/typo.journey", R"(journey typo {
  enter when event "x"
  step one {
    send email "helo"
    exit
  }
}
)");
  RunResult r = RunItinera("check journeys/typo.journey", w.dir());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("journeys/typo.journey:4:16: error: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("did you mean \"hello\"?"), std::string::npos) << r.err;
}

TEST(CliTest, CheckRejectsTwoFilesWithOneJourneyId) {
  Workspace w;
  w.Write("journeys/hello_copy.journey", ReadFile(w.path() / "journeys/hello.journey"));
  RunResult r = RunItinera("check", w.dir());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("journey \"hello\" is also defined in"), std::string::npos) << r.err;
}

TEST(CliTest, CheckOfAFolderSaysSo) {
  Workspace w;
  RunResult r = RunItinera("check journeys", w.dir());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("journeys: error: this is a folder; give journey files, such as "
                       "journeys/*.journey"),
            std::string::npos)
      << r.err;
}

TEST(CliTest, BadConfigIsReported) {
  Workspace w;
  w.Write("itinera.toml", "[paths]\njourney = \"x\"\n");
  RunResult r = RunItinera("check", w.dir());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("did you mean \"journeys\"?"), std::string::npos) << r.err;
}

TEST(CliTest, GraphDrawsDotAndMermaid) {
  Workspace w;
  RunResult dot = RunItinera("graph journeys/hello.journey", w.dir());
  EXPECT_EQ(dot.status, 0) << dot.err;
  EXPECT_EQ(dot.out.rfind("digraph", 0), 0u) << dot.out;
  EXPECT_NE(dot.out.find("wait_open"), std::string::npos);
  RunResult mermaid = RunItinera("graph journeys/hello.journey --format mermaid", w.dir());
  EXPECT_EQ(mermaid.status, 0) << mermaid.err;
  EXPECT_EQ(mermaid.out.rfind("flowchart", 0), 0u) << mermaid.out;
  RunResult bad = RunItinera("graph journeys/hello.journey --format svg", w.dir());
  EXPECT_EQ(bad.status, 2);
}

TEST(CliTest, SimulateJsonFollowsTheContract) {
  Workspace w;
  RunResult r = RunItinera(
      "simulate journeys/hello.journey --customers customers.jsonl --events events.jsonl "
      "--format json",
      w.dir());
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<json> records = JsonLines(r.out);
  ASSERT_FALSE(records.empty());
  // Every record but the summary starts with at, customer, journey, kind, in that order.
  for (size_t i = 0; i + 1 < records.size(); ++i) EXPECT_EQ(records[i]["journey"], "hello");
  std::istringstream lines(r.out);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.find("\"summary\"") != std::string::npos) continue;
    EXPECT_EQ(line.rfind("{\"at\":", 0), 0u) << line;
    EXPECT_LT(line.find("\"customer\":"), line.find("\"journey\":")) << line;
    EXPECT_LT(line.find("\"journey\":"), line.find("\"kind\":")) << line;
  }
  // c-1 opened (given by handle) and its rep was alerted; c-2 did not and got the SMS.
  auto has = [&](const std::string& customer, const std::string& kind, const std::string& key,
                 const std::string& value) {
    for (const json& rec : records)
      if (rec.value("customer", "") == customer && rec["kind"] == kind &&
          rec.value(key, json()).dump() == json(value).dump())
        return true;
    return false;
  };
  EXPECT_TRUE(has("c-1", "sent", "subject", "Hello One"));
  EXPECT_TRUE(has("c-1", "alert", "rep", "rep_a"));
  EXPECT_TRUE(has("c-1", "exited", "reason", "opened"));
  EXPECT_TRUE(has("c-2", "sent", "channel", "sms"));
  EXPECT_TRUE(has("c-2", "exited", "reason", "completed"));
  EXPECT_FALSE(has("c-2", "alert", "rep", "rep_a"));
  const json& summary = records.back();
  EXPECT_EQ(summary["kind"], "summary");
  EXPECT_EQ(summary["steps"]["start"], 2);
  EXPECT_EQ(summary["steps"]["hot"], 1);
  EXPECT_EQ(summary["steps"]["nudge"], 1);
  EXPECT_EQ(summary["sent"]["email"], 2);
  EXPECT_EQ(summary["sent"]["sms"], 1);
}

TEST(CliTest, SimulateIsDeterministic) {
  Workspace w;
  std::string args =
      "simulate journeys/hello.journey --customers customers.jsonl --events events.jsonl ";
  RunResult a = RunItinera(args + "--format json", w.dir());
  RunResult b = RunItinera(args + "--format json", w.dir());
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  RunResult c = RunItinera(args, w.dir());
  RunResult d = RunItinera(args, w.dir());
  ASSERT_EQ(c.status, 0) << c.err;
  EXPECT_EQ(c.out, d.out);
  EXPECT_NE(c.out.find("customer c-1"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("Summary"), std::string::npos) << c.out;
}

TEST(CliTest, SimulateUntilCutsTheRunShort) {
  Workspace w;
  RunResult r = RunItinera(
      "simulate journeys/hello.journey --customers customers.jsonl --events events.jsonl "
      "--format json --until 1d",
      w.dir());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.find("\"sms\""), r.out.find("\"sms\":0"));  // the 2-day timeout never fired
  RunResult bad = RunItinera(
      "simulate journeys/hello.journey --customers customers.jsonl --events events.jsonl "
      "--until soon",
      w.dir());
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("--until takes a duration"), std::string::npos) << bad.err;
}

TEST(CliTest, SimulateReportsBadInputByLine) {
  Workspace w;
  w.Write("broken.jsonl",
          "{\"customer_id\": \"c-1\", \"type\": \"signed_up\", \"timestamp\": "
          "\"2026-11-02T09:00:00Z\"}\n{not json\n");
  w.Write("notime.jsonl", "{\"customer_id\": \"c-1\", \"type\": \"signed_up\"}\n");
  RunResult broken = RunItinera(
      "simulate journeys/hello.journey --customers customers.jsonl --events broken.jsonl", w.dir());
  EXPECT_EQ(broken.status, 1);
  EXPECT_EQ(broken.err, "broken.jsonl:2: this line is not valid JSON\n");
  RunResult notime = RunItinera(
      "simulate journeys/hello.journey --customers customers.jsonl --events notime.jsonl", w.dir());
  EXPECT_EQ(notime.status, 1);
  EXPECT_NE(notime.err.find("notime.jsonl:1: an event needs a \"timestamp\""), std::string::npos)
      << notime.err;
  std::string deep =
      "{\"customer_id\": \"c-1\", \"type\": \"x\", \"timestamp\": "
      "\"2026-11-02T09:00:00Z\", \"properties\": {\"p\": " +
      std::string(100000, '[') + std::string(100000, ']') + "}}\n";
  w.Write("deep.jsonl", deep);
  RunResult too_deep = RunItinera(
      "simulate journeys/hello.journey --customers customers.jsonl --events deep.jsonl", w.dir());
  EXPECT_EQ(too_deep.status, 1);
  EXPECT_EQ(too_deep.err, "deep.jsonl:1: this line nests deeper than 64 levels\n");
  RunResult missing = RunItinera("simulate journeys/hello.journey --events events.jsonl", w.dir());
  EXPECT_EQ(missing.status, 2);
}

}  // namespace
}  // namespace itinera::testing
