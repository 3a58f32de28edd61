// PgStore::LoadCustomers: the read of a whole batch of customers in up to four statements
// (profiles, sends, states, pending events), each over an array of ids, instead of up to four
// round trips per customer.
#include <map>
#include <string>
#include <vector>

#include "orchestrator/pg_internal.h"

namespace itinera::orch {

using pg_internal::ArrayLiteral;
using pg_internal::FromSecs;
using pg_internal::Int;
using pg_internal::Mode;
using pg_internal::ParseJson;
using pg_internal::Secs;
using pg_internal::Statement;
using pg_internal::Text;
using pg_internal::Tx;

namespace {

constexpr Statement kLoadProfiles{
    "load_profiles", "SELECT customer, body FROM profiles WHERE customer = ANY($1::text[])"};
constexpr Statement kLoadSends{"load_sends",
                               "SELECT customer, channel, at, held FROM sends "
                               "WHERE customer = ANY($1::text[]) AND at >= $2 "
                               "ORDER BY customer, at, seq"};
constexpr Statement kLoadStates{"load_states",
                                "SELECT customer, journey, version, body FROM states "
                                "WHERE customer = ANY($1::text[]) ORDER BY customer, journey"};
constexpr Statement kLoadPending{
    "load_pending",
    "SELECT customer, seq, event_id, at, body FROM ("
    "SELECT customer, seq, event_id, at, body, "
    "row_number() OVER (PARTITION BY customer ORDER BY seq) AS n "
    "FROM events WHERE customer = ANY($1::text[]) AND NOT processed) pending "
    "WHERE n <= $2 ORDER BY customer, seq"};

}  // namespace

Result<std::map<std::string, CustomerSnapshot>> PgStore::LoadCustomers(
    const std::vector<std::string>& customers, const CustomerReads& reads) {
  using Snapshots = std::map<std::string, CustomerSnapshot>;
  if (customers.empty()) return Snapshots();
  ArrayLiteral ids;
  for (const std::string& c : customers) ids.Add(c);
  const std::string list = ids.str();
  return impl_->db.Fetch<Snapshots>(Mode::kRead, [&](Tx& tx, Snapshots& out) -> Status {
    for (const std::string& c : customers) out[c];
    for (const auto& row : tx.Exec(kLoadProfiles, list)) {
      auto body = ParseJson(row[1].c_str());
      if (!body.ok()) return body.error();
      out[Text(row[0])].profile = std::move(*body);
    }
    for (const auto& row : tx.Exec(kLoadSends, list, Secs(reads.sends_since))) {
      out[Text(row[0])].sends.push_back({Text(row[1]), FromSecs(Int(row[2])), row[3].as<bool>()});
    }
    if (reads.states) {
      for (const auto& row : tx.Exec(kLoadStates, list)) {
        auto body = ParseJson(row[3].c_str());
        if (!body.ok()) return body.error();
        auto state = JourneyStateFromJson(*body);
        if (!state.ok()) return Error{"corrupt", "stored state: " + state.error().message};
        const std::string customer = Text(row[0]);
        out[customer].states.push_back({customer, Text(row[1]), std::move(*state), Int(row[2])});
      }
    }
    if (reads.events_per_customer <= 0) return Status::Ok();
    for (const auto& row : tx.Exec(kLoadPending, list, int64_t{reads.events_per_customer})) {
      auto body = ParseJson(row[4].c_str());
      if (!body.ok()) return body.error();
      const std::string customer = Text(row[0]);
      out[customer].pending.push_back(
          {Int(row[1]), Text(row[2]), customer, FromSecs(Int(row[3])), std::move(*body), false});
    }
    return Status::Ok();
  });
}

}  // namespace itinera::orch
