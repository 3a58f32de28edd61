#include "util/log.h"

#include <date/date.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace itinera {

namespace {

std::mutex& Mutex() {
  static std::mutex mu;
  return mu;
}

std::function<void(const std::string&)>& Sink() {
  static std::function<void(const std::string&)> sink;
  return sink;
}

LogLevel Threshold() {
  static const LogLevel level = [] {
    const char* env = std::getenv("ITINERA_LOG_LEVEL");
    std::string v = env ? env : "";
    if (v == "debug") return LogLevel::kDebug;
    if (v == "warn") return LogLevel::kWarn;
    if (v == "error") return LogLevel::kError;
    return LogLevel::kInfo;
  }();
  return level;
}

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

}  // namespace

bool LogEnabled(LogLevel level) { return level >= Threshold(); }

void Log(LogLevel level, std::string_view message, const nlohmann::json& fields) {
  if (!LogEnabled(level)) return;
  auto now = std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
  nlohmann::ordered_json line;
  line["ts"] = date::format("%FT%TZ", now);
  line["level"] = LevelName(level);
  line["msg"] = std::string(message);
  if (fields.is_object()) {
    for (const auto& [key, value] : fields.items()) line[key] = value;
  }
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::lock_guard lock(Mutex());
  if (Sink()) {
    Sink()(text);
    return;
  }
  text += '\n';
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::fflush(stderr);
}

void SetLogSink(std::function<void(const std::string& line)> sink) {
  std::lock_guard lock(Mutex());
  Sink() = std::move(sink);
}

}  // namespace itinera
