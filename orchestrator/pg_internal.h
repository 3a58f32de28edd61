// Helpers shared by the PgStore's source files (pg_store.cc: connections, migrations, profiles,
// events, states and timers, the batch, leases and announcements; pg_outbox.cc: the outbox,
// sends, routing, timeline, counters and journey versions; pg_load.cc: LoadCustomers). Internal
// to the PostgreSQL store: includes <pqxx/pqxx>, so nothing outside those files (and their tests)
// includes it.
#ifndef ITINERA_ORCHESTRATOR_PG_INTERNAL_H_
#define ITINERA_ORCHESTRATOR_PG_INTERNAL_H_

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "orchestrator/pg_store.h"
#include "util/result.h"
#include "util/time.h"

namespace itinera::orch::pg_internal {

// Builds a PostgreSQL array literal ({"a","b\"c",NULL}), so a whole list travels as ONE
// statement parameter (cast in SQL: $1::text[], $2::bigint[], ...). Every text element is
// double-quoted with '"' and '\' escaped, so no content (commas, braces, spaces, the word NULL)
// can change the array's shape; NULL is the only unquoted word. Not thread-safe.
class ArrayLiteral {
 public:
  ArrayLiteral& Add(std::string_view text);
  ArrayLiteral& Add(int64_t value);
  ArrayLiteral& AddBool(bool value);  // not an Add overload: a const char* would pick it
  ArrayLiteral& AddNull();
  size_t size() const { return size_; }
  // The literal, e.g. {"a",NULL,"b"}; "{}" when nothing was added.
  std::string str() const { return text_ + "}"; }

 private:
  void Separate();

  std::string text_ = "{";
  size_t size_ = 0;
};

// A statement prepared (under `name`, lazily, once per connection) the first time a connection
// runs it. Values always travel as parameters; `sql` is a constant.
struct Statement {
  const char* name;
  const char* sql;
};

// One pooled connection and the statements already prepared on it.
struct Connection {
  std::unique_ptr<pqxx::connection> db;
  std::unordered_set<std::string> prepared;
};

// A call's view of its transaction: runs prepared statements on it.
class Tx {
 public:
  Tx(Connection& conn, pqxx::transaction_base& txn) : conn_(conn), txn_(txn) {}

  template <typename... Args>
  pqxx::result Exec(const Statement& statement, Args&&... args) {
    if (conn_.prepared.insert(statement.name).second) {
      conn_.db->prepare(statement.name, statement.sql);
    }
    return txn_.exec_prepared(statement.name, std::forward<Args>(args)...);
  }
  // Constant SQL without parameters that cannot be prepared (the migrations' DDL scripts).
  void ExecScript(const char* sql) { txn_.exec(sql); }

 private:
  Connection& conn_;
  pqxx::transaction_base& txn_;
};

// The connections shared by a store's threads. Up to `size` are open; a caller waits up to 5 s
// for one. A connection that broke is discarded (with the idle ones, which most likely broke
// with it) and a new one is opened on demand. When opening fails, further attempts wait out an
// exponential backoff (100 ms doubling to 5 s, reset on success) and callers in the meantime
// fail fast with a "storage" error instead of hammering a server that is down. Thread-safe.
class Pool {
 public:
  Pool(std::string url, int size);

  // A connection for one call; `*reused` tells whether it was idle in the pool (and so may have
  // broken unnoticed since its last use).
  Result<std::unique_ptr<Connection>> Acquire(bool* reused);
  void Release(std::unique_ptr<Connection> conn);
  // Drops a broken connection and every idle one.
  void Discard(std::unique_ptr<Connection> conn);
  // A new connection outside the pool's accounting (Open's first, the event watch).
  Result<std::unique_ptr<Connection>> Connect();

 private:
  using Clock = std::chrono::steady_clock;

  const std::string url_;
  const int size_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Connection>> idle_;
  int open_ = 0;  // idle, in use or being opened
  std::chrono::milliseconds backoff_{0};
  Clock::time_point retry_at_;
  bool probing_ = false;  // one caller is trying to reconnect after a failure
  std::string last_error_;
};

// The libpq URI with a connect timeout added (unless it sets one), so an unreachable host
// fails a call instead of hanging it.
std::string WithConnectTimeout(const std::string& url);

// pqxx messages end with a newline; errors carry them without.
std::string Message(const std::exception& e);

inline int64_t Secs(Time t) { return t.time_since_epoch().count(); }
inline Time FromSecs(int64_t s) { return Time{Seconds{s}}; }
// A negative limit means none (PostgreSQL rejects negative LIMITs).
inline int64_t Limit(int limit) { return std::max(limit, 0); }

inline Result<nlohmann::json> ParseJson(const char* text) {
  nlohmann::json value = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return Error{"corrupt", "stored JSON does not parse"};
  return value;
}

inline std::string Text(const pqxx::field& f) { return f.is_null() ? std::string() : f.c_str(); }
inline int64_t Int(const pqxx::field& f) { return f.as<int64_t>(); }

Result<OutboxMessage> ReadOutboxRow(const pqxx::row& row);

// Commit's appends, in pg_outbox.cc: outbox inserts and cancellations; sends and the timeline;
// routing and journey counters. Each list is one statement (none when empty).
// WriteOutbox sets `inserted` as Store::Commit does.
void WriteOutbox(Tx& tx, const Batch& batch, std::vector<size_t>* inserted);
void WriteHistory(Tx& tx, const Batch& batch);
void WriteCounters(Tx& tx, const Batch& batch);

enum class Mode {
  kRead,   // autocommit statements (reads that need no common snapshot)
  kWrite,  // BEGIN ... COMMIT
};

// The store's database: its pool and how one call runs on it. Thread-safe.
class Database {
 public:
  Database(std::string url, int pool) : pool_(std::move(url), pool) {}

  // Runs `body` on a pooled connection, in a transaction for kWrite (rolled back when `body`
  // returns an error). Every exception becomes an Error ("storage"; "commit outcome unknown"
  // when the connection broke during COMMIT). A connection that turns out to have broken while
  // idle in the pool (the server restarted) is replaced and `body` is run once more: nothing
  // had been committed. `body` must therefore start from scratch each time it is called.
  Status Run(Mode mode, const std::function<Status(Tx&)>& body);

  // Run for a call with a result: `body` fills a fresh T on each attempt.
  template <typename T>
  Result<T> Fetch(Mode mode, const std::function<Status(Tx&, T&)>& body) {
    T out{};
    Status s = Run(mode, [&](Tx& tx) -> Status {
      out = T{};
      return body(tx, out);
    });
    if (!s.ok()) return s.error();
    return out;
  }

  Pool& pool() { return pool_; }

 private:
  Pool pool_;
};

}  // namespace itinera::orch::pg_internal

namespace itinera::orch {

struct PgStore::Impl {
  Impl(std::string url, int pool) : db(std::move(url), pool) {}
  pg_internal::Database db;
};

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_PG_INTERNAL_H_
