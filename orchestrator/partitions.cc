#include "orchestrator/partitions.h"

#include <algorithm>

namespace itinera::orch {

int PartitionOf(std::string_view customer) {
  uint32_t hash = 2166136261u;  // FNV-1a, 32 bits
  for (unsigned char c : customer) {
    hash ^= c;
    hash *= 16777619u;
  }
  return static_cast<int>(hash % kPartitionCount);
}

PartitionSet PartitionSet::Of(std::vector<int> partitions) {
  PartitionSet set;
  set.all_ = false;
  std::sort(partitions.begin(), partitions.end());
  partitions.erase(std::unique(partitions.begin(), partitions.end()), partitions.end());
  set.list_ = std::move(partitions);
  return set;
}

bool PartitionSet::Contains(int partition) const {
  return all_ || std::binary_search(list_.begin(), list_.end(), partition);
}

PartitionSet Ownership::Partitions() const {
  if (all) return PartitionSet();
  std::vector<int> list;
  for (const auto& [partition, epoch] : epochs) list.push_back(partition);
  return PartitionSet::Of(std::move(list));
}

std::vector<LeaseRow> PlanLeases(const std::vector<LeaseRow>& rows,
                                 const std::vector<std::string>& live_nodes,
                                 const std::string& node) {
  std::vector<std::string> live = live_nodes;
  if (std::find(live.begin(), live.end(), node) == live.end()) live.push_back(node);
  std::sort(live.begin(), live.end());
  const int n = static_cast<int>(live.size());
  const int index = static_cast<int>(std::find(live.begin(), live.end(), node) - live.begin());
  const int share = kPartitionCount / n + (index < kPartitionCount % n ? 1 : 0);

  std::vector<const LeaseRow*> held;
  std::vector<const LeaseRow*> free;
  for (const LeaseRow& row : rows) {
    if (row.owner == node) {
      held.push_back(&row);
    } else if (row.owner.empty() || row.expired) {
      free.push_back(&row);
    }
  }
  std::vector<LeaseRow> changes;
  int count = static_cast<int>(held.size());
  // Beyond the share: give back the highest partitions, so a joining node finds them free.
  for (auto it = held.rbegin(); it != held.rend() && count > share; ++it, --count) {
    LeaseRow released = **it;
    released.owner.clear();
    changes.push_back(released);
  }
  for (auto it = free.begin(); it != free.end() && count < share; ++it, ++count) {
    LeaseRow taken = **it;
    taken.owner = node;
    taken.epoch += 1;
    taken.expired = false;
    changes.push_back(taken);
  }
  return changes;
}

}  // namespace itinera::orch
