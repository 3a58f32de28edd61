// An in-memory Store: for tests, the conformance suite's reference and single-process tools.
//
// Holds everything in ordered maps behind one mutex; every method (and a whole Commit) runs
// under it, so it is thread-safe and each call is atomic. Commit validates the batch before
// touching anything, so a rejected batch leaves no trace. Nothing survives the object.
#ifndef ITINERA_ORCHESTRATOR_MEMORY_STORE_H_
#define ITINERA_ORCHESTRATOR_MEMORY_STORE_H_

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "orchestrator/store.h"

namespace itinera::orch {

class MemoryStore final : public Store {
 public:
  MemoryStore() = default;
  MemoryStore(const MemoryStore&) = delete;
  MemoryStore& operator=(const MemoryStore&) = delete;

  Result<std::optional<nlohmann::json>> GetProfile(const std::string& customer) override;
  Result<ProfileChange> UpsertProfile(const std::string& customer,
                                      const nlohmann::json& patch) override;
  Result<ProfileChange> UpsertProfileRecorded(const std::string& customer,
                                              const nlohmann::json& patch,
                                              NewEvent on_change) override;
  Status EraseCustomer(const std::string& customer) override;

  Result<int64_t> AppendEvents(const std::vector<NewEvent>& events) override;
  Result<std::vector<StoredEvent>> PendingEvents(const std::string& customer, int limit) override;
  Result<std::vector<std::string>> InboxCustomers(int limit, const PartitionSet& only) override;
  Result<std::vector<std::string>> KnownEventIds(const std::vector<std::string>& ids) override;

  Result<std::optional<StoredState>> GetState(const std::string& customer,
                                              const std::string& journey) override;
  Result<std::vector<StoredState>> ListStates(const std::string& customer) override;
  Result<std::vector<DueTimer>> DueCustomers(Time now, int limit,
                                             const PartitionSet& only) override;

  Result<std::vector<SendRecord>> RecentSends(const std::string& customer, Time since) override;
  Result<RoutingSnapshot> GetRouting() override;

  Result<std::optional<OutboxMessage>> GetMessage(const std::string& id) override;
  Result<std::vector<OutboxMessage>> ClaimDue(Time now, int limit, Seconds lease,
                                              const std::string& channel) override;
  Status MarkSent(const std::string& id, Time at) override;
  Status MarkRetry(const std::string& id, Time at, const std::string& error) override;
  Status MarkDead(const std::string& id, const std::string& error) override;
  Status MarkCancelled(const std::string& id, const std::string& reason) override;
  Status RecordOutcomes(const std::vector<OutboxOutcome>& outcomes) override;
  Result<std::vector<OutboxMessage>> ListMessages(MessageStatus status, int limit) override;

  Result<std::vector<TimelineEntry>> Timeline(const std::string& customer, int limit) override;
  Result<std::map<std::string, int64_t>> JourneyCounters(const std::string& journey) override;
  Result<std::map<std::string, int64_t>> MessageCounts(const std::string& journey) override;

  Status SaveJourneyVersion(const JourneyVersion& version) override;
  Result<std::vector<JourneyVersion>> ListJourneyVersions() override;

  using Store::Commit;
  Status Commit(const Batch& batch, std::vector<size_t>* inserted) override;

 private:
  using Key = std::pair<std::string, std::string>;  // (customer, journey)
  using DueKey = std::tuple<Time, std::string, std::string>;
  using OutboxKey = std::pair<Time, std::string>;  // (not_before, id) of pending messages

  // Merges `patch` into the customer's profile (created when absent); callers hold mu_.
  ProfileChange PatchProfile(const std::string& customer, const nlohmann::json& patch);
  void SetTimer(const Key& key, std::optional<Time> wake);
  void SetPendingIndex(const OutboxMessage& before, const OutboxMessage& after);
  // Applies one outcome to a message known to exist; callers hold mu_.
  void ApplyOutcome(const OutboxOutcome& outcome);

  std::mutex mu_;
  std::map<std::string, nlohmann::json> profiles_;
  int64_t next_event_seq_ = 1;
  std::map<int64_t, StoredEvent> events_;     // by seq
  std::map<std::string, int64_t> event_ids_;  // idempotency id -> seq
  std::map<Key, StoredState> states_;
  std::map<Key, Time> timers_;
  std::set<DueKey> due_;  // the due index
  std::map<std::string, std::vector<SendRecord>> sends_;
  RoutingSnapshot routing_;
  std::map<std::string, OutboxMessage> outbox_;
  std::set<OutboxKey> pending_;  // the outbox's due index
  int64_t next_timeline_seq_ = 1;
  std::map<std::string, std::vector<TimelineEntry>> timeline_;  // oldest first
  std::map<std::string, std::map<std::string, int64_t>> counters_;
  std::map<std::pair<std::string, int64_t>, JourneyVersion> journey_versions_;
};

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_MEMORY_STORE_H_
