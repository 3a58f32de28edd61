#include "util/time.h"

#include <date/date.h>
#include <gtest/gtest.h>

namespace itinera {
namespace {

TEST(TimeTest, FormatsUtcWithZ) {
  EXPECT_EQ(FormatTime(Time{Seconds{0}}), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatTime(*ParseTime("2026-11-22T10:00:00Z")), "2026-11-22T10:00:00Z");
}

TEST(TimeTest, FormatsLikeTheDateLibraryEverywhere) {
  // The formatter is hand-written for speed; date::format is the reference. Steps of a prime
  // number of seconds walk every field from year 0 through 9999, and the edges outside it.
  for (int64_t s = -62167219200; s < 253402300800; s += 7919 * 86400 + 3671) {
    Time t{Seconds{s}};
    ASSERT_EQ(FormatTime(t), date::format("%Y-%m-%dT%H:%M:%SZ", t)) << s;
  }
  for (int64_t s :
       {int64_t{-62167219201}, int64_t{253402300800}, int64_t{951782400}, int64_t{4107542399}}) {
    Time t{Seconds{s}};
    EXPECT_EQ(FormatTime(t), date::format("%Y-%m-%dT%H:%M:%SZ", t)) << s;
  }
}

TEST(TimeTest, ParsesOffsetsAndFractions) {
  EXPECT_EQ(FormatTime(*ParseTime("2026-11-22T11:00:00+01:00")), "2026-11-22T10:00:00Z");
  EXPECT_EQ(FormatTime(*ParseTime("2026-11-22T05:30:00-04:30")), "2026-11-22T10:00:00Z");
  EXPECT_EQ(FormatTime(*ParseTime("2026-11-22T10:00:00.789Z")), "2026-11-22T10:00:00Z");
  EXPECT_EQ(FormatTime(*ParseTime("2026-11-22T10:00Z")), "2026-11-22T10:00:00Z");
  EXPECT_EQ(FormatTime(*ParseTime("2026-11-22")), "2026-11-22T00:00:00Z");
}

TEST(TimeTest, RejectsMalformedTimes) {
  for (const char* bad : {"", "2026-11-22T10:00:00", "2026-13-01T00:00:00Z", "2026-02-30",
                          "2026-11-22T25:00:00Z", "yesterday", "2026-11-22T10:00:00Zjunk"}) {
    EXPECT_FALSE(ParseTime(bad)) << bad;
  }
}

TEST(TimeTest, ParsesAndFormatsDurations) {
  EXPECT_EQ(ParseDuration("90d")->count(), 90 * 86400);
  EXPECT_EQ(ParseDuration("1d12h")->count(), 36 * 3600);
  EXPECT_EQ(ParseDuration("30m")->count(), 1800);
  EXPECT_EQ(ParseDuration("2w")->count(), 14 * 86400);
  EXPECT_FALSE(ParseDuration("3"));
  EXPECT_FALSE(ParseDuration("d"));
  EXPECT_FALSE(ParseDuration("3x"));
  EXPECT_FALSE(ParseDuration("99999999999999d"));
  EXPECT_EQ(FormatDuration(Seconds{36 * 3600}), "1d12h");
  EXPECT_EQ(FormatDuration(Seconds{0}), "0s");
}

}  // namespace
}  // namespace itinera
