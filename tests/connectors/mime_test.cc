#include "connectors/mime.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/connectors/mime_parse.h"
#include "util/time.h"

namespace itinera::connectors {
namespace {

using testing::BoundaryOf;
using testing::DecodedBody;
using testing::DecodeWords;
using testing::ParseEntity;
using testing::SplitMultipart;

Message Sample() {
  Message m;
  m.id = "welcome/v3/cust-42/entry-7/step-2/email";
  m.from = "Itinera Motors <hello@motors.example>";
  m.to = "Jana Nováková <jana@example.cz>";
  m.subject = "Váš testovací jízda";
  m.html_body =
      "<html><head><title>x</title><style>p{}</style></head><body><p>Dobrý den,</p>"
      "<p>rezervujte si <a href=\"https://motors.example/book?a=1&amp;b=2\">termín</a>.</p>"
      "</body></html>";
  m.date = *ParseTime("2026-11-22T10:00:00Z");
  m.list_unsubscribe_url = "https://motors.example/u/abc";
  m.list_unsubscribe_one_click = true;
  return m;
}

// Every line ends in CRLF and none is longer than `limit` characters.
void ExpectLines(const std::string& raw, size_t limit) {
  size_t pos = 0;
  while (pos < raw.size()) {
    size_t end = raw.find("\r\n", pos);
    ASSERT_NE(end, std::string::npos) << "missing final CRLF";
    EXPECT_LE(end - pos, limit) << raw.substr(pos, end - pos);
    EXPECT_EQ(raw.substr(pos, end - pos).find('\n'), std::string::npos) << "bare LF";
    pos = end + 2;
  }
}

TEST(MimeTest, BuildsMultipartAlternativeWithHeaders) {
  Result<std::string> raw = BuildMime(Sample());
  ASSERT_TRUE(raw.ok()) << raw.error().message;
  ExpectLines(*raw, 78);
  auto msg = ParseEntity(*raw);
  EXPECT_EQ(msg.Header("Date"), "Sun, 22 Nov 2026 10:00:00 +0000");
  EXPECT_EQ(msg.Header("Message-ID"),
            "<welcome%2Fv3%2Fcust-42%2Fentry-7%2Fstep-2%2Femail@motors.example>");
  EXPECT_EQ(msg.Header("MIME-Version"), "1.0");
  EXPECT_EQ(msg.Header("From"), "Itinera Motors <hello@motors.example>");
  EXPECT_EQ(DecodeWords(msg.Header("To")), "Jana Nováková <jana@example.cz>");
  EXPECT_EQ(msg.Header("To").substr(0, 10), "=?UTF-8?Q?");
  EXPECT_EQ(DecodeWords(msg.Header("Subject")), "Váš testovací jízda");
  EXPECT_EQ(msg.Header("List-Unsubscribe"), "<https://motors.example/u/abc>");
  EXPECT_EQ(msg.Header("List-Unsubscribe-Post"), "List-Unsubscribe=One-Click");

  std::string boundary = BoundaryOf(msg.Header("Content-Type"));
  ASSERT_FALSE(boundary.empty());
  EXPECT_EQ(msg.Header("Content-Type").rfind("multipart/alternative;", 0), 0u);
  auto parts = SplitMultipart(msg.body, boundary);
  ASSERT_EQ(parts.size(), 2u);
  auto text = ParseEntity(parts[0]);
  auto html = ParseEntity(parts[1]);
  EXPECT_EQ(text.Header("Content-Type"), "text/plain; charset=utf-8");
  EXPECT_EQ(html.Header("Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(DecodedBody(text),
            "Dobrý den,\r\n\r\nrezervujte si termín (https://motors.example/book?a=1&b=2).");
  EXPECT_EQ(DecodedBody(html), Sample().html_body);
  EXPECT_NE(raw->find("\r\n--" + boundary + "--\r\n"), std::string::npos);
}

TEST(MimeTest, IsDeterministicForRetries) {
  Result<std::string> a = BuildMime(Sample());
  Result<std::string> b = BuildMime(Sample());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
}

TEST(MimeTest, TextOnlyMessageIsSinglePart) {
  Message m = Sample();
  m.html_body.clear();
  m.text_body = "Hello\nworld";
  Result<std::string> raw = BuildMime(m);
  ASSERT_TRUE(raw.ok());
  auto msg = ParseEntity(*raw);
  EXPECT_EQ(msg.Header("Content-Type"), "text/plain; charset=utf-8");
  EXPECT_EQ(DecodedBody(msg), "Hello\r\nworld\r\n");  // a single part ends the message
}

TEST(MimeTest, RejectsHeaderInjection) {
  struct Case {
    const char* name;
    void (*mutate)(Message&);
  };
  const Case cases[] = {
      {"subject LF", [](Message& m) { m.subject = "Hi\nBcc: victim@example.com"; }},
      {"subject CR", [](Message& m) { m.subject = "Hi\rBcc: victim@example.com"; }},
      {"to", [](Message& m) { m.to = "a@example.com\r\nBcc: victim@example.com"; }},
      {"from name", [](Message& m) { m.from = "Evil\n <hello@motors.example>"; }},
      {"unsubscribe", [](Message& m) { m.list_unsubscribe_url = "https://x/\r\nX: y"; }},
      {"extra value",
       [](Message& m) {
         m.headers = {{"X-Campaign", "a\nBcc: v@x"}};
       }},
      {"extra name",
       [](Message& m) {
         m.headers = {{"X-A\r\nBcc", "v@x"}};
       }},
      {"id", [](Message& m) { m.id = "k\r\nBcc: v@x"; }},
  };
  for (const Case& c : cases) {
    Message m = Sample();
    c.mutate(m);
    Result<std::string> raw = BuildMime(m);
    ASSERT_FALSE(raw.ok()) << c.name;
    EXPECT_EQ(raw.error().code, "header_injection") << c.name;
  }
}

TEST(MimeTest, RejectsBadAddressesAndHeaders) {
  Message m = Sample();
  m.to = "not an address";
  EXPECT_EQ(BuildMime(m).error().code, "invalid_address");
  m = Sample();
  m.headers = {{"Bcc", "x@example.com"}};
  EXPECT_EQ(BuildMime(m).error().code, "invalid_header");
  m = Sample();
  m.list_unsubscribe_url = "http://insecure.example/u";
  EXPECT_EQ(BuildMime(m).error().code, "invalid_unsubscribe");
  m = Sample();
  m.id.clear();
  EXPECT_EQ(BuildMime(m).error().code, "missing_id");
}

TEST(MimeTest, LongSubjectSplitsIntoShortEncodedWords) {
  Message m = Sample();
  std::string subject;
  for (int i = 0; i < 12; ++i) subject += "Příliš žluťoučký kůň úpěl ďábelské ódy. ";
  m.subject = subject;
  Result<std::string> raw = BuildMime(m);
  ASSERT_TRUE(raw.ok());
  ExpectLines(*raw, 78);
  std::string value = ParseEntity(*raw).Header("Subject");
  EXPECT_EQ(DecodeWords(value), subject);
  size_t pos = 0;
  int words = 0;
  while ((pos = value.find("=?UTF-8?", pos)) != std::string::npos) {
    size_t end = value.find("?=", pos + 10);
    EXPECT_LE(end + 2 - pos, 75u);
    pos = end + 2;
    ++words;
  }
  EXPECT_GT(words, 5);
}

TEST(MimeTest, MostlyNonAsciiUsesBase64) {
  std::string greek = "Καλημέρα σας, η κράτησή σας επιβεβαιώθηκε";
  std::string words = EncodeWords(greek);
  EXPECT_EQ(words.substr(0, 10), "=?UTF-8?B?");
  EXPECT_EQ(DecodeWords(words), greek);

  Message m = Sample();
  m.html_body.clear();
  m.text_body = greek + "\n" + greek;
  auto msg = ParseEntity(*BuildMime(m));
  EXPECT_EQ(msg.Header("Content-Transfer-Encoding"), "base64");
  EXPECT_EQ(DecodedBody(msg), greek + "\r\n" + greek);  // canonical CRLF
}

TEST(MimeTest, QuotedPrintableKeepsLinesShortAndRoundTrips) {
  std::string line(300, 'x');
  line += "= trailing space ";
  std::string text = line + "\n" + std::string(80, 'y') + "\r\nčeština\t";
  std::string qp = EncodeQuotedPrintable(text);
  ExpectLines(qp + "\r\n", 76);
  EXPECT_EQ(testing::DecodeQuotedPrintable(qp),
            line + "\r\n" + std::string(80, 'y') + "\r\nčeština\t");
  EXPECT_NE(qp.find("=20\r\n"), std::string::npos);  // trailing space protected
  EXPECT_NE(qp.find("=09"), std::string::npos);
}

TEST(MimeTest, LongHtmlLinesAreWrapped) {
  Message m = Sample();
  m.html_body = "<p>" + std::string(5000, 'a') + "</p>";
  Result<std::string> raw = BuildMime(m);
  ASSERT_TRUE(raw.ok());
  ExpectLines(*raw, 78);
}

TEST(MimeTest, QuotesDisplayNamesWithSpecials) {
  Result<Mailbox> box = ParseMailbox("\"Motors, Inc.\" <a@b.example>");
  ASSERT_TRUE(box.ok());
  EXPECT_EQ(box->display_name, "Motors, Inc.");
  EXPECT_EQ(box->address, "a@b.example");
  Message m = Sample();
  m.from = "\"Motors, Inc.\" <hello@motors.example>";
  EXPECT_EQ(ParseEntity(*BuildMime(m)).Header("From"), "\"Motors, Inc.\" <hello@motors.example>");
}

TEST(MimeTest, MessageIdUsesSenderDomain) {
  EXPECT_EQ(MessageIdFor("a.b c", "x@Mail.Example"), "<a%2Eb%20c@mail.example>");
  EXPECT_EQ(MessageIdFor("k", "nodomain"), "<k@itinera.invalid>");
}

}  // namespace
}  // namespace itinera::connectors
