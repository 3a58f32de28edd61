#include "util/time.h"

#include <date/date.h>

#include <cctype>
#include <sstream>

namespace itinera {

std::string FormatTime(Time t) {
  // On every state, event and timeline write: formatted by hand, as date::format goes through
  // an ostringstream and costs about twenty times more.
  const auto day = date::floor<date::days>(t);
  const date::year_month_day ymd(day);
  const int year = static_cast<int>(ymd.year());
  if (year < 0 || year > 9999) return date::format("%Y-%m-%dT%H:%M:%SZ", t);
  const int64_t second_of_day = (t - day).count();
  const int fields[] = {year / 100,
                        year % 100,
                        static_cast<int>(static_cast<unsigned>(ymd.month())),
                        static_cast<int>(static_cast<unsigned>(ymd.day())),
                        static_cast<int>(second_of_day / 3600),
                        static_cast<int>(second_of_day / 60 % 60),
                        static_cast<int>(second_of_day % 60)};
  std::string out = "0000-00-00T00:00:00Z";
  const int at[] = {0, 2, 5, 8, 11, 14, 17};
  for (int k = 0; k < 7; ++k) {
    out[at[k]] = static_cast<char>('0' + fields[k] / 10);
    out[at[k] + 1] = static_cast<char>('0' + fields[k] % 10);
  }
  return out;
}

namespace {

bool ReadInt(std::string_view s, size_t& i, int digits, int& out) {
  if (i + digits > s.size()) return false;
  int v = 0;
  for (int k = 0; k < digits; ++k) {
    char c = s[i + k];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  i += digits;
  out = v;
  return true;
}

bool Expect(std::string_view s, size_t& i, char c) {
  if (i < s.size() && s[i] == c) {
    ++i;
    return true;
  }
  return false;
}

}  // namespace

std::optional<Time> ParseTime(std::string_view s) {
  size_t i = 0;
  int y, mo, d, h = 0, mi = 0, sec = 0;
  if (!ReadInt(s, i, 4, y) || !Expect(s, i, '-') || !ReadInt(s, i, 2, mo) || !Expect(s, i, '-') ||
      !ReadInt(s, i, 2, d)) {
    return std::nullopt;
  }
  date::year_month_day ymd{date::year{y}, date::month{static_cast<unsigned>(mo)},
                           date::day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  int offset_seconds = 0;
  if (i < s.size()) {
    if (s[i] != 'T' && s[i] != 't' && s[i] != ' ') return std::nullopt;
    ++i;
    if (!ReadInt(s, i, 2, h) || !Expect(s, i, ':') || !ReadInt(s, i, 2, mi)) return std::nullopt;
    if (Expect(s, i, ':')) {
      if (!ReadInt(s, i, 2, sec)) return std::nullopt;
      if (Expect(s, i, '.')) {
        size_t start = i;
        while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
        if (i == start) return std::nullopt;
      }
    }
    if (h > 23 || mi > 59 || sec > 60) return std::nullopt;
    if (i == s.size()) return std::nullopt;  // a local time without a zone is ambiguous
    if (s[i] == 'Z' || s[i] == 'z') {
      ++i;
    } else if (s[i] == '+' || s[i] == '-') {
      int sign = s[i] == '-' ? -1 : 1;
      ++i;
      int oh, om;
      if (!ReadInt(s, i, 2, oh) || !Expect(s, i, ':') || !ReadInt(s, i, 2, om)) return std::nullopt;
      if (oh > 23 || om > 59) return std::nullopt;
      offset_seconds = sign * (oh * 3600 + om * 60);
    } else {
      return std::nullopt;
    }
  }
  if (i != s.size()) return std::nullopt;
  if (sec == 60) sec = 59;  // leap second: clamp
  Time t = date::sys_days{ymd} + std::chrono::hours{h} + std::chrono::minutes{mi} +
           std::chrono::seconds{sec} - std::chrono::seconds{offset_seconds};
  return t;
}

int64_t DurationUnitSeconds(char unit) {
  switch (unit) {
    case 's':
      return 1;
    case 'm':
      return 60;
    case 'h':
      return 3600;
    case 'd':
      return 86400;
    case 'w':
      return 7 * 86400;
    default:
      return 0;
  }
}

std::optional<Seconds> ParseDuration(std::string_view s) {
  if (s.empty()) return std::nullopt;
  int64_t total = 0;
  size_t i = 0;
  while (i < s.size()) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return std::nullopt;
    int64_t n = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      n = n * 10 + (s[i] - '0');
      if (n > 1'000'000'000) return std::nullopt;
      ++i;
    }
    if (i == s.size()) return std::nullopt;
    int64_t unit = DurationUnitSeconds(s[i]);
    if (unit == 0) return std::nullopt;
    ++i;
    total += n * unit;
    if (total > int64_t{100} * 365 * 86400) return std::nullopt;
  }
  return Seconds{total};
}

std::string FormatDuration(Seconds d) {
  int64_t s = d.count();
  if (s == 0) return "0s";
  std::ostringstream out;
  if (s < 0) {
    out << '-';
    s = -s;
  }
  static constexpr struct {
    int64_t size;
    char unit;
  } kUnits[] = {{7 * 86400, 'w'}, {86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
  for (const auto& u : kUnits) {
    if (s >= u.size) {
      out << s / u.size << u.unit;
      s %= u.size;
    }
  }
  return out.str();
}

}  // namespace itinera
