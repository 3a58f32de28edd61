// Posts to an in-process Slack-like sink (tests/connectors/http_sink.h) on loopback.
#include "connectors/slack.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "tests/connectors/http_sink.h"

namespace itinera::connectors {
namespace {

using testing::HttpSink;

Message Alert(std::string id, std::string url) {
  Message m;
  m.id = std::move(id);
  m.channel = Channel::kChat;
  m.to = std::move(url);
  m.subject = "Hot lead: Jiří Dvořák";
  m.text_body = "Booked a test drive 🚗 for <https://crm.example/c-1|c-1>.\nCall today.";
  return m;
}

TEST(SlackTest, PostsTextAsJsonWithBoldSubject) {
  HttpSink sink;
  ASSERT_TRUE(sink.running());
  SlackConnector slack;
  Delivery d = slack.Send(Alert("alert-1", sink.Url("/hooks/anna")));
  EXPECT_EQ(d.outcome, Delivery::kSent) << d.error;
  EXPECT_EQ(d.provider_id, "alert-1");

  auto requests = sink.requests();
  ASSERT_EQ(requests.size(), 1u);
  const auto& r = requests[0];
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.path, "/hooks/anna");
  EXPECT_EQ(r.Header("Content-Type"), "application/json; charset=utf-8");
  EXPECT_EQ(r.Header("Idempotency-Key"), "alert-1");
  nlohmann::json body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body, (nlohmann::json{{"text",
                                   "*Hot lead: Jiří Dvořák*\nBooked a test drive 🚗 for "
                                   "<https://crm.example/c-1|c-1>.\nCall today."}}));
}

TEST(SlackTest, WithoutSubjectSendsTheTextAlone) {
  HttpSink sink;
  SlackConnector slack;
  Message m = Alert("a", sink.Url("/hooks/anna"));
  m.subject.clear();
  ASSERT_EQ(slack.Send(m).outcome, Delivery::kSent);
  ASSERT_EQ(sink.requests().size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(sink.requests()[0].body)["text"], m.text_body);
}

TEST(SlackTest, EscapesSlackMarkupInSubject) {
  Message m;
  m.subject = "Q&A <urgent>";
  m.text_body = "x";
  EXPECT_EQ(SlackPayload(m), R"({"text":"*Q&amp;A &lt;urgent&gt;*\nx"})");
}

TEST(SlackTest, ClassifiesSlackAnswers) {
  struct Case {
    int status;
    const char* body;
    Delivery::Outcome outcome;
  };
  const Case cases[] = {
      {200, "ok", Delivery::kSent},
      {400, "invalid_payload", Delivery::kPermanent},
      {403, "action_prohibited", Delivery::kPermanent},
      {404, "no_service", Delivery::kPermanent},
      {410, "channel_is_archived", Delivery::kPermanent},
      {429, "rate_limited", Delivery::kTransient},
      {500, "rollup_error", Delivery::kTransient},
  };
  HttpSink sink;
  for (const Case& c : cases) sink.Script({c.status, c.body});
  SlackConnector slack;
  for (const Case& c : cases) {
    Delivery d = slack.Send(Alert("a", sink.Url("/hooks/T000/B000/XXXXSECRET")));
    EXPECT_EQ(d.outcome, c.outcome) << c.status << ": " << d.error;
    if (c.outcome != Delivery::kSent) {
      EXPECT_NE(d.error.find(c.body), std::string::npos) << d.error;
      EXPECT_EQ(d.error.find("XXXXSECRET"), std::string::npos) << d.error;
    }
  }
}

TEST(SlackTest, UnreachableWebhookIsTransientAndKeepsTheUrlSecret) {
  int port = testing::UnusedLoopbackPort();
  ASSERT_GT(port, 0);
  SlackConnector slack;
  Delivery d = slack.Send(
      Alert("a", "http://127.0.0.1:" + std::to_string(port) + "/hooks/T000/B000/XXXXSECRET"));
  EXPECT_EQ(d.outcome, Delivery::kTransient);
  EXPECT_EQ(d.error.find("XXXXSECRET"), std::string::npos) << d.error;
}

TEST(SlackTest, BadMessageIsPermanentAndNotSent) {
  HttpSink sink;
  SlackConnector slack;
  Message no_text = Alert("a", sink.Url("/hooks/anna"));
  no_text.text_body.clear();
  EXPECT_EQ(slack.Send(no_text).outcome, Delivery::kPermanent);
  EXPECT_EQ(slack.Send(Alert("a", "file:///etc/passwd")).outcome, Delivery::kPermanent);
  Message injected = Alert("a\r\nX-Evil: 1", sink.Url("/hooks/anna"));
  EXPECT_EQ(slack.Send(injected).outcome, Delivery::kPermanent);
  EXPECT_TRUE(sink.requests().empty());
}

}  // namespace
}  // namespace itinera::connectors
