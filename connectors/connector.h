// The connector seam: every outbound message (email, SMS) leaves Itinera through a Connector.
//
// Channels: email (SMTP, Maildir), SMS (Twilio-compatible HTTP, a file), chat (a Slack incoming
// webhook, for sales alerts) and webhook (a signed JSON POST).
//
// A Connector turns one Message into one delivery attempt and reports the Outcome; it never
// retries by itself — the dispatcher owns retries with backoff and the dead-letter state (see
// DESIGN.md, "Guarantees"). Message::id is the idempotency key: connectors carry it to the
// provider (SMTP: as Message-ID; Maildir and SMS files: as the dedup key), so a retry after a
// crash is recognisable. Implementations document their own thread-safety; the FakeConnector
// below is thread-safe.
#ifndef ITINERA_CONNECTORS_CONNECTOR_H_
#define ITINERA_CONNECTORS_CONNECTOR_H_

#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "util/time.h"

namespace itinera::connectors {

enum class Channel { kEmail, kSms, kChat, kWebhook };

// One message, fully rendered. `to` is "addr@example.com" or "Display Name <addr@...>" (email),
// a phone number (SMS), or the endpoint URL (chat: the incoming-webhook URL; webhook).
// Header-bearing fields must not contain CR or LF; the MIME builder rejects them (header injection)
// rather than sending.
struct Message {
  std::string id;  // idempotency key, stable across retries
  Channel channel = Channel::kEmail;
  std::string to;
  std::string from;
  std::string subject;    // email only
  std::string html_body;  // email only; may be empty for text-only mail
  std::string text_body;  // email: derived from html_body when empty; SMS, chat: the text;
                          // webhook: the JSON body
  Time date{};            // when the message was created; fixed across retries
  std::string list_unsubscribe_url;         // adds List-Unsubscribe: <url> when non-empty
  bool list_unsubscribe_one_click = false;  // adds List-Unsubscribe-Post (RFC 8058)
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers, name -> value
  std::string signing_secret;  // webhook: the HMAC-SHA256 key of the signature; empty: unsigned.
                               // Built at dispatch from the configuration; never stored.
};

struct Delivery {
  enum Outcome { kSent, kTransient, kPermanent };
  Outcome outcome = kSent;
  std::string provider_id;  // what the provider calls it (queue id, file name, Message-ID)
  std::string error;        // for people; empty when kSent
  std::optional<Seconds> retry_after;  // kTransient: the provider asked us to wait this long
};

class Connector {
 public:
  virtual ~Connector() = default;
  // One attempt. Never throws; never blocks longer than the connector's configured timeouts.
  virtual Delivery Send(const Message& message) = 0;
};

// An in-memory connector for tests of callers: records every message it is given and answers
// with scripted outcomes (FIFO), then with kSent. Thread-safe.
class FakeConnector final : public Connector {
 public:
  Delivery Send(const Message& message) override {
    std::lock_guard<std::mutex> lock(mu_);
    sent_.push_back(message);
    if (!script_.empty()) {
      Delivery d = std::move(script_.front());
      script_.pop_front();
      return d;
    }
    return Delivery{Delivery::kSent, "fake-" + std::to_string(sent_.size()), ""};
  }

  // The next Send returns `delivery` (queued after earlier scripted answers).
  void Script(Delivery delivery) {
    std::lock_guard<std::mutex> lock(mu_);
    script_.push_back(std::move(delivery));
  }

  std::vector<Message> sent() const {
    std::lock_guard<std::mutex> lock(mu_);
    return sent_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<Message> sent_;
  std::deque<Delivery> script_;
};

}  // namespace itinera::connectors

#endif  // ITINERA_CONNECTORS_CONNECTOR_H_
