// Partitions: how several daemons on one shared store split the customers between them.
//
// Every customer id hashes (FNV-1a, stable across builds and machines) into one of
// kPartitionCount partitions. On a shared store (PostgreSQL) each daemon holds leases on a fair
// share of the partitions and advances only the customers in them, so one customer is advanced
// by one process at a time. A lease has an epoch that goes up every time the partition changes
// hands; a daemon's commits carry the epochs it holds (Batch::fence) and the store refuses a
// commit whose lease has moved on, so a daemon that stalled past its lease cannot write over the
// one that took over. Any daemon accepts API calls and tracking hits for any customer: events
// land in the shared inbox and the owner picks them up.
//
// The partition is derived from the customer id alone, so on a distributed PostgreSQL
// (Citus, distributed by customer id) everything a commit touches for one customer lives on one
// shard; docs/operations.md has the reasoning.
#ifndef ITINERA_ORCHESTRATOR_PARTITIONS_H_
#define ITINERA_ORCHESTRATOR_PARTITIONS_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace itinera::orch {

// Fixed for the life of a database: changing it would move customers between partitions.
inline constexpr int kPartitionCount = 64;

// The customer's partition, in [0, kPartitionCount).
int PartitionOf(std::string_view customer);

// A set of partitions; the default set holds all of them (a single daemon, or a store that is
// not shared).
class PartitionSet {
 public:
  PartitionSet() = default;  // every partition
  static PartitionSet Of(std::vector<int> partitions);

  bool all() const { return all_; }
  // The partitions, ascending; empty when all() (or when the set is empty).
  const std::vector<int>& list() const { return list_; }
  bool Contains(int partition) const;
  bool ContainsCustomer(std::string_view customer) const { return Contains(PartitionOf(customer)); }

 private:
  bool all_ = true;
  std::vector<int> list_;
};

// What one daemon holds: each partition with the epoch of its lease.
struct Ownership {
  std::string node;
  bool all = true;  // a store that is not shared: everything, no leases
  std::map<int, int64_t> epochs;

  PartitionSet Partitions() const;
};

// The proof a commit carries that its writer still holds the leases of the customers it
// advances: the writer's node id and, for each partition the batch touches, the lease epoch.
struct Fence {
  std::string node;
  std::map<int, int64_t> epochs;
};

// One row of the lease table as the store read it (under lock).
struct LeaseRow {
  int partition = 0;
  std::string owner;  // empty: free
  int64_t epoch = 0;
  bool expired = false;  // the owner stopped renewing
};

// Rebalancing, shared by the stores that keep leases: given every lease row, the ids of the live
// nodes and this node, returns the rows this node changes. It takes free or expired partitions
// (owner = node, epoch + 1) up to its fair share and releases (owner = "") what it holds beyond
// it. The fair share: live nodes sorted by id, node i of n gets kPartitionCount / n partitions,
// plus one when i < kPartitionCount % n. Pure; the store then renews the expiry of every row the
// node holds.
std::vector<LeaseRow> PlanLeases(const std::vector<LeaseRow>& rows,
                                 const std::vector<std::string>& live_nodes,
                                 const std::string& node);

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_PARTITIONS_H_
