// PgStore when the server goes away: a restart under an open store, a crash (immediate
// shutdown) under a writer, and a writer killed mid-commit. Each test runs its own server, since
// it stops or crashes it.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "orchestrator/pg_store.h"
#include "tests/orchestrator/store_conformance.h"
#include "tests/pg/pg_server.h"

namespace itinera::orch::store_testing {
namespace {

using itinera::testing::PgServer;
using Clock = std::chrono::steady_clock;

std::unique_ptr<PgStore> OpenPg(const std::string& url, int pool) {
  auto store = PgStore::Open(url, pool);
  EXPECT_TRUE(store.ok()) << (store.ok() ? "" : store.error().message);
  return store.ok() ? std::move(*store) : nullptr;
}

TEST(PgRecoveryTest, AnOpenStoreRidesOutAServerRestart) {
  PgServer server;
  ASSERT_TRUE(server.Start());
  ASSERT_TRUE(server.CreateDatabase("app"));
  const std::string url = server.Url("app");
  auto store = OpenPg(url, 3);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->UpsertProfile("c-1", {{"email", "ann@example.com"}}).ok());
  {  // several connections in the pool, all of which the restart breaks
    std::vector<std::thread> readers;
    for (int t = 0; t < 3; ++t) {
      readers.emplace_back([&] {
        for (int i = 0; i < 5; ++i) EXPECT_TRUE(store->GetProfile("c-1").ok());
      });
    }
    for (auto& t : readers) t.join();
  }
  auto watch = store->WatchEvents();
  ASSERT_TRUE(watch.ok()) << watch.error().message;

  server.Stop();
  for (int i = 0; i < 5; ++i) {
    const auto start = Clock::now();
    auto profile = store->GetProfile("c-1");
    ASSERT_FALSE(profile.ok());
    EXPECT_EQ(profile.error().code, "storage") << profile.error().message;
    Batch b;
    b.counters.push_back({"welcome", "entered", 1});
    Status commit = store->Commit(b);
    ASSERT_FALSE(commit.ok());
    EXPECT_EQ(commit.error().code, "storage");
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(2)) << "calls must fail fast";
  }
  auto heard = (*watch)->Wait(std::chrono::seconds(2));
  ASSERT_FALSE(heard.ok());
  EXPECT_EQ(heard.error().code, "storage");
  EXPECT_EQ(PgStore::Open(url, 1).error().code, "storage");

  ASSERT_TRUE(server.Restart());
  const auto restarted = Clock::now();
  Result<std::optional<json>> profile = Error{"storage", "not tried"};
  while (Clock::now() - restarted < std::chrono::seconds(15)) {
    profile = store->GetProfile("c-1");
    if (profile.ok()) break;
    EXPECT_EQ(profile.error().code, "storage");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(profile.ok()) << profile.error().message;
  EXPECT_LT(Clock::now() - restarted, std::chrono::seconds(7));  // the backoff tops at 5 s
  EXPECT_EQ((**profile)["email"], "ann@example.com");
  Batch b;
  b.counters.push_back({"welcome", "entered", 1});
  EXPECT_TRUE(store->Commit(b).ok());
  EXPECT_EQ(store->JourneyCounters("welcome").value()["entered"], 1);
  // A broken watch stays broken; a new one hears again.
  EXPECT_FALSE((*watch)->Wait(std::chrono::milliseconds(10)).ok());
  auto fresh = store->WatchEvents();
  ASSERT_TRUE(fresh.ok()) << fresh.error().message;
  ASSERT_TRUE(store->AppendEvents({Event("e-1", "c-1")}).ok());
  auto got = (*fresh)->Wait(std::chrono::seconds(5));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, std::vector<int>{PartitionOf("c-1")});
}

// ---- crash consistency ----

constexpr int kMessagesPerBatch = 5;

Batch NumberedBatch(int64_t k) {
  Batch b;
  for (int i = 0; i < kMessagesPerBatch; ++i) {
    b.outbox.push_back(Message("b" + std::to_string(k) + "-" + std::to_string(i), At(k)));
    b.timeline.push_back({0, "c-1", At(k), "sent", {{"batch", k}}});
  }
  b.counters.push_back({"crash", "batches", 1});
  b.states.push_back({"c-1", "crash", SampleState("c-1", std::to_string(k)), k - 1});
  return b;
}

// The child: commits numbered batches forever, writing each acknowledged number to `ack_fd`.
// After a failed commit (the server went away) it waits, then resumes from the stored version:
// a commit whose outcome it never learnt may or may not have landed.
[[noreturn]] void CommitForever(const std::string& url, int ack_fd) {
  auto opened = PgStore::Open(url, 1);
  if (!opened.ok()) _exit(2);
  PgStore& store = **opened;
  std::optional<int64_t> next;
  while (true) {
    if (!next) {
      auto state = store.GetState("c-1", "crash");
      if (!state.ok()) {
        usleep(20'000);
        continue;
      }
      next = state->has_value() ? (*state)->version + 1 : 1;
    }
    if (store.Commit(NumberedBatch(*next)).ok()) {
      int64_t k = *next;
      if (write(ack_fd, &k, sizeof k) != sizeof k) _exit(4);
      ++*next;
    } else {
      next.reset();
      usleep(20'000);
    }
  }
}

// The parent's end of the child's acknowledgements.
class Acks {
 public:
  explicit Acks(int fd) : fd_(fd) {}
  ~Acks() { close(fd_); }

  // Reads until `count` acknowledgements arrived in all, the child closed the pipe or `timeout`
  // passed; returns whether `count` was reached.
  bool WaitFor(size_t count, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (acked_.size() < count && !closed_) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) > 0) ReadSome();
    }
    return acked_.size() >= count;
  }
  void Drain() {
    while (!closed_) WaitFor(SIZE_MAX, std::chrono::seconds(10));
  }
  const std::set<int64_t>& acked() const { return acked_; }

 private:
  void ReadSome() {
    char buffer[4096];
    ssize_t n = read(fd_, buffer, sizeof buffer);
    if (n <= 0) {
      closed_ = n == 0 || errno != EINTR;
      return;
    }
    pending_.append(buffer, static_cast<size_t>(n));
    while (pending_.size() >= sizeof(int64_t)) {
      int64_t k;
      std::memcpy(&k, pending_.data(), sizeof k);
      acked_.insert(k);
      pending_.erase(0, sizeof k);
    }
  }

  int fd_;
  bool closed_ = false;
  std::string pending_;
  std::set<int64_t> acked_;
};

pid_t StartWriter(const std::string& url, int* ack_fd) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  pid_t child = fork();
  if (child == 0) {
    close(fds[0]);
    CommitForever(url, fds[1]);
  }
  close(fds[1]);
  *ack_fd = fds[0];
  return child;
}

void KillWriter(pid_t child) {
  ASSERT_EQ(kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the writer exited with " << WEXITSTATUS(status);
}

// Only whole batches 1..n are stored, and every batch the writer saw acknowledged is among them.
void ExpectWholeBatches(const std::string& url, const std::set<int64_t>& acked) {
  auto store = OpenPg(url, 1);
  ASSERT_NE(store, nullptr);
  int64_t batches = store->JourneyCounters("crash").value()["batches"];
  ASSERT_GE(batches, 1);
  ASSERT_FALSE(acked.empty());
  EXPECT_LE(*acked.rbegin(), batches) << "an acknowledged batch was lost";
  auto state = *store->GetState("c-1", "crash");
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ(state->version, batches);
  EXPECT_EQ(ToJson(state->state), ToJson(SampleState("c-1", std::to_string(batches))));
  auto timeline = *store->Timeline("c-1", 1'000'000);
  EXPECT_EQ(static_cast<int64_t>(timeline.size()), batches * kMessagesPerBatch);
  std::map<int64_t, int> per_batch;
  for (const auto& e : timeline) ++per_batch[e.data["batch"].get<int64_t>()];
  EXPECT_EQ(static_cast<int64_t>(per_batch.size()), batches);
  for (const auto& [k, n] : per_batch) EXPECT_EQ(n, kMessagesPerBatch) << "batch " << k;
  auto counts = *store->MessageCounts("");
  EXPECT_EQ(counts["email.pending"], batches * kMessagesPerBatch);
  for (int64_t k : acked) {
    ASSERT_TRUE(store->GetMessage("b" + std::to_string(k) + "-0")->has_value()) << k;
  }
  EXPECT_FALSE(store->GetMessage("b" + std::to_string(batches + 1) + "-0")->has_value());
}

TEST(PgRecoveryTest, ACrashOrAKilledWriterLeavesOnlyWholeBatches) {
  PgServer server;
  ASSERT_TRUE(server.Start());
  ASSERT_TRUE(server.CreateDatabase("crash"));
  const std::string url = server.Url("crash");
  ASSERT_NE(OpenPg(url, 1), nullptr);  // migrated before the writer starts
  std::mt19937 rng(std::random_device{}());
  std::set<int64_t> acked;

  // Round 1: the server crashes under the writer, comes back, and the writer carries on by
  // itself; then the writer is killed mid-commit.
  {
    int fd = -1;
    pid_t child = StartWriter(url, &fd);
    ASSERT_GT(child, 0);
    Acks acks(fd);
    ASSERT_TRUE(acks.WaitFor(30, std::chrono::seconds(30))) << "the writer did not commit";
    server.Crash();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    acks.WaitFor(SIZE_MAX, std::chrono::milliseconds(100));  // what was acknowledged in time
    const size_t before_restart = acks.acked().size();
    ASSERT_TRUE(server.Restart());
    EXPECT_TRUE(acks.WaitFor(before_restart + 30, std::chrono::seconds(30)))
        << "the writer did not recover after the restart";
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(1, 100)(rng)));
    KillWriter(child);
    acks.Drain();
    acked.insert(acks.acked().begin(), acks.acked().end());
  }
  ExpectWholeBatches(url, acked);

  // Rounds 2..4: only the writer dies, at a random moment.
  for (int round = 0; round < 3; ++round) {
    int fd = -1;
    pid_t child = StartWriter(url, &fd);
    ASSERT_GT(child, 0);
    Acks acks(fd);
    ASSERT_TRUE(acks.WaitFor(1, std::chrono::seconds(30))) << "the writer did not commit";
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(1, 150)(rng)));
    KillWriter(child);
    acks.Drain();
    acked.insert(acks.acked().begin(), acks.acked().end());
    ExpectWholeBatches(url, acked);
  }
}

}  // namespace
}  // namespace itinera::orch::store_testing
