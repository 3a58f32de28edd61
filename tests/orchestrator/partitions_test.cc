#include "orchestrator/partitions.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

namespace itinera::orch {
namespace {

TEST(PartitionsTest, PartitionOfIsStableAcrossBuildsAndMachines) {
  // FNV-1a (32 bits) of the id, modulo 64: stored partitions depend on these never changing.
  EXPECT_EQ(PartitionOf("c-1"), 20);
  EXPECT_EQ(PartitionOf("c-2"), 13);
  EXPECT_EQ(PartitionOf("cust-42"), 59);
  EXPECT_EQ(PartitionOf(""), 5);
}

TEST(PartitionsTest, CustomersSpreadOverEveryPartition) {
  std::map<int, int> counts;
  for (int i = 0; i < 64'000; ++i) ++counts[PartitionOf("cust-" + std::to_string(i))];
  ASSERT_EQ(counts.size(), static_cast<size_t>(kPartitionCount));
  for (const auto& [p, n] : counts) {
    EXPECT_GT(n, 800) << "partition " << p;
    EXPECT_LT(n, 1200) << "partition " << p;
  }
}

TEST(PartitionsTest, PartitionSets) {
  PartitionSet all;
  EXPECT_TRUE(all.all());
  EXPECT_TRUE(all.Contains(0) && all.Contains(63));
  PartitionSet some = PartitionSet::Of({20, 3, 20});
  EXPECT_FALSE(some.all());
  EXPECT_EQ(some.list(), (std::vector<int>{3, 20}));
  EXPECT_TRUE(some.ContainsCustomer("c-1"));
  EXPECT_FALSE(some.ContainsCustomer("c-2"));
  EXPECT_FALSE(PartitionSet::Of({}).Contains(0));

  Ownership mine;
  mine.all = false;
  mine.epochs = {{13, 2}, {20, 1}};
  EXPECT_EQ(mine.Partitions().list(), (std::vector<int>{13, 20}));
  EXPECT_TRUE(Ownership().Partitions().all());
}

std::vector<LeaseRow> FreeRows() {
  std::vector<LeaseRow> rows;
  for (int p = 0; p < kPartitionCount; ++p) rows.push_back({p, "", 0, false});
  return rows;
}

// Applies `changes` to `rows` (what a store does with PlanLeases' answer).
void Apply(std::vector<LeaseRow>& rows, const std::vector<LeaseRow>& changes) {
  for (const LeaseRow& c : changes) rows[c.partition] = c;
}

std::map<std::string, int> Held(const std::vector<LeaseRow>& rows) {
  std::map<std::string, int> held;
  for (const LeaseRow& r : rows) ++held[r.owner];
  return held;
}

TEST(PartitionsTest, ALoneNodeTakesEverythingWithANewEpoch) {
  auto rows = FreeRows();
  auto changes = PlanLeases(rows, {"a"}, "a");
  ASSERT_EQ(changes.size(), static_cast<size_t>(kPartitionCount));
  for (const LeaseRow& c : changes) {
    EXPECT_EQ(c.owner, "a");
    EXPECT_EQ(c.epoch, 1);
  }
  Apply(rows, changes);
  EXPECT_TRUE(PlanLeases(rows, {"a"}, "a").empty());  // steady: nothing to change
}

TEST(PartitionsTest, NodesConvergeOnFairSharesAsTheyJoinAndLeave) {
  auto rows = FreeRows();
  Apply(rows, PlanLeases(rows, {"a"}, "a"));
  // b joins: a gives back what exceeds its share, b takes what is free.
  std::vector<std::string> live = {"a", "b"};
  for (int round = 0; round < 2; ++round) {
    for (const std::string& n : live) Apply(rows, PlanLeases(rows, live, n));
  }
  EXPECT_EQ(Held(rows), (std::map<std::string, int>{{"a", 32}, {"b", 32}}));
  // c joins.
  live = {"a", "b", "c"};
  for (int round = 0; round < 2; ++round) {
    for (const std::string& n : live) Apply(rows, PlanLeases(rows, live, n));
  }
  EXPECT_EQ(Held(rows), (std::map<std::string, int>{{"a", 22}, {"b", 21}, {"c", 21}}));
  // a dies: its rows expire; b and c take them over, each at a higher epoch.
  std::map<int, int64_t> before;
  for (LeaseRow& r : rows) {
    before[r.partition] = r.epoch;
    if (r.owner == "a") r.expired = true;
  }
  live = {"b", "c"};
  for (const std::string& n : live) Apply(rows, PlanLeases(rows, live, n));
  EXPECT_EQ(Held(rows), (std::map<std::string, int>{{"b", 32}, {"c", 32}}));
  for (const LeaseRow& r : rows) {
    if (r.epoch != before[r.partition]) {
      EXPECT_EQ(r.epoch, before[r.partition] + 1);
    }
  }
}

TEST(PartitionsTest, ANodeNeverTakesAPartitionHeldByALiveOwner) {
  auto rows = FreeRows();
  Apply(rows, PlanLeases(rows, {"a"}, "a"));
  // b joins but a has not given anything back yet: b waits instead of stealing.
  EXPECT_TRUE(PlanLeases(rows, {"a", "b"}, "b").empty());
}

}  // namespace
}  // namespace itinera::orch
