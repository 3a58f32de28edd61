// Test-only HTTP peer for the HTTP connectors: a real cpp-httplib server on a free loopback port,
// running on a background thread for the lifetime of the object. It records every request
// (method, path, headers, body, decoded form fields, client port) and answers with scripted
// replies in order, then with 200 "ok". A reply may be delayed (to provoke client timeouts); the
// delay ends early when the sink is destroyed, so tests never wait for it. Thread-safe.
//
// Destroy the clients (connectors) before the sink: an idle keep-alive connection holds a server
// thread until the client closes it or the keep-alive timeout (1 s here) passes.
#ifndef ITINERA_TESTS_CONNECTORS_HTTP_SINK_H_
#define ITINERA_TESTS_CONNECTORS_HTTP_SINK_H_

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace itinera::connectors::testing {

struct RecordedRequest {
  std::string method;
  std::string path;
  httplib::Headers headers;  // case-insensitive names
  std::string body;          // as received, byte for byte
  httplib::Params params;    // form fields of an x-www-form-urlencoded body, decoded
  int remote_port = 0;       // the client's port: equal ports mean a reused connection

  // The first value of header `name`, or "" when absent.
  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
  bool HasHeader(const std::string& name) const { return headers.count(name) > 0; }
  // The first value of form field `name`, or "" when absent.
  std::string Param(const std::string& name) const {
    auto it = params.find(name);
    return it == params.end() ? "" : it->second;
  }
};

struct Reply {
  int status = 200;
  std::string body = "ok";
  std::string content_type = "text/plain";
  std::vector<std::pair<std::string, std::string>> headers;
  std::chrono::milliseconds delay{0};  // before answering
};

class HttpSink {
 public:
  HttpSink() {
    server_.set_keep_alive_timeout(1);
    server_.set_tcp_nodelay(true);  // no 40 ms Nagle stalls between header and body writes
    auto handler = [this](const httplib::Request& req, httplib::Response& res) {
      Handle(req, res);
    };
    server_.Get(".*", handler);
    server_.Post(".*", handler);
    server_.Put(".*", handler);
    server_.Patch(".*", handler);
    server_.Delete(".*", handler);
    port_ = server_.bind_to_any_port("127.0.0.1");
    if (port_ <= 0) return;
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() is a no-op until the loop runs, so the destructor needs it running. The socket
    // already listens, so clients could connect before this anyway.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (!server_.is_running() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  ~HttpSink() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    wake_.notify_all();
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }

  HttpSink(const HttpSink&) = delete;
  HttpSink& operator=(const HttpSink&) = delete;

  bool running() const { return port_ > 0 && server_.is_running(); }
  int port() const { return port_; }
  std::string Url(std::string_view path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
  }

  // The next request not yet answered by an earlier scripted reply gets `reply`.
  void Script(Reply reply) {
    std::lock_guard<std::mutex> lock(mu_);
    script_.push_back(std::move(reply));
  }

  std::vector<RecordedRequest> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  void Handle(const httplib::Request& req, httplib::Response& res) {
    RecordedRequest recorded{req.method, req.path,   req.headers,
                             req.body,   req.params, req.remote_port};
    Reply reply;
    {
      std::unique_lock<std::mutex> lock(mu_);
      requests_.push_back(std::move(recorded));
      if (!script_.empty()) {
        reply = std::move(script_.front());
        script_.pop_front();
      }
      if (reply.delay.count() > 0) {
        wake_.wait_for(lock, reply.delay, [this] { return stopping_; });
      }
    }
    res.status = reply.status;
    for (const auto& [name, value] : reply.headers) res.set_header(name, value);
    res.set_content(reply.body, reply.content_type.c_str());
  }

  httplib::Server server_;
  std::thread thread_;
  int port_ = -1;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::deque<Reply> script_;
  std::vector<RecordedRequest> requests_;
};

// A loopback port nothing listens on (bound, read and released): connecting is refused.
inline int UnusedLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

}  // namespace itinera::connectors::testing

#endif  // ITINERA_TESTS_CONNECTORS_HTTP_SINK_H_
