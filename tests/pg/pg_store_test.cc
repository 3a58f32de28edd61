// PgStore against a real PostgreSQL: the Store conformance suite, then what only the shared
// store does (migrations, partition leases, fenced commits, announcements, concurrent claims).
// All tests share one server (started on first use); each gets a fresh database.
#include "orchestrator/pg_store.h"

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "orchestrator/pg_internal.h"
#include "tests/orchestrator/store_conformance.h"
#include "tests/pg/pg_server.h"

namespace itinera::orch::store_testing {
namespace {

using itinera::testing::PgServer;
using pg_internal::ArrayLiteral;

PgServer& SharedServer() {
  static PgServer server;
  static const bool started = server.Start();
  EXPECT_TRUE(started) << "the test PostgreSQL server did not start";
  return server;
}

// A new, empty database on the shared server; its URL.
std::string FreshDatabase() {
  static std::atomic<int> counter{0};
  const std::string name = "t_" + std::to_string(++counter);
  EXPECT_TRUE(SharedServer().CreateDatabase(name));
  return SharedServer().Url(name);
}

std::unique_ptr<PgStore> OpenPg(const std::string& url, int pool = 4) {
  auto store = PgStore::Open(url, pool);
  EXPECT_TRUE(store.ok()) << (store.ok() ? "" : store.error().message);
  return store.ok() ? std::move(*store) : nullptr;
}

struct PgFactory {
  static std::unique_ptr<Store> Make() { return OpenPg(FreshDatabase()); }
};

INSTANTIATE_TYPED_TEST_SUITE_P(Pg, StoreConformanceTest, ::testing::Types<PgFactory>);

// ---- the array literal encoder ----

TEST(PgArrayLiteralTest, QuotesEveryTextElement) {
  EXPECT_EQ(ArrayLiteral().str(), "{}");
  EXPECT_EQ(ArrayLiteral().Add("a").Add("").AddNull().str(), R"({"a","",NULL})");
  EXPECT_EQ(ArrayLiteral().Add(R"(say "hi")").Add(R"(C:\dir\)").str(),
            R"({"say \"hi\"","C:\\dir\\"})");
  EXPECT_EQ(ArrayLiteral().Add("NULL").Add("{a,b}").Add(" x ").str(), R"({"NULL","{a,b}"," x "})");
  EXPECT_EQ(
      ArrayLiteral().Add(int64_t{-5}).Add(int64_t{0}).AddNull().AddBool(true).AddBool(false).str(),
      "{-5,0,NULL,t,f}");
  EXPECT_EQ(ArrayLiteral().Add("a").AddNull().size(), 2u);
}

TEST(PgArrayLiteralTest, RoundTripsThroughPostgres) {
  const std::vector<std::optional<std::string>> values = {"plain",
                                                          "",
                                                          std::nullopt,
                                                          "NULL",
                                                          R"(quote " inside)",
                                                          R"(back\slash)",
                                                          R"(\")",
                                                          "comma, {braces}",
                                                          "  spaces  ",
                                                          "line\nbreak",
                                                          "tab\there",
                                                          "Příliš žluťoučký 🐎",
                                                          "'single'"};
  ArrayLiteral literal;
  json expected = json::array();
  for (const auto& v : values) {
    if (v) {
      literal.Add(*v);
      expected.push_back(*v);
    } else {
      literal.AddNull();
      expected.push_back(nullptr);
    }
  }
  // The literal travels as a parameter in the store; dollar quoting is as literal here.
  std::string out = SharedServer().Query(
      "postgres", "SELECT json_agg(x ORDER BY n) FROM unnest($lit$" + literal.str() +
                      "$lit$::text[]) WITH ORDINALITY AS u(x, n)");
  EXPECT_EQ(json::parse(out), expected) << literal.str();
  EXPECT_EQ(SharedServer().Query("postgres", "SELECT cardinality('" +
                                                 ArrayLiteral().Add(int64_t{7}).AddNull().str() +
                                                 "'::bigint[])"),
            "2");
}

// ---- migrations ----

TEST(PgStoreTest, MigrationsAreRecordedOnceAndReopenAppliesNothing) {
  const std::string url = FreshDatabase();
  const std::string db = url.substr(url.rfind('/') + 1);
  const std::string latest = std::to_string(PgStore::LatestSchemaVersion());
  {
    auto store = OpenPg(url);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(*store->SchemaVersion(), PgStore::LatestSchemaVersion());
    EXPECT_EQ(*store->MigrationCount(), PgStore::LatestSchemaVersion());
    ASSERT_TRUE(store->UpsertProfile("c-1", json::object()).ok());
  }
  auto store = OpenPg(url);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(*store->MigrationCount(), PgStore::LatestSchemaVersion());
  EXPECT_TRUE(store->GetProfile("c-1")->has_value());
  auto& server = SharedServer();
  EXPECT_EQ(server.Query(db, "SELECT count(*) FROM schema_migrations WHERE applied_at IS NOT NULL"),
            latest);
  EXPECT_EQ(server.Query(db,
                         "SELECT count(*), min(part), max(part), max(epoch), "
                         "count(*) FILTER (WHERE owner = '') FROM partition_leases"),
            "64|0|63|0|64");
}

TEST(PgStoreTest, StoresOpeningAFreshDatabaseAtOnceAllSucceed) {
  const std::string url = FreshDatabase();
  constexpr int kStores = 4;
  std::vector<std::unique_ptr<PgStore>> stores(kStores);
  std::vector<std::string> errors(kStores);
  std::vector<std::thread> threads;
  for (int i = 0; i < kStores; ++i) {
    threads.emplace_back([&, i] {
      auto store = PgStore::Open(url, 1);
      if (store.ok()) {
        stores[i] = std::move(*store);
      } else {
        errors[i] = store.error().code + ": " + store.error().message;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kStores; ++i) {
    ASSERT_NE(stores[i], nullptr) << errors[i];
    EXPECT_EQ(*stores[i]->MigrationCount(), PgStore::LatestSchemaVersion());
  }
}

TEST(PgStoreTest, OpenReportsAnUnreachableServerAsStorage) {
  auto store = PgStore::Open("postgresql://itinera@127.0.0.1:1/nothing", 1);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code, "storage");
  EXPECT_EQ(PgStore::Open("mysql://localhost/x", 1).error().code, "invalid_argument");
  EXPECT_EQ(PgStore::Open(SharedServer().Url(), 0).error().code, "invalid_argument");
}

TEST(PgStoreTest, PartitionFiltersReadFromIndexes) {
  const std::string url = FreshDatabase();
  const std::string db = url.substr(url.rfind('/') + 1);
  auto store = OpenPg(url);
  ASSERT_NE(store, nullptr);
  std::vector<NewEvent> events;
  Batch timers;
  for (int i = 0; i < 5000; ++i) {
    const std::string c = "c-" + std::to_string(i);
    events.push_back(Event("", c));
    timers.timers.push_back({c, "j", At(i)});
  }
  ASSERT_TRUE(store->AppendEvents(events).ok());
  ASSERT_TRUE(store->Commit(timers).ok());
  auto& server = SharedServer();
  server.Query(db, "ANALYZE");
  const PartitionSet mine = PartitionSet::Of({3, 17});
  auto inbox = store->InboxCustomers(100, mine);
  ASSERT_TRUE(inbox.ok());
  EXPECT_FALSE(inbox->empty());
  auto due = store->DueCustomers(At(100'000), 100, mine);
  ASSERT_TRUE(due.ok());
  EXPECT_EQ(due->size(), 100u);
  store.reset();  // a backend reports its statistics when it exits
  std::string scans;
  const std::string expected = "events_inbox|true timers_due_part|true";
  for (int i = 0; i < 100 && scans != expected; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    scans = server.Query(db,
                         "SELECT string_agg(indexrelname || '|' || (idx_scan > 0)::text, ' ' "
                         "ORDER BY indexrelname) FROM pg_stat_user_indexes WHERE indexrelname "
                         "IN ('events_inbox', 'timers_due_part')");
  }
  EXPECT_EQ(scans, expected);
}

TEST(PgStoreTest, ConcurrentClaimersNeverShareAMessage) {
  const std::string url = FreshDatabase();
  auto first = OpenPg(url);
  auto second = OpenPg(url);
  ASSERT_TRUE(first && second);
  constexpr int kMessages = 300;
  Batch b;
  for (int i = 0; i < kMessages; ++i) b.outbox.push_back(Message("m-" + std::to_string(i), At(0)));
  ASSERT_TRUE(first->Commit(b).ok());
  std::mutex mu;
  std::map<std::string, int> claims;
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      PgStore& store = t % 2 == 0 ? *first : *second;
      while (true) {
        auto claimed = store.ClaimDue(At(0), 7, Seconds{600}, "");
        ASSERT_TRUE(claimed.ok()) << claimed.error().message;
        if (claimed->empty()) return;
        std::lock_guard lock(mu);
        for (const auto& m : *claimed) ++claims[m.id];
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(claims.size(), static_cast<size_t>(kMessages));
  for (const auto& [id, n] : claims) EXPECT_EQ(n, 1) << id;
}

TEST(PgStoreTest, ConcurrentFirstWritesOfOneStateConflict) {
  const std::string url = FreshDatabase();
  auto first = OpenPg(url);
  auto second = OpenPg(url);
  ASSERT_TRUE(first && second);
  for (int round = 0; round < 5; ++round) {
    const std::string customer = "race-" + std::to_string(round);
    std::atomic<bool> go{false};
    std::vector<std::string> codes(2);
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t) {
      threads.emplace_back([&, t] {
        Batch b;
        b.states.push_back({customer, "welcome", SampleState(customer, std::to_string(t)), 0});
        while (!go) std::this_thread::yield();
        Status s = (t == 0 ? *first : *second).Commit(b);
        codes[t] = s.ok() ? "ok" : s.error().code;
      });
    }
    go = true;
    for (auto& t : threads) t.join();
    std::multiset<std::string> outcome(codes.begin(), codes.end());
    EXPECT_EQ(outcome, (std::multiset<std::string>{"conflict", "ok"})) << customer;
    EXPECT_EQ((*first->GetState(customer, "welcome"))->version, 1);
  }
}

TEST(PgStoreTest, CountersFromManyConnectionsAddUp) {
  const std::string url = FreshDatabase();
  const std::string db = url.substr(url.rfind('/') + 1);
  std::vector<std::unique_ptr<PgStore>> stores;
  for (int i = 0; i < 3; ++i) stores.push_back(OpenPg(url, 2));
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        Batch b;
        b.counters.push_back({"welcome", "entered", 1});
        b.routing.round_robin["prague"] = 1;
        b.routing.load["rep_anna"] = t % 2 == 0 ? 1 : -1;
        EXPECT_TRUE(stores[t % 3]->Commit(b).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(stores[0]->JourneyCounters("welcome").value()["entered"], 120);
  RoutingSnapshot routing = *stores[1]->GetRouting();
  EXPECT_EQ(routing.round_robin["prague"], 120);
  EXPECT_EQ(routing.load["rep_anna"], 0);
  // Spread over shards (one per backend, modulo 16) rather than one hot row.
  EXPECT_GT(std::stoi(SharedServer().Query(db, "SELECT count(*) FROM counters")), 1);
}

TEST(PgStoreTest, ACallWaitsAtMostFiveSecondsForAFreeConnection) {
  const std::string url = FreshDatabase();
  const std::string db = url.substr(url.rfind('/') + 1);
  auto store = OpenPg(url, 1);
  ASSERT_NE(store, nullptr);
  auto& server = SharedServer();
  auto poll_until = [&](const std::string& sql) {
    for (int i = 0; i < 200 && server.Query(db, sql) != "1"; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  };
  std::thread locker([&] {
    server.Query(db,
                 "BEGIN; LOCK TABLE profiles IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(6); "
                 "COMMIT");
  });
  poll_until("SELECT count(*) FROM pg_locks WHERE relation = 'profiles'::regclass AND granted");
  // The only connection waits on the lock ...
  std::thread holder([&] { EXPECT_TRUE(store->UpsertProfile("c-1", json::object()).ok()); });
  poll_until("SELECT count(*) FROM pg_locks WHERE relation = 'profiles'::regclass AND NOT granted");
  // ... so another call gives up after 5 s.
  const auto start = std::chrono::steady_clock::now();
  auto m = store->GetMessage("m-1");
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code, "storage") << m.error().message;
  EXPECT_GE(waited, std::chrono::milliseconds(4900));
  EXPECT_LT(waited, std::chrono::milliseconds(5900));
  holder.join();
  locker.join();
  EXPECT_TRUE(store->GetMessage("m-1").ok());
}

// ---- leases ----

Ownership Renew(PgStore& store, const std::string& node, Seconds ttl = Seconds{30}) {
  auto owned = store.RenewLeases(node, ttl);
  EXPECT_TRUE(owned.ok()) << (owned.ok() ? "" : owned.error().message);
  return owned.ok() ? *owned : Ownership{};
}

// Every partition held by exactly one of the nodes.
void ExpectAPartition(const std::vector<Ownership>& nodes) {
  std::map<int, int> holders;
  for (const Ownership& o : nodes) {
    EXPECT_FALSE(o.all);
    for (const auto& [part, epoch] : o.epochs) ++holders[part];
  }
  EXPECT_EQ(holders.size(), static_cast<size_t>(kPartitionCount));
  for (const auto& [part, n] : holders) EXPECT_EQ(n, 1) << "partition " << part;
}

TEST(PgLeaseTest, NodesSplitThePartitionsAndTakeOverFromTheSilent) {
  const std::string url = FreshDatabase();
  auto a = OpenPg(url, 1), b = OpenPg(url, 1), c = OpenPg(url, 1);
  ASSERT_TRUE(a && b && c);
  EXPECT_TRUE(a->Shared());

  Ownership oa = Renew(*a, "a");
  EXPECT_EQ(oa.node, "a");
  ASSERT_EQ(oa.epochs.size(), 64u);
  for (const auto& [part, epoch] : oa.epochs) EXPECT_EQ(epoch, 1) << part;

  Ownership ob;
  for (int i = 0; i < 3; ++i) {
    ob = Renew(*b, "b");
    oa = Renew(*a, "a");
  }
  EXPECT_EQ(oa.epochs.size(), 32u);
  EXPECT_EQ(ob.epochs.size(), 32u);
  ExpectAPartition({oa, ob});

  Ownership oc;
  for (int i = 0; i < 3; ++i) {
    oc = Renew(*c, "c");
    ob = Renew(*b, "b");
    oa = Renew(*a, "a");
  }
  EXPECT_EQ(oa.epochs.size(), 22u);
  EXPECT_EQ(ob.epochs.size(), 21u);
  EXPECT_EQ(oc.epochs.size(), 21u);
  ExpectAPartition({oa, ob, oc});

  // a renews one last time with a short ttl and goes silent; b and c take over once it expires.
  oa = Renew(*a, "a", Seconds{1});
  const std::map<int, int64_t> left = oa.epochs;
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  for (int i = 0; i < 2; ++i) {
    ob = Renew(*b, "b");
    oc = Renew(*c, "c");
  }
  EXPECT_EQ(ob.epochs.size(), 32u);
  EXPECT_EQ(oc.epochs.size(), 32u);
  ExpectAPartition({ob, oc});
  for (const auto& [part, epoch] : left) {
    int64_t now = ob.epochs.count(part) ? ob.epochs[part] : oc.epochs[part];
    EXPECT_EQ(now, epoch + 1) << "partition " << part;
  }

  // A clean stop frees everything at once: no waiting for the ttl.
  ASSERT_TRUE(b->ReleaseLeases("b").ok());
  oc = Renew(*c, "c");
  EXPECT_EQ(oc.epochs.size(), 64u);
  const std::string db = url.substr(url.rfind('/') + 1);
  EXPECT_EQ(SharedServer().Query(db, "SELECT string_agg(node, ',' ORDER BY node) FROM nodes"), "c");
  EXPECT_EQ(c->RenewLeases("", Seconds{30}).error().code, "invalid_argument");
  EXPECT_EQ(c->RenewLeases("c", Seconds{0}).error().code, "invalid_argument");
}

// ---- fenced commits ----

Batch AdvanceBatch(const std::string& customer, int64_t expected, const std::string& tag) {
  Batch b;
  b.states.push_back({customer, "welcome", SampleState(customer, tag), expected});
  b.outbox.push_back(Message("m-" + tag, At(0), customer));
  b.timeline.push_back({0, customer, At(0), "step", {{"tag", tag}}});
  b.counters.push_back({"welcome", tag, 1});
  return b;
}

TEST(PgFenceTest, ACommitWhoseLeaseMovedOnIsRefusedWhole) {
  const std::string url = FreshDatabase();
  const std::string db = url.substr(url.rfind('/') + 1);
  auto a = OpenPg(url, 2), b = OpenPg(url, 2);
  ASSERT_TRUE(a && b);
  Ownership oa = Renew(*a, "a");
  // A customer in the upper half: a gives those partitions up when b joins.
  std::string customer;
  for (int i = 0; customer.empty(); ++i) {
    if (PartitionOf("c-" + std::to_string(i)) >= kPartitionCount / 2) {
      customer = "c-" + std::to_string(i);
    }
  }
  const int part = PartitionOf(customer);
  const Fence fence_a{"a", {{part, oa.epochs[part]}}};

  Batch first = AdvanceBatch(customer, 0, "first");
  first.fence = fence_a;
  ASSERT_TRUE(a->Commit(first).ok());

  Ownership ob;
  for (int i = 0; i < 2; ++i) {
    ob = Renew(*b, "b");
    oa = Renew(*a, "a");
  }
  ob = Renew(*b, "b");
  ASSERT_EQ(ob.epochs.count(part), 1u);
  EXPECT_EQ(ob.epochs[part], 2);

  Batch stale = AdvanceBatch(customer, 1, "stale");
  stale.fence = fence_a;
  Status refused = a->Commit(stale);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, "lease_lost") << refused.error().message;
  EXPECT_EQ((*a->GetState(customer, "welcome"))->version, 1);
  EXPECT_FALSE(a->GetMessage("m-stale")->has_value());
  EXPECT_EQ(a->Timeline(customer, 10)->size(), 1u);
  EXPECT_EQ(a->JourneyCounters("welcome")->count("stale"), 0u);

  stale.fence = Fence{"b", {{part, 0}}};  // the right node at a wrong epoch
  EXPECT_EQ(b->Commit(stale).error().code, "lease_lost");
  stale.fence = Fence{"b", {{part, ob.epochs[part]}}};
  ASSERT_TRUE(b->Commit(stale).ok());
  EXPECT_EQ((*b->GetState(customer, "welcome"))->version, 2);

  Batch unfenced = AdvanceBatch("u-1", 0, "unfenced");
  ASSERT_TRUE(b->Commit(unfenced).ok());
  EXPECT_EQ(SharedServer().Query(
                db,
                "SELECT string_agg(customer || '/' || version || '/' || node || '/' || epoch, "
                "' ' ORDER BY customer, version) FROM state_log"),
            customer + "/1/a/1 " + customer + "/2/b/2 u-1/1//0");
}

TEST(PgFenceTest, AnExpiredLeaseRefusesCommitsEvenIfNobodyTookIt) {
  auto a = OpenPg(FreshDatabase(), 1);
  ASSERT_NE(a, nullptr);
  Ownership oa = Renew(*a, "a", Seconds{1});
  Batch b = AdvanceBatch("c-1", 0, "late");
  b.fence = Fence{"a", {{PartitionOf("c-1"), oa.epochs[PartitionOf("c-1")]}}};
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  Status s = a->Commit(b);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, "lease_lost");
  EXPECT_NE(s.error().message.find("expired"), std::string::npos) << s.error().message;
  Renew(*a, "a");  // renewed in time again: the same epoch is good
  ASSERT_TRUE(a->Commit(b).ok());
}

// ---- announcements ----

// Waits until `want` were all announced (or 5 s passed); returns what was heard.
std::set<int> HearAll(EventWatch& watch, const std::set<int>& want) {
  std::set<int> heard;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!std::includes(heard.begin(), heard.end(), want.begin(), want.end()) &&
         std::chrono::steady_clock::now() < deadline) {
    auto got = watch.Wait(std::chrono::milliseconds(500));
    EXPECT_TRUE(got.ok()) << (got.ok() ? "" : got.error().message);
    if (!got.ok()) break;
    heard.insert(got->begin(), got->end());
  }
  return heard;
}

TEST(PgWatchTest, AppendsFromAnotherStoreAreAnnouncedByPartition) {
  const std::string url = FreshDatabase();
  auto listener = OpenPg(url, 1), writer = OpenPg(url, 1);
  ASSERT_TRUE(listener && writer);
  auto watch = listener->WatchEvents();
  ASSERT_TRUE(watch.ok()) << watch.error().message;
  ASSERT_NE(*watch, nullptr);
  EventWatch& w = **watch;
  auto quiet = w.Wait(std::chrono::milliseconds(50));
  ASSERT_TRUE(quiet.ok());
  EXPECT_TRUE(quiet->empty());

  ASSERT_TRUE(writer->AppendEvents({Event("e-1", "c-7")}).ok());
  EXPECT_EQ(HearAll(w, {PartitionOf("c-7")}), std::set<int>{PartitionOf("c-7")});

  NewEvent change{"", "c-8", At(0), {{"type", "$profile"}}};
  ASSERT_TRUE(writer->UpsertProfileRecorded("c-8", {{"email", "x@example.com"}}, change).ok());
  EXPECT_EQ(HearAll(w, {PartitionOf("c-8")}), std::set<int>{PartitionOf("c-8")});

  // Nothing new, nothing announced: a seen id, a profile patch that changes nothing.
  ASSERT_EQ(*writer->AppendEvents({Event("e-1", "c-7")}), 0);
  ASSERT_TRUE(writer->UpsertProfileRecorded("c-8", {{"email", "x@example.com"}}, change).ok());
  quiet = w.Wait(std::chrono::milliseconds(300));
  ASSERT_TRUE(quiet.ok());
  EXPECT_TRUE(quiet->empty());

  std::set<int> want;
  std::vector<NewEvent> several;
  for (int i = 0; i < 10; ++i) {
    several.push_back(Event("", "c-" + std::to_string(i)));
    want.insert(PartitionOf("c-" + std::to_string(i)));
  }
  ASSERT_TRUE(writer->AppendEvents(several).ok());
  EXPECT_EQ(HearAll(w, want), want);
}

}  // namespace
}  // namespace itinera::orch::store_testing
