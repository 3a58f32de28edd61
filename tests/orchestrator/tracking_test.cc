#include "orchestrator/tracking.h"

#include <gtest/gtest.h>

#include <string>

#include "util/crypto.h"

namespace itinera {
namespace {

constexpr char kSecret[] = "s3cret-tracking-key";
constexpr char kBase[] = "https://go.example.com";
constexpr char kMessage[] = "4f9c2a11be07d3e5";

std::string Token(TrackingKind kind, uint32_t link = 0) {
  Result<std::string> token = MakeToken({kind, kMessage, link}, kSecret);
  EXPECT_TRUE(token.ok());
  return token.ok() ? *token : std::string();
}

// The token in "<base><path><token>", or "" when the URL is not of that form.
std::string TokenIn(const std::string& url, const std::string& path) {
  const std::string prefix = std::string(kBase) + path;
  return url.starts_with(prefix) ? url.substr(prefix.size()) : std::string();
}

// Every quoted click-tracking URL in `html`, in order.
std::vector<std::string> ClickUrls(const std::string& html) {
  const std::string prefix = std::string("\"") + kBase + "/t/c/";
  std::vector<std::string> urls;
  size_t pos = 0;
  while ((pos = html.find(prefix, pos)) != std::string::npos) {
    const size_t close = html.find('"', pos + 1);
    urls.push_back(html.substr(pos + 1, close - pos - 1));
    pos = close;
  }
  return urls;
}

RewrittenEmail Rewrite(const std::string& html) {
  Result<RewrittenEmail> email = RewriteEmail(html, kMessage, kBase, kSecret);
  EXPECT_TRUE(email.ok()) << (email.ok() ? "" : email.error().message);
  return email.ok() ? *email : RewrittenEmail{};
}

TEST(TrackingTest, TokensRoundTripForEachKind) {
  const TrackingToken cases[] = {
      {TrackingKind::kOpen, kMessage, 0},
      {TrackingKind::kClick, kMessage, 0},
      {TrackingKind::kClick, kMessage, 7},
      {TrackingKind::kClick, std::string(kMaxTrackedMessageIdBytes, 'x'), kMaxTrackedLinks - 1},
      {TrackingKind::kUnsubscribe, kMessage, 0},
      {TrackingKind::kOpen, std::string("a\0/b", 4), 0},
  };
  for (const TrackingToken& want : cases) {
    Result<std::string> token = MakeToken(want, kSecret);
    ASSERT_TRUE(token.ok());
    EXPECT_LE(token->size(), kMaxTrackingTokenChars);
    EXPECT_EQ(token->find_first_not_of(
                  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
              std::string::npos);
    EXPECT_EQ(VerifyToken(*token, kSecret), want);
    EXPECT_EQ(VerifyToken(*token, kSecret, want.kind), want);
  }
}

TEST(TrackingTest, MacIsAtLeast128Bits) {
  // Payload is 5 header bytes plus the id; the rest is MAC.
  const std::optional<std::string> bytes = Base64UrlDecode(Token(TrackingKind::kOpen));
  ASSERT_TRUE(bytes);
  EXPECT_GE(bytes->size() - 5 - std::string(kMessage).size(), 16u);
}

TEST(TrackingTest, RejectsWrongKindForPath) {
  EXPECT_FALSE(VerifyToken(Token(TrackingKind::kOpen), kSecret, TrackingKind::kClick));
  EXPECT_FALSE(VerifyToken(Token(TrackingKind::kClick, 2), kSecret, TrackingKind::kUnsubscribe));
  EXPECT_FALSE(VerifyToken(Token(TrackingKind::kUnsubscribe), kSecret, TrackingKind::kOpen));
}

TEST(TrackingTest, RejectsEverySingleByteAlteration) {
  for (TrackingKind kind :
       {TrackingKind::kOpen, TrackingKind::kClick, TrackingKind::kUnsubscribe}) {
    const std::string token = Token(kind, kind == TrackingKind::kClick ? 3 : 0);
    ASSERT_TRUE(VerifyToken(token, kSecret));
    for (size_t i = 0; i < token.size(); ++i) {
      for (int b = 0; b < 256; ++b) {
        if (static_cast<char>(b) == token[i]) continue;
        std::string altered = token;
        altered[i] = static_cast<char>(b);
        ASSERT_FALSE(VerifyToken(altered, kSecret)) << "position " << i << " byte " << b;
      }
      // Dropping or duplicating a character.
      std::string dropped = token;
      dropped.erase(i, 1);
      EXPECT_FALSE(VerifyToken(dropped, kSecret)) << "dropped " << i;
      std::string doubled = token;
      doubled.insert(i, 1, token[i]);
      EXPECT_FALSE(VerifyToken(doubled, kSecret)) << "doubled " << i;
    }
  }
}

TEST(TrackingTest, RejectsTruncationExtensionAndOversize) {
  const std::string token = Token(TrackingKind::kClick, 1);
  for (size_t n = 0; n < token.size(); ++n) {
    EXPECT_FALSE(VerifyToken(token.substr(0, n), kSecret)) << n;
  }
  EXPECT_FALSE(VerifyToken(token + "A", kSecret));
  EXPECT_FALSE(VerifyToken(token + "AA", kSecret));
  EXPECT_FALSE(VerifyToken(token + "=", kSecret));
  EXPECT_FALSE(VerifyToken(std::string(100000, 'A'), kSecret));
  EXPECT_FALSE(VerifyToken(token + std::string(kMaxTrackingTokenChars, 'A'), kSecret));
}

TEST(TrackingTest, RejectsWrongSecretAndEmptySecret) {
  const std::string token = Token(TrackingKind::kOpen);
  EXPECT_FALSE(VerifyToken(token, "another-secret"));
  EXPECT_FALSE(VerifyToken(token, std::string(kSecret) + "x"));
  EXPECT_FALSE(VerifyToken(token, ""));
  Result<std::string> unsigned_token = MakeToken({TrackingKind::kOpen, kMessage, 0}, "");
  ASSERT_FALSE(unsigned_token.ok());
  EXPECT_EQ(unsigned_token.error().code, "no_tracking_secret");
}

TEST(TrackingTest, RejectsForgedTokens) {
  // A well-formed payload with a MAC made under a different domain or left out entirely.
  std::string payload = std::string("\x01\x02\x00\x00", 4) + char(16) + kMessage;
  EXPECT_FALSE(VerifyToken(Base64UrlEncode(payload), kSecret));
  EXPECT_FALSE(
      VerifyToken(Base64UrlEncode(payload + HmacSha256(kSecret, payload).substr(0, 16)), kSecret));
  EXPECT_FALSE(VerifyToken(Base64UrlEncode(payload + std::string(16, '\0')), kSecret));
  EXPECT_FALSE(VerifyToken("", kSecret));
  EXPECT_FALSE(VerifyToken("not a token!", kSecret));
}

TEST(TrackingTest, MakeTokenRejectsBadFields) {
  EXPECT_FALSE(MakeToken({TrackingKind::kOpen, "", 0}, kSecret).ok());
  EXPECT_FALSE(
      MakeToken({TrackingKind::kOpen, std::string(kMaxTrackedMessageIdBytes + 1, 'x'), 0}, kSecret)
          .ok());
  EXPECT_FALSE(MakeToken({TrackingKind::kClick, kMessage, kMaxTrackedLinks}, kSecret).ok());
  EXPECT_FALSE(MakeToken({TrackingKind::kOpen, kMessage, 1}, kSecret).ok());
  EXPECT_FALSE(MakeToken({static_cast<TrackingKind>(9), kMessage, 0}, kSecret).ok());
}

TEST(TrackingTest, RewritesLinksAndRecoversThemInOrder) {
  const RewrittenEmail email = Rewrite(
      "<html><body>\n"
      "<p><a href=\"https://example.com/a\">A</a>\n"
      "<A class=\"btn\" HREF='http://example.com/b?x=1'>B</A>\n"
      "<a\n  title=\"t\"\n  Href = \"https://example.com/a\" >A again</a>\n"
      "<a href=https://example.com/c>C</a></p>\n"
      "</body></html>");
  ASSERT_EQ(email.links,
            (std::vector<std::string>{"https://example.com/a", "http://example.com/b?x=1",
                                      "https://example.com/a", "https://example.com/c"}));
  const std::vector<std::string> hrefs = ClickUrls(email.html);
  ASSERT_EQ(hrefs.size(), 4u);
  for (size_t i = 0; i < hrefs.size(); ++i) {
    const std::string token = TokenIn(hrefs[i], "/t/c/");
    ASSERT_FALSE(token.empty()) << hrefs[i];
    const std::optional<TrackingToken> parsed = VerifyToken(token, kSecret, TrackingKind::kClick);
    ASSERT_TRUE(parsed) << hrefs[i];
    EXPECT_EQ(parsed->message_id, kMessage);
    EXPECT_EQ(parsed->link_index, i);
  }
  // Everything but the href values is kept as written.
  EXPECT_NE(email.html.find("<A class=\"btn\" HREF=\""), std::string::npos);
  EXPECT_NE(email.html.find("title=\"t\"\n  Href = \""), std::string::npos);
  EXPECT_EQ(email.html.find("https://example.com"), std::string::npos);
}

TEST(TrackingTest, LeavesNonHttpLinksAlone) {
  const std::string body =
      "<a href=\"mailto:sales@example.com\">m</a>"
      "<a href=\"tel:+15551234\">t</a>"
      "<a href=\"#top\">anchor</a>"
      "<a href=\"/relative\">rel</a>"
      "<a href=\"ftp://example.com/f\">ftp</a>"
      "<a href=\"{{links.unsubscribe}}\">u1</a>"
      "<a href=\"{{unsubscribe}}\">u2</a>"
      "<a href=\"https://go.example.com/u/abc\">already unsubscribe</a>"
      "<a href=\"https://go.example.com/t/c/abc\">already tracked</a>"
      "<a name=\"x\">no href</a>"
      "<link href=\"https://example.com/style.css\">"
      "<area href=\"https://example.com/map\">"
      "<!-- <a href=\"https://example.com/commented\">c</a> -->";
  const RewrittenEmail email = Rewrite(body);
  EXPECT_TRUE(email.links.empty());
  EXPECT_TRUE(email.html.starts_with(body)) << email.html;
}

TEST(TrackingTest, RealUnsubscribeLinkIsNotRewritten) {
  Result<std::string> unsubscribe = UnsubscribeUrl(kBase, kMessage, kSecret);
  ASSERT_TRUE(unsubscribe.ok());
  const std::string body = "<a href=\"" + *unsubscribe + "\">Unsubscribe</a>";
  const RewrittenEmail email = Rewrite(body);
  EXPECT_TRUE(email.links.empty());
  EXPECT_TRUE(email.html.starts_with(body));
}

TEST(TrackingTest, DoesNotRewriteHostileHrefs) {
  const std::string body =
      "<a href=\"javascript:alert(1)\">j</a>"
      "<a href=\"JaVaScRiPt:alert(1)\">j2</a>"
      "<a href=\"http://x.example/&quot; onmouseover=&quot;alert(1)\">q</a>"
      "<a href='http://x.example/\" onclick=\"alert(1)'>q2</a>"
      "<a href=\"http://x.example/&#10;Location: evil\">crlf</a>"
      "<a href=\"http://x.example/<script>\">lt</a>"
      "<a href=\"data:text/html,hi\">data</a>";
  const RewrittenEmail email = Rewrite(body);
  EXPECT_TRUE(email.links.empty()) << email.links.front();
  EXPECT_TRUE(email.html.starts_with(body));
}

TEST(TrackingTest, StoresEntityDecodedUrl) {
  const RewrittenEmail email = Rewrite(
      "<a href=\"https://example.com/p?a=1&amp;b=2&#38;c=3&#x26;d=4\">x</a>"
      "<a href=\"https://example.com/q?x=&unknown;\">y</a>"
      "<a href=\"  https://example.com/trim  \">z</a>");
  EXPECT_EQ(email.links, (std::vector<std::string>{"https://example.com/p?a=1&b=2&c=3&d=4",
                                                   "https://example.com/q?x=&unknown;",
                                                   "https://example.com/trim"}));
}

TEST(TrackingTest, EscapesWrittenAttributeValues) {
  Result<RewrittenEmail> email = RewriteEmail("<a href=\"https://example.com/\">x</a>", kMessage,
                                              "https://t.example/a&b\"c", kSecret);
  ASSERT_TRUE(email.ok());
  EXPECT_NE(email->html.find("href=\"https://t.example/a&amp;b&quot;c/t/c/"), std::string::npos)
      << email->html;
  EXPECT_NE(email->html.find("src=\"https://t.example/a&amp;b&quot;c/t/o/"), std::string::npos)
      << email->html;
}

TEST(TrackingTest, InsertsOpenPixelBeforeBody) {
  const RewrittenEmail email = Rewrite("<html><body><p>Hi</p></BODY></html>");
  const size_t pixel = email.html.find("<img src=\"");
  ASSERT_NE(pixel, std::string::npos);
  EXPECT_EQ(email.html.substr(0, pixel), "<html><body><p>Hi</p>");
  const size_t close = email.html.find('"', pixel + 10);
  const std::string src = email.html.substr(pixel + 10, close - pixel - 10);
  const std::optional<TrackingToken> token =
      VerifyToken(TokenIn(src, "/t/o/"), kSecret, TrackingKind::kOpen);
  ASSERT_TRUE(token);
  EXPECT_EQ(token->message_id, kMessage);
  EXPECT_EQ(email.html.substr(close),
            "\" width=\"1\" height=\"1\" alt=\"\" style=\"display:none\"></BODY></html>");
}

TEST(TrackingTest, AppendsOpenPixelWithoutBody) {
  const RewrittenEmail email = Rewrite("<p>Hi</p>");
  EXPECT_TRUE(email.html.starts_with("<p>Hi</p><img src=\"https://go.example.com/t/o/"));
  EXPECT_TRUE(email.html.ends_with("style=\"display:none\">"));
}

TEST(TrackingTest, CopiesMalformedHtmlThroughUnchanged) {
  for (const std::string body : {"<a href=\"https://example.com/unterminated", "a < b <", "<"}) {
    const RewrittenEmail email = Rewrite(body);
    EXPECT_TRUE(email.links.empty());
    EXPECT_TRUE(email.html.starts_with(body)) << body;
  }
}

TEST(TrackingTest, UnsubscribeUrlCarriesUnsubscribeToken) {
  Result<std::string> url = UnsubscribeUrl("https://go.example.com/", kMessage, kSecret);
  ASSERT_TRUE(url.ok());
  const std::optional<TrackingToken> token =
      VerifyToken(TokenIn(*url, "/u/"), kSecret, TrackingKind::kUnsubscribe);
  ASSERT_TRUE(token);
  EXPECT_EQ(token->message_id, kMessage);
  EXPECT_FALSE(UnsubscribeUrl(kBase, kMessage, "").ok());
}

TEST(TrackingTest, RewriteReportsBadMessageId) {
  EXPECT_FALSE(RewriteEmail("<p>x</p>", "", kBase, kSecret).ok());
  EXPECT_FALSE(RewriteEmail("<p>x</p>", kMessage, kBase, "").ok());
}

}  // namespace
}  // namespace itinera
