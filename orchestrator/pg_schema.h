// The PostgreSQL store's schema, as an ordered list of migrations (SQL text only; libpqxx stays
// in pg_store.cc and pg_outbox.cc). Migration N (1-based) is kPgMigrations[N - 1]; PgStore::Open
// applies the ones a database has not recorded in `schema_migrations` yet, all in one transaction
// that holds kPgMigrationLock, so daemons starting at once migrate one after the other.
//
// The layout mirrors the SQLite store (sqlite_schema.h); pg_store.cc's file comment explains
// where and why it differs (partition columns, sharded counters, leases, the state log).
#ifndef ITINERA_ORCHESTRATOR_PG_SCHEMA_H_
#define ITINERA_ORCHESTRATOR_PG_SCHEMA_H_

#include <cstdint>
#include <vector>

#include "orchestrator/partitions.h"

namespace itinera::orch {

// The pg_advisory_xact_lock key that serialises migrations ("itin" in ASCII).
inline constexpr int64_t kPgMigrationLock = 0x6974696e;

// Migration 2 fills partition_leases with rows 0..63.
static_assert(kPartitionCount == 64, "update the generate_series bound in kPgMigrations[1]");

// Ordered; never edit an applied entry, append a new one.
inline const std::vector<const char*> kPgMigrations = {
    // 1: the store proper, as in SQLite, plus the partition of each event and timer.
    R"sql(
CREATE TABLE profiles (customer text COLLATE "C" PRIMARY KEY, body text NOT NULL);
CREATE TABLE events (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, event_id text COLLATE "C" UNIQUE,
  customer text COLLATE "C" NOT NULL, part smallint NOT NULL, at bigint NOT NULL,
  body text NOT NULL, processed boolean NOT NULL DEFAULT false);
CREATE INDEX events_customer ON events (customer);
CREATE INDEX events_pending ON events (customer, seq) WHERE NOT processed;
CREATE INDEX events_inbox ON events (part, seq) INCLUDE (customer) WHERE NOT processed;
CREATE TABLE states (
  customer text COLLATE "C" NOT NULL, journey text COLLATE "C" NOT NULL, version bigint NOT NULL,
  body text NOT NULL, PRIMARY KEY (customer, journey));
CREATE TABLE timers (
  customer text COLLATE "C" NOT NULL, journey text COLLATE "C" NOT NULL, part smallint NOT NULL,
  wake bigint NOT NULL, PRIMARY KEY (customer, journey));
CREATE INDEX timers_due ON timers (wake, customer, journey);
CREATE INDEX timers_due_part ON timers (part, wake, customer, journey);
CREATE TABLE sends (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, customer text COLLATE "C" NOT NULL,
  channel text NOT NULL, at bigint NOT NULL, held boolean NOT NULL);
CREATE INDEX sends_customer ON sends (customer, at, seq);
CREATE TABLE routing (
  kind text COLLATE "C" NOT NULL, key text COLLATE "C" NOT NULL, shard smallint NOT NULL,
  value bigint NOT NULL, PRIMARY KEY (kind, key, shard));
CREATE TABLE outbox (
  id text COLLATE "C" PRIMARY KEY, customer text COLLATE "C" NOT NULL,
  journey text COLLATE "C" NOT NULL, channel text COLLATE "C" NOT NULL, recipient text NOT NULL,
  payload text NOT NULL, status text NOT NULL, created_at bigint NOT NULL,
  not_before bigint NOT NULL, attempts bigint NOT NULL, last_error text NOT NULL,
  sent_at bigint);
CREATE INDEX outbox_due ON outbox (not_before, id) WHERE status = 'pending';
CREATE INDEX outbox_lane ON outbox (channel, not_before, id) WHERE status = 'pending';
CREATE INDEX outbox_status ON outbox (status, created_at, id);
CREATE INDEX outbox_customer ON outbox (customer);
CREATE INDEX outbox_journey ON outbox (journey, channel, status);
CREATE TABLE timeline (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, customer text COLLATE "C" NOT NULL,
  at bigint NOT NULL, kind text NOT NULL, data text NOT NULL);
CREATE INDEX timeline_customer ON timeline (customer, at, seq);
CREATE TABLE counters (
  journey text COLLATE "C" NOT NULL, name text COLLATE "C" NOT NULL, shard smallint NOT NULL,
  value bigint NOT NULL, PRIMARY KEY (journey, name, shard));
CREATE TABLE journey_versions (
  journey text COLLATE "C" NOT NULL, version bigint NOT NULL, fingerprint text NOT NULL,
  file text NOT NULL, source text NOT NULL, loaded_at bigint NOT NULL,
  PRIMARY KEY (journey, version));
)sql",
    // 2: several daemons on one database: the live nodes, one lease per partition, and the
    // audit of who advanced which state version.
    R"sql(
CREATE TABLE nodes (node text COLLATE "C" PRIMARY KEY, expires_at timestamptz NOT NULL);
CREATE TABLE partition_leases (
  part int PRIMARY KEY, owner text COLLATE "C" NOT NULL DEFAULT '',
  epoch bigint NOT NULL DEFAULT 0, expires_at timestamptz NOT NULL DEFAULT '-infinity');
INSERT INTO partition_leases (part) SELECT generate_series(0, 63);
CREATE TABLE state_log (
  customer text COLLATE "C" NOT NULL, journey text COLLATE "C" NOT NULL, version bigint NOT NULL,
  node text NOT NULL, epoch bigint NOT NULL, at bigint NOT NULL,
  PRIMARY KEY (customer, journey, version));
CREATE INDEX state_log_at ON state_log (at);
)sql",
    // 3: the inbox in arrival order, so InboxCustomers reads only the oldest pending events
    // instead of grouping the whole backlog.
    R"sql(
CREATE INDEX events_arrival ON events (seq) INCLUDE (customer, part) WHERE NOT processed;
)sql",
};

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_PG_SCHEMA_H_
