#include "orchestrator/cluster.h"

#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "orchestrator/memory_store.h"
#include "tests/orchestrator/eventually.h"
#include "tests/orchestrator/forwarding_store.h"

namespace itinera::orch {
namespace {

using namespace std::chrono_literals;
using testing::Eventually;

// Announces the partitions the test queues, one list per Wait.
class ScriptedWatch final : public EventWatch {
 public:
  explicit ScriptedWatch(std::shared_ptr<std::deque<std::vector<int>>> script)
      : script_(std::move(script)) {}
  Result<std::vector<int>> Wait(std::chrono::milliseconds timeout) override {
    std::this_thread::sleep_for(std::min(timeout, std::chrono::milliseconds(20)));
    std::lock_guard lock(mu);
    if (script_->empty()) return std::vector<int>{};
    auto next = script_->front();
    script_->pop_front();
    return next;
  }
  static inline std::mutex mu;

 private:
  std::shared_ptr<std::deque<std::vector<int>>> script_;
};

// A shared store whose leases the test sets, and whose renewals it can make fail.
class FakeSharedStore final : public testing::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  bool Shared() const override { return true; }
  Result<Ownership> RenewLeases(const std::string& node, Seconds) override {
    std::lock_guard lock(mu_);
    ++renewals;
    if (down) return Error{"storage", "connection refused"};
    Ownership o;
    o.node = node;
    o.all = false;
    o.epochs = epochs;
    return o;
  }
  Status ReleaseLeases(const std::string& node) override {
    std::lock_guard lock(mu_);
    released = node;
    return Status::Ok();
  }
  Result<std::unique_ptr<EventWatch>> WatchEvents() override {
    return std::unique_ptr<EventWatch>(std::make_unique<ScriptedWatch>(script));
  }
  void Set(std::map<int, int64_t> e) {
    std::lock_guard lock(mu_);
    epochs = std::move(e);
  }
  void SetDown(bool d) {
    std::lock_guard lock(mu_);
    down = d;
  }
  void Announce(std::vector<int> partitions) {
    std::lock_guard lock(ScriptedWatch::mu);
    script->push_back(std::move(partitions));
  }

  std::string Released() {
    std::lock_guard lock(mu_);
    return released;
  }

  std::shared_ptr<std::deque<std::vector<int>>> script =
      std::make_shared<std::deque<std::vector<int>>>();

 private:
  std::mutex mu_;
  std::map<int, int64_t> epochs;
  bool down = false;
  std::string released;
  int renewals = 0;
};

TEST(ClusterMemberTest, HoldsWhatItRenewsAndWakesTheProcessorForNewPartitions) {
  MemoryStore memory;
  FakeSharedStore store(memory);
  store.Set({{3, 1}});
  std::atomic<int> woken{0};
  ClusterMember member(store, "node-a", Seconds{2}, [&] { ++woken; });
  member.Start();
  EXPECT_EQ(member.Current().epochs, (std::map<int, int64_t>{{3, 1}}));  // before Start returns
  EXPECT_FALSE(member.Current().all);

  const int before = woken;
  store.Set({{3, 1}, {9, 4}});
  ASSERT_TRUE(Eventually([&] { return member.Current().epochs.count(9) == 1; }));
  EXPECT_TRUE(Eventually([&] { return woken > before; }));
  member.Stop();
  EXPECT_EQ(store.Released(), "node-a");
  EXPECT_TRUE(member.Current().epochs.empty());
}

TEST(ClusterMemberTest, AnnouncementsInHeldPartitionsWakeTheProcessorOthersDoNot) {
  MemoryStore memory;
  FakeSharedStore store(memory);
  store.Set({{3, 1}});
  std::atomic<int> woken{0};
  ClusterMember member(store, "node-a", Seconds{30}, [&] { ++woken; });
  member.Start();
  ASSERT_TRUE(Eventually([&] { return woken >= 1; }));  // the first renewal, the first watch
  std::this_thread::sleep_for(100ms);
  const int settled = woken;
  store.Announce({5, 7});  // someone else's
  ASSERT_TRUE(Eventually([&] { return member.announcements() == 1; }));
  EXPECT_EQ(woken, settled);
  store.Announce({7, 3});
  ASSERT_TRUE(Eventually([&] { return member.announcements() == 2; }));
  EXPECT_TRUE(Eventually([&] { return woken == settled + 1; }));
  member.Stop();
}

TEST(ClusterMemberTest, WhenRenewalsFailThePartitionsAreDroppedOnceTheLeaseRunsOut) {
  MemoryStore memory;
  FakeSharedStore store(memory);
  store.Set({{3, 1}});
  ClusterMember member(store, "node-a", Seconds{2}, nullptr);
  member.Start();
  ASSERT_EQ(member.Current().epochs.size(), 1u);
  store.SetDown(true);
  auto down_at = std::chrono::steady_clock::now();
  // Still held for a while (the lease has not run out), then nothing at all.
  EXPECT_EQ(member.Current().epochs.size(), 1u);
  ASSERT_TRUE(Eventually([&] { return member.Current().epochs.empty(); }, 4s));
  EXPECT_LE(std::chrono::steady_clock::now() - down_at, 2100ms);
  EXPECT_GT(member.renew_failures(), 0);
  store.SetDown(false);  // back: held again at the next renewal
  EXPECT_TRUE(Eventually([&] { return member.Current().epochs.size() == 1u; }, 4s));
  member.Stop();
}

TEST(ClusterMemberTest, NodeIdsNameTheHostOrTheConfiguredNameThePidAndARandomPart) {
  const std::string pid = "-" + std::to_string(::getpid()) + "-";
  std::string named = ClusterMember::NodeId("web");
  ASSERT_EQ(named.size(), std::string("web").size() + pid.size() + 4) << named;
  EXPECT_EQ(named.substr(0, 3 + pid.size()), "web" + pid);
  std::string host = ClusterMember::NodeId("");
  EXPECT_NE(host.find(pid), std::string::npos) << host;
  EXPECT_NE(host.substr(0, 1), "-");
  // Two replicas with the same name and pid still differ (1 in 65,536 would not: try a few).
  std::set<std::string> ids;
  for (int i = 0; i < 8; ++i) ids.insert(ClusterMember::NodeId("web"));
  EXPECT_GT(ids.size(), 1u);
}

}  // namespace
}  // namespace itinera::orch
