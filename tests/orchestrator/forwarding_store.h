// A Store that passes every call to another one; tests derive from it and override the calls
// they want to fail, count or fake (a database going away, leases that move).
#ifndef ITINERA_TESTS_ORCHESTRATOR_FORWARDING_STORE_H_
#define ITINERA_TESTS_ORCHESTRATOR_FORWARDING_STORE_H_

#include "orchestrator/store.h"

namespace itinera::orch::testing {

class ForwardingStore : public Store {
 public:
  explicit ForwardingStore(Store& inner) : inner_(inner) {}

  Result<std::optional<nlohmann::json>> GetProfile(const std::string& c) override {
    return inner_.GetProfile(c);
  }
  Result<ProfileChange> UpsertProfile(const std::string& c, const nlohmann::json& p) override {
    return inner_.UpsertProfile(c, p);
  }
  Result<ProfileChange> UpsertProfileRecorded(const std::string& c, const nlohmann::json& p,
                                              NewEvent e) override {
    return inner_.UpsertProfileRecorded(c, p, std::move(e));
  }
  Status EraseCustomer(const std::string& c) override { return inner_.EraseCustomer(c); }
  Result<int64_t> AppendEvents(const std::vector<NewEvent>& e) override {
    return inner_.AppendEvents(e);
  }
  Result<std::vector<std::string>> KnownEventIds(const std::vector<std::string>& ids) override {
    return inner_.KnownEventIds(ids);
  }
  Result<std::vector<StoredEvent>> PendingEvents(const std::string& c, int limit) override {
    return inner_.PendingEvents(c, limit);
  }
  Result<std::vector<std::string>> InboxCustomers(int limit, const PartitionSet& only) override {
    return inner_.InboxCustomers(limit, only);
  }
  Result<std::optional<StoredState>> GetState(const std::string& c, const std::string& j) override {
    return inner_.GetState(c, j);
  }
  Result<std::vector<StoredState>> ListStates(const std::string& c) override {
    return inner_.ListStates(c);
  }
  Result<std::vector<DueTimer>> DueCustomers(Time now, int limit,
                                             const PartitionSet& only) override {
    return inner_.DueCustomers(now, limit, only);
  }
  Result<std::vector<SendRecord>> RecentSends(const std::string& c, Time since) override {
    return inner_.RecentSends(c, since);
  }
  Result<RoutingSnapshot> GetRouting() override { return inner_.GetRouting(); }
  Result<std::optional<OutboxMessage>> GetMessage(const std::string& id) override {
    return inner_.GetMessage(id);
  }
  Result<std::vector<OutboxMessage>> ClaimDue(Time now, int limit, Seconds lease,
                                              const std::string& channel) override {
    return inner_.ClaimDue(now, limit, lease, channel);
  }
  Status MarkSent(const std::string& id, Time at) override { return inner_.MarkSent(id, at); }
  Status MarkRetry(const std::string& id, Time at, const std::string& e) override {
    return inner_.MarkRetry(id, at, e);
  }
  Status MarkDead(const std::string& id, const std::string& e) override {
    return inner_.MarkDead(id, e);
  }
  Status MarkCancelled(const std::string& id, const std::string& r) override {
    return inner_.MarkCancelled(id, r);
  }
  // Through this store's own Mark* calls (Store's default, one by one), so a test that fails
  // or counts MarkSent also sees the outcomes a dispatcher records in one call, as LoadCustomers
  // goes through GetProfile and the other single reads. A test that wants the inner store's
  // own (atomic) RecordOutcomes overrides this with inner_.RecordOutcomes.
  Status RecordOutcomes(const std::vector<OutboxOutcome>& o) override {
    return Store::RecordOutcomes(o);
  }
  Result<std::vector<OutboxMessage>> ListMessages(MessageStatus s, int limit) override {
    return inner_.ListMessages(s, limit);
  }
  Result<std::vector<TimelineEntry>> Timeline(const std::string& c, int limit) override {
    return inner_.Timeline(c, limit);
  }
  Result<std::map<std::string, int64_t>> JourneyCounters(const std::string& j) override {
    return inner_.JourneyCounters(j);
  }
  Result<std::map<std::string, int64_t>> MessageCounts(const std::string& j) override {
    return inner_.MessageCounts(j);
  }
  Status SaveJourneyVersion(const JourneyVersion& v) override {
    return inner_.SaveJourneyVersion(v);
  }
  Result<std::vector<JourneyVersion>> ListJourneyVersions() override {
    return inner_.ListJourneyVersions();
  }
  using Store::Commit;
  Status Commit(const Batch& b, std::vector<size_t>* inserted) override {
    return inner_.Commit(b, inserted);
  }
  bool Shared() const override { return inner_.Shared(); }
  Result<Ownership> RenewLeases(const std::string& node, Seconds ttl) override {
    return inner_.RenewLeases(node, ttl);
  }
  Status ReleaseLeases(const std::string& node) override { return inner_.ReleaseLeases(node); }
  Result<std::unique_ptr<EventWatch>> WatchEvents() override { return inner_.WatchEvents(); }

 protected:
  Store& inner_;
};

}  // namespace itinera::orch::testing

#endif  // ITINERA_TESTS_ORCHESTRATOR_FORWARDING_STORE_H_
