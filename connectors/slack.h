// Posts chat messages (sales alerts) to Slack incoming webhooks.
//
// Each Send is one POST of {"text": ...} (application/json, UTF-8) to Message::to, the webhook
// URL, with "Idempotency-Key: <Message::id>". The text is Message::text_body as Slack mrkdwn;
// a non-empty Message::subject becomes a bold first line ("*subject*\n" + text), with Slack's
// control characters &, < and > escaped in it. Slack answers "ok" and no id, so provider_id is
// the message id. Outcomes follow HttpPoster (connectors/http_post.h): Slack's 400/403/404/410
// (bad payload, revoked or archived channel) are permanent, 429 and 5xx transient. The webhook
// URL is a secret and never appears in errors. Thread-safe: Send is serialised on one connection.
#ifndef ITINERA_CONNECTORS_SLACK_H_
#define ITINERA_CONNECTORS_SLACK_H_

#include <string>
#include <string_view>
#include <utility>

#include "connectors/connector.h"
#include "connectors/http_post.h"

namespace itinera::connectors {

// The JSON body Send posts for `message`. Pure.
std::string SlackPayload(const Message& message);

class SlackConnector final : public Connector {
 public:
  explicit SlackConnector(HttpOptions options = {}) : poster_(std::move(options)) {}

  // kPermanent without sending for an empty id, URL or text.
  Delivery Send(const Message& message) override;

 private:
  HttpPoster poster_;
};

}  // namespace itinera::connectors

#endif  // ITINERA_CONNECTORS_SLACK_H_
