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

}  // namespace
}  // namespace itinera
