#include "connectors/http_post.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <poll.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace itinera::connectors {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using ErrorCode = beast::error_code;

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  }
  return true;
}

// A header line must stay one line: CR, LF or NUL would let a value inject headers.
bool IsHeaderSafe(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) == s.npos;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Printable, one line, at most kErrorExcerptBytes, never cut inside a UTF-8 sequence.
std::string Excerpt(std::string_view body) {
  body = Trim(body);
  bool cut = body.size() > kErrorExcerptBytes;
  if (cut) {
    size_t end = kErrorExcerptBytes;
    while (end > 0 && (static_cast<unsigned char>(body[end]) & 0xC0) == 0x80) --end;
    body = body.substr(0, end);
  }
  std::string out(body);
  for (char& c : out) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) c = ' ';
  }
  if (cut) out += "...";
  return out;
}

std::string StatusError(const HttpResponse& response) {
  std::string error = "HTTP " + std::to_string(response.status);
  if (response.status >= 300 && response.status < 400) error += " (redirects are not followed)";
  if (response.retry_after) {
    error += ", retry after " + std::to_string(response.retry_after->count()) + "s";
  }
  std::string excerpt = Excerpt(response.body);
  if (!excerpt.empty()) error += ": " + excerpt;
  return error;
}

// Where a URL points. Its path and query go in `target` and nowhere else: errors name `where`.
struct Endpoint {
  bool tls = false;
  std::string host;         // without the brackets of an IPv6 literal
  std::string port;         // "80" or "443" when the URL gives none
  std::string host_header;  // as the URL spells it: "[::1]:8080", "api.example"
  std::string target;       // "/path?query", "/" at least
  std::string where;        // "host:port", for errors
  std::string key;          // scheme, host and port: what an open connection can be reused for
};

std::optional<Endpoint> ParseUrl(std::string_view url, std::string& error) {
  Endpoint e;
  if (StartsWithNoCase(url, "https://")) {
    e.tls = true;
    url.remove_prefix(8);
  } else if (StartsWithNoCase(url, "http://")) {
    url.remove_prefix(7);
  } else {
    error = "not an http:// or https:// URL";
    return std::nullopt;
  }
  url = url.substr(0, url.find('#'));
  size_t end = url.find_first_of("/?");
  std::string_view authority = url.substr(0, end);
  std::string_view rest = end == std::string_view::npos ? "" : url.substr(end);
  if (authority.find('@') != std::string_view::npos) {
    error = "credentials in the URL are not supported";
    return std::nullopt;
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      error = "unclosed [ in the URL's host";
      return std::nullopt;
    }
    e.host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after.front() != ':') {
      error = "junk after the URL's IPv6 address";
      return std::nullopt;
    }
    if (!after.empty()) port = after.substr(1);
  } else {
    size_t colon = authority.find(':');
    e.host = authority.substr(0, colon);
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (e.host.empty()) {
    error = "the URL has no host";
    return std::nullopt;
  }
  if (port.empty()) {
    e.port = e.tls ? "443" : "80";
  } else {
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || ptr != port.data() + port.size() || value < 1 || value > 65535) {
      error = "the URL has an invalid port";
      return std::nullopt;
    }
    e.port = std::string(port);
  }
  e.host_header = std::string(authority);
  e.target = rest.empty() || rest.front() == '?' ? "/" + std::string(rest) : std::string(rest);
  bool v6 = e.host.find(':') != std::string::npos;
  e.where = (v6 ? "[" + e.host + "]" : e.host) + ":" + e.port;
  e.key = (e.tls ? "https://" : "http://") + e.where;
  return e;
}

bool IsIpLiteral(const std::string& host) {
  in6_addr v6;
  in_addr v4;
  return inet_pton(AF_INET, host.c_str(), &v4) == 1 || inet_pton(AF_INET6, host.c_str(), &v6) == 1;
}

std::string BasicCredentials(const std::string& username, const std::string& password) {
  std::string plain = username + ":" + password;
  std::string encoded(4 * ((plain.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(encoded.data()),
                          reinterpret_cast<const unsigned char*>(plain.data()),
                          static_cast<int>(plain.size()));
  encoded.resize(static_cast<size_t>(n));
  return "Basic " + encoded;
}

// A kept connection the server closed while it was idle: the request may be sent again on a
// new one, since the server did not take it.
bool ClosedWhileIdle(const ErrorCode& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::ssl::error::stream_truncated;
}

}  // namespace

Delivery::Outcome ClassifyHttpStatus(long status) {
  if (status >= 200 && status < 300) return Delivery::kSent;
  if (status == 408 || status == 429 || (status >= 500 && status < 600))
    return Delivery::kTransient;
  if (status >= 300 && status < 500) return Delivery::kPermanent;
  return Delivery::kTransient;  // 1xx as a final answer, or nonsense: the peer is misbehaving
}

std::string FormUrlEncode(const std::vector<std::pair<std::string, std::string>>& fields) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  auto encode = [&out](std::string_view s) {
    for (char c : s) {
      unsigned char u = static_cast<unsigned char>(c);
      if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
        out += c;
      } else {
        out += '%';
        out += kHex[u >> 4];
        out += kHex[u & 0x0F];
      }
    }
  };
  for (const auto& [name, value] : fields) {
    if (!out.empty()) out += '&';
    encode(name);
    out += '=';
    encode(value);
  }
  return out;
}

// One connection at a time, driven on a private io_context by the posting thread: each step
// starts an asynchronous operation, whose deadline the stream enforces, and runs the context
// until it completes.
class HttpPoster::Connection {
 public:
  explicit Connection(const HttpOptions& options) : options_(options) {}

  HttpResponse Post(const Endpoint& endpoint, const http::request<http::string_body>& request);

 private:
  using Clock = std::chrono::steady_clock;
  using TlsStream = beast::ssl_stream<beast::tcp_stream>;

  // Starts an operation with `initiate(handler)` and runs the context until it is done.
  template <class Initiate>
  ErrorCode Run(Initiate initiate) {
    ErrorCode result;
    initiate([&result](ErrorCode ec, auto&&...) { result = ec; });
    io_.restart();
    io_.run();
    return result;
  }

  beast::tcp_stream& Tcp() { return tls_stream_ ? beast::get_lowest_layer(*tls_stream_) : *tcp_; }
  bool IsOpen() const { return !key_.empty(); }
  void Close();
  // Opens a connection to `endpoint` (TCP, then TLS for https://). Empty on success.
  std::string Open(const Endpoint& endpoint, Clock::time_point deadline);
  // Writes the request and reads the final answer into `answer`.
  ErrorCode Exchange(const http::request<http::string_body>& request, Clock::time_point deadline,
                     std::optional<http::response_parser<http::string_body>>& answer);
  // The same on a plain connection, on the posting thread: the socket is non-blocking, and a
  // write or read that would block waits in poll() for what is left of the deadline. No event
  // loop and no timer per operation, which cost more than the exchange itself.
  ErrorCode ExchangePlain(const http::request<http::string_body>& request,
                          Clock::time_point deadline,
                          std::optional<http::response_parser<http::string_body>>& answer);
  std::string Describe(const ErrorCode& ec, const Endpoint& endpoint) const;

  const HttpOptions& options_;
  asio::io_context io_{1};
  std::optional<asio::ssl::context> tls_;  // made on the first https:// post
  std::string tls_error_;                  // why tls_ could not be made
  std::optional<beast::tcp_stream> tcp_;   // the open http:// connection
  std::optional<TlsStream> tls_stream_;    // the open https:// connection
  std::string key_;                        // Endpoint::key of the open connection; empty: none
  beast::flat_buffer buffer_;
};

void HttpPoster::Connection::Close() {
  if (tcp_ || tls_stream_) {
    ErrorCode ignored;
    Tcp().socket().close(ignored);
  }
  tcp_.reset();
  tls_stream_.reset();
  key_.clear();
  buffer_.clear();
}

std::string HttpPoster::Connection::Describe(const ErrorCode& ec, const Endpoint& endpoint) const {
  if (ec == beast::error::timeout) {
    return "timeout: no answer from " + endpoint.where + " within " +
           std::to_string(options_.total_timeout.count()) + " ms";
  }
  return ec.message() + " (" + endpoint.where + ")";
}

std::string HttpPoster::Connection::Open(const Endpoint& endpoint, Clock::time_point deadline) {
  Close();
  tcp::resolver resolver(io_);
  ErrorCode ec;
  tcp::resolver::results_type addresses = resolver.resolve(endpoint.host, endpoint.port, ec);
  if (ec) return "cannot resolve " + endpoint.host + ": " + ec.message();

  if (endpoint.tls) {
    if (!tls_ && tls_error_.empty()) {
      asio::ssl::context context(asio::ssl::context::tls_client);
      SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_2_VERSION);
      context.set_verify_mode(asio::ssl::verify_peer, ec);
      if (!ec) {
        if (options_.ca_file.empty()) {
          context.set_default_verify_paths(ec);
        } else {
          context.load_verify_file(options_.ca_file, ec);
        }
      }
      if (ec) {
        tls_error_ = "cannot load the CA certificates: " + ec.message();
      } else {
        tls_.emplace(std::move(context));
      }
    }
    if (!tls_) return tls_error_;
    tls_stream_.emplace(io_, *tls_);
  } else {
    tcp_.emplace(io_);
  }
  Tcp().expires_at(std::min(deadline, Clock::now() + options_.connect_timeout));
  ec = Run([&](auto handler) { Tcp().async_connect(addresses, std::move(handler)); });
  if (!ec) Tcp().socket().set_option(tcp::no_delay(true), ec);
  if (!ec && !endpoint.tls) Tcp().socket().non_blocking(true, ec);
  if (!ec && endpoint.tls) {
    SSL* ssl = tls_stream_->native_handle();
    if (!IsIpLiteral(endpoint.host) && SSL_set_tlsext_host_name(ssl, endpoint.host.c_str()) != 1) {
      Close();
      return "cannot set the TLS server name (" + endpoint.where + ")";
    }
    tls_stream_->set_verify_callback(asio::ssl::host_name_verification(endpoint.host), ec);
    Tcp().expires_at(deadline);
    if (!ec) {
      ec = Run([&](auto handler) {
        tls_stream_->async_handshake(asio::ssl::stream_base::client, std::move(handler));
      });
    }
  }
  if (ec) {
    std::string error = ec == beast::error::timeout
                            ? "timeout: cannot connect to " + endpoint.where + " within " +
                                  std::to_string(options_.connect_timeout.count()) + " ms"
                            : "cannot connect to " + endpoint.where + ": " + ec.message();
    Close();
    return error;
  }
  key_ = endpoint.key;
  return "";
}

namespace {

// Waits until `socket` is ready for `events` (POLLIN, POLLOUT) or `deadline` passes (false).
bool WaitFor(tcp::socket& socket, short events, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{socket.native_handle(), events, 0};
    int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 60'000)));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return true;  // the next read or write says what is wrong
  }
}

}  // namespace

ErrorCode HttpPoster::Connection::ExchangePlain(
    const http::request<http::string_body>& request, Clock::time_point deadline,
    std::optional<http::response_parser<http::string_body>>& answer) {
  tcp::socket& socket = tcp_->socket();
  ErrorCode ec;
  http::serializer<true, http::string_body> serializer(request);
  while (!serializer.is_done()) {
    http::write_some(socket, serializer, ec);
    if (ec != asio::error::would_block) {
      if (ec) return ec;
      continue;
    }
    if (!WaitFor(socket, POLLOUT, deadline)) return beast::error::timeout;
  }
  // Interim answers (1xx) are skipped: the final one follows.
  for (;;) {
    answer.emplace();
    answer->body_limit(kMaxResponseRead);
    while (!answer->is_done()) {
      http::read_some(socket, buffer_, *answer, ec);
      if (ec == asio::error::would_block) {
        if (!WaitFor(socket, POLLIN, deadline)) return beast::error::timeout;
        continue;
      }
      if (ec) return ec;
    }
    if (answer->get().result_int() >= 200 || answer->get().result_int() == 101) return ec;
  }
}

ErrorCode HttpPoster::Connection::Exchange(
    const http::request<http::string_body>& request, Clock::time_point deadline,
    std::optional<http::response_parser<http::string_body>>& answer) {
  if (!tls_stream_) return ExchangePlain(request, deadline, answer);
  Tcp().expires_at(deadline);
  ErrorCode ec =
      Run([&](auto handler) { http::async_write(*tls_stream_, request, std::move(handler)); });
  // Interim answers (1xx) are skipped: the final one follows.
  while (!ec) {
    answer.emplace();
    answer->body_limit(kMaxResponseRead);
    ec = Run([&](auto handler) {
      http::async_read(*tls_stream_, buffer_, *answer, std::move(handler));
    });
    if (ec || answer->get().result_int() >= 200 || answer->get().result_int() == 101) break;
  }
  return ec;
}

HttpResponse HttpPoster::Connection::Post(const Endpoint& endpoint,
                                          const http::request<http::string_body>& request) {
  HttpResponse response;
  const Clock::time_point deadline = Clock::now() + options_.total_timeout;
  // Bytes left over after the last answer are not an answer to this request: start afresh.
  bool reused = IsOpen() && key_ == endpoint.key && buffer_.size() == 0;
  if (!reused) {
    std::string error = Open(endpoint, deadline);
    if (!error.empty()) {
      response.error = std::move(error);
      return response;
    }
  }
  std::optional<http::response_parser<http::string_body>> answer;
  ErrorCode ec = Exchange(request, deadline, answer);
  if (ec && reused && ClosedWhileIdle(ec) && (!answer || !answer->got_some())) {
    std::string error = Open(endpoint, deadline);
    if (!error.empty()) {
      response.error = std::move(error);
      return response;
    }
    ec = Exchange(request, deadline, answer);
  }
  if (ec) {
    response.error = ec == http::error::body_limit
                         ? "the answer is larger than " +
                               std::to_string(kMaxResponseRead / (1024 * 1024)) + " MiB (" +
                               endpoint.where + ")"
                         : Describe(ec, endpoint);
    Close();
    return response;
  }
  const auto& message = answer->get();
  response.status = message.result_int();
  response.body = message.body().substr(0, kMaxResponseBody);
  auto retry_after = message.find(http::field::retry_after);
  if (retry_after != message.end()) {
    beast::string_view raw = retry_after->value();
    std::string_view value = Trim(std::string_view(raw.data(), raw.size()));
    Seconds::rep seconds = 0;
    auto [end, parsed] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (parsed == std::errc() && end == value.data() + value.size() && seconds >= 0) {
      response.retry_after = Seconds(seconds);
    }
  }
  if (!message.keep_alive()) Close();
  response.outcome = ClassifyHttpStatus(response.status);
  if (response.outcome != Delivery::kSent) response.error = StatusError(response);
  return response;
}

HttpPoster::HttpPoster(HttpOptions options) : options_(std::move(options)) {}

HttpPoster::~HttpPoster() = default;

HttpResponse HttpPoster::Post(const HttpRequest& request) {
  HttpResponse response;
  std::string error;
  std::optional<Endpoint> endpoint = ParseUrl(request.url, error);
  if (!endpoint) {
    response.outcome = Delivery::kPermanent;
    response.error = std::move(error);
    return response;
  }
  bool headers_safe = IsHeaderSafe(request.content_type) && IsHeaderSafe(request.username) &&
                      IsHeaderSafe(request.password);
  for (const auto& [name, value] : request.headers) {
    headers_safe = headers_safe && !name.empty() && name.find(':') == std::string::npos &&
                   name.find(' ') == std::string::npos && IsHeaderSafe(name) && IsHeaderSafe(value);
  }
  if (!headers_safe) {
    response.outcome = Delivery::kPermanent;
    response.error = "invalid header (empty name, or CR, LF or NUL in a name or value)";
    return response;
  }

  http::request<http::string_body> message(http::verb::post, endpoint->target, 11);
  message.set(http::field::host, endpoint->host_header);
  message.set(http::field::user_agent, "Itinera");
  if (!request.content_type.empty()) {
    message.set(http::field::content_type, request.content_type);
  }
  if (!request.username.empty()) {
    message.set(http::field::authorization, BasicCredentials(request.username, request.password));
  }
  for (const auto& [name, value] : request.headers) message.insert(name, value);
  message.body() = request.body;
  message.prepare_payload();

  std::lock_guard<std::mutex> lock(mu_);
  if (connection_ == nullptr) connection_ = std::make_unique<Connection>(options_);
  return connection_->Post(*endpoint, message);
}

Delivery ToDelivery(const HttpResponse& response, std::string provider_id) {
  if (response.outcome != Delivery::kSent) {
    return {response.outcome, "", response.error, response.retry_after};
  }
  return {Delivery::kSent, std::move(provider_id), ""};
}

}  // namespace itinera::connectors
