#include "orchestrator/sqlite_store.h"

#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "orchestrator/sqlite_internal.h"
#include "orchestrator/sqlite_schema.h"

namespace itinera::orch {

using nlohmann::json;

using sqlite_internal::FromSecs;
using sqlite_internal::Limit;
using sqlite_internal::ParseJson;
using sqlite_internal::PayloadHtml;
using sqlite_internal::PayloadWithoutHtml;
using sqlite_internal::Secs;

namespace {

// What both connections need: a busy timeout and itinera_partition(customer) (PartitionOf, for
// the partition filters of the inbox and timers).
void Setup(sqlite3* db) {
  sqlite3_busy_timeout(db, 10000);
  sqlite3_create_function(
      db, "itinera_partition", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, nullptr,
      [](sqlite3_context* context, int, sqlite3_value** args) {
        const unsigned char* text = sqlite3_value_text(args[0]);
        std::string_view customer(text ? reinterpret_cast<const char*>(text) : "",
                                  static_cast<size_t>(sqlite3_value_bytes(args[0])));
        sqlite3_result_int(context, PartitionOf(customer));
      },
      nullptr, nullptr);
}

// SQLite counts every allocation it makes under one process-wide mutex unless told not to
// before it initialises; nothing here reads those counts. Too late (SQLite already in use) it
// changes nothing.
void ConfigureOnce() {
  static std::once_flag once;
  std::call_once(once, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
}

}  // namespace

Result<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path) {
  ConfigureOnce();
  if (path != ":memory:") {
    std::filesystem::path parent = std::filesystem::path(path).parent_path();
    std::error_code ec;
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (ec) return Error{"storage", "cannot create " + parent.string() + ": " + ec.message()};
  }
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return Error{"storage", "cannot open " + path + ": " + message};
  }
  std::unique_ptr<SqliteStore> store(new SqliteStore(db));
  Setup(db);
  for (const char* pragma :
       {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA foreign_keys=ON"}) {
    if (Status s = store->Exec(pragma); !s.ok()) return s.error();
  }
  if (Status s = store->Migrate(); !s.ok()) return s.error();
  if (path != ":memory:") {
    if (Status s = store->OpenReader(path); !s.ok()) return s.error();
  }
  return store;
}

Status SqliteStore::OpenReader(const std::string& path) {
  int rc =
      sqlite3_open_v2(path.c_str(), &reader_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = reader_ ? sqlite3_errmsg(reader_) : sqlite3_errstr(rc);
    sqlite3_close(reader_);
    reader_ = nullptr;
    return Error{"storage", "cannot open " + path + " for reading: " + message};
  }
  Setup(reader_);
  return Status::Ok();
}

int64_t SqliteStore::LatestSchemaVersion() {
  return static_cast<int64_t>(kSqliteMigrations.size());
}

SqliteStore::~SqliteStore() {
  for (auto& [sql, stmt] : read_statements_) sqlite3_finalize(stmt);
  sqlite3_close(reader_);
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  sqlite3_close(db_);
}

Error SqliteStore::StorageError(const std::string& what) {
  return Error{"storage", what + ": " + sqlite3_errmsg(db_)};
}

Error SqliteStore::ReadError(const std::string& what) {
  return Error{"storage", what + ": " + sqlite3_errmsg(reader_ != nullptr ? reader_ : db_)};
}

Status SqliteStore::Exec(const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    std::string text = message ? message : "unknown error";
    sqlite3_free(message);
    return Error{"storage", text};
  }
  return Status::Ok();
}

Status SqliteStore::Run(const char* sql) {
  ITINERA_SQL(q, sql);
  if (q.Step() != SQLITE_DONE) return StorageError(sql);
  return Status::Ok();
}

Result<sqlite3_stmt*> SqliteStore::Prepare(const char* sql) {
  auto it = statements_.find(sql);
  if (it != statements_.end()) return it->second;
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK) {
    return StorageError(std::string("prepare ") + sql);
  }
  statements_.emplace(sql, stmt);
  return stmt;
}

std::unique_lock<std::mutex> SqliteStore::LockRead() {
  return std::unique_lock<std::mutex>(reader_ != nullptr ? read_mu_ : mu_);
}

Result<sqlite3_stmt*> SqliteStore::PrepareRead(const char* sql) {
  if (reader_ == nullptr) return Prepare(sql);
  auto it = read_statements_.find(sql);
  if (it != read_statements_.end()) return it->second;
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v3(reader_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) !=
      SQLITE_OK) {
    return Error{"storage", std::string("prepare ") + sql + ": " + sqlite3_errmsg(reader_)};
  }
  read_statements_.emplace(sql, stmt);
  return stmt;
}

Status SqliteStore::Transaction(const std::function<Status()>& body) {
  if (Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  Status result = body();
  if (result.ok()) result = Exec("COMMIT");
  if (!result.ok()) (void)Exec("ROLLBACK");
  return result;
}

// A write waiting in the queue for its transaction.
struct SqliteStore::Writer {
  const std::function<Status()>* body;
  Status status = Status::Ok();
  bool done = false;
  std::condition_variable cv;
};

Status SqliteStore::Write(const std::function<Status()>& body) {
  Writer me;
  me.body = &body;
  std::unique_lock queue(queue_mu_);
  writers_.push_back(&me);
  while (!me.done && &me != writers_.front()) me.cv.wait(queue);
  if (me.done) return me.status;  // a leader wrote it

  // The front of the queue leads: once it holds SQLite's write lock, it takes every write
  // queued by then (its own first) into one transaction. Each thread has at most one write
  // queued, so a group is bounded by the threads that write.
  queue.unlock();
  size_t taken = 1;
  {
    std::lock_guard lock(mu_);
    try {
      // A ROLLBACK that failed before may have left a transaction open: end it, or no BEGIN
      // would ever succeed again.
      RollBack();
      Status begun = Run("BEGIN IMMEDIATE");
      if (!begun.ok()) {
        me.status = begun;  // the next in the queue tries again
      } else {
        std::vector<Writer*> group;
        {
          std::lock_guard again(queue_mu_);
          taken = writers_.size();
          group.assign(writers_.begin(), writers_.end());
        }
        WriteGroup(group);
      }
    } catch (const std::exception& e) {
      // The leader's own work ran out of memory: nothing of the group is kept, and the queue
      // still moves on.
      RollBack();
      std::lock_guard again(queue_mu_);
      for (size_t i = 0; i < taken; ++i) writers_[i]->status = Error{"internal", e.what()};
    }
  }
  queue.lock();
  for (size_t i = 0; i < taken; ++i) {
    Writer* done = writers_.front();
    writers_.pop_front();
    done->done = true;
    if (done != &me) done->cv.notify_one();
  }
  if (!writers_.empty()) writers_.front()->cv.notify_one();  // the next leader
  return me.status;
}

void SqliteStore::RollBack() {
  if (sqlite3_get_autocommit(db_) == 0) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

namespace {

// A write's body, its exceptions turned into its own error.
Status RunBody(const std::function<Status()>& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    return Error{"internal", e.what()};
  } catch (...) {
    return Error{"internal", "unknown exception"};
  }
}

}  // namespace

void SqliteStore::WriteGroup(const std::vector<Writer*>& group) {
  // Set when the transaction cannot commit as it is: a write alone failed, SQLite rolled it
  // back itself (an I/O error, a full disk, no memory), or a failed write of a group could not
  // be undone alone. Every write of the group then fails, and none is kept.
  std::optional<Error> lost;
  int64_t kept = 0;
  if (group.size() == 1) {  // alone: no savepoint needed, the transaction is the write's own
    Writer* w = group.front();
    w->status = RunBody(*w->body);
    if (w->status.ok()) {
      kept = 1;
    } else {
      lost = w->status.error();
    }
  } else {
    for (Writer* w : group) {
      Status s = Run("SAVEPOINT write");
      if (s.ok()) s = RunBody(*w->body);
      if (sqlite3_get_autocommit(db_) != 0) {
        lost = s.ok() ? StorageError("transaction rolled back") : s.error();
        break;
      }
      // Released when it succeeded; otherwise undone alone, and the other writes stay.
      Status ended = s.ok() ? Run("RELEASE write") : Run("ROLLBACK TO write");
      if (ended.ok() && !s.ok()) ended = Run("RELEASE write");
      if (!ended.ok()) {
        lost = ended.error();
        break;
      }
      if (s.ok()) ++kept;
      w->status = s;
    }
  }
  Status committed = lost ? Status(*lost) : Run("COMMIT");
  if (!committed.ok()) {
    RollBack();
    for (Writer* w : group) {
      if (w->status.ok()) w->status = committed;
    }
    return;
  }
  transactions_.fetch_add(1, std::memory_order_relaxed);
  writes_.fetch_add(kept, std::memory_order_relaxed);
}

SqliteStore::WriteStats SqliteStore::write_stats() {
  WriteStats stats;
  stats.transactions = transactions_.load(std::memory_order_relaxed);
  stats.writes = writes_.load(std::memory_order_relaxed);
  std::lock_guard queue(queue_mu_);
  stats.queued = static_cast<int64_t>(writers_.size());
  return stats;
}

Status SqliteStore::Migrate() {
  std::lock_guard lock(mu_);
  if (Status s = Exec("CREATE TABLE IF NOT EXISTS schema_migrations "
                      "(version INTEGER PRIMARY KEY)");
      !s.ok()) {
    return s;
  }
  return Transaction([&]() -> Status {
    int64_t current = 0;
    {
      ITINERA_SQL(q, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
      if (q.Step() != SQLITE_ROW) return StorageError("read schema version");
      current = q.Int(0);
    }
    for (int64_t v = current + 1; v <= LatestSchemaVersion(); ++v) {
      if (Status s = Exec(kSqliteMigrations[v - 1]); !s.ok()) {
        return Error{"storage", "migration " + std::to_string(v) + ": " + s.error().message};
      }
      ITINERA_SQL(record, "INSERT INTO schema_migrations (version) VALUES (?)");
      if (record.Bind(v).Step() != SQLITE_DONE) return StorageError("record migration");
    }
    return Status::Ok();
  });
}

Result<int64_t> SqliteStore::SchemaVersion() {
  std::lock_guard lock(mu_);
  ITINERA_SQL(q, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  if (q.Step() != SQLITE_ROW) return StorageError("read schema version");
  return q.Int(0);
}

Result<int64_t> SqliteStore::MigrationCount() {
  std::lock_guard lock(mu_);
  ITINERA_SQL(q, "SELECT COUNT(*) FROM schema_migrations");
  if (q.Step() != SQLITE_ROW) return StorageError("count migrations");
  return q.Int(0);
}

Result<std::string> SqliteStore::IntegrityCheck() {
  std::lock_guard lock(mu_);
  ITINERA_SQL(q, "PRAGMA integrity_check");
  std::string out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) out += (out.empty() ? "" : "\n") + q.Text(0);
  if (rc != SQLITE_DONE) return StorageError("integrity_check");
  return out;
}

// ---- profiles ----

Result<std::optional<json>> SqliteStore::GetProfile(const std::string& customer) {
  auto lock = LockRead();
  return ReadProfile(customer);
}

Result<std::optional<json>> SqliteStore::ReadProfile(const std::string& customer) {
  ITINERA_READ_SQL(q, "SELECT body FROM profiles WHERE customer = ?");
  int rc = q.Bind(customer).Step();
  if (rc == SQLITE_DONE) return std::optional<json>();
  if (rc != SQLITE_ROW) return ReadError("read profile");
  auto body = ParseJson(q.Text(0));
  if (!body.ok()) return body.error();
  return std::optional<json>(std::move(*body));
}

Result<ProfileChange> SqliteStore::UpsertProfile(const std::string& customer, const json& patch) {
  if (customer.empty()) return Error{"invalid_argument", "empty customer id"};
  if (!patch.is_object()) return Error{"invalid_argument", "a profile patch is a JSON object"};
  ProfileChange change;
  Status s = Write([&]() -> Status {
    auto patched = PatchProfile(customer, patch);
    if (!patched.ok()) return patched.error();
    change = std::move(*patched);
    return Status::Ok();
  });
  if (!s.ok()) return s.error();
  return change;
}

Result<ProfileChange> SqliteStore::UpsertProfileRecorded(const std::string& customer,
                                                         const json& patch, NewEvent on_change) {
  if (customer.empty()) return Error{"invalid_argument", "empty customer id"};
  if (!patch.is_object()) return Error{"invalid_argument", "a profile patch is a JSON object"};
  ProfileChange change;
  Status s = Write([&]() -> Status {
    auto patched = PatchProfile(customer, patch);
    if (!patched.ok()) return patched.error();
    change = std::move(*patched);
    if (change.before == change.after) return Status::Ok();
    on_change.body["before"] = change.before;
    ITINERA_SQL(q, "INSERT INTO events (event_id, customer, at, body) VALUES (NULL, ?, ?, ?)");
    if (q.Bind(customer).Bind(Secs(on_change.at)).Bind(on_change.body.dump()).Step() !=
        SQLITE_DONE) {
      return StorageError("append event");
    }
    return Status::Ok();
  });
  if (!s.ok()) return s.error();
  return change;
}

Result<ProfileChange> SqliteStore::PatchProfile(const std::string& customer, const json& patch) {
  ProfileChange change;
  ITINERA_SQL(read, "SELECT body FROM profiles WHERE customer = ?");
  int rc = read.Bind(customer).Step();
  if (rc == SQLITE_ROW) {
    auto body = ParseJson(read.Text(0));
    if (!body.ok()) return body.error();
    change.before = std::move(*body);
  } else if (rc != SQLITE_DONE) {
    return StorageError("read profile");
  }
  change.after = change.before.is_object() ? change.before : json::object();
  change.after.merge_patch(patch);
  change.after["id"] = customer;
  ITINERA_SQL(write,
              "INSERT INTO profiles (customer, body) VALUES (?, ?) "
              "ON CONFLICT (customer) DO UPDATE SET body = excluded.body");
  if (write.Bind(customer).Bind(change.after.dump()).Step() != SQLITE_DONE) {
    return StorageError("write profile");
  }
  return change;
}

Status SqliteStore::EraseCustomer(const std::string& customer) {
  return Write([&]() -> Status {
    static const char* const kErase[] = {
        "DELETE FROM profiles WHERE customer = ?",
        "DELETE FROM events WHERE customer = ?",
        "DELETE FROM states WHERE customer = ?",
        "DELETE FROM timers WHERE customer = ?",
        "DELETE FROM sends WHERE customer = ?",
        "DELETE FROM timeline WHERE customer = ?",
        "DELETE FROM outbox_html WHERE ref IN (SELECT html_ref FROM outbox WHERE customer = ?)",
        "UPDATE outbox SET recipient = '', payload = '{}', html = NULL, html_ref = NULL, "
        "status = CASE status WHEN 'pending' THEN 'cancelled' ELSE status END "
        "WHERE customer = ?",
    };
    for (const char* sql : kErase) {
      ITINERA_SQL(q, sql);
      if (q.Bind(customer).Step() != SQLITE_DONE) return StorageError("erase");
    }
    return Status::Ok();
  });
}

// ---- events ----

Result<int64_t> SqliteStore::AppendEvents(const std::vector<NewEvent>& events) {
  for (const NewEvent& e : events) {
    if (e.customer.empty()) return Error{"invalid_argument", "an event without a customer"};
  }
  int64_t added = 0;
  Status s = Write([&]() -> Status {
    for (const NewEvent& e : events) {
      Result<bool> inserted = InsertEvent(e, /*processed=*/false);
      if (!inserted.ok()) return inserted.error();
      added += *inserted;
    }
    return Status::Ok();
  });
  if (!s.ok()) return s.error();
  return added;
}

Result<bool> SqliteStore::InsertEvent(const NewEvent& e, bool processed) {
  ITINERA_SQL(q,
              "INSERT INTO events (event_id, customer, at, body, processed) VALUES (?, ?, ?, ?, ?) "
              "ON CONFLICT (event_id) DO NOTHING");
  if (e.id.empty()) {
    q.BindNull();  // never deduplicated
  } else {
    q.Bind(e.id);
  }
  q.Bind(e.customer).Bind(Secs(e.at)).Bind(e.body.dump()).Bind(int64_t{processed});
  if (q.Step() != SQLITE_DONE) return StorageError("store an event");
  return sqlite3_changes(db_) > 0;
}

Result<std::vector<StoredEvent>> SqliteStore::PendingEvents(const std::string& customer,
                                                            int limit) {
  auto lock = LockRead();
  return ReadPending(customer, limit);
}

Result<std::vector<StoredEvent>> SqliteStore::ReadPending(const std::string& customer, int limit) {
  ITINERA_READ_SQL(
      q,
      "SELECT seq, event_id, at, body FROM events WHERE customer = ? AND processed = 0 "
      "ORDER BY seq LIMIT ?");
  q.Bind(customer).Bind(Limit(limit));
  std::vector<StoredEvent> out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) {
    auto body = ParseJson(q.Text(3));
    if (!body.ok()) return body.error();
    out.push_back({q.Int(0), q.Text(1), customer, FromSecs(q.Int(2)), std::move(*body), false});
  }
  if (rc != SQLITE_DONE) return ReadError("read events");
  return out;
}

Result<std::vector<std::string>> SqliteStore::KnownEventIds(const std::vector<std::string>& ids) {
  auto lock = LockRead();
  std::vector<std::string> out;
  std::unordered_set<std::string> seen;
  for (const std::string& id : ids) {
    if (!seen.insert(id).second) continue;
    ITINERA_READ_SQL(q, "SELECT 1 FROM events WHERE event_id = ?");
    const int rc = q.Bind(id).Step();
    if (rc == SQLITE_ROW) {
      out.push_back(id);
    } else if (rc != SQLITE_DONE) {
      return ReadError("read event ids");
    }
  }
  return out;
}

Result<std::vector<std::string>> SqliteStore::InboxCustomers(int limit, const PartitionSet& only) {
  // The pending events in arrival order (events_pending), read only until `limit` customers
  // are found: the first event seen of each customer is its oldest, so this is the order of
  // MIN(seq) without grouping the whole backlog (which costs time in proportion to it). A few
  // customers with very many events could make the walk long: it stops after 64 events per
  // customer asked for, with the customers found so far (at least the oldest one).
  auto lock = LockRead();
  const char* sql = only.all() ? "SELECT customer FROM events WHERE processed = 0 ORDER BY seq"
                               : "SELECT customer FROM events WHERE processed = 0 AND "
                                 "itinera_partition(customer) IN (SELECT value FROM json_each(?)) "
                                 "ORDER BY seq";
  ITINERA_READ_SQL(q, sql);
  if (!only.all()) q.Bind(nlohmann::json(only.list()).dump());
  const size_t wanted = static_cast<size_t>(Limit(limit));
  const int64_t walk = std::max<int64_t>(Limit(limit), 1) * 64;
  std::vector<std::string> out;
  std::unordered_set<std::string> seen;
  int rc = SQLITE_DONE;
  for (int64_t read = 0; out.size() < wanted && read < walk; ++read) {
    rc = q.Step();
    if (rc != SQLITE_ROW) break;
    std::string customer = q.Text(0);
    if (seen.insert(customer).second) out.push_back(std::move(customer));
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return ReadError("read inbox");
  return out;
}

// ---- states and timers ----

Result<std::optional<StoredState>> SqliteStore::GetState(const std::string& customer,
                                                         const std::string& journey) {
  auto lock = LockRead();
  ITINERA_READ_SQL(q, "SELECT version, body FROM states WHERE customer = ? AND journey = ?");
  int rc = q.Bind(customer).Bind(journey).Step();
  if (rc == SQLITE_DONE) return std::optional<StoredState>();
  if (rc != SQLITE_ROW) return ReadError("read state");
  auto body = ParseJson(q.Text(1));
  if (!body.ok()) return body.error();
  auto state = JourneyStateFromJson(*body);
  if (!state.ok()) return Error{"corrupt", "stored state: " + state.error().message};
  return std::optional<StoredState>(StoredState{customer, journey, std::move(*state), q.Int(0)});
}

Result<std::vector<StoredState>> SqliteStore::ListStates(const std::string& customer) {
  auto lock = LockRead();
  return ReadStates(customer);
}

Result<std::vector<StoredState>> SqliteStore::ReadStates(const std::string& customer) {
  ITINERA_READ_SQL(q,
                   "SELECT journey, version, body FROM states WHERE customer = ? ORDER BY journey");
  q.Bind(customer);
  std::vector<StoredState> out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) {
    auto body = ParseJson(q.Text(2));
    if (!body.ok()) return body.error();
    auto state = JourneyStateFromJson(*body);
    if (!state.ok()) return Error{"corrupt", "stored state: " + state.error().message};
    out.push_back({customer, q.Text(0), std::move(*state), q.Int(1)});
  }
  if (rc != SQLITE_DONE) return ReadError("read states");
  return out;
}

Result<std::vector<DueTimer>> SqliteStore::DueCustomers(Time now, int limit,
                                                        const PartitionSet& only) {
  auto lock = LockRead();
  const char* sql = only.all() ? "SELECT customer, journey, wake FROM timers WHERE wake <= ? "
                                 "ORDER BY wake, customer, journey LIMIT ?"
                               : "SELECT customer, journey, wake FROM timers WHERE wake <= ? AND "
                                 "itinera_partition(customer) IN (SELECT value FROM json_each(?)) "
                                 "ORDER BY wake, customer, journey LIMIT ?";
  ITINERA_READ_SQL(q, sql);
  q.Bind(Secs(now));
  if (!only.all()) q.Bind(nlohmann::json(only.list()).dump());
  q.Bind(Limit(limit));
  std::vector<DueTimer> out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) out.push_back({q.Text(0), q.Text(1), FromSecs(q.Int(2))});
  if (rc != SQLITE_DONE) return ReadError("read timers");
  return out;
}

// ---- sends and routing ----

Result<std::vector<SendRecord>> SqliteStore::RecentSends(const std::string& customer, Time since) {
  auto lock = LockRead();
  return ReadSends(customer, since);
}

Result<std::vector<SendRecord>> SqliteStore::ReadSends(const std::string& customer, Time since) {
  ITINERA_READ_SQL(q,
                   "SELECT channel, at, held FROM sends WHERE customer = ? AND at >= ? "
                   "ORDER BY at, rowid");
  q.Bind(customer).Bind(Secs(since));
  std::vector<SendRecord> out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) {
    out.push_back({q.Text(0), FromSecs(q.Int(1)), q.Int(2) != 0});
  }
  if (rc != SQLITE_DONE) return ReadError("read sends");
  return out;
}

// ---- the processor's and the dispatcher's read ----

Result<std::map<std::string, CustomerSnapshot>> SqliteStore::LoadCustomers(
    const std::vector<std::string>& customers, const CustomerReads& reads) {
  // The point reads of the single-customer calls, but in one read transaction: one snapshot,
  // and the WAL's shared-memory locks taken once per batch rather than once per statement.
  auto lock = LockRead();
  {
    ITINERA_READ_SQL(begin, "BEGIN");
    if (begin.Step() != SQLITE_DONE) return ReadError("begin read");
  }
  auto result = LoadEachCustomer(
      customers, reads, [this](const std::string& c) { return ReadProfile(c); },
      [this](const std::string& c, Time since) { return ReadSends(c, since); },
      [this](const std::string& c) { return ReadStates(c); },
      [this](const std::string& c, int limit) { return ReadPending(c, limit); });
  // A read transaction ends the same way whether the reads succeeded or not.
  ITINERA_READ_SQL(end, "COMMIT");
  if (end.Step() != SQLITE_DONE && result.ok()) return ReadError("end read");
  return result;
}

Result<RoutingSnapshot> SqliteStore::GetRouting() {
  auto lock = LockRead();
  ITINERA_READ_SQL(q, "SELECT kind, key, value FROM routing");
  RoutingSnapshot out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) {
    (q.Text(0) == "round_robin" ? out.round_robin : out.load)[q.Text(1)] = q.Int(2);
  }
  if (rc != SQLITE_DONE) return ReadError("read routing");
  return out;
}

// ---- the batch ----

Status SqliteStore::ApplyState(const Batch::StateWrite& w) {
  if (w.customer.empty() || w.journey.empty()) {
    return Error{"invalid_argument", "a state write without customer or journey"};
  }
  const std::string body = ToJson(w.state).dump();
  // One statement: the version check is the UPDATE's condition (or the INSERT's conflict), and
  // the stored version is read only to explain a conflict.
  if (!w.expected_version) {
    ITINERA_SQL(q,
                "INSERT INTO states (customer, journey, version, body) VALUES (?, ?, 1, ?) "
                "ON CONFLICT (customer, journey) DO UPDATE SET version = version + 1, "
                "body = excluded.body");
    if (q.Bind(w.customer).Bind(w.journey).Bind(body).Step() != SQLITE_DONE) {
      return StorageError("write state");
    }
    return Status::Ok();
  }
  const int64_t expected = *w.expected_version;
  if (expected == 0) {
    ITINERA_SQL(q,
                "INSERT INTO states (customer, journey, version, body) VALUES (?, ?, 1, ?) "
                "ON CONFLICT (customer, journey) DO NOTHING");
    if (q.Bind(w.customer).Bind(w.journey).Bind(body).Step() != SQLITE_DONE) {
      return StorageError("write state");
    }
  } else {
    ITINERA_SQL(q,
                "UPDATE states SET version = version + 1, body = ? "
                "WHERE customer = ? AND journey = ? AND version = ?");
    if (q.Bind(body).Bind(w.customer).Bind(w.journey).Bind(expected).Step() != SQLITE_DONE) {
      return StorageError("write state");
    }
  }
  if (sqlite3_changes(db_) == 1) return Status::Ok();
  int64_t version = 0;
  {
    ITINERA_SQL(q, "SELECT version FROM states WHERE customer = ? AND journey = ?");
    int rc = q.Bind(w.customer).Bind(w.journey).Step();
    if (rc == SQLITE_ROW) {
      version = q.Int(0);
    } else if (rc != SQLITE_DONE) {
      return StorageError("read state version");
    }
  }
  return Error{"conflict", "state of " + w.customer + " in " + w.journey + " is at version " +
                               std::to_string(version) + ", not " + std::to_string(expected)};
}

Status SqliteStore::Commit(const Batch& batch, std::vector<size_t>* inserted) {
  if (inserted != nullptr) inserted->clear();
  if (batch.empty()) return Status::Ok();
  // States go last, so a conflict there undoes real work: rolling back to the batch's
  // savepoint (Write) is what keeps it whole.
  std::vector<size_t> added;
  Status committed = Write([&]() -> Status {
    added.clear();
    // First: an event id seen before refuses the batch before any other work is done.
    for (const NewEvent& e : batch.arrived) {
      if (e.customer.empty()) return Error{"invalid_argument", "an event without a customer"};
      Result<bool> inserted = InsertEvent(e, /*processed=*/true);
      if (!inserted.ok()) return inserted.error();
      if (!*inserted) return Error{"conflict", "event " + e.id + " is stored already"};
    }
    for (const auto& p : batch.profiles) {
      if (p.customer.empty() || !p.patch.is_object()) {
        return Error{"invalid_argument", "a profile write needs a customer and an object patch"};
      }
      if (auto patched = PatchProfile(p.customer, p.patch); !patched.ok()) {
        return patched.error();
      }
    }
    for (size_t i = 0; i < batch.outbox.size(); ++i) {
      const OutboxMessage& m = batch.outbox[i];
      if (m.id.empty()) return Error{"invalid_argument", "an outbox message without an id"};
      const std::string* html = PayloadHtml(m.payload);
      std::optional<int64_t> html_ref;
      if (html != nullptr) {
        ITINERA_SQL(h, "INSERT INTO outbox_html (html) VALUES (?)");
        if (h.Bind(*html).Step() != SQLITE_DONE) return StorageError("insert message");
        html_ref = sqlite3_last_insert_rowid(db_);
      }
      ITINERA_SQL(q, "INSERT INTO outbox (" ITINERA_OUTBOX_COLUMNS
                     ", html_ref) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, '', NULL, ?) "
                     "ON CONFLICT (id) DO NOTHING");
      q.Bind(m.id).Bind(m.customer).Bind(m.journey).Bind(m.channel).Bind(m.recipient);
      q.Bind(html != nullptr ? PayloadWithoutHtml(m.payload).dump() : m.payload.dump());
      q.Bind(Secs(m.created_at)).Bind(Secs(m.not_before)).Bind(m.attempts);
      if (html_ref) {
        q.Bind(*html_ref);
      } else {
        q.BindNull();
      }
      if (q.Step() != SQLITE_DONE) return StorageError("insert message");
      if (sqlite3_changes(db_) > 0) {
        added.push_back(i);
      } else if (html_ref) {
        // A message already in the outbox keeps what it was first written with, HTML included.
        ITINERA_SQL(d, "DELETE FROM outbox_html WHERE ref = ?");
        if (d.Bind(*html_ref).Step() != SQLITE_DONE) return StorageError("insert message");
      }
    }
    for (const auto& id : batch.cancel_messages) {
      ITINERA_SQL(q, "UPDATE outbox SET status = 'cancelled' WHERE id = ? AND status = 'pending'");
      if (q.Bind(id).Step() != SQLITE_DONE) return StorageError("cancel message");
    }
    for (const auto& s : batch.sends) {
      ITINERA_SQL(q, "INSERT INTO sends (customer, channel, at, held) VALUES (?, ?, ?, ?)");
      q.Bind(s.customer).Bind(s.send.channel).Bind(Secs(s.send.at)).Bind(int64_t{s.send.held});
      if (q.Step() != SQLITE_DONE) return StorageError("record send");
    }
    for (const auto& e : batch.timeline) {
      ITINERA_SQL(q, "INSERT INTO timeline (customer, at, kind, data) VALUES (?, ?, ?, ?)");
      if (q.Bind(e.customer).Bind(Secs(e.at)).Bind(e.kind).Bind(e.data.dump()).Step() !=
          SQLITE_DONE) {
        return StorageError("write timeline");
      }
    }
    for (int64_t seq : batch.processed_events) {
      ITINERA_SQL(q, "UPDATE events SET processed = 1 WHERE seq = ?");
      if (q.Bind(seq).Step() != SQLITE_DONE) return StorageError("mark event processed");
    }
    auto add = [&](const char* kind, const std::map<std::string, int64_t>& deltas) -> Status {
      for (const auto& [key, n] : deltas) {
        ITINERA_SQL(q,
                    "INSERT INTO routing (kind, key, value) VALUES (?, ?, ?) "
                    "ON CONFLICT (kind, key) DO UPDATE SET value = value + excluded.value");
        if (q.Bind(std::string(kind)).Bind(key).Bind(n).Step() != SQLITE_DONE) {
          return StorageError("update routing");
        }
      }
      return Status::Ok();
    };
    if (Status s = add("round_robin", batch.routing.round_robin); !s.ok()) return s;
    if (Status s = add("load", batch.routing.load); !s.ok()) return s;
    // A batch counts the same few things thousands of times: one upsert per counter.
    std::map<std::pair<std::string_view, std::string_view>, int64_t> sums;
    for (const auto& c : batch.counters) sums[{c.journey, c.name}] += c.delta;
    for (const auto& [key, delta] : sums) {
      ITINERA_SQL(q,
                  "INSERT INTO counters (journey, name, value) VALUES (?, ?, ?) "
                  "ON CONFLICT (journey, name) DO UPDATE SET value = value + excluded.value");
      if (q.Bind(key.first).Bind(key.second).Bind(delta).Step() != SQLITE_DONE) {
        return StorageError("update counters");
      }
    }
    for (const auto& t : batch.timers) {
      if (t.wake) {
        ITINERA_SQL(q,
                    "INSERT INTO timers (customer, journey, wake) VALUES (?, ?, ?) "
                    "ON CONFLICT (customer, journey) DO UPDATE SET wake = excluded.wake");
        if (q.Bind(t.customer).Bind(t.journey).Bind(Secs(*t.wake)).Step() != SQLITE_DONE) {
          return StorageError("set timer");
        }
      } else {
        ITINERA_SQL(q, "DELETE FROM timers WHERE customer = ? AND journey = ?");
        if (q.Bind(t.customer).Bind(t.journey).Step() != SQLITE_DONE) {
          return StorageError("clear timer");
        }
      }
    }
    for (const auto& w : batch.states) {
      if (Status s = ApplyState(w); !s.ok()) return s;
    }
    return Status::Ok();
  });
  if (committed.ok() && inserted != nullptr) *inserted = std::move(added);
  return committed;
}

#undef ITINERA_SQL
#undef ITINERA_READ_SQL
#undef ITINERA_OUTBOX_COLUMNS
#undef ITINERA_OUTBOX_SELECT

}  // namespace itinera::orch
