#include "orchestrator/store.h"

#include "orchestrator/memory_store.h"
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
         outbox.empty() && cancel_messages.empty() && sends.empty() &&
         routing.round_robin.empty() && routing.load.empty() && timeline.empty() &&
         counters.empty();
}

Result<std::unique_ptr<Store>> OpenStore(const std::string& url) {
  if (url == "memory:") return std::unique_ptr<Store>(std::make_unique<MemoryStore>());
  const std::string sqlite = "sqlite:";
  if (url.rfind(sqlite, 0) == 0 && url.size() > sqlite.size()) {
    auto store = SqliteStore::Open(url.substr(sqlite.size()));
    if (!store.ok()) return store.error();
    return std::unique_ptr<Store>(std::move(*store));
  }
  return Error{"invalid_argument",
               "unsupported store URL \"" + url + "\" (expected \"sqlite:PATH\" or \"memory:\")"};
}

}  // namespace itinera::orch
