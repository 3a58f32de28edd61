// The processor: advances customers with the pure engine and commits what it decided.
//
// A batch is up to `batch` customers that have unprocessed events or due timers. Each of them is
// advanced through every journey (due timers first, then events oldest first, then the journeys
// that react to profile changes), and everything — profile patches, journey states with their
// versions, wake-up times, processed events, the rendered outbox messages, sends for frequency
// caps, routing counters, the 360 timeline and journey counters — is written in ONE Commit
// (group commit: one fsync for many transitions; the state change and the messages it causes
// commit together). Nothing is sent here; the Dispatcher reads the outbox, or takes a batch's
// messages from the processor once they are committed (ProcessorOptions::hand_over).
//
// RunOnce pipelines batches: the next batch is read and advanced on the calling thread while
// the previous one commits on the processor's commit thread (started by the first RunOnce and
// kept until the processor is destroyed), so the engine's CPU work and the commit's wait
// overlap.
// One commit is in flight at a time, and the next batch leaves its customers out.
//
// Emails are rendered and rewritten for tracking at this point, so the message that goes out
// after a crash is byte-for-byte the one committed. The tracking secret signs open, click and
// unsubscribe links (orchestrator/tracking.h).
//
// Events can also skip the inbox (Processor::Advance): an API request hands them to the
// processor, the next batch advances them after whatever its customers already had pending,
// and its commit stores them already processed, with everything they caused. One durable stage
// instead of two (the inbox's commit, then the batch's), and no read of the inbox in between;
// the request is answered once that commit is done. Requests the processor cannot take that way
// are declined, and the caller appends them to the inbox as before.
//
// One Processor per daemon; RunOnce is not re-entrant (per-customer processing is serial
// because one thread advances the daemon's customers, and on a shared store the partition
// leases keep other daemons off them). If Commit fails nothing is lost: the events stay in the
// inbox and the timers stay due, and the next RunOnce starts over from the store.
#ifndef ITINERA_ORCHESTRATOR_PROCESSOR_H_
#define ITINERA_ORCHESTRATOR_PROCESSOR_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "orchestrator/clock.h"
#include "orchestrator/directory.h"
#include "orchestrator/journey_registry.h"
#include "orchestrator/store.h"
#include "util/result.h"

namespace itinera::orch {

// The event type the daemon appends when a profile changes through the API; `before` carries
// the profile before the change. Types starting with '$' are refused from outside.
inline constexpr const char* kProfileChangedEvent = "$profile";

// How far back a customer's sends are read for frequency caps: longer than any cap window.
inline constexpr Seconds kSendHistory{400 * 86400};

struct ProcessorOptions {
  int batch = 500;                // customers per commit
  int events_per_customer = 100;  // events of one customer per RunOnce
  std::string public_url = "http://127.0.0.1:8080";
  std::string tracking_secret;  // required: signs tracking and unsubscribe links
  // The partitions this daemon may advance, asked at the start of every RunOnce. Unset: all
  // of them (a store that is not shared). Otherwise only customers of the leased partitions are
  // read, and the commit is fenced with their lease epochs (Batch::fence).
  std::function<Ownership()> ownership;
  // Called as soon as a batch has committed, with its number of customers and the outbox
  // channels it added messages to for their lanes to claim (not those handed over), each once,
  // in order (the daemon wakes those lanes of the dispatcher: the messages are in the outbox).
  // Runs on the committing thread.
  std::function<void(int customers, const std::vector<std::string>& channels)> committed;
  // Fresh messages handed straight to delivery (the daemon's dispatcher), so their lane need
  // not claim them from the outbox. Unset: every message waits in the outbox to be claimed.
  struct HandOver {
    // Asked just before a batch commits, once per channel with messages due now: whether that
    // channel's lane takes them now.
    std::function<bool(const std::string& channel)> takes;
    // Marks a message of such a channel claimed as it is inserted (Dispatcher::Claimed), so
    // that it is not claimed again unless the daemon dies before sending it.
    std::function<void(OutboxMessage& message, Time now)> claim;
    // After the commit: the messages it inserted claimed (not those whose id was in the outbox
    // already: their row decides), by channel, with the steady-clock instant of the claim.
    std::function<void(const std::string& channel, std::vector<OutboxMessage> messages,
                       std::chrono::steady_clock::time_point claimed)>
        take;
  };
  HandOver hand_over;
  // Asked before each batch of a RunOnce: true ends it there, once the batch in flight has
  // committed (the daemon's graceful stop).
  std::function<bool()> stop;
  // Whether Advance takes events; the daemon sets it when the store is not shared (on a shared
  // store a customer's partition may belong to another daemon: with `ownership` set, Advance
  // declines).
  bool direct = false;
  // Called when Advance has queued events: wakes the thread that calls RunOnce.
  std::function<void()> arrived;
};

// Running totals, for /metrics.
struct ProcessorStats {
  std::atomic<int64_t> batches{0};
  std::atomic<int64_t> customers{0};
  std::atomic<int64_t> events{0};
  std::atomic<int64_t> timers{0};
  std::atomic<int64_t> transitions{0};  // engine calls
  std::atomic<int64_t> effects{0};
  std::atomic<int64_t> messages{0};  // outbox messages written
  std::atomic<int64_t> commit_failures{0};
  std::atomic<int64_t> commit_micros{0};
  std::atomic<int64_t> direct_events{0};  // events advanced and stored through Advance
  std::atomic<int64_t> declined{0};       // Advance calls that were declined
};

class Processor {
 public:
  Processor(Store& store, const Clock& clock, const JourneyRegistry& registry,
            const Directory& directory, ProcessorOptions options);
  ~Processor();

  // Advances what is due now, in up to kBatchesPerRun batches of `batch` customers, each read
  // and advanced while the one before it commits. Returns how many customers were advanced and
  // committed (0: nothing to do); every commit has finished when it returns. On an error the
  // batches committed before it stay committed.
  Result<int> RunOnce();

  static constexpr int kBatchesPerRun = 8;

  // Advances `events` in the next batch, without the inbox, and returns once that batch's
  // commit is done: Ok when the events are stored, processed, with what they caused; nullopt
  // when declined, and the caller appends them to the inbox instead. An event whose id is
  // stored already, or came earlier in the batch, is accepted without effect, as AppendEvents
  // accepts it. Declined:
  // - when `direct` is off, or `ownership` is set; after Close;
  // - while the processor is behind (its last batch was full; or batch-many requests wait) or
  //   failing (its last RunOnce failed); both also decline the requests waiting;
  // - a request with more customers than the batch has room for;
  // - a request of more than kMaxDirectEvents events (a big batch is cheaper through the
  //   inbox);
  // - a customer with more pending events than a batch reads of it (the events must follow
  //   them);
  // - a batch that fails before its commit, or whose commit is refused (nothing of it was
  //   stored). A storage error at the commit, whose outcome may be unknown, is returned as
  //   the request's status instead: appending the events again could store them twice.
  // Does not block: answers through `done`, once, from whichever thread settles the request
  // (the committing thread, the one calling RunOnce, or the caller itself when it declines at
  // once), with the status, or with nullopt and the events back when declined. `done` must not
  // block: the batch's other requests wait for it. If AdvanceAsync throws, `done` is not called.
  // Another thread must be calling RunOnce. Thread-safe.
  using Advanced = std::function<void(std::optional<Status>, std::vector<NewEvent>&&)>;
  void AdvanceAsync(std::vector<NewEvent> events, Advanced done);
  // AdvanceAsync, waiting for its answer.
  std::optional<Status> Advance(std::vector<NewEvent> events);
  // Declines what Advance has queued and every later call (the daemon's stop: requests still
  // come in while the processor winds down). A batch already taken commits as usual.
  void Close();

  static constexpr int kMaxDirectEvents = 10;

  const ProcessorStats& stats() const { return stats_; }

 private:
  class Work;
  class Committer;
  struct Prepared;
  // A request waiting in AdvanceAsync; owned by whoever holds it, deleted by Finish.
  struct Arrival {
    std::vector<NewEvent> events;
    Advanced done;
  };
  // The batch being committed: the next one leaves its customers out.
  struct InFlight {
    std::set<std::string> customers;
    int due_rows = 0;
    std::set<std::string> event_ids;  // of the events it stores from Advance
  };

  // RunOnce's work.
  Result<int> RunBatches();
  // Reads up to `batch` customers that are due and not in flight, advances them and returns the
  // Batch to commit (nullopt: nothing due). `carried`: routing counters to use instead of the
  // store's (those the batch in flight ended with).
  Result<std::optional<Prepared>> Prepare(const InFlight& in_flight,
                                          std::optional<RoutingSnapshot> carried);
  // Commits a prepared batch of `customers` (on the committing thread), hands its fresh
  // messages over and reports it (options_.hand_over, options_.committed). Takes the handed
  // messages out of `batch`.
  Status Commit(Batch& batch, int customers, std::vector<Arrival*>& arrivals);
  // Declines every request waiting in the queue.
  void DeclineWaiting();
  // Answers the requests, deletes them and empties `arrivals`. Not under arrivals_mu_.
  void Finish(std::vector<Arrival*>& arrivals, const std::optional<Status>& result);
  // Takes from the queue, in order, the requests none of whose customers or event ids is in
  // flight, as long as `customers` stays within `limit` (declining those that do not fit); adds
  // their customers to it.
  std::vector<Arrival*> TakeArrivals(const InFlight& in_flight, std::vector<std::string>& customers,
                                     size_t limit);

  Store& store_;
  const Clock& clock_;
  const JourneyRegistry& registry_;
  const Directory& directory_;
  const ProcessorOptions options_;
  ProcessorStats stats_;
  std::unique_ptr<Committer> committer_;  // started by the first RunOnce

  std::mutex arrivals_mu_;
  std::deque<Arrival*> arrivals_;  // waiting in Advance, not yet taken by a batch
  bool closed_ = false;
  // The last batch was full, or the last RunOnce failed: Advance declines.
  std::atomic<bool> behind_{false};
};

// An RFC 7396 merge patch that turns `before` into `after` (objects are diffed key by key;
// arrays and scalars are replaced whole; removed keys become null).
nlohmann::json MergePatchDiff(const nlohmann::json& before, const nlohmann::json& after);

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_PROCESSOR_H_
