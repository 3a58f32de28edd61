// `itinera serve` delivering email over real SMTP (aiosmtpd): the envelope, the MIME structure,
// tracking rewrites, a deferred recipient retried and delivered, a rejected one dead-lettered.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/connectors/mime_parse.h"
#include "tests/daemon/daemon_harness.h"

namespace itinera::daemon_testing {
namespace {

constexpr char kJourney[] = R"(# One offer by email.
journey smtp_offer "SMTP offer" {
  enter when event "signup"

  step offer {
    send email "offer" as offer
    exit "sent"
  }
}
)";

constexpr char kTemplate[] = R"(---
subject: Vaše nabídka, {{customer.first_name}} – jízda zdarma
---
<html><body>
<p>Dobrý den {{customer.first_name}},</p>
<p>máme pro vás <a href="https://www.dealer.example/offer?id=7&amp;src=mail">nabídku</a>.</p>
<p><a href="{{links.unsubscribe}}">Odhlásit</a></p>
</body></html>
)";

constexpr char kSubject[] = "Vaše nabídka, Jana – jízda zdarma";

class SmtpDeliveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    smtp_ = std::make_unique<SmtpPeer>(ITINERA_SOURCE_DIR "/tests/daemon/smtp_defer_once.py");
    ASSERT_TRUE(smtp_->running()) << "cannot start the aiosmtpd test server";
    ConfigText config;
    config.email = "connector = \"smtp\"\nsmtp_url = \"" + smtp_->Url() + "\"\n";
    d_.WriteConfig(config);
    d_.WriteJourney("smtp_offer", kJourney);
    d_.WriteTemplate("offer.email.mustache", kTemplate);
    ASSERT_TRUE(d_.Start());
  }

  void Signup(const std::string& customer, const std::string& email) {
    d_.PutCustomer(customer, {{"email", email},
                              {"consent", {{"email", true}}},
                              {"attributes", {{"first_name", "Jana"}}}});
    d_.PostEvent({{"customer_id", customer}, {"type", "signup"}});
  }

  // The id of the customer's one email, from the 360 timeline ("" until it is there).
  std::string MessageIdOf(const std::string& customer) {
    auto sent = d_.Timeline(customer, "sent", "channel", "email");
    return sent.empty() ? "" : sent[0].value("message", "");
  }

  // The message the server accepted for `rcpt` (empty raw when none).
  SmtpPeer::Received ReceivedFor(const std::string& rcpt) {
    for (auto& m : smtp_->Messages()) {
      if (m.envelope.size() >= 2 && m.envelope[1] == "<" + rcpt + ">") return m;
    }
    return {};
  }

  std::unique_ptr<SmtpPeer> smtp_;
  Daemon d_;
};

TEST_F(SmtpDeliveryTest, DeliversMultipartMailWithTrackingAndUnsubscribe) {
  Signup("c-ok", "jana@example.com");
  ASSERT_TRUE(WaitUntil([&] { return !ReceivedFor("jana@example.com").raw.empty(); })) << d_.Log();
  SmtpPeer::Received got = ReceivedFor("jana@example.com");
  ASSERT_EQ(got.envelope.size(), 2u);
  EXPECT_EQ(got.envelope[0], std::string("<") + kFromAddress + ">");

  ParsedMail mail = ParseMail(got.raw);
  EXPECT_EQ(mail.content_type.rfind("multipart/alternative", 0), 0u) << mail.content_type;
  ASSERT_EQ(mail.parts.size(), 2u) << got.raw;
  EXPECT_NE(mail.parts[0].Header("Content-Type").find("text/plain"), std::string::npos);
  EXPECT_NE(mail.parts[1].Header("Content-Type").find("text/html"), std::string::npos);
  EXPECT_NE(mail.text.find("Dobrý den Jana"), std::string::npos) << mail.text;

  // Non-ASCII subject: RFC 2047 encoded words only, decoding to the rendered subject.
  std::string subject = mail.top.Header("Subject");
  EXPECT_NE(subject.find("=?UTF-8?"), std::string::npos) << subject;
  for (unsigned char c : subject) EXPECT_LT(c, 0x80) << subject;
  EXPECT_EQ(connectors::testing::DecodeWords(subject), kSubject);
  EXPECT_NE(mail.top.Header("From").find(kFromAddress), std::string::npos);
  EXPECT_EQ(mail.top.Header("To").find("jana@example.com") != std::string::npos, true);
  EXPECT_EQ(mail.top.Header("X-Itinera-Journey"), "smtp_offer");

  // The Message-ID is the outbox message id (the idempotency key) at the sender's domain.
  std::string id;
  ASSERT_TRUE(WaitUntil([&] { return !(id = MessageIdOf("c-ok")).empty(); }));
  EXPECT_EQ(mail.top.Header("Message-ID"), "<" + id + "@dealer.example>");
  auto sent = d_.Timeline("c-ok", "sent", "message", id);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].value("status", ""), "sent");
  EXPECT_EQ(sent[0].value("subject", ""), kSubject);
  EXPECT_EQ(sent[0].value("handle", ""), "offer");

  // List-Unsubscribe names the same /u/ link as the body.
  const std::string base = d_.BaseUrl();
  std::string unsubscribe = mail.top.Header("List-Unsubscribe");
  ASSERT_EQ(unsubscribe.rfind("<" + base + "/u/", 0), 0u) << unsubscribe;
  std::string unsubscribe_url = unsubscribe.substr(1, unsubscribe.size() - 2);
  EXPECT_EQ(AttributeValues(mail.html, "href", base + "/u/"),
            std::vector<std::string>{unsubscribe_url});

  // The offer link is rewritten to a click link; an open pixel is planted.
  EXPECT_EQ(mail.html.find("https://www.dealer.example/offer"), std::string::npos) << mail.html;
  EXPECT_EQ(AttributeValues(mail.html, "href", base + "/t/c/").size(), 1u) << mail.html;
  EXPECT_EQ(AttributeValues(mail.html, "src", base + "/t/o/").size(), 1u) << mail.html;
  EXPECT_EQ(smtp_->Messages().size(), 1u);
}

TEST_F(SmtpDeliveryTest, DeferredRecipientIsRetriedThenDelivered) {
  Signup("c-defer", "defer451@example.com");
  ASSERT_TRUE(WaitUntil([&] { return !ReceivedFor("defer451@example.com").raw.empty(); }, 15s))
      << d_.Log();
  std::string id = MessageIdOf("c-defer");
  ASSERT_FALSE(id.empty());
  json message;
  ASSERT_TRUE(WaitUntil([&] {
    for (const json& m : d_.Messages("sent"))
      if (m.value("id", "") == id) message = m;
    return !message.is_null();
  }));
  EXPECT_EQ(message.value("attempts", 0), 2) << message.dump();
  EXPECT_NE(message.value("last_error", "").find("451"), std::string::npos) << message.dump();
  EXPECT_FALSE(d_.LogLinesWith("will retry").empty()) << d_.Log();
  ParsedMail mail = ParseMail(ReceivedFor("defer451@example.com").raw);
  EXPECT_EQ(mail.top.Header("Message-ID"), "<" + id + "@dealer.example>");
  EXPECT_EQ(smtp_->Messages().size(), 1u);
}

TEST_F(SmtpDeliveryTest, RejectedRecipientIsDeadAtOnce) {
  Signup("c-dead", "reject550@example.com");
  std::string id;
  json dead;
  ASSERT_TRUE(WaitUntil([&] {
    id = MessageIdOf("c-dead");
    for (const json& m : d_.Messages("dead"))
      if (!id.empty() && m.value("id", "") == id) dead = m;
    return !dead.is_null();
  })) << d_.Log();
  EXPECT_EQ(dead.value("customer", ""), "c-dead");
  EXPECT_EQ(dead.value("channel", ""), "email");
  EXPECT_EQ(dead.value("journey", ""), "smtp_offer");
  EXPECT_EQ(dead.value("attempts", 0), 1);
  EXPECT_NE(dead.value("last_error", "").find("550"), std::string::npos) << dead.dump();
  auto sent = d_.Timeline("c-dead", "sent", "message", id);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].value("status", ""), "dead");
  EXPECT_TRUE(smtp_->Messages().empty());
  // The dead letter does not come back.
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(d_.Messages("dead").size(), 1u);
  EXPECT_TRUE(d_.Messages("pending").empty());
}

}  // namespace
}  // namespace itinera::daemon_testing
