// Sends email over SMTP through libcurl (the only file in Itinera that uses libcurl).
//
// Each Send renders the Message with BuildMime (Message-ID = the idempotency key) and runs one
// SMTP transaction. The connector keeps one CURL easy handle for its lifetime, so libcurl reuses
// the open connection between messages. Outcomes: 2xx -> kSent; 4xx replies, connection
// failures and timeouts -> kTransient; 5xx replies -> kPermanent (dead letter); a rejected
// login (535) is kTransient, since the configuration and not the message is at fault. Passwords
// are never written to errors or logs (protocol traces exclude everything we send).
//
// URLs: "smtp://host[:port]" (plain; STARTTLS if `starttls` is set or the URL ends in
// "?starttls=1"), "smtps://host[:port]" (implicit TLS). Not thread-safe per se: Send takes an
// internal mutex, so concurrent callers are serialised; use one connector per worker for
// parallelism.
#ifndef ITINERA_CONNECTORS_SMTP_H_
#define ITINERA_CONNECTORS_SMTP_H_

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "connectors/connector.h"
#include "util/result.h"

namespace itinera::connectors {

struct SmtpConfig {
  std::string url;          // smtp://host:25, smtp://host:587?starttls=1, smtps://host:465
  bool starttls = false;    // require STARTTLS on smtp:// (also set by "?starttls=1")
  std::string username;     // AUTH when non-empty
  std::string password;     // never logged
  std::string helo_domain;  // name sent in EHLO; libcurl's default when empty
  std::string ca_file;      // CA bundle for TLS; system default when empty
  bool verify_peer = true;  // TLS certificate and host name checks
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds total_timeout{60000};  // whole transaction
};

// Validates the URL and splits off "?starttls=1"; the returned config is what the connector uses.
Result<SmtpConfig> NormalizeSmtpConfig(SmtpConfig config);

class SmtpConnector final : public Connector {
 public:
  // Fails on an invalid URL or when libcurl cannot start.
  static Result<std::unique_ptr<SmtpConnector>> Create(SmtpConfig config);
  ~SmtpConnector() override;
  SmtpConnector(const SmtpConnector&) = delete;
  SmtpConnector& operator=(const SmtpConnector&) = delete;

  // provider_id is the server's final reply ("250 2.0.0 Ok: queued as ...") or, if it gives
  // none, the Message-ID.
  Delivery Send(const Message& message) override;

 private:
  SmtpConnector(SmtpConfig config, void* curl);

  SmtpConfig config_;
  std::mutex mu_;
  void* curl_;  // CURL*, kept to reuse the connection; only smtp.cc knows the type
};

}  // namespace itinera::connectors

#endif  // ITINERA_CONNECTORS_SMTP_H_
