// `itinera serve` talking to HTTP providers (tests/connectors/http_sink.h): a Twilio-compatible
// SMS API, a Slack incoming webhook for a rep's alert, a signed CRM webhook. Retries on 5xx,
// dead letters on 4xx, and a hanging provider that must not hold up email.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "connectors/webhook.h"
#include "tests/connectors/http_sink.h"
#include "tests/daemon/daemon_harness.h"

namespace itinera::daemon_testing {
namespace {

using connectors::testing::HttpSink;
using connectors::testing::RecordedRequest;

constexpr char kWebhookSecret[] = "whsec-daemon-test";

constexpr char kLeadJourney[] = R"(# A lead gets a text, the rep an alert, the CRM a task.
journey lead_flow "Lead follow-up" {
  enter when event "lead"

  step contact {
    send sms "hello"
    alert rep "rep_anna" "hot"
    webhook "crm"
    exit "done"
  }
}
)";

constexpr char kSmsOnlyJourney[] = R"(journey sms_only "SMS only" {
  enter when event "lead"
  step text {
    send sms "hello"
    exit "done"
  }
}
)";

class HttpProvidersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(sms_.running() && slack_.running() && crm_.running());
    d_.WriteTemplate("hello.sms.mustache", "Ahoj {{customer.first_name}}, díky za zájem.");
    d_.WriteTemplate("hot.alert.mustache", "Hot lead: {{customer.first_name}} wants a car.");
    d_.WriteTemplate("mail.email.mustache",
                     "---\nsubject: Hello {{customer.first_name}}\n---\n<p>Hello.</p>\n");
  }

  ConfigText Config() const {
    ConfigText c;
    c.rest = "[sms]\nconnector = \"http\"\nurl = \"" +
             sms_.Url("/2010-04-01/Accounts/AC123/Messages.json") +
             "\"\naccount = \"AC123\"\ntoken = \"s3cret\"\nfrom = \"+420600000000\"\n\n"
             "[[teams.sales]]\nid = \"rep_anna\"\nname = \"Anna Novak\"\n"
             "email = \"anna@dealer.example\"\nalert_via = \"slack\"\nslack_webhook = \"" +
             slack_.Url("/hooks/anna") + "\"\n\n[webhooks.crm]\nurl = \"" + crm_.Url("/tasks") +
             "\"\nsecret = \"" + kWebhookSecret + "\"\n";
    return c;
  }

  void Lead(const std::string& customer) {
    d_.PutCustomer(customer, {{"email", "jana@example.com"},
                              {"phone", "+420777123456"},
                              {"consent", {{"email", true}, {"sms", true}}},
                              {"attributes", {{"first_name", "Jana"}, {"last_name", "Nováková"}}}});
    d_.PostEvent(
        {{"customer_id", customer}, {"type", "lead"}, {"properties", {{"model", "Octavia"}}}});
  }

  // The message id the timeline gives for `kind` (sent, alert, webhook) of `customer`.
  std::string IdOf(const std::string& customer, const std::string& kind) {
    std::string id;
    WaitUntil([&] {
      auto lines = d_.Timeline(customer, kind);
      if (!lines.empty()) id = lines[0].value("message", "");
      return !id.empty();
    });
    return id;
  }

  json MessageWithStatus(const std::string& id, const std::string& status) {
    for (const json& m : d_.Messages(status))
      if (m.value("id", "") == id) return m;
    return json();
  }

  // Sinks first: the daemon (declared after) is killed before they go.
  HttpSink sms_;
  HttpSink slack_;
  HttpSink crm_;
  Daemon d_;
};

TEST_F(HttpProvidersTest, SmsSlackAndWebhookCarryWhatProvidersNeed) {
  d_.WriteConfig(Config());
  d_.WriteJourney("lead_flow", kLeadJourney);
  ASSERT_TRUE(d_.Start());
  Lead("c-1");
  ASSERT_TRUE(WaitUntil([&] {
    return sms_.requests().size() == 1 && slack_.requests().size() == 1 &&
           crm_.requests().size() == 1;
  })) << d_.Log();

  // SMS: a Twilio form POST with basic auth and the message id as Idempotency-Key.
  RecordedRequest sms = sms_.requests()[0];
  EXPECT_EQ(sms.method, "POST");
  EXPECT_EQ(sms.path, "/2010-04-01/Accounts/AC123/Messages.json");
  EXPECT_EQ(sms.Param("To"), "+420777123456");
  EXPECT_EQ(sms.Param("From"), "+420600000000");
  EXPECT_EQ(sms.Param("Body"), "Ahoj Jana, díky za zájem.");
  EXPECT_EQ(sms.Header("Authorization"), "Basic QUMxMjM6czNjcmV0");  // AC123:s3cret
  std::string sms_id = IdOf("c-1", "sent");
  ASSERT_FALSE(sms_id.empty());
  EXPECT_EQ(sms.Header("Idempotency-Key"), sms_id);

  // Slack: {"text": ...} with the rep's template and the customer's context.
  RecordedRequest slack = slack_.requests()[0];
  EXPECT_EQ(slack.path, "/hooks/anna");
  json payload = json::parse(slack.body, nullptr, false);
  ASSERT_TRUE(payload.is_object()) << slack.body;
  std::string text = payload.value("text", "");
  EXPECT_NE(text.find("Hot lead: Jana wants a car."), std::string::npos) << text;
  EXPECT_NE(text.find("Jana Nováková"), std::string::npos) << text;
  EXPECT_NE(text.find("jana@example.com"), std::string::npos) << text;
  EXPECT_NE(text.find("+420777123456"), std::string::npos) << text;
  EXPECT_NE(text.find("Lead follow-up"), std::string::npos) << text;
  EXPECT_NE(text.find("lead"), std::string::npos) << text;
  EXPECT_NE(text.find("Octavia"), std::string::npos) << "the last events: " << text;
  std::string alert_id = IdOf("c-1", "alert");
  ASSERT_FALSE(alert_id.empty());
  EXPECT_EQ(slack.Header("Idempotency-Key"), alert_id);

  // CRM webhook: signed JSON naming the customer, the journey and the event.
  RecordedRequest crm = crm_.requests()[0];
  EXPECT_EQ(crm.path, "/tasks");
  EXPECT_NE(crm.Header("Content-Type").find("application/json"), std::string::npos);
  Time now = std::chrono::floor<Seconds>(std::chrono::system_clock::now());
  EXPECT_TRUE(connectors::VerifyWebhookSignature(crm.Header(connectors::kWebhookSignatureHeader),
                                                 kWebhookSecret, crm.body, now))
      << crm.Header(connectors::kWebhookSignatureHeader) << " " << crm.body;
  EXPECT_FALSE(connectors::VerifyWebhookSignature(crm.Header(connectors::kWebhookSignatureHeader),
                                                  "another-secret", crm.body, now));
  std::string hook_id = IdOf("c-1", "webhook");
  ASSERT_FALSE(hook_id.empty());
  EXPECT_EQ(crm.Header("Idempotency-Key"), hook_id);
  json body = json::parse(crm.body, nullptr, false);
  ASSERT_TRUE(body.is_object()) << crm.body;
  EXPECT_EQ(body.value("id", ""), hook_id);
  EXPECT_EQ(body.value("webhook", ""), "crm");
  EXPECT_EQ(body["customer"].value("id", ""), "c-1");
  EXPECT_EQ(body["customer"].value("phone", ""), "+420777123456");
  EXPECT_EQ(body["journey"].value("id", ""), "lead_flow");
  EXPECT_EQ(body["event"].value("type", ""), "lead");

  // Every message sent exactly once.
  ASSERT_TRUE(WaitUntil([&] {
    return !MessageWithStatus(sms_id, "sent").is_null() &&
           !MessageWithStatus(alert_id, "sent").is_null() &&
           !MessageWithStatus(hook_id, "sent").is_null();
  }));
  EXPECT_EQ(sms_.requests().size() + slack_.requests().size() + crm_.requests().size(), 3u);
}

TEST_F(HttpProvidersTest, ALaneThatKeepsUpTakesTheNextSmsStraightFromTheCommit) {
  d_.WriteConfig(Config());
  d_.WriteJourney("sms_only", kSmsOnlyJourney);
  ASSERT_TRUE(d_.Start());
  // How many SMS the lane took from `from` ("claim" or "commit"), as /metrics says.
  auto taken = [&](const std::string& from) {
    return d_.Metric("itinera_messages_taken_total", {"lane=\"sms\"", "from=\"" + from + "\""});
  };
  // The lane's first SMS is claimed from the outbox: its workers start with that pass.
  Lead("c-1");
  std::string first = IdOf("c-1", "sent");
  ASSERT_TRUE(WaitUntil([&] { return !MessageWithStatus(first, "sent").is_null(); })) << d_.Log();
  // Idle now, the lane takes c-2's SMS as the processor commits it, claimed by that commit.
  Lead("c-2");
  std::string second = IdOf("c-2", "sent");
  ASSERT_TRUE(WaitUntil([&] { return !MessageWithStatus(second, "sent").is_null(); })) << d_.Log();
  EXPECT_TRUE(WaitUntil([&] { return taken("claim") == 1 && taken("commit") == 1; }))
      << "claimed " << taken("claim") << ", taken from the commit " << taken("commit");
  EXPECT_EQ(sms_.requests().size(), 2u);
  EXPECT_EQ(MessageWithStatus(second, "sent").value("attempts", 0), 1);
}

TEST_F(HttpProvidersTest, ServerErrorIsRetriedOnceClientErrorIsDead) {
  sms_.Script({503, "busy"});  // then 200
  crm_.Script({400, "bad task"});
  d_.WriteConfig(Config());
  d_.WriteJourney("lead_flow", kLeadJourney);
  ASSERT_TRUE(d_.Start());
  Lead("c-2");
  std::string sms_id = IdOf("c-2", "sent");
  std::string hook_id = IdOf("c-2", "webhook");
  ASSERT_FALSE(sms_id.empty());
  ASSERT_FALSE(hook_id.empty());

  json sent;
  ASSERT_TRUE(WaitUntil([&] { return !(sent = MessageWithStatus(sms_id, "sent")).is_null(); }, 15s))
      << d_.Log();
  EXPECT_EQ(sent.value("attempts", 0), 2);
  auto sms = sms_.requests();
  ASSERT_EQ(sms.size(), 2u);
  EXPECT_EQ(sms[0].Header("Idempotency-Key"), sms_id);
  EXPECT_EQ(sms[1].Header("Idempotency-Key"), sms_id);
  EXPECT_EQ(sms[0].body, sms[1].body);

  json dead;
  ASSERT_TRUE(WaitUntil([&] { return !(dead = MessageWithStatus(hook_id, "dead")).is_null(); }));
  EXPECT_EQ(dead.value("channel", ""), "webhook");
  EXPECT_EQ(dead.value("attempts", 0), 1);
  EXPECT_NE(dead.value("last_error", "").find("400"), std::string::npos) << dead.dump();
  auto hook = d_.Timeline("c-2", "webhook", "message", hook_id);
  ASSERT_EQ(hook.size(), 1u);
  EXPECT_EQ(hook[0].value("status", ""), "dead");

  // Nothing is sent again after that.
  std::this_thread::sleep_for(1200ms);
  EXPECT_EQ(sms_.requests().size(), 2u);
  EXPECT_EQ(crm_.requests().size(), 1u);
  EXPECT_EQ(slack_.requests().size(), 1u);
  EXPECT_TRUE(d_.Messages("pending").empty());
}

TEST_F(HttpProvidersTest, TransientFailuresEndDeadAfterMaxAttempts) {
  for (int i = 0; i < 3; ++i) slack_.Script({503, "down"});
  ConfigText config = Config();
  config.delivery = "max_attempts = 2\n";
  d_.WriteConfig(config);
  d_.WriteJourney("lead_flow", kLeadJourney);
  ASSERT_TRUE(d_.Start());
  Lead("c-5");
  std::string alert_id = IdOf("c-5", "alert");
  ASSERT_FALSE(alert_id.empty());
  json dead;
  ASSERT_TRUE(
      WaitUntil([&] { return !(dead = MessageWithStatus(alert_id, "dead")).is_null(); }, 15s))
      << d_.Log();
  EXPECT_EQ(dead.value("attempts", 0), 2);
  EXPECT_NE(dead.value("last_error", "").find("503"), std::string::npos) << dead.dump();
  std::this_thread::sleep_for(1200ms);
  EXPECT_EQ(slack_.requests().size(), 2u);
}

TEST_F(HttpProvidersTest, DeliveryConnectionsBoundTheSendsInFlight) {
  connectors::testing::Reply slow;
  slow.delay = std::chrono::milliseconds(1500);
  for (int i = 0; i < 4; ++i) sms_.Script(slow);
  ConfigText config = Config();
  config.delivery = "connections = 2\n";
  d_.WriteConfig(config);
  d_.WriteJourney("sms_only", kSmsOnlyJourney);
  ASSERT_TRUE(d_.Start());
  json events = json::array();
  for (int i = 0; i < 4; ++i) {
    const std::string c = "c-" + std::to_string(i);
    d_.PutCustomer(c, {{"phone", "+42077712345" + std::to_string(i)},
                       {"consent", {{"sms", true}}},
                       {"attributes", {{"first_name", "Jana"}}}});
    events.push_back({{"customer_id", c}, {"type", "lead"}});
  }
  ASSERT_EQ(d_.Post("/v1/events", events.dump()).status, 202);  // one commit for all four
  // Two sends at once: the lane's two connections, each held by a slow answer.
  ASSERT_TRUE(WaitUntil([&] { return sms_.requests().size() >= 2; })) << d_.Log();
  std::this_thread::sleep_for(700ms);
  EXPECT_EQ(sms_.requests().size(), 2u);
  ASSERT_TRUE(WaitUntil([&] { return sms_.requests().size() == 4; })) << d_.Log();
}

TEST_F(HttpProvidersTest, ConsentWithdrawnBeforeDispatchCancelsTheMessage) {
  connectors::testing::Reply slow;
  slow.delay = std::chrono::milliseconds(2500);  // holds the SMS lane's one connection a while
  sms_.Script(slow);
  ConfigText config = Config();
  config.delivery = "connections = 1\n";
  d_.WriteConfig(config);
  d_.WriteJourney("sms_only", kSmsOnlyJourney);
  ASSERT_TRUE(d_.Start());
  Lead("c-a");
  ASSERT_TRUE(WaitUntil([&] { return sms_.requests().size() == 1; })) << d_.Log();
  Lead("c-b");
  std::string id = IdOf("c-b", "sent");
  ASSERT_FALSE(id.empty());
  d_.PutCustomer("c-b", {{"consent", {{"sms", false}}}});
  ASSERT_TRUE(WaitUntil([&] { return !MessageWithStatus(id, "cancelled").is_null(); }, 10s))
      << d_.Log();
  auto sent = d_.Timeline("c-b", "sent", "message", id);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].value("status", ""), "cancelled");
  EXPECT_EQ(sms_.requests().size(), 1u);  // c-a's only
}

TEST_F(HttpProvidersTest, HangingSmsProviderDoesNotStallEmail) {
  connectors::testing::Reply slow;
  slow.delay = std::chrono::seconds(20);  // longer than this test lasts
  sms_.Script(slow);
  d_.WriteConfig(Config());
  d_.WriteJourney("slow_sms", R"(journey slow_sms "Slow SMS" {
  enter when event "lead"

  step contact {
    send sms "hello"
    send email "mail"
    exit "done"
  }
}
)");
  ASSERT_TRUE(d_.Start());
  Lead("c-3");
  ASSERT_TRUE(WaitUntil([&] { return sms_.requests().size() == 1; })) << d_.Log();
  // The SMS provider holds its request; the email goes out meanwhile.
  ASSERT_TRUE(WaitUntil([&] { return d_.MailFiles().size() == 1; }, 5s)) << d_.Log();
  EXPECT_TRUE(d_.Messages("sent").size() == 1);
  auto pending = d_.Messages("pending");
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].value("channel", ""), "sms");
  // A second customer's email is not held up either.
  Lead("c-4");
  EXPECT_TRUE(WaitUntil([&] { return d_.MailFiles().size() == 2; }, 5s)) << d_.Log();
}

}  // namespace
}  // namespace itinera::daemon_testing
