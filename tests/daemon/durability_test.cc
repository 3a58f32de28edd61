// Durability across crashes and stops: SIGKILL in the middle of delivery, SIGKILL and SIGTERM
// while events are being posted. Whatever was answered 202 is processed after a restart, and
// every message is delivered exactly once.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "orchestrator/store.h"
#include "tests/daemon/daemon_harness.h"

namespace itinera::daemon_testing {
namespace {

constexpr int kCustomers = 200;

constexpr char kTwoMails[] = R"(# Two emails a second apart.
journey two_mails "Two mails" {
  enter when event "go"

  step first {
    send email "first"
    wait 1s
    then second
  }

  step second {
    send email "second"
    exit "done"
  }
}
)";

std::string CustomerId(int i) { return "cust-" + std::to_string(i); }

// The Message-ID header of a delivered file.
std::string MessageIdHeader(const fs::path& file) {
  return connectors::testing::ParseEntity(ReadText(file)).Header("Message-ID");
}

// 200 customers, two emails each; the daemon is stopped (SIGKILL, or SIGTERM when `graceful`)
// once about 40% of the emails are out, then restarted on the same folder.
void StopMidDeliveryAndRestart(bool graceful) {
  Daemon d;
  d.WriteJourney("two_mails", kTwoMails);
  d.WriteTemplate("first.email.mustache", "---\nsubject: First\n---\n<p>One</p>\n");
  d.WriteTemplate("second.email.mustache", "---\nsubject: Second\n---\n<p>Two</p>\n");
  ASSERT_TRUE(d.Start());

  Parallel(kCustomers, 4, [&](int i) {
    auto c = d.Client();
    json profile = {{"email", CustomerId(i) + "@example.com"}, {"consent", {{"email", true}}}};
    auto r = c->Put(("/v1/customers/" + CustomerId(i)).c_str(), profile.dump(), "application/json");
    EXPECT_TRUE(r && r->status == 200) << CustomerId(i);
  });
  std::mutex mu;
  std::set<std::string> acknowledged;
  Parallel(kCustomers, 4, [&](int i) {
    auto c = d.Client();
    json event = {{"id", "go-" + CustomerId(i)}, {"customer_id", CustomerId(i)}, {"type", "go"}};
    auto r = c->Post("/v1/events", event.dump(), "application/json");
    if (r && r->status == 202) {
      std::lock_guard lock(mu);
      acknowledged.insert(CustomerId(i));
    }
  });
  ASSERT_EQ(acknowledged.size(), static_cast<size_t>(kCustomers));

  // Stop in the middle of delivery.
  ASSERT_TRUE(WaitUntil([&] { return d.MailFiles().size() >= 2 * kCustomers * 4 / 10; }, 30s))
      << d.Log();
  if (graceful) {
    ASSERT_EQ(d.Stop(), 0) << d.Log();
  } else {
    d.Kill();
  }
  const size_t at_crash = d.MailFiles().size();
  EXPECT_LT(at_crash, static_cast<size_t>(2 * kCustomers)) << "the stop came too late to tell";

  ASSERT_TRUE(d.Start());
  bool done = WaitUntil([&] { return d.MailFiles().size() >= 2 * kCustomers; }, 10s);
  if (!done) {
    auto pending = d.Messages("pending");
    std::string sample = pending.empty() ? "" : pending[0].dump();
    ADD_FAILURE() << "after the restart only " << d.MailFiles().size() << " of " << 2 * kCustomers
                  << " emails were delivered within 10 s (" << at_crash << " at the stop); "
                  << pending.size() << " messages still pending, e.g. " << sample
                  << ". Messages claimed (leased) by the killed process wait out the whole "
                     "lease before anyone sends them.";
    // Let the leases run out by hand, so the other guarantees can still be checked.
    ASSERT_EQ(d.Stop(), 0);
    {
      auto store = orch::OpenStore("sqlite:" + (d.dir() / "var" / "itinera.db").string());
      ASSERT_TRUE(store.ok()) << store.error().message;
      auto leased = (*store)->ListMessages(orch::MessageStatus::kPending, 1000);
      ASSERT_TRUE(leased.ok());
      const Time now = std::chrono::floor<Seconds>(std::chrono::system_clock::now());
      for (const orch::OutboxMessage& m : *leased) {
        if (m.not_before <= now) continue;
        ASSERT_TRUE((*store)->MarkRetry(m.id, now, m.last_error).ok());
      }
    }
    ASSERT_TRUE(d.Start());
    ASSERT_TRUE(WaitUntil([&] { return d.MailFiles().size() >= 2 * kCustomers; }, 15s))
        << d.MailFiles().size() << " delivered; " << d.Log();
  }
  // Let anything that would duplicate show up.
  ASSERT_TRUE(WaitUntil([&] { return d.Messages("pending").empty(); }, 10s));
  std::this_thread::sleep_for(500ms);

  std::map<std::string, int> by_message_id;
  for (const fs::path& f : d.MailFiles()) ++by_message_id[MessageIdHeader(f)];
  EXPECT_EQ(d.MailFiles().size(), static_cast<size_t>(2 * kCustomers));
  EXPECT_EQ(by_message_id.size(), static_cast<size_t>(2 * kCustomers));
  for (const auto& [id, n] : by_message_id) EXPECT_EQ(n, 1) << id;

  // Every acknowledged event was processed: each customer entered once, got both emails (the
  // very files above) and finished.
  for (int i = 0; i < kCustomers; ++i) {
    const std::string c = CustomerId(i);
    json view = d.Customer(c);
    ASSERT_TRUE(view.is_object()) << c;
    int events = 0, sent = 0;
    for (const json& t : view["timeline"]) {
      if (t.value("kind", "") == "event" && t.value("type", "") == "go") ++events;
      if (t.value("kind", "") == "sent") {
        ++sent;
        EXPECT_EQ(t.value("status", ""), "sent") << c << " " << t.dump();
        EXPECT_EQ(by_message_id.count("<" + t.value("message", "") + "@dealer.example>"), 1u)
            << c << " " << t.dump();
      }
    }
    EXPECT_EQ(events, 1) << c;
    EXPECT_EQ(sent, 2) << c;
    ASSERT_EQ(view["journeys"].size(), 1u) << c;
    EXPECT_EQ(view["journeys"][0].value("status", ""), "exited") << c;
  }

  // The funnel agrees.
  Reply funnel = d.Get("/v1/journeys/two_mails");
  ASSERT_EQ(funnel.status, 200);
  const json& f = funnel.doc;
  EXPECT_EQ(f.value("entered", 0), kCustomers) << f.dump();
  EXPECT_EQ(f.value("exited", 0), kCustomers) << f.dump();
  EXPECT_EQ(f["counters"].value("sent.email", 0), 2 * kCustomers) << f.dump();
  EXPECT_EQ(f["messages"]["email"].value("sent", 0), 2 * kCustomers) << f.dump();
  EXPECT_EQ(f["messages"]["email"].value("pending", -1), 0) << f.dump();
  for (const json& step : f["steps"]) {
    EXPECT_EQ(step.value("now", -1), 0) << step.dump();
    EXPECT_EQ(step.value("entered", 0), kCustomers) << step.dump();
  }
  EXPECT_EQ(d.Stop(), 0);
}

TEST(DurabilityTest, SigkillMidDeliveryLosesNothingAndDuplicatesNothing) {
  StopMidDeliveryAndRestart(/*graceful=*/false);
}

TEST(DurabilityTest, SigtermMidDeliveryLosesNothingAndDuplicatesNothing) {
  StopMidDeliveryAndRestart(/*graceful=*/true);
}

TEST(DurabilityTest, ProfileChangeCutByCrashStillTriggersJourneysWhenRetried) {
  // A client whose PUT got no answer because the daemon died retries it after the restart, as
  // it must. Whatever point the crash cut the PUT at, the journeys must then react.
  Daemon d;
  d.WriteJourney("vip", R"(journey vip "VIP" {
  enter when customer customer.vip == true
  step greet { exit "welcomed" }
}
)");
  ASSERT_TRUE(d.Start());
  const json patch = {{"attributes", {{"vip", true}}}};
  std::mutex mu;
  std::vector<std::string> acknowledged, unanswered;
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&, t] {
      auto c = d.Client();
      for (int n = 0; !stop; ++n) {
        std::string id = "p-" + std::to_string(t) + "-" + std::to_string(n);
        auto r = c->Put(("/v1/customers/" + id).c_str(), patch.dump(), "application/json");
        std::lock_guard lock(mu);
        if (r && r->status == 200) {
          acknowledged.push_back(id);
        } else {
          unanswered.push_back(id);
          return;
        }
      }
    });
  }
  ASSERT_TRUE(WaitUntil(
      [&] {
        std::lock_guard lock(mu);
        return acknowledged.size() >= 150;
      },
      15s));
  d.Kill();
  stop = true;
  for (auto& t : clients) t.join();
  ASSERT_TRUE(d.Start());
  for (const std::string& id : unanswered) d.PutCustomer(id, patch);  // the client's retry

  std::vector<std::string> all = acknowledged;
  all.insert(all.end(), unanswered.begin(), unanswered.end());
  std::vector<std::string> missing;
  WaitUntil(
      [&] {
        missing.clear();
        for (const std::string& id : all)
          if (d.Entries(id, "vip").empty()) missing.push_back(id);
        return missing.empty();
      },
      5s);
  std::string list;
  for (const std::string& id : missing) {
    json profile = d.Customer(id).value("profile", json::object());
    bool vip = profile.contains("attributes") && profile["attributes"].value("vip", false);
    bool retried = std::find(unanswered.begin(), unanswered.end(), id) != unanswered.end();
    list += " " + id + (vip ? " (vip: true" : " (vip not set") +
            (retried ? ", its PUT unanswered and retried)" : ")");
  }
  EXPECT_TRUE(missing.empty()) << missing.size() << " of " << all.size()
                               << " customers made VIP never entered the journey:" << list
                               << "; unanswered PUTs:" << unanswered.size();
}

// How the events are posted: one per request without an id (told apart by a property "tag")
// or with one (both advanced by the processor directly), or 11 per request with ids (through
// the inbox).
enum class Way { kDirectTagged, kDirectWithIds, kInbox };

// Posts events for `customers` customers from several threads until a post fails, remembering
// which were answered 202 (count() counts events). Stop with `stop`, then join.
class Posters {
 public:
  Posters(const Daemon& d, int customers, Way way) {
    for (int t = 0; t < 4; ++t) {
      threads_.emplace_back([this, &d, customers, t, way] {
        auto c = d.Client();
        const int per_request = way == Way::kInbox ? 11 : 1;
        for (int n = 0; !stop_; ++n) {
          json events = json::array();
          std::vector<std::pair<std::string, std::string>> posted;  // customer, key
          for (int k = 0; k < per_request; ++k) {
            std::string key =
                "ev-" + std::to_string(t) + "-" + std::to_string(n) + "-" + std::to_string(k);
            std::string customer = "k-" + std::to_string((t + n + k) % customers);
            json event = {{"customer_id", customer}, {"type", "ping"}};
            if (way == Way::kDirectTagged) {
              event["properties"] = {{"tag", key}};
            } else {
              event["id"] = key;
            }
            events.push_back(std::move(event));
            posted.emplace_back(customer, key);
          }
          const std::string body = per_request == 1 ? events[0].dump() : events.dump();
          auto r = c->Post("/v1/events", body, "application/json");
          if (!r) break;  // the daemon is gone
          if (r->status == 202) {
            std::lock_guard lock(mu_);
            for (const auto& [customer, key] : posted) acknowledged_[customer].insert(key);
            count_ += static_cast<int>(posted.size());
          }
        }
      });
    }
  }
  ~Posters() { Join(); }
  void Join() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  int count() {
    std::lock_guard lock(mu_);
    return count_;
  }
  std::map<std::string, std::set<std::string>> acknowledged() {
    std::lock_guard lock(mu_);
    return acknowledged_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  int count_ = 0;
  std::map<std::string, std::set<std::string>> acknowledged_;
  std::vector<std::thread> threads_;
};

class AcknowledgedEventsTest : public ::testing::TestWithParam<Way> {
 protected:
  static constexpr int kPosted = 8;  // customers

  void SetUp() override {
    d_.WriteJourney("pings", R"(journey pings "Pings" {
  enter when event "ping"
  re_enter always
  step count {
    set customer.pings = customer.pings + 1
    exit "counted"
  }
}
)");
    ASSERT_TRUE(d_.Start());
    for (int i = 0; i < kPosted; ++i) d_.PutCustomer("k-" + std::to_string(i), json::object());
  }

  // What tells an event apart in the timeline: its id or its tag.
  static std::string Key(const json& t) {
    if (GetParam() != Way::kDirectTagged) return t.value("id", "");
    return t.contains("properties") ? t["properties"].value("tag", "") : "";
  }

  // After a restart: every acknowledged event is in its customer's timeline, exactly once.
  void ExpectAllProcessed(const std::map<std::string, std::set<std::string>>& acknowledged) {
    for (const auto& [customer, ids] : acknowledged) {
      std::multiset<std::string> seen;
      bool all = WaitUntil(
          [&] {
            seen.clear();
            for (const json& t : d_.Timeline(customer, "event"))
              if (!Key(t).empty()) seen.insert(Key(t));
            for (const std::string& id : ids)
              if (!seen.count(id)) return false;
            return true;
          },
          10s);
      int missing = 0;
      for (const std::string& id : ids) missing += seen.count(id) == 0;
      EXPECT_TRUE(all) << customer << ": " << missing << " of " << ids.size()
                       << " acknowledged events never processed";
      for (const std::string& id : ids) EXPECT_LE(seen.count(id), 1u) << id;
    }
  }

  Daemon d_;
};

TEST_P(AcknowledgedEventsTest, EventsAcknowledgedRightBeforeSigkillAreProcessed) {
  Posters posters(d_, kPosted, GetParam());
  ASSERT_TRUE(WaitUntil([&] { return posters.count() >= 300; }, 15s));
  d_.Kill();
  posters.Join();
  auto acknowledged = posters.acknowledged();
  ASSERT_TRUE(d_.Start());
  ExpectAllProcessed(acknowledged);
}

TEST_P(AcknowledgedEventsTest, SigtermWhilePostingExitsZeroAndLosesNothing) {
  Posters posters(d_, kPosted, GetParam());
  ASSERT_TRUE(WaitUntil([&] { return posters.count() >= 300; }, 15s));
  EXPECT_EQ(d_.Stop(), 0) << d_.Log();
  posters.Join();
  EXPECT_FALSE(d_.LogLinesWith("stopped").empty()) << d_.Log();
  // Structured logs: every line is one JSON object with a time, a level and a message.
  std::istringstream log(d_.Log());
  std::string line;
  while (std::getline(log, line)) {
    json j = json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << line;
    EXPECT_TRUE(j.contains("ts") && j.contains("level") && j.contains("msg")) << line;
  }
  auto acknowledged = posters.acknowledged();
  ASSERT_TRUE(d_.Start());
  ExpectAllProcessed(acknowledged);
  EXPECT_EQ(d_.Stop(), 0);
}

// A request of up to 10 events is advanced and stored by one commit of the processor; a bigger
// one goes through the inbox. Each event is processed once, and a repeated id has no effect.
TEST_P(AcknowledgedEventsTest, SmallRequestsSkipTheInbox) {
  const Way way = GetParam();
  json events = json::array();
  for (int n = 0; n < 5; ++n) {
    json event = {{"customer_id", "k-0"}, {"type", "ping"}};
    if (way != Way::kDirectTagged) event["id"] = "ping-" + std::to_string(n % 4);  // one repeat
    if (way == Way::kInbox) {
      events.push_back(event);
    } else {
      d_.PostEvent(event);
    }
  }
  if (way == Way::kInbox) {
    for (int n = 0; n < 6; ++n) events.push_back({{"customer_id", "k-1"}, {"type", "ping"}});
    EXPECT_EQ(d_.Post("/v1/events", events.dump()).status, 202);
  }
  const int pings = way == Way::kDirectTagged ? 5 : 4;
  auto count = [&](const std::string& customer) {
    json profile = d_.Customer(customer).value("profile", json::object());
    return profile.contains("attributes") ? profile["attributes"].value("pings", 0) : 0;
  };
  ASSERT_TRUE(WaitUntil([&] { return count("k-0") == pings; })) << d_.Customer("k-0").dump();
  // /metrics is refreshed every second.
  const bool inbox = way == Way::kInbox;
  const std::string used = inbox ? "itinera_ingest_commits_total" : "itinera_events_direct_total";
  const std::string unused = inbox ? "itinera_events_direct_total" : "itinera_ingest_commits_total";
  ASSERT_TRUE(WaitUntil([&] { return d_.Metric(used) >= (inbox ? 1 : 5); }, 3s)) << used;
  EXPECT_EQ(d_.Metric(unused), 0) << unused;
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(count("k-0"), pings);  // the repeated id had no effect
}

INSTANTIATE_TEST_SUITE_P(Ways, AcknowledgedEventsTest,
                         ::testing::Values(Way::kDirectTagged, Way::kDirectWithIds, Way::kInbox),
                         [](const ::testing::TestParamInfo<Way>& p) {
                           switch (p.param) {
                             case Way::kDirectTagged:
                               return "DirectWithoutIds";
                             case Way::kDirectWithIds:
                               return "DirectWithIds";
                             case Way::kInbox:
                               return "Inbox";
                           }
                           return "";
                         });

}  // namespace
}  // namespace itinera::daemon_testing
