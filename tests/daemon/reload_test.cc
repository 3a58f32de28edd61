// SIGHUP reload of journeys: a new version takes new entrants while customers in flight finish
// on the version they entered; a changed file that keeps its version is refused with a clear
// log line; restarts keep every customer on their version.
#include <gtest/gtest.h>

#include <string>

#include "tests/daemon/daemon_harness.h"

namespace itinera::daemon_testing {
namespace {

// Version `version` sends "<start>" on entry and "<end>" after `wait 3s`.
std::string Journey(int version, const std::string& start, const std::string& end) {
  return "journey promo \"Promo\" {\n  version " + std::to_string(version) +
         "\n  enter when event \"start\"\n\n  step hello {\n    send email \"" + start +
         "\"\n    then pause\n  }\n\n  step pause {\n    wait 3s\n    then bye\n  }\n\n"
         "  step bye {\n    send email \"" +
         end + "\"\n    exit \"done\"\n  }\n}\n";
}

class ReloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"v1_start", "v1_end", "v2_start", "v2_end", "v3_start"}) {
      d_.WriteTemplate(std::string(name) + ".email.mustache",
                       std::string("---\nsubject: ") + name + "\n---\n<p>" + name + "</p>\n");
    }
    d_.WriteJourney("promo", Journey(1, "v1_start", "v1_end"));
    ASSERT_TRUE(d_.Start());
  }

  void Enter(const std::string& customer) {
    d_.PutCustomer(customer,
                   {{"email", customer + "@example.com"}, {"consent", {{"email", true}}}});
    d_.PostEvent({{"customer_id", customer}, {"type", "start"}});
  }

  // The version the customer's (only) entry runs, 0 when none yet.
  int64_t Version(const std::string& customer) {
    auto entries = d_.Entries(customer, "promo");
    return entries.empty() ? 0 : entries.back().value("version", int64_t{0});
  }
  std::string Status(const std::string& customer) {
    auto entries = d_.Entries(customer, "promo");
    return entries.empty() ? "" : entries.back().value("status", "");
  }
  // The templates the customer was sent, oldest first.
  std::vector<std::string> Sent(const std::string& customer) {
    std::vector<std::string> out;
    for (const json& t : d_.Timeline(customer, "sent")) out.insert(out.begin(), t["template"]);
    return out;
  }
  // SIGHUP, then wait for the reload's "reload done" line.
  json Reload() {
    size_t before = d_.LogLinesWith("reload done").size();
    d_.Hup();
    json done;
    EXPECT_TRUE(WaitUntil([&] {
      auto lines = d_.LogLinesWith("reload done");
      if (lines.size() > before) done = lines.back();
      return lines.size() > before;
    })) << d_.Log();
    return done;
  }

  Daemon d_;
};

TEST_F(ReloadTest, NewVersionTakesNewEntrantsWhileOthersFinishOnTheirs) {
  Enter("c-v1");
  ASSERT_TRUE(WaitUntil([&] { return Sent("c-v1").size() == 1; })) << d_.Log();
  EXPECT_EQ(Version("c-v1"), 1);
  EXPECT_EQ(Status("c-v1"), "waiting");

  d_.WriteJourney("promo", Journey(2, "v2_start", "v2_end"));
  json done = Reload();
  EXPECT_EQ(done["published"], json::array({"promo@2"})) << done.dump();
  Reply journey = d_.Get("/v1/journeys/promo");
  EXPECT_EQ(journey.doc.value("current_version", 0), 2) << journey.body;
  EXPECT_EQ(journey.doc["versions"], json::array({1, 2})) << journey.body;

  Enter("c-v2");
  ASSERT_TRUE(WaitUntil([&] { return Sent("c-v2").size() == 1; })) << d_.Log();
  EXPECT_EQ(Version("c-v2"), 2);
  EXPECT_EQ(Sent("c-v2"), std::vector<std::string>{"v2_start"});

  // The v1 customer finishes on v1.
  ASSERT_TRUE(WaitUntil([&] { return Status("c-v1") == "exited"; }, 8s)) << d_.Log();
  EXPECT_EQ(Version("c-v1"), 1);
  EXPECT_EQ(Sent("c-v1"), (std::vector<std::string>{"v1_start", "v1_end"}));

  // Changed but still version 2: refused, loudly; new entrants keep getting v2.
  d_.WriteJourney("promo", Journey(2, "v3_start", "v2_end"));
  done = Reload();
  EXPECT_FALSE(d_.LogLinesWith("changed but kept version").empty()) << d_.Log();
  EXPECT_EQ(done["published"], json::array()) << done.dump();
  Enter("c-v2b");
  ASSERT_TRUE(WaitUntil([&] { return Sent("c-v2b").size() == 1; })) << d_.Log();
  EXPECT_EQ(Version("c-v2b"), 2);
  EXPECT_EQ(Sent("c-v2b"), std::vector<std::string>{"v2_start"});
  ASSERT_TRUE(WaitUntil([&] { return Status("c-v2") == "exited"; }, 8s));
  EXPECT_EQ(Sent("c-v2"), (std::vector<std::string>{"v2_start", "v2_end"}));
}

TEST_F(ReloadTest, RestartAfterPublishKeepsCustomersOnTheirVersion) {
  Enter("c-v1");
  ASSERT_TRUE(WaitUntil([&] { return Sent("c-v1").size() == 1; })) << d_.Log();
  d_.WriteJourney("promo", Journey(2, "v2_start", "v2_end"));
  Reload();
  ASSERT_EQ(d_.Stop(), 0);
  ASSERT_TRUE(d_.Start());

  EXPECT_EQ(Version("c-v1"), 1);
  Enter("c-v2");
  ASSERT_TRUE(WaitUntil([&] { return Sent("c-v2").size() == 1; })) << d_.Log();
  EXPECT_EQ(Version("c-v2"), 2);
  EXPECT_EQ(Sent("c-v2"), std::vector<std::string>{"v2_start"});
  ASSERT_TRUE(WaitUntil([&] { return Status("c-v1") == "exited"; }, 8s)) << d_.Log();
  EXPECT_EQ(Version("c-v1"), 1);
  EXPECT_EQ(Sent("c-v1"), (std::vector<std::string>{"v1_start", "v1_end"}));
}

TEST_F(ReloadTest, TemplateEditTakesEffectOnSighup) {
  Enter("c-before");
  ASSERT_TRUE(WaitUntil([&] { return Sent("c-before").size() == 1; })) << d_.Log();
  d_.WriteTemplate("v1_start.email.mustache", "---\nsubject: Edited\n---\n<p>Edited</p>\n");
  Reload();
  Enter("c-after");
  ASSERT_TRUE(WaitUntil([&] { return Sent("c-after").size() == 1; })) << d_.Log();
  EXPECT_EQ(d_.Timeline("c-before", "sent")[0].value("subject", ""), "v1_start");
  EXPECT_EQ(d_.Timeline("c-after", "sent")[0].value("subject", ""), "Edited");
}

TEST_F(ReloadTest, RemovedJourneyFinishesInFlightAndTakesNoOneNew) {
  d_.WriteJourney("again", R"(journey again "Again" {
  enter when event "again"
  re_enter always
  step hello {
    send email "v1_start"
    exit "done"
  }
}
)");
  Reload();
  d_.PutCustomer("c-back", {{"email", "back@example.com"}, {"consent", {{"email", true}}}});
  d_.PostEvent({{"customer_id", "c-back"}, {"type", "again"}});
  ASSERT_TRUE(WaitUntil([&] { return d_.Entries("c-back", "again").size() == 1; })) << d_.Log();
  Enter("c-v1");
  ASSERT_TRUE(WaitUntil([&] { return Status("c-v1") == "waiting"; })) << d_.Log();

  fs::remove(d_.dir() / "journeys" / "promo.journey");
  fs::remove(d_.dir() / "journeys" / "again.journey");
  json done = Reload();
  EXPECT_EQ(done["retired"], json::array({"again", "promo"})) << done.dump();
  EXPECT_FALSE(d_.LogLinesWith("journey file is gone").empty());

  Enter("c-new");
  d_.PostEvent({{"customer_id", "c-back"}, {"type", "again"}});
  ASSERT_TRUE(WaitUntil([&] { return Status("c-v1") == "exited"; }, 8s)) << d_.Log();
  EXPECT_EQ(Sent("c-v1"), (std::vector<std::string>{"v1_start", "v1_end"}));
  EXPECT_TRUE(d_.Entries("c-new", "promo").empty());
  EXPECT_EQ(d_.Entries("c-back", "again").size(), 1u)
      << "a customer who had left a removed journey entered it again";
}

TEST_F(ReloadTest, RestartWithChangedFileOfSameVersionKeepsTheStoredVersionRunning) {
  // v2 published, then its file is edited without raising the version, then the daemon
  // restarts. The edit is refused as on SIGHUP; the recorded v2 must keep taking entrants.
  d_.WriteJourney("promo", Journey(2, "v2_start", "v2_end"));
  Reload();
  d_.WriteJourney("promo", Journey(2, "v3_start", "v2_end"));
  ASSERT_EQ(d_.Stop(), 0);
  ASSERT_TRUE(d_.Start());
  EXPECT_FALSE(d_.LogLinesWith("changed but kept version").empty()) << d_.Log();
  Reply journey = d_.Get("/v1/journeys/promo");
  EXPECT_EQ(journey.doc.value("current_version", 0), 2) << journey.body;
  Enter("c-after");
  EXPECT_TRUE(WaitUntil([&] { return Sent("c-after").size() == 1; }, 3s))
      << "no new entrant after the restart: " << journey.body;
  EXPECT_EQ(Version("c-after"), 2);
  EXPECT_EQ(Sent("c-after"), std::vector<std::string>{"v2_start"});
}

TEST_F(ReloadTest, RestartWithFileThatDoesNotCheckKeepsTheStoredVersionRunning) {
  // A file that does not check is refused and "what ran before keeps running" — on SIGHUP and
  // equally after a restart, where what ran before is the version recorded in the store.
  d_.WriteJourney("promo", "journey promo \"Promo\" {\n  version 2\n  enter when evnt\n}\n");
  Reload();
  EXPECT_FALSE(d_.LogLinesWith("journey file refused").empty()) << d_.Log();
  EXPECT_EQ(d_.Get("/v1/journeys/promo").doc.value("current_version", 0), 1);
  ASSERT_EQ(d_.Stop(), 0);
  ASSERT_TRUE(d_.Start());
  Reply journey = d_.Get("/v1/journeys/promo");
  EXPECT_EQ(journey.doc.value("current_version", 0), 1) << journey.body;
  Enter("c-after");
  EXPECT_TRUE(WaitUntil([&] { return Sent("c-after").size() == 1; }, 3s))
      << "no new entrant after the restart: " << journey.body;
  EXPECT_EQ(Version("c-after"), 1);
}

}  // namespace
}  // namespace itinera::daemon_testing
