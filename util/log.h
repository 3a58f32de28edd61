// Structured logs: one JSON object per line on stderr.
//
//   {"ts":"2026-11-22T10:00:00.123Z","level":"info","msg":"journey loaded","journey":"welcome",...}
//
// Fields are given as a JSON object so values keep their types. Lines are written whole under a
// mutex, so concurrent threads never interleave. The threshold defaults to info and is read once
// from ITINERA_LOG_LEVEL (debug, info, warn, error). Tests may redirect the sink.
#ifndef ITINERA_UTIL_LOG_H_
#define ITINERA_UTIL_LOG_H_

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace itinera {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Writes one line when `level` is at or above the threshold.
void Log(LogLevel level, std::string_view message,
         const nlohmann::json& fields = nlohmann::json::object());

inline void LogInfo(std::string_view m, const nlohmann::json& f = nlohmann::json::object()) {
  Log(LogLevel::kInfo, m, f);
}
inline void LogWarn(std::string_view m, const nlohmann::json& f = nlohmann::json::object()) {
  Log(LogLevel::kWarn, m, f);
}
inline void LogError(std::string_view m, const nlohmann::json& f = nlohmann::json::object()) {
  Log(LogLevel::kError, m, f);
}
inline void LogDebug(std::string_view m, const nlohmann::json& f = nlohmann::json::object()) {
  Log(LogLevel::kDebug, m, f);
}

bool LogEnabled(LogLevel level);

// Replaces the sink (nullptr: stderr again). For tests.
void SetLogSink(std::function<void(const std::string& line)> sink);

}  // namespace itinera

#endif  // ITINERA_UTIL_LOG_H_
