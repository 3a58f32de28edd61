// The HTTP side of the API: Boost.Beast's HTTP/1.1 parser on an Asio event loop.
//
// One thread ("api") runs the loop: it accepts connections, reads every connection's requests
// and writes their answers; no connection holds a thread while it is open or while its request
// waits. What may block goes elsewhere:
// - POST /v1/events is checked on the loop and handed to backend.advance_events, whose answer
//   comes back to the loop; the events it declines, like every request when there is no
//   advance_events, are appended on a worker thread.
// - Every other request runs ApiRouter::Handle on a worker thread ("api work", options.threads
//   of them), since it reads or writes the store; its answer is written by the loop.
// So a thousand idle keep-alive connections cost a thousand sockets, not a thousand threads, and
// the processor's commit answers a batch of requests by waking one thread, not one per request.
//
// Errors the parser finds get the API's JSON error shape: a body over max_body_bytes is 413 (the
// rest of the body is read and thrown away, up to kMaxDrainBytes, so that the client gets to
// read the answer), a malformed request 400, a request line over kMaxRequestLine 414. Every
// answer is counted before it is written (so a client that reads /metrics next sees its own
// request).
#include "orchestrator/api_server.h"

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include "orchestrator/api_router.h"
#include "util/log.h"
#include "util/thread_name.h"

namespace itinera::orch {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using ErrorCode = boost::system::error_code;

// A body over the limit is read and thrown away up to this much more, so the client gets to
// read our 413 instead of a reset connection; past it the connection is dropped.
constexpr uint64_t kMaxDrainBytes = 8 << 20;
// A request's target over kMaxRequestLine is answered 414; headers over kMaxHeaderBytes 400.
constexpr uint32_t kMaxHeaderBytes = 16 << 10;
constexpr size_t kMaxRequestLine = 8 << 10;
// A keep-alive connection with no request for this long is closed; so is one whose request or
// answer stalls this long.
constexpr auto kIdleTimeout = std::chrono::seconds(5);
constexpr auto kIoTimeout = std::chrono::seconds(5);

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX decoded (an invalid escape is kept as it is); '+' is a space in a query, not in a path.
std::string Decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      const int hi = HexDigit(s[i + 1]);
      const int lo = HexDigit(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && s[i] == '+' ? ' ' : s[i]);
  }
  return out;
}

void ParseQuery(std::string_view query, std::multimap<std::string, std::string>& into) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    if (eq == std::string_view::npos) {
      into.emplace(Decode(pair, true), "");
    } else {
      into.emplace(Decode(pair.substr(0, eq), true), Decode(pair.substr(eq + 1), true));
    }
  }
}

std::string_view View(beast::string_view s) { return {s.data(), s.size()}; }

bool IsQuietEnd(const ErrorCode& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
         ec == beast::error::timeout || ec == asio::error::broken_pipe;
}

}  // namespace

struct ApiServer::Impl {
  class Session;

  Impl(ApiBackend b, ApiOptions o) : backend(std::move(b)), options(std::move(o)) {}

  void Accept();
  // Counts an answer in the HTTP metrics, with the time since `start`.
  void Count(std::string_view path, int status, std::chrono::steady_clock::time_point start);
  ApiResponse HandleSafely(const ApiRequest& request);

  ApiBackend backend;
  ApiOptions options;
  std::unique_ptr<MetricsRegistry> own_metrics;  // when backend.metrics is null
  std::unique_ptr<ApiRouter> router;

  asio::io_context io{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> io_work;
  std::optional<tcp::acceptor> acceptor;
  std::optional<asio::steady_timer> accept_retry;
  std::thread loop;
  asio::io_context work_io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_guard;
  std::vector<std::thread> workers;

  bool stopping = false;        // on the loop
  bool accept_failing = false;  // on the loop: the last accept failed
  std::mutex sessions_mu;
  std::set<Session*> sessions;

  std::mutex mu;  // Start and Stop
  bool started = false;
  std::atomic<int> port{0};
};

class ApiServer::Impl::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Impl& server, tcp::socket socket) : server_(server), stream_(std::move(socket)) {
    std::lock_guard lock(server_.sessions_mu);
    server_.sessions.insert(this);
  }
  ~Session() {
    std::lock_guard lock(server_.sessions_mu);
    server_.sessions.erase(this);
  }

  void ReadHeader();
  // At Stop: a connection waiting for its next request, or draining, is closed; one with a
  // request under way is closed once that request is answered. The wait is cancelled, not the
  // socket closed: a request the loop has already received completes, and is answered.
  void CloseIfIdle() {
    ErrorCode ignored;
    if ((waiting_ && buffer_.size() == 0) || draining_) stream_.socket().cancel(ignored);
  }

 private:
  void OnHeader(const ErrorCode& ec);
  // Reads the body piece by piece, each within kIoTimeout.
  void ReadBody();
  // An error the parser found: answered, then the connection is closed.
  void Refuse(const ErrorCode& ec);
  void Dispatch();
  void AdvanceEvents(std::vector<NewEvent> events);
  // Writes `answer()` from the loop (a posted task keeps the loop running until then).
  void AnswerOnLoop(std::function<ApiResponse()> answer);
  // The same, `answer` run first on a worker thread: it may block.
  void AnswerFromWorker(std::function<ApiResponse()> answer);
  // On the loop: writes the answer, then reads the next request or closes.
  void Reply(ApiResponse response);
  // Writes out_ from `written` on, each piece within kIoTimeout, then calls `then`.
  void Write(size_t written, void (Session::*then)(const ErrorCode&));
  void OnWritten(const ErrorCode& ec);
  void OnContinue(const ErrorCode& ec);
  void Close();
  // Reads and discards what the client still sends (up to kMaxDrainBytes), then closes.
  void Drain();

  Impl& server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  ApiRequest request_;
  std::chrono::steady_clock::time_point start_;
  bool waiting_ = false;     // for the next request's first bytes
  bool keep_alive_ = false;  // after the answer being written
  bool drain_ = false;       // the request's body was not read whole
  bool draining_ = false;
  std::string out_;
  uint64_t drained_ = 0;
};

void ApiServer::Impl::Session::ReadHeader() {
  if (server_.stopping) return Close();
  request_ = ApiRequest{};
  parser_.emplace();
  parser_->body_limit(static_cast<uint64_t>(server_.options.max_body_bytes));
  parser_->header_limit(kMaxHeaderBytes);
  waiting_ = true;
  stream_.expires_after(kIdleTimeout);
  http::async_read_header(stream_, buffer_, *parser_,
                          [self = shared_from_this()](const ErrorCode& ec, size_t) {
                            self->waiting_ = false;
                            self->OnHeader(ec);
                          });
}

void ApiServer::Impl::Session::OnHeader(const ErrorCode& ec) {
  start_ = std::chrono::steady_clock::now();  // a duration, not a wall-clock reading
  if (ec) return Refuse(ec);
  const auto& req = parser_->get();
  if (req.target().size() > kMaxRequestLine) {
    drain_ = true;
    return Reply(ErrorResponse(414, "uri_too_long", "the request line is too long"));
  }
  const auto method = req.method();
  if ((method == http::verb::get || method == http::verb::head || method == http::verb::options) &&
      req.find(http::field::transfer_encoding) != req.end()) {
    // A chunked body where none belongs: not read, the connection closes after the answer.
    drain_ = true;
    ApiResponse r = ErrorResponse(400, "invalid_request",
                                  std::string(req.method_string()) + " requests carry no body");
    request_.path = std::string(req.target().substr(0, req.target().find('?')));
    return Reply(std::move(r));
  }
  if (parser_->is_done()) return Dispatch();
  if (req.version() >= 11 && beast::iequals(req[http::field::expect], "100-continue")) {
    // The client waits for this before it sends the body (curl does, for large bodies).
    out_ = "HTTP/1.1 100 Continue\r\n\r\n";
    return Write(0, &Session::OnContinue);
  }
  ReadBody();
}

void ApiServer::Impl::Session::OnContinue(const ErrorCode& ec) {
  if (ec) return Close();
  ReadBody();
}

void ApiServer::Impl::Session::ReadBody() {
  if (parser_->is_done()) return Dispatch();
  stream_.expires_after(kIoTimeout);
  http::async_read_some(stream_, buffer_, *parser_,
                        [self = shared_from_this()](const ErrorCode& ec, size_t) {
                          if (ec) return self->Refuse(ec);
                          self->ReadBody();
                        });
}

void ApiServer::Impl::Session::Refuse(const ErrorCode& ec) {
  // For the metrics' route label: the target is known once the request line is read (a
  // Content-Length over the limit is refused before the header counts as done).
  const auto target = parser_->get().target();
  request_.path = std::string(target.substr(0, target.find('?')));
  const int64_t max_body = server_.options.max_body_bytes;
  if (ec == http::error::body_limit) {
    drain_ = true;
    return Reply(
        ErrorResponse(413, "body_too_large",
                      "the request body is larger than " + std::to_string(max_body) + " bytes"));
  }
  if (ec == http::error::header_limit) {
    drain_ = true;
    // The parser takes the request line first, then the fields, each within the limit: no
    // target yet means the request line alone was too long.
    if (parser_->get().target().empty()) {
      return Reply(ErrorResponse(414, "uri_too_long", "the request line is too long"));
    }
    return Reply(ErrorResponse(400, "invalid_request", "the request headers are too large"));
  }
  if (IsQuietEnd(ec) || ec == http::error::partial_message) {
    // The client went away, closed its idle connection, or stalled past the timeout.
    return Close();
  }
  drain_ = true;
  if (parser_->is_header_done()) {
    return Reply(ErrorResponse(400, "invalid_request", "the request body could not be read"));
  }
  Reply(ErrorResponse(400, "invalid_request", "malformed HTTP request"));
}

void ApiServer::Impl::Session::Dispatch() {
  auto& req = parser_->get();
  request_.method = std::string(req.method_string());
  const std::string_view target = View(req.target());
  const size_t question = target.find('?');
  request_.path = Decode(target.substr(0, question), false);
  request_.query.clear();
  if (question != std::string_view::npos) ParseQuery(target.substr(question + 1), request_.query);
  request_.authorization = std::string(req[http::field::authorization]);
  request_.body = std::move(req.body());
  stream_.expires_never();  // while the request is handled

  Impl& s = server_;
  if (s.backend.advance_events && request_.method == "POST" && request_.path == "/v1/events") {
    std::variant<ApiResponse, std::vector<NewEvent>> prepared;
    // Nothing may escape to the loop. A throwing advance_events has not taken the events.
    try {
      prepared = s.router->PrepareEvents(request_);
      if (auto* refused = std::get_if<ApiResponse>(&prepared)) return Reply(std::move(*refused));
      return AdvanceEvents(std::move(std::get<std::vector<NewEvent>>(prepared)));
    } catch (const std::exception& e) {
      LogError("HTTP handler failed",
               {{"method", request_.method}, {"route", "/v1/events"}, {"error", e.what()}});
    } catch (...) {
      LogError("HTTP handler failed", {{"method", request_.method}, {"route", "/v1/events"}});
    }
    return Reply(ErrorResponse(500, "internal", "internal error"));
  }
  AnswerFromWorker(
      [self = shared_from_this()] { return self->server_.HandleSafely(self->request_); });
}

void ApiServer::Impl::Session::AdvanceEvents(std::vector<NewEvent> events) {
  Impl& s = server_;
  const auto accepted = static_cast<int64_t>(events.size());
  // Keeps the loop running until `done` is called, and no longer: `done` may outlive it.
  auto guard = std::make_shared<asio::executor_work_guard<asio::io_context::executor_type>>(
      s.io.get_executor());
  s.backend.advance_events(
      std::move(events), [self = shared_from_this(), guard, accepted](
                             std::optional<Status> status, std::vector<NewEvent>&& back) {
        const ApiRouter& router = *self->server_.router;
        if (status) {
          self->AnswerOnLoop(
              [&router, status, accepted] { return router.EventsAnswer(*status, accepted); });
        } else {  // declined: appended to the inbox, which blocks
          self->AnswerFromWorker([self, &router, events = std::move(back), accepted]() mutable {
            Status appended = Status::Ok();
            try {
              appended = self->server_.backend.append_events(std::move(events));
            } catch (const std::exception& e) {
              LogError("HTTP handler failed",
                       {{"method", "POST"}, {"route", "/v1/events"}, {"error", e.what()}});
              appended = Error{"internal", e.what()};
            }
            return router.EventsAnswer(appended, accepted);
          });
        }
        guard->reset();
      });
}

void ApiServer::Impl::Session::AnswerOnLoop(std::function<ApiResponse()> answer) {
  asio::post(server_.io,
             [self = shared_from_this(), answer = std::move(answer)] { self->Reply(answer()); });
}

void ApiServer::Impl::Session::AnswerFromWorker(std::function<ApiResponse()> answer) {
  auto guard = std::make_shared<asio::executor_work_guard<asio::io_context::executor_type>>(
      server_.io.get_executor());
  asio::post(server_.work_io, [self = shared_from_this(), guard, answer = std::move(answer)] {
    self->AnswerOnLoop([response = answer()]() mutable { return std::move(response); });
  });
}

void ApiServer::Impl::Session::Reply(ApiResponse response) {
  server_.Count(request_.path, response.status, start_);
  bool close = drain_ || server_.stopping || !parser_ || !parser_->is_header_done() ||
               !parser_->keep_alive();
  for (const auto& [name, value] : response.headers) {
    if (beast::iequals(name, "Connection") && beast::iequals(value, "close")) close = true;
  }
  keep_alive_ = !close;
  const bool head =
      parser_ && parser_->is_header_done() && parser_->get().method() == http::verb::head;
  out_.clear();
  out_ += "HTTP/1.1 ";
  out_ += std::to_string(response.status);
  out_ += ' ';
  out_ += View(http::obsolete_reason(static_cast<http::status>(response.status)));
  out_ += "\r\nContent-Type: ";
  out_ += response.content_type;
  out_ += "\r\nContent-Length: ";
  out_ += std::to_string(response.body.size());
  for (const auto& [name, value] : response.headers) {
    if (beast::iequals(name, "Connection")) continue;
    out_ += "\r\n";
    out_ += name;
    out_ += ": ";
    out_ += value;
  }
  if (close) {
    out_ += "\r\nConnection: close";
  } else if (parser_->get().version() < 11) {
    out_ += "\r\nConnection: keep-alive";
  }
  out_ += "\r\n\r\n";
  if (!head) out_ += response.body;
  Write(0, &Session::OnWritten);
}

void ApiServer::Impl::Session::Write(size_t written, void (Session::*then)(const ErrorCode&)) {
  if (written == out_.size()) return (this->*then)(ErrorCode());
  stream_.expires_after(kIoTimeout);
  stream_.async_write_some(
      asio::buffer(out_.data() + written, out_.size() - written),
      [self = shared_from_this(), written, then](const ErrorCode& ec, size_t n) {
        if (ec) return ((*self).*then)(ec);
        self->Write(written + n, then);
      });
}

void ApiServer::Impl::Session::OnWritten(const ErrorCode& ec) {
  if (ec) return Close();
  if (keep_alive_) return ReadHeader();
  if (drain_) return Drain();
  Close();
}

void ApiServer::Impl::Session::Close() {
  ErrorCode ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream_.socket().close(ignored);
}

void ApiServer::Impl::Session::Drain() {
  if (!draining_) {
    draining_ = true;
    ErrorCode ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    drained_ = buffer_.size();
    buffer_.clear();
    stream_.expires_after(kIoTimeout);  // for the whole drain
  }
  if (drained_ > kMaxDrainBytes) return Close();
  stream_.async_read_some(buffer_.prepare(64 << 10),
                          [self = shared_from_this()](const ErrorCode& ec, size_t n) {
                            if (ec) return self->Close();
                            self->drained_ += n;
                            self->Drain();
                          });
}

void ApiServer::Impl::Accept() {
  acceptor->async_accept(io, [this](const ErrorCode& ec, tcp::socket socket) {
    if (stopping || ec == asio::error::operation_aborted) return;
    if (ec) {
      // Out of descriptors or memory: try again shortly rather than spin; said once.
      if (!accept_failing) LogWarn("cannot accept an HTTP connection", {{"error", ec.message()}});
      accept_failing = true;
      accept_retry->expires_after(std::chrono::milliseconds(100));
      accept_retry->async_wait([this](const ErrorCode& e) {
        if (!e && !stopping) Accept();
      });
      return;
    }
    if (accept_failing) LogInfo("accepting HTTP connections again");
    accept_failing = false;
    // Without TCP_NODELAY, Nagle's algorithm could hold an answer's tail until the client's
    // delayed ACK (40 ms).
    ErrorCode ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    std::make_shared<Session>(*this, std::move(socket))->ReadHeader();
    Accept();
  });
}

ApiResponse ApiServer::Impl::HandleSafely(const ApiRequest& request) {
  try {
    return router->Handle(request);
  } catch (const std::exception& e) {
    LogError(
        "HTTP handler failed",
        {{"method", request.method}, {"route", RouteLabel(request.path)}, {"error", e.what()}});
  } catch (...) {
    LogError("HTTP handler failed",
             {{"method", request.method}, {"route", RouteLabel(request.path)}});
  }
  return ErrorResponse(500, "internal", "internal error");
}

void ApiServer::Impl::Count(std::string_view path, int status,
                            std::chrono::steady_clock::time_point start) {
  const std::string route = RouteLabel(path);
  backend.metrics
      ->Counter("itinera_http_requests_total", "HTTP requests answered, by route and status.",
                {{"route", route}, {"code", std::to_string(status)}})
      .Increment();
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  backend.metrics
      ->Histogram("itinera_http_request_seconds",
                  "Time to handle an HTTP request (body read included), by route.",
                  {{"route", route}})
      .Observe(elapsed.count());
}

ApiServer::ApiServer(ApiBackend backend, ApiOptions options)
    : impl_(std::make_unique<Impl>(std::move(backend), std::move(options))) {}

ApiServer::~ApiServer() { Stop(); }

int ApiServer::port() const { return impl_->port.load(); }

Status ApiServer::Start() {
  std::lock_guard lock(impl_->mu);
  Impl& s = *impl_;
  if (s.started) return Error{"invalid_argument", "the API server is already started"};
  if (!s.backend.store || !s.backend.clock || !s.backend.append_events ||
      !s.backend.upsert_customer || !s.backend.journeys) {
    return Error{"invalid_argument",
                 "the API server needs a store, a clock, append_events, upsert_customer and "
                 "journeys"};
  }
  if (s.options.max_body_bytes <= 0 || s.options.threads <= 0 || s.options.port < 0 ||
      s.options.port > 65535) {
    return Error{"invalid_argument",
                 "max_body_bytes and threads must be positive and port in "
                 "0..65535"};
  }
  if (!s.backend.metrics) {
    s.own_metrics = std::make_unique<MetricsRegistry>();
    s.backend.metrics = s.own_metrics.get();
  }
  s.router = std::make_unique<ApiRouter>(s.backend, s.options);

  const std::string address = s.options.host + ":" + std::to_string(s.options.port);
  ErrorCode ec;
  tcp::resolver resolver(s.io);
  // An empty host is every IPv4 interface.
  auto endpoints = resolver.resolve(s.options.host.empty() ? "0.0.0.0" : s.options.host,
                                    std::to_string(s.options.port),
                                    tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty()) {
    return Error{"listen", "cannot listen on " + address + ": " +
                               (ec ? ec.message() : "the host has no address")};
  }
  tcp::acceptor acceptor(s.io);
  const tcp::endpoint endpoint = endpoints.begin()->endpoint();
  acceptor.open(endpoint.protocol(), ec);
  // SO_REUSEADDR allows a quick restart; SO_REUSEPORT is not set, so a second daemon cannot
  // bind the same port and silently share its traffic.
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    std::string why = ec == asio::error::address_in_use
                          ? "the address is already in use (is another itinera serve running?)"
                          : ec.message();
    return Error{"listen", "cannot listen on " + address + ": " + why};
  }
  s.port = acceptor.local_endpoint().port();
  s.acceptor.emplace(std::move(acceptor));
  s.accept_retry.emplace(s.io);
  s.started = true;

  s.io_work.emplace(s.io.get_executor());
  s.work_guard.emplace(s.work_io.get_executor());
  for (int i = 0; i < s.options.threads; ++i) {
    s.workers.emplace_back([&s] {
      NameThread("api work");
      s.work_io.run();
    });
  }
  s.Accept();
  s.loop = std::thread([&s] {
    NameThread("api");
    s.io.run();
  });
  return Status::Ok();
}

void ApiServer::Stop() {
  std::lock_guard lock(impl_->mu);
  Impl& s = *impl_;
  if (!s.loop.joinable()) return;
  asio::post(s.io, [&s] {
    s.stopping = true;
    ErrorCode ignored;
    s.acceptor->close(ignored);
    s.accept_retry->cancel();
    std::lock_guard sessions_lock(s.sessions_mu);
    for (Impl::Session* session : s.sessions) session->CloseIfIdle();
  });
  // The loop returns once every connection is closed and every request it has taken is
  // answered (a request waiting on a worker or on advance_events holds a work guard).
  s.io_work.reset();
  s.loop.join();
  s.work_guard.reset();
  for (std::thread& t : s.workers) t.join();
  s.workers.clear();
}

}  // namespace itinera::orch
