// A daemon's membership in a group of daemons sharing one store (PostgreSQL).
//
// Two threads: one renews the partition leases every third of the lease time (Store::
// RenewLeases: join, rebalance, take over from daemons that stopped renewing), the other
// listens for announcements of new events (Store::WatchEvents) and wakes the processor when
// they fall in a partition this daemon holds. The processor asks Current() before every batch.
//
// When renewals fail (the database is unreachable) the daemon keeps its partitions only until
// the lease it last renewed would run out, then holds none, so it cannot advance anyone after
// another daemon may have taken over; the store's commit fence refuses such a batch anyway.
// Stop() gives every lease back, so the others take over at once rather than after the lease.
#ifndef ITINERA_ORCHESTRATOR_CLUSTER_H_
#define ITINERA_ORCHESTRATOR_CLUSTER_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "orchestrator/partitions.h"
#include "orchestrator/store.h"

namespace itinera::orch {

class ClusterMember {
 public:
  // `on_work` is called (from the member's threads) when partitions were gained or events were
  // announced in a held partition.
  ClusterMember(Store& store, std::string node, Seconds lease, std::function<void()> on_work);
  ~ClusterMember();
  ClusterMember(const ClusterMember&) = delete;
  ClusterMember& operator=(const ClusterMember&) = delete;

  // Takes the first leases (waiting for the first renewal, so the processor starts with its
  // share) and starts the threads.
  void Start();
  // Stops the threads and releases the leases.
  void Stop();

  // Renews now rather than at the next period (a commit found a lease moved on).
  void RenewSoon();
  // What this daemon holds now (no partitions while it cannot renew).
  Ownership Current() const;
  const std::string& node() const { return node_; }
  int64_t renewals() const { return renewals_; }
  int64_t renew_failures() const { return renew_failures_; }
  int64_t announcements() const { return announcements_; }

  // "<hostname>-<pid>-<4 random hex digits>", or the configured name instead of the host name.
  // Unique per process start, so two daemons never share an id (and so each other's leases).
  static std::string NodeId(const std::string& configured);

 private:
  void Renew();
  void RenewLoop();
  void WatchLoop();

  Store& store_;
  const std::string node_;
  const Seconds lease_;
  const std::function<void()> on_work_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  Ownership ownership_;
  std::chrono::steady_clock::time_point valid_until_{};
  bool stopping_ = false;
  bool renew_soon_ = false;
  bool started_ = false;  // Start and Stop are called from one thread
  std::atomic<int64_t> renewals_{0};
  std::atomic<int64_t> renew_failures_{0};
  std::atomic<int64_t> announcements_{0};
  std::thread renewer_;
  std::thread watcher_;
};

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_CLUSTER_H_
