// Tracking round trip against the real daemon: the open pixel and the click link taken from a
// delivered email move the customer through the journey; the unsubscribe link withdraws consent
// so a later email is skipped; forged tokens record nothing.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/daemon/daemon_harness.h"

namespace itinera::daemon_testing {
namespace {

constexpr char kJourney[] = R"(# Offer, then react to its open and its click.
journey track "Tracking round trip" {
  enter when event "signup"

  step send_offer {
    send email "offer" as offer
    then wait_open
  }

  step wait_open {
    wait up to 30s for event "email_opened" where event.message == offer
    when received then opened
    when timed_out then gave_up
  }

  step opened {
    wait up to 30s for event "link_clicked" where event.message == offer
    when received then clicked
    when timed_out then gave_up
  }

  step clicked {
    set customer.clicked = true
    then wait_go
  }

  step wait_go {
    wait up to 30s for event "go"
    when received then follow_up
    when timed_out then follow_up
  }

  step follow_up {
    send email "follow_up"
    exit "done"
  }

  step gave_up { exit "gave_up" }
}
)";

constexpr char kOfferUrl[] = "https://www.dealer.example/offer?id=7&src=mail";

// Flips one character of a token in its middle, staying in the base64url alphabet.
std::string Flip(std::string token) {
  char& c = token[token.size() / 2];
  c = c == 'A' ? 'B' : 'A';
  return token;
}

// The path part of a URL under the daemon's public_url.
std::string PathOf(const std::string& url, const std::string& base) {
  return url.rfind(base, 0) == 0 ? url.substr(base.size()) : url;
}

class TrackingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    d_.WriteJourney("track", kJourney);
    d_.WriteTemplate("offer.email.mustache", R"(---
subject: Your offer
---
<p>Hello {{customer.first_name}},</p>
<p><a href="https://www.dealer.example/offer?id=7&amp;src=mail">See the offer</a></p>
<p><a href="{{links.unsubscribe}}">Unsubscribe</a></p>
)");
    d_.WriteTemplate("follow_up.email.mustache", "---\nsubject: Still there?\n---\n<p>Hi</p>\n");
    ASSERT_TRUE(d_.Start());
  }

  std::string Step(const std::string& customer) {
    auto entries = d_.Entries(customer, "track");
    return entries.empty() ? "" : entries.back().value("step", "");
  }
  size_t Events(const std::string& customer) { return d_.Timeline(customer, "event").size(); }

  Daemon d_;
};

TEST_F(TrackingTest, OpenClickAndUnsubscribeDriveTheJourney) {
  d_.PutCustomer("c-1", {{"email", "jana@example.com"},
                         {"consent", {{"email", true}}},
                         {"attributes", {{"first_name", "Jana"}}}});
  d_.PostEvent({{"customer_id", "c-1"}, {"type", "signup"}});
  ASSERT_TRUE(WaitUntil([&] { return d_.MailFiles().size() == 1; })) << d_.Log();
  ASSERT_TRUE(WaitUntil([&] { return Step("c-1") == "wait_open"; }));

  ParsedMail mail = ParseMail(ReadText(d_.MailFiles()[0]));
  const std::string base = d_.BaseUrl();
  auto opens = AttributeValues(mail.html, "src", base + "/t/o/");
  auto clicks = AttributeValues(mail.html, "href", base + "/t/c/");
  auto unsubscribes = AttributeValues(mail.html, "href", base + "/u/");
  ASSERT_EQ(opens.size(), 1u) << mail.html;
  ASSERT_EQ(clicks.size(), 1u) << mail.html;
  ASSERT_EQ(unsubscribes.size(), 1u) << mail.html;
  const std::string open = PathOf(opens[0], base);
  const std::string click = PathOf(clicks[0], base);
  const std::string unsubscribe = PathOf(unsubscribes[0], base);

  // Forged tokens (one character flipped): 404, nothing recorded, the journey does not move.
  const size_t events_before = Events("c-1");
  for (const std::string& path : {open, click, unsubscribe}) {
    std::string prefix = path.substr(0, path.rfind('/') + 1);
    std::string forged = prefix + Flip(path.substr(prefix.size()));
    Reply r = d_.Get(forged);
    EXPECT_EQ(r.status, 404) << forged;
    EXPECT_EQ(r.ErrorCode(), "not_found") << r.body;
  }
  // Any single character of the open token altered.
  const std::string open_token = open.substr(5);  // after "/t/o/"
  for (size_t i = 0; i < open_token.size(); ++i) {
    std::string altered = open_token;
    altered[i] = altered[i] == 'A' ? 'B' : 'A';
    EXPECT_EQ(d_.Get("/t/o/" + altered).status, 404) << "position " << i;
  }
  EXPECT_EQ(d_.Get("/t/c/" + open_token).status, 404) << "an open token on the click path";
  EXPECT_EQ(
      d_.Post(unsubscribe.substr(0, 3) + Flip(unsubscribe.substr(3)), "List-Unsubscribe=One-Click")
          .status,
      404);
  // Link scanners probe with HEAD: answered, not recorded.
  auto head = d_.client().Head(open.c_str());
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(Events("c-1"), events_before);
  EXPECT_EQ(Step("c-1"), "wait_open");
  EXPECT_EQ(d_.Customer("c-1")["profile"]["consent"]["email"], true);

  // The open pixel: a GIF, and the journey takes the received path.
  Reply pixel = d_.Get(open);
  EXPECT_EQ(pixel.status, 200);
  EXPECT_EQ(pixel.Header("Content-Type"), "image/gif");
  EXPECT_EQ(pixel.body.substr(0, 6), "GIF89a");
  ASSERT_TRUE(WaitUntil([&] { return Step("c-1") == "opened"; })) << d_.Log();
  auto opened = d_.Timeline("c-1", "event");
  ASSERT_FALSE(opened.empty());
  EXPECT_EQ(opened[0].value("type", ""), "email_opened");

  // The click: a redirect to the original URL only, and the step after the click.
  Reply redirect = d_.Get(click);
  EXPECT_EQ(redirect.status, 302);
  EXPECT_EQ(redirect.Header("Location"), kOfferUrl);
  ASSERT_TRUE(WaitUntil([&] { return Step("c-1") == "wait_go"; })) << d_.Log();
  auto clicked = d_.Timeline("c-1", "event", "type", "link_clicked");
  ASSERT_EQ(clicked.size(), 1u);
  EXPECT_EQ(clicked[0]["properties"].value("url", ""), kOfferUrl);
  EXPECT_EQ(d_.Timeline("c-1", "step", "step", "clicked").size(), 1u);

  // Unsubscribe: the page, then the RFC 8058 one-click POST; consent is off, once.
  Reply page = d_.Get(unsubscribe);
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.Header("Content-Type").find("text/html"), std::string::npos);
  Reply one_click = ToReply(d_.client().Post(unsubscribe.c_str(), "List-Unsubscribe=One-Click",
                                             "application/x-www-form-urlencoded"));
  EXPECT_EQ(one_click.status, 200);
  EXPECT_EQ(d_.Customer("c-1")["profile"]["consent"]["email"], false);
  ASSERT_TRUE(
      WaitUntil([&] { return !d_.Timeline("c-1", "event", "type", "unsubscribed").empty(); }));
  EXPECT_EQ(d_.Timeline("c-1", "event", "type", "unsubscribed").size(), 1u);

  // A later email is skipped for want of consent; nothing more reaches the Maildir.
  d_.PostEvent({{"customer_id", "c-1"}, {"type", "go"}});
  ASSERT_TRUE(WaitUntil([&] { return !d_.Timeline("c-1", "skipped").empty(); })) << d_.Log();
  auto skipped = d_.Timeline("c-1", "skipped");
  EXPECT_EQ(skipped[0].value("reason", ""), "no_consent");
  EXPECT_EQ(skipped[0].value("template", ""), "follow_up");
  auto entries = d_.Entries("c-1", "track");
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].value("status", ""), "exited");
  EXPECT_EQ(d_.MailFiles().size(), 1u);
}

TEST_F(TrackingTest, LinksStayValidAcrossRestart) {
  // The generated tracking secret is kept in the store's folder, so links in emails already
  // delivered still work after a restart.
  d_.PutCustomer("c-2", {{"email", "petr@example.com"}, {"consent", {{"email", true}}}});
  d_.PostEvent({{"customer_id", "c-2"}, {"type", "signup"}});
  ASSERT_TRUE(WaitUntil([&] { return d_.MailFiles().size() == 1; })) << d_.Log();
  ParsedMail mail = ParseMail(ReadText(d_.MailFiles()[0]));
  auto opens = AttributeValues(mail.html, "src", d_.BaseUrl() + "/t/o/");
  ASSERT_EQ(opens.size(), 1u);
  ASSERT_EQ(d_.Stop(), 0);
  ASSERT_TRUE(d_.Start());
  EXPECT_EQ(d_.Get(PathOf(opens[0], d_.BaseUrl())).status, 200);
  EXPECT_TRUE(WaitUntil([&] { return Step("c-2") == "opened"; })) << d_.Log();

  // Erasure: the links stop working and the customer stays gone (its timer included).
  Reply erased = d_.Delete("/v1/customers/c-2");
  EXPECT_EQ(erased.status, 200) << erased.body;
  EXPECT_EQ(erased.doc.value("erased", ""), "c-2");
  EXPECT_EQ(d_.Get(PathOf(opens[0], d_.BaseUrl())).status, 404);
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(d_.Get("/v1/customers/c-2").status, 404);
  EXPECT_EQ(d_.Delete("/v1/customers/c-2").status, 404);
}

}  // namespace
}  // namespace itinera::daemon_testing
