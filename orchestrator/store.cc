#include "orchestrator/store.h"

#include "orchestrator/memory_store.h"
#include "orchestrator/pg_store.h"
#include "orchestrator/sqlite_store.h"

namespace itinera::orch {

const char* MessageStatusName(MessageStatus status) {
  switch (status) {
    case MessageStatus::kPending:
      return "pending";
    case MessageStatus::kSent:
      return "sent";
    case MessageStatus::kDead:
      return "dead";
    case MessageStatus::kCancelled:
      return "cancelled";
  }
  return "pending";
}

std::optional<MessageStatus> ParseMessageStatus(const std::string& name) {
  for (MessageStatus s : {MessageStatus::kPending, MessageStatus::kSent, MessageStatus::kDead,
                          MessageStatus::kCancelled}) {
    if (name == MessageStatusName(s)) return s;
  }
  return std::nullopt;
}

bool Batch::empty() const {
  return profiles.empty() && states.empty() && timers.empty() && processed_events.empty() &&
         arrived.empty() && outbox.empty() && cancel_messages.empty() && sends.empty() &&
         routing.round_robin.empty() && routing.load.empty() && timeline.empty() &&
         counters.empty();
}

Result<std::map<std::string, CustomerSnapshot>> Store::LoadCustomers(
    const std::vector<std::string>& customers, const CustomerReads& reads) {
  return LoadEachCustomer(
      customers, reads, [this](const std::string& c) { return GetProfile(c); },
      [this](const std::string& c, Time since) { return RecentSends(c, since); },
      [this](const std::string& c) { return ListStates(c); },
      [this](const std::string& c, int limit) { return PendingEvents(c, limit); });
}

Status Store::RecordOutcomes(const std::vector<OutboxOutcome>& outcomes) {
  for (const OutboxOutcome& o : outcomes) {
    Status s;
    switch (o.kind) {
      case OutboxOutcome::kSent:
        s = MarkSent(o.id, o.at);
        break;
      case OutboxOutcome::kRetry:
        s = MarkRetry(o.id, o.at, o.error);
        break;
      case OutboxOutcome::kDead:
        s = MarkDead(o.id, o.error);
        break;
      case OutboxOutcome::kCancelled:
        s = MarkCancelled(o.id, o.error);
        break;
    }
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

Result<Ownership> Store::RenewLeases(const std::string& node, Seconds) {
  Ownership all;
  all.node = node;
  return all;
}

Status Store::ReleaseLeases(const std::string&) { return Status::Ok(); }

Result<std::unique_ptr<EventWatch>> Store::WatchEvents() { return std::unique_ptr<EventWatch>(); }

bool IsPostgresUrl(const std::string& url) {
  return url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0;
}

Result<std::unique_ptr<Store>> OpenStore(const std::string& url, const StoreOptions& options) {
  if (IsPostgresUrl(url)) {
    auto store = PgStore::Open(url, options.pool);
    if (!store.ok()) return store.error();
    return std::unique_ptr<Store>(std::move(*store));
  }
  if (url == "memory:") return std::unique_ptr<Store>(std::make_unique<MemoryStore>());
  const std::string sqlite = "sqlite:";
  if (url.rfind(sqlite, 0) == 0 && url.size() > sqlite.size()) {
    auto store = SqliteStore::Open(url.substr(sqlite.size()));
    if (!store.ok()) return store.error();
    return std::unique_ptr<Store>(std::move(*store));
  }
  return Error{"invalid_argument",
               "unsupported store URL \"" + url +
                   "\" (expected \"sqlite:PATH\", \"postgresql://...\" or \"memory:\")"};
}

}  // namespace itinera::orch
