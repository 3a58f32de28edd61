// The SQLite store's schema, as an ordered list of migrations (SQL text only; the library itself
// stays in sqlite_store.cc and sqlite_outbox.cc). Migration N (1-based) is
// kSqliteMigrations[N - 1]; SqliteStore::Open applies the ones a database has not recorded in
// `schema_migrations` yet, in one transaction.
#ifndef ITINERA_ORCHESTRATOR_SQLITE_SCHEMA_H_
#define ITINERA_ORCHESTRATOR_SQLITE_SCHEMA_H_

#include <vector>

namespace itinera::orch {

// Ordered; never edit an applied entry, append a new one.
inline const std::vector<const char*> kSqliteMigrations = {
    R"sql(
CREATE TABLE profiles (customer TEXT PRIMARY KEY, body TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT UNIQUE, customer TEXT NOT NULL,
  at INTEGER NOT NULL, body TEXT NOT NULL, processed INTEGER NOT NULL DEFAULT 0);
CREATE INDEX events_customer ON events (customer);
CREATE INDEX events_inbox ON events (customer, seq) WHERE processed = 0;
CREATE TABLE states (
  customer TEXT NOT NULL, journey TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY (customer, journey)) WITHOUT ROWID;
CREATE TABLE timers (
  customer TEXT NOT NULL, journey TEXT NOT NULL, wake INTEGER NOT NULL,
  PRIMARY KEY (customer, journey)) WITHOUT ROWID;
CREATE INDEX timers_due ON timers (wake, customer, journey);
CREATE TABLE sends (
  customer TEXT NOT NULL, channel TEXT NOT NULL, at INTEGER NOT NULL, held INTEGER NOT NULL);
CREATE INDEX sends_customer ON sends (customer, at);
CREATE TABLE routing (
  kind TEXT NOT NULL, key TEXT NOT NULL, value INTEGER NOT NULL,
  PRIMARY KEY (kind, key)) WITHOUT ROWID;
CREATE TABLE outbox (
  id TEXT PRIMARY KEY, customer TEXT NOT NULL, journey TEXT NOT NULL, channel TEXT NOT NULL,
  recipient TEXT NOT NULL, payload TEXT NOT NULL, status TEXT NOT NULL,
  created_at INTEGER NOT NULL, not_before INTEGER NOT NULL, attempts INTEGER NOT NULL,
  last_error TEXT NOT NULL, sent_at INTEGER);
CREATE INDEX outbox_due ON outbox (status, not_before, id);
CREATE INDEX outbox_status ON outbox (status, created_at, id);
CREATE INDEX outbox_customer ON outbox (customer);
CREATE TABLE timeline (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, customer TEXT NOT NULL, at INTEGER NOT NULL,
  kind TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX timeline_customer ON timeline (customer, at, seq);
CREATE TABLE counters (
  journey TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL,
  PRIMARY KEY (journey, name)) WITHOUT ROWID;
)sql",
    // 2: outbox counts per journey (MessageCounts); claims per channel (dispatcher lanes); the
    // journey versions loaded so far.
    R"sql(
CREATE INDEX outbox_journey ON outbox (journey, channel, status);
CREATE INDEX outbox_lane ON outbox (status, channel, not_before, id);
CREATE TABLE journey_versions (
  journey TEXT NOT NULL, version INTEGER NOT NULL, fingerprint TEXT NOT NULL,
  file TEXT NOT NULL, source TEXT NOT NULL, loaded_at INTEGER NOT NULL,
  PRIMARY KEY (journey, version)) WITHOUT ROWID;
)sql",
    // 3: the inbox in arrival order, so InboxCustomers reads only as far as the customers it
    // returns instead of grouping the whole backlog.
    R"sql(
CREATE INDEX events_pending ON events (seq, customer) WHERE processed = 0;
)sql",
    // 4: an email's rendered HTML in its own column, out of the payload's JSON (see
    // PayloadHtml in sqlite_internal.h). Messages written before keep it in the payload.
    R"sql(
ALTER TABLE outbox ADD COLUMN html TEXT;
)sql",
    // 5: the HTML moves to a table of its own, written once and never updated. The outbox row
    // is updated at every claim and every outcome, and SQLite rewrites a whole row (and its
    // page, into the WAL) to change one column: with the HTML in it, each of those updates
    // wrote the message's full body again. Rows are appended in the order they are written
    // and found by their integer key (outbox.html_ref), so a commit adds to the table's last
    // pages and no index. outbox.html stays, always NULL.
    R"sql(
ALTER TABLE outbox ADD COLUMN html_ref INTEGER;
CREATE TABLE outbox_html (ref INTEGER PRIMARY KEY, html TEXT NOT NULL);
INSERT INTO outbox_html (ref, html) SELECT rowid, html FROM outbox WHERE html IS NOT NULL;
UPDATE outbox SET html_ref = rowid, html = NULL WHERE html IS NOT NULL;
)sql",
    // 6: messages due at the same moment are claimed, and listed, in the order they were
    // written (rowid) rather than by id. Ids are hashes, so in id order a claim's messages lay
    // scattered over the table and over outbox_journey (ordered by rowid), and the claim and
    // each outcome rewrote about four pages per message into the WAL; in rowid order they are
    // neighbours. The indexes end in the rowid, as every SQLite index does, instead of the id.
    R"sql(
DROP INDEX outbox_due;
DROP INDEX outbox_lane;
DROP INDEX outbox_status;
CREATE INDEX outbox_due ON outbox (status, not_before);
CREATE INDEX outbox_lane ON outbox (status, channel, not_before);
CREATE INDEX outbox_status ON outbox (status, created_at);
)sql",
};

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_SQLITE_SCHEMA_H_
