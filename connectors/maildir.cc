#include "connectors/maildir.h"

#include <fcntl.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>

#include "connectors/mime.h"

namespace itinera::connectors {
namespace {

namespace fs = std::filesystem;

std::string Errno(std::string_view what, const std::string& path) {
  return std::string(what) + " " + path + ": " + std::strerror(errno);
}

// Writes all of `data` to `fd`, retrying short writes and EINTR.
bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool SyncDirectory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

// True when new/<name> exists or cur/ holds <name> or <name>:<info>.
bool AlreadyDelivered(const fs::path& root, const std::string& name) {
  std::error_code ec;
  if (fs::exists(root / "new" / name, ec)) return true;
  if (fs::exists(root / "cur" / name, ec)) return true;
  const std::string prefix = name + ":";
  for (fs::directory_iterator it(root / "cur", ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().filename().string().rfind(prefix, 0) == 0) return true;
  }
  return false;
}

}  // namespace

std::string MaildirConnector::FileNameFor(std::string_view key) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name = "itinera.";
  for (unsigned char b : digest) {
    name += kHex[b >> 4];
    name += kHex[b & 15];
  }
  return name;
}

Delivery MaildirConnector::Send(const Message& message) {
  Result<std::string> mime = BuildMime(message);
  if (!mime.ok())
    return {Delivery::kPermanent, "", mime.error().code + ": " + mime.error().message};

  const fs::path root(root_);
  std::error_code ec;
  for (const char* sub : {"tmp", "new", "cur"}) {
    fs::create_directories(root / sub, ec);
    if (ec)
      return {Delivery::kTransient, "", "create " + (root / sub).string() + ": " + ec.message()};
  }
  const std::string name = FileNameFor(message.id);
  if (AlreadyDelivered(root, name)) return {Delivery::kSent, name, ""};

  // A unique tmp name per attempt: concurrent or crashed attempts never share a tmp file.
  static std::atomic<uint64_t> tmp_counter{0};
  const std::string tmp =
      (root / "tmp" /
       (name + "." + std::to_string(::getpid()) + "." + std::to_string(tmp_counter.fetch_add(1))))
          .string();
  const std::string final_path = (root / "new" / name).string();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return {Delivery::kTransient, "", Errno("open", tmp)};
  bool ok = WriteAll(fd, *mime) && ::fsync(fd) == 0;
  std::string error = ok ? "" : Errno("write", tmp);
  if (::close(fd) != 0 && ok) {
    ok = false;
    error = Errno("close", tmp);
  }
  if (ok && AlreadyDelivered(root, name)) {  // another attempt won the race
    ::unlink(tmp.c_str());
    return {Delivery::kSent, name, ""};
  }
  if (ok && ::rename(tmp.c_str(), final_path.c_str()) != 0) {
    ok = false;
    error = Errno("rename", tmp);
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    return {Delivery::kTransient, "", error};
  }
  if (!SyncDirectory((root / "new").string())) {
    return {Delivery::kTransient, "", Errno("fsync", (root / "new").string())};
  }
  return {Delivery::kSent, name, ""};
}

}  // namespace itinera::connectors
