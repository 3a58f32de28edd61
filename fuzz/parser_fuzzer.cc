// libFuzzer target for the journey parser (build with -DITINERA_FUZZ=ON and clang).
//
// Parse must never crash, hang or throw on any bytes, and every diagnostic it returns must
// point inside the file: a diagnostic without a usable position is useless to a marketer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "dsl/parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  itinera::dsl::ParseResult result = itinera::dsl::Parse(text, "fuzz.journey");
  for (const itinera::dsl::Diagnostic& d : result.diagnostics) {
    if (d.pos.line < 1 || d.pos.column < 1 || d.pos.byte > size) std::abort();
    (void)itinera::dsl::FormatDiagnostic(d, text);
  }
  return 0;
}
