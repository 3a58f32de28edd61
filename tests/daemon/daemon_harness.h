// Test-only harness that runs `itinera serve` as a real process, the way an operator does.
//
// A Daemon owns a fresh temporary folder holding itinera.toml, journeys/*.journey and
// templates/*.mustache; it picks a free loopback port, starts ITINERA_BINARY with fork/exec
// (stdout and stderr appended to <folder>/daemon.log), waits for GET /healthz, and talks to it
// with cpp-httplib. The process is stopped with SIGTERM (graceful) or SIGKILL (a crash) and can
// be started again on the same folder. Everything is RAII: the destructor kills a daemon still
// running and removes the folder (set ITINERA_KEEP_TEST_DIRS=1 to keep it for a post-mortem),
// and a daemon dies with the test process (PR_SET_PDEATHSIG), so a failing or crashing test
// never leaves one behind.
//
// SmtpPeer runs tests/connectors/smtp_server.py (Debian's aiosmtpd, /usr/bin/python3) for the
// daemon's SMTP connector. Not thread-safe: drive a Daemon from the test's main thread (Client()
// makes independent clients for other threads).
#ifndef ITINERA_TESTS_DAEMON_DAEMON_HARNESS_H_
#define ITINERA_TESTS_DAEMON_DAEMON_HARNESS_H_

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/connectors/mime_parse.h"

namespace itinera::daemon_testing {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

inline std::string ReadText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void WriteText(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  // Written beside and renamed, so a daemon reloading at that moment never reads half a file.
  fs::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
  }
  fs::rename(tmp, path);
}

// A loopback port that was free a moment ago (bound to port 0, read, released).
inline int FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

// Polls `done` every 50 ms until it is true (returns true) or `timeout` passes (returns false).
inline bool WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(50ms);
  }
}

// Runs `work(i)` for every i in [0, n) on `threads` threads (clients hitting a daemon at once).
inline void Parallel(int n, int threads, const std::function<void(int)>& work) {
  std::atomic<int> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (int i = next++; i < n; i = next++) work(i);
    });
  }
  for (auto& th : pool) th.join();
}

// An HTTP answer with its body parsed as JSON when it is JSON (else null).
struct Reply {
  int status = 0;  // 0: no answer (connection failed)
  std::string body;
  json doc;
  httplib::Headers headers;

  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
  // The error code of a {"error": {"code", "message"}} body, or "".
  std::string ErrorCode() const {
    if (!doc.is_object() || !doc.contains("error") || !doc["error"].is_object()) return "";
    const json& e = doc["error"];
    return e.contains("code") && e["code"].is_string() ? e["code"].get<std::string>() : "";
  }
};

inline Reply ToReply(const httplib::Result& r) {
  Reply out;
  if (!r) return out;
  out.status = r->status;
  out.body = r->body;
  out.headers = r->headers;
  out.doc = json::parse(r->body, nullptr, /*allow_exceptions=*/false);
  if (out.doc.is_discarded()) out.doc = nullptr;
  return out;
}

// The itinera.toml a Daemon writes. [server] listen and public_url, [email] from and [delivery]
// retry_initial = "1s", retry_max = "2s" and lease (default "3s": a killed daemon's claims come
// back within seconds) are always set; the other strings add lines.
struct ConfigText {
  std::string server;                               // more lines in [server]
  std::string email = "connector = \"maildir\"\n";  // lines in [email] besides `from`
  std::string delivery;                             // more lines in [delivery]
  std::string lease = "3s";                         // [delivery] lease
  std::string rest;                                 // further sections ([sms], teams, webhooks)
};

inline constexpr char kFromAddress[] = "hello@dealer.example";

class Daemon {
 public:
  Daemon() {
    std::string pattern = (fs::temp_directory_path() / "itinera-daemon-XXXXXX").string();
    if (::mkdtemp(pattern.data()) != nullptr) dir_ = pattern;
    port_ = FreeLoopbackPort();
    WriteConfig(ConfigText{});
  }
  ~Daemon() {
    if (pid_ > 0) Kill();
    const char* keep = std::getenv("ITINERA_KEEP_TEST_DIRS");
    std::error_code ec;
    if (!dir_.empty() && !(keep && *keep)) fs::remove_all(dir_, ec);
  }
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  const fs::path& dir() const { return dir_; }
  int port() const { return port_; }
  std::string BaseUrl() const { return "http://127.0.0.1:" + std::to_string(port_); }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }

  // ---- the folder ----

  void WriteConfig(const ConfigText& c) {
    std::string text = "[server]\nlisten = \"127.0.0.1:" + std::to_string(port_) +
                       "\"\npublic_url = \"" + BaseUrl() + "\"\n" + c.server +
                       "\n[email]\nfrom = \"Vltava Motors <" + kFromAddress + ">\"\n" + c.email +
                       "\n[delivery]\nretry_initial = \"1s\"\nretry_max = \"2s\"\nlease = \"" +
                       c.lease + "\"\n" + c.delivery + "\n" + c.rest;
    WriteText(dir_ / "itinera.toml", text);
  }
  void WriteJourney(const std::string& id, const std::string& text) {
    WriteText(dir_ / "journeys" / (id + ".journey"), text);
  }
  // `file` such as "offer.email.mustache".
  void WriteTemplate(const std::string& file, const std::string& text) {
    WriteText(dir_ / "templates" / file, text);
  }
  // The messages the Maildir connector delivered (var/mail/new).
  std::vector<fs::path> MailFiles() const {
    std::vector<fs::path> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_ / "var" / "mail" / "new", ec)) {
      out.push_back(e.path());
    }
    return out;
  }

  // ---- the process ----

  // Starts `itinera serve --config <dir>/itinera.toml` and waits until /healthz answers 200.
  // On failure records a test failure with the daemon's log and returns false.
  bool Start(std::chrono::milliseconds timeout = 10s) {
    if (pid_ > 0) {
      ADD_FAILURE() << "the daemon is already running";
      return false;
    }
    std::string config = (dir_ / "itinera.toml").string();
    std::string log = (dir_ / "daemon.log").string();
    std::string cwd = dir_.string();
    // Everything the child needs is prepared before fork: only async-signal-safe calls after.
    std::vector<std::string> args = {ITINERA_BINARY, "serve", "--config", config};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_text;
    for (char** e = environ; *e != nullptr; ++e) {
      std::string_view v(*e);
      if (v.rfind("ITINERA_", 0) == 0) continue;  // no stray tokens or secrets from the caller
      env_text.emplace_back(v);
    }
    env_text.push_back("ITINERA_LOG_LEVEL=" + log_level_);
    for (const auto& extra : env_) env_text.push_back(extra);
    std::vector<char*> envp;
    for (auto& e : env_text) envp.push_back(e.data());
    envp.push_back(nullptr);
    int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) {
      ADD_FAILURE() << "cannot open " << log;
      return false;
    }
    const pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
      int devnull = ::open("/dev/null", O_RDONLY);
      if (devnull >= 0) ::dup2(devnull, 0);
      for (int fd = 3; fd < 4096; ++fd) ::close(fd);  // sinks' sockets, pipes: not the daemon's
      if (::chdir(cwd.c_str()) != 0) ::_exit(127);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(log_fd);
    if (pid < 0) {
      ADD_FAILURE() << "fork failed";
      return false;
    }
    pid_ = pid;
    client_.reset();
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        ADD_FAILURE() << "itinera serve exited during start-up ("
                      << (WIFEXITED(status) ? "status " + std::to_string(WEXITSTATUS(status))
                                            : "signal " + std::to_string(WTERMSIG(status)))
                      << "); its log:\n"
                      << Log();
        return false;
      }
      httplib::Client probe("127.0.0.1", port_);
      probe.set_connection_timeout(0, 200000);
      probe.set_read_timeout(1, 0);
      auto r = probe.Get("/healthz");
      if (r && r->status == 200) return true;
      std::this_thread::sleep_for(50ms);
    }
    ADD_FAILURE() << "itinera serve did not answer GET /healthz within " << timeout.count()
                  << " ms; its log:\n"
                  << Log();
    Kill();
    return false;
  }

  // SIGTERM and wait: the exit status (-1 when killed by a signal or when it does not stop
  // within `timeout`, after which it is killed).
  int Stop(std::chrono::milliseconds timeout = 15s) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    int status = 0;
    if (!Reap(timeout, &status)) {
      ADD_FAILURE() << "itinera serve did not stop within " << timeout.count()
                    << " ms of SIGTERM; killing it. Its log:\n"
                    << Log();
      Kill();
      return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  // SIGKILL (a crash: nothing is flushed or drained) and reap.
  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    client_.reset();
  }

  void Hup() const {
    if (pid_ > 0) ::kill(pid_, SIGHUP);
  }

  // Environment for the next Start ("NAME=value"); ITINERA_* of the test process are not passed.
  void SetEnv(const std::string& assignment) { env_.push_back(assignment); }
  void SetLogLevel(const std::string& level) { log_level_ = level; }
  // The API token the clients send (empty: none).
  void SetToken(const std::string& token) {
    token_ = token;
    client_.reset();
  }

  // ---- logs ----

  std::string Log() const { return ReadText(dir_ / "daemon.log"); }
  // The structured (JSON) lines of the log, in order; anything else is skipped.
  std::vector<json> LogLines() const {
    std::vector<json> out;
    std::istringstream in(Log());
    std::string line;
    while (std::getline(in, line)) {
      json j = json::parse(line, nullptr, false);
      if (!j.is_discarded() && j.is_object()) out.push_back(std::move(j));
    }
    return out;
  }
  // The log lines whose "msg" contains `text`.
  std::vector<json> LogLinesWith(const std::string& text) const {
    std::vector<json> out;
    for (json& j : LogLines()) {
      if (j.contains("msg") && j["msg"].is_string() &&
          j["msg"].get<std::string>().find(text) != std::string::npos) {
        out.push_back(std::move(j));
      }
    }
    return out;
  }

  // ---- HTTP ----

  // A new client (for use on another thread), sending the token when one is set.
  std::unique_ptr<httplib::Client> Client() const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", port_);
    c->set_connection_timeout(2, 0);
    c->set_read_timeout(15, 0);
    c->set_write_timeout(5, 0);
    if (!token_.empty()) c->set_bearer_token_auth(token_.c_str());
    return c;
  }
  httplib::Client& client() {
    if (!client_) client_ = Client();
    return *client_;
  }

  Reply Get(const std::string& path) { return ToReply(client().Get(path.c_str())); }
  Reply Delete(const std::string& path) { return ToReply(client().Delete(path.c_str())); }
  Reply Post(const std::string& path, const std::string& body) {
    return ToReply(client().Post(path.c_str(), body, "application/json"));
  }
  Reply Put(const std::string& path, const std::string& body) {
    return ToReply(client().Put(path.c_str(), body, "application/json"));
  }

  // PUT /v1/customers/{id}; expects 200.
  void PutCustomer(const std::string& id, const json& profile) {
    Reply r = Put("/v1/customers/" + id, profile.dump());
    EXPECT_EQ(r.status, 200) << "PUT /v1/customers/" << id << ": " << r.body;
  }
  // POST /v1/events; expects 202.
  void PostEvent(const json& event) {
    Reply r = Post("/v1/events", event.dump());
    EXPECT_EQ(r.status, 202) << "POST /v1/events " << event.dump() << ": " << r.body;
  }
  // GET /v1/customers/{id} (null when not 200).
  json Customer(const std::string& id, int limit = 1000) {
    Reply r = Get("/v1/customers/" + id + "?limit=" + std::to_string(limit));
    return r.status == 200 ? r.doc : json();
  }
  // The timeline lines of `kind` (and, when given, with field `key` == `value`), newest first.
  std::vector<json> Timeline(const std::string& customer, const std::string& kind,
                             const std::string& key = "", const json& value = json()) {
    std::vector<json> out;
    json c = Customer(customer);
    if (!c.is_object() || !c.contains("timeline")) return out;
    for (const json& t : c["timeline"]) {
      if (t.value("kind", "") != kind) continue;
      if (!key.empty() && (!t.contains(key) || t[key] != value)) continue;
      out.push_back(t);
    }
    return out;
  }
  // The customer's entries into `journey` (GET /v1/customers/{id} "journeys").
  std::vector<json> Entries(const std::string& customer, const std::string& journey) {
    std::vector<json> out;
    json c = Customer(customer);
    if (!c.is_object() || !c.contains("journeys")) return out;
    for (const json& j : c["journeys"]) {
      if (j.value("journey", "") == journey) out.push_back(j);
    }
    return out;
  }
  // GET /v1/messages?status=<status>.
  std::vector<json> Messages(const std::string& status) {
    Reply r = Get("/v1/messages?limit=1000&status=" + status);
    if (r.status != 200 || !r.doc.contains("messages")) return {};
    return r.doc["messages"].get<std::vector<json>>();
  }
  // The value of the /metrics sample `name` whose labels include every one of `labels` (as
  // written there: lane="sms"; none for a sample without labels); -1 when there is none.
  int64_t Metric(const std::string& name, const std::vector<std::string>& labels = {}) {
    std::istringstream lines(Get("/metrics").body);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.rfind(name + "{", 0) != 0 && line.rfind(name + " ", 0) != 0) continue;
      bool all = true;
      for (const std::string& label : labels) all = all && line.find(label) != std::string::npos;
      if (all) return std::stoll(line.substr(line.rfind(' ') + 1));
    }
    return -1;
  }

 private:
  bool Reap(std::chrono::milliseconds timeout, int* status) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (::waitpid(pid_, status, WNOHANG) == pid_) {
        pid_ = -1;
        client_.reset();
        return true;
      }
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

  fs::path dir_;
  int port_ = -1;
  pid_t pid_ = -1;
  std::string log_level_ = "info";
  std::vector<std::string> env_;
  std::string token_;
  std::unique_ptr<httplib::Client> client_;
};

// tests/connectors/smtp_server.py (aiosmtpd) for the lifetime of the object, recording into
// its own folder: <n>.eml and <n>.envelope per accepted message. `script` may name another
// script (a wrapper in tests/daemon/).
class SmtpPeer {
 public:
  explicit SmtpPeer(const std::string& script = ITINERA_SOURCE_DIR
                    "/tests/connectors/smtp_server.py",
                    const std::string& extra_args = "") {
    std::string pattern = (fs::temp_directory_path() / "itinera-smtp-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) return;
    dir_ = pattern;
    std::string command =
        "exec /usr/bin/python3 '" + script + "' --dir '" + dir_.string() + "' " + extra_args;
    pipe_ = ::popen(command.c_str(), "r");
    if (pipe_ == nullptr) return;
    char line[128] = {};
    if (std::fgets(line, sizeof line, pipe_) == nullptr) return;
    if (std::sscanf(line, "PORT %d PID %d", &port_, &pid_) != 2) port_ = pid_ = 0;
  }
  ~SmtpPeer() {
    if (pid_ > 0) ::kill(pid_, SIGTERM);
    if (pipe_ != nullptr) ::pclose(pipe_);
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }
  SmtpPeer(const SmtpPeer&) = delete;
  SmtpPeer& operator=(const SmtpPeer&) = delete;

  bool running() const { return pid_ > 0 && port_ > 0; }
  std::string Url() const { return "smtp://127.0.0.1:" + std::to_string(port_); }

  struct Received {
    std::vector<std::string> envelope;  // "<from>", then "<rcpt>"...
    std::string raw;                    // the message as received
  };
  // Every message accepted so far, in order.
  std::vector<Received> Messages() const {
    std::vector<Received> out;
    for (int i = 1;; ++i) {
      fs::path eml = dir_ / (std::to_string(i) + ".eml");
      if (!fs::exists(eml)) break;
      Received r;
      r.raw = ReadText(eml);
      std::istringstream env(ReadText(dir_ / (std::to_string(i) + ".envelope")));
      std::string line;
      while (std::getline(env, line)) r.envelope.push_back(line);
      out.push_back(std::move(r));
    }
    return out;
  }

 private:
  fs::path dir_;
  FILE* pipe_ = nullptr;
  int port_ = 0;
  int pid_ = 0;
};

// ---- reading delivered email ----

// A multipart/alternative email split into its text and HTML parts (decoded).
struct ParsedMail {
  connectors::testing::Entity top;
  std::string content_type;  // of the top entity
  std::vector<connectors::testing::Entity> parts;
  std::string text;  // decoded text/plain part
  std::string html;  // decoded text/html part
};

inline ParsedMail ParseMail(const std::string& raw) {
  using namespace connectors::testing;
  ParsedMail m;
  m.top = ParseEntity(raw);
  m.content_type = m.top.Header("Content-Type");
  std::string boundary = BoundaryOf(m.content_type);
  if (boundary.empty()) {
    if (m.content_type.find("text/html") != std::string::npos) m.html = DecodedBody(m.top);
    if (m.content_type.find("text/plain") != std::string::npos) m.text = DecodedBody(m.top);
    return m;
  }
  for (const std::string& part : SplitMultipart(m.top.body, boundary)) {
    Entity e = ParseEntity(part);
    std::string type = e.Header("Content-Type");
    if (type.find("text/plain") != std::string::npos) m.text = DecodedBody(e);
    if (type.find("text/html") != std::string::npos) m.html = DecodedBody(e);
    m.parts.push_back(std::move(e));
  }
  return m;
}

// Every value of `attribute`="..." in `html` that starts with `prefix`, in document order.
inline std::vector<std::string> AttributeValues(const std::string& html,
                                                const std::string& attribute,
                                                const std::string& prefix) {
  std::vector<std::string> out;
  const std::string open = attribute + "=\"";
  size_t pos = 0;
  while ((pos = html.find(open, pos)) != std::string::npos) {
    pos += open.size();
    size_t end = html.find('"', pos);
    if (end == std::string::npos) break;
    std::string value = html.substr(pos, end - pos);
    if (value.rfind(prefix, 0) == 0) out.push_back(value);
    pos = end;
  }
  return out;
}

}  // namespace itinera::daemon_testing

#endif  // ITINERA_TESTS_DAEMON_DAEMON_HARNESS_H_
