// One HTTP POST and its classification: the plumbing shared by the HTTP connectors (SMS over a
// Twilio-compatible API, Slack incoming webhooks, signed webhooks). Internal to connectors/.
//
// HttpPoster is Itinera's own HTTP/1.1 client, on Boost.Beast (TLS through OpenSSL). It keeps its
// connection open between posts, so consecutive posts to the same scheme, host and port reuse
// it; a post to another one closes it and opens a new one. A kept connection the server closed
// while it was idle is reopened once, transparently, as long as no byte of an answer arrived.
// Otherwise it never retries and never follows redirects: the dispatcher owns retries
// (DESIGN.md, "Guarantees"), and a redirect is a configuration error. Outcomes:
//   2xx -> kSent;
//   408, 429, 5xx, connection failures, timeouts, TLS failures -> kTransient;
//   3xx and every other 4xx -> kPermanent;
//   a request that cannot be sent at all (not http(s)://, CR or LF in a header) -> kPermanent.
// Only http:// and https:// are spoken, straight to the host (no proxy); https:// checks the
// server's certificate and its host name. Nothing is set up before the first post, so
// constructing a poster cannot fail; a CA file that cannot be read makes every https:// post
// kTransient. Host names are resolved with getaddrinfo, which the timeouts do not bound.
// Thread-safe: Post takes an internal mutex, so concurrent callers are serialised; use one poster
// per worker for parallelism. Error texts never contain the URL's path or query (a Slack webhook
// URL is a secret) nor any credential: they name the host and port.
#ifndef ITINERA_CONNECTORS_HTTP_POST_H_
#define ITINERA_CONNECTORS_HTTP_POST_H_

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "connectors/connector.h"
#include "util/time.h"

namespace itinera::connectors {

struct HttpOptions {
  std::chrono::milliseconds connect_timeout{5000};  // TCP (and TLS) connection set-up
  std::chrono::milliseconds total_timeout{15000};   // the whole exchange
  std::string ca_file;  // CA bundle (PEM) for https; the system's trust store when empty
};

struct HttpRequest {
  std::string url;  // http:// or https://
  std::string content_type;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // name -> value, sent as given
  std::string username;                                      // HTTP basic auth when non-empty
  std::string password;                                      // never written to errors
};

struct HttpResponse {
  Delivery::Outcome outcome = Delivery::kTransient;
  long status = 0;                     // 0 when no HTTP answer arrived
  std::string body;                    // the first kMaxResponseBody bytes of the answer
  std::optional<Seconds> retry_after;  // from "Retry-After: <seconds>" (dates are ignored)
  std::string error;                   // for people; empty when kSent
};

// The part of an answer kept in HttpResponse::body; the rest is read and dropped.
inline constexpr size_t kMaxResponseBody = 64 * 1024;
// A longer answer is not read: the post is kTransient and the connection closed.
inline constexpr size_t kMaxResponseRead = 16 * 1024 * 1024;
// The part of an answer quoted in HttpResponse::error.
inline constexpr size_t kErrorExcerptBytes = 200;

// The outcome an HTTP status stands for (see the table above). Pure.
Delivery::Outcome ClassifyHttpStatus(long status);

// "a=1&b=x%20y": application/x-www-form-urlencoded, every byte outside RFC 3986's unreserved
// set percent-encoded (so UTF-8 text travels as its bytes). Pure.
std::string FormUrlEncode(const std::vector<std::pair<std::string, std::string>>& fields);

class HttpPoster {
 public:
  explicit HttpPoster(HttpOptions options = {});
  ~HttpPoster();
  HttpPoster(const HttpPoster&) = delete;
  HttpPoster& operator=(const HttpPoster&) = delete;

  // One POST; blocks at most options.total_timeout, plus the resolution of the host's name.
  HttpResponse Post(const HttpRequest& request);

 private:
  class Connection;  // the open connection, its endpoint and its TLS context (http_post.cc)

  HttpOptions options_;
  std::mutex mu_;
  std::unique_ptr<Connection> connection_;  // made on the first post
};

// Turns an HttpResponse into a Delivery: the error as is, `provider_id` when sent.
Delivery ToDelivery(const HttpResponse& response, std::string provider_id);

}  // namespace itinera::connectors

#endif  // ITINERA_CONNECTORS_HTTP_POST_H_
