// Sends email over SMTP with Itinera's own client: a TCP (or TLS, through OpenSSL) connection
// kept open between messages, commands pipelined where the server allows it.
//
// Each Send renders the Message with BuildMime (Message-ID = the idempotency key) and runs one
// SMTP transaction. When the server offers PIPELINING (RFC 2920), MAIL FROM, RCPT TO and DATA go
// out in one write and their replies are read together, and the message and its final dot go
// out in one more: two round trips per message where a client in lockstep needs four. Without
// PIPELINING the client waits for each reply in turn.
//
// Outcomes: 2xx -> kSent; 4xx replies, connection failures and timeouts -> kTransient; 5xx
// replies to MAIL, RCPT, DATA or the message -> kPermanent (dead letter), except 530 to MAIL
// (authentication required) and 552 to RCPT (a full mailbox, RFC 5321 4.5.3.1.10), which are
// kTransient. Failures while setting up the session (greeting, EHLO, STARTTLS, a rejected login
// such as 535) are kTransient, since the configuration and not the message is at fault. A
// connection the server closed while it was idle (silently, or with a 421) is reopened once,
// transparently, as long as nothing of the message was answered yet. Host names are resolved
// with getaddrinfo, which the timeouts do not bound.
// Passwords are never written to errors or logs: errors quote the server's replies only.
//
// URLs: "smtp://host[:port]" (plain, port 25; STARTTLS if `starttls` is set or the URL ends in
// "?starttls=1"), "smtps://host[:port]" (implicit TLS, port 465). Host names, IPv4 and
// bracketed IPv6 literals. Not thread-safe per se: Send takes an internal mutex, so concurrent
// callers are serialised; use one connector per worker for parallelism.
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
  std::string username;     // AUTH (PLAIN, else LOGIN) when non-empty
  std::string password;     // never logged
  std::string helo_domain;  // name sent in EHLO; the machine's host name when empty
  std::string ca_file;      // CA bundle (PEM) for TLS; the system's trust store when empty
  bool verify_peer = true;  // TLS certificate and host name checks
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds total_timeout{60000};  // whole transaction
};

// Validates the URL and splits off "?starttls=1"; the returned config is what the connector uses
// (its url without the query).
Result<SmtpConfig> NormalizeSmtpConfig(SmtpConfig config);

class SmtpConnector final : public Connector {
 public:
  // Fails on an invalid URL or when TLS cannot be set up (an unreadable ca_file).
  static Result<std::unique_ptr<SmtpConnector>> Create(SmtpConfig config);
  ~SmtpConnector() override;  // says QUIT on an open connection
  SmtpConnector(const SmtpConnector&) = delete;
  SmtpConnector& operator=(const SmtpConnector&) = delete;

  // provider_id is the server's final reply ("250 2.0.0 Ok: queued as ...") or, if it gives
  // none, the Message-ID.
  Delivery Send(const Message& message) override;

 private:
  class Session;
  explicit SmtpConnector(std::unique_ptr<Session> session);

  std::mutex mu_;
  std::unique_ptr<Session> session_;  // the connection and what its server offers
};

}  // namespace itinera::connectors

#endif  // ITINERA_CONNECTORS_SMTP_H_
