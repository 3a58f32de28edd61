// The PgStore's append-mostly tables: the outbox (Commit's inserts and cancellations, claims,
// leases, outcomes), recent sends, lead routing, the 360-view timeline, the per-journey counters
// and the journey versions. The rest of the store (connections, migrations, profiles, events,
// states and timers, Commit itself, leases and announcements) is in pg_store.cc.
#include <algorithm>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "orchestrator/pg_internal.h"
#include "orchestrator/pg_store.h"

namespace itinera::orch {

using pg_internal::ArrayLiteral;
using pg_internal::FromSecs;
using pg_internal::Int;
using pg_internal::Limit;
using pg_internal::Mode;
using pg_internal::ParseJson;
using pg_internal::Secs;
using pg_internal::Statement;
using pg_internal::Text;
using pg_internal::Tx;

// The outbox columns in the order ReadOutboxRow reads them.
#define ITINERA_PG_OUTBOX_COLUMNS                                                        \
  "id, customer, journey, channel, recipient, payload, status, created_at, not_before, " \
  "attempts, last_error, sent_at "

namespace pg_internal {

Result<OutboxMessage> ReadOutboxRow(const pqxx::row& row) {
  OutboxMessage m;
  m.id = Text(row[0]);
  m.customer = Text(row[1]);
  m.journey = Text(row[2]);
  m.channel = Text(row[3]);
  m.recipient = Text(row[4]);
  auto payload = ParseJson(row[5].c_str());
  if (!payload.ok()) return payload.error();
  m.payload = std::move(*payload);
  auto status = ParseMessageStatus(Text(row[6]));
  if (!status) return Error{"corrupt", "unknown message status " + Text(row[6])};
  m.status = *status;
  m.created_at = FromSecs(Int(row[7]));
  m.not_before = FromSecs(Int(row[8]));
  m.attempts = Int(row[9]);
  m.last_error = Text(row[10]);
  if (!row[11].is_null()) m.sent_at = FromSecs(Int(row[11]));
  return m;
}

namespace {

constexpr Statement kInsertMessages{
    "insert_messages",
    "INSERT INTO outbox (id, customer, journey, channel, recipient, payload, status, created_at, "
    "not_before, attempts, last_error, sent_at) SELECT i, c, j, ch, r, p, 'pending', ca, nb, a, "
    "'', NULL FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], "
    "$6::text[], $7::bigint[], $8::bigint[], $9::bigint[]) AS u(i, c, j, ch, r, p, ca, nb, a) "
    "ON CONFLICT (id) DO NOTHING RETURNING id"};
constexpr Statement kCancelMessages{
    "cancel_messages",
    "UPDATE outbox SET status = 'cancelled' WHERE id = ANY($1::text[]) AND status = 'pending'"};
constexpr Statement kInsertSends{
    "insert_sends",
    "INSERT INTO sends (customer, channel, at, held) SELECT c, ch, a, h FROM unnest($1::text[], "
    "$2::text[], $3::bigint[], $4::boolean[]) WITH ORDINALITY AS u(c, ch, a, h, n) ORDER BY n"};
constexpr Statement kInsertTimeline{
    "insert_timeline",
    "INSERT INTO timeline (customer, at, kind, data) SELECT c, a, k, d FROM unnest($1::text[], "
    "$2::bigint[], $3::text[], $4::text[]) WITH ORDINALITY AS u(c, a, k, d, n) ORDER BY n"};
constexpr Statement kAddRouting{
    "add_routing",
    "INSERT INTO routing (kind, key, shard, value) SELECT k, y, pg_backend_pid() % 16, v FROM "
    "unnest($1::text[], $2::text[], $3::bigint[]) AS u(k, y, v) "
    "ON CONFLICT (kind, key, shard) DO UPDATE SET value = routing.value + excluded.value"};
constexpr Statement kAddCounters{
    "add_counters",
    "INSERT INTO counters (journey, name, shard, value) SELECT j, n, pg_backend_pid() % 16, v "
    "FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(j, n, v) "
    "ON CONFLICT (journey, name, shard) DO UPDATE SET value = counters.value + excluded.value"};

}  // namespace

void WriteOutbox(Tx& tx, const Batch& batch, std::vector<size_t>* inserted) {
  inserted->clear();
  if (!batch.outbox.empty()) {
    // A repeated id: the first one counts. By id, so concurrent commits lock rows in one order.
    std::map<std::string, size_t> first;
    for (size_t i = 0; i < batch.outbox.size(); ++i) first.try_emplace(batch.outbox[i].id, i);
    ArrayLiteral ids, customers, journeys, channels, recipients, payloads, created, not_before,
        attempts;
    for (const auto& [id, i] : first) {
      const OutboxMessage* m = &batch.outbox[i];
      ids.Add(id);
      customers.Add(m->customer);
      journeys.Add(m->journey);
      channels.Add(m->channel);
      recipients.Add(m->recipient);
      payloads.Add(m->payload.dump());
      created.Add(Secs(m->created_at));
      not_before.Add(Secs(m->not_before));
      attempts.Add(m->attempts);
    }
    pqxx::result added =
        tx.Exec(kInsertMessages, ids.str(), customers.str(), journeys.str(), channels.str(),
                recipients.str(), payloads.str(), created.str(), not_before.str(), attempts.str());
    for (const auto& row : added) inserted->push_back(first.at(Text(row[0])));
    std::sort(inserted->begin(), inserted->end());
  }
  if (!batch.cancel_messages.empty()) {
    ArrayLiteral ids;
    for (const auto& id : batch.cancel_messages) ids.Add(id);
    tx.Exec(kCancelMessages, ids.str());
  }
}

void WriteHistory(Tx& tx, const Batch& batch) {
  if (!batch.sends.empty()) {
    ArrayLiteral customers, channels, ats, held;
    for (const auto& s : batch.sends) {
      customers.Add(s.customer);
      channels.Add(s.send.channel);
      ats.Add(Secs(s.send.at));
      held.AddBool(s.send.held);
    }
    tx.Exec(kInsertSends, customers.str(), channels.str(), ats.str(), held.str());
  }
  if (!batch.timeline.empty()) {
    ArrayLiteral customers, ats, kinds, data;
    for (const auto& e : batch.timeline) {
      customers.Add(e.customer);
      ats.Add(Secs(e.at));
      kinds.Add(e.kind);
      data.Add(e.data.dump());
    }
    tx.Exec(kInsertTimeline, customers.str(), ats.str(), kinds.str(), data.str());
  }
}

void WriteCounters(Tx& tx, const Batch& batch) {
  if (!batch.routing.round_robin.empty() || !batch.routing.load.empty()) {
    ArrayLiteral kinds, keys, values;
    for (const auto& [kind, deltas] : {std::pair{"round_robin", &batch.routing.round_robin},
                                       std::pair{"load", &batch.routing.load}}) {
      for (const auto& [key, n] : *deltas) {
        kinds.Add(kind);
        keys.Add(key);
        values.Add(n);
      }
    }
    tx.Exec(kAddRouting, kinds.str(), keys.str(), values.str());
  }
  if (!batch.counters.empty()) {
    std::map<std::pair<std::string, std::string>, int64_t>
        sums;  // one row per (journey, name) in the statement
    for (const auto& c : batch.counters) sums[{c.journey, c.name}] += c.delta;
    ArrayLiteral journeys, names, values;
    for (const auto& [key, n] : sums) {
      journeys.Add(key.first);
      names.Add(key.second);
      values.Add(n);
    }
    tx.Exec(kAddCounters, journeys.str(), names.str(), values.str());
  }
}

}  // namespace pg_internal

namespace {

constexpr Statement kGetMessage{"get_message",
                                "SELECT " ITINERA_PG_OUTBOX_COLUMNS "FROM outbox WHERE id = $1"};
// FOR UPDATE SKIP LOCKED: daemons claiming at once split the due messages between them instead
// of queueing on (or both taking) the same rows. The old not_before comes back for the order.
constexpr Statement kClaimAll{
    "claim_all",
    "WITH due AS (SELECT id, not_before FROM outbox WHERE status = 'pending' AND not_before <= "
    "$1 ORDER BY not_before, id LIMIT $2 FOR UPDATE SKIP LOCKED) "
    "UPDATE outbox AS o SET attempts = o.attempts + 1, not_before = $3 FROM due "
    "WHERE o.id = due.id RETURNING o.id, o.customer, o.journey, o.channel, o.recipient, "
    "o.payload, o.status, o.created_at, o.not_before, o.attempts, o.last_error, o.sent_at, "
    "due.not_before"};
constexpr Statement kClaimLane{
    "claim_lane",
    "WITH due AS (SELECT id, not_before FROM outbox WHERE status = 'pending' AND channel = $4 "
    "AND not_before <= $1 ORDER BY not_before, id LIMIT $2 FOR UPDATE SKIP LOCKED) "
    "UPDATE outbox AS o SET attempts = o.attempts + 1, not_before = $3 FROM due "
    "WHERE o.id = due.id RETURNING o.id, o.customer, o.journey, o.channel, o.recipient, "
    "o.payload, o.status, o.created_at, o.not_before, o.attempts, o.last_error, o.sent_at, "
    "due.not_before"};
constexpr Statement kMarkSent{"mark_sent",
                              "UPDATE outbox SET status = 'sent', sent_at = $1 WHERE id = $2"};
constexpr Statement kMarkRetry{"mark_retry",
                               "UPDATE outbox SET not_before = $1, last_error = $2 "
                               "WHERE id = $3 AND status = 'pending'"};
constexpr Statement kMarkDead{"mark_dead",
                              "UPDATE outbox SET status = 'dead', last_error = $1 "
                              "WHERE id = $2 AND status = 'pending'"};
constexpr Statement kMarkCancelled{
    "mark_cancelled",
    "UPDATE outbox SET status = 'cancelled', last_error = $1 WHERE id = $2 AND status = "
    "'pending'"};
constexpr Statement kMessageExists{"message_exists", "SELECT 1 FROM outbox WHERE id = $1"};
// A pass's outcomes with distinct ids ($2: "sent", "retry", "dead" or "cancelled"), each applied
// as its Mark* statement above would apply it.
constexpr Statement kRecordOutcomes{
    "record_outcomes",
    "UPDATE outbox AS o SET "
    "status = CASE u.k WHEN 'retry' THEN o.status ELSE u.k END, "
    "sent_at = CASE u.k WHEN 'sent' THEN u.a ELSE o.sent_at END, "
    "not_before = CASE u.k WHEN 'retry' THEN u.a ELSE o.not_before END, "
    "last_error = CASE u.k WHEN 'sent' THEN o.last_error ELSE u.e END "
    "FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[]) AS u(i, k, a, e) "
    "WHERE o.id = u.i AND (u.k = 'sent' OR o.status = 'pending')"};
constexpr Statement kCountMessages{"count_messages",
                                   "SELECT COUNT(*) FROM outbox WHERE id = ANY($1::text[])"};
constexpr Statement kListMessages{"list_messages",
                                  "SELECT " ITINERA_PG_OUTBOX_COLUMNS
                                  "FROM outbox WHERE status = $1 ORDER BY created_at, id "
                                  "LIMIT $2"};

Error NotFound(const std::string& id) { return Error{"not_found", "message " + id + " not found"}; }

// Runs a one-row outbox update. When it changed nothing: "not_found" if no message has the id;
// otherwise the message was decided already (an update limited to pending messages) and the
// first outcome stands.
template <typename... Args>
Status UpdateMessage(pg_internal::Database& db, const std::string& id, const Statement& statement,
                     const Args&... args) {
  return db.Run(Mode::kWrite, [&](Tx& tx) -> Status {
    if (tx.Exec(statement, args...).affected_rows() > 0) return Status::Ok();
    if (tx.Exec(kMessageExists, id).empty()) return NotFound(id);
    return Status::Ok();
  });
}

}  // namespace

Result<std::optional<OutboxMessage>> PgStore::GetMessage(const std::string& id) {
  using Found = std::optional<OutboxMessage>;
  return impl_->db.Fetch<Found>(Mode::kRead, [&](Tx& tx, Found& out) -> Status {
    pqxx::result r = tx.Exec(kGetMessage, id);
    if (r.empty()) return Status::Ok();
    auto m = pg_internal::ReadOutboxRow(r[0]);
    if (!m.ok()) return m.error();
    out = std::move(*m);
    return Status::Ok();
  });
}

Result<std::vector<OutboxMessage>> PgStore::ClaimDue(Time now, int limit, Seconds lease,
                                                     const std::string& channel) {
  return impl_->db.Fetch<std::vector<OutboxMessage>>(
      Mode::kWrite, [&](Tx& tx, auto& out) -> Status {
        pqxx::result r =
            channel.empty()
                ? tx.Exec(kClaimAll, Secs(now), Limit(limit), Secs(now + lease))
                : tx.Exec(kClaimLane, Secs(now), Limit(limit), Secs(now + lease), channel);
        std::vector<std::pair<int64_t, OutboxMessage>> claimed;  // by the not_before they had
        for (const auto& row : r) {
          auto m = pg_internal::ReadOutboxRow(row);
          if (!m.ok()) return m.error();
          claimed.emplace_back(Int(row[12]), std::move(*m));
        }
        std::sort(claimed.begin(), claimed.end(), [](const auto& a, const auto& b) {
          return std::tie(a.first, a.second.id) < std::tie(b.first, b.second.id);
        });
        out.clear();
        for (auto& [due, m] : claimed) out.push_back(std::move(m));
        return Status::Ok();
      });
}

Status PgStore::MarkSent(const std::string& id, Time at) {
  return UpdateMessage(impl_->db, id, kMarkSent, Secs(at), id);
}

Status PgStore::MarkRetry(const std::string& id, Time at, const std::string& error) {
  return UpdateMessage(impl_->db, id, kMarkRetry, Secs(at), error, id);
}

Status PgStore::MarkDead(const std::string& id, const std::string& error) {
  return UpdateMessage(impl_->db, id, kMarkDead, error, id);
}

Status PgStore::MarkCancelled(const std::string& id, const std::string& reason) {
  return UpdateMessage(impl_->db, id, kMarkCancelled, reason, id);
}

Status PgStore::RecordOutcomes(const std::vector<OutboxOutcome>& outcomes) {
  if (outcomes.empty()) return Status::Ok();
  // One statement per round; round n holds the n-th outcome of each id, so an id repeated in
  // the call is updated in order, and each statement sees every id at most once.
  std::vector<std::vector<const OutboxOutcome*>> rounds;
  std::map<std::string, size_t> seen;
  for (const OutboxOutcome& o : outcomes) {
    size_t round = seen[o.id]++;
    if (round == rounds.size()) rounds.emplace_back();
    rounds[round].push_back(&o);
  }
  return impl_->db.Run(Mode::kWrite, [&](Tx& tx) -> Status {
    for (const auto& round : rounds) {
      ArrayLiteral ids, kinds, ats, errors;
      for (const OutboxOutcome* o : round) {
        const char* kind = "";
        switch (o->kind) {
          case OutboxOutcome::kSent:
            kind = "sent";
            break;
          case OutboxOutcome::kRetry:
            kind = "retry";
            break;
          case OutboxOutcome::kDead:
            kind = "dead";
            break;
          case OutboxOutcome::kCancelled:
            kind = "cancelled";
            break;
        }
        if (*kind == '\0') return Error{"invalid_argument", "unknown outcome for " + o->id};
        ids.Add(o->id);
        kinds.Add(kind);
        ats.Add(Secs(o->at));
        errors.Add(o->error);
      }
      const std::string id_list = ids.str();
      size_t changed =
          tx.Exec(kRecordOutcomes, id_list, kinds.str(), ats.str(), errors.str()).affected_rows();
      if (changed == round.size()) continue;
      // Some changed nothing: decided already (the first outcome stands), or unknown.
      if (Int(tx.Exec(kCountMessages, id_list)[0][0]) == static_cast<int64_t>(round.size())) {
        continue;
      }
      for (const OutboxOutcome* o : round) {
        if (tx.Exec(kMessageExists, o->id).empty()) return NotFound(o->id);
      }
    }
    return Status::Ok();
  });
}

Result<std::vector<OutboxMessage>> PgStore::ListMessages(MessageStatus status, int limit) {
  return impl_->db.Fetch<std::vector<OutboxMessage>>(Mode::kRead, [&](Tx& tx, auto& out) -> Status {
    for (const auto& row :
         tx.Exec(kListMessages, std::string(MessageStatusName(status)), Limit(limit))) {
      auto m = pg_internal::ReadOutboxRow(row);
      if (!m.ok()) return m.error();
      out.push_back(std::move(*m));
    }
    return Status::Ok();
  });
}

// ---- sends and routing ----

namespace {

constexpr Statement kRecentSends{"recent_sends",
                                 "SELECT channel, at, held FROM sends WHERE customer = $1 AND at "
                                 ">= $2 ORDER BY at, seq"};
constexpr Statement kGetRouting{"get_routing",
                                "SELECT kind, key, SUM(value)::bigint FROM routing "
                                "GROUP BY kind, key"};

}  // namespace

Result<std::vector<SendRecord>> PgStore::RecentSends(const std::string& customer, Time since) {
  return impl_->db.Fetch<std::vector<SendRecord>>(Mode::kRead, [&](Tx& tx, auto& out) -> Status {
    for (const auto& row : tx.Exec(kRecentSends, customer, Secs(since))) {
      out.push_back({Text(row[0]), FromSecs(Int(row[1])), row[2].as<bool>()});
    }
    return Status::Ok();
  });
}

Result<RoutingSnapshot> PgStore::GetRouting() {
  return impl_->db.Fetch<RoutingSnapshot>(Mode::kRead, [&](Tx& tx, auto& out) -> Status {
    for (const auto& row : tx.Exec(kGetRouting)) {
      (Text(row[0]) == "round_robin" ? out.round_robin : out.load)[Text(row[1])] = Int(row[2]);
    }
    return Status::Ok();
  });
}

// ---- timeline and counters ----

namespace {

constexpr Statement kTimeline{"timeline",
                              "SELECT seq, at, kind, data FROM timeline WHERE customer = $1 "
                              "ORDER BY at DESC, seq DESC LIMIT $2"};
constexpr Statement kJourneyCounters{"journey_counters",
                                     "SELECT name, SUM(value)::bigint FROM counters WHERE "
                                     "journey = $1 GROUP BY name"};
constexpr Statement kCountAll{"count_all",
                              "SELECT channel, status, COUNT(*) FROM outbox "
                              "GROUP BY channel, status"};
constexpr Statement kCountJourney{"count_journey",
                                  "SELECT channel, status, COUNT(*) FROM outbox WHERE journey = "
                                  "$1 GROUP BY channel, status"};

}  // namespace

Result<std::vector<TimelineEntry>> PgStore::Timeline(const std::string& customer, int limit) {
  return impl_->db.Fetch<std::vector<TimelineEntry>>(Mode::kRead, [&](Tx& tx, auto& out) -> Status {
    for (const auto& row : tx.Exec(kTimeline, customer, Limit(limit))) {
      auto data = ParseJson(row[3].c_str());
      if (!data.ok()) return data.error();
      out.push_back({Int(row[0]), customer, FromSecs(Int(row[1])), Text(row[2]), std::move(*data)});
    }
    return Status::Ok();
  });
}

Result<std::map<std::string, int64_t>> PgStore::JourneyCounters(const std::string& journey) {
  return impl_->db.Fetch<std::map<std::string, int64_t>>(
      Mode::kRead, [&](Tx& tx, auto& out) -> Status {
        for (const auto& row : tx.Exec(kJourneyCounters, journey)) out[Text(row[0])] = Int(row[1]);
        return Status::Ok();
      });
}

Result<std::map<std::string, int64_t>> PgStore::MessageCounts(const std::string& journey) {
  return impl_->db.Fetch<std::map<std::string, int64_t>>(
      Mode::kRead, [&](Tx& tx, auto& out) -> Status {
        // Two statements rather than "journey = $1 OR $1 = ''", so the per-journey one can use the
        // outbox_journey index.
        pqxx::result r = journey.empty() ? tx.Exec(kCountAll) : tx.Exec(kCountJourney, journey);
        for (const auto& row : r) out[Text(row[0]) + "." + Text(row[1])] = Int(row[2]);
        return Status::Ok();
      });
}

// ---- journey versions ----

namespace {

constexpr Statement kSaveVersion{
    "save_version",
    "INSERT INTO journey_versions (journey, version, fingerprint, file, source, loaded_at) "
    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (journey, version) DO NOTHING"};
constexpr Statement kVersionFingerprint{
    "version_fingerprint",
    "SELECT fingerprint FROM journey_versions WHERE journey = $1 AND version = $2"};
constexpr Statement kListVersions{"list_versions",
                                  "SELECT journey, version, fingerprint, file, source, loaded_at "
                                  "FROM journey_versions ORDER BY journey, version"};

}  // namespace

Status PgStore::SaveJourneyVersion(const JourneyVersion& v) {
  if (v.journey.empty()) return Error{"invalid_argument", "a journey version without a journey"};
  return impl_->db.Run(Mode::kWrite, [&](Tx& tx) -> Status {
    if (tx.Exec(kSaveVersion, v.journey, v.version, v.fingerprint, v.file, v.source,
                Secs(v.loaded_at))
            .affected_rows() > 0) {
      return Status::Ok();
    }
    // Recorded before (possibly by another daemon a moment ago): the same content is a no-op.
    pqxx::result r = tx.Exec(kVersionFingerprint, v.journey, v.version);
    if (!r.empty() && Text(r[0][0]) == v.fingerprint) return Status::Ok();
    return Error{"conflict", "journey " + v.journey + " version " + std::to_string(v.version) +
                                 " was loaded before with other content"};
  });
}

Result<std::vector<JourneyVersion>> PgStore::ListJourneyVersions() {
  return impl_->db.Fetch<std::vector<JourneyVersion>>(
      Mode::kRead, [&](Tx& tx, auto& out) -> Status {
        for (const auto& row : tx.Exec(kListVersions)) {
          out.push_back({Text(row[0]), Int(row[1]), Text(row[2]), Text(row[3]), Text(row[4]),
                         FromSecs(Int(row[5]))});
        }
        return Status::Ok();
      });
}

#undef ITINERA_PG_OUTBOX_COLUMNS

}  // namespace itinera::orch
