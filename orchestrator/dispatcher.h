// The dispatcher: delivers the outbox through the connectors.
//
// Four lanes, one per outbox channel — email, sms, alert (to the rep's channel: Slack, email,
// SMS or webhook) and webhook — each with its own thread, its own connector instances and its
// own rate limit, so one slow or failing provider never stalls the others. A lane claims due
// messages of its channel with a lease (Store::ClaimDue): a process that dies mid-send has them
// claimed again after the lease, with the same idempotency key.
//
// Just before an email or SMS goes out, consent, the address, frequency caps and quiet hours are
// checked again with the engine's own DeliverHeld: withdrawn consent cancels the message, quiet
// hours defer it to the window's end. Outcomes: kSent -> sent; kTransient -> retried with
// exponential backoff and full jitter (half to all of initial * 2^(attempt-1), at most
// retry_max) until max_attempts, then dead; kPermanent -> dead at once (a dead letter, visible
// in GET /v1/messages?status=dead). Secrets (webhook keys, Slack URLs, SMTP passwords) come from
// the configuration at send time and are never stored in the outbox.
#ifndef ITINERA_ORCHESTRATOR_DISPATCHER_H_
#define ITINERA_ORCHESTRATOR_DISPATCHER_H_

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "connectors/connector.h"
#include "orchestrator/clock.h"
#include "orchestrator/directory.h"
#include "orchestrator/journey_registry.h"
#include "orchestrator/store.h"

namespace itinera::orch {

// The connectors one lane uses; a null one answers kPermanent ("not configured").
struct LaneConnectors {
  std::unique_ptr<connectors::Connector> email;
  std::unique_ptr<connectors::Connector> sms;
  std::unique_ptr<connectors::Connector> chat;
  std::unique_ptr<connectors::Connector> webhook;
};

struct DispatcherOptions {
  int max_attempts = 8;
  Seconds retry_initial{30};
  Seconds retry_max{3600};
  std::map<std::string, double> rates;  // lane -> messages per second; absent or 0: unlimited
  Seconds lease{300};                   // a claimed message is claimed again after this
  int claim = 32;                       // messages claimed at once by a lane
  std::string email_from = "Itinera <itinera@localhost>";
  uint64_t seed = 0;  // jitter; 0: random
};

// Per-lane totals, for /metrics.
struct LaneStats {
  std::atomic<int64_t> sent{0};
  std::atomic<int64_t> retried{0};
  std::atomic<int64_t> dead{0};
  std::atomic<int64_t> cancelled{0};
  std::atomic<int64_t> deferred{0};
  std::atomic<int64_t> send_micros{0};
};

class Dispatcher {
 public:
  static const std::vector<std::string>& Lanes();  // "email", "sms", "alert", "webhook"

  // `make` builds one lane's connectors (called once per lane, on Start or the first RunLane).
  Dispatcher(Store& store, const Clock& clock, const JourneyRegistry& registry,
             const Directory& directory, DispatcherOptions options,
             std::function<LaneConnectors(const std::string& lane)> make);
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  void Start();  // one thread per lane
  void Poke();   // new messages may be due
  // Finishes the sends in progress, gives back what was claimed and not sent, joins.
  void Stop();

  // One pass of one lane on the caller's thread: claims what is due and delivers it. Returns
  // how many messages were handled. For tests and for Start's threads.
  Result<int> RunLane(const std::string& lane);

  const LaneStats& stats(const std::string& lane) const { return *lanes_.at(lane)->stats; }

 private:
  struct Lane {
    std::string name;
    LaneConnectors connectors;
    bool made = false;
    double rate = 0;
    std::chrono::steady_clock::time_point next_send{};
    std::unique_ptr<LaneStats> stats = std::make_unique<LaneStats>();
    std::thread thread;
  };

  void Loop(Lane& lane);
  // Delivers one claimed message and records the outcome.
  void Deliver(Lane& lane, const OutboxMessage& message);
  Seconds Backoff(int64_t attempts);
  void Throttle(Lane& lane);
  // Records the outcome of a send. A "storage" failure (the database is restarting) is retried
  // until it lands, so a message that went out is not claimed and sent again once its lease
  // runs out; only a stopping lane gives up (then the send may repeat after the restart).
  Status Record(const std::function<Status()>& write);

  Store& store_;
  const Clock& clock_;
  const JourneyRegistry& registry_;
  const Directory& directory_;
  const DispatcherOptions options_;
  std::function<LaneConnectors(const std::string&)> make_;
  std::map<std::string, std::unique_ptr<Lane>> lanes_;

  std::mutex mu_;
  std::condition_variable wake_;
  uint64_t pokes_ = 0;
  std::atomic<bool> stopping_{false};
  std::mutex rng_mu_;
  std::mt19937_64 rng_;
};

// The plain-text context block an alert carries (name, contact, journey, last events).
std::string AlertContextText(const nlohmann::json& context);

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_DISPATCHER_H_
