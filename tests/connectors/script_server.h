// Test-only: runs one of the Python test servers next to this file (smtp_server.py,
// https_server.py) for the lifetime of the object. The script prints "PORT <n> PID <pid>" once
// it accepts connections, so a client may connect as soon as the constructor returns; the
// destructor stops it with SIGTERM and waits for it.
#ifndef ITINERA_TESTS_CONNECTORS_SCRIPT_SERVER_H_
#define ITINERA_TESTS_CONNECTORS_SCRIPT_SERVER_H_

#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <string>

namespace itinera::connectors::testing {

class ScriptServer {
 public:
  // Runs tests/connectors/`script` --dir `dir` `args` (args as a shell would split them).
  ScriptServer(const std::string& script, const std::filesystem::path& dir,
               const std::string& args = "") {
    std::string command = "exec /usr/bin/python3 " ITINERA_SOURCE_DIR "/tests/connectors/" +
                          script + " --dir '" + dir.string() + "' " + args;
    pipe_ = ::popen(command.c_str(), "r");
    if (pipe_ == nullptr) return;
    char line[128] = {};
    if (std::fgets(line, sizeof line, pipe_) == nullptr) return;
    if (std::sscanf(line, "PORT %d PID %d", &port_, &pid_) != 2) port_ = pid_ = 0;
  }
  ~ScriptServer() {
    if (pid_ > 0) ::kill(pid_, SIGTERM);
    if (pipe_ != nullptr) ::pclose(pipe_);
  }
  ScriptServer(const ScriptServer&) = delete;
  ScriptServer& operator=(const ScriptServer&) = delete;

  bool running() const { return pid_ > 0 && port_ > 0; }
  int port() const { return port_; }

 private:
  FILE* pipe_ = nullptr;
  int port_ = 0;
  int pid_ = 0;
};

}  // namespace itinera::connectors::testing

#endif  // ITINERA_TESTS_CONNECTORS_SCRIPT_SERVER_H_
