#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <random>
#include <thread>

#include "orchestrator/memory_store.h"
#include "orchestrator/sqlite_schema.h"
#include "orchestrator/sqlite_store.h"
#include "tests/orchestrator/eventually.h"
#include "tests/orchestrator/store_conformance.h"

namespace itinera::orch::store_testing {
namespace {

namespace fs = std::filesystem;

struct MemoryFactory {
  static std::unique_ptr<Store> Make() { return std::make_unique<MemoryStore>(); }
};

struct SqliteFactory {
  static std::unique_ptr<Store> Make() {
    auto store = SqliteStore::Open(":memory:");
    EXPECT_TRUE(store.ok()) << (store.ok() ? "" : store.error().message);
    return store.ok() ? std::move(*store) : nullptr;
  }
};

// A database file: reads then go through the store's reading connection.
struct SqliteFileFactory {
  static std::unique_ptr<Store> Make() {
    // One folder per process, removed at exit, with a database per test.
    static struct Base {
      fs::path path =
          fs::path(::testing::TempDir()) / ("itinera_conformance_" + std::to_string(getpid()));
      ~Base() { fs::remove_all(path); }
    } base;
    static int n = 0;
    auto store = SqliteStore::Open((base.path / std::to_string(++n) / "itinera.db").string());
    EXPECT_TRUE(store.ok()) << (store.ok() ? "" : store.error().message);
    return store.ok() ? std::move(*store) : nullptr;
  }
};

using StoreTypes = ::testing::Types<MemoryFactory, SqliteFactory, SqliteFileFactory>;
INSTANTIATE_TYPED_TEST_SUITE_P(All, StoreConformanceTest, StoreTypes);

// A fresh folder under the test temp dir, removed afterwards.
class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) /
           ("itinera_store_" + std::string(info->name()) + "_" + std::to_string(getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<SqliteStore> Open() {
    auto store = SqliteStore::Open((dir_ / "var" / "itinera.db").string());
    EXPECT_TRUE(store.ok()) << (store.ok() ? "" : store.error().message);
    return store.ok() ? std::move(*store) : nullptr;
  }

  fs::path dir_;
};

TEST_F(SqliteStoreTest, DataSurvivesCloseAndReopen) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->UpsertProfile("c-1", {{"email", "ann@example.com"}}).ok());
    ASSERT_TRUE(store->AppendEvents({Event("e-1", "c-1")}).ok());
    Batch b;
    b.states.push_back({"c-1", "welcome", SampleState("c-1", "x"), 0});
    b.timers.push_back({"c-1", "welcome", At(10)});
    b.outbox.push_back(Message("m-1", At(0)));
    b.timeline.push_back({0, "c-1", At(0), "sent", json::object()});
    ASSERT_TRUE(store->Commit(b).ok());
    ASSERT_TRUE(
        store->SaveJourneyVersion({"welcome", 1, "aaaa", "welcome.itin", "...", At(0)}).ok());
    EXPECT_TRUE(fs::exists(dir_ / "var" / "itinera.db-wal"));  // journal_mode=WAL
  }
  EXPECT_TRUE(fs::exists(dir_ / "var" / "itinera.db"));
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ((**store->GetProfile("c-1"))["email"], "ann@example.com");
  EXPECT_EQ(*store->AppendEvents({Event("e-1", "c-1")}), 0);
  EXPECT_EQ((*store->GetState("c-1", "welcome"))->version, 1);
  EXPECT_EQ(store->DueCustomers(At(10), 10, PartitionSet())->size(), 1u);
  EXPECT_TRUE(store->GetMessage("m-1")->has_value());
  EXPECT_EQ(store->Timeline("c-1", 10)->size(), 1u);
  ASSERT_EQ(store->ListJourneyVersions()->size(), 1u);
  EXPECT_EQ(store->SaveJourneyVersion({"welcome", 1, "bbbb", "", "", At(0)}).error().code,
            "conflict");
}

TEST_F(SqliteStoreTest, ReadsDoNotWaitForAWriter) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->UpsertProfile("c-1", {{"email", "ann@example.com"}}).ok());
  Batch sent;
  sent.outbox.push_back(Message("m-1", At(0)));
  ASSERT_TRUE(store->Commit(sent).ok());
  // Another process holds the write lock, so the store's next write waits inside its
  // transaction (busy timeout) — holding the writing connection the whole time.
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "var" / "itinera.db").c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  std::thread writer([&] { EXPECT_TRUE(store->AppendEvents({Event("e-1", "c-1")}).ok()); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  // Reads go through the reading connection: answered now, from the last commit.
  auto started = std::chrono::steady_clock::now();
  auto profile = store->GetProfile("c-1");
  auto states = store->ListStates("c-1");
  auto inbox = store->InboxCustomers(10, PartitionSet());
  auto message = store->GetMessage("m-1");  // a tracking link's look-up
  auto waited = std::chrono::steady_clock::now() - started;
  ASSERT_TRUE(message.ok() && message->has_value());
  ASSERT_TRUE(profile.ok() && profile->has_value());
  EXPECT_EQ((**profile)["email"], "ann@example.com");
  ASSERT_TRUE(states.ok() && inbox.ok());
  EXPECT_TRUE(inbox->empty());  // the event is not committed yet
  EXPECT_LT(waited, std::chrono::seconds(2));
  ASSERT_EQ(sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);
  writer.join();
  auto after = store->InboxCustomers(10, PartitionSet());
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(*after, std::vector<std::string>{"c-1"});  // and the next read sees the commit
}

// Writes queued for the store's writer while another process holds SQLite's write lock: the
// first waits for it at BEGIN (busy timeout), the others queue behind it. Each write runs on a
// thread of its own; Finish releases the lock and waits for them all.
class QueuedWrites {
 public:
  QueuedWrites(SqliteStore& store, const fs::path& db) : store_(store) {
    EXPECT_EQ(sqlite3_open(db.c_str(), &other_), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(other_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  }
  ~QueuedWrites() { Finish(); }

  // Starts `write` and returns once it is in the queue, so writes queue in the order added.
  bool Add(std::function<void()> write) {
    const int64_t queued = store_.write_stats().queued;
    threads_.emplace_back(std::move(write));
    return testing::Eventually([&] { return store_.write_stats().queued == queued + 1; });
  }

  void Finish() {
    if (other_ != nullptr) {
      EXPECT_EQ(sqlite3_exec(other_, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
      sqlite3_close(other_);
      other_ = nullptr;
    }
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }

 private:
  SqliteStore& store_;
  sqlite3* other_ = nullptr;
  std::vector<std::thread> threads_;
};

TEST_F(SqliteStoreTest, WritesQueuedBehindTheWriterCommitInOneTransaction) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->UpsertProfile("c-1", {{"email", "ann@example.com"}}).ok());
  const SqliteStore::WriteStats before = store->write_stats();
  QueuedWrites queued(*store, dir_ / "var" / "itinera.db");
  ASSERT_TRUE(queued.Add([&] { EXPECT_TRUE(store->AppendEvents({Event("e-1", "c-1")}).ok()); }));
  ASSERT_TRUE(queued.Add([&] { EXPECT_TRUE(store->AppendEvents({Event("e-2", "c-2")}).ok()); }));
  ASSERT_TRUE(queued.Add([&] {
    EXPECT_TRUE(store->UpsertProfile("c-3", {{"plan", "pro"}}).ok());
  }));
  ASSERT_TRUE(queued.Add([&] {
    Batch b;
    b.outbox.push_back(Message("m-1", At(0)));
    EXPECT_TRUE(store->Commit(b).ok());
  }));
  queued.Finish();

  const SqliteStore::WriteStats after = store->write_stats();
  EXPECT_EQ(after.writes - before.writes, 4);
  EXPECT_EQ(after.transactions - before.transactions, 1);  // one commit, one fsync
  EXPECT_EQ(after.queued, 0);
  EXPECT_EQ(*store->InboxCustomers(10, PartitionSet()), (std::vector<std::string>{"c-1", "c-2"}));
  EXPECT_EQ((**store->GetProfile("c-3"))["plan"], "pro");
  EXPECT_TRUE(store->GetMessage("m-1")->has_value());
}

TEST_F(SqliteStoreTest, AFailedWriteIsUndoneAloneAndTheOthersOfItsTransactionCommit) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Batch first;
  first.states.push_back({"c-1", "welcome", SampleState("c-1", "x"), 0});
  ASSERT_TRUE(store->Commit(first).ok());
  const SqliteStore::WriteStats before = store->write_stats();
  Status conflict = Status::Ok();
  QueuedWrites queued(*store, dir_ / "var" / "itinera.db");
  ASSERT_TRUE(queued.Add([&] { EXPECT_TRUE(store->AppendEvents({Event("e-1", "c-1")}).ok()); }));
  ASSERT_TRUE(queued.Add([&] {
    // Its profile patch and message are written, then its state conflicts (c-1 is at
    // version 1): the batch is rolled back to its savepoint.
    Batch b;
    b.profiles.push_back({"c-2", {{"plan", "pro"}}});
    b.outbox.push_back(Message("m-1", At(0)));
    b.states.push_back({"c-1", "welcome", SampleState("c-1", "y"), 0});
    conflict = store->Commit(b);
  }));
  ASSERT_TRUE(queued.Add([&] { EXPECT_TRUE(store->AppendEvents({Event("e-2", "c-2")}).ok()); }));
  queued.Finish();

  ASSERT_FALSE(conflict.ok());
  EXPECT_EQ(conflict.error().code, "conflict");
  const SqliteStore::WriteStats after = store->write_stats();
  EXPECT_EQ(after.transactions - before.transactions, 1);
  EXPECT_EQ(*store->InboxCustomers(10, PartitionSet()), (std::vector<std::string>{"c-1", "c-2"}));
  EXPECT_FALSE(store->GetProfile("c-2")->has_value());
  EXPECT_FALSE(store->GetMessage("m-1")->has_value());
  EXPECT_EQ((*store->GetState("c-1", "welcome"))->version, 1);
}

TEST_F(SqliteStoreTest, AWriteThatThrowsFailsAloneAndTheStoreWritesOn) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  NewEvent bad = Event("e-bad", "c-9");
  bad.body["note"] = std::string("\xff\xfe");  // not UTF-8: serialising it throws
  auto alone = store->AppendEvents({bad});
  ASSERT_FALSE(alone.ok());
  EXPECT_EQ(alone.error().code, "internal");
  EXPECT_TRUE(store->AppendEvents({Event("e-0", "c-0")}).ok());  // no transaction left open

  // The same inside a group: the writes around it commit, in one transaction.
  const SqliteStore::WriteStats before = store->write_stats();
  QueuedWrites queued(*store, dir_ / "var" / "itinera.db");
  ASSERT_TRUE(queued.Add([&] { EXPECT_TRUE(store->AppendEvents({Event("e-1", "c-1")}).ok()); }));
  ASSERT_TRUE(queued.Add([&] { EXPECT_FALSE(store->AppendEvents({bad}).ok()); }));
  ASSERT_TRUE(queued.Add([&] { EXPECT_TRUE(store->AppendEvents({Event("e-2", "c-2")}).ok()); }));
  queued.Finish();
  const SqliteStore::WriteStats after = store->write_stats();
  EXPECT_EQ(after.transactions - before.transactions, 1);
  EXPECT_EQ(after.writes - before.writes, 2);
  EXPECT_EQ(*store->InboxCustomers(10, PartitionSet()),
            (std::vector<std::string>{"c-0", "c-1", "c-2"}));
}

// LoadCustomers reads a batch in one read transaction; a read that fails part-way still ends it,
// so the next batch starts a fresh one and sees what was committed since.
TEST_F(SqliteStoreTest, AFailedBatchReadEndsItsTransaction) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Batch b;
  b.states.push_back({"c-1", "welcome", SampleState("c-1", "w"), 0});
  ASSERT_TRUE(store->Commit(b).ok());
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "var" / "itinera.db").c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "UPDATE states SET body = '{' WHERE customer = 'c-1'", nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  const CustomerReads reads{.sends_since = At(0), .states = true};
  auto broken = store->LoadCustomers({"c-1"}, reads);
  ASSERT_FALSE(broken.ok());

  ASSERT_TRUE(store->UpsertProfile("c-2", {{"email", "bob@example.com"}}).ok());
  ASSERT_EQ(
      sqlite3_exec(other, "DELETE FROM states WHERE customer = 'c-1'", nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(other);
  auto loaded = store->LoadCustomers({"c-1", "c-2"}, reads);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_TRUE(loaded->at("c-1").states.empty());
  ASSERT_TRUE(loaded->at("c-2").profile.has_value());
  EXPECT_EQ((*loaded->at("c-2").profile)["email"], "bob@example.com");
}

// Creates the database at `path` as a build that knew only the first `migrations` migrations
// left it, with `rows` (SQL) inserted. Returns SQLite's error, or "".
std::string SeedDatabase(const std::string& path, int migrations, const std::string& rows) {
  std::string seed = "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY);";
  for (int v = 1; v <= migrations; ++v) {
    seed += kSqliteMigrations[static_cast<size_t>(v - 1)];
    seed += "INSERT INTO schema_migrations (version) VALUES (" + std::to_string(v) + ");";
  }
  seed += rows;
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
    sqlite3_close(db);
    return "cannot open " + path;
  }
  char* error = nullptr;
  sqlite3_exec(db, seed.c_str(), nullptr, nullptr, &error);
  std::string message = error ? error : "";
  sqlite3_free(error);
  sqlite3_close(db);
  return message;
}

// An email's HTML is stored as it is in a table of its own, not escaped inside the payload's
// JSON nor in the outbox row that claims and outcomes rewrite; a message written before
// (HTML inside the payload) still reads whole.
TEST_F(SqliteStoreTest, AnEmailsHtmlIsStoredOutsideThePayloadJson) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  const std::string html = "<p>Hello \"Ann\",\nyour offer</p>";
  OutboxMessage m = Message("m-1", At(0));
  m.payload["html"] = html;
  Batch b;
  b.outbox.push_back(m);
  ASSERT_TRUE(store->Commit(b).ok());
  // Written again (a batch retried after a crash): the first write stands, HTML included.
  m.payload["html"] = "<p>changed</p>";
  ASSERT_TRUE(store->Commit(b).ok());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "var" / "itinera.db").c_str(), &db), SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db,
                               "SELECT o.payload, o.html, h.html FROM outbox o JOIN outbox_html h "
                               "ON h.ref = o.html_ref WHERE o.id = 'm-1'",
                               -1, &q, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
  EXPECT_EQ(json::parse(reinterpret_cast<const char*>(sqlite3_column_text(q, 0))),
            (json{{"subject", "Hello m-1"}}));
  EXPECT_EQ(sqlite3_column_type(q, 1), SQLITE_NULL);
  EXPECT_EQ(reinterpret_cast<const char*>(sqlite3_column_text(q, 2)), html);
  EXPECT_EQ(sqlite3_step(q), SQLITE_DONE);
  sqlite3_finalize(q);
  // The second write left no HTML behind.
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(*) FROM outbox_html", -1, &q, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(q, 0), 1);
  sqlite3_finalize(q);
  const json old_payload = {{"subject", "older"}, {"html", "<p>older</p>"}};
  const std::string insert =
      "INSERT INTO outbox (id, customer, journey, channel, recipient, payload, status, "
      "created_at, not_before, attempts, last_error) VALUES ('m-0', 'c-1', 'welcome', 'email', "
      "'ann@example.com', '" +
      old_payload.dump() + "', 'pending', 0, 0, 0, '')";
  ASSERT_EQ(sqlite3_exec(db, insert.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  EXPECT_EQ(store->GetMessage("m-1")->value().payload,
            (json{{"subject", "Hello m-1"}, {"html", html}}));
  EXPECT_EQ(store->GetMessage("m-0")->value().payload, old_payload);
}

// A database at migration 4 kept the HTML in outbox.html; migration 5 moves it to outbox_html.
TEST_F(SqliteStoreTest, MigrationFiveMovesTheHtmlOutOfTheOutboxRow) {
  ASSERT_GE(SqliteStore::LatestSchemaVersion(), 5);
  fs::create_directories(dir_ / "var");
  const std::string path = (dir_ / "var" / "itinera.db").string();
  {
    ASSERT_EQ(SeedDatabase(path, 4,
                           "INSERT INTO outbox (id, customer, journey, channel, recipient, "
                           "payload, status, created_at, not_before, attempts, last_error, "
                           "sent_at, html) VALUES "
                           "('m-1', 'c-1', 'welcome', 'email', 'ann@example.com', "
                           "'{\"subject\":\"Hi\"}', 'pending', 0, 0, 0, '', NULL, "
                           "'<p>Hi Ann</p>'), "
                           "('m-2', 'c-1', 'welcome', 'sms', '+420600000001', "
                           "'{\"text\":\"Hi\"}', 'sent', 0, 0, 1, '', 5, NULL);"),
              "");
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(*store->SchemaVersion(), SqliteStore::LatestSchemaVersion());
  EXPECT_EQ(store->GetMessage("m-1")->value().payload,
            (json{{"subject", "Hi"}, {"html", "<p>Hi Ann</p>"}}));
  EXPECT_EQ(store->GetMessage("m-2")->value().payload, (json{{"text", "Hi"}}));
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  ASSERT_EQ(
      sqlite3_prepare_v2(
          db,
          "SELECT (SELECT count(*) FROM outbox WHERE html IS NOT NULL), "
          "(SELECT group_concat(o.id) FROM outbox o JOIN outbox_html h ON h.ref = o.html_ref)",
          -1, &q, nullptr),
      SQLITE_OK);
  ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(q, 0), 0);
  EXPECT_EQ(reinterpret_cast<const char*>(sqlite3_column_text(q, 1)), std::string("m-1"));
  sqlite3_finalize(q);
  sqlite3_close(db);
  EXPECT_EQ(*store->IntegrityCheck(), "ok");
}

TEST_F(SqliteStoreTest, TiesAreClaimedInTheOrderWritten) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Batch batch;
  for (const char* id : {"m-c", "m-a", "m-b"}) batch.outbox.push_back(Message(id, At(0)));
  batch.outbox.push_back(Message("m-0", At(5)));  // later, though first by id
  ASSERT_TRUE(store->Commit(batch).ok());
  auto claimed = store->ClaimDue(At(10), 3, Seconds{30}, "");
  ASSERT_TRUE(claimed.ok());
  std::vector<std::string> ids;
  for (const OutboxMessage& m : *claimed) ids.push_back(m.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"m-c", "m-a", "m-b"}));
  auto listed = store->ListMessages(MessageStatus::kPending, 10);
  ASSERT_TRUE(listed.ok());
  ids.clear();
  for (const OutboxMessage& m : *listed) ids.push_back(m.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"m-c", "m-a", "m-b", "m-0"}));
}

TEST_F(SqliteStoreTest, SchemaVersionIsRecordedAndNotMigratedTwice) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(*store->SchemaVersion(), SqliteStore::LatestSchemaVersion());
    EXPECT_EQ(*store->MigrationCount(), SqliteStore::LatestSchemaVersion());
    ASSERT_TRUE(store->UpsertProfile("c-1", json::object()).ok());
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(*store->SchemaVersion(), SqliteStore::LatestSchemaVersion());
  EXPECT_EQ(*store->MigrationCount(), SqliteStore::LatestSchemaVersion());
  EXPECT_TRUE(store->GetProfile("c-1")->has_value());
  EXPECT_EQ(*store->IntegrityCheck(), "ok");
}

TEST_F(SqliteStoreTest, AVersionOneDatabaseIsMigratedAndKeepsItsData) {
  ASSERT_GE(SqliteStore::LatestSchemaVersion(), 2);
  fs::create_directories(dir_ / "var");
  const std::string path = (dir_ / "var" / "itinera.db").string();
  {
    // A database as a build that knew only migration 1 left it.
    ASSERT_EQ(SeedDatabase(path, 1,
                           "INSERT INTO profiles (customer, body) VALUES ('c-1', "
                           "'{\"id\":\"c-1\",\"email\":\"ann@example.com\"}');"
                           "INSERT INTO outbox (id, customer, journey, channel, recipient, "
                           "payload, status, created_at, not_before, attempts, last_error, "
                           "sent_at) VALUES "
                           "('m-1', 'c-1', 'welcome', 'email', 'ann@example.com', '{}', "
                           "'pending', 0, 0, 0, '', NULL), ('m-2', 'c-1', 'welcome', 'email', "
                           "'ann@example.com', '{}', 'sent', 0, 0, 1, '', 5);"),
              "");
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(*store->SchemaVersion(), SqliteStore::LatestSchemaVersion());
  EXPECT_EQ(*store->MigrationCount(), SqliteStore::LatestSchemaVersion());
  EXPECT_EQ((**store->GetProfile("c-1"))["email"], "ann@example.com");
  EXPECT_EQ(*store->MessageCounts("welcome"),
            (std::map<std::string, int64_t>{{"email.pending", 1}, {"email.sent", 1}}));
  ASSERT_TRUE(store->SaveJourneyVersion({"welcome", 1, "aaaa", "welcome.itin", "...", At(0)}).ok());
  EXPECT_EQ(store->ListJourneyVersions()->size(), 1u);
  EXPECT_EQ(*store->IntegrityCheck(), "ok");
}

TEST_F(SqliteStoreTest, OpenStoreUnderstandsUrls) {
  auto sqlite = OpenStore("sqlite:" + (dir_ / "a" / "b" / "itinera.db").string());
  ASSERT_TRUE(sqlite.ok()) << sqlite.error().message;
  EXPECT_TRUE(fs::exists(dir_ / "a" / "b" / "itinera.db"));
  EXPECT_TRUE(OpenStore("sqlite::memory:").ok());
  EXPECT_TRUE(OpenStore("memory:").ok());
  auto bad = OpenStore("mysql://localhost/x");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, "invalid_argument");
}

constexpr int kMessagesPerBatch = 5;

// The child: commits numbered batches until killed. Each batch is recognisable as a whole.
[[noreturn]] void CommitForever(const std::string& path, int ready_fd) {
  auto opened = SqliteStore::Open(path);
  if (!opened.ok()) _exit(2);
  SqliteStore& store = **opened;
  int64_t next = store.JourneyCounters("crash").value()["batches"] + 1;
  for (int64_t k = next;; ++k) {
    Batch b;
    for (int i = 0; i < kMessagesPerBatch; ++i) {
      std::string id = "b" + std::to_string(k) + "-" + std::to_string(i);
      b.outbox.push_back(Message(id, At(k)));
      b.timeline.push_back({0, "c-1", At(k), "sent", {{"batch", k}}});
    }
    b.counters.push_back({"crash", "batches", 1});
    b.states.push_back({"c-1", "crash", SampleState("c-1", std::to_string(k)), k - 1});
    if (!store.Commit(b).ok()) _exit(3);
    if (k == next) {
      char c = 'r';
      if (write(ready_fd, &c, 1) != 1) _exit(4);
    }
  }
}

TEST_F(SqliteStoreTest, KilledMidCommitLeavesOnlyWholeBatches) {
  const std::string path = (dir_ / "crash.db").string();
  std::mt19937 rng(std::random_device{}());
  for (int round = 0; round < 3; ++round) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      close(fds[0]);
      CommitForever(path, fds[1]);
    }
    close(fds[1]);
    char c = 0;
    ASSERT_EQ(read(fds[0], &c, 1), 1) << "the child did not commit";
    close(fds[0]);
    usleep(std::uniform_int_distribution<int>(1'000, 150'000)(rng));
    ASSERT_EQ(kill(child, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);

    auto store = SqliteStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.error().message;
    EXPECT_EQ(*(*store)->IntegrityCheck(), "ok");
    int64_t batches = (*store)->JourneyCounters("crash").value()["batches"];
    ASSERT_GE(batches, round + 1);
    auto state = *(*store)->GetState("c-1", "crash");
    ASSERT_TRUE(state.has_value());
    EXPECT_EQ(state->version, batches);
    EXPECT_EQ(ToJson(state->state), ToJson(SampleState("c-1", std::to_string(batches))));
    auto timeline = *(*store)->Timeline("c-1", 1'000'000);
    EXPECT_EQ(static_cast<int64_t>(timeline.size()), batches * kMessagesPerBatch);
    std::map<int64_t, int> per_batch;
    for (const auto& e : timeline) ++per_batch[e.data["batch"].get<int64_t>()];
    EXPECT_EQ(static_cast<int64_t>(per_batch.size()), batches);
    for (const auto& [k, n] : per_batch) EXPECT_EQ(n, kMessagesPerBatch) << "batch " << k;
    for (int64_t k = 1; k <= batches; ++k) {
      for (int i = 0; i < kMessagesPerBatch; ++i) {
        std::string id = "b" + std::to_string(k) + "-" + std::to_string(i);
        ASSERT_TRUE((*store)->GetMessage(id)->has_value()) << id;
      }
    }
    std::string next = "b" + std::to_string(batches + 1) + "-0";
    EXPECT_FALSE((*store)->GetMessage(next)->has_value());
  }
}

}  // namespace
}  // namespace itinera::orch::store_testing
