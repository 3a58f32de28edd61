#include "connectors/sms_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "util/time.h"

namespace itinera::connectors {

Delivery SmsFileConnector::Send(const Message& message) {
  if (message.id.empty() || message.to.empty() || message.text_body.empty()) {
    return {Delivery::kPermanent, "", "SMS needs an id, a recipient and a body"};
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!loaded_) {
    std::ifstream in(path_);
    std::string line;
    while (std::getline(in, line)) {
      nlohmann::json row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (row.is_object() && row.contains("id") && row["id"].is_string()) {
        ids_.insert(row["id"].get<std::string>());
      }
    }
    loaded_ = true;
  }
  if (ids_.count(message.id) > 0) return {Delivery::kSent, message.id, ""};

  nlohmann::json row = {{"id", message.id},
                        {"to", message.to},
                        {"from", message.from},
                        {"body", message.text_body},
                        {"at", FormatTime(message.date)}};
  // Invalid UTF-8 is replaced rather than thrown on: the seam turns no exception loose.
  std::string line = row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return {Delivery::kTransient, "", "open " + path_ + ": " + std::strerror(errno)};
  ssize_t n = ::write(fd, line.data(), line.size());
  int write_errno = errno;
  bool synced = n == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!synced) {
    return {Delivery::kTransient, "",
            "write " + path_ + ": " + (n < 0 ? std::strerror(write_errno) : "short write")};
  }
  ids_.insert(message.id);
  return {Delivery::kSent, message.id, ""};
}

}  // namespace itinera::connectors
