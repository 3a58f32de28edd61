// Who and where: sales teams, reps and webhook endpoints, as configured in itinera.toml.
//
// Plain data read once from the configuration; the engine reads it to route leads and address
// alerts, the checker to know which names exist. Immutable after load; safe to share.
#ifndef ITINERA_ORCHESTRATOR_DIRECTORY_H_
#define ITINERA_ORCHESTRATOR_DIRECTORY_H_

#include <map>
#include <string>
#include <vector>

namespace itinera::orch {

struct Rep {
  std::string id;  // "rep_anna"
  std::string name;
  std::string email;
  std::string phone;
  std::string alert_via = "email";  // slack | email | sms | webhook
  std::string slack_webhook;        // for alert_via = "slack"
  std::string webhook;              // for alert_via = "webhook": a [webhooks.<name>] entry
  std::string territory;            // for `assign ... by territory`
  std::string team;
};

struct Webhook {
  std::string name;
  std::string url;
  std::string secret;  // HMAC-SHA256 key for the signature header; empty: unsigned
};

struct Directory {
  std::map<std::string, std::vector<Rep>> teams;  // team name -> reps, in configured order
  std::map<std::string, Webhook> webhooks;

  // The rep with this id in any team, or nullptr.
  const Rep* FindRep(const std::string& id) const {
    for (const auto& [name, reps] : teams)
      for (const auto& r : reps)
        if (r.id == id) return &r;
    return nullptr;
  }
};

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_DIRECTORY_H_
