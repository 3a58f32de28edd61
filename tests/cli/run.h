// Runs the built `itinera` binary as a user would and captures what it prints.
#ifndef ITINERA_TESTS_CLI_RUN_H_
#define ITINERA_TESTS_CLI_RUN_H_

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace itinera::testing {

struct RunResult {
  int status = -1;  // exit status
  std::string out;
  std::string err;
};

inline std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void WriteFile(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

// Runs `itinera <args>` in `cwd` (default: the source tree), with `env` ("NAME=value ...") added
// to its environment. `args` and `env` are shell text.
inline RunResult RunItinera(const std::string& args, const std::string& cwd = ITINERA_SOURCE_DIR,
                            const std::string& env = "") {
  static int counter = 0;
  std::filesystem::path tmp =
      std::filesystem::temp_directory_path() /
      ("itinera-cli-" + std::to_string(getpid()) + "-" + std::to_string(counter++));
  std::string command = "cd '" + cwd + "' && " + env + " '" + std::string(ITINERA_BINARY) + "' " +
                        args + " >'" + tmp.string() + ".out' 2>'" + tmp.string() + ".err'";
  RunResult r;
  int raw = std::system(command.c_str());
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.out = ReadFile(tmp.string() + ".out");
  r.err = ReadFile(tmp.string() + ".err");
  std::filesystem::remove(tmp.string() + ".out");
  std::filesystem::remove(tmp.string() + ".err");
  return r;
}

// A fresh temporary folder, removed when the object goes.
class TempDir {
 public:
  TempDir() {
    static int n = 0;
    path_ = std::filesystem::temp_directory_path() /
            ("itinera-test-" + std::to_string(getpid()) + "-" + std::to_string(n++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }
  std::string Write(const std::string& name, const std::string& text) const {
    WriteFile(path_ / name, text);
    return (path_ / name).string();
  }

 private:
  std::filesystem::path path_;
};

}  // namespace itinera::testing

#endif  // ITINERA_TESTS_CLI_RUN_H_
