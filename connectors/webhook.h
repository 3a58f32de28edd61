// Posts signed JSON to webhook endpoints (a CRM, a task queue), and checks such signatures.
//
// Each Send is one POST of Message::text_body, already JSON and sent byte for byte, to
// Message::to with "Content-Type: application/json" and "Idempotency-Key: <Message::id>". When
// Message::signing_secret is non-empty the request also carries, as Stripe does,
//   Itinera-Signature: t=<unix seconds>,v1=<lowercase hex HMAC-SHA256(secret, "<t>.<body>")>
// so a receiver can check that the body came from us, unaltered, recently (the timestamp bounds
// replays; the Idempotency-Key drops retried duplicates). The timestamp comes from the injected
// clock, never from the system clock directly. provider_id is the message id (a webhook answers
// with no agreed id). Outcomes follow HttpPoster (connectors/http_post.h). Secrets never appear
// in errors. Thread-safe if the clock is: Send is serialised on one connection.
#ifndef ITINERA_CONNECTORS_WEBHOOK_H_
#define ITINERA_CONNECTORS_WEBHOOK_H_

#include <functional>
#include <string>
#include <string_view>
#include <utility>

#include "connectors/connector.h"
#include "connectors/http_post.h"
#include "util/time.h"

namespace itinera::connectors {

inline constexpr char kWebhookSignatureHeader[] = "Itinera-Signature";
inline constexpr Seconds kWebhookSignatureTolerance{300};

// The Itinera-Signature header value for `body` signed at `t`: "t=1795341600,v1=<64 hex>".
// Empty only if HMAC fails (OpenSSL error). Pure.
std::string WebhookSignature(std::string_view secret, Time t, std::string_view body);

// True when `header` (an Itinera-Signature value) carries exactly one t=, a v1= matching
// `body` under `secret` (several v1= are allowed, for key rotation), and t within `tolerance`
// of `now` either way. Compares MACs in constant time. Pure; for receivers and tests.
bool VerifyWebhookSignature(std::string_view header, std::string_view secret, std::string_view body,
                            Time now, Seconds tolerance = kWebhookSignatureTolerance);

class WebhookConnector final : public Connector {
 public:
  // `clock` stamps signatures (the daemon passes its Clock's Now; tests a fixed time).
  explicit WebhookConnector(std::function<Time()> clock, HttpOptions options = {})
      : clock_(std::move(clock)), poster_(std::move(options)) {}

  // kPermanent without sending for an empty id or URL, or a body that is not JSON.
  Delivery Send(const Message& message) override;

 private:
  std::function<Time()> clock_;
  HttpPoster poster_;
};

}  // namespace itinera::connectors

#endif  // ITINERA_CONNECTORS_WEBHOOK_H_
