// Customer-local time: time-zone lookup, quiet hours and `wait until`.
//
// Wraps Howard Hinnant's date/tz (the OS tz database); no other file of the engine touches it.
// Zone lookups are cached process-wide behind a mutex, so every function here is thread-safe.
// Local times that do not exist (the spring-forward gap) map to the first instant after the
// gap; local times that happen twice (fall back) map to the earlier instant.
#ifndef ITINERA_ORCHESTRATOR_ZONE_H_
#define ITINERA_ORCHESTRATOR_ZONE_H_

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dsl/program.h"
#include "util/time.h"

namespace date {
class time_zone;
}

namespace itinera::orch {

using Zone = const date::time_zone*;

// The zone named `name`, or nullptr when it is not an IANA zone name. Cached.
Zone FindZone(std::string_view name);

// The UTC zone (never null).
Zone UtcZone();

// The customer's zone per the journey's `timezone` setting: the value at the setting's path (in
// the profile, or in the entry event for `entry.*`) when it names a zone, else the setting's
// fallback, else UTC.
Zone CustomerZone(const dsl::TimezoneSetting& setting, const nlohmann::json& profile,
                  const nlohmann::json* entry = nullptr);

// When `now` falls inside the quiet window [from, to) in `zone`'s local time (the window may
// wrap midnight), the instant the window ends; otherwise nullopt. A window whose ends are equal
// is empty.
std::optional<Time> QuietHoursEnd(Zone zone, const dsl::TimeOfDay& from, const dsl::TimeOfDay& to,
                                  Time now);

// The first instant >= now that is `at` local time in `zone` on one of `weekdays` (ISO 1 = Monday
// ... 7 = Sunday; empty = any day).
Time NextLocalTime(Zone zone, const dsl::TimeOfDay& at, const std::vector<int>& weekdays, Time now);

// The instant of local date-time `y-m-d h:mi` in `zone` with the gap/overlap rules above.
Time LocalToUtc(Zone zone, int y, int m, int d, int h, int mi);

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_ZONE_H_
