// Rendering of diagnostics and "did you mean" suggestions.
#include "dsl/diagnostic.h"

#include <algorithm>
#include <cctype>

#include "dsl/source_text.h"

namespace itinera::dsl {
namespace {

const char* SeverityName(Diagnostic::Severity s) {
  switch (s) {
    case Diagnostic::Severity::kError:
      return "error";
    case Diagnostic::Severity::kWarning:
      return "warning";
    case Diagnostic::Severity::kNote:
      return "note";
  }
  return "error";
}

// The text of 1-based line `line`, without its line ending; empty past the end of the file.
std::string_view LineText(std::string_view source, int line) {
  size_t start = 0;
  for (int l = 1; l < line; ++l) {
    size_t nl = source.find('\n', start);
    if (nl == std::string_view::npos) return {};
    start = nl + 1;
  }
  size_t end = source.find('\n', start);
  if (end == std::string_view::npos) end = source.size();
  std::string_view text = source.substr(start, end - start);
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  return text;
}

// Edit distance ignoring ASCII case, where swapping two neighbouring letters ("tow" for "two",
// the commonest typo) costs one edit like any other (optimal string alignment distance).
size_t EditDistance(std::string_view a, std::string_view b) {
  auto lower = [](char c) { return std::tolower(static_cast<unsigned char>(c)); };
  const size_t width = b.size() + 1;
  std::vector<size_t> previous(width), row(width), current(width);
  for (size_t j = 0; j < width; ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (size_t j = 1; j < width; ++j) {
      bool same = lower(a[i - 1]) == lower(b[j - 1]);
      current[j] = std::min({current[j - 1] + 1, row[j] + 1, row[j - 1] + (same ? 0 : 1)});
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
          lower(a[i - 2]) == lower(b[j - 1])) {
        current[j] = std::min(current[j], previous[j - 2] + 1);
      }
    }
    previous.swap(row);
    row.swap(current);
  }
  return row[b.size()];
}

}  // namespace

std::string FormatDiagnostic(const Diagnostic& d, std::string_view source) {
  std::string out = d.file;
  if (d.pos.line > 0) {
    out += ":" + std::to_string(d.pos.line) + ":" + std::to_string(d.pos.column);
  }
  out += std::string(": ") + SeverityName(d.severity) + ": " + d.message + "\n";
  if (d.pos.line <= 0) return out;

  std::string_view line = LineText(source, d.pos.line);
  // Byte offset where the caret's column starts (or past the end of the line).
  size_t caret = 0;
  int column = 1;
  for (; column < d.pos.column && caret < line.size(); ++column) {
    caret = internal::NextColumnStart(line, caret);
  }
  // A very long line (minified or hostile input) is shown as a window around the caret, so
  // one diagnostic never prints megabytes.
  constexpr size_t kMaxShown = 160;
  size_t begin = 0, end = line.size();
  std::string prefix, suffix;
  if (line.size() > kMaxShown) {
    begin = caret > kMaxShown / 2 ? caret - kMaxShown / 2 : 0;
    while (begin > 0 && (static_cast<unsigned char>(line[begin]) & 0xC0) == 0x80) --begin;
    end = std::min(line.size(), begin + kMaxShown);
    while (end < line.size() && (static_cast<unsigned char>(line[end]) & 0xC0) == 0x80) ++end;
    if (begin > 0) prefix = "...";
    if (end < line.size()) suffix = "...";
  }
  out += prefix;
  out.append(line.substr(begin, end - begin));
  out += suffix + "\n";
  // Copy tabs from the source so the caret sits under the column whatever the tab width.
  out.append(prefix.size(), ' ');
  for (size_t i = begin; i < caret && i < end;) {
    out += line[i] == '\t' ? '\t' : ' ';
    i = internal::NextColumnStart(line, i);
  }
  for (; column < d.pos.column; ++column) out += ' ';  // past the end of the line
  out += "^\n";
  return out;
}

std::string FormatDiagnostics(const std::vector<Diagnostic>& ds, std::string_view source) {
  std::string out;
  for (const Diagnostic& d : ds) out += FormatDiagnostic(d, source);
  return out;
}

bool HasErrors(const std::vector<Diagnostic>& ds) {
  return std::any_of(ds.begin(), ds.end(), [](const Diagnostic& d) {
    return d.severity == Diagnostic::Severity::kError;
  });
}

std::optional<std::string> SuggestSpelling(std::string_view word,
                                           const std::vector<std::string>& candidates) {
  // Like Ninja's SpellcheckString, but the allowance grows with the word's length: a typo in a
  // short word is one edit, while a long word can take a few before it means something else.
  const size_t max_distance = 1 + word.size() / 4;
  std::optional<std::string> best;
  size_t best_distance = max_distance + 1;
  for (const std::string& candidate : candidates) {
    size_t distance = EditDistance(word, candidate);
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  return best;
}

std::string WithSuggestion(std::string message, std::string_view word,
                           const std::vector<std::string>& candidates) {
  if (std::optional<std::string> s = SuggestSpelling(word, candidates)) {
    message += "; did you mean \"" + *s + "\"?";
  }
  return message;
}

SourcePos PositionOf(std::string_view source, size_t byte) {
  return internal::Locator(source).At(byte);
}

}  // namespace itinera::dsl
