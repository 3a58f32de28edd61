#include "connectors/sms_file.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/connectors/temp_dir.h"
#include "util/time.h"

namespace itinera::connectors {
namespace {

Message Sms(std::string id) {
  Message m;
  m.id = std::move(id);
  m.channel = Channel::kSms;
  m.to = "+420601234567";
  m.from = "Motors";
  m.text_body = "Váš termín: zítra 10:00 \"A\"";
  m.date = *ParseTime("2026-11-22T10:00:00Z");
  return m;
}

std::vector<nlohmann::json> Lines(const std::string& path) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

TEST(SmsFileTest, AppendsOneJsonLinePerMessage) {
  testing::TempDir dir;
  std::string path = (dir.path() / "sms.jsonl").string();
  SmsFileConnector sms(path);
  ASSERT_EQ(sms.Send(Sms("a")).outcome, Delivery::kSent);
  ASSERT_EQ(sms.Send(Sms("b")).outcome, Delivery::kSent);
  auto rows = Lines(path);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0], (nlohmann::json{{"id", "a"},
                                     {"to", "+420601234567"},
                                     {"from", "Motors"},
                                     {"body", "Váš termín: zítra 10:00 \"A\""},
                                     {"at", "2026-11-22T10:00:00Z"}}));
  EXPECT_EQ(rows[1]["id"], "b");
}

TEST(SmsFileTest, IdempotentOnIdAcrossInstances) {
  testing::TempDir dir;
  std::string path = (dir.path() / "sms.jsonl").string();
  {
    SmsFileConnector sms(path);
    ASSERT_EQ(sms.Send(Sms("a")).outcome, Delivery::kSent);
    ASSERT_EQ(sms.Send(Sms("a")).outcome, Delivery::kSent);
  }
  SmsFileConnector restarted(path);  // as after a crash: reads the ids already written
  EXPECT_EQ(restarted.Send(Sms("a")).outcome, Delivery::kSent);
  EXPECT_EQ(Lines(path).size(), 1u);
}

TEST(SmsFileTest, EmptyBodyIsPermanent) {
  testing::TempDir dir;
  SmsFileConnector sms((dir.path() / "sms.jsonl").string());
  Message m = Sms("a");
  m.text_body.clear();
  EXPECT_EQ(sms.Send(m).outcome, Delivery::kPermanent);
}

TEST(FakeConnectorTest, RecordsAndFollowsScript) {
  FakeConnector fake;
  fake.Script({Delivery::kTransient, "", "try later"});
  EXPECT_EQ(fake.Send(Sms("a")).outcome, Delivery::kTransient);
  Delivery second = fake.Send(Sms("a"));
  EXPECT_EQ(second.outcome, Delivery::kSent);
  EXPECT_EQ(second.provider_id, "fake-2");
  ASSERT_EQ(fake.sent().size(), 2u);
  EXPECT_EQ(fake.sent()[0].id, "a");
}

}  // namespace
}  // namespace itinera::connectors
