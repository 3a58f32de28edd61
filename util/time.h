// Instants and their text form.
//
// Itinera keeps time as whole seconds since the Unix epoch in UTC (Time). Text is RFC 3339 in
// UTC with a "Z" suffix ("2026-11-22T10:00:00Z"); parsing also accepts fractional seconds
// (truncated) and numeric offsets ("+01:00"). Pure functions; thread-safe.
#ifndef ITINERA_UTIL_TIME_H_
#define ITINERA_UTIL_TIME_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace itinera {

using Time = std::chrono::sys_seconds;
using Seconds = std::chrono::seconds;

// "2026-11-22T10:00:00Z".
std::string FormatTime(Time t);

// RFC 3339 / ISO 8601 date-time; nullopt when it is not one.
std::optional<Time> ParseTime(std::string_view text);

// Seconds in one unit of a duration ('s', 'm', 'h', 'd', 'w'); 0 for any other character.
int64_t DurationUnitSeconds(char unit);

// "1d12h", "30m", "90d", "2w", "45s"; nullopt when malformed. Same units as the journey language.
std::optional<Seconds> ParseDuration(std::string_view text);

// The shortest form in the same units: 129600s -> "1d12h"; 0 -> "0s".
std::string FormatDuration(Seconds d);

}  // namespace itinera

#endif  // ITINERA_UTIL_TIME_H_
