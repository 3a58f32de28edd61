// The production Store: PostgreSQL through libpqxx (used only in the pg_*.cc files; this header
// keeps it out of everyone else's build).
//
// Several `itinera serve` processes share one database (Shared() is true): partition leases,
// fenced commits and LISTEN/NOTIFY announcements of new events are implemented here. Every
// statement is prepared; a Commit writes each list of its Batch with one multi-row statement,
// so one transaction (one WAL flush; synchronous_commit stays on) carries many transitions. The
// schema is migrated on Open under an advisory lock (several daemons may start at once), and
// each applied migration is recorded in `schema_migrations`.
//
// Connections come from a pool shared by the daemon's threads. When the server goes away the
// calls answer "storage" errors at once (the API turns them into 503 with Retry-After) while the
// pool reconnects with exponential backoff; nothing is acknowledged that was not committed.
#ifndef ITINERA_ORCHESTRATOR_PG_STORE_H_
#define ITINERA_ORCHESTRATOR_PG_STORE_H_

#include <memory>
#include <string>

#include "orchestrator/store.h"

namespace itinera::orch {

class PgStore final : public Store {
 public:
  // `url`: a libpq connection URI ("postgresql://user@host:5432/db"); `pool`: connections.
  static Result<std::unique_ptr<PgStore>> Open(const std::string& url, int pool);
  // The number of migrations this build knows; Open brings every database to it.
  static int64_t LatestSchemaVersion();

  ~PgStore() override;
  PgStore(const PgStore&) = delete;
  PgStore& operator=(const PgStore&) = delete;

  // The highest migration recorded in the database, and how many are recorded.
  Result<int64_t> SchemaVersion();
  Result<int64_t> MigrationCount();

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

  Result<std::map<std::string, CustomerSnapshot>> LoadCustomers(
      const std::vector<std::string>& customers,
      const CustomerReads& reads) override;  // pg_load.cc

  using Store::Commit;
  Status Commit(const Batch& batch, std::vector<size_t>* inserted) override;

  bool Shared() const override { return true; }
  Result<Ownership> RenewLeases(const std::string& node, Seconds ttl) override;
  Status ReleaseLeases(const std::string& node) override;
  Result<std::unique_ptr<EventWatch>> WatchEvents() override;

 private:
  struct Impl;  // the pool and everything libpqxx (pg_store.cc)
  explicit PgStore(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_PG_STORE_H_
