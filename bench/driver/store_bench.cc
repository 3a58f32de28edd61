// Durable transitions on a store, and the one-row SQLite transaction that bounds them.
#include <sqlite3.h>

#include <cstring>
#include <iostream>

#include "bench/driver/bench.h"
#include "orchestrator/store.h"

namespace itinera::bench {

using nlohmann::json;

namespace {

void Sql(sqlite3* db, const char* sql) {
  char* error = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &error);
  Check(rc == SQLITE_OK, std::string(sql) + ": " + (error ? error : "?"));
}

Time Start() { return Time{Seconds{1795341600}}; }  // 2026-11-22 06:40Z

}  // namespace

// --dir D --seconds S: one-row transactions (a 64-byte row replaced by key) with the settings
// of the SQLite store: WAL, synchronous=FULL (an fsync per commit).
int SqliteReference(const Flags& flags) {
  Workspace ws(flags.Text("dir"));
  const double seconds = flags.Real("seconds", 5);
  sqlite3* db = nullptr;
  Check(sqlite3_open((ws.path() / "reference.db").c_str(), &db) == SQLITE_OK, "sqlite open");
  Sql(db, "PRAGMA journal_mode=WAL");
  Sql(db, "PRAGMA synchronous=FULL");
  Sql(db, "CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB NOT NULL)");
  sqlite3_stmt* begin = nullptr;
  sqlite3_stmt* put = nullptr;
  sqlite3_stmt* commit = nullptr;
  sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &begin, nullptr);
  sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO t (k, v) VALUES (?, ?)", -1, &put, nullptr);
  sqlite3_prepare_v2(db, "COMMIT", -1, &commit, nullptr);
  char value[64];
  std::memset(value, 'x', sizeof value);
  int64_t n = 0;
  auto start = std::chrono::steady_clock::now();
  while (Since(start) < seconds) {
    Check(sqlite3_step(begin) == SQLITE_DONE, "begin");
    sqlite3_reset(begin);
    sqlite3_bind_int64(put, 1, n % 100000);
    sqlite3_bind_blob(put, 2, value, sizeof value, SQLITE_STATIC);
    Check(sqlite3_step(put) == SQLITE_DONE, "insert");
    sqlite3_reset(put);
    Check(sqlite3_step(commit) == SQLITE_DONE, "commit");
    sqlite3_reset(commit);
    ++n;
  }
  double elapsed = Since(start);
  sqlite3_finalize(begin);
  sqlite3_finalize(put);
  sqlite3_finalize(commit);
  sqlite3_close(db);
  Emit({{"transactions", n}, {"seconds", elapsed}, {"per_s", n / elapsed}});
  return 0;
}

// --store URL --customers N [--batch B] [--dir D]: N customers go through bench_flow (three
// durable transitions each: enter with a rendered email, a timer, a timer that exits). The
// clock is a ManualClock moved past each wait, so the figure is the processor and the store,
// not the waits. Profiles and the entry events are written first, untimed.
int Transitions(const Flags& flags) {
  Workspace ws(flags.Text("dir"));
  ws.Use("flow");
  std::string url = flags.Text("store", "sqlite:" + (ws.path() / "itinera.db").string());
  const int64_t customers = flags.Int("customers", 10000);
  orch::StoreOptions store_options;
  auto store = orch::OpenStore(url, store_options);
  Check(store.ok(), "open store: " + (store.ok() ? "" : store.error().message));
  orch::ManualClock clock(Start());
  orch::JourneyRegistry registry(ws.config(), **store);
  orch::ReloadReport report = registry.Load();
  Check(report.errors == 0 && report.published.size() == 1, "bench_flow does not load");
  orch::ProcessorOptions options;
  options.batch = static_cast<int>(flags.Int("batch", 500));
  options.public_url = ws.config().server.public_url;
  options.tracking_secret = ws.config().server.tracking_secret;
  orch::Processor processor(**store, clock, registry, ws.config().directory, options);

  SeedProfiles(**store, "c", customers);
  AppendEvents(**store, "c", customers, "signup", clock.Now());

  auto start = std::chrono::steady_clock::now();
  for (int round = 0; round < 3; ++round) {
    Drain(processor);
    clock.Advance(Seconds{86400 + 1});
  }
  const double elapsed = Since(start);
  const int64_t transitions = processor.stats().transitions;
  auto counters = (*store)->JourneyCounters("bench_flow");
  Check(counters.ok(), "counters");
  Check(transitions == 3 * customers, "expected " + std::to_string(3 * customers) +
                                          " transitions, made " + std::to_string(transitions));
  Emit({{"customers", customers},
        {"transitions", transitions},
        {"messages", processor.stats().messages.load()},
        {"commits", processor.stats().batches.load()},
        {"seconds", elapsed},
        {"commit_seconds", static_cast<double>(processor.stats().commit_micros.load()) / 1e6},
        {"per_s", transitions / elapsed},
        {"us_per_customer", elapsed * 1e6 / static_cast<double>(customers)}});
  return 0;
}

// --store URL --customers N [--prefix P]: creates the bench audience (profiles with consent),
// for a daemon started afterwards on the same store.
int Seed(const Flags& flags) {
  auto store = orch::OpenStore(flags.Text("store"));
  Check(store.ok(), "open store: " + (store.ok() ? "" : store.error().message));
  auto start = std::chrono::steady_clock::now();
  const int64_t n = flags.Int("customers", 1000);
  SeedProfiles(**store, flags.Text("prefix", "c"), n);
  Emit({{"customers", n}, {"seconds", Since(start)}});
  return 0;
}

}  // namespace itinera::bench
