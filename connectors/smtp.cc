#include "connectors/smtp.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <utility>
#include <vector>

#include "connectors/mime.h"

namespace itinera::connectors {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxReplyBytes = 64 * 1024;  // a reply longer than this is not SMTP
constexpr size_t kReadChunk = 16 * 1024;
constexpr auto kQuitTimeout = std::chrono::milliseconds(500);

std::string Lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

std::string Upper(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return r;
}

// Where a normalized URL points.
struct Endpoint {
  std::string host;  // without the brackets of an IPv6 literal
  std::string port;
  bool tls = false;  // smtps://: TLS from the first byte
};

Result<Endpoint> ParseEndpoint(const std::string& url) {
  Endpoint e;
  e.tls = Lower(url).rfind("smtps://", 0) == 0;
  std::string_view rest = std::string_view(url).substr(e.tls ? 8 : 7);
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) return Error{"invalid_smtp_url", "unclosed [ in host"};
    e.host = rest.substr(1, close - 1);
    rest.remove_prefix(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return Error{"invalid_smtp_url", "junk after the IPv6 address"};
      port = rest.substr(1);
    }
  } else {
    size_t colon = rest.find(':');
    e.host = rest.substr(0, colon);
    if (colon != std::string_view::npos) port = rest.substr(colon + 1);
  }
  if (e.host.empty()) return Error{"invalid_smtp_url", "SMTP URL has no host"};
  if (port.empty()) {
    e.port = e.tls ? "465" : "25";
  } else {
    int value = 0;
    for (char c : port) {
      if (c < '0' || c > '9' || value > 65535) {
        return Error{"invalid_smtp_url", "SMTP URL has an invalid port"};
      }
      value = value * 10 + (c - '0');
    }
    if (value < 1 || value > 65535) {
      return Error{"invalid_smtp_url", "SMTP URL has an invalid port"};
    }
    e.port = std::string(port);
  }
  return e;
}

bool IsIpLiteral(const std::string& host) {
  in6_addr v6;
  in_addr v4;
  return inet_pton(AF_INET, host.c_str(), &v4) == 1 || inet_pton(AF_INET6, host.c_str(), &v6) == 1;
}

std::string OpenSslError() {
  std::string text;
  while (unsigned long e = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(e, buffer, sizeof buffer);
    if (!text.empty()) text += "; ";
    text += buffer;
  }
  return text.empty() ? "unknown TLS error" : text;
}

// The message as DATA carries it: every line starting with "." gets one more (RFC 5321 4.5.2),
// the last line is ended, and the end-of-data line follows.
std::string DataSection(std::string_view mime) {
  std::string out;
  out.reserve(mime.size() + mime.size() / 64 + 8);
  size_t pos = 0;
  while (pos < mime.size()) {
    if (mime[pos] == '.') out += '.';
    size_t eol = mime.find('\n', pos);
    size_t end = eol == std::string_view::npos ? mime.size() : eol + 1;
    out.append(mime, pos, end - pos);
    pos = end;
  }
  if (!out.empty() && out.back() != '\n') out += "\r\n";
  out += ".\r\n";
  return out;
}

// One reply: its code, the text of each line, and the last line in full (what errors quote).
struct Reply {
  int code = 0;
  std::vector<std::string> lines;
  std::string last;
};

// A failure that is the transport's (closed, timed out, TLS), as opposed to a reply.
Error Io(std::string message) { return Error{"smtp_io", std::move(message)}; }
Error Closed() { return Error{"smtp_closed", "the server closed the connection"}; }

Delivery Transient(std::string error) { return {Delivery::kTransient, "", std::move(error)}; }

}  // namespace

// One SMTP connection and what its server offers. Opened on first use, kept between messages,
// closed on a transport error or a 421; every socket read and write goes through Send/Receive
// (TLS through memory BIOs, so OpenSSL never touches the socket and never raises SIGPIPE).
class SmtpConnector::Session {
 public:
  Session(SmtpConfig config, Endpoint endpoint, SSL_CTX* tls)
      : config_(std::move(config)), endpoint_(std::move(endpoint)), tls_(tls) {
    if (config_.helo_domain.empty()) {
      char name[256] = {};
      if (gethostname(name, sizeof name - 1) == 0 && name[0] != '\0') {
        config_.helo_domain = name;
      } else {
        config_.helo_domain = "localhost";
      }
    }
  }
  ~Session() {
    Close(/*quit=*/true);
    if (tls_ != nullptr) SSL_CTX_free(tls_);
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  Delivery Deliver(const std::string& from, const std::string& to, const std::string& data);

 private:
  // The transaction on an open connection; *answered turns true at its first reply.
  Delivery Transact(const std::string& from, const std::string& to, const std::string& data,
                    Clock::time_point deadline, bool* answered);
  Delivery Rejected(const char* command, const Reply& reply);

  Status Open(Clock::time_point deadline);
  Status Connect(Clock::time_point deadline);
  Status Handshake(Clock::time_point deadline);
  Status Hello(Clock::time_point deadline);
  Status Login(Clock::time_point deadline);
  void Close(bool quit);

  Status Write(std::string_view data, Clock::time_point deadline);
  Result<Reply> Read(Clock::time_point deadline);
  Result<Reply> Command(const std::string& line, Clock::time_point deadline);
  Status Fill(Clock::time_point deadline);  // more bytes into in_
  Status SendRaw(std::string_view data, Clock::time_point deadline);
  Result<size_t> ReceiveRaw(char* buffer, size_t size, Clock::time_point deadline);
  Status FlushTls(Clock::time_point deadline);
  Status Wait(short events, Clock::time_point deadline);

  SmtpConfig config_;
  Endpoint endpoint_;
  SSL_CTX* tls_;  // owned; null when neither smtps:// nor STARTTLS is configured
  int fd_ = -1;
  SSL* ssl_ = nullptr;  // set once TLS is on
  std::string in_;      // bytes read and not yet consumed, from in_pos_
  size_t in_pos_ = 0;
  bool pipelining_ = false;
  bool offers_starttls_ = false;
  std::vector<std::string> auth_;  // the AUTH mechanisms offered, upper case
};

Delivery SmtpConnector::Session::Deliver(const std::string& from, const std::string& to,
                                         const std::string& data) {
  const Clock::time_point deadline = Clock::now() + config_.total_timeout;
  for (int attempt = 0;; ++attempt) {
    const bool reused = fd_ >= 0;
    if (!reused) {
      if (Status s = Open(deadline); !s.ok()) {
        Close(/*quit=*/false);
        return Transient(s.error().message);
      }
    }
    bool answered = false;
    Delivery d = Transact(from, to, data, deadline, &answered);
    // A kept connection the server dropped while it was idle: open a new one, once. Nothing of
    // this message was answered (but for a 421 to its first command: the server was closing),
    // so nothing of it can have been accepted.
    if (d.outcome == Delivery::kTransient && reused && !answered && fd_ < 0 && attempt == 0) {
      continue;
    }
    return d;
  }
}

Delivery SmtpConnector::Session::Transact(const std::string& from, const std::string& to,
                                          const std::string& data, Clock::time_point deadline,
                                          bool* answered) {
  const std::string commands[3] = {"MAIL FROM:<" + from + ">\r\n", "RCPT TO:<" + to + ">\r\n",
                                   "DATA\r\n"};
  static const char* const kNames[3] = {"MAIL FROM", "RCPT TO", "DATA"};
  const auto broken = [this](const Error& e) {
    Close(/*quit=*/false);
    return Transient(e.message);
  };
  const auto accepted = [](int i, const Reply& r) {
    return i < 2 ? r.code / 100 == 2 : r.code == 354;
  };

  Reply replies[3];
  int got = 0;
  if (pipelining_) {
    if (Status s = Write(commands[0] + commands[1] + commands[2], deadline); !s.ok()) {
      return broken(s.error());
    }
    for (; got < 3; ++got) {
      Result<Reply> r = Read(deadline);
      if (!r.ok()) return broken(r.error());
      *answered = *answered || got > 0 || r->code != 421;
      replies[got] = std::move(*r);
      if (replies[got].code == 421) {  // closing: the replies after it will not come
        ++got;
        break;
      }
    }
  } else {
    for (; got < 3; ++got) {
      Result<Reply> r = Command(commands[got], deadline);
      if (!r.ok()) return broken(r.error());
      *answered = *answered || got > 0 || r->code != 421;
      replies[got] = std::move(*r);
      if (!accepted(got, replies[got]) || replies[got].code == 421) {
        ++got;
        break;
      }
    }
  }

  int failed = -1;
  for (int i = 0; i < got && failed < 0; ++i) {
    if (!accepted(i, replies[i])) failed = i;
  }
  if (failed < 0) {
    if (Status s = Write(data, deadline); !s.ok()) return broken(s.error());
    Result<Reply> final_reply = Read(deadline);
    if (!final_reply.ok()) return broken(final_reply.error());
    if (final_reply->code / 100 != 2) return Rejected("the message", *final_reply);
    return {Delivery::kSent, final_reply->last, ""};
  }

  // A refused transaction. A server that accepted DATA all the same gets an empty message
  // (RFC 2920 3.1); then RSET leaves the connection ready for the next one.
  Delivery outcome = Rejected(kNames[failed], replies[failed]);
  if (fd_ >= 0 && got == 3 && replies[2].code == 354) {
    Result<Reply> r = Command(".\r\n", deadline);
    if (!r.ok()) Close(/*quit=*/false);
  }
  if (fd_ >= 0) {
    Result<Reply> r = Command("RSET\r\n", deadline);
    if (!r.ok() || r->code / 100 != 2) Close(/*quit=*/false);
  }
  return outcome;
}

Delivery SmtpConnector::Session::Rejected(const char* command, const Reply& reply) {
  if (reply.code == 421) Close(/*quit=*/false);  // the server is closing the connection
  // 5xx is permanent, but for two refusals that are not the message's fault: a sender refused
  // for want of authentication (530), and a recipient's full mailbox, which RFC 5321 4.5.3.1.10
  // says to treat as 452.
  const bool permanent = reply.code >= 500 && reply.code < 600 &&
                         !(reply.code == 530 && std::strcmp(command, "MAIL FROM") == 0) &&
                         !(reply.code == 552 && std::strcmp(command, "RCPT TO") == 0);
  return {permanent ? Delivery::kPermanent : Delivery::kTransient, "",
          std::string(command) + " refused (server: " + reply.last + ")"};
}

Status SmtpConnector::Session::Open(Clock::time_point deadline) {
  const Clock::time_point connected_by = std::min(deadline, Clock::now() + config_.connect_timeout);
  if (Status s = Connect(connected_by); !s.ok()) return s;
  if (endpoint_.tls) {
    if (Status s = Handshake(connected_by); !s.ok()) return s;
  }
  Result<Reply> greeting = Read(connected_by);
  if (!greeting.ok()) return Io("no greeting: " + greeting.error().message);
  if (greeting->code != 220) return Io("the server refused the session: " + greeting->last);
  if (Status s = Hello(deadline); !s.ok()) return s;
  if (config_.starttls) {
    if (!offers_starttls_) return Io("the server does not offer STARTTLS");
    Result<Reply> r = Command("STARTTLS\r\n", deadline);
    if (!r.ok()) return r.error();
    if (r->code != 220) return Io("STARTTLS refused (server: " + r->last + ")");
    // Anything the server sent after its 220 would be plaintext injected into the TLS session.
    if (in_pos_ != in_.size()) return Io("the server sent data after agreeing to STARTTLS");
    if (Status s = Handshake(deadline); !s.ok()) return s;
    if (Status s = Hello(deadline); !s.ok()) return s;  // what it offers may change under TLS
  }
  if (!config_.username.empty()) return Login(deadline);
  return Status::Ok();
}

Status SmtpConnector::Session::Connect(Clock::time_point deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  int rc = getaddrinfo(endpoint_.host.c_str(), endpoint_.port.c_str(), &hints, &found);
  if (rc != 0) return Io("cannot resolve " + endpoint_.host + ": " + gai_strerror(rc));
  std::string error = "no address for " + endpoint_.host;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      error = std::string("socket: ") + std::strerror(errno);
      continue;
    }
    fd_ = fd;
    Status connected = Status::Ok();
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        connected = Io(std::string("connect: ") + std::strerror(errno));
      } else if (connected = Wait(POLLOUT, deadline); connected.ok()) {
        int so_error = 0;
        socklen_t len = sizeof so_error;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
        if (so_error != 0) connected = Io(std::string("connect: ") + std::strerror(so_error));
      }
    }
    if (connected.ok()) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      freeaddrinfo(found);
      return Status::Ok();
    }
    error = connected.error().message + " (" + endpoint_.host + ":" + endpoint_.port + ")";
    ::close(fd);
    fd_ = -1;
  }
  freeaddrinfo(found);
  return Io(error);
}

Status SmtpConnector::Session::Handshake(Clock::time_point deadline) {
  if (tls_ == nullptr) return Io("TLS is not set up");
  ssl_ = SSL_new(tls_);
  if (ssl_ == nullptr) return Io("TLS: " + OpenSslError());
  SSL_set_bio(ssl_, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
  SSL_set_connect_state(ssl_);
  const bool literal = IsIpLiteral(endpoint_.host);
  if (!literal) SSL_set_tlsext_host_name(ssl_, endpoint_.host.c_str());
  if (config_.verify_peer) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int set = literal ? X509_VERIFY_PARAM_set1_ip_asc(param, endpoint_.host.c_str())
                      : X509_VERIFY_PARAM_set1_host(param, endpoint_.host.c_str(), 0);
    if (set != 1) return Io("TLS: cannot check the name " + endpoint_.host);
  }
  for (;;) {
    ERR_clear_error();
    int r = SSL_do_handshake(ssl_);
    if (Status s = FlushTls(deadline); !s.ok()) return s;
    if (r == 1) return Status::Ok();
    if (SSL_get_error(ssl_, r) != SSL_ERROR_WANT_READ) {
      long verify = config_.verify_peer ? SSL_get_verify_result(ssl_) : X509_V_OK;
      if (verify != X509_V_OK) {
        ERR_clear_error();
        return Io(std::string("TLS: the server's certificate is not trusted: ") +
                  X509_verify_cert_error_string(verify));
      }
      return Io("TLS handshake failed: " + OpenSslError());
    }
    char buffer[kReadChunk];
    Result<size_t> n = ReceiveRaw(buffer, sizeof buffer, deadline);
    if (!n.ok()) return Io("TLS handshake: " + n.error().message);
    BIO_write(SSL_get_rbio(ssl_), buffer, static_cast<int>(*n));
  }
}

Status SmtpConnector::Session::Hello(Clock::time_point deadline) {
  pipelining_ = false;
  offers_starttls_ = false;
  auth_.clear();
  Result<Reply> r = Command("EHLO " + config_.helo_domain + "\r\n", deadline);
  if (!r.ok()) return r.error();
  if (r->code / 100 == 5) {  // an old server: HELO, no extensions
    r = Command("HELO " + config_.helo_domain + "\r\n", deadline);
    if (!r.ok()) return r.error();
  }
  if (r->code / 100 != 2) return Io("the server refused EHLO and HELO: " + r->last);
  for (size_t i = 1; i < r->lines.size(); ++i) {  // line 0 is the server's name
    std::string line = Upper(r->lines[i]);
    size_t space = line.find(' ');
    std::string keyword = line.substr(0, space);
    if (keyword == "PIPELINING") pipelining_ = true;
    if (keyword == "STARTTLS") offers_starttls_ = true;
    if (keyword == "AUTH") {
      size_t pos = space;
      while (pos != std::string::npos && pos < line.size()) {
        size_t start = line.find_first_not_of(' ', pos);
        if (start == std::string::npos) break;
        pos = line.find(' ', start);
        auth_.push_back(line.substr(start, pos - start));
      }
    }
  }
  return Status::Ok();
}

Status SmtpConnector::Session::Login(Clock::time_point deadline) {
  const auto offered = [&](const char* m) {
    return std::find(auth_.begin(), auth_.end(), m) != auth_.end();
  };
  Result<Reply> r = Error{};
  if (offered("PLAIN")) {
    std::string credentials;
    credentials += '\0';
    credentials += config_.username;
    credentials += '\0';
    credentials += config_.password;
    r = Command("AUTH PLAIN " + EncodeBase64(credentials) + "\r\n", deadline);
  } else if (offered("LOGIN")) {
    r = Command("AUTH LOGIN\r\n", deadline);
    if (r.ok() && r->code == 334) r = Command(EncodeBase64(config_.username) + "\r\n", deadline);
    if (r.ok() && r->code == 334) r = Command(EncodeBase64(config_.password) + "\r\n", deadline);
  } else {
    return Io("the server offers neither AUTH PLAIN nor AUTH LOGIN");
  }
  if (!r.ok()) return r.error();
  if (r->code != 235) return Io("login refused (server: " + r->last + ")");
  return Status::Ok();
}

void SmtpConnector::Session::Close(bool quit) {
  if (fd_ >= 0 && quit) (void)Write("QUIT\r\n", Clock::now() + kQuitTimeout);
  if (ssl_ != nullptr) SSL_free(ssl_);
  ssl_ = nullptr;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  in_.clear();
  in_pos_ = 0;
}

Status SmtpConnector::Session::Write(std::string_view data, Clock::time_point deadline) {
  if (ssl_ == nullptr) return SendRaw(data, deadline);
  // A memory BIO takes the whole record at once; FlushTls then puts it on the wire.
  ERR_clear_error();
  if (SSL_write(ssl_, data.data(), static_cast<int>(data.size())) <= 0) {
    return Io("TLS write: " + OpenSslError());
  }
  return FlushTls(deadline);
}

Result<Reply> SmtpConnector::Session::Command(const std::string& line, Clock::time_point deadline) {
  if (Status s = Write(line, deadline); !s.ok()) return s.error();
  return Read(deadline);
}

Result<Reply> SmtpConnector::Session::Read(Clock::time_point deadline) {
  Reply reply;
  size_t bytes = 0;
  for (;;) {
    size_t eol = in_.find('\n', in_pos_);
    while (eol == std::string::npos) {
      if (in_.size() - in_pos_ > kMaxReplyBytes) return Io("an over-long reply from the server");
      if (Status s = Fill(deadline); !s.ok()) return s.error();
      eol = in_.find('\n', in_pos_);
    }
    std::string_view line(in_.data() + in_pos_, eol - in_pos_);
    in_pos_ = eol + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    bytes += line.size();
    if (bytes > kMaxReplyBytes) return Io("an over-long reply from the server");
    const bool digits = line.size() >= 3 && std::isdigit(static_cast<unsigned char>(line[0])) &&
                        std::isdigit(static_cast<unsigned char>(line[1])) &&
                        std::isdigit(static_cast<unsigned char>(line[2]));
    const char separator = line.size() > 3 ? line[3] : ' ';
    if (!digits || (separator != ' ' && separator != '-')) {
      return Io("not an SMTP reply: " + std::string(line.substr(0, 80)));
    }
    reply.code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    reply.lines.emplace_back(line.size() > 4 ? line.substr(4) : std::string_view());
    if (separator == ' ') {
      reply.last = line;
      if (in_pos_ == in_.size()) {
        in_.clear();
        in_pos_ = 0;
      }
      return reply;
    }
  }
}

Status SmtpConnector::Session::Fill(Clock::time_point deadline) {
  if (in_pos_ > 0) {
    in_.erase(0, in_pos_);
    in_pos_ = 0;
  }
  char buffer[kReadChunk];
  if (ssl_ == nullptr) {
    Result<size_t> n = ReceiveRaw(buffer, sizeof buffer, deadline);
    if (!n.ok()) return n.error();
    in_.append(buffer, *n);
    return Status::Ok();
  }
  for (;;) {
    ERR_clear_error();
    int n = SSL_read(ssl_, buffer, sizeof buffer);
    if (Status s = FlushTls(deadline); !s.ok()) return s;
    if (n > 0) {
      in_.append(buffer, static_cast<size_t>(n));
      return Status::Ok();
    }
    int error = SSL_get_error(ssl_, n);
    if (error == SSL_ERROR_ZERO_RETURN) return Closed();
    if (error != SSL_ERROR_WANT_READ) return Io("TLS read: " + OpenSslError());
    Result<size_t> got = ReceiveRaw(buffer, sizeof buffer, deadline);
    if (!got.ok()) return got.error();
    BIO_write(SSL_get_rbio(ssl_), buffer, static_cast<int>(*got));
  }
}

Status SmtpConnector::Session::FlushTls(Clock::time_point deadline) {
  BIO* out = SSL_get_wbio(ssl_);
  char* pending = nullptr;
  long size = BIO_get_mem_data(out, &pending);
  if (size <= 0) return Status::Ok();
  Status s = SendRaw(std::string_view(pending, static_cast<size_t>(size)), deadline);
  (void)BIO_reset(out);
  return s;
}

Status SmtpConnector::Session::SendRaw(std::string_view data, Clock::time_point deadline) {
  while (!data.empty()) {
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (Status s = Wait(POLLOUT, deadline); !s.ok()) return s;
      continue;
    }
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) return Closed();
    return Io(std::string("send: ") + std::strerror(errno));
  }
  return Status::Ok();
}

Result<size_t> SmtpConnector::Session::ReceiveRaw(char* buffer, size_t size,
                                                  Clock::time_point deadline) {
  for (;;) {
    // The reply to what was just sent is rarely there yet: wait first, then read once.
    if (Status s = Wait(POLLIN, deadline); !s.ok()) return s.error();
    ssize_t n = ::recv(fd_, buffer, size, 0);
    if (n > 0) return static_cast<size_t>(n);
    if (n == 0) return Closed();
    if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
    if (errno == ECONNRESET) return Closed();
    return Io(std::string("recv: ") + std::strerror(errno));
  }
}

Status SmtpConnector::Session::Wait(short events, Clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return Io("timed out waiting for the server");
    pollfd p{fd_, events, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r > 0) return Status::Ok();  // ready, or an error the next send/recv reports
    if (r < 0 && errno != EINTR) return Io(std::string("poll: ") + std::strerror(errno));
  }
}

Result<SmtpConfig> NormalizeSmtpConfig(SmtpConfig config) {
  std::string url = config.url;
  size_t q = url.find('?');
  if (q != std::string::npos) {
    std::string query = Lower(url.substr(q + 1));
    if (query == "starttls=1" || query == "starttls=true") {
      config.starttls = true;
    } else if (query != "starttls=0" && query != "starttls=false") {
      return Error{"invalid_smtp_url",
                   "unknown SMTP URL option \"" + query + "\"; only starttls=1 is understood"};
    }
    url.resize(q);
  }
  std::string lower = Lower(url);
  bool smtps = lower.rfind("smtps://", 0) == 0;
  if (!smtps && lower.rfind("smtp://", 0) != 0) {
    return Error{"invalid_smtp_url", "SMTP URL must start with smtp:// or smtps://"};
  }
  size_t host_start = smtps ? 8 : 7;
  if (url.find('@', host_start) != std::string::npos) {
    return Error{"invalid_smtp_url", "put credentials in username/password, not in the URL"};
  }
  size_t path = url.find('/', host_start);
  if (path != std::string::npos) {
    if (path + 1 != url.size()) {
      return Error{"invalid_smtp_url", "an SMTP URL has no path; set helo_domain for EHLO"};
    }
    url.resize(path);
  }
  if (smtps && config.starttls) {
    return Error{"invalid_smtp_url", "smtps:// is already TLS; starttls applies to smtp://"};
  }
  if (Result<Endpoint> e = ParseEndpoint(url); !e.ok()) return e.error();
  if (config.helo_domain.find_first_of(" \r\n") != std::string::npos) {
    return Error{"invalid_smtp_url", "helo_domain must be one word"};
  }
  config.url = url;
  return config;
}

Result<std::unique_ptr<SmtpConnector>> SmtpConnector::Create(SmtpConfig config) {
  Result<SmtpConfig> normalized = NormalizeSmtpConfig(std::move(config));
  if (!normalized.ok()) return normalized.error();
  Result<Endpoint> endpoint = ParseEndpoint(normalized->url);
  if (!endpoint.ok()) return endpoint.error();
  SSL_CTX* tls = nullptr;
  if (endpoint->tls || normalized->starttls) {
    tls = SSL_CTX_new(TLS_client_method());
    if (tls == nullptr) return Error{"smtp_tls", "TLS: " + OpenSslError()};
    SSL_CTX_set_min_proto_version(tls, TLS1_2_VERSION);
    bool trusted = true;
    if (normalized->verify_peer) {
      SSL_CTX_set_verify(tls, SSL_VERIFY_PEER, nullptr);
      trusted = normalized->ca_file.empty()
                    ? SSL_CTX_set_default_verify_paths(tls) == 1
                    : SSL_CTX_load_verify_locations(tls, normalized->ca_file.c_str(), nullptr) == 1;
    } else {
      SSL_CTX_set_verify(tls, SSL_VERIFY_NONE, nullptr);
    }
    if (!trusted) {
      std::string error = OpenSslError();
      SSL_CTX_free(tls);
      return Error{"smtp_tls",
                   "cannot load the CA certificates " + normalized->ca_file + ": " + error};
    }
  }
  auto session = std::make_unique<Session>(std::move(*normalized), std::move(*endpoint), tls);
  return std::unique_ptr<SmtpConnector>(new SmtpConnector(std::move(session)));
}

SmtpConnector::SmtpConnector(std::unique_ptr<Session> session) : session_(std::move(session)) {}

SmtpConnector::~SmtpConnector() = default;

Delivery SmtpConnector::Send(const Message& message) {
  Result<std::string> mime = BuildMime(message);
  if (!mime.ok()) {
    return {Delivery::kPermanent, "", mime.error().code + ": " + mime.error().message};
  }
  Result<Mailbox> from = ParseMailbox(message.from);
  Result<Mailbox> to = ParseMailbox(message.to);
  if (!from.ok() || !to.ok()) {  // BuildMime checked both already
    return {Delivery::kPermanent, "", "invalid_address"};
  }
  const std::string data = DataSection(*mime);
  std::lock_guard<std::mutex> lock(mu_);
  Delivery d = session_->Deliver(from->address, to->address, data);
  if (d.outcome == Delivery::kSent && d.provider_id.empty()) {
    d.provider_id = MessageIdFor(message.id, from->address);
  }
  return d;
}

}  // namespace itinera::connectors
