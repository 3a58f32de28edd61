#include "connectors/maildir.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/connectors/mime_parse.h"
#include "tests/connectors/temp_dir.h"

namespace itinera::connectors {
namespace {

namespace fs = std::filesystem;

Message Mail(std::string id) {
  Message m;
  m.id = std::move(id);
  m.from = "hello@motors.example";
  m.to = "jana@example.cz";
  m.subject = "Test drive";
  m.html_body = "<p>See you</p>";
  return m;
}

size_t CountFiles(const fs::path& dir) {
  size_t n = 0;
  for (const auto& entry : fs::directory_iterator(dir)) n += entry.is_regular_file();
  return n;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(MaildirTest, WritesIntoNewWithDerivedName) {
  testing::TempDir dir;
  MaildirConnector maildir((dir.path() / "Maildir").string());
  Delivery d = maildir.Send(Mail("key-1"));
  ASSERT_EQ(d.outcome, Delivery::kSent) << d.error;
  EXPECT_EQ(d.provider_id, MaildirConnector::FileNameFor("key-1"));
  EXPECT_EQ(d.provider_id.size(), 8u + 64u);
  fs::path root = dir.path() / "Maildir";
  EXPECT_TRUE(fs::is_directory(root / "cur"));
  EXPECT_EQ(CountFiles(root / "tmp"), 0u);
  ASSERT_EQ(CountFiles(root / "new"), 1u);
  auto msg = testing::ParseEntity(ReadFile(root / "new" / d.provider_id));
  EXPECT_EQ(msg.Header("Message-ID"), "<key-1@motors.example>");
  EXPECT_EQ(msg.Header("Subject"), "Test drive");
}

TEST(MaildirTest, RetryDoesNotWriteASecondCopy) {
  testing::TempDir dir;
  MaildirConnector maildir(dir.path().string());
  ASSERT_EQ(maildir.Send(Mail("key-1")).outcome, Delivery::kSent);
  Delivery again = maildir.Send(Mail("key-1"));
  EXPECT_EQ(again.outcome, Delivery::kSent);
  EXPECT_EQ(CountFiles(dir.path() / "new"), 1u);
  ASSERT_EQ(maildir.Send(Mail("key-2")).outcome, Delivery::kSent);
  EXPECT_EQ(CountFiles(dir.path() / "new"), 2u);
}

TEST(MaildirTest, MessageAlreadyReadInCurCountsAsDelivered) {
  testing::TempDir dir;
  MaildirConnector maildir(dir.path().string());
  Delivery d = maildir.Send(Mail("key-1"));
  ASSERT_EQ(d.outcome, Delivery::kSent);
  // A mail reader moves it to cur/ and adds flags.
  fs::rename(dir.path() / "new" / d.provider_id, dir.path() / "cur" / (d.provider_id + ":2,S"));
  EXPECT_EQ(maildir.Send(Mail("key-1")).outcome, Delivery::kSent);
  EXPECT_EQ(CountFiles(dir.path() / "new"), 0u);
  EXPECT_EQ(CountFiles(dir.path() / "cur"), 1u);
}

TEST(MaildirTest, UnrenderableMessageIsPermanent) {
  testing::TempDir dir;
  MaildirConnector maildir(dir.path().string());
  Message m = Mail("key-1");
  m.subject = "a\r\nBcc: x@y.example";
  Delivery d = maildir.Send(m);
  EXPECT_EQ(d.outcome, Delivery::kPermanent);
  EXPECT_NE(d.error.find("header_injection"), std::string::npos);
}

TEST(MaildirTest, UnwritableRootIsTransient) {
  testing::TempDir dir;
  std::ofstream(dir.path() / "file") << "x";
  MaildirConnector maildir((dir.path() / "file" / "Maildir").string());
  EXPECT_EQ(maildir.Send(Mail("key-1")).outcome, Delivery::kTransient);
}

}  // namespace
}  // namespace itinera::connectors
