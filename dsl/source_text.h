// Internal to dsl/: byte offsets to line and code-point column, and UTF-8 checking.
//
// Diagnostics point at a line and a column counted in Unicode code points so that a caret lines
// up under the offending character in a terminal. Both the parser (many lookups) and the
// formatter (one lookup) need the same counting rule, so it lives here: an invalid byte counts
// as one column, like a replacement character would.
#ifndef ITINERA_DSL_SOURCE_TEXT_H_
#define ITINERA_DSL_SOURCE_TEXT_H_

#include <algorithm>
#include <cstddef>
#include <string_view>
#include <vector>

#include "dsl/ast.h"

namespace itinera::dsl::internal {

// Length of the well-formed UTF-8 sequence starting at `i`, or 0 when the byte there does not
// start one (overlong forms, surrogates and values past U+10FFFF are rejected, per RFC 3629).
inline size_t Utf8SequenceLength(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  if (c < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  }
  return n;
}

// Steps over one code point, or one byte when the text there is not valid UTF-8.
inline size_t NextColumnStart(std::string_view s, size_t i) {
  size_t n = Utf8SequenceLength(s, i);
  return i + (n == 0 ? 1 : n);
}

// Maps byte offsets to SourcePos in O(log lines) plus the distance from the previous lookup on
// the same line, so a parser asking in increasing order stays linear even on one huge line.
// Holds a view: the text must outlive it. Not thread-safe (it caches the last lookup).
class Locator {
 public:
  explicit Locator(std::string_view text) : text_(text) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '\n') line_starts_.push_back(i + 1);
    }
  }

  SourcePos At(size_t byte) const {
    byte = std::min(byte, text_.size());
    size_t line =
        std::upper_bound(line_starts_.begin(), line_starts_.end(), byte) - line_starts_.begin() - 1;
    size_t from = line_starts_[line];
    int column = 1;
    if (line == cached_line_ && cached_byte_ <= byte) {
      from = cached_byte_;
      column = cached_column_;
    }
    while (from < byte) {
      from = NextColumnStart(text_, from);
      ++column;
    }
    // A sequence straddling `byte` would overshoot; the caller only asks at token starts.
    cached_line_ = line;
    cached_byte_ = from;
    cached_column_ = column;
    return SourcePos{static_cast<int>(line) + 1, column, byte};
  }

 private:
  std::string_view text_;
  std::vector<size_t> line_starts_;
  mutable size_t cached_line_ = static_cast<size_t>(-1);
  mutable size_t cached_byte_ = 0;
  mutable int cached_column_ = 1;
};

}  // namespace itinera::dsl::internal

#endif  // ITINERA_DSL_SOURCE_TEXT_H_
