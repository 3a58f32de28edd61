#include "orchestrator/zone.h"

#include <date/date.h>
#include <date/tz.h>

#include <map>
#include <mutex>

#include "orchestrator/eval.h"

namespace itinera::orch {

namespace {

std::mutex& CacheMutex() {
  static std::mutex m;
  return m;
}

std::map<std::string, Zone, std::less<>>& Cache() {
  static std::map<std::string, Zone, std::less<>> cache;
  return cache;
}

using LocalSeconds = date::local_seconds;

// The instant of a local time with the gap and overlap rules of the header.
Time ToSys(Zone zone, LocalSeconds local) {
  auto info = zone->get_info(local);
  switch (info.result) {
    case date::local_info::unique:
      return Time{local.time_since_epoch() - info.first.offset};
    case date::local_info::nonexistent:
      // The gap ends where the second period begins: the first instant after the gap.
      return std::chrono::time_point_cast<Seconds>(info.second.begin);
    case date::local_info::ambiguous:
      return Time{local.time_since_epoch() - info.first.offset};
  }
  return Time{local.time_since_epoch()};
}

LocalSeconds ToLocal(Zone zone, Time t) { return zone->to_local(t); }

}  // namespace

Zone FindZone(std::string_view name) {
  if (name.empty()) return nullptr;
  std::lock_guard<std::mutex> lock(CacheMutex());
  auto& cache = Cache();
  auto it = cache.find(name);
  if (it != cache.end()) return it->second;
  Zone zone = nullptr;
  try {
    zone = date::locate_zone(name);
  } catch (const std::exception&) {
    zone = nullptr;
  }
  cache.emplace(std::string(name), zone);
  return zone;
}

Zone UtcZone() {
  static Zone utc = [] {
    Zone z = FindZone("UTC");
    if (z == nullptr) z = FindZone("Etc/UTC");
    return z;
  }();
  return utc;
}

Zone CustomerZone(const dsl::TimezoneSetting& setting, const nlohmann::json& profile,
                  const nlohmann::json* entry) {
  if (setting.path && setting.path->kind == dsl::Expr::Kind::kPath) {
    Scope scope;
    scope.profile = &profile;
    scope.entry = entry;
    nlohmann::json v = Evaluate(*setting.path, scope);
    if (v.is_string()) {
      if (Zone z = FindZone(v.get<std::string>())) return z;
    }
  }
  if (setting.fallback) {
    if (Zone z = FindZone(setting.fallback->text)) return z;
  }
  return UtcZone();
}

std::optional<Time> QuietHoursEnd(Zone zone, const dsl::TimeOfDay& from, const dsl::TimeOfDay& to,
                                  Time now) {
  if (zone == nullptr) zone = UtcZone();
  const int64_t start = (from.hour * 60 + from.minute) * 60;
  const int64_t end = (to.hour * 60 + to.minute) * 60;
  if (start == end) return std::nullopt;
  LocalSeconds local = ToLocal(zone, now);
  auto day = date::floor<date::days>(local);
  int64_t sec = (local - day).count();
  date::local_days end_day;
  if (start < end) {
    if (sec < start || sec >= end) return std::nullopt;
    end_day = day;
  } else if (sec >= start) {
    end_day = day + date::days{1};
  } else if (sec < end) {
    end_day = day;
  } else {
    return std::nullopt;
  }
  Time until = ToSys(zone, LocalSeconds{end_day.time_since_epoch()} + Seconds{end});
  return until > now ? until : now;
}

Time NextLocalTime(Zone zone, const dsl::TimeOfDay& at, const std::vector<int>& weekdays,
                   Time now) {
  if (zone == nullptr) zone = UtcZone();
  auto day = date::floor<date::days>(ToLocal(zone, now));
  const Seconds offset{(at.hour * 60 + at.minute) * 60};
  for (int i = 0; i < 9; ++i) {
    date::local_days d = day + date::days{i};
    if (!weekdays.empty()) {
      int iso = static_cast<int>(date::weekday(d).iso_encoding());
      bool allowed = false;
      for (int w : weekdays) allowed = allowed || w == iso;
      if (!allowed) continue;
    }
    Time t = ToSys(zone, LocalSeconds{d.time_since_epoch()} + offset);
    if (t >= now) return t;
  }
  return now;  // only when `weekdays` holds nothing valid
}

Time LocalToUtc(Zone zone, int y, int m, int d, int h, int mi) {
  if (zone == nullptr) zone = UtcZone();
  date::local_days day{date::year{y} / date::month{static_cast<unsigned>(m)} /
                       date::day{static_cast<unsigned>(d)}};
  return ToSys(zone, LocalSeconds{day.time_since_epoch()} + std::chrono::hours{h} +
                         std::chrono::minutes{mi});
}

}  // namespace itinera::orch
