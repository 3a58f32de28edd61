// The SqliteStore's outbox (claims, leases, outcomes), the 360-view timeline, the per-journey
// counters and the journey versions. The rest of the store is in sqlite_store.cc.
#include <map>
#include <vector>

#include "orchestrator/sqlite_internal.h"
#include "orchestrator/sqlite_store.h"

namespace itinera::orch {

using sqlite_internal::FromSecs;
using sqlite_internal::Limit;
using sqlite_internal::ParseJson;
using sqlite_internal::Query;
using sqlite_internal::Secs;

// ---- outbox ----

namespace {

Result<OutboxMessage> ReadOutboxRow(Query& q) {
  OutboxMessage m;
  m.id = q.Text(0);
  m.customer = q.Text(1);
  m.journey = q.Text(2);
  m.channel = q.Text(3);
  m.recipient = q.Text(4);
  auto payload = ParseJson(q.Text(5));
  if (!payload.ok()) return payload.error();
  m.payload = std::move(*payload);
  if (!q.IsNull(12)) {
    if (!m.payload.is_object()) return Error{"corrupt", "message " + m.id + ": payload with html"};
    m.payload["html"] = q.Text(12);
  }
  auto status = ParseMessageStatus(q.Text(6));
  if (!status) return Error{"corrupt", "unknown message status " + q.Text(6)};
  m.status = *status;
  m.created_at = FromSecs(q.Int(7));
  m.not_before = FromSecs(q.Int(8));
  m.attempts = q.Int(9);
  m.last_error = q.Text(10);
  if (!q.IsNull(11)) m.sent_at = FromSecs(q.Int(11));
  return m;
}

}  // namespace

Result<std::optional<OutboxMessage>> SqliteStore::ReadMessage(const std::string& id) {
  ITINERA_READ_SQL(q, "SELECT " ITINERA_OUTBOX_SELECT "FROM outbox WHERE id = ?");
  int rc = q.Bind(id).Step();
  if (rc == SQLITE_DONE) return std::optional<OutboxMessage>();
  if (rc != SQLITE_ROW) return ReadError("read message");
  auto m = ReadOutboxRow(q);
  if (!m.ok()) return m.error();
  return std::optional<OutboxMessage>(std::move(*m));
}

Result<std::optional<OutboxMessage>> SqliteStore::GetMessage(const std::string& id) {
  // On the reading connection: a tracking link's redirect never waits for a write.
  auto lock = LockRead();
  return ReadMessage(id);
}

Result<std::vector<OutboxMessage>> SqliteStore::ClaimDue(Time now, int limit, Seconds lease,
                                                         const std::string& channel) {
  std::vector<OutboxMessage> out;
  std::vector<int64_t> rowids;  // the claimed rows, updated by rowid: no lookup through the id
  Status s = Write([&]() -> Status {
    auto read = [&](Query& q) -> Status {
      int rc;
      while ((rc = q.Step()) == SQLITE_ROW) {
        auto m = ReadOutboxRow(q);
        if (!m.ok()) return m.error();
        out.push_back(std::move(*m));
        rowids.push_back(q.Int(13));
      }
      if (rc != SQLITE_DONE) return StorageError("read due messages");
      return Status::Ok();
    };
    if (channel.empty()) {
      ITINERA_SQL(q, "SELECT " ITINERA_OUTBOX_SELECT
                     ", outbox.rowid FROM outbox WHERE status = 'pending' AND not_before <= ? "
                     "ORDER BY not_before, outbox.rowid LIMIT ?");
      q.Bind(Secs(now)).Bind(Limit(limit));
      if (Status r = read(q); !r.ok()) return r;
    } else {
      ITINERA_SQL(q, "SELECT " ITINERA_OUTBOX_SELECT
                     ", outbox.rowid FROM outbox WHERE status = 'pending' AND channel = ? "
                     "AND not_before <= ? "
                     "ORDER BY not_before, outbox.rowid LIMIT ?");
      q.Bind(channel).Bind(Secs(now)).Bind(Limit(limit));
      if (Status r = read(q); !r.ok()) return r;
    }
    for (size_t i = 0; i < out.size(); ++i) {
      OutboxMessage& m = out[i];
      m.attempts += 1;
      m.not_before = now + lease;
      ITINERA_SQL(q, "UPDATE outbox SET attempts = ?, not_before = ? WHERE rowid = ?");
      if (q.Bind(m.attempts).Bind(Secs(m.not_before)).Bind(rowids[i]).Step() != SQLITE_DONE) {
        return StorageError("claim message");
      }
    }
    return Status::Ok();
  });
  if (!s.ok()) return s.error();
  return out;
}

// The single outcomes are one-element RecordOutcomes: one set of statements for both.
Status SqliteStore::MarkSent(const std::string& id, Time at) {
  return RecordOutcomes({{id, OutboxOutcome::kSent, at, ""}});
}

Status SqliteStore::MarkRetry(const std::string& id, Time at, const std::string& error) {
  return RecordOutcomes({{id, OutboxOutcome::kRetry, at, error}});
}

Status SqliteStore::MarkDead(const std::string& id, const std::string& error) {
  return RecordOutcomes({{id, OutboxOutcome::kDead, Time{}, error}});
}

Status SqliteStore::MarkCancelled(const std::string& id, const std::string& reason) {
  return RecordOutcomes({{id, OutboxOutcome::kCancelled, Time{}, reason}});
}

Status SqliteStore::RecordOutcomes(const std::vector<OutboxOutcome>& outcomes) {
  if (outcomes.empty()) return Status::Ok();
  return Write([&]() -> Status {
    for (const OutboxOutcome& o : outcomes) {
      int rc;
      switch (o.kind) {
        case OutboxOutcome::kSent: {
          ITINERA_SQL(q, "UPDATE outbox SET status = 'sent', sent_at = ? WHERE id = ?");
          rc = q.Bind(Secs(o.at)).Bind(o.id).Step();
          break;
        }
        case OutboxOutcome::kRetry: {
          ITINERA_SQL(q,
                      "UPDATE outbox SET not_before = ?, last_error = ? "
                      "WHERE id = ? AND status = 'pending'");
          rc = q.Bind(Secs(o.at)).Bind(o.error).Bind(o.id).Step();
          break;
        }
        case OutboxOutcome::kDead:
        case OutboxOutcome::kCancelled: {
          ITINERA_SQL(q,
                      "UPDATE outbox SET status = ?, last_error = ? "
                      "WHERE id = ? AND status = 'pending'");
          const MessageStatus status =
              o.kind == OutboxOutcome::kDead ? MessageStatus::kDead : MessageStatus::kCancelled;
          rc = q.Bind(MessageStatusName(status)).Bind(o.error).Bind(o.id).Step();
          break;
        }
        default:
          return Error{"invalid_argument", "unknown outcome for message " + o.id};
      }
      if (rc != SQLITE_DONE) return StorageError("record outcomes");
      if (sqlite3_changes(db_) > 0) continue;
      // Nothing changed: decided already (the first outcome stands), or no such message.
      ITINERA_SQL(q, "SELECT 1 FROM outbox WHERE id = ?");
      rc = q.Bind(o.id).Step();
      if (rc == SQLITE_DONE) return Error{"not_found", "message " + o.id + " not found"};
      if (rc != SQLITE_ROW) return StorageError("record outcomes");
    }
    return Status::Ok();
  });
}

Result<std::vector<OutboxMessage>> SqliteStore::ListMessages(MessageStatus status, int limit) {
  auto lock = LockRead();
  ITINERA_READ_SQL(q, "SELECT " ITINERA_OUTBOX_SELECT
                      "FROM outbox WHERE status = ? ORDER BY created_at, outbox.rowid LIMIT ?");
  q.Bind(std::string(MessageStatusName(status))).Bind(Limit(limit));
  std::vector<OutboxMessage> out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) {
    auto m = ReadOutboxRow(q);
    if (!m.ok()) return m.error();
    out.push_back(std::move(*m));
  }
  if (rc != SQLITE_DONE) return ReadError("list messages");
  return out;
}

// ---- timeline and counters ----

Result<std::vector<TimelineEntry>> SqliteStore::Timeline(const std::string& customer, int limit) {
  auto lock = LockRead();
  ITINERA_READ_SQL(q,
                   "SELECT seq, at, kind, data FROM timeline WHERE customer = ? "
                   "ORDER BY at DESC, seq DESC LIMIT ?");
  q.Bind(customer).Bind(Limit(limit));
  std::vector<TimelineEntry> out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) {
    auto data = ParseJson(q.Text(3));
    if (!data.ok()) return data.error();
    out.push_back({q.Int(0), customer, FromSecs(q.Int(1)), q.Text(2), std::move(*data)});
  }
  if (rc != SQLITE_DONE) return ReadError("read timeline");
  return out;
}

Result<std::map<std::string, int64_t>> SqliteStore::JourneyCounters(const std::string& journey) {
  auto lock = LockRead();
  ITINERA_READ_SQL(q, "SELECT name, value FROM counters WHERE journey = ?");
  q.Bind(journey);
  std::map<std::string, int64_t> out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) out[q.Text(0)] = q.Int(1);
  if (rc != SQLITE_DONE) return ReadError("read counters");
  return out;
}

Result<std::map<std::string, int64_t>> SqliteStore::MessageCounts(const std::string& journey) {
  auto lock = LockRead();
  // Two statements rather than "journey = ? OR ? = ''", so the per-journey one can use the
  // outbox_journey index.
  const char* sql = journey.empty()
                        ? "SELECT channel, status, COUNT(*) FROM outbox GROUP BY channel, status"
                        : "SELECT channel, status, COUNT(*) FROM outbox WHERE journey = ? "
                          "GROUP BY channel, status";
  ITINERA_READ_SQL(q, sql);
  if (!journey.empty()) q.Bind(journey);
  std::map<std::string, int64_t> out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) out[q.Text(0) + "." + q.Text(1)] = q.Int(2);
  if (rc != SQLITE_DONE) return ReadError("count messages");
  return out;
}

// ---- journey versions ----

Status SqliteStore::SaveJourneyVersion(const JourneyVersion& v) {
  if (v.journey.empty()) return Error{"invalid_argument", "a journey version without a journey"};
  return Write([&]() -> Status {
    {
      ITINERA_SQL(q, "SELECT fingerprint FROM journey_versions WHERE journey = ? AND version = ?");
      int rc = q.Bind(v.journey).Bind(v.version).Step();
      if (rc == SQLITE_ROW) {
        if (q.Text(0) == v.fingerprint) return Status::Ok();
        return Error{"conflict", "journey " + v.journey + " version " + std::to_string(v.version) +
                                     " was loaded before with other content"};
      }
      if (rc != SQLITE_DONE) return StorageError("read journey version");
    }
    ITINERA_SQL(q,
                "INSERT INTO journey_versions (journey, version, fingerprint, file, source, "
                "loaded_at) VALUES (?, ?, ?, ?, ?, ?)");
    q.Bind(v.journey).Bind(v.version).Bind(v.fingerprint).Bind(v.file).Bind(v.source);
    if (q.Bind(Secs(v.loaded_at)).Step() != SQLITE_DONE) {
      return StorageError("write journey version");
    }
    return Status::Ok();
  });
}

Result<std::vector<JourneyVersion>> SqliteStore::ListJourneyVersions() {
  auto lock = LockRead();
  ITINERA_READ_SQL(
      q,
      "SELECT journey, version, fingerprint, file, source, loaded_at FROM journey_versions "
      "ORDER BY journey, version");
  std::vector<JourneyVersion> out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) {
    out.push_back({q.Text(0), q.Int(1), q.Text(2), q.Text(3), q.Text(4), FromSecs(q.Int(5))});
  }
  if (rc != SQLITE_DONE) return ReadError("list journey versions");
  return out;
}

#undef ITINERA_SQL
#undef ITINERA_READ_SQL
#undef ITINERA_OUTBOX_COLUMNS
#undef ITINERA_OUTBOX_SELECT

}  // namespace itinera::orch
