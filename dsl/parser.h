// Text to syntax tree.
//
// Parse reads one journey file's text and returns its Journey, or as much of it as could be
// read, plus syntax diagnostics. It recovers at the next setting or step after an error so one
// run reports several problems. It never throws, and bounded work per byte keeps hostile input
// (deep nesting, huge numbers, invalid UTF-8, NUL bytes) from crashing or hanging it: such
// input gets a located diagnostic. PEGTL is used here and nowhere else.
#ifndef ITINERA_DSL_PARSER_H_
#define ITINERA_DSL_PARSER_H_

#include <string>
#include <string_view>
#include <vector>

#include "dsl/ast.h"
#include "dsl/diagnostic.h"

namespace itinera::dsl {

struct ParseResult {
  Journey journey;
  std::vector<Diagnostic> diagnostics;  // empty when the text is well-formed
};

// `file` is used in diagnostics only.
ParseResult Parse(std::string_view text, const std::string& file);

}  // namespace itinera::dsl

#endif  // ITINERA_DSL_PARSER_H_
