// Test-only scratch directory, removed with everything in it when the object goes away.
#ifndef ITINERA_TESTS_CONNECTORS_TEMP_DIR_H_
#define ITINERA_TESTS_CONNECTORS_TEMP_DIR_H_

#include <cstdlib>
#include <filesystem>
#include <string>

namespace itinera::connectors::testing {

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "itinera-conn-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace itinera::connectors::testing

#endif  // ITINERA_TESTS_CONNECTORS_TEMP_DIR_H_
