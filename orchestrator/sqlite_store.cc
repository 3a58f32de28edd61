#include "orchestrator/sqlite_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include "orchestrator/sqlite_schema.h"

namespace itinera::orch {

using nlohmann::json;

namespace {

// SQLite reads a negative LIMIT as "no limit"; the interface means none.
int64_t Limit(int limit) { return std::max(limit, 0); }
int64_t Secs(Time t) { return t.time_since_epoch().count(); }
Time FromSecs(int64_t s) { return Time{Seconds{s}}; }

Result<json> ParseJson(const std::string& text) {
  json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return Error{"corrupt", "stored JSON does not parse"};
  return value;
}

// A cached statement checked out for one use; resets it (and clears bindings) when done.
class Query {
 public:
  explicit Query(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~Query() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  Query& Bind(int64_t value) {
    sqlite3_bind_int64(stmt_, ++index_, value);
    return *this;
  }
  Query& Bind(const std::string& value) {
    sqlite3_bind_text(stmt_, ++index_, value.data(), static_cast<int>(value.size()),
                      SQLITE_TRANSIENT);
    return *this;
  }
  Query& BindNull() {
    sqlite3_bind_null(stmt_, ++index_);
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(stmt_); }
  int64_t Int(int column) { return sqlite3_column_int64(stmt_, column); }
  bool IsNull(int column) { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
  std::string Text(int column) {
    const unsigned char* text = sqlite3_column_text(stmt_, column);
    if (text == nullptr) return std::string();
    return std::string(reinterpret_cast<const char*>(text), sqlite3_column_bytes(stmt_, column));
  }

 private:
  sqlite3_stmt* stmt_;
  int index_ = 0;
};

}  // namespace

// Declares `query`, the cached statement for `sql` (a string literal), checked out for one use;
// returns the error from the enclosing function when it does not prepare.
#define ITINERA_SQL(query, sql)                        \
  auto query##_stmt = Prepare(sql);                    \
  if (!query##_stmt.ok()) return query##_stmt.error(); \
  Query query(*query##_stmt)

Result<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path) {
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
  sqlite3_busy_timeout(db, 10000);
  for (const char* pragma :
       {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA foreign_keys=ON"}) {
    if (Status s = store->Exec(pragma); !s.ok()) return s.error();
  }
  if (Status s = store->Migrate(); !s.ok()) return s.error();
  return store;
}

int64_t SqliteStore::LatestSchemaVersion() {
  return static_cast<int64_t>(kSqliteMigrations.size());
}

SqliteStore::~SqliteStore() {
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  sqlite3_close(db_);
}

Error SqliteStore::StorageError(const std::string& what) {
  return Error{"storage", what + ": " + sqlite3_errmsg(db_)};
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

Status SqliteStore::Transaction(const std::function<Status()>& body) {
  if (Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  Status result = body();
  if (result.ok()) result = Exec("COMMIT");
  if (!result.ok()) (void)Exec("ROLLBACK");
  return result;
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
  std::lock_guard lock(mu_);
  ITINERA_SQL(q, "SELECT body FROM profiles WHERE customer = ?");
  int rc = q.Bind(customer).Step();
  if (rc == SQLITE_DONE) return std::optional<json>();
  if (rc != SQLITE_ROW) return StorageError("read profile");
  auto body = ParseJson(q.Text(0));
  if (!body.ok()) return body.error();
  return std::optional<json>(std::move(*body));
}

Result<ProfileChange> SqliteStore::UpsertProfile(const std::string& customer, const json& patch) {
  if (customer.empty()) return Error{"invalid_argument", "empty customer id"};
  if (!patch.is_object()) return Error{"invalid_argument", "a profile patch is a JSON object"};
  std::lock_guard lock(mu_);
  ProfileChange change;
  Status s = Transaction([&]() -> Status {
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
    return Status::Ok();
  });
  if (!s.ok()) return s.error();
  return change;
}

Status SqliteStore::EraseCustomer(const std::string& customer) {
  std::lock_guard lock(mu_);
  return Transaction([&]() -> Status {
    static const char* const kErase[] = {
        "DELETE FROM profiles WHERE customer = ?",
        "DELETE FROM events WHERE customer = ?",
        "DELETE FROM states WHERE customer = ?",
        "DELETE FROM timers WHERE customer = ?",
        "DELETE FROM sends WHERE customer = ?",
        "DELETE FROM timeline WHERE customer = ?",
        "UPDATE outbox SET recipient = '', payload = '{}', status = CASE status WHEN 'pending' "
        "THEN 'cancelled' ELSE status END WHERE customer = ?",
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
  std::lock_guard lock(mu_);
  int64_t added = 0;
  Status s = Transaction([&]() -> Status {
    for (const NewEvent& e : events) {
      ITINERA_SQL(q,
                  "INSERT INTO events (event_id, customer, at, body) VALUES (?, ?, ?, ?) "
                  "ON CONFLICT (event_id) DO NOTHING");
      if (e.id.empty()) {
        q.BindNull();
      } else {
        q.Bind(e.id);
      }
      if (q.Bind(e.customer).Bind(Secs(e.at)).Bind(e.body.dump()).Step() != SQLITE_DONE) {
        return StorageError("append event");
      }
      added += sqlite3_changes(db_);
    }
    return Status::Ok();
  });
  if (!s.ok()) return s.error();
  return added;
}

Result<std::vector<StoredEvent>> SqliteStore::PendingEvents(const std::string& customer,
                                                            int limit) {
  std::lock_guard lock(mu_);
  ITINERA_SQL(q,
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
  if (rc != SQLITE_DONE) return StorageError("read events");
  return out;
}

Result<std::vector<std::string>> SqliteStore::InboxCustomers(int limit) {
  std::lock_guard lock(mu_);
  ITINERA_SQL(q,
              "SELECT customer FROM events WHERE processed = 0 GROUP BY customer "
              "ORDER BY MIN(seq) LIMIT ?");
  q.Bind(Limit(limit));
  std::vector<std::string> out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) out.push_back(q.Text(0));
  if (rc != SQLITE_DONE) return StorageError("read inbox");
  return out;
}

// ---- states and timers ----

Result<std::optional<StoredState>> SqliteStore::GetState(const std::string& customer,
                                                         const std::string& journey) {
  std::lock_guard lock(mu_);
  ITINERA_SQL(q, "SELECT version, body FROM states WHERE customer = ? AND journey = ?");
  int rc = q.Bind(customer).Bind(journey).Step();
  if (rc == SQLITE_DONE) return std::optional<StoredState>();
  if (rc != SQLITE_ROW) return StorageError("read state");
  auto body = ParseJson(q.Text(1));
  if (!body.ok()) return body.error();
  auto state = JourneyStateFromJson(*body);
  if (!state.ok()) return Error{"corrupt", "stored state: " + state.error().message};
  return std::optional<StoredState>(StoredState{customer, journey, std::move(*state), q.Int(0)});
}

Result<std::vector<StoredState>> SqliteStore::ListStates(const std::string& customer) {
  std::lock_guard lock(mu_);
  ITINERA_SQL(q, "SELECT journey, version, body FROM states WHERE customer = ? ORDER BY journey");
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
  if (rc != SQLITE_DONE) return StorageError("read states");
  return out;
}

Result<std::vector<DueTimer>> SqliteStore::DueCustomers(Time now, int limit) {
  std::lock_guard lock(mu_);
  ITINERA_SQL(q,
              "SELECT customer, journey, wake FROM timers WHERE wake <= ? "
              "ORDER BY wake, customer, journey LIMIT ?");
  q.Bind(Secs(now)).Bind(Limit(limit));
  std::vector<DueTimer> out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) out.push_back({q.Text(0), q.Text(1), FromSecs(q.Int(2))});
  if (rc != SQLITE_DONE) return StorageError("read timers");
  return out;
}

// ---- sends and routing ----

Result<std::vector<SendRecord>> SqliteStore::RecentSends(const std::string& customer, Time since) {
  std::lock_guard lock(mu_);
  ITINERA_SQL(q,
              "SELECT channel, at, held FROM sends WHERE customer = ? AND at >= ? "
              "ORDER BY at, rowid");
  q.Bind(customer).Bind(Secs(since));
  std::vector<SendRecord> out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) {
    out.push_back({q.Text(0), FromSecs(q.Int(1)), q.Int(2) != 0});
  }
  if (rc != SQLITE_DONE) return StorageError("read sends");
  return out;
}

Result<RoutingSnapshot> SqliteStore::GetRouting() {
  std::lock_guard lock(mu_);
  ITINERA_SQL(q, "SELECT kind, key, value FROM routing");
  RoutingSnapshot out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) {
    (q.Text(0) == "round_robin" ? out.round_robin : out.load)[q.Text(1)] = q.Int(2);
  }
  if (rc != SQLITE_DONE) return StorageError("read routing");
  return out;
}

// ---- outbox ----

namespace {

#define ITINERA_OUTBOX_COLUMNS                                                           \
  "id, customer, journey, channel, recipient, payload, status, created_at, not_before, " \
  "attempts, last_error, sent_at "

Result<OutboxMessage> ReadOutboxRow(Query& q) {
  OutboxMessage m;
  m.id = q.Text(0);
  m.customer = q.Text(1);
  m.journey = q.Text(2);
  m.channel = q.Text(3);
  m.recipient = q.Text(4);
  auto payload = ParseJson(q.Text(5));
  if (!payload.ok()) return payload.error();
  m.payload = std::move(*payload);
  auto status = ParseMessageStatus(q.Text(6));
  if (!status) return Error{"corrupt", "unknown message status " + q.Text(6)};
  m.status = *status;
  m.created_at = FromSecs(q.Int(7));
  m.not_before = FromSecs(q.Int(8));
  m.attempts = q.Int(9);
  m.last_error = q.Text(10);
  if (!q.IsNull(11)) m.sent_at = FromSecs(q.Int(11));
  return m;
}

}  // namespace

Result<std::optional<OutboxMessage>> SqliteStore::ReadMessage(const std::string& id) {
  ITINERA_SQL(q, "SELECT " ITINERA_OUTBOX_COLUMNS "FROM outbox WHERE id = ?");
  int rc = q.Bind(id).Step();
  if (rc == SQLITE_DONE) return std::optional<OutboxMessage>();
  if (rc != SQLITE_ROW) return StorageError("read message");
  auto m = ReadOutboxRow(q);
  if (!m.ok()) return m.error();
  return std::optional<OutboxMessage>(std::move(*m));
}

Result<std::optional<OutboxMessage>> SqliteStore::GetMessage(const std::string& id) {
  std::lock_guard lock(mu_);
  return ReadMessage(id);
}

Result<std::vector<OutboxMessage>> SqliteStore::ClaimDue(Time now, int limit, Seconds lease) {
  std::lock_guard lock(mu_);
  std::vector<OutboxMessage> out;
  Status s = Transaction([&]() -> Status {
    {
      ITINERA_SQL(q, "SELECT " ITINERA_OUTBOX_COLUMNS
                     "FROM outbox WHERE status = 'pending' AND not_before <= ? "
                     "ORDER BY not_before, id LIMIT ?");
      q.Bind(Secs(now)).Bind(Limit(limit));
      int rc;
      while ((rc = q.Step()) == SQLITE_ROW) {
        auto m = ReadOutboxRow(q);
        if (!m.ok()) return m.error();
        out.push_back(std::move(*m));
      }
      if (rc != SQLITE_DONE) return StorageError("read due messages");
    }
    for (OutboxMessage& m : out) {
      m.attempts += 1;
      m.not_before = now + lease;
      ITINERA_SQL(q, "UPDATE outbox SET attempts = ?, not_before = ? WHERE id = ?");
      if (q.Bind(m.attempts).Bind(Secs(m.not_before)).Bind(m.id).Step() != SQLITE_DONE) {
        return StorageError("claim message");
      }
    }
    return Status::Ok();
  });
  if (!s.ok()) return s.error();
  return out;
}

Status SqliteStore::MarkSent(const std::string& id, Time at) {
  std::lock_guard lock(mu_);
  ITINERA_SQL(q, "UPDATE outbox SET status = 'sent', sent_at = ? WHERE id = ?");
  if (q.Bind(Secs(at)).Bind(id).Step() != SQLITE_DONE) return StorageError("mark sent");
  if (sqlite3_changes(db_) == 0) return Error{"not_found", "message " + id + " not found"};
  return Status::Ok();
}

Status SqliteStore::MarkRetry(const std::string& id, Time at, const std::string& error) {
  std::lock_guard lock(mu_);
  ITINERA_SQL(q,
              "UPDATE outbox SET status = 'pending', not_before = ?, last_error = ? WHERE id = ?");
  if (q.Bind(Secs(at)).Bind(error).Bind(id).Step() != SQLITE_DONE) {
    return StorageError("mark retry");
  }
  if (sqlite3_changes(db_) == 0) return Error{"not_found", "message " + id + " not found"};
  return Status::Ok();
}

Status SqliteStore::MarkDead(const std::string& id, const std::string& error) {
  std::lock_guard lock(mu_);
  ITINERA_SQL(q, "UPDATE outbox SET status = 'dead', last_error = ? WHERE id = ?");
  if (q.Bind(error).Bind(id).Step() != SQLITE_DONE) return StorageError("mark dead");
  if (sqlite3_changes(db_) == 0) return Error{"not_found", "message " + id + " not found"};
  return Status::Ok();
}

Result<std::vector<OutboxMessage>> SqliteStore::ListMessages(MessageStatus status, int limit) {
  std::lock_guard lock(mu_);
  ITINERA_SQL(q, "SELECT " ITINERA_OUTBOX_COLUMNS
                 "FROM outbox WHERE status = ? ORDER BY created_at, id LIMIT ?");
  q.Bind(std::string(MessageStatusName(status))).Bind(Limit(limit));
  std::vector<OutboxMessage> out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) {
    auto m = ReadOutboxRow(q);
    if (!m.ok()) return m.error();
    out.push_back(std::move(*m));
  }
  if (rc != SQLITE_DONE) return StorageError("list messages");
  return out;
}

// ---- timeline and counters ----

Result<std::vector<TimelineEntry>> SqliteStore::Timeline(const std::string& customer, int limit) {
  std::lock_guard lock(mu_);
  ITINERA_SQL(q,
              "SELECT seq, at, kind, data FROM timeline WHERE customer = ? "
              "ORDER BY at DESC, seq DESC LIMIT ?");
  q.Bind(customer).Bind(Limit(limit));
  std::vector<TimelineEntry> out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) {
    auto data = ParseJson(q.Text(3));
    if (!data.ok()) return data.error();
    out.push_back({q.Int(0), customer, FromSecs(q.Int(1)), q.Text(2), std::move(*data)});
  }
  if (rc != SQLITE_DONE) return StorageError("read timeline");
  return out;
}

Result<std::map<std::string, int64_t>> SqliteStore::JourneyCounters(const std::string& journey) {
  std::lock_guard lock(mu_);
  ITINERA_SQL(q, "SELECT name, value FROM counters WHERE journey = ?");
  q.Bind(journey);
  std::map<std::string, int64_t> out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) out[q.Text(0)] = q.Int(1);
  if (rc != SQLITE_DONE) return StorageError("read counters");
  return out;
}

// ---- the batch ----

Status SqliteStore::ApplyState(const Batch::StateWrite& w) {
  if (w.customer.empty() || w.journey.empty()) {
    return Error{"invalid_argument", "a state write without customer or journey"};
  }
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
  if (w.expected_version && *w.expected_version != version) {
    return Error{"conflict", "state of " + w.customer + " in " + w.journey + " is at version " +
                                 std::to_string(version) + ", not " +
                                 std::to_string(*w.expected_version)};
  }
  ITINERA_SQL(q,
              "INSERT INTO states (customer, journey, version, body) VALUES (?, ?, ?, ?) "
              "ON CONFLICT (customer, journey) DO UPDATE SET version = excluded.version, "
              "body = excluded.body");
  if (q.Bind(w.customer).Bind(w.journey).Bind(version + 1).Bind(ToJson(w.state).dump()).Step() !=
      SQLITE_DONE) {
    return StorageError("write state");
  }
  return Status::Ok();
}

Status SqliteStore::Commit(const Batch& batch) {
  if (batch.empty()) return Status::Ok();
  std::lock_guard lock(mu_);
  // States go last, so a conflict there undoes real work: the rollback is what keeps it whole.
  return Transaction([&]() -> Status {
    for (const auto& p : batch.profiles) {
      if (p.customer.empty() || !p.profile.is_object()) {
        return Error{"invalid_argument", "a profile write needs a customer and an object"};
      }
      json profile = p.profile;
      profile["id"] = p.customer;
      ITINERA_SQL(q,
                  "INSERT INTO profiles (customer, body) VALUES (?, ?) "
                  "ON CONFLICT (customer) DO UPDATE SET body = excluded.body");
      if (q.Bind(p.customer).Bind(profile.dump()).Step() != SQLITE_DONE) {
        return StorageError("write profile");
      }
    }
    for (const auto& m : batch.outbox) {
      if (m.id.empty()) return Error{"invalid_argument", "an outbox message without an id"};
      ITINERA_SQL(q, "INSERT INTO outbox (" ITINERA_OUTBOX_COLUMNS
                     ") VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, 0, '', NULL) "
                     "ON CONFLICT (id) DO NOTHING");
      q.Bind(m.id).Bind(m.customer).Bind(m.journey).Bind(m.channel).Bind(m.recipient);
      q.Bind(m.payload.dump()).Bind(Secs(m.created_at)).Bind(Secs(m.not_before));
      if (q.Step() != SQLITE_DONE) return StorageError("insert message");
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
    for (const auto& c : batch.counters) {
      ITINERA_SQL(q,
                  "INSERT INTO counters (journey, name, value) VALUES (?, ?, ?) "
                  "ON CONFLICT (journey, name) DO UPDATE SET value = value + excluded.value");
      if (q.Bind(c.journey).Bind(c.name).Bind(c.delta).Step() != SQLITE_DONE) {
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
}

#undef ITINERA_SQL

}  // namespace itinera::orch
