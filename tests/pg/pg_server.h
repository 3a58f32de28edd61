// A throwaway PostgreSQL server for tests: initdb into a fresh temp folder, a postgres on a free
// loopback port, stopped (or crashed) and restarted on demand, removed afterwards.
//
//   PgServer server;
//   ASSERT_TRUE(server.Start());
//   ASSERT_TRUE(server.CreateDatabase("t1"));
//   auto store = PgStore::Open(server.Url("t1"), 4);
//   server.Crash();  // as a power cut: clients see the connection die, WAL recovery follows
//   ASSERT_TRUE(server.Restart());
//
// The binaries come from $ITINERA_PG_BIN or the newest /usr/lib/postgresql/<N>/bin. initdb and
// postgres refuse to run as root, so under root they run as `nobody` (the folder is handed to
// it). fsync stays on, so a crash test means what it says. The server gets SIGQUIT (an immediate
// shutdown) if the thread that started it dies, so a crashed test binary leaves no server
// behind: call Start/Restart from the test's main thread. Child processes are started with
// fork/execv and argument vectors (no shell). Not thread-safe; one object per server.
#ifndef ITINERA_TESTS_PG_PG_SERVER_H_
#define ITINERA_TESTS_PG_PG_SERVER_H_

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace itinera::testing {

namespace pg_server_detail {

// Who the server runs as: `nobody` when we are root, ourselves otherwise.
struct Account {
  bool drop = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

inline Account ServerAccount() {
  Account account;
  if (geteuid() != 0) return account;
  if (const passwd* pw = getpwnam("nobody")) {
    account.drop = true;
    account.uid = pw->pw_uid;
    account.gid = pw->pw_gid;
  }
  return account;
}

// In a forked child (async-signal-safe calls only): become `account`, close every inherited
// descriptor above stderr.
inline void PrepareChild(const Account& account) {
  if (syscall(SYS_close_range, 3u, ~0u, 0u) != 0) {
    for (int fd = 3; fd < 4096; ++fd) close(fd);
  }
  if (account.drop) {
    if (setgroups(0, nullptr) != 0 || setgid(account.gid) != 0 || setuid(account.uid) != 0) {
      _exit(126);
    }
  }
}

inline std::vector<char*> Argv(std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return argv;
}

// Runs `args` (args[0] is a path), collecting stdout and stderr; returns the exit status, or -1
// when it did not exit normally.
inline int Run(std::vector<std::string> args, const Account& account, std::string* out,
               std::string* err) {
  int out_pipe[2], err_pipe[2];
  if (pipe(out_pipe) != 0) return -1;
  if (pipe(err_pipe) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    return -1;
  }
  std::vector<char*> argv = Argv(args);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, 0);
    PrepareChild(account);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {out, err};
  int open_fds = 2;
  char buffer[4096];
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = read(fds[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        if (sinks[i]) sinks[i]->append(buffer, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  if (pid < 0) return -1;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

inline std::string BinDir() {
  if (const char* env = std::getenv("ITINERA_PG_BIN"); env && *env) return env;
  namespace fs = std::filesystem;
  std::string best;
  int best_version = -1;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const std::string name = entry.path().filename().string();
    int version = std::atoi(name.c_str());
    if (version > best_version && fs::exists(entry.path() / "bin" / "postgres")) {
      best_version = version;
      best = (entry.path() / "bin").string();
    }
  }
  return best.empty() ? "/usr/lib/postgresql/15/bin" : best;
}

inline int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

// Whether every ancestor of `dir` lets others through (the server may run as another user).
inline bool Traversable(const std::filesystem::path& dir) {
  for (auto p = std::filesystem::absolute(dir); !p.empty(); p = p.parent_path()) {
    struct stat st;
    if (stat(p.c_str(), &st) != 0 || (st.st_mode & S_IXOTH) == 0) return false;
    if (p == p.parent_path()) break;
  }
  return true;
}

inline std::string Trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.pop_back();
  }
  return text;
}

}  // namespace pg_server_detail

class PgServer {
 public:
  PgServer() : bin_(pg_server_detail::BinDir()), account_(pg_server_detail::ServerAccount()) {}
  ~PgServer() {
    if (std::getenv("ITINERA_KEEP_TEST_DIRS")) {
      Stop();  // a clean shutdown, for whoever looks at the folder
      if (!dir_.empty()) std::fprintf(stderr, "PgServer: kept %s\n", dir_.c_str());
      return;
    }
    Crash();  // the folder goes away: no point in a shutdown checkpoint
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;

  // initdb in a fresh temp folder, then the server on a free loopback port; true once it
  // accepts connections. On failure: ADD_FAILURE with the output or server log, false.
  bool Start() {
    if (pid_ > 0) return true;
    if (!dir_.empty()) return Restart();  // stopped before: the same cluster again
    if (!MakeFolder()) return false;
    std::string out, err;
    int rc = pg_server_detail::Run({bin_ + "/initdb", "-D", DataDir(), "-A", "trust", "-U",
                                    "itinera", "-E", "UTF8", "--locale=C", "--no-sync"},
                                   account_, &out, &err);
    if (rc != 0) {
      ADD_FAILURE() << "initdb failed (" << rc << "):\n" << out << err;
      return false;
    }
    for (int attempt = 0; attempt < 3; ++attempt) {
      port_ = pg_server_detail::FreePort();
      if (Launch(/*report=*/attempt == 2)) return true;
    }
    return false;
  }

  // A fast shutdown (clients are disconnected, the server checkpoints); waits for the exit.
  void Stop() { Signal(SIGINT); }

  // An immediate shutdown, as `pg_ctl stop -m immediate` (SIGQUIT to the postmaster): clients
  // see the connection die and the next start replays the WAL.
  void Crash() { Signal(SIGQUIT); }

  // Starts the stopped (or crashed) server again in the same folder on the same port.
  bool Restart() {
    Stop();
    if (dir_.empty()) {
      ADD_FAILURE() << "PgServer::Restart before Start";
      return false;
    }
    return Launch(/*report=*/true);
  }

  int port() const { return port_; }

  std::string Url(const std::string& database = "postgres") const {
    return "postgresql://itinera@127.0.0.1:" + std::to_string(port_) + "/" + database;
  }

  bool CreateDatabase(const std::string& name) {
    std::string quoted = "\"";
    for (char c : name) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
    quoted += '"';
    return RunSql("postgres", "CREATE DATABASE " + quoted).has_value();
  }

  // Runs `sql` with psql (-X -At, ON_ERROR_STOP) and returns its output, trimmed; ADD_FAILURE
  // (and "") when it fails.
  std::string Query(const std::string& database, const std::string& sql) {
    return RunSql(database, sql).value_or("");
  }

 private:
  std::string DataDir() const { return dir_ + "/data"; }
  std::string LogPath() const { return dir_ + "/postgres.log"; }

  bool MakeFolder() {
    namespace fs = std::filesystem;
    fs::path base = ::testing::TempDir();
    if (account_.drop && !pg_server_detail::Traversable(base)) base = "/tmp";
    std::string pattern = (base / "itinera-pg-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp " << pattern << ": " << std::strerror(errno);
      return false;
    }
    dir_ = pattern;
    if (account_.drop && chown(dir_.c_str(), account_.uid, account_.gid) != 0) {
      ADD_FAILURE() << "chown " << dir_ << ": " << std::strerror(errno);
      return false;
    }
    return true;
  }

  // Starts postgres on port_ and waits until it accepts connections (up to 60 s: crash recovery
  // may replay a while).
  bool Launch(bool report) {
    std::vector<std::string> args = {bin_ + "/postgres",
                                     "-D",
                                     DataDir(),
                                     "-p",
                                     std::to_string(port_),
                                     "-c",
                                     "listen_addresses=127.0.0.1",
                                     "-c",
                                     "unix_socket_directories=" + dir_,
                                     "-c",
                                     "max_connections=200",
                                     "-c",
                                     "fsync=on",
                                     "-c",
                                     "logging_collector=off"};
    std::vector<char*> argv = pg_server_detail::Argv(args);
    const std::string log = LogPath();
    const pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
      ADD_FAILURE() << "fork: " << std::strerror(errno);
      return false;
    }
    if (pid == 0) {
      setsid();  // no terminal signals from the test's session
      int null = open("/dev/null", O_RDONLY);
      if (null >= 0) dup2(null, 0);
      pg_server_detail::PrepareChild(account_);
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
      }
      prctl(PR_SET_PDEATHSIG, SIGQUIT);  // after setuid, which clears it
      if (getppid() != parent) _exit(1);
      execv(argv[0], argv.data());
      _exit(127);
    }
    pid_ = pid;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        if (report) ADD_FAILURE() << "postgres exited at start; its log:\n" << ReadLog();
        return false;
      }
      int rc = pg_server_detail::Run(
          {bin_ + "/pg_isready", "-q", "-h", "127.0.0.1", "-p", std::to_string(port_), "-U",
           "itinera", "-d", "postgres", "-t", "2"},
          pg_server_detail::Account(), nullptr, nullptr);
      if (rc == 0) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
    }
    ADD_FAILURE() << "postgres did not accept connections within 60 s; its log:\n" << ReadLog();
    Signal(SIGQUIT);
    return false;
  }

  void Signal(int sig) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    int status = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
  }

  std::optional<std::string> RunSql(const std::string& database, const std::string& sql) {
    std::string out, err;
    int rc = pg_server_detail::Run(
        {bin_ + "/psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
         std::to_string(port_), "-U", "itinera", "-d", database, "-c", sql},
        pg_server_detail::Account(), &out, &err);
    if (rc != 0) {
      ADD_FAILURE() << "psql " << database << " failed (" << rc << "): " << err << "\nSQL: " << sql;
      return std::nullopt;
    }
    return pg_server_detail::Trim(out);
  }

  std::string ReadLog() const {
    std::ifstream in(LogPath());
    std::stringstream text;
    text << in.rdbuf();
    std::string log = text.str();
    return log.size() > 8000 ? "...\n" + log.substr(log.size() - 8000) : log;
  }

  const std::string bin_;
  const pg_server_detail::Account account_;
  std::string dir_;
  int port_ = -1;
  pid_t pid_ = -1;
};

}  // namespace itinera::testing

#endif  // ITINERA_TESTS_PG_PG_SERVER_H_
