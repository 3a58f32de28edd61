#include "util/json_limits.h"

#include <gtest/gtest.h>

#include <string>

namespace itinera {
namespace {

TEST(JsonLimitsTest, CountsNestingOutsideStrings) {
  EXPECT_FALSE(JsonTooDeep(R"({"a": [1, {"b": [2]}]})", 4));
  EXPECT_TRUE(JsonTooDeep(R"({"a": [1, {"b": [2]}]})", 3));
  EXPECT_FALSE(JsonTooDeep(R"({"a": "[[[[[[[[[[\"[[[["})", 1));
}

TEST(JsonLimitsTest, RefusesHostileDepth) {
  EXPECT_TRUE(JsonTooDeep(std::string(100000, '[')));
  EXPECT_FALSE(JsonTooDeep(std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']')));
}

TEST(JsonLimitsTest, FindsNulEscapesInStringsOnly) {
  EXPECT_TRUE(JsonHasNul(R"({"email": "a\u0000b@x"})"));
  EXPECT_TRUE(JsonHasNul(R"(["ok", "\u0000"])"));
  EXPECT_FALSE(JsonHasNul(R"({"email": "a\u0001b@x"})"));
  EXPECT_FALSE(JsonHasNul(R"({"path": "C:\\u0000"})"));  // an escaped backslash, then text
  EXPECT_FALSE(JsonHasNul(R"({"u0000": 1})"));
}

}  // namespace
}  // namespace itinera
