// Sends SMS through a Twilio-compatible Messages API over HTTP(S).
//
// Each Send is one POST to the configured URL (Twilio: https://api.twilio.com/2010-04-01/
// Accounts/<sid>/Messages.json) with the form body To=..&From=..&Body=.. (UTF-8, percent-encoded),
// HTTP basic auth account:token, and "Idempotency-Key: <Message::id>" so a provider that honours
// it drops a retried duplicate. The sender is Message::from when set, else the configured `from`.
// provider_id is the "sid" of the JSON answer, or the message id when the answer has none.
// Outcomes follow HttpPoster (connectors/http_post.h): 2xx sent; 408, 429, 5xx and network
// failures transient; other 4xx (bad number, bad credentials) and 3xx permanent. Never retries;
// the token is never written to errors. Thread-safe: Send is serialised on one connection.
#ifndef ITINERA_CONNECTORS_SMS_HTTP_H_
#define ITINERA_CONNECTORS_SMS_HTTP_H_

#include <memory>
#include <string>

#include "connectors/connector.h"
#include "connectors/http_post.h"
#include "util/result.h"

namespace itinera::connectors {

struct TwilioSmsConfig {
  std::string url;      // the Messages endpoint, http:// or https://
  std::string account;  // basic-auth user (Twilio: the account SID)
  std::string token;    // basic-auth password (Twilio: the auth token); never logged
  std::string from;     // default sender: a number or an alphanumeric sender id
  HttpOptions http;     // timeouts, CA bundle
};

class TwilioSmsConnector final : public Connector {
 public:
  // Fails ("invalid_sms_config") when the URL is not http(s):// or account, token or from is
  // empty, or the account contains ':'.
  static Result<std::unique_ptr<TwilioSmsConnector>> Create(TwilioSmsConfig config);

  // kPermanent without sending for an empty id, recipient or body.
  Delivery Send(const Message& message) override;

 private:
  explicit TwilioSmsConnector(TwilioSmsConfig config);

  TwilioSmsConfig config_;
  HttpPoster poster_;
};

}  // namespace itinera::connectors

#endif  // ITINERA_CONNECTORS_SMS_HTTP_H_
