#include "orchestrator/zone.h"

#include <gtest/gtest.h>

#include "tests/orchestrator/engine_harness.h"

namespace itinera::orch {
namespace {

using nlohmann::json;
using testing::At;

dsl::TimeOfDay Tod(int h, int m) {
  dsl::TimeOfDay t;
  t.hour = h;
  t.minute = m;
  return t;
}

constexpr int kMon = 1, kTue = 2, kWed = 3, kThu = 4, kFri = 5;

TEST(ZoneTest, FindsIanaZonesAndRejectsOthers) {
  EXPECT_NE(FindZone("Europe/Prague"), nullptr);
  EXPECT_EQ(FindZone("Europe/Prague"), FindZone("Europe/Prague"));  // cached
  EXPECT_EQ(FindZone("Mars/Olympus"), nullptr);
  EXPECT_EQ(FindZone(""), nullptr);
  EXPECT_NE(UtcZone(), nullptr);
}

TEST(ZoneTest, CustomerZoneUsesPathThenFallbackThenUtc) {
  dsl::Program p = testing::CompileJourney(R"(journey t {
  enter when event "x"
  timezone customer.timezone or "Europe/Prague"
  step s { exit }
})");
  EXPECT_EQ(CustomerZone(p.timezone, json{{"timezone", "America/New_York"}}),
            FindZone("America/New_York"));
  EXPECT_EQ(CustomerZone(p.timezone, json{{"timezone", "Not/AZone"}}), FindZone("Europe/Prague"));
  EXPECT_EQ(CustomerZone(p.timezone, json::object()), FindZone("Europe/Prague"));
  dsl::Program plain =
      testing::CompileJourney("journey t { enter when event \"x\" step s { exit } }");
  EXPECT_EQ(CustomerZone(plain.timezone, json{{"timezone", "America/New_York"}}), UtcZone());
}

TEST(ZoneTest, LocalToUtcSpringForwardGapGoesToFirstInstantAfter) {
  Zone prague = FindZone("Europe/Prague");
  // 2026-03-29 02:00 -> 03:00 CEST: 02:30 does not exist; the gap ends at 01:00Z.
  EXPECT_EQ(LocalToUtc(prague, 2026, 3, 29, 2, 30), At("2026-03-29T01:00:00Z"));
  EXPECT_EQ(LocalToUtc(prague, 2026, 3, 29, 3, 0), At("2026-03-29T01:00:00Z"));
  EXPECT_EQ(LocalToUtc(prague, 2026, 3, 29, 1, 59), At("2026-03-29T00:59:00Z"));
}

TEST(ZoneTest, LocalToUtcFallBackOverlapTakesEarlierInstant) {
  Zone prague = FindZone("Europe/Prague");
  // 2026-10-25 03:00 CEST -> 02:00 CET: 02:30 happens twice; the first is 00:30Z.
  EXPECT_EQ(LocalToUtc(prague, 2026, 10, 25, 2, 30), At("2026-10-25T00:30:00Z"));
}

TEST(QuietHoursTest, WindowWrappingMidnightHoldsUntilMorning) {
  Zone prague = FindZone("Europe/Prague");  // CET, UTC+1, in November
  auto end = QuietHoursEnd(prague, Tod(21, 0), Tod(8, 0), At("2026-11-22T21:30:00Z"));
  ASSERT_TRUE(end);
  EXPECT_EQ(*end, At("2026-11-23T07:00:00Z"));
  end = QuietHoursEnd(prague, Tod(21, 0), Tod(8, 0), At("2026-11-23T05:00:00Z"));
  ASSERT_TRUE(end);
  EXPECT_EQ(*end, At("2026-11-23T07:00:00Z"));
  EXPECT_FALSE(QuietHoursEnd(prague, Tod(21, 0), Tod(8, 0), At("2026-11-23T12:00:00Z")));
}

TEST(QuietHoursTest, StartIsInclusiveEndIsExclusive) {
  Zone prague = FindZone("Europe/Prague");
  EXPECT_TRUE(QuietHoursEnd(prague, Tod(21, 0), Tod(8, 0), At("2026-11-22T20:00:00Z")));
  EXPECT_FALSE(QuietHoursEnd(prague, Tod(21, 0), Tod(8, 0), At("2026-11-22T19:59:59Z")));
  EXPECT_FALSE(QuietHoursEnd(prague, Tod(21, 0), Tod(8, 0), At("2026-11-23T07:00:00Z")));
  EXPECT_TRUE(QuietHoursEnd(prague, Tod(21, 0), Tod(8, 0), At("2026-11-23T06:59:59Z")));
}

TEST(QuietHoursTest, WindowWithinOneDay) {
  Zone utc = UtcZone();
  auto end = QuietHoursEnd(utc, Tod(12, 0), Tod(13, 30), At("2026-11-22T12:10:00Z"));
  ASSERT_TRUE(end);
  EXPECT_EQ(*end, At("2026-11-22T13:30:00Z"));
  EXPECT_FALSE(QuietHoursEnd(utc, Tod(12, 0), Tod(13, 30), At("2026-11-22T23:10:00Z")));
  EXPECT_FALSE(QuietHoursEnd(utc, Tod(12, 0), Tod(12, 0), At("2026-11-22T12:00:00Z")));
}

TEST(QuietHoursTest, NightOfSpringForwardEndsAtLocalMorningInNewYork) {
  Zone ny = FindZone("America/New_York");
  // 2026-03-08 01:30 EST (06:30Z); at 02:00 clocks jump to 03:00 EDT; 08:00 EDT = 12:00Z.
  auto end = QuietHoursEnd(ny, Tod(21, 0), Tod(8, 0), At("2026-03-08T06:30:00Z"));
  ASSERT_TRUE(end);
  EXPECT_EQ(*end, At("2026-03-08T12:00:00Z"));
}

TEST(QuietHoursTest, NightOfFallBackInPrague) {
  Zone prague = FindZone("Europe/Prague");
  // 2026-10-24 22:00 CEST (20:00Z) -> 2026-10-25 08:00 CET = 07:00Z (a 10-hour-plus-one night).
  auto end = QuietHoursEnd(prague, Tod(21, 0), Tod(8, 0), At("2026-10-24T20:00:00Z"));
  ASSERT_TRUE(end);
  EXPECT_EQ(*end, At("2026-10-25T07:00:00Z"));
}

TEST(QuietHoursTest, WindowEndingInsideTheGapEndsAfterTheGap) {
  Zone prague = FindZone("Europe/Prague");
  // Quiet 01:00 to 02:30: on 2026-03-29 02:30 does not exist; the hold ends at 03:00 CEST.
  auto end = QuietHoursEnd(prague, Tod(1, 0), Tod(2, 30), At("2026-03-29T00:30:00Z"));
  ASSERT_TRUE(end);
  EXPECT_EQ(*end, At("2026-03-29T01:00:00Z"));
}

TEST(WaitUntilTest, LaterTodayOrTomorrow) {
  Zone prague = FindZone("Europe/Prague");
  EXPECT_EQ(NextLocalTime(prague, Tod(10, 0), {}, At("2026-11-22T07:00:00Z")),
            At("2026-11-22T09:00:00Z"));
  EXPECT_EQ(NextLocalTime(prague, Tod(10, 0), {}, At("2026-11-22T09:00:01Z")),
            At("2026-11-23T09:00:00Z"));
  // Exactly at that time: no wait.
  EXPECT_EQ(NextLocalTime(prague, Tod(10, 0), {}, At("2026-11-22T09:00:00Z")),
            At("2026-11-22T09:00:00Z"));
}

TEST(WaitUntilTest, WeekdaysSkipTheWeekend) {
  Zone prague = FindZone("Europe/Prague");
  std::vector<int> weekdays = {kMon, kTue, kWed, kThu, kFri};
  // Friday 2026-11-20 11:00 local: past 10:00, so Monday 2026-11-23 10:00 CET.
  EXPECT_EQ(NextLocalTime(prague, Tod(10, 0), weekdays, At("2026-11-20T10:00:00Z")),
            At("2026-11-23T09:00:00Z"));
  // Saturday: Monday.
  EXPECT_EQ(NextLocalTime(prague, Tod(10, 0), weekdays, At("2026-11-21T08:00:00Z")),
            At("2026-11-23T09:00:00Z"));
  // Friday early: the same day.
  EXPECT_EQ(NextLocalTime(prague, Tod(10, 0), weekdays, At("2026-11-20T06:00:00Z")),
            At("2026-11-20T09:00:00Z"));
}

TEST(WaitUntilTest, UsesTheCustomersLocalDayNotUtc) {
  Zone ny = FindZone("America/New_York");
  // Sat 2026-11-21 03:00Z is still Friday 22:00 in New York; next Mon 09:00 EST = 14:00Z.
  EXPECT_EQ(NextLocalTime(ny, Tod(9, 0), {kMon}, At("2026-11-21T03:00:00Z")),
            At("2026-11-23T14:00:00Z"));
}

TEST(WaitUntilTest, SpringForwardGapAndFallBackOverlap) {
  Zone prague = FindZone("Europe/Prague");
  // 02:30 on 2026-03-29 does not exist: the first instant after the gap (03:00 CEST).
  EXPECT_EQ(NextLocalTime(prague, Tod(2, 30), {}, At("2026-03-28T23:00:00Z")),
            At("2026-03-29T01:00:00Z"));
  // 02:30 on 2026-10-25 happens twice: the earlier one (CEST).
  EXPECT_EQ(NextLocalTime(prague, Tod(2, 30), {}, At("2026-10-24T23:00:00Z")),
            At("2026-10-25T00:30:00Z"));
  // 10:00 the day after spring-forward is 08:00Z (CEST).
  EXPECT_EQ(NextLocalTime(prague, Tod(10, 0), {}, At("2026-03-29T12:00:00Z")),
            At("2026-03-30T08:00:00Z"));
}

}  // namespace
}  // namespace itinera::orch
