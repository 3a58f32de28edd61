// The dispatcher: delivers the outbox through the connectors.
//
// Four lanes, one per outbox channel — email, sms, alert (to the rep's channel: Slack, email,
// SMS or webhook) and webhook — each with its own claiming thread, its own connector instances
// and its own rate limit, so one slow or failing provider never stalls the others. A lane claims
// due messages of its channel with a lease (Store::ClaimDue): a process that dies mid-send has
// them claimed again after the lease, with the same idempotency key.
//
// A pass of a lane: one claim (up to 256 messages per connection), reads of the profiles and
// recent sends of the batch's email and SMS customers (Store::LoadCustomers, 256 messages' at a
// time, each just ahead of those messages' turn), then `connections` sender workers take the
// claimed messages one at a time, each through its own connectors (connectors are not thread-safe;
// an SMTP connector keeps its connection open between sends), all sharing the lane's rate limit.
// The outcomes are recorded together (Store::RecordOutcomes: one transaction per pass, or per 256
// messages): a crash between a send and its record sends that message again, with the same key,
// once its lease runs out.
//
// Once started, a lane's thread only claims; its workers live as long as the lane and take messages
// from the passes it queues. A started lane that is keeping up also takes fresh messages straight
// from the processor (Takes, Claimed, Take): the commit that inserts them claims them, and they are
// queued as a pass of their own without a claim. An unthrottled lane whose last pass took under a
// quarter of the lease claims its next pass while the workers send the current one, so the
// connections do not idle through a claim; a rate-limited or slow lane claims one pass at a time,
// since a pass claimed early would spend its lease waiting.
//
// Just before an email or SMS goes out, consent, the address, frequency caps and quiet hours are
// checked again (on its chunk's read; not for a message taken from the processor, which the engine
// checked on the processor's read just before its commit) with the engine's own DeliverHeld:
// withdrawn consent cancels the message, quiet hours defer it to the window's end. Outcomes: kSent
// -> sent; kTransient -> retried with exponential backoff and full jitter (half to all of initial *
// 2^(attempt-1), at most retry_max) until max_attempts, then dead; kPermanent -> dead at once (a
// dead letter, visible in GET /v1/messages?status=dead). Secrets (webhook keys, Slack URLs, SMTP
// passwords) come from the configuration at send time and are never stored in the outbox.
#ifndef ITINERA_ORCHESTRATOR_DISPATCHER_H_
#define ITINERA_ORCHESTRATOR_DISPATCHER_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
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
  int connections = 4;                  // sender workers per lane, each with its own connectors
  // Messages claimed at once by a lane; 0: 256 per connection. A rate-limited lane claims no more
  // than its rate lets it send in a quarter of the lease.
  int claim = 0;
  // How long an idle lane sleeps before it looks again for what no poke announced: retries
  // come due, deferred messages, leases run out.
  std::chrono::milliseconds idle_poll{1000};
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
  std::atomic<int64_t> claimed{0};  // messages claimed from the outbox
  std::atomic<int64_t> taken{0};    // messages taken straight from the processor (Take)
};

class Dispatcher {
 public:
  static const std::vector<std::string>& Lanes();  // "email", "sms", "alert", "webhook"

  // `make` builds one worker's connectors: called `connections` times per lane, on Start or the
  // lane's first RunLane.
  Dispatcher(Store& store, const Clock& clock, const JourneyRegistry& registry,
             const Directory& directory, DispatcherOptions options,
             std::function<LaneConnectors(const std::string& lane)> make);
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  void Start();  // one thread per lane
  void Poke();   // new messages may be due on any lane
  // New messages may be due on `lane` ("email", "sms", "alert", "webhook"): only its thread
  // wakes to claim, so the others do not take the store's writer for nothing.
  void Poke(const std::string& lane);
  // Finishes the sends in progress, gives back what was claimed and not sent, joins.
  void Stop();

  // Fresh messages handed over in memory, so that their lane need not claim them: the daemon's
  // processor asks Takes before the commit that inserts a lane's messages. When it answers
  // true, the processor inserts those due now already claimed (Claimed) and gives the ones its
  // commit inserted to Take. A lane takes them when it is started, not rate-limited, its passes
  // are quick (under a quarter of the lease) and fewer than `connections` passes are
  // unfinished; otherwise it declines, and its messages are claimed from the outbox in bulk,
  // so a burst does not queue passes whose leases run while they wait.
  bool Takes(const std::string& lane);
  // `message` as ClaimDue leaves a message it claims at `now`: one attempt more, leased.
  void Claimed(OutboxMessage& message, Time now) const;
  // Delivers messages of `lane` committed claimed (Claimed) at `claimed` (taken before the
  // commit, so the pass's lease is not overestimated). A lane stopped meanwhile gives them back
  // to the outbox, due at once.
  void Take(const std::string& lane, std::vector<OutboxMessage> messages,
            std::chrono::steady_clock::time_point claimed);

  // One pass of one lane: claims what is due and delivers it, on the caller's thread and
  // `connections` - 1 more, and records every outcome before it returns. Returns how many
  // messages were handled (not given back). For tests and tools; not while the lane is started.
  Result<int> RunLane(const std::string& lane);

  const LaneStats& stats(const std::string& lane) const { return *lanes_.at(lane)->stats; }

 private:
  struct Pass;          // one claimed batch being delivered (dispatcher.cc)
  struct CustomerRead;  // the pre-send read of part of a pass (dispatcher.cc)
  struct Lane {
    std::string name;
    std::vector<LaneConnectors> connectors;  // one set per worker; made on first use
    double rate = 0;
    std::mutex throttle_mu;
    std::chrono::steady_clock::time_point next_send{};  // guarded by throttle_mu
    std::unique_ptr<LaneStats> stats = std::make_unique<LaneStats>();
    std::thread thread;  // claims and queues passes (Loop)

    // The started lane's sender workers (Serve), one per connection, made at its first pass.
    std::vector<std::thread> workers;
    std::mutex queue_mu;
    // Each waiter is woken only for what it waits for: a worker for a queued pass (as many
    // workers as the pass has messages) or the lane closing, the lane thread for a claimed
    // pass finishing or the stop.
    std::condition_variable work_cv;
    std::condition_variable ready_cv;
    std::deque<std::shared_ptr<Pass>> queue;  // passes with messages not yet taken
    int unfinished = 0;         // passes queued and not all recorded; guarded by queue_mu
    int claims_unfinished = 0;  // those of them the lane claimed (not taken); guarded by queue_mu
    bool quick = false;    // the last pass took under a quarter of the lease; guarded by queue_mu
    bool closed = false;   // the lane thread has stopped: workers leave once the queue is empty
    bool serving = false;  // its workers have started (Take queues only then)
    uint64_t pokes = 0;    // Poke()s and Poke(name)s so far; guarded by the dispatcher's mu_
  };

  // A started lane's thread: claims a pass whenever fewer than its depth of its claimed passes
  // are unfinished.
  void Loop(Lane& lane);
  // A started lane's sender worker: works on the queued passes until the lane closes.
  void Serve(Lane& lane, LaneConnectors& connectors);
  void MakeConnectors(Lane& lane);
  // Queues a pass for the started lane's workers; false when they could not be started.
  bool Queue(Lane& lane, std::shared_ptr<Pass> pass);
  // After a pass of `messages` is queued: wakes as many of the lane's workers.
  void WakeWorkers(Lane& lane, size_t messages);
  // Whether a started lane would claim now: fewer of its claimed passes unfinished than it
  // keeps going. Passes taken from the processor do not count, so they never hold up a claim
  // (of retries come due, say).
  bool Ready(const Lane& lane) const;  // with lane.queue_mu held
  int ClaimSize(const Lane& lane) const;
  // The lease, fine enough to be divided (a lease of 1 s halves to 500 ms, not 0).
  std::chrono::duration<double> Lease() const { return options_.lease; }
  // Claims up to ClaimSize of the lane's due messages; null when none is due.
  Result<std::shared_ptr<Pass>> Claim(Lane& lane);
  // Reads, once, the profiles and recent sends of the email and SMS customers of one chunk of
  // the pass's messages (dispatcher.cc).
  const CustomerRead& ReadCustomers(Pass& pass, size_t chunk);
  // A sender worker: takes the pass's messages one at a time until none is left. The worker
  // that finishes the pass's last message records what is left of its outcomes.
  void Work(Pass& pass, LaneConnectors& connectors);
  // Delivers one claimed message and reports its outcome.
  void Deliver(Pass& pass, LaneConnectors& connectors, const OutboxMessage& message,
               const CustomerRead& read);
  // The check just before an email or SMS goes out, on its chunk's read: consent, address,
  // caps and quiet hours (DeliverHeld). False when it reported the message's outcome (retried,
  // cancelled or deferred); true to send it, to `to` (which the check may change).
  bool Recheck(Pass& pass, const OutboxMessage& message, const CustomerRead& read, Time now,
               std::string& to);
  // Adds an outcome to the pass; records a chunk once enough are waiting.
  void Report(Pass& pass, OutboxOutcome outcome);
  void Flush(const std::string& lane, const std::vector<OutboxOutcome>& outcomes);
  Seconds Backoff(int64_t attempts);
  // Waits for the lane's next send slot (shared by its workers); returns at once when stopping.
  void Throttle(Lane& lane);
  // Records outcomes. A "storage" failure (the database is restarting) is retried until it
  // lands, so a message that went out is not claimed and sent again once its lease runs out;
  // only a stopping lane gives up (then the send may repeat after the restart).
  Status Record(const std::function<Status()>& write);

  Store& store_;
  const Clock& clock_;
  const JourneyRegistry& registry_;
  const Directory& directory_;
  const DispatcherOptions options_;
  const int connections_;  // options_.connections, at least 1
  std::function<LaneConnectors(const std::string&)> make_;
  std::map<std::string, std::unique_ptr<Lane>> lanes_;

  std::mutex mu_;
  std::condition_variable wake_;
  std::atomic<bool> stopping_{false};
  std::mutex rng_mu_;
  std::mt19937_64 rng_;
};

// The plain-text context block an alert carries (name, contact, journey, last events).
std::string AlertContextText(const nlohmann::json& context);

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_DISPATCHER_H_
