// The embedded default Store: one SQLite database file (libsqlite3 is used only here).
//
// WAL journal, synchronous=FULL (a Commit that returned Ok survives a crash or power loss),
// a busy timeout so several connections can share the file, and BEGIN IMMEDIATE write
// transactions. The schema is created and migrated on Open from an ordered list of migrations;
// each applied migration is recorded in `schema_migrations`, so a reopen applies only the new
// ones. Statements are prepared once and cached. Thread-safe: one writing connection, guarded
// by a mutex, and one reading connection (below).
//
// Group commit across callers: SQLite has one writer, so the writes of every thread (the
// inbox's appends, the processor's batches, the lanes' claims and outcomes, the API's profile
// updates) queue for it, and the first in the queue commits itself and everything queued
// behind it in one transaction and one fsync, each write in a savepoint of its own: a write
// that fails (a conflict, a refused argument) is undone alone and the others commit. A caller
// returns once its transaction has committed. Not copyable; closing happens in the destructor.
// The implementation is split: sqlite_store.cc (opening, migrations, profiles, events, states,
// Commit) and sqlite_outbox.cc (outbox, timeline, counters, journey versions).
#ifndef ITINERA_ORCHESTRATOR_SQLITE_STORE_H_
#define ITINERA_ORCHESTRATOR_SQLITE_STORE_H_

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "orchestrator/store.h"

struct sqlite3;
struct sqlite3_stmt;

namespace itinera::orch {

class SqliteStore final : public Store {
 public:
  // `path`: a database file (parent folders are created) or ":memory:".
  static Result<std::unique_ptr<SqliteStore>> Open(const std::string& path);
  // The number of migrations this build knows; Open brings every database to it.
  static int64_t LatestSchemaVersion();

  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  // The highest migration recorded in the database.
  Result<int64_t> SchemaVersion();
  // How many migrations are recorded (one row each; a re-migration would add rows).
  Result<int64_t> MigrationCount();
  // "ok", or SQLite's description of the damage (PRAGMA integrity_check).
  Result<std::string> IntegrityCheck();

  // The group commit so far: transactions committed, the writes they committed (each a call
  // such as AppendEvents or Commit; one rolled back to its savepoint does not count), and the
  // writes queued right now (the one being written included).
  struct WriteStats {
    int64_t transactions = 0;
    int64_t writes = 0;
    int64_t queued = 0;
  };
  WriteStats write_stats();

  Result<std::optional<nlohmann::json>> GetProfile(const std::string& customer) override;
  Result<ProfileChange> UpsertProfile(const std::string& customer,
                                      const nlohmann::json& patch) override;
  Result<ProfileChange> UpsertProfileRecorded(const std::string& customer,
                                              const nlohmann::json& patch,
                                              NewEvent on_change) override;
  Status EraseCustomer(const std::string& customer) override;

  Result<int64_t> AppendEvents(const std::vector<NewEvent>& events) override;
  Result<std::vector<StoredEvent>> PendingEvents(const std::string& customer, int limit) override;
  Result<std::vector<std::string>> InboxCustomers(int limit, const PartitionSet& only) override;
  Result<std::vector<std::string>> KnownEventIds(const std::vector<std::string>& ids) override;

  Result<std::optional<StoredState>> GetState(const std::string& customer,
                                              const std::string& journey) override;
  Result<std::vector<StoredState>> ListStates(const std::string& customer) override;
  Result<std::vector<DueTimer>> DueCustomers(Time now, int limit,
                                             const PartitionSet& only) override;

  Result<std::vector<SendRecord>> RecentSends(const std::string& customer, Time since) override;
  Result<RoutingSnapshot> GetRouting() override;

  Result<std::map<std::string, CustomerSnapshot>> LoadCustomers(
      const std::vector<std::string>& customers, const CustomerReads& reads) override;

  Result<std::optional<OutboxMessage>> GetMessage(const std::string& id) override;
  Result<std::vector<OutboxMessage>> ClaimDue(Time now, int limit, Seconds lease,
                                              const std::string& channel) override;
  Status MarkSent(const std::string& id, Time at) override;
  Status MarkRetry(const std::string& id, Time at, const std::string& error) override;
  Status MarkDead(const std::string& id, const std::string& error) override;
  Status MarkCancelled(const std::string& id, const std::string& reason) override;
  Status RecordOutcomes(const std::vector<OutboxOutcome>& outcomes) override;
  Result<std::vector<OutboxMessage>> ListMessages(MessageStatus status, int limit) override;

  Result<std::vector<TimelineEntry>> Timeline(const std::string& customer, int limit) override;
  Result<std::map<std::string, int64_t>> JourneyCounters(const std::string& journey) override;
  Result<std::map<std::string, int64_t>> MessageCounts(const std::string& journey) override;

  Status SaveJourneyVersion(const JourneyVersion& version) override;
  Result<std::vector<JourneyVersion>> ListJourneyVersions() override;

  using Store::Commit;
  Status Commit(const Batch& batch, std::vector<size_t>* inserted) override;

 private:
  explicit SqliteStore(sqlite3* db) : db_(db) {}
  // Opens the reading connection (a file database only; ":memory:" reads through the writer).
  Status OpenReader(const std::string& path);

  Status Exec(const char* sql);  // statements without results (pragmas, DDL)
  Status Run(const char* sql);   // the same, prepared once and cached (transaction control)
  Status Migrate();
  Result<sqlite3_stmt*> Prepare(const char* sql);
  // Reads that are not part of a write go through the reading connection, under its own lock.
  std::unique_lock<std::mutex> LockRead();
  Result<sqlite3_stmt*> PrepareRead(const char* sql);
  Error StorageError(const std::string& what);
  Error ReadError(const std::string& what);  // an error of the reading connection
  // The single-customer reads, LockRead held (on their own, or in LoadCustomers' transaction).
  Result<std::optional<nlohmann::json>> ReadProfile(const std::string& customer);
  Result<std::vector<SendRecord>> ReadSends(const std::string& customer, Time since);
  Result<std::vector<StoredState>> ReadStates(const std::string& customer);
  Result<std::vector<StoredEvent>> ReadPending(const std::string& customer, int limit);
  // Runs `body` inside BEGIN IMMEDIATE ... COMMIT; rolls back when it or the commit fails.
  // Opening only (migrations): everything else writes through Write.
  Status Transaction(const std::function<Status()>& body);
  struct Writer;
  // Runs `body` in a savepoint of the next write transaction, shared with the writes other
  // threads queued meanwhile, and returns once that transaction has committed: the body's
  // status, or the commit's error. `body` runs on whichever thread leads the group, with the
  // writing connection's mutex held; it must not call Write.
  Status Write(const std::function<Status()>& body);
  // The leader's part: the group's bodies, each in its savepoint, then COMMIT (BEGIN done).
  void WriteGroup(const std::vector<Writer*>& group);
  // Ends the open transaction, if any, keeping nothing of it; never fails or throws.
  void RollBack();
  // Merges `patch` into the customer's profile (created when absent); inside a transaction.
  Result<ProfileChange> PatchProfile(const std::string& customer, const nlohmann::json& patch);
  Status ApplyState(const Batch::StateWrite& write);
  // Inserts the event (`processed` or in the inbox) unless its id is stored already; returns
  // whether it did. Inside a transaction.
  Result<bool> InsertEvent(const NewEvent& event, bool processed);
  Result<std::optional<OutboxMessage>> ReadMessage(const std::string& id);  // LockRead held

  std::mutex mu_;  // the writing connection: every transaction, and reads inside them
  std::mutex queue_mu_;
  std::deque<Writer*> writers_;  // waiting for a transaction, in order; the front leads
  std::atomic<int64_t> transactions_{0};
  std::atomic<int64_t> writes_{0};
  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*> statements_;
  // The reading connection. In WAL mode a reader sees the last commit and never waits for a
  // writer: the processor's and the API's reads go on while the inbox, the processor or a
  // dispatcher lane commits and fsyncs.
  std::mutex read_mu_;
  sqlite3* reader_ = nullptr;
  std::unordered_map<std::string, sqlite3_stmt*> read_statements_;
};

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_SQLITE_STORE_H_
