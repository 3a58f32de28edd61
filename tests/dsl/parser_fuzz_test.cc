// Deterministic fuzz-style tests: mutations of the contract's example and hostile inputs must
// never crash or hang the parser, and anything it rejects gets a located diagnostic. A fixed
// seed keeps failures reproducible; fuzz/parser_fuzzer.cc explores further with libFuzzer.
#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "dsl/parser.h"
#include "tests/dsl/example_journey.h"

namespace itinera::dsl {
namespace {

using testing::kExampleJourney;

// Parses `text` and checks every diagnostic points inside it, at the position its byte
// offset implies. Returns the result for further checks.
ParseResult ParseChecked(const std::string& text) {
  ParseResult r = Parse(text, "fuzz.journey");
  for (const Diagnostic& d : r.diagnostics) {
    EXPECT_GE(d.pos.line, 1) << d.message;
    EXPECT_GE(d.pos.column, 1) << d.message;
    EXPECT_LE(d.pos.byte, text.size()) << d.message;
    SourcePos expected = PositionOf(text, d.pos.byte);
    EXPECT_EQ(d.pos.line, expected.line) << d.message;
    EXPECT_EQ(d.pos.column, expected.column) << d.message;
    EXPECT_FALSE(FormatDiagnostic(d, text).empty());
  }
  return r;
}

void ExpectRejected(const std::string& text) {
  ParseResult r = ParseChecked(text);
  EXPECT_TRUE(HasErrors(r.diagnostics)) << "accepted: " << text.substr(0, 200);
}

const std::vector<std::string> kTokens = {
    "journey", "step", "{",     "}",     "(",    ")",         "[",     "]",        "\"",  "\\",
    "then",    "else", "if",    "exit",  "wait", "up to",     "split", "->",       "50%", "%",
    "3d",      "1d1",  "10:00", "25:99", "==",   "=",         "not",   "and",      "or",  "has",
    "\n",      "#",    ",",     ".",     "-",    "customer.", "when",  "received", "\t",  "é"};

TEST(ParserFuzzTest, ExampleIsValid) {
  EXPECT_FALSE(HasErrors(ParseChecked(kExampleJourney).diagnostics));
}

TEST(ParserFuzzTest, EveryTruncationIsRejected) {
  const std::string example = kExampleJourney;
  const size_t last_brace = example.rfind('}');
  for (size_t n = 0; n < last_brace; n += 5) ExpectRejected(example.substr(0, n));
}

TEST(ParserFuzzTest, ByteFlipsDeletionsAndInsertions) {
  const std::string example = kExampleJourney;
  std::mt19937 rng(20251122);
  auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  for (int round = 0; round < 800; ++round) {
    std::string text = example;
    int edits = 1 + static_cast<int>(pick(4));
    for (int e = 0; e < edits && !text.empty(); ++e) {
      size_t at = pick(text.size());
      switch (pick(4)) {
        case 0:
          text[at] = static_cast<char>(pick(256));
          break;
        case 1:
          text.erase(at, 1 + pick(8));
          break;
        case 2:
          text.insert(at, kTokens[pick(kTokens.size())]);
          break;
        default:
          text.insert(at, 1, pick(2) ? '\0' : '\xff');
          break;
      }
    }
    ParseChecked(text);
  }
}

TEST(ParserFuzzTest, RandomBytesAreRejected) {
  std::mt19937 rng(7);
  for (int round = 0; round < 300; ++round) {
    std::string text(1 + rng() % 400, '\0');
    for (char& c : text) c = static_cast<char>(rng() % 256);
    text[rng() % text.size()] = '\0';  // at least one NUL, so it is certainly invalid
    ExpectRejected(text);
  }
}

TEST(ParserFuzzTest, HostileShapes) {
  const std::string head = "journey j {\n  step a {\n    set customer.x = ";
  ExpectRejected(head + std::string(10000, '(') + "1" + std::string(10000, ')'));
  ExpectRejected(std::string(1 << 20, '('));
  ExpectRejected(head + std::string(1 << 20, '('));
  ExpectRejected(head + std::string(1 << 16, '['));
  ExpectRejected(head + std::string(1 << 16, '-'));
  ExpectRejected(head + std::string(100000, '9'));
  ExpectRejected(std::string(1 << 16, '\0'));
  ExpectRejected(std::string(1 << 16, '\xff'));
  ExpectRejected(std::string(1 << 16, '\n'));
  ExpectRejected("journey j {\n" + std::string(1 << 16, '}'));
  ExpectRejected("journey j \"" + std::string(1 << 16, 'a'));
  ExpectRejected("journey j {\n  step a {\n" + std::string(100000, '{'));
}

TEST(ParserFuzzTest, LargeValidFileIsLinear) {
  std::string text = "journey big {\n";
  for (int i = 0; i < 2000; ++i) {
    text += "  step s" + std::to_string(i) + " {\n    send email \"t\" as h\n" +
            "    if customer.score + 1 > 2 and has customer.phone then s0 else s1\n  }\n";
  }
  text += "}\n";
  auto start = std::chrono::steady_clock::now();
  ParseResult r = ParseChecked(text);
  auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_TRUE(r.diagnostics.empty());
  EXPECT_EQ(r.journey.steps.size(), 2000u);
  EXPECT_LT(seconds, 5.0);
}

}  // namespace
}  // namespace itinera::dsl
