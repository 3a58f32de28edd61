// A journeys folder, a templates folder, a configuration and an in-memory store: what the
// processor, registry and dispatcher tests run against.
#ifndef ITINERA_TESTS_ORCHESTRATOR_DAEMON_FIXTURE_H_
#define ITINERA_TESTS_ORCHESTRATOR_DAEMON_FIXTURE_H_

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "../connectors/temp_dir.h"
#include "orchestrator/clock.h"
#include "orchestrator/config.h"
#include "orchestrator/journey_registry.h"
#include "orchestrator/memory_store.h"
#include "orchestrator/processor.h"

namespace itinera::orch::testing {

inline Time T(int64_t seconds) { return Time{Seconds{1795341600 + seconds}}; }  // 2026-11-22 06:40Z

class DaemonFixture : public ::testing::Test {
 protected:
  // A rep of team "sales" whose alerts go by email.
  static Rep SalesRep(const std::string& id, const std::string& name, const std::string& email) {
    Rep rep;
    rep.id = id;
    rep.name = name;
    rep.email = email;
    rep.alert_via = "email";
    rep.team = "sales";
    return rep;
  }

  void SetUp() override {
    config_.base_dir = dir_.path().string();
    Write("templates/hello.email.mustache",
          "---\nsubject: Hello {{customer.first_name}}\n---\n<p>Hi {{customer.first_name}}, see "
          "<a href=\"https://dealer.example/offer?x=1&amp;y=2\">the offer</a>.</p>\n");
    Write("templates/again.email.mustache", "---\nsubject: Again\n---\n<p>Again</p>\n");
    Write("templates/nudge.sms.mustache", "Hi {{customer.first_name}}!");
    Write("templates/hot.alert.mustache", "{{customer.first_name}} opened the offer");
    config_.directory.teams["sales"] = {SalesRep("rep_anna", "Anna", "anna@dealer.example")};
    config_.directory.webhooks["crm"] = {"crm", "http://127.0.0.1:1/crm", "s3cret"};
  }

  void Write(const std::string& relative, const std::string& text) {
    auto path = dir_.path() / relative;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << text;
  }

  // A journey file journeys/<id>.journey.
  void Journey(const std::string& id, int version, const std::string& body) {
    Write("journeys/" + id + ".journey",
          "journey " + id + " {\n  version " + std::to_string(version) + "\n" + body + "}\n");
  }

  void StartRegistry() {
    registry_ = std::make_unique<JourneyRegistry>(config_, store_);
    report_ = registry_->Load();
    ProcessorOptions options;
    options.public_url = "https://t.example";
    options.tracking_secret = "test-secret";
    processor_ =
        std::make_unique<Processor>(store_, clock_, *registry_, config_.directory, options);
  }

  void Profile(const std::string& id, const nlohmann::json& patch) {
    ASSERT_TRUE(store_.UpsertProfile(id, patch).ok());
  }

  // An event as the API makes it, at the clock's time.
  NewEvent MakeEvent(const std::string& customer, const std::string& type,
                     nlohmann::json properties = nlohmann::json::object(),
                     const std::string& id = "") {
    NewEvent e;
    e.id = id;
    e.customer = customer;
    e.at = clock_.Now();
    e.body = {{"customer_id", customer},
              {"type", type},
              {"timestamp", FormatTime(e.at)},
              {"properties", std::move(properties)}};
    if (!id.empty()) e.body["id"] = id;  // as the API normalises it
    return e;
  }

  // Appends an event to the inbox.
  void Event(const std::string& customer, const std::string& type,
             nlohmann::json properties = nlohmann::json::object(), const std::string& id = "") {
    ASSERT_TRUE(store_.AppendEvents({MakeEvent(customer, type, std::move(properties), id)}).ok());
  }

  // Runs the processor until it has nothing to do; returns the customers advanced.
  int Drain() {
    int total = 0;
    for (int i = 0; i < 100; ++i) {
      auto n = processor_->RunOnce();
      EXPECT_TRUE(n.ok()) << n.error().message;
      if (!n.ok() || *n == 0) break;
      total += *n;
    }
    return total;
  }

  std::vector<OutboxMessage> Pending() {
    auto m = store_.ListMessages(MessageStatus::kPending, 1000);
    EXPECT_TRUE(m.ok());
    return m.ok() ? *m : std::vector<OutboxMessage>{};
  }

  int64_t Counter(const std::string& journey, const std::string& name) {
    auto c = store_.JourneyCounters(journey);
    if (!c.ok()) return -1;
    auto it = c->find(name);
    return it == c->end() ? 0 : it->second;
  }

  connectors::testing::TempDir dir_;
  Config config_;
  MemoryStore store_;
  ManualClock clock_{T(0)};
  std::unique_ptr<JourneyRegistry> registry_;
  std::unique_ptr<Processor> processor_;
  ReloadReport report_;
};

}  // namespace itinera::orch::testing

#endif  // ITINERA_TESTS_ORCHESTRATOR_DAEMON_FIXTURE_H_
