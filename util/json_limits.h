// Limits on untrusted JSON text, checked before it is parsed.
//
// Parsing is iterative, but copying, comparing and rendering a document recurse once per level
// of nesting, so a line of 100,000 `[` would overflow the stack long after parsing succeeded.
// Real profiles and events nest a handful of levels; anything deeper is refused up front.
#ifndef ITINERA_UTIL_JSON_LIMITS_H_
#define ITINERA_UTIL_JSON_LIMITS_H_

#include <string_view>

namespace itinera {

inline constexpr int kMaxJsonDepth = 64;

// True when arrays and objects in `text` nest deeper than `max_depth` (strings are skipped).
// Linear; does not validate the JSON otherwise.
inline bool JsonTooDeep(std::string_view text, int max_depth = kMaxJsonDepth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

// True when a string in `text` holds the escape \u0000 (a NUL character). Such strings are
// refused up front: PostgreSQL text cannot store NUL, and neither a name nor an address has one.
// Linear; does not validate the JSON otherwise.
inline bool JsonHasNul(std::string_view text) {
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        if (text.substr(i + 1, 5) == "u0000") return true;
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    }
  }
  return false;
}

}  // namespace itinera

#endif  // ITINERA_UTIL_JSON_LIMITS_H_
