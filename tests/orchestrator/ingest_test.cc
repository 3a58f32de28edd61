#include "orchestrator/ingest.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "orchestrator/memory_store.h"

namespace itinera::orch {
namespace {

NewEvent Event(const std::string& id, const std::string& customer) {
  NewEvent e;
  e.id = id;
  e.customer = customer;
  e.at = Time{Seconds{1795341600}};
  e.body = {{"customer_id", customer}, {"type", "x"}};
  return e;
}

TEST(EventIngestTest, ConcurrentRequestsShareCommitsAndAllLand) {
  MemoryStore store;
  std::atomic<int> wakes{0};
  EventIngest ingest(store, [&] { ++wakes; });
  constexpr int kThreads = 8, kPerThread = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string id = std::to_string(t) + "-" + std::to_string(i);
        ASSERT_TRUE(ingest.Append({Event(id, "c-" + std::to_string(t))}).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ingest.events(), kThreads * kPerThread);
  EXPECT_LE(ingest.commits(), kThreads * kPerThread);
  EXPECT_GT(wakes.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(store.PendingEvents("c-" + std::to_string(t), 1000)->size(), size_t{kPerThread});
  }
}

TEST(EventIngestTest, ABadRequestDoesNotFailItsNeighbours) {
  MemoryStore store;
  EventIngest ingest(store, nullptr);
  // An event without a customer is refused by the store; alone, it fails only its request.
  EXPECT_FALSE(ingest.Append({Event("bad", "")}).ok());
  EXPECT_TRUE(ingest.Append({Event("good", "c-1")}).ok());
  EXPECT_EQ(store.PendingEvents("c-1", 10)->size(), 1u);
}

TEST(EventIngestTest, ARepeatedIdIsAcceptedWithoutEffect) {
  MemoryStore store;
  EventIngest ingest(store, nullptr);
  EXPECT_TRUE(ingest.Append({Event("e-1", "c-1"), Event("e-1", "c-1")}).ok());
  EXPECT_TRUE(ingest.Append({Event("e-1", "c-1")}).ok());
  EXPECT_EQ(store.PendingEvents("c-1", 10)->size(), 1u);
}

}  // namespace
}  // namespace itinera::orch
