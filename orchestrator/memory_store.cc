#include "orchestrator/memory_store.h"

#include <algorithm>

namespace itinera::orch {

using nlohmann::json;

namespace {

Error NotFound(const std::string& what) { return Error{"not_found", what + " not found"}; }

Error VersionConflict(const JourneyVersion& v) {
  return Error{"conflict", "journey " + v.journey + " version " + std::to_string(v.version) +
                               " was loaded before with other content"};
}

}  // namespace

Result<std::optional<json>> MemoryStore::GetProfile(const std::string& customer) {
  std::lock_guard lock(mu_);
  auto it = profiles_.find(customer);
  if (it == profiles_.end()) return std::optional<json>();
  return std::optional<json>(it->second);
}

Result<ProfileChange> MemoryStore::UpsertProfile(const std::string& customer, const json& patch) {
  if (customer.empty()) return Error{"invalid_argument", "empty customer id"};
  if (!patch.is_object()) return Error{"invalid_argument", "a profile patch is a JSON object"};
  std::lock_guard lock(mu_);
  return PatchProfile(customer, patch);
}

Result<ProfileChange> MemoryStore::UpsertProfileRecorded(const std::string& customer,
                                                         const json& patch, NewEvent on_change) {
  if (customer.empty()) return Error{"invalid_argument", "empty customer id"};
  if (!patch.is_object()) return Error{"invalid_argument", "a profile patch is a JSON object"};
  std::lock_guard lock(mu_);
  ProfileChange change = PatchProfile(customer, patch);
  if (change.before != change.after) {
    on_change.customer = customer;
    on_change.body["before"] = change.before;
    int64_t seq = next_event_seq_++;
    events_[seq] = StoredEvent{seq, "", customer, on_change.at, on_change.body, false};
  }
  return change;
}

ProfileChange MemoryStore::PatchProfile(const std::string& customer, const json& patch) {
  ProfileChange change;
  auto it = profiles_.find(customer);
  if (it != profiles_.end()) change.before = it->second;
  change.after = change.before.is_object() ? change.before : json::object();
  change.after.merge_patch(patch);
  change.after["id"] = customer;
  profiles_[customer] = change.after;
  return change;
}

Status MemoryStore::EraseCustomer(const std::string& customer) {
  std::lock_guard lock(mu_);
  profiles_.erase(customer);
  for (auto it = events_.begin(); it != events_.end();) {
    if (it->second.customer == customer) {
      if (!it->second.id.empty()) event_ids_.erase(it->second.id);
      it = events_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = states_.lower_bound({customer, ""});
       it != states_.end() && it->first.first == customer;) {
    it = states_.erase(it);
  }
  for (auto it = timers_.lower_bound({customer, ""});
       it != timers_.end() && it->first.first == customer;) {
    due_.erase({it->second, customer, it->first.second});
    it = timers_.erase(it);
  }
  sends_.erase(customer);
  timeline_.erase(customer);
  for (auto& [id, m] : outbox_) {
    if (m.customer != customer) continue;
    OutboxMessage before = m;
    if (m.status == MessageStatus::kPending) m.status = MessageStatus::kCancelled;
    m.recipient.clear();
    m.payload = json::object();
    SetPendingIndex(before, m);
  }
  return Status::Ok();
}

Result<int64_t> MemoryStore::AppendEvents(const std::vector<NewEvent>& events) {
  for (const NewEvent& e : events) {
    if (e.customer.empty()) return Error{"invalid_argument", "an event without a customer"};
  }
  std::lock_guard lock(mu_);
  int64_t added = 0;
  for (const NewEvent& e : events) {
    if (!e.id.empty() && event_ids_.count(e.id)) continue;
    int64_t seq = next_event_seq_++;
    events_[seq] = StoredEvent{seq, e.id, e.customer, e.at, e.body, false};
    if (!e.id.empty()) event_ids_[e.id] = seq;
    ++added;
  }
  return added;
}

Result<std::vector<std::string>> MemoryStore::KnownEventIds(const std::vector<std::string>& ids) {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const std::string& id : ids) {
    if (event_ids_.count(id) && std::find(out.begin(), out.end(), id) == out.end()) {
      out.push_back(id);
    }
  }
  return out;
}

Result<std::vector<StoredEvent>> MemoryStore::PendingEvents(const std::string& customer,
                                                            int limit) {
  std::lock_guard lock(mu_);
  std::vector<StoredEvent> out;
  for (const auto& [seq, e] : events_) {
    if (static_cast<int>(out.size()) >= limit) break;
    if (e.customer == customer && !e.processed) out.push_back(e);
  }
  return out;
}

Result<std::vector<std::string>> MemoryStore::InboxCustomers(int limit, const PartitionSet& only) {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const auto& [seq, e] : events_) {  // seq order: the longest waiting first
    if (static_cast<int>(out.size()) >= limit) break;
    if (!e.processed && only.ContainsCustomer(e.customer) && seen.insert(e.customer).second) {
      out.push_back(e.customer);
    }
  }
  return out;
}

Result<std::optional<StoredState>> MemoryStore::GetState(const std::string& customer,
                                                         const std::string& journey) {
  std::lock_guard lock(mu_);
  auto it = states_.find({customer, journey});
  if (it == states_.end()) return std::optional<StoredState>();
  return std::optional<StoredState>(it->second);
}

Result<std::vector<StoredState>> MemoryStore::ListStates(const std::string& customer) {
  std::lock_guard lock(mu_);
  std::vector<StoredState> out;
  for (auto it = states_.lower_bound({customer, ""});
       it != states_.end() && it->first.first == customer; ++it) {
    out.push_back(it->second);
  }
  return out;
}

Result<std::vector<DueTimer>> MemoryStore::DueCustomers(Time now, int limit,
                                                        const PartitionSet& only) {
  std::lock_guard lock(mu_);
  std::vector<DueTimer> out;
  for (const auto& [wake, customer, journey] : due_) {
    if (wake > now || static_cast<int>(out.size()) >= limit) break;
    if (only.ContainsCustomer(customer)) out.push_back({customer, journey, wake});
  }
  return out;
}

Result<std::vector<SendRecord>> MemoryStore::RecentSends(const std::string& customer, Time since) {
  std::lock_guard lock(mu_);
  std::vector<SendRecord> out;
  auto it = sends_.find(customer);
  if (it == sends_.end()) return out;
  for (const SendRecord& s : it->second) {
    if (s.at >= since) out.push_back(s);
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const SendRecord& a, const SendRecord& b) { return a.at < b.at; });
  return out;
}

Result<RoutingSnapshot> MemoryStore::GetRouting() {
  std::lock_guard lock(mu_);
  return routing_;
}

Result<std::optional<OutboxMessage>> MemoryStore::GetMessage(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = outbox_.find(id);
  if (it == outbox_.end()) return std::optional<OutboxMessage>();
  return std::optional<OutboxMessage>(it->second);
}

Result<std::vector<OutboxMessage>> MemoryStore::ClaimDue(Time now, int limit, Seconds lease,
                                                         const std::string& channel) {
  std::lock_guard lock(mu_);
  std::vector<std::string> ids;
  for (const auto& [not_before, id] : pending_) {
    if (not_before > now || static_cast<int>(ids.size()) >= limit) break;
    if (!channel.empty() && outbox_.at(id).channel != channel) continue;
    ids.push_back(id);
  }
  std::vector<OutboxMessage> out;
  for (const std::string& id : ids) {
    OutboxMessage& m = outbox_.at(id);
    OutboxMessage before = m;
    m.attempts += 1;
    m.not_before = now + lease;
    SetPendingIndex(before, m);
    out.push_back(m);
  }
  return out;
}

Status MemoryStore::MarkSent(const std::string& id, Time at) {
  return RecordOutcomes({{id, OutboxOutcome::kSent, at, ""}});
}

Status MemoryStore::MarkRetry(const std::string& id, Time at, const std::string& error) {
  return RecordOutcomes({{id, OutboxOutcome::kRetry, at, error}});
}

Status MemoryStore::MarkDead(const std::string& id, const std::string& error) {
  return RecordOutcomes({{id, OutboxOutcome::kDead, Time{}, error}});
}

Status MemoryStore::MarkCancelled(const std::string& id, const std::string& reason) {
  return RecordOutcomes({{id, OutboxOutcome::kCancelled, Time{}, reason}});
}

Status MemoryStore::RecordOutcomes(const std::vector<OutboxOutcome>& outcomes) {
  std::lock_guard lock(mu_);
  // Every id is checked first: after this point nothing can fail, so the call is all or none.
  for (const OutboxOutcome& o : outcomes) {
    if (!outbox_.count(o.id)) return NotFound("message " + o.id);
  }
  for (const OutboxOutcome& o : outcomes) ApplyOutcome(o);
  return Status::Ok();
}

void MemoryStore::ApplyOutcome(const OutboxOutcome& o) {
  OutboxMessage& m = outbox_.at(o.id);
  // Only a send overrides a decided message; the other outcomes change pending ones only.
  if (o.kind != OutboxOutcome::kSent && m.status != MessageStatus::kPending) return;
  OutboxMessage before = m;
  switch (o.kind) {
    case OutboxOutcome::kSent:
      m.status = MessageStatus::kSent;
      m.sent_at = o.at;
      break;
    case OutboxOutcome::kRetry:
      m.not_before = o.at;
      m.last_error = o.error;
      break;
    case OutboxOutcome::kDead:
      m.status = MessageStatus::kDead;
      m.last_error = o.error;
      break;
    case OutboxOutcome::kCancelled:
      m.status = MessageStatus::kCancelled;
      m.last_error = o.error;
      break;
  }
  SetPendingIndex(before, m);
}

Result<std::vector<OutboxMessage>> MemoryStore::ListMessages(MessageStatus status, int limit) {
  std::lock_guard lock(mu_);
  std::vector<OutboxMessage> out;
  for (const auto& [id, m] : outbox_) {
    if (m.status == status) out.push_back(m);
  }
  std::sort(out.begin(), out.end(), [](const OutboxMessage& a, const OutboxMessage& b) {
    return std::tie(a.created_at, a.id) < std::tie(b.created_at, b.id);
  });
  if (static_cast<int>(out.size()) > limit) out.resize(std::max(limit, 0));
  return out;
}

Result<std::vector<TimelineEntry>> MemoryStore::Timeline(const std::string& customer, int limit) {
  std::lock_guard lock(mu_);
  std::vector<TimelineEntry> out;
  auto it = timeline_.find(customer);
  if (it != timeline_.end()) out = it->second;
  std::sort(out.begin(), out.end(), [](const TimelineEntry& a, const TimelineEntry& b) {
    return std::tie(a.at, a.seq) > std::tie(b.at, b.seq);
  });
  if (static_cast<int>(out.size()) > limit) out.resize(std::max(limit, 0));
  return out;
}

Result<std::map<std::string, int64_t>> MemoryStore::JourneyCounters(const std::string& journey) {
  std::lock_guard lock(mu_);
  auto it = counters_.find(journey);
  if (it == counters_.end()) return std::map<std::string, int64_t>();
  return it->second;
}

Result<std::map<std::string, int64_t>> MemoryStore::MessageCounts(const std::string& journey) {
  std::lock_guard lock(mu_);
  std::map<std::string, int64_t> out;
  for (const auto& [id, m] : outbox_) {
    if (journey.empty() || m.journey == journey) {
      ++out[m.channel + "." + MessageStatusName(m.status)];
    }
  }
  return out;
}

Status MemoryStore::SaveJourneyVersion(const JourneyVersion& version) {
  if (version.journey.empty())
    return Error{"invalid_argument", "a journey version without a journey"};
  std::lock_guard lock(mu_);
  auto [it, inserted] = journey_versions_.try_emplace({version.journey, version.version}, version);
  if (!inserted && it->second.fingerprint != version.fingerprint) {
    return VersionConflict(version);
  }
  return Status::Ok();
}

Result<std::vector<JourneyVersion>> MemoryStore::ListJourneyVersions() {
  std::lock_guard lock(mu_);
  std::vector<JourneyVersion> out;
  for (const auto& [key, v] : journey_versions_) out.push_back(v);
  return out;
}

Status MemoryStore::Commit(const Batch& batch, std::vector<size_t>* inserted) {
  std::lock_guard lock(mu_);
  if (inserted != nullptr) inserted->clear();
  // Validate everything first: after this point nothing can fail, so the batch is all or none.
  std::map<Key, int64_t> versions;  // as the batch's earlier writes leave them
  for (const auto& w : batch.states) {
    if (w.customer.empty() || w.journey.empty()) {
      return Error{"invalid_argument", "a state write without customer or journey"};
    }
    Key key{w.customer, w.journey};
    auto v = versions.find(key);
    if (v == versions.end()) {
      auto it = states_.find(key);
      v = versions.emplace(key, it == states_.end() ? 0 : it->second.version).first;
    }
    if (w.expected_version && *w.expected_version != v->second) {
      return Error{"conflict", "state of " + w.customer + " in " + w.journey + " is at version " +
                                   std::to_string(v->second) + ", not " +
                                   std::to_string(*w.expected_version)};
    }
    ++v->second;
  }
  for (const auto& m : batch.outbox) {
    if (m.id.empty()) return Error{"invalid_argument", "an outbox message without an id"};
  }
  for (const auto& p : batch.profiles) {
    if (p.customer.empty() || !p.patch.is_object()) {
      return Error{"invalid_argument", "a profile write needs a customer and an object patch"};
    }
  }
  std::set<std::string> arrived_ids;
  for (const NewEvent& e : batch.arrived) {
    if (e.customer.empty()) return Error{"invalid_argument", "an event without a customer"};
    if (!e.id.empty() && (event_ids_.count(e.id) || !arrived_ids.insert(e.id).second)) {
      return Error{"conflict", "event " + e.id + " is stored already"};
    }
  }

  for (const auto& p : batch.profiles) PatchProfile(p.customer, p.patch);
  for (const auto& w : batch.states) {
    StoredState& s = states_[{w.customer, w.journey}];
    s.customer = w.customer;
    s.journey = w.journey;
    s.state = w.state;
    s.version += 1;
  }
  for (const auto& t : batch.timers) SetTimer({t.customer, t.journey}, t.wake);
  for (int64_t seq : batch.processed_events) {
    auto it = events_.find(seq);
    if (it != events_.end()) it->second.processed = true;
  }
  for (const NewEvent& e : batch.arrived) {
    int64_t seq = next_event_seq_++;
    events_[seq] = StoredEvent{seq, e.id, e.customer, e.at, e.body, true};
    if (!e.id.empty()) event_ids_[e.id] = seq;
  }
  for (size_t i = 0; i < batch.outbox.size(); ++i) {
    const OutboxMessage& m = batch.outbox[i];
    if (outbox_.count(m.id)) continue;  // the idempotency key: inserted once
    if (inserted != nullptr) inserted->push_back(i);
    OutboxMessage& stored = outbox_[m.id] = m;
    stored.status = MessageStatus::kPending;
    stored.last_error.clear();
    stored.sent_at.reset();
    pending_.insert({stored.not_before, stored.id});
  }
  for (const auto& id : batch.cancel_messages) {
    auto it = outbox_.find(id);
    if (it == outbox_.end() || it->second.status != MessageStatus::kPending) continue;
    OutboxMessage before = it->second;
    it->second.status = MessageStatus::kCancelled;
    SetPendingIndex(before, it->second);
  }
  for (const auto& s : batch.sends) sends_[s.customer].push_back(s.send);
  for (const auto& [team, n] : batch.routing.round_robin) routing_.round_robin[team] += n;
  for (const auto& [rep, n] : batch.routing.load) routing_.load[rep] += n;
  for (const auto& e : batch.timeline) {
    TimelineEntry entry = e;
    entry.seq = next_timeline_seq_++;
    timeline_[e.customer].push_back(std::move(entry));
  }
  for (const auto& c : batch.counters) counters_[c.journey][c.name] += c.delta;
  return Status::Ok();
}

void MemoryStore::SetTimer(const Key& key, std::optional<Time> wake) {
  auto it = timers_.find(key);
  if (it != timers_.end()) {
    due_.erase({it->second, key.first, key.second});
    timers_.erase(it);
  }
  if (wake) {
    timers_[key] = *wake;
    due_.insert({*wake, key.first, key.second});
  }
}

void MemoryStore::SetPendingIndex(const OutboxMessage& before, const OutboxMessage& after) {
  if (before.status == MessageStatus::kPending) pending_.erase({before.not_before, before.id});
  if (after.status == MessageStatus::kPending) pending_.insert({after.not_before, after.id});
}

}  // namespace itinera::orch
