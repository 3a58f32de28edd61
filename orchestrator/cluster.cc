#include "orchestrator/cluster.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <random>

#include "util/log.h"
#include "util/thread_name.h"

namespace itinera::orch {

namespace {

using Clock = std::chrono::steady_clock;

Ownership Nothing(const std::string& node) {
  Ownership none;
  none.node = node;
  none.all = false;
  return none;
}

}  // namespace

std::string ClusterMember::NodeId(const std::string& configured) {
  std::string name = configured;
  if (name.empty()) {
    char host[256] = {};
    name = ::gethostname(host, sizeof host - 1) == 0 && host[0] ? host : "itinera";
  }
  // The pid tells processes on one host apart; the random part tells apart replicas that share
  // a configured name and a pid (containers all run as pid 1).
  std::random_device random;
  char suffix[8];
  std::snprintf(suffix, sizeof suffix, "%04x", static_cast<unsigned>(random() & 0xffff));
  return name + "-" + std::to_string(::getpid()) + "-" + suffix;
}

ClusterMember::ClusterMember(Store& store, std::string node, Seconds lease,
                             std::function<void()> on_work)
    : store_(store),
      node_(std::move(node)),
      lease_(lease),
      on_work_(std::move(on_work)),
      ownership_(Nothing(node_)) {}

ClusterMember::~ClusterMember() { Stop(); }

void ClusterMember::Start() {
  started_ = true;
  Renew();
  renewer_ = std::thread([this] {
    NameThread("cluster renew");
    RenewLoop();
  });
  watcher_ = std::thread([this] {
    NameThread("cluster watch");
    WatchLoop();
  });
}

void ClusterMember::Stop() {
  if (!started_) return;
  started_ = false;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (renewer_.joinable()) renewer_.join();
  if (watcher_.joinable()) watcher_.join();
  {
    std::lock_guard lock(mu_);
    ownership_ = Nothing(node_);
  }
  if (Status s = store_.ReleaseLeases(node_); !s.ok()) {
    LogWarn("cannot release the partition leases; the others take over when they expire",
            {{"node", node_}, {"error", s.error().message}});
  } else {
    LogInfo("partition leases released", {{"node", node_}});
  }
}

Ownership ClusterMember::Current() const {
  std::lock_guard lock(mu_);
  if (Clock::now() >= valid_until_) return Nothing(node_);
  return ownership_;
}

void ClusterMember::Renew() {
  const auto asked = Clock::now();
  auto renewed = store_.RenewLeases(node_, lease_);
  if (!renewed.ok()) {
    ++renew_failures_;
    std::lock_guard lock(mu_);
    LogWarn("cannot renew the partition leases",
            {{"node", node_},
             {"error", renewed.error().message},
             {"held_for_s", std::chrono::duration_cast<std::chrono::seconds>(
                                std::max(valid_until_ - Clock::now(), Clock::duration::zero()))
                                .count()}});
    return;
  }
  ++renewals_;
  bool gained = false;
  {
    std::lock_guard lock(mu_);
    std::vector<int> got, lost;
    for (const auto& [p, epoch] : renewed->epochs) {
      auto it = ownership_.epochs.find(p);
      if (it == ownership_.epochs.end() || it->second != epoch) got.push_back(p);
    }
    for (const auto& [p, epoch] : ownership_.epochs) {
      if (!renewed->epochs.count(p)) lost.push_back(p);
    }
    if (!got.empty() || !lost.empty()) {
      LogInfo(
          "partitions changed",
          {{"node", node_}, {"held", renewed->epochs.size()}, {"gained", got}, {"released", lost}});
    }
    gained = !got.empty();
    ownership_ = std::move(*renewed);
    // The store counts the lease from its own clock after our request; counting from before
    // the request makes this side expire first.
    valid_until_ = asked + lease_;
  }
  if (gained && on_work_) on_work_();
}

void ClusterMember::RenewSoon() {
  {
    std::lock_guard lock(mu_);
    renew_soon_ = true;
  }
  cv_.notify_all();
}

void ClusterMember::RenewLoop() {
  const auto every = std::max<Clock::duration>(lease_ / 3, std::chrono::milliseconds(500));
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, every, [this] { return stopping_ || renew_soon_; });
    if (stopping_) break;
    renew_soon_ = false;
    lock.unlock();
    Renew();
    lock.lock();
  }
}

void ClusterMember::WatchLoop() {
  std::unique_ptr<EventWatch> watch;
  int failures = 0;
  auto stopping = [this] {
    std::lock_guard lock(mu_);
    return stopping_;
  };
  auto pause = [this](std::chrono::milliseconds d) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, d, [this] { return stopping_; });
  };
  while (!stopping()) {
    if (!watch) {
      auto opened = store_.WatchEvents();
      if (!opened.ok() || !*opened) {
        if (!opened.ok() && failures++ == 0) {
          LogWarn("cannot listen for new events; polling until it works again",
                  {{"error", opened.error().message}});
        }
        if (opened.ok()) return;  // the store announces nothing: the processor polls
        pause(std::chrono::milliseconds(std::min(5000, 250 << std::min(failures, 5))));
        continue;
      }
      if (failures > 0) LogInfo("listening for new events again");
      failures = 0;
      watch = std::move(*opened);
      if (on_work_) on_work_();  // anything announced while we were not listening
    }
    auto announced = watch->Wait(std::chrono::milliseconds(500));
    if (!announced.ok()) {
      watch.reset();
      continue;
    }
    if (announced->empty()) continue;
    ++announcements_;
    const Ownership held = Current();
    const PartitionSet mine = held.Partitions();
    if (std::any_of(announced->begin(), announced->end(),
                    [&](int p) { return mine.Contains(p); })) {
      if (on_work_) on_work_();
    }
  }
}

}  // namespace itinera::orch
