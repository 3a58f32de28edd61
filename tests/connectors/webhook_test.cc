// Signs and posts to an in-process sink (tests/connectors/http_sink.h) on loopback, and checks
// the signature the way a receiver would.
#include "connectors/webhook.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/connectors/http_sink.h"
#include "util/time.h"

namespace itinera::connectors {
namespace {

using testing::HttpSink;

const Time kNow = *ParseTime("2026-11-22T10:00:00Z");  // 1795341600
constexpr char kSecret[] = "whsec_test";

Message Call(std::string id, std::string url, std::string body) {
  Message m;
  m.id = std::move(id);
  m.channel = Channel::kWebhook;
  m.to = std::move(url);
  m.text_body = std::move(body);
  m.signing_secret = kSecret;
  return m;
}

TEST(WebhookSignatureTest, MatchesAKnownVector) {
  // python3: hmac.new(b"whsec_test", b'1795341600.{"task":"call"}', hashlib.sha256).hexdigest()
  EXPECT_EQ(WebhookSignature(kSecret, kNow, R"({"task":"call"})"),
            "t=1795341600,v1=c428e3e627cd6b0a17941adeae33d3eb84b37c429801e4b73ae42901d246d121");
}

TEST(WebhookSignatureTest, VerifiesOnlyTheSignedBodyWithinTolerance) {
  const std::string body = R"({"task":"call","customer":"c-1"})";
  const std::string header = WebhookSignature(kSecret, kNow, body);
  EXPECT_TRUE(VerifyWebhookSignature(header, kSecret, body, kNow));
  EXPECT_TRUE(VerifyWebhookSignature(header, kSecret, body, kNow + Seconds(300)));
  EXPECT_TRUE(VerifyWebhookSignature(header, kSecret, body, kNow - Seconds(300)));

  EXPECT_FALSE(VerifyWebhookSignature(header, kSecret, body + " ", kNow));
  EXPECT_FALSE(VerifyWebhookSignature(header, "whsec_other", body, kNow));
  EXPECT_FALSE(VerifyWebhookSignature(header, kSecret, body, kNow + Seconds(301)));  // replay
  EXPECT_FALSE(VerifyWebhookSignature(header, kSecret, body, kNow - Seconds(301)));
  EXPECT_TRUE(VerifyWebhookSignature(header, kSecret, body, kNow + Seconds(900), Seconds(900)));

  // The timestamp is signed too: moving it breaks the signature.
  std::string v1 = header.substr(header.find(",v1="));
  EXPECT_FALSE(VerifyWebhookSignature("t=1795341601" + v1, kSecret, body, kNow));
  // Key rotation: any matching v1 will do; spaces after commas are tolerated.
  EXPECT_TRUE(VerifyWebhookSignature("t=1795341600, v1=00ff" + v1.replace(0, 1, ", "), kSecret,
                                     body, kNow));
}

TEST(WebhookSignatureTest, RejectsMalformedHeaders) {
  const std::string body = "{}";
  const std::string good = WebhookSignature(kSecret, kNow, body);
  const std::string v1 = good.substr(good.find("v1="));
  const std::vector<std::string> headers = {"",
                                            "garbage",
                                            v1,
                                            "t=1795341600",
                                            "t=1795341600,t=1795341600," + v1,
                                            "t=-1795341600," + v1,
                                            "t=17953416x0," + v1,
                                            "t=," + v1,
                                            "t=1795341600,v0=" + v1.substr(3)};
  for (const std::string& header : headers) {
    EXPECT_FALSE(VerifyWebhookSignature(header, kSecret, body, kNow)) << header;
  }
}

TEST(WebhookTest, PostsBodyVerbatimWithVerifiableSignature) {
  HttpSink sink;
  ASSERT_TRUE(sink.running());
  WebhookConnector webhook([] { return kNow; });
  const std::string body = R"({"task": "Zavolat zákazníkovi 📞", "customer": "c-1"})";
  Delivery d = webhook.Send(Call("wh-1", sink.Url("/tasks"), body));
  EXPECT_EQ(d.outcome, Delivery::kSent) << d.error;
  EXPECT_EQ(d.provider_id, "wh-1");

  auto requests = sink.requests();
  ASSERT_EQ(requests.size(), 1u);
  const auto& r = requests[0];
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.path, "/tasks");
  EXPECT_EQ(r.Header("Content-Type"), "application/json");
  EXPECT_EQ(r.Header("Idempotency-Key"), "wh-1");
  EXPECT_EQ(r.body, body);  // byte for byte, UTF-8 included
  const std::string signature = r.Header("Itinera-Signature");
  EXPECT_EQ(signature.rfind("t=1795341600,v1=", 0), 0u) << signature;
  EXPECT_TRUE(VerifyWebhookSignature(signature, kSecret, r.body, kNow + Seconds(5)));
  EXPECT_FALSE(
      VerifyWebhookSignature(signature, kSecret, R"({"task": "x", "customer": "c-1"})", kNow));
}

TEST(WebhookTest, SignatureChangesWithTheBodyAndTheClock) {
  HttpSink sink;
  Time now = kNow;
  WebhookConnector webhook([&now] { return now; });
  ASSERT_EQ(webhook.Send(Call("a", sink.Url("/tasks"), R"({"n":1})")).outcome, Delivery::kSent);
  ASSERT_EQ(webhook.Send(Call("b", sink.Url("/tasks"), R"({"n":2})")).outcome, Delivery::kSent);
  now += Seconds(60);
  ASSERT_EQ(webhook.Send(Call("c", sink.Url("/tasks"), R"({"n":2})")).outcome, Delivery::kSent);
  auto requests = sink.requests();
  ASSERT_EQ(requests.size(), 3u);
  std::string s1 = requests[0].Header("Itinera-Signature");
  std::string s2 = requests[1].Header("Itinera-Signature");
  std::string s3 = requests[2].Header("Itinera-Signature");
  EXPECT_NE(s1.substr(s1.find("v1=")), s2.substr(s2.find("v1=")));
  EXPECT_EQ(s3.rfind("t=1795341660,", 0), 0u) << s3;
  EXPECT_NE(s2.substr(s2.find("v1=")), s3.substr(s3.find("v1=")));
  for (const auto& r : requests) {
    EXPECT_TRUE(VerifyWebhookSignature(r.Header("Itinera-Signature"), kSecret, r.body, now));
  }
}

TEST(WebhookTest, UnsignedWithoutSecret) {
  HttpSink sink;
  WebhookConnector webhook([] { return kNow; });
  Message m = Call("a", sink.Url("/tasks"), "[]");
  m.signing_secret.clear();
  ASSERT_EQ(webhook.Send(m).outcome, Delivery::kSent);
  ASSERT_EQ(sink.requests().size(), 1u);
  EXPECT_FALSE(sink.requests()[0].HasHeader("Itinera-Signature"));
  EXPECT_EQ(sink.requests()[0].Header("Idempotency-Key"), "a");
}

TEST(WebhookTest, NonJsonBodyIsPermanentAndNotSent) {
  HttpSink sink;
  WebhookConnector webhook([] { return kNow; });
  EXPECT_EQ(webhook.Send(Call("a", sink.Url("/tasks"), "{not json")).outcome, Delivery::kPermanent);
  EXPECT_EQ(webhook.Send(Call("a", sink.Url("/tasks"), "")).outcome, Delivery::kPermanent);
  EXPECT_EQ(webhook.Send(Call("", sink.Url("/tasks"), "{}")).outcome, Delivery::kPermanent);
  EXPECT_TRUE(sink.requests().empty());
}

TEST(WebhookTest, ClassifiesReceiverAnswers) {
  HttpSink sink;
  sink.Script({500, "boom"});
  sink.Script({400, "{\"error\":\"unknown task\"}"});
  sink.Script({204, ""});
  WebhookConnector webhook([] { return kNow; });
  Delivery d500 = webhook.Send(Call("a", sink.Url("/tasks"), "{}"));
  Delivery d400 = webhook.Send(Call("a", sink.Url("/tasks"), "{}"));
  Delivery d204 = webhook.Send(Call("a", sink.Url("/tasks"), "{}"));
  EXPECT_EQ(d500.outcome, Delivery::kTransient);
  EXPECT_EQ(d400.outcome, Delivery::kPermanent);
  EXPECT_NE(d400.error.find("unknown task"), std::string::npos) << d400.error;
  EXPECT_EQ(d400.error.find(kSecret), std::string::npos);
  EXPECT_EQ(d204.outcome, Delivery::kSent);
}

}  // namespace
}  // namespace itinera::connectors
