// Helpers shared by the SqliteStore's source files (sqlite_store.cc: opening, migrations,
// profiles, events, states and the batch; sqlite_outbox.cc: the outbox, timeline, counters and
// journey versions). Internal to the SQLite store: includes <sqlite3.h>, so nothing outside those
// files includes it.
#ifndef ITINERA_ORCHESTRATOR_SQLITE_INTERNAL_H_
#define ITINERA_ORCHESTRATOR_SQLITE_INTERNAL_H_

#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "orchestrator/store.h"
#include "util/result.h"
#include "util/time.h"

namespace itinera::orch::sqlite_internal {

// SQLite reads a negative LIMIT as "no limit"; the interface means none.
inline int64_t Limit(int limit) { return std::max(limit, 0); }
inline int64_t Secs(Time t) { return t.time_since_epoch().count(); }
inline Time FromSecs(int64_t s) { return Time{Seconds{s}}; }

// An email's rendered HTML, the bulk of its payload, is kept in the outbox_html table rather
// than inside the payload's JSON: written and read as it is, it is not escaped on every commit
// nor parsed on every claim, and the outbox row that claims and outcomes update stays small.
// The payload's "html" when it is a string, else nullptr.
inline const std::string* PayloadHtml(const nlohmann::json& payload) {
  if (!payload.is_object()) return nullptr;
  auto it = payload.find("html");
  return it != payload.end() && it->is_string() ? it->get_ptr<const std::string*>() : nullptr;
}

// What goes into the payload column when PayloadHtml is not null: the other fields.
inline nlohmann::json PayloadWithoutHtml(const nlohmann::json& payload) {
  nlohmann::json rest = nlohmann::json::object();
  for (auto it = payload.begin(); it != payload.end(); ++it) {
    if (it.key() != "html") rest[it.key()] = *it;
  }
  return rest;
}

inline Result<nlohmann::json> ParseJson(const std::string& text) {
  nlohmann::json value = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
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
  Query& Bind(std::string_view value) {
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

}  // namespace itinera::orch::sqlite_internal

// Declares `query`, the cached statement for `sql` (a string literal, or a pointer to one),
// checked out for one use; returns the error from the enclosing SqliteStore member when it does
// not prepare.
#define ITINERA_SQL(query, sql)                        \
  auto query##_stmt = Prepare(sql);                    \
  if (!query##_stmt.ok()) return query##_stmt.error(); \
  ::itinera::orch::sqlite_internal::Query query(*query##_stmt)

// The same on the reading connection (SqliteStore::LockRead held).
#define ITINERA_READ_SQL(query, sql)                   \
  auto query##_stmt = PrepareRead(sql);                \
  if (!query##_stmt.ok()) return query##_stmt.error(); \
  ::itinera::orch::sqlite_internal::Query query(*query##_stmt)

// The outbox columns a message is inserted with.
#define ITINERA_OUTBOX_COLUMNS                                                           \
  "id, customer, journey, channel, recipient, payload, status, created_at, not_before, " \
  "attempts, last_error, sent_at "

// What a read of the outbox selects, in the order ReadOutboxRow (sqlite_outbox.cc) reads it:
// the columns, then the message's HTML from outbox_html (NULL when it has none).
#define ITINERA_OUTBOX_SELECT \
  ITINERA_OUTBOX_COLUMNS ", (SELECT html FROM outbox_html WHERE ref = outbox.html_ref) "

#endif  // ITINERA_ORCHESTRATOR_SQLITE_INTERNAL_H_
