// PgStore: the Store on PostgreSQL through libpqxx (see pg_store.h for the contract). This file
// holds the connection pool, migrations, profiles, events, states and timers, Commit, leases and
// event announcements; pg_outbox.cc the outbox, sends, routing, timeline, counters and journey
// versions (reads, and Commit's writes to them).
//
// Table layout (pg_schema.h). The tables mirror the SQLite store's, with PostgreSQL types:
// times are bigint seconds (as in SQLite: both stores compare and order them alike, and no time
// zone is involved); ids are text COLLATE "C" (byte order, as the in-memory store sorts,
// whatever the database's locale); JSON bodies are text: the store never looks inside them,
// text round-trips exactly what nlohmann::json wrote and costs no parse on write (jsonb would
// re-parse every body and reject \u0000). Where it differs:
//  * events and timers carry `part` = PartitionOf(customer), computed here at insert, so a
//    daemon reads only its partitions' inbox and timers from indexes led by `part`
//    (`part = ANY($1::int[])`; PartitionSet::all() uses unfiltered statements). The inbox
//    indexes are partial on unprocessed events, so they stay as small as the backlog.
//  * counters and routing are sharded by pg_backend_pid() % 16: concurrent commits on several
//    connections add to different rows instead of queueing on one hot row; reads SUM the shards.
//  * nodes and partition_leases hold the daemons alive and one lease per partition; leases
//    expire on the database clock only (clock_timestamp()), so the daemons' clocks need not
//    agree. state_log records for every state version written the node and lease epoch that
//    wrote it: the audit that no customer was advanced by two daemons at once.
// Commit writes each list of the batch with one statement over unnest() of array parameters
// (ArrayLiteral), so a batch costs a fixed number of round trips whatever its size. Rows that
// must be read under lock before they are written (profiles, to merge the patch; states, to
// check versions) are first inserted as placeholders with ON CONFLICT DO NOTHING: then every row
// exists, SELECT ... FOR UPDATE locks it, and a concurrent creator of the same row waits for this
// transaction instead of racing it. Rows are locked in key order so commits do not deadlock.
#include "orchestrator/pg_store.h"

#include <map>
#include <set>
#include <tuple>

#include "orchestrator/pg_internal.h"
#include "orchestrator/pg_schema.h"

namespace itinera::orch {

using nlohmann::json;
using pg_internal::ArrayLiteral;
using pg_internal::Connection;
using pg_internal::FromSecs;
using pg_internal::Int;
using pg_internal::Limit;
using pg_internal::Message;
using pg_internal::Mode;
using pg_internal::ParseJson;
using pg_internal::Secs;
using pg_internal::Statement;
using pg_internal::Text;
using pg_internal::Tx;
using pg_internal::WriteCounters;
using pg_internal::WriteHistory;
using pg_internal::WriteOutbox;

namespace pg_internal {

// ---- array literals ----

void ArrayLiteral::Separate() {
  if (size_++ > 0) text_ += ',';
}

ArrayLiteral& ArrayLiteral::Add(std::string_view text) {
  Separate();
  text_ += '"';
  for (char c : text) {
    if (c == '"' || c == '\\') text_ += '\\';
    text_ += c;
  }
  text_ += '"';
  return *this;
}

ArrayLiteral& ArrayLiteral::Add(int64_t value) {
  Separate();
  text_ += std::to_string(value);
  return *this;
}

ArrayLiteral& ArrayLiteral::AddBool(bool value) {
  Separate();
  text_ += value ? "t" : "f";
  return *this;
}

ArrayLiteral& ArrayLiteral::AddNull() {
  Separate();
  text_ += "NULL";
  return *this;
}

// ---- the pool ----

std::string Message(const std::exception& e) {
  std::string text = e.what();
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

std::string WithConnectTimeout(const std::string& url) {
  if (url.find("connect_timeout=") != std::string::npos) return url;
  return url + (url.find('?') == std::string::npos ? "?" : "&") + "connect_timeout=5";
}

namespace {

// pqxx 6 silently reconnects a broken connection on its next use (and replays LISTENs). The
// pool and the event watch handle breaks themselves (backoff; a watch must report that
// announcements were lost), so that is switched off (deprecated: pqxx 7 drops the feature).
void DisableReactivation(pqxx::connection& db) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  db.inhibit_reactivation(true);
#pragma GCC diagnostic pop
}

}  // namespace

Pool::Pool(std::string url, int size) : url_(std::move(url)), size_(std::max(size, 1)) {}

Result<std::unique_ptr<Connection>> Pool::Connect() {
  try {
    auto conn = std::make_unique<Connection>();
    conn->db = std::make_unique<pqxx::connection>(url_);
    DisableReactivation(*conn->db);
    return conn;
  } catch (const std::exception& e) {
    return Error{"storage", "cannot connect to the database: " + Message(e)};
  }
}

Result<std::unique_ptr<Connection>> Pool::Acquire(bool* reused) {
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  std::unique_lock lock(mu_);
  while (true) {
    while (!idle_.empty()) {
      std::unique_ptr<Connection> conn = std::move(idle_.back());
      idle_.pop_back();
      if (conn->db->is_open()) {
        *reused = true;
        return conn;
      }
      --open_;  // noticed broken while idle: dropped (closing a dead socket does not block)
    }
    if (open_ < size_) {
      const bool probe = backoff_.count() > 0;
      if (probe && (probing_ || Clock::now() < retry_at_)) {
        auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(retry_at_ - Clock::now());
        return Error{"storage", "database unavailable (next attempt in " +
                                    std::to_string(std::max<int64_t>(wait.count(), 0)) +
                                    " ms): " + last_error_};
      }
      ++open_;
      probing_ = probe;
      lock.unlock();
      auto conn = Connect();
      lock.lock();
      probing_ = false;
      if (conn.ok()) {
        backoff_ = std::chrono::milliseconds(0);
        *reused = false;
        return conn;
      }
      --open_;
      backoff_ = std::min<std::chrono::milliseconds>(
          backoff_.count() == 0 ? std::chrono::milliseconds(100) : backoff_ * 2,
          std::chrono::seconds(5));
      retry_at_ = Clock::now() + backoff_;
      last_error_ = conn.error().message;
      cv_.notify_all();
      return conn.error();
    }
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
        open_ >= size_) {
      return Error{"storage", "no database connection became free within 5 s"};
    }
  }
}

void Pool::Release(std::unique_ptr<Connection> conn) {
  {
    std::lock_guard lock(mu_);
    idle_.push_back(std::move(conn));
  }
  cv_.notify_one();
}

void Pool::Discard(std::unique_ptr<Connection> conn) {
  std::vector<std::unique_ptr<Connection>> dropped;
  {
    std::lock_guard lock(mu_);
    dropped.swap(idle_);
    open_ -= static_cast<int>(dropped.size()) + 1;
  }
  cv_.notify_all();
  conn.reset();  // closed outside the lock
}

// ---- running calls ----

namespace {

// The Error code for a failed statement, by SQLSTATE class: "storage" for what passes (the
// connection, a serialization failure or deadlock, resources, an administrator's shutdown),
// "invalid_argument" for a value the database cannot take (class 22, such as invalid UTF-8),
// and "internal" for what retrying will not fix (permissions, a missing table, a constraint).
std::string ErrorCode(const pqxx::sql_error* e) {
  if (e == nullptr) return "storage";
  const std::string state = e->sqlstate();
  for (const char* transient : {"08", "40", "53", "55P03", "57", "58"}) {
    if (state.rfind(transient, 0) == 0) return "storage";
  }
  if (state.rfind("22", 0) == 0) return "invalid_argument";
  return state.empty() ? "storage" : "internal";
}

}  // namespace

Status Database::Run(Mode mode, const std::function<Status(Tx&)>& body) {
  for (int attempt = 0;; ++attempt) {
    bool reused = false;
    auto acquired = pool_.Acquire(&reused);
    if (!acquired.ok()) return acquired.error();
    std::unique_ptr<Connection> conn = std::move(*acquired);
    bool committing = false;
    bool lost = false;
    Status result;
    try {
      if (mode == Mode::kWrite) {
        pqxx::work txn(*conn->db);
        Tx tx(*conn, txn);
        result = body(tx);
        if (result.ok()) {
          committing = true;
          txn.commit();
        } else {
          txn.abort();
        }
      } else {
        pqxx::nontransaction txn(*conn->db);
        Tx tx(*conn, txn);
        result = body(tx);
      }
    } catch (const pqxx::in_doubt_error& e) {
      lost = true;
      result = Error{"storage", "commit outcome unknown: " + Message(e)};
    } catch (const nlohmann::json::exception& e) {  // dump() of a string that is not UTF-8
      result = Error{"invalid_argument", Message(e)};
    } catch (const std::exception& e) {
      lost = dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr || !conn->db->is_open();
      const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e);
      result = Error{lost ? "storage" : ErrorCode(sql),
                     (lost && committing ? "commit outcome unknown: " : "") + Message(e)};
    }
    if (!lost) {
      pool_.Release(std::move(conn));
      return result;
    }
    pool_.Discard(std::move(conn));
    // Broken before COMMIT was sent: the server rolled back. An idle connection that died
    // unnoticed (a server restart) deserves one more try on a fresh one.
    if (committing || !reused || attempt > 0) return result;
  }
}

}  // namespace pg_internal

// ---- opening and migrations ----

namespace {

constexpr Statement kLockMigrations{"lock_migrations", "SELECT pg_advisory_xact_lock($1)"};
constexpr Statement kSchemaVersion{"schema_version",
                                   "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"};
constexpr Statement kMigrationCount{"migration_count", "SELECT COUNT(*) FROM schema_migrations"};
constexpr Statement kRecordMigration{"record_migration",
                                     "INSERT INTO schema_migrations (version) VALUES ($1)"};

Status Migrate(Tx& tx) {
  tx.Exec(kLockMigrations, kPgMigrationLock);
  tx.ExecScript(
      "CREATE TABLE IF NOT EXISTS schema_migrations ("
      "version bigint PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())");
  const int64_t current = Int(tx.Exec(kSchemaVersion)[0][0]);
  for (int64_t v = current + 1; v <= PgStore::LatestSchemaVersion(); ++v) {
    try {
      tx.ExecScript(kPgMigrations[v - 1]);
    } catch (const pqxx::sql_error& e) {
      return Error{"storage", "migration " + std::to_string(v) + ": " + Message(e)};
    }
    tx.Exec(kRecordMigration, v);
  }
  return Status::Ok();
}

}  // namespace

PgStore::PgStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PgStore::~PgStore() = default;

Result<std::unique_ptr<PgStore>> PgStore::Open(const std::string& url, int pool) {
  if (!IsPostgresUrl(url)) return Error{"invalid_argument", "not a PostgreSQL URL"};
  if (pool < 1) return Error{"invalid_argument", "the connection pool needs at least 1"};
  std::unique_ptr<PgStore> store(
      new PgStore(std::make_unique<Impl>(pg_internal::WithConnectTimeout(url), pool)));
  if (Status s = store->impl_->db.Run(Mode::kWrite, Migrate); !s.ok()) return s.error();
  return store;
}

int64_t PgStore::LatestSchemaVersion() { return static_cast<int64_t>(kPgMigrations.size()); }

Result<int64_t> PgStore::SchemaVersion() {
  return impl_->db.Fetch<int64_t>(Mode::kRead, [&](Tx& tx, auto& version) -> Status {
    version = Int(tx.Exec(kSchemaVersion)[0][0]);
    return Status::Ok();
  });
}

Result<int64_t> PgStore::MigrationCount() {
  return impl_->db.Fetch<int64_t>(Mode::kRead, [&](Tx& tx, auto& count) -> Status {
    count = Int(tx.Exec(kMigrationCount)[0][0]);
    return Status::Ok();
  });
}

// ---- profiles ----

namespace {

constexpr Statement kGetProfile{"get_profile", "SELECT body FROM profiles WHERE customer = $1"};
constexpr Statement kProfilePlaceholders{
    "profile_placeholders",
    "INSERT INTO profiles (customer, body) SELECT c, 'null' FROM unnest($1::text[]) AS u(c) "
    "ON CONFLICT (customer) DO NOTHING"};
constexpr Statement kLockProfiles{"lock_profiles",
                                  "SELECT customer, body FROM profiles WHERE customer = "
                                  "ANY($1::text[]) ORDER BY customer FOR UPDATE"};
constexpr Statement kWriteProfiles{
    "write_profiles",
    "UPDATE profiles AS p SET body = u.body FROM unnest($1::text[], $2::text[]) AS u(customer, "
    "body) WHERE p.customer = u.customer"};
constexpr Statement kAppendEvents{
    "append_events",
    "INSERT INTO events (event_id, customer, part, at, body) SELECT e, c, p, a, b FROM "
    "unnest($1::text[], $2::text[], $3::smallint[], $4::bigint[], $5::text[]) WITH ORDINALITY "
    "AS u(e, c, p, a, b, n) ORDER BY n ON CONFLICT (event_id) DO NOTHING RETURNING part"};
constexpr Statement kStoreArrived{
    "store_arrived",
    "INSERT INTO events (event_id, customer, part, at, body, processed) SELECT e, c, p, a, b, "
    "true FROM unnest($1::text[], $2::text[], $3::smallint[], $4::bigint[], $5::text[]) WITH "
    "ORDINALITY AS u(e, c, p, a, b, n) ORDER BY n ON CONFLICT (event_id) DO NOTHING"};
constexpr Statement kKnownEventIds{
    "known_event_ids", "SELECT DISTINCT event_id FROM events WHERE event_id = ANY($1::text[])"};
constexpr Statement kNotifyEvents{
    "notify_events", "SELECT pg_notify('itinera_events', p::text) FROM unnest($1::int[]) AS u(p)"};

// The columns of kAppendEvents and kStoreArrived for `events`, as array parameters.
struct EventArrays {
  explicit EventArrays(const std::vector<NewEvent>& events) {
    for (const NewEvent& e : events) {
      if (e.id.empty()) {
        ids.AddNull();  // never deduplicated
      } else {
        ids.Add(e.id);
      }
      customers.Add(e.customer);
      parts.Add(int64_t{PartitionOf(e.customer)});
      ats.Add(Secs(e.at));
      bodies.Add(e.body.dump());
    }
  }
  pqxx::result Insert(Tx& tx, const Statement& statement) const {
    return tx.Exec(statement, ids.str(), customers.str(), parts.str(), ats.str(), bodies.str());
  }
  ArrayLiteral ids, customers, parts, ats, bodies;
};

// Merges the patches, in order, into the profiles (created when absent; "id" forced) under row
// locks, and returns each write's before and after.
Result<std::vector<ProfileChange>> PatchProfiles(Tx& tx,
                                                 const std::vector<Batch::ProfileWrite>& writes) {
  std::set<std::string> customers;
  for (const auto& w : writes) customers.insert(w.customer);
  ArrayLiteral keys;
  for (const auto& c : customers) keys.Add(c);
  tx.Exec(kProfilePlaceholders, keys.str());  // absent ones become 'null': parsed as "no profile"
  std::map<std::string, json> current;
  for (const auto& row : tx.Exec(kLockProfiles, keys.str())) {
    auto body = ParseJson(row[1].c_str());
    if (!body.ok()) return body.error();
    current[Text(row[0])] = std::move(*body);
  }
  std::vector<ProfileChange> changes;
  for (const auto& w : writes) {
    json& profile = current[w.customer];
    ProfileChange change;
    change.before = profile;
    change.after = profile.is_object() ? profile : json::object();
    change.after.merge_patch(w.patch);
    change.after["id"] = w.customer;
    profile = change.after;
    changes.push_back(std::move(change));
  }
  ArrayLiteral bodies;
  for (const auto& c : customers) bodies.Add(current[c].dump());
  tx.Exec(kWriteProfiles, keys.str(), bodies.str());
  return changes;
}

// Announces new events in `parts` (one notification per partition, sent at commit).
void Announce(Tx& tx, const std::set<int>& parts) {
  if (parts.empty()) return;
  ArrayLiteral list;
  for (int p : parts) list.Add(int64_t{p});
  tx.Exec(kNotifyEvents, list.str());
}

Status ValidateProfilePatch(const std::string& customer, const json& patch) {
  if (customer.empty()) return Error{"invalid_argument", "empty customer id"};
  if (!patch.is_object()) return Error{"invalid_argument", "a profile patch is a JSON object"};
  return Status::Ok();
}

}  // namespace

Result<std::optional<json>> PgStore::GetProfile(const std::string& customer) {
  return impl_->db.Fetch<std::optional<json>>(Mode::kRead, [&](Tx& tx, auto& out) -> Status {
    pqxx::result r = tx.Exec(kGetProfile, customer);
    if (r.empty()) return Status::Ok();
    auto body = ParseJson(r[0][0].c_str());
    if (!body.ok()) return body.error();
    out = std::move(*body);
    return Status::Ok();
  });
}

Result<ProfileChange> PgStore::UpsertProfile(const std::string& customer, const json& patch) {
  if (Status s = ValidateProfilePatch(customer, patch); !s.ok()) return s.error();
  return impl_->db.Fetch<ProfileChange>(Mode::kWrite, [&](Tx& tx, auto& change) -> Status {
    auto changes = PatchProfiles(tx, {{customer, patch}});
    if (!changes.ok()) return changes.error();
    change = std::move(changes->front());
    return Status::Ok();
  });
}

Result<ProfileChange> PgStore::UpsertProfileRecorded(const std::string& customer, const json& patch,
                                                     NewEvent on_change) {
  if (Status s = ValidateProfilePatch(customer, patch); !s.ok()) return s.error();
  return impl_->db.Fetch<ProfileChange>(Mode::kWrite, [&](Tx& tx, auto& change) -> Status {
    auto changes = PatchProfiles(tx, {{customer, patch}});
    if (!changes.ok()) return changes.error();
    change = std::move(changes->front());
    if (change.before == change.after) return Status::Ok();
    NewEvent event = on_change;
    event.id.clear();
    event.customer = customer;
    event.body["before"] = change.before;
    EventArrays({event}).Insert(tx, kAppendEvents);
    Announce(tx, {PartitionOf(customer)});
    return Status::Ok();
  });
}

Status PgStore::EraseCustomer(const std::string& customer) {
  // In the order Commit locks the same tables (profiles, states, timers, events, outbox, ...),
  // so an erasure and a commit touching the customer queue instead of deadlocking.
  static constexpr Statement kErase[] = {
      {"erase_profile", "DELETE FROM profiles WHERE customer = $1"},
      {"erase_states", "DELETE FROM states WHERE customer = $1"},
      {"erase_state_log", "DELETE FROM state_log WHERE customer = $1"},
      {"erase_timers", "DELETE FROM timers WHERE customer = $1"},
      {"erase_events", "DELETE FROM events WHERE customer = $1"},
      {"erase_outbox",
       "UPDATE outbox SET recipient = '', payload = '{}', status = CASE status WHEN 'pending' "
       "THEN 'cancelled' ELSE status END WHERE customer = $1"},
      {"erase_sends", "DELETE FROM sends WHERE customer = $1"},
      {"erase_timeline", "DELETE FROM timeline WHERE customer = $1"},
  };
  return impl_->db.Run(Mode::kWrite, [&](Tx& tx) -> Status {
    for (const Statement& statement : kErase) tx.Exec(statement, customer);
    return Status::Ok();
  });
}

// ---- events ----

namespace {

constexpr Statement kPendingEvents{"pending_events",
                                   "SELECT seq, event_id, at, body FROM events WHERE customer = "
                                   "$1 AND NOT processed ORDER BY seq LIMIT $2"};
// The oldest pending events only (events_arrival, at most $2: 64 per customer asked for), then
// their customers by first event: the order of MIN(seq) over the whole inbox, without grouping
// the whole backlog (which costs time in proportion to it). Customers with very many events
// can make a batch smaller, never empty.
constexpr Statement kInboxAll{"inbox_all",
                              "SELECT customer FROM (SELECT customer, seq FROM events WHERE NOT "
                              "processed ORDER BY seq LIMIT $2) oldest GROUP BY customer "
                              "ORDER BY MIN(seq) LIMIT $1"};
constexpr Statement kInboxParts{
    "inbox_parts",
    "SELECT customer FROM (SELECT customer, seq FROM events WHERE NOT processed AND "
    "part = ANY($1::int[]) ORDER BY seq LIMIT $3) oldest GROUP BY customer "
    "ORDER BY MIN(seq) LIMIT $2"};

std::string PartitionList(const PartitionSet& only) {
  ArrayLiteral list;
  for (int p : only.list()) list.Add(int64_t{p});
  return list.str();
}

}  // namespace

Result<int64_t> PgStore::AppendEvents(const std::vector<NewEvent>& events) {
  for (const NewEvent& e : events) {
    if (e.customer.empty()) return Error{"invalid_argument", "an event without a customer"};
  }
  if (events.empty()) return int64_t{0};
  return impl_->db.Fetch<int64_t>(Mode::kWrite, [&](Tx& tx, auto& added) -> Status {
    pqxx::result r = EventArrays(events).Insert(tx, kAppendEvents);
    std::set<int> announced;
    for (const auto& row : r) announced.insert(row[0].as<int>());
    Announce(tx, announced);
    added = static_cast<int64_t>(r.size());
    return Status::Ok();
  });
}

Result<std::vector<StoredEvent>> PgStore::PendingEvents(const std::string& customer, int limit) {
  return impl_->db.Fetch<std::vector<StoredEvent>>(Mode::kRead, [&](Tx& tx, auto& out) -> Status {
    for (const auto& row : tx.Exec(kPendingEvents, customer, Limit(limit))) {
      auto body = ParseJson(row[3].c_str());
      if (!body.ok()) return body.error();
      out.push_back(
          {Int(row[0]), Text(row[1]), customer, FromSecs(Int(row[2])), std::move(*body), false});
    }
    return Status::Ok();
  });
}

Result<std::vector<std::string>> PgStore::KnownEventIds(const std::vector<std::string>& ids) {
  ArrayLiteral list;
  for (const std::string& id : ids) list.Add(id);
  return impl_->db.Fetch<std::vector<std::string>>(Mode::kRead, [&](Tx& tx, auto& out) -> Status {
    for (const auto& row : tx.Exec(kKnownEventIds, list.str())) out.push_back(Text(row[0]));
    return Status::Ok();
  });
}

Result<std::vector<std::string>> PgStore::InboxCustomers(int limit, const PartitionSet& only) {
  return impl_->db.Fetch<std::vector<std::string>>(Mode::kRead, [&](Tx& tx, auto& out) -> Status {
    const int64_t walk = std::max<int64_t>(Limit(limit), 1) * 64;
    pqxx::result r = only.all() ? tx.Exec(kInboxAll, Limit(limit), walk)
                                : tx.Exec(kInboxParts, PartitionList(only), Limit(limit), walk);
    for (const auto& row : r) out.push_back(Text(row[0]));
    return Status::Ok();
  });
}

// ---- journey states and timers ----

namespace {

constexpr Statement kGetState{"get_state",
                              "SELECT version, body FROM states WHERE customer = $1 AND journey = "
                              "$2"};
constexpr Statement kListStates{"list_states",
                                "SELECT journey, version, body FROM states WHERE customer = $1 "
                                "ORDER BY journey"};
constexpr Statement kDueAll{"due_all",
                            "SELECT customer, journey, wake FROM timers WHERE wake <= $1 "
                            "ORDER BY wake, customer, journey LIMIT $2"};
// Per partition, the earliest due timers straight from timers_due_part (already in order, so
// each scan stops at the limit), then the earliest of those: the work is bounded by the daemon's
// own partitions whatever the others' backlog, and the plan cannot drift to filtering the
// global wake index.
constexpr Statement kDueParts{
    "due_parts",
    "SELECT t.customer, t.journey, t.wake FROM unnest($2::int[]) AS p(part) CROSS JOIN LATERAL "
    "(SELECT customer, journey, wake FROM timers WHERE timers.part = p.part AND wake <= $1 "
    "ORDER BY wake, customer, journey LIMIT $3) AS t ORDER BY t.wake, t.customer, t.journey "
    "LIMIT $3"};

Result<JourneyState> ParseState(const char* text) {
  auto body = ParseJson(text);
  if (!body.ok()) return body.error();
  auto state = JourneyStateFromJson(*body);
  if (!state.ok()) return Error{"corrupt", "stored state: " + state.error().message};
  return std::move(*state);
}

}  // namespace

Result<std::optional<StoredState>> PgStore::GetState(const std::string& customer,
                                                     const std::string& journey) {
  return impl_->db.Fetch<std::optional<StoredState>>(Mode::kRead, [&](Tx& tx, auto& out) -> Status {
    pqxx::result r = tx.Exec(kGetState, customer, journey);
    if (r.empty()) return Status::Ok();
    auto state = ParseState(r[0][1].c_str());
    if (!state.ok()) return state.error();
    out = StoredState{customer, journey, std::move(*state), Int(r[0][0])};
    return Status::Ok();
  });
}

Result<std::vector<StoredState>> PgStore::ListStates(const std::string& customer) {
  return impl_->db.Fetch<std::vector<StoredState>>(Mode::kRead, [&](Tx& tx, auto& out) -> Status {
    for (const auto& row : tx.Exec(kListStates, customer)) {
      auto state = ParseState(row[2].c_str());
      if (!state.ok()) return state.error();
      out.push_back({customer, Text(row[0]), std::move(*state), Int(row[1])});
    }
    return Status::Ok();
  });
}

Result<std::vector<DueTimer>> PgStore::DueCustomers(Time now, int limit, const PartitionSet& only) {
  return impl_->db.Fetch<std::vector<DueTimer>>(Mode::kRead, [&](Tx& tx, auto& out) -> Status {
    pqxx::result r = only.all() ? tx.Exec(kDueAll, Secs(now), Limit(limit))
                                : tx.Exec(kDueParts, Secs(now), PartitionList(only), Limit(limit));
    for (const auto& row : r) out.push_back({Text(row[0]), Text(row[1]), FromSecs(Int(row[2]))});
    return Status::Ok();
  });
}

// ---- the batch ----

namespace {

constexpr Statement kLockFence{
    "lock_fence",
    "SELECT part, owner, epoch, expires_at > clock_timestamp() FROM partition_leases "
    "WHERE part = ANY($1::int[]) ORDER BY part FOR SHARE"};
constexpr Statement kStatePlaceholders{
    "state_placeholders",
    "INSERT INTO states (customer, journey, version, body) SELECT c, j, 0, '' FROM "
    "unnest($1::text[], $2::text[]) AS u(c, j) ON CONFLICT (customer, journey) DO NOTHING"};
constexpr Statement kLockStates{
    "lock_states",
    "SELECT s.customer, s.journey, s.version FROM states AS s JOIN unnest($1::text[], "
    "$2::text[]) AS u(c, j) ON s.customer = u.c AND s.journey = u.j "
    "ORDER BY s.customer, s.journey FOR UPDATE OF s"};
constexpr Statement kWriteStates{
    "write_states",
    "UPDATE states AS s SET version = u.v, body = u.b FROM unnest($1::text[], $2::text[], "
    "$3::bigint[], $4::text[]) AS u(c, j, v, b) WHERE s.customer = u.c AND s.journey = u.j"};
constexpr Statement kLogStates{
    "log_states",
    "INSERT INTO state_log (customer, journey, version, node, epoch, at) SELECT c, j, v, n, e, "
    "floor(extract(epoch FROM clock_timestamp()))::bigint FROM unnest($1::text[], $2::text[], "
    "$3::bigint[], $4::text[], $5::bigint[]) AS u(c, j, v, n, e)"};
constexpr Statement kSetTimers{
    "set_timers",
    "INSERT INTO timers (customer, journey, part, wake) SELECT c, j, p, w FROM unnest($1::text[], "
    "$2::text[], $3::smallint[], $4::bigint[]) AS u(c, j, p, w) ON CONFLICT (customer, journey) "
    "DO UPDATE SET wake = excluded.wake"};
constexpr Statement kClearTimers{
    "clear_timers",
    "DELETE FROM timers AS t USING unnest($1::text[], $2::text[]) AS u(c, j) "
    "WHERE t.customer = u.c AND t.journey = u.j"};
constexpr Statement kMarkProcessed{
    "mark_processed",
    "UPDATE events SET processed = true WHERE seq = ANY($1::bigint[]) AND NOT processed"};

using Key = std::pair<std::string, std::string>;  // (customer, journey)

Status Validate(const Batch& batch) {
  for (const auto& p : batch.profiles) {
    if (p.customer.empty() || !p.patch.is_object()) {
      return Error{"invalid_argument", "a profile write needs a customer and an object patch"};
    }
  }
  for (const auto& w : batch.states) {
    if (w.customer.empty() || w.journey.empty()) {
      return Error{"invalid_argument", "a state write without customer or journey"};
    }
  }
  for (const auto& m : batch.outbox) {
    if (m.id.empty()) return Error{"invalid_argument", "an outbox message without an id"};
  }
  for (const NewEvent& e : batch.arrived) {
    if (e.customer.empty()) return Error{"invalid_argument", "an event without a customer"};
  }
  return Status::Ok();
}

// Stores the events a batch advanced, processed; an id seen before refuses the batch.
Status StoreArrived(Tx& tx, const std::vector<NewEvent>& events) {
  pqxx::result r = EventArrays(events).Insert(tx, kStoreArrived);
  if (r.affected_rows() != events.size()) {
    return Error{"conflict", "an event the batch advanced is stored already"};
  }
  return Status::Ok();
}

// Holds the fence's leases (FOR SHARE: a rebalance waits for this commit) or refuses the batch.
Status CheckFence(Tx& tx, const Fence& fence) {
  if (fence.epochs.empty()) return Status::Ok();
  ArrayLiteral parts;
  for (const auto& [part, epoch] : fence.epochs) parts.Add(int64_t{part});
  std::map<int, std::tuple<std::string, int64_t, bool>> held;
  for (const auto& row : tx.Exec(kLockFence, parts.str())) {
    held[row[0].as<int>()] = {Text(row[1]), Int(row[2]), row[3].as<bool>()};
  }
  for (const auto& [part, epoch] : fence.epochs) {
    auto it = held.find(part);
    if (it == held.end()) {
      return Error{"lease_lost", "partition " + std::to_string(part) + " has no lease"};
    }
    const auto& [owner, held_epoch, live] = it->second;
    if (owner != fence.node || held_epoch != epoch || !live) {
      return Error{"lease_lost", "partition " + std::to_string(part) + " is held by \"" + owner +
                                     "\" at epoch " + std::to_string(held_epoch) +
                                     (live ? "" : " (expired)") + ", not by \"" + fence.node +
                                     "\" at epoch " + std::to_string(epoch)};
    }
  }
  return Status::Ok();
}

// Checks every expected version under row locks, then writes each state once (at its last
// version) and logs every version written.
Status WriteStates(Tx& tx, const std::vector<Batch::StateWrite>& writes,
                   const std::optional<Fence>& fence) {
  std::map<Key, const Batch::StateWrite*> last;  // sorted: rows are locked in key order
  for (const auto& w : writes) last[{w.customer, w.journey}] = &w;
  ArrayLiteral customers, journeys;
  for (const auto& [key, w] : last) {
    customers.Add(key.first);
    journeys.Add(key.second);
  }
  tx.Exec(kStatePlaceholders, customers.str(), journeys.str());  // absent ones at version 0
  std::map<Key, int64_t> versions;
  for (const auto& row : tx.Exec(kLockStates, customers.str(), journeys.str())) {
    versions[{Text(row[0]), Text(row[1])}] = Int(row[2]);
  }
  ArrayLiteral log_customers, log_journeys, log_versions, log_nodes, log_epochs;
  for (const auto& w : writes) {
    int64_t& version = versions[{w.customer, w.journey}];
    if (w.expected_version && *w.expected_version != version) {
      return Error{"conflict", "state of " + w.customer + " in " + w.journey + " is at version " +
                                   std::to_string(version) + ", not " +
                                   std::to_string(*w.expected_version)};
    }
    ++version;
    log_customers.Add(w.customer);
    log_journeys.Add(w.journey);
    log_versions.Add(version);
    int64_t epoch = 0;
    if (fence) {
      auto it = fence->epochs.find(PartitionOf(w.customer));
      if (it != fence->epochs.end()) epoch = it->second;
    }
    log_nodes.Add(fence ? fence->node : std::string());
    log_epochs.Add(epoch);
  }
  ArrayLiteral final_versions, bodies;
  for (const auto& [key, w] : last) {
    final_versions.Add(versions[key]);
    bodies.Add(ToJson(w->state).dump());
  }
  tx.Exec(kWriteStates, customers.str(), journeys.str(), final_versions.str(), bodies.str());
  tx.Exec(kLogStates, log_customers.str(), log_journeys.str(), log_versions.str(), log_nodes.str(),
          log_epochs.str());
  return Status::Ok();
}

void WriteTimers(Tx& tx, const std::vector<Batch::TimerWrite>& writes) {
  std::map<Key, std::optional<Time>> last;  // in order: the last write of a key wins
  for (const auto& t : writes) last[{t.customer, t.journey}] = t.wake;
  ArrayLiteral set_customers, set_journeys, set_parts, set_wakes, clear_customers, clear_journeys;
  for (const auto& [key, wake] : last) {
    if (wake) {
      set_customers.Add(key.first);
      set_journeys.Add(key.second);
      set_parts.Add(int64_t{PartitionOf(key.first)});
      set_wakes.Add(Secs(*wake));
    } else {
      clear_customers.Add(key.first);
      clear_journeys.Add(key.second);
    }
  }
  if (set_customers.size() > 0) {
    tx.Exec(kSetTimers, set_customers.str(), set_journeys.str(), set_parts.str(), set_wakes.str());
  }
  if (clear_customers.size() > 0) {
    tx.Exec(kClearTimers, clear_customers.str(), clear_journeys.str());
  }
}

}  // namespace

Status PgStore::Commit(const Batch& batch, std::vector<size_t>* inserted) {
  if (inserted != nullptr) inserted->clear();
  if (batch.empty()) return Status::Ok();
  std::vector<size_t> added;
  if (Status s = Validate(batch); !s.ok()) return s;
  // What can refuse the batch goes first (the fence, then version checks), so a refused batch
  // wastes little work; the rollback is what keeps it whole either way.
  Status committed = impl_->db.Run(Mode::kWrite, [&](Tx& tx) -> Status {
    if (batch.fence) {
      if (Status s = CheckFence(tx, *batch.fence); !s.ok()) return s;
    }
    if (!batch.arrived.empty()) {
      if (Status s = StoreArrived(tx, batch.arrived); !s.ok()) return s;
    }
    if (!batch.profiles.empty()) {
      if (auto patched = PatchProfiles(tx, batch.profiles); !patched.ok()) return patched.error();
    }
    if (!batch.states.empty()) {
      if (Status s = WriteStates(tx, batch.states, batch.fence); !s.ok()) return s;
    }
    if (!batch.timers.empty()) WriteTimers(tx, batch.timers);
    if (!batch.processed_events.empty()) {
      ArrayLiteral seqs;
      for (int64_t seq : batch.processed_events) seqs.Add(seq);
      tx.Exec(kMarkProcessed, seqs.str());
    }
    WriteOutbox(tx, batch, &added);
    WriteHistory(tx, batch);
    WriteCounters(tx, batch);
    return Status::Ok();
  });
  if (committed.ok() && inserted != nullptr) *inserted = std::move(added);
  return committed;
}

// ---- several daemons: leases ----

namespace {

constexpr Statement kLockLeases{"lock_leases",
                                "SELECT part, owner, epoch, expires_at < clock_timestamp() FROM "
                                "partition_leases ORDER BY part FOR UPDATE"};
constexpr Statement kTouchNode{
    "touch_node",
    "INSERT INTO nodes (node, expires_at) VALUES ($1, clock_timestamp() + make_interval(secs => "
    "$2::bigint)) ON CONFLICT (node) DO UPDATE SET expires_at = excluded.expires_at"};
constexpr Statement kDropExpiredNodes{"drop_expired_nodes",
                                      "DELETE FROM nodes WHERE expires_at < clock_timestamp()"};
constexpr Statement kLiveNodes{"live_nodes", "SELECT node FROM nodes"};
constexpr Statement kMoveLeases{
    "move_leases",
    "UPDATE partition_leases AS l SET owner = u.o, epoch = u.e, expires_at = CASE WHEN u.o = '' "
    "THEN '-infinity'::timestamptz ELSE l.expires_at END FROM unnest($1::int[], $2::text[], "
    "$3::bigint[]) AS u(p, o, e) WHERE l.part = u.p"};
constexpr Statement kExtendLeases{
    "extend_leases",
    "UPDATE partition_leases SET expires_at = clock_timestamp() + make_interval(secs => "
    "$2::bigint) WHERE owner = $1 RETURNING part, epoch"};
constexpr Statement kReleaseLeases{
    "release_leases",
    "UPDATE partition_leases SET owner = '', expires_at = '-infinity' WHERE owner = $1"};
constexpr Statement kDropNode{"drop_node", "DELETE FROM nodes WHERE node = $1"};

}  // namespace

Result<Ownership> PgStore::RenewLeases(const std::string& node, Seconds ttl) {
  if (node.empty()) return Error{"invalid_argument", "a lease holder needs a node id"};
  if (ttl.count() <= 0) return Error{"invalid_argument", "a lease needs a positive ttl"};
  return impl_->db.Fetch<Ownership>(Mode::kWrite, [&](Tx& tx, auto& out) -> Status {
    out = Ownership{node, /*all=*/false, {}};
    // Every lease row first, in order: renewals of all nodes queue here, one at a time.
    std::vector<LeaseRow> rows;
    for (const auto& row : tx.Exec(kLockLeases)) {
      rows.push_back({row[0].as<int>(), Text(row[1]), Int(row[2]), row[3].as<bool>()});
    }
    tx.Exec(kTouchNode, node, ttl.count());
    tx.Exec(kDropExpiredNodes);
    std::vector<std::string> live;
    for (const auto& row : tx.Exec(kLiveNodes)) live.push_back(Text(row[0]));
    std::vector<LeaseRow> changes = PlanLeases(rows, live, node);
    if (!changes.empty()) {
      ArrayLiteral parts, owners, epochs;
      for (const LeaseRow& c : changes) {
        parts.Add(int64_t{c.partition});
        owners.Add(c.owner);
        epochs.Add(c.epoch);
      }
      tx.Exec(kMoveLeases, parts.str(), owners.str(), epochs.str());
    }
    for (const auto& row : tx.Exec(kExtendLeases, node, ttl.count())) {
      out.epochs[row[0].as<int>()] = Int(row[1]);
    }
    return Status::Ok();
  });
}

Status PgStore::ReleaseLeases(const std::string& node) {
  return impl_->db.Run(Mode::kWrite, [&](Tx& tx) -> Status {
    tx.Exec(kLockLeases);  // in partition order, as RenewLeases: the two never deadlock
    tx.Exec(kReleaseLeases, node);
    tx.Exec(kDropNode, node);
    return Status::Ok();
  });
}

// ---- several daemons: announcements ----

namespace {

// LISTENs on its own connection (not the pool's: it stays subscribed between waits). Never
// reconnects by itself: announcements made while it was down are lost, so it reports the break
// and the caller opens a new watch and polls meanwhile.
class PgEventWatch final : public EventWatch {
 public:
  explicit PgEventWatch(std::unique_ptr<Connection> conn) : conn_(std::move(conn)) {
    receiver_ = std::make_unique<Receiver>(*conn_->db, &heard_);
    if (!conn_->db->is_open()) throw pqxx::broken_connection("LISTEN failed");
  }
  ~PgEventWatch() override {
    conn_->db->disconnect();  // first: the receiver would UNLISTEN on a dead connection
    receiver_.reset();
  }

  Result<std::vector<int>> Wait(std::chrono::milliseconds timeout) override {
    if (broken_) return Error{"storage", "the event watch is broken: " + error_};
    try {
      heard_.clear();
      const auto deadline = std::chrono::steady_clock::now() + timeout;
      while (true) {
        // Checked first: waiting on a closed connection would make pqxx reconnect it.
        if (!conn_->db->is_open()) throw pqxx::broken_connection("connection lost");
        conn_->db->get_notifs();
        if (!heard_.empty()) break;
        auto left = std::chrono::duration_cast<std::chrono::microseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        conn_->db->await_notification(static_cast<long>(left.count() / 1'000'000),
                                      static_cast<long>(left.count() % 1'000'000));
      }
    } catch (const std::exception& e) {
      broken_ = true;
      error_ = Message(e);
      return Error{"storage", "the event watch broke: " + error_};
    }
    return std::vector<int>(heard_.begin(), heard_.end());
  }

 private:
  class Receiver final : public pqxx::notification_receiver {
   public:
    Receiver(pqxx::connection& db, std::set<int>* heard)
        : pqxx::notification_receiver(db, "itinera_events"), heard_(heard) {}
    void operator()(const std::string& payload, int) override {
      try {
        int part = std::stoi(payload);
        if (part >= 0 && part < kPartitionCount) heard_->insert(part);
      } catch (const std::exception&) {  // not ours: ignored
      }
    }

   private:
    std::set<int>* heard_;
  };

  std::unique_ptr<Connection> conn_;
  std::set<int> heard_;
  std::unique_ptr<Receiver> receiver_;  // destroyed before the connection
  bool broken_ = false;
  std::string error_;
};

}  // namespace

Result<std::unique_ptr<EventWatch>> PgStore::WatchEvents() {
  auto conn = impl_->db.pool().Connect();
  if (!conn.ok()) return conn.error();
  try {
    return std::unique_ptr<EventWatch>(std::make_unique<PgEventWatch>(std::move(*conn)));
  } catch (const std::exception& e) {
    return Error{"storage", "cannot listen for events: " + Message(e)};
  }
}

}  // namespace itinera::orch
