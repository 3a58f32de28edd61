// The store seam: everything the daemon keeps durably.
//
// Customer profiles, the event inbox, per-(customer, journey) JourneyState, the due-time index,
// recent sends (frequency caps), lead-routing counters, the transactional outbox, the 360-view
// timeline and per-journey counters. Implementations: MemoryStore (tests, simulator-like runs),
// SqliteStore (the embedded default) and PgStore (PostgreSQL, shared by several daemons); all
// pass the same conformance suite (tests/orchestrator/store_conformance.h).
//
// The daemon advances many customers with the pure engine, collects the results in a Batch and
// applies it with Commit: one transaction, all or nothing (group commit: many transitions per
// fsync). State writes carry the version they were computed from, so a concurrent writer shows
// up as a "conflict" error instead of a lost update.
//
// Errors are values (Result/Status); codes: "not_found", "conflict", "invalid_argument",
// "storage" (the backend failed or is unreachable: retry later), "corrupt" (stored data does
// not parse), "lease_lost" (a fenced commit whose partition lease moved on). Times are whole
// seconds (util/time.h). Implementations are thread-safe.
//
// Several daemons may share one store when Shared() is true (PostgreSQL): they split the
// customers by partition (orchestrator/partitions.h) with RenewLeases, read only their own
// partitions' inbox and timers, and fence their commits with the lease epochs they hold.
#ifndef ITINERA_ORCHESTRATOR_STORE_H_
#define ITINERA_ORCHESTRATOR_STORE_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "orchestrator/model.h"
#include "orchestrator/partitions.h"
#include "util/result.h"
#include "util/time.h"

namespace itinera::orch {

// An event offered to AppendEvents.
struct NewEvent {
  std::string id;  // the idempotency id; empty when the sender gave none (never deduplicated)
  std::string customer;
  Time at{};                                       // the event's timestamp
  nlohmann::json body = nlohmann::json::object();  // the normalised event
};

// An event in the store; `seq` orders all events of all customers (increasing, gaps allowed).
struct StoredEvent {
  int64_t seq = 0;
  std::string id;
  std::string customer;
  Time at{};
  nlohmann::json body;
  bool processed = false;
};

// The profile before and after an upsert; `before` is null when the customer was new.
struct ProfileChange {
  nlohmann::json before;
  nlohmann::json after;
};

// One customer's state in one journey. `version` counts the writes: 1 after the first.
struct StoredState {
  std::string customer;
  std::string journey;
  JourneyState state;
  int64_t version = 0;
};

// A (customer, journey) whose next wake-up time has come.
struct DueTimer {
  std::string customer;
  std::string journey;
  Time wake{};
};

enum class MessageStatus { kPending, kSent, kDead, kCancelled };

const char* MessageStatusName(MessageStatus status);
std::optional<MessageStatus> ParseMessageStatus(const std::string& name);

// One version of one journey as the daemon first loaded it. Kept so customers in flight on an
// old version keep running on it after the file changed and the daemon restarted.
struct JourneyVersion {
  std::string journey;
  int64_t version = 0;
  std::string fingerprint;  // Program::fingerprint: a hash of the source
  std::string file;         // where it was read from (informational)
  std::string source;       // the journey text
  Time loaded_at{};
};

// A message in the outbox. `id` is the idempotency key (Engine's MessageId).
struct OutboxMessage {
  std::string id;
  std::string customer;
  std::string journey;
  std::string channel;    // "email", "sms", "alert", "webhook"
  std::string recipient;  // address, phone number, rep id or webhook name
  nlohmann::json payload = nlohmann::json::object();  // rendered; the dispatcher's input
  MessageStatus status = MessageStatus::kPending;
  Time created_at{};
  Time not_before{};  // not dispatched before this instant
  int64_t attempts = 0;
  std::string last_error;
  std::optional<Time> sent_at;
};

// One delivery outcome, as Store::RecordOutcomes records it: kSent as MarkSent(id, at), kRetry
// as MarkRetry(id, at, error), kDead as MarkDead(id, error), kCancelled as MarkCancelled(id,
// error) (`error` is the reason). `at` is unused for kDead and kCancelled.
struct OutboxOutcome {
  enum Kind { kSent, kRetry, kDead, kCancelled };
  std::string id;
  Kind kind = kSent;
  Time at{};
  std::string error;
};

// One line of the customer's 360 view. `seq` is assigned by the store.
struct TimelineEntry {
  int64_t seq = 0;
  std::string customer;
  Time at{};
  std::string kind;  // "event", "sent", "skipped", "alert", ... (the simulator's record kinds)
  nlohmann::json data = nlohmann::json::object();
};

// Everything that results from advancing a batch of customers; applied by Commit in one
// transaction. Each list is applied in order; an empty Batch is a no-op.
struct Batch {
  // An RFC 7396 merge patch applied to the stored profile inside the transaction (created when
  // absent; "id" is always the customer id). A patch, not the whole profile, so an upsert through
  // the API that lands between the engine's read and this commit is kept.
  struct ProfileWrite {
    std::string customer;
    nlohmann::json patch;
  };
  // Writes a JourneyState. `expected_version`: the version the state was read at (0: must not
  // exist yet); nullopt writes unconditionally. A mismatch fails the whole batch ("conflict").
  struct StateWrite {
    std::string customer;
    std::string journey;
    JourneyState state;
    std::optional<int64_t> expected_version;
  };
  // Sets (or, with nullopt, clears) the next wake-up time of a (customer, journey).
  struct TimerWrite {
    std::string customer;
    std::string journey;
    std::optional<Time> wake;
  };
  struct SendWrite {
    std::string customer;
    SendRecord send;
  };
  struct CounterDelta {
    std::string journey;
    std::string name;  // "entered", "step.offer", "sent.email", ...
    int64_t delta = 0;
  };

  std::vector<ProfileWrite> profiles;
  std::vector<StateWrite> states;
  std::vector<TimerWrite> timers;
  std::vector<int64_t> processed_events;  // event seqs leaving the inbox
  // Events the batch advanced without their passing through the inbox (Processor::Advance):
  // stored as AppendEvents stores them, in order, but already processed. A non-empty `id` must
  // be new (neither stored nor earlier in the list): one that is not fails the commit
  // ("conflict"), since what the batch decided assumed the event had not been seen.
  std::vector<NewEvent> arrived;
  // Inserted pending with their not_before and attempts (1 and now + lease: claimed as ClaimDue
  // would claim them, so the committing daemon can deliver them without a claim); an id
  // already present, or earlier in the list: no-op.
  std::vector<OutboxMessage> outbox;
  std::vector<std::string> cancel_messages;  // pending messages to cancel (by id)
  std::vector<SendWrite> sends;
  RoutingDelta routing;
  std::vector<TimelineEntry> timeline;  // `seq` ignored
  std::vector<CounterDelta> counters;
  // When set, a shared store commits only if `fence.node` still holds, at `fence.epochs`, the
  // lease of every partition listed (the partitions of the customers advanced); otherwise
  // nothing is written and Commit answers "lease_lost". Stores that are not shared ignore it.
  std::optional<Fence> fence;

  bool empty() const;
};

// What Store::LoadCustomers reads about each customer: always the profile and the sends since
// `sends_since`; the journey states and pending events only when asked (the processor needs
// them to advance a customer, the dispatcher's pre-send check needs neither).
struct CustomerReads {
  Time sends_since;
  bool states = false;
  int events_per_customer = 0;  // up to this many pending events each; none when 0
};

// What the processor and the dispatcher read about one customer (Store::LoadCustomers).
struct CustomerSnapshot {
  std::optional<nlohmann::json> profile;  // nullopt: no profile yet
  std::vector<SendRecord> sends;          // as RecentSends(customer, sends_since)
  std::vector<StoredState> states;        // as ListStates, when asked for
  std::vector<StoredEvent> pending;       // as PendingEvents(customer, events_per_customer)
};

// LoadCustomers' answer built from single-customer reads, each returning a Result:
// `profile(c)`, `sends(c, since)`, `states(c)` and `pending(c, limit)`. Store's default passes
// its own single-customer calls; a store may pass reads that run inside one transaction.
template <typename Profile, typename Sends, typename States, typename Pending>
Result<std::map<std::string, CustomerSnapshot>> LoadEachCustomer(
    const std::vector<std::string>& customers, const CustomerReads& reads, Profile&& profile,
    Sends&& sends, States&& states, Pending&& pending) {
  std::map<std::string, CustomerSnapshot> out;
  for (const std::string& c : customers) {
    CustomerSnapshot& snap = out[c];
    auto p = profile(c);
    if (!p.ok()) return p.error();
    snap.profile = std::move(*p);
    auto s = sends(c, reads.sends_since);
    if (!s.ok()) return s.error();
    snap.sends = std::move(*s);
    if (reads.states) {
      auto st = states(c);
      if (!st.ok()) return st.error();
      snap.states = std::move(*st);
    }
    if (reads.events_per_customer > 0) {
      auto e = pending(c, reads.events_per_customer);
      if (!e.ok()) return e.error();
      snap.pending = std::move(*e);
    }
  }
  return out;
}

class EventWatch;

// The persistence interface. See the file comment for the contract; implementations are
// thread-safe, and every method is atomic on its own.
class Store {
 public:
  virtual ~Store() = default;

  // ---- profiles ----
  // The profile ({"id", "email", ..., "attributes", "consent"}) or nullopt.
  virtual Result<std::optional<nlohmann::json>> GetProfile(const std::string& customer) = 0;
  // Merges `patch` (an object, RFC 7396 merge patch: nested objects merge, null removes) into
  // the profile, creating it when absent; "id" is always the customer id.
  virtual Result<ProfileChange> UpsertProfile(const std::string& customer,
                                              const nlohmann::json& patch) = 0;
  // As UpsertProfile and, in the same transaction, appends `on_change` to the inbox with
  // body["before"] set to the profile before the patch (null for a new customer), when the patch
  // changed the profile. The profile and the event commit together or not at all, so a crash
  // cannot leave a changed profile whose journeys never heard of the change.
  virtual Result<ProfileChange> UpsertProfileRecorded(const std::string& customer,
                                                      const nlohmann::json& patch,
                                                      NewEvent on_change) = 0;
  // Erasure: deletes the profile, events, journey states, timers, sends and timeline; outbox
  // messages keep only their id and status (payload and recipient are wiped; pending ones are
  // cancelled). Erasing an unknown customer is not an error.
  virtual Status EraseCustomer(const std::string& customer) = 0;

  // ---- events (the inbox) ----
  // Durably appends the events (all or none); an `id` seen before (also earlier in the same
  // call) is accepted without effect. Returns how many were new.
  virtual Result<int64_t> AppendEvents(const std::vector<NewEvent>& events) = 0;
  // The customer's unprocessed events, oldest (lowest seq) first.
  virtual Result<std::vector<StoredEvent>> PendingEvents(const std::string& customer,
                                                         int limit) = 0;
  // Customers in `only` with unprocessed events, the one waiting longest first.
  virtual Result<std::vector<std::string>> InboxCustomers(int limit, const PartitionSet& only) = 0;
  // Those of `ids` that a stored event carries (in the inbox or processed), each once.
  virtual Result<std::vector<std::string>> KnownEventIds(const std::vector<std::string>& ids) = 0;

  // ---- journey states and the due index ----
  virtual Result<std::optional<StoredState>> GetState(const std::string& customer,
                                                      const std::string& journey) = 0;
  // Every journey state of the customer, by journey id.
  virtual Result<std::vector<StoredState>> ListStates(const std::string& customer) = 0;
  // (customer, journey) pairs of customers in `only` whose wake time is <= now, earliest first
  // (ties: customer, then journey), at most `limit`. Answered from an index ordered by wake time.
  virtual Result<std::vector<DueTimer>> DueCustomers(Time now, int limit,
                                                     const PartitionSet& only) = 0;

  // ---- frequency caps and routing ----
  // The customer's sends at or after `since`, oldest first, on every channel.
  virtual Result<std::vector<SendRecord>> RecentSends(const std::string& customer, Time since) = 0;
  virtual Result<RoutingSnapshot> GetRouting() = 0;

  // ---- the outbox ----
  virtual Result<std::optional<OutboxMessage>> GetMessage(const std::string& id) = 0;
  // Leases up to `limit` pending messages of `channel` (every channel when empty) with
  // not_before <= now, earliest first (ties: SQLite in the order the messages were written, which
  // keeps a claim's rows and their outcomes on neighbouring pages; the others by id): each gets
  // attempts + 1 and not_before = now + lease, so a
  // dispatcher that dies mid-send has its messages claimed again (with the same id) once the
  // lease runs out. Lanes claim per channel, so one slow provider never holds up the others.
  virtual Result<std::vector<OutboxMessage>> ClaimDue(Time now, int limit, Seconds lease,
                                                      const std::string& channel) = 0;
  virtual Status MarkSent(const std::string& id, Time at) = 0;
  // A pending message due again at `at` (its claim given back). MarkRetry and MarkDead change
  // only a pending message: one already sent, dead or cancelled keeps that first outcome and
  // the call is Ok, so a late report from a lane that lost its claim cannot bring a message back.
  virtual Status MarkRetry(const std::string& id, Time at, const std::string& error) = 0;
  virtual Status MarkDead(const std::string& id, const std::string& error) = 0;
  // Not sent, by decision (consent withdrawn, address gone, cap reached at dispatch time): the
  // message becomes kCancelled with `reason` as its last_error.
  virtual Status MarkCancelled(const std::string& id, const std::string& reason) = 0;
  // The outcomes of a dispatcher pass: each applied as its Mark* call would apply it, in order,
  // all in one transaction (one commit for the whole pass). All land or none: an unknown id
  // fails the call ("not_found") and nothing is written. Applying an outcome twice leaves what
  // applying it once does, so a call that failed ("storage") can simply be made again. The
  // default implementation makes the Mark* calls one by one, which is not atomic.
  virtual Status RecordOutcomes(const std::vector<OutboxOutcome>& outcomes);
  // Messages with the status, oldest (created_at, then id) first: the dead letters for
  // `GET /v1/messages?status=dead`.
  virtual Result<std::vector<OutboxMessage>> ListMessages(MessageStatus status, int limit) = 0;

  // ---- the 360 view and stats ----
  // Newest first (by time, then by insertion).
  virtual Result<std::vector<TimelineEntry>> Timeline(const std::string& customer, int limit) = 0;
  virtual Result<std::map<std::string, int64_t>> JourneyCounters(const std::string& journey) = 0;
  // Outbox messages of the journey (every journey when `journey` is empty) counted by channel
  // and status: {"email.sent": 12, "email.pending": 3, "sms.dead": 1, ...}; absent keys are 0.
  virtual Result<std::map<std::string, int64_t>> MessageCounts(const std::string& journey) = 0;

  // ---- journey versions ----
  // Records a version the first time it is loaded. The same (journey, version) again with the
  // same fingerprint is a no-op; with another fingerprint it is a "conflict" (a changed journey
  // that kept its version number) and nothing is written.
  virtual Status SaveJourneyVersion(const JourneyVersion& version) = 0;
  // Every recorded version, by journey id then version.
  virtual Result<std::vector<JourneyVersion>> ListJourneyVersions() = 0;

  // ---- the processor's and the dispatcher's read ----
  // For each customer (every id gets an entry, empty when the store knows nothing of it): what
  // `reads` asks for. The same answers as the single-customer calls, in a few round trips for a
  // whole batch (SQLite and PostgreSQL read them from one snapshot); the default implementation
  // makes those calls one by one.
  virtual Result<std::map<std::string, CustomerSnapshot>> LoadCustomers(
      const std::vector<std::string>& customers, const CustomerReads& reads);

  // ---- the transaction ----
  // Applies the whole batch in one transaction, or nothing of it. When `inserted` is given and
  // the commit succeeds, it holds the positions in batch.outbox of the messages this commit
  // inserted, in order: not those whose id was in the outbox already (their row stands).
  virtual Status Commit(const Batch& batch, std::vector<size_t>* inserted) = 0;
  Status Commit(const Batch& batch) { return Commit(batch, nullptr); }

  // ---- several daemons on one store ----
  // Whether several processes may share this store. When false (the defaults below), a daemon
  // owns every partition and needs no leases.
  virtual bool Shared() const { return false; }
  // Marks `node` alive for `ttl`, rebalances with PlanLeases against the nodes alive now, renews
  // the expiry of every lease the node keeps (to now + ttl, on the store's clock, so the
  // daemons' clocks need not agree) and returns what it holds. A node that stops renewing is
  // dropped, and its partitions are taken over, once its ttl has passed.
  virtual Result<Ownership> RenewLeases(const std::string& node, Seconds ttl);
  // A clean stop: frees every lease of `node` and drops it from the live nodes, so the others
  // take over at their next renewal instead of after the ttl.
  virtual Status ReleaseLeases(const std::string& node);
  // Announcements of events appended by any process (LISTEN/NOTIFY on PostgreSQL), so a daemon
  // hears of work in its partitions without polling. nullptr when the store has none (in one
  // process the API pokes the processor directly).
  virtual Result<std::unique_ptr<EventWatch>> WatchEvents();
};

// A subscription to the announcements of new events. Not thread-safe: one thread waits on it.
class EventWatch {
 public:
  virtual ~EventWatch() = default;
  // Waits up to `timeout` and returns the partitions that got new events (empty after a quiet
  // timeout; repeats possible). An error ("storage") means the subscription is broken: open a
  // new one, and poll meanwhile, since announcements made while it was broken are gone.
  virtual Result<std::vector<int>> Wait(std::chrono::milliseconds timeout) = 0;
};

struct StoreOptions {
  int pool = 8;  // PostgreSQL: connections, shared by the daemon's threads
};

// Whether `url` names a PostgreSQL database ("postgresql://" or "postgres://").
bool IsPostgresUrl(const std::string& url);

// Opens a store from its URL: "memory:" (a MemoryStore), "sqlite:PATH" (parent folders are
// created), "sqlite::memory:", or "postgresql://..." / "postgres://..." (a libpq connection
// URI; schema migrations are applied on open).
Result<std::unique_ptr<Store>> OpenStore(const std::string& url,
                                         const StoreOptions& options = StoreOptions());

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_STORE_H_
