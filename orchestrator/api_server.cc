// The HTTP side of the API: cpp-httplib is used here and nowhere else in orchestrator/.
//
// Every method on every path goes to one catch-all handler, which reads the request (bodies
// through a content reader, so a chunked body is cut off at max_body_bytes instead of being
// buffered whole), hands it to ApiRouter and writes the answer. httplib's own error answers
// (a malformed request, a Content-Length over the limit) are rewritten by the error handler into
// the API's JSON error shape. Every answer is counted before it is written (so a client that
// reads /metrics next sees its own request), wherever it was made.
#include "orchestrator/api_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>

#include "orchestrator/api_router.h"
#include "util/log.h"
#include "util/thread_name.h"

namespace itinera::orch {
namespace {

// A body over the limit is read and thrown away up to this much more, so the client gets to
// read our 413 instead of a reset connection; past it the connection is dropped.
constexpr size_t kMaxDrainBytes = 8 << 20;

const char* ErrorCodeFor(int status) {
  switch (status) {
    case 400:
      return "invalid_request";
    case 404:
      return "not_found";
    case 405:
      return "method_not_allowed";
    case 413:
      return "body_too_large";
    case 414:
      return "uri_too_long";
    case 416:
      return "range_not_satisfiable";
    case 503:
      return "unavailable";
    default:
      return status >= 500 ? "internal" : "invalid_request";
  }
}

std::string ErrorMessageFor(int status, int64_t max_body_bytes) {
  switch (status) {
    case 400:
      return "malformed HTTP request";
    case 413:
      return "the request body is larger than " + std::to_string(max_body_bytes) + " bytes";
    case 414:
      return "the request line is too long";
    default:
      return status >= 500 ? "internal error" : "the request cannot be served";
  }
}

void Write(const ApiResponse& from, httplib::Response& to) {
  to.status = from.status;
  for (const auto& [name, value] : from.headers) to.set_header(name, value);
  to.set_content(from.body, from.content_type);
}

// httplib's pool of connection threads, named "api". It is made on the listening thread, and a
// new thread starts with its creator's name: the listener takes the pool's name while it makes
// the pool, then its own again.
class NamedPool : public httplib::TaskQueue {
 public:
  explicit NamedPool(size_t threads) : pool_(Naming(threads)) { NameThread("api listen"); }

  void enqueue(std::function<void()> fn) override { pool_.enqueue(std::move(fn)); }
  void shutdown() override { pool_.shutdown(); }

 private:
  static size_t Naming(size_t threads) {
    NameThread("api");
    return threads;
  }

  httplib::ThreadPool pool_;
};

}  // namespace

struct ApiServer::Impl {
  Impl(ApiBackend b, ApiOptions o) : backend(std::move(b)), options(std::move(o)) {}

  void Serve(const httplib::Request& req, httplib::Response& res,
             const httplib::ContentReader* reader);
  void Count(const std::string& path, int status);

  ApiBackend backend;
  ApiOptions options;
  std::unique_ptr<MetricsRegistry> own_metrics;  // when backend.metrics is null
  std::unique_ptr<ApiRouter> router;
  httplib::Server server;
  std::thread thread;
  std::atomic<bool> listen_returned{false};
  std::mutex mu;  // Start and Stop
  bool started = false;
  std::atomic<int> port{0};
};

void ApiServer::Impl::Serve(const httplib::Request& req, httplib::Response& res,
                            const httplib::ContentReader* reader) {
  const auto start = std::chrono::steady_clock::now();  // a duration, not a wall-clock reading
  ApiRequest request;
  request.method = req.method;
  request.path = req.path;
  request.query.insert(req.params.begin(), req.params.end());
  request.authorization = req.get_header_value("Authorization");

  ApiResponse response;
  bool read_ok = true;
  bool too_large = false;
  // Without Content-Length or Transfer-Encoding a request has no body (RFC 9112 6.3).
  if (reader && !req.has_header("Content-Length") && !req.has_header("Transfer-Encoding")) {
    reader = nullptr;
  }
  if (reader) {
    const auto limit = static_cast<size_t>(options.max_body_bytes);
    size_t discarded = 0;
    read_ok = (*reader)([&](const char* data, size_t size) {
      if (!too_large && request.body.size() + size <= limit) {
        request.body.append(data, size);
        return true;
      }
      too_large = true;
      discarded += size;
      return discarded <= kMaxDrainBytes;
    });
    // httplib refuses a Content-Length over payload_max_length itself (status 413).
    too_large = too_large || res.status == 413;
  } else {
    request.body = req.body;
  }
  if (too_large) {
    response = ErrorResponse(413, "body_too_large", ErrorMessageFor(413, options.max_body_bytes));
    response.headers.emplace_back("Connection", "close");
  } else if (!read_ok) {
    response = ErrorResponse(400, "invalid_request", "the request body could not be read");
    response.headers.emplace_back("Connection", "close");
  } else {
    try {
      response = router->Handle(request);
    } catch (const std::exception& e) {
      LogError("HTTP handler failed",
               {{"method", req.method}, {"route", RouteLabel(req.path)}, {"error", e.what()}});
      response = ErrorResponse(500, "internal", "internal error");
    }
  }
  Write(response, res);
  Count(req.path, response.status);

  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  backend.metrics
      ->Histogram("itinera_http_request_seconds",
                  "Time to handle an HTTP request (body read included), by route.",
                  {{"route", RouteLabel(req.path)}})
      .Observe(elapsed.count());
}

void ApiServer::Impl::Count(const std::string& path, int status) {
  backend.metrics
      ->Counter("itinera_http_requests_total", "HTTP requests answered, by route and status.",
                {{"route", RouteLabel(path)}, {"code", std::to_string(status)}})
      .Increment();
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

  httplib::Server& server = s.server;
  const int threads = s.options.threads;
  server.new_task_queue = [threads] { return new NamedPool(threads); };
  server.set_payload_max_length(static_cast<size_t>(s.options.max_body_bytes));
  // Responses go out as headers then body: without TCP_NODELAY, Nagle's algorithm holds the
  // body until the client's delayed ACK (40 ms), capping each keep-alive connection at ~25
  // requests per second.
  server.set_tcp_nodelay(true);
  // A keep-alive connection serves up to 100 requests (Apache's default for a server that, like
  // this one, gives a connection a thread while it is open), not httplib's 5: a client sending
  // events one by one reconnected every five. The bound still hands the thread to a waiting
  // client now and then.
  server.set_keep_alive_max_count(100);
  // httplib's default sets SO_REUSEPORT, which lets a second daemon bind the same port and
  // silently share its traffic. SO_REUSEADDR alone still allows a quick restart.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });

  auto serve = [&s](const httplib::Request& req, httplib::Response& res) {
    s.Serve(req, res, nullptr);
  };
  auto serve_body = [&s](const httplib::Request& req, httplib::Response& res,
                         const httplib::ContentReader& reader) { s.Serve(req, res, &reader); };
  const std::string any = ".*";
  server.Get(any, serve);  // also HEAD
  server.Options(any, serve);
  // httplib picks the content-reader variant when a body is expected, the plain one otherwise.
  server.Post(any, serve_body);
  server.Post(any, serve);
  server.Put(any, serve_body);
  server.Put(any, serve);
  server.Patch(any, serve_body);
  server.Patch(any, serve);
  server.Delete(any, serve_body);
  server.Delete(any, serve);

  server.set_pre_routing_handler([&s](const httplib::Request& req, httplib::Response& res) {
    // httplib would buffer a chunked body on a GET whole, ignoring payload_max_length.
    if (req.has_header("Transfer-Encoding") &&
        (req.method == "GET" || req.method == "HEAD" || req.method == "OPTIONS")) {
      Write(ErrorResponse(400, "invalid_request", req.method + " requests carry no body"), res);
      res.set_header("Connection", "close");
      s.Count(req.path, res.status);
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Answers httplib makes itself (status set, no body) get the API's error shape.
  const int64_t max_body = s.options.max_body_bytes;
  server.set_error_handler(httplib::Server::HandlerWithResponse(
      [&s, max_body](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;  // ours
        Write(ErrorResponse(res.status, ErrorCodeFor(res.status),
                            ErrorMessageFor(res.status, max_body)),
              res);
        s.Count(req.path, res.status);
        return httplib::Server::HandlerResponse::Handled;
      }));
  // Serve catches std::exception itself; this is for anything else thrown.
  server.set_exception_handler(
      [&s](const httplib::Request& req, httplib::Response& res, std::exception_ptr) {
        LogError("HTTP handler failed", {{"method", req.method}, {"route", RouteLabel(req.path)}});
        Write(ErrorResponse(500, "internal", "internal error"), res);
        s.Count(req.path, res.status);
      });

  const std::string address = s.options.host + ":" + std::to_string(s.options.port);
  errno = 0;
  int bound = s.options.port;
  if (s.options.port == 0) {
    bound = server.bind_to_any_port(s.options.host);
  } else if (!server.bind_to_port(s.options.host, s.options.port)) {
    bound = -1;
  }
  if (bound < 0) {
    const int error = errno;
    std::string why = error == EADDRINUSE ? "the address is already in use (is another "
                                            "itinera serve running?)"
                      : error != 0        ? std::strerror(error)
                                          : "the address cannot be bound";
    return Error{"listen", "cannot listen on " + address + ": " + why};
  }
  s.port = bound;
  s.started = true;
  s.thread = std::thread([&s] {
    NameThread("api listen");
    s.server.listen_after_bind();
    s.listen_returned = true;
  });
  // Stop() is only safe once the accept loop runs (httplib ignores stop() before that).
  while (!s.server.is_running() && !s.listen_returned) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return Status::Ok();
}

void ApiServer::Stop() {
  std::lock_guard lock(impl_->mu);
  if (!impl_->thread.joinable()) return;
  impl_->server.stop();
  impl_->thread.join();  // the worker pool finishes in-flight requests before listen returns
}

}  // namespace itinera::orch
