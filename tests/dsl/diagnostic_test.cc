// Diagnostic rendering and spelling suggestions, golden-tested on the exact text a marketer
// sees in a terminal.
#include "dsl/diagnostic.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace itinera::dsl {
namespace {

Diagnostic At(int line, int column, std::string message,
              Diagnostic::Severity severity = Diagnostic::Severity::kError) {
  return Diagnostic{severity, "journeys/x.journey", SourcePos{line, column, 0}, std::move(message)};
}

TEST(DiagnosticTest, FormatsLocationSourceLineAndCaret) {
  std::string source = "journey x {\n  step a {\n    then reminde\n  }\n}\n";
  EXPECT_EQ(FormatDiagnostic(At(3, 10, "unknown step \"reminde\""), source),
            "journeys/x.journey:3:10: error: unknown step \"reminde\"\n"
            "    then reminde\n"
            "         ^\n");
}

TEST(DiagnosticTest, SeverityNames) {
  EXPECT_EQ(FormatDiagnostic(At(1, 1, "m", Diagnostic::Severity::kWarning), "x"),
            "journeys/x.journey:1:1: warning: m\nx\n^\n");
  EXPECT_EQ(FormatDiagnostic(At(1, 1, "m", Diagnostic::Severity::kNote), "x"),
            "journeys/x.journey:1:1: note: m\nx\n^\n");
}

TEST(DiagnosticTest, WholeFileDiagnosticHasOnlyTheFirstLine) {
  EXPECT_EQ(FormatDiagnostic(At(0, 0, "cannot read the file"), "anything"),
            "journeys/x.journey: error: cannot read the file\n");
}

TEST(DiagnosticTest, CaretKeepsTabsAndCountsCodePoints) {
  EXPECT_EQ(FormatDiagnostic(At(1, 4, "m"), "\t\"é\" x"),
            "journeys/x.journey:1:4: error: m\n"
            "\t\"é\" x\n"
            "\t  ^\n");
  EXPECT_EQ(FormatDiagnostic(At(1, 6, "m"), "\t\"é\" x"),
            "journeys/x.journey:1:6: error: m\n"
            "\t\"é\" x\n"
            "\t    ^\n");
}

TEST(DiagnosticTest, CaretPastTheEndOfTheLineAndCrlf) {
  EXPECT_EQ(FormatDiagnostic(At(1, 5, "m"), "abc\r\nnext"),
            "journeys/x.journey:1:5: error: m\n"
            "abc\n"
            "    ^\n");
  EXPECT_EQ(FormatDiagnostic(At(3, 1, "m"), "one\n"),
            "journeys/x.journey:3:1: error: m\n"
            "\n"
            "^\n");
}

TEST(DiagnosticTest, VeryLongLineIsShownAsAWindowAroundTheCaret) {
  std::string line = std::string(5000, 'a') + "X" + std::string(5000, 'b');
  Diagnostic d{Diagnostic::Severity::kError, "f.journey", {1, 5001, 5000}, "here"};
  std::string text = FormatDiagnostic(d, line);
  EXPECT_LT(text.size(), 400u);
  std::string shown = text.substr(text.find('\n') + 1);
  std::string source_line = shown.substr(0, shown.find('\n'));
  std::string caret_line = shown.substr(shown.find('\n') + 1);
  EXPECT_EQ(source_line.substr(0, 3), "...");
  EXPECT_EQ(source_line.substr(source_line.size() - 3), "...");
  EXPECT_EQ(source_line[caret_line.find('^')], 'X');
}

TEST(DiagnosticTest, FormatDiagnosticsConcatenatesInOrder) {
  std::vector<Diagnostic> ds = {At(1, 1, "first"), At(2, 2, "second")};
  EXPECT_EQ(FormatDiagnostics(ds, "a\nbc\n"),
            "journeys/x.journey:1:1: error: first\na\n^\n"
            "journeys/x.journey:2:2: error: second\nbc\n ^\n");
}

TEST(DiagnosticTest, HasErrorsIgnoresWarningsAndNotes) {
  EXPECT_FALSE(HasErrors({}));
  EXPECT_FALSE(HasErrors(
      {At(1, 1, "w", Diagnostic::Severity::kWarning), At(1, 1, "n", Diagnostic::Severity::kNote)}));
  EXPECT_TRUE(HasErrors({At(1, 1, "w", Diagnostic::Severity::kWarning), At(1, 1, "e")}));
}

TEST(DiagnosticTest, SuggestSpellingFindsCloseWords) {
  std::vector<std::string> steps = {"reminder", "second_chance", "done"};
  EXPECT_EQ(SuggestSpelling("reminde", steps), "reminder");
  EXPECT_EQ(SuggestSpelling("REMINDER", steps), "reminder");  // case-insensitive
  EXPECT_EQ(SuggestSpelling("secnd_chance", steps), "second_chance");
  EXPECT_EQ(SuggestSpelling("sned", {"send", "set"}), "send");
  EXPECT_EQ(SuggestSpelling("zzz", steps), std::nullopt);
  EXPECT_EQ(SuggestSpelling("x", {}), std::nullopt);
}

TEST(DiagnosticTest, SuggestSpellingCountsASwapAsOneEdit) {
  EXPECT_EQ(SuggestSpelling("tow", {"two", "done"}), "two");
  EXPECT_EQ(SuggestSpelling("emial", {"email", "sms"}), "email");
  EXPECT_EQ(SuggestSpelling("reminedr", {"reminder"}), "reminder");
}

TEST(DiagnosticTest, SuggestSpellingPrefersSmallestThenFirst) {
  EXPECT_EQ(SuggestSpelling("sat", {"set", "sat"}), "sat");
  EXPECT_EQ(SuggestSpelling("sxt", {"set", "sat"}), "set");
}

TEST(DiagnosticTest, SuggestSpellingAllowanceGrowsWithLength) {
  // A two-letter word gets one edit, and "dn" is two edits from "done".
  EXPECT_EQ(SuggestSpelling("dn", {"done"}), std::nullopt);
  EXPECT_EQ(SuggestSpelling("frequncy_cp", {"frequency_cap"}), "frequency_cap");
}

TEST(DiagnosticTest, WithSuggestionAppendsDidYouMean) {
  EXPECT_EQ(WithSuggestion("unknown step \"reminde\"", "reminde", {"reminder"}),
            "unknown step \"reminde\"; did you mean \"reminder\"?");
  EXPECT_EQ(WithSuggestion("unknown step \"x\"", "x", {"reminder"}), "unknown step \"x\"");
}

TEST(DiagnosticTest, PositionOfCountsLinesAndCodePoints) {
  std::string source = "ab\n\xC4\x8D\xE2\x98\x95x\n";  // "čx" after a 3-byte cup
  SourcePos p = PositionOf(source, 8);                 // the x
  EXPECT_EQ(p.line, 2);
  EXPECT_EQ(p.column, 3);
  EXPECT_EQ(p.byte, 8u);
  EXPECT_EQ(PositionOf(source, 0).column, 1);
  EXPECT_EQ(PositionOf(source, 3).line, 2);
  SourcePos end = PositionOf(source, source.size());
  EXPECT_EQ(end.line, 3);
  EXPECT_EQ(end.column, 1);
}

TEST(DiagnosticTest, PositionOfCountsInvalidBytesAsOneColumn) {
  EXPECT_EQ(PositionOf("\xff\xfex", 2).column, 3);
}

}  // namespace
}  // namespace itinera::dsl
