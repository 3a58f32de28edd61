// Compiler-style diagnostics.
//
//   journeys/x.journey:12:5: error: unknown step "reminde"; did you mean "reminder"?
//       then reminde
//            ^
//
// A Diagnostic is a value; Format renders it against the file's text. Columns count Unicode
// code points; the caret line keeps the source's tabs so it lines up in a terminal.
#ifndef ITINERA_DSL_DIAGNOSTIC_H_
#define ITINERA_DSL_DIAGNOSTIC_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dsl/ast.h"

namespace itinera::dsl {

struct Diagnostic {
  enum class Severity { kError, kWarning, kNote };
  Severity severity = Severity::kError;
  std::string file;
  SourcePos pos;
  std::string message;
};

// "file:line:col: error: message\n<source line>\n<caret line>\n". When pos.line is 0 (the whole
// file) only the first line is printed.
std::string FormatDiagnostic(const Diagnostic& d, std::string_view source);

// Formats each in order.
std::string FormatDiagnostics(const std::vector<Diagnostic>& ds, std::string_view source);

bool HasErrors(const std::vector<Diagnostic>& ds);

// The candidate closest to `word` by edit distance, if close enough to be a likely typo
// (as Ninja's SpellcheckString does). Case-insensitive.
std::optional<std::string> SuggestSpelling(std::string_view word,
                                           const std::vector<std::string>& candidates);

// `message` + `; did you mean "x"?` when a suggestion exists.
std::string WithSuggestion(std::string message, std::string_view word,
                           const std::vector<std::string>& candidates);

// The 1-based code-point column of byte offset `byte` in `source` (line computed by the caller).
SourcePos PositionOf(std::string_view source, size_t byte);

}  // namespace itinera::dsl

#endif  // ITINERA_DSL_DIAGNOSTIC_H_
