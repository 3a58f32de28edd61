// The event id is an idempotency key: the same id posted twice, within one batch, or again
// after a restart is accepted each time and processed once.
#include <gtest/gtest.h>

#include <string>

#include "tests/daemon/daemon_harness.h"

namespace itinera::daemon_testing {
namespace {

TEST(IdempotencyTest, SameEventIdIsProcessedOnce) {
  Daemon d;
  d.WriteJourney("hello", R"(journey hello "Hello" {
  enter when event "signup"
  re_enter always
  step greet {
    send email "hello"
    exit "done"
  }
}
)");
  d.WriteTemplate("hello.email.mustache", "---\nsubject: Hello\n---\n<p>Hello</p>\n");
  ASSERT_TRUE(d.Start());
  d.PutCustomer("c-1", {{"email", "jana@example.com"}, {"consent", {{"email", true}}}});

  json signup = {{"id", "form-1"}, {"customer_id", "c-1"}, {"type", "signup"}};
  Reply first = d.Post("/v1/events", signup.dump());
  EXPECT_EQ(first.status, 202);
  EXPECT_EQ(first.doc.value("accepted", 0), 1);
  Reply again = d.Post("/v1/events", signup.dump());
  EXPECT_EQ(again.status, 202);
  EXPECT_EQ(again.doc.value("accepted", 0), 1);

  json twice_in_one = json::array();
  for (int i = 0; i < 2; ++i) {
    twice_in_one.push_back({{"id", "form-2"}, {"customer_id", "c-1"}, {"type", "signup"}});
  }
  Reply batch = d.Post("/v1/events", twice_in_one.dump());
  EXPECT_EQ(batch.status, 202) << batch.body;
  EXPECT_EQ(batch.doc.value("accepted", 0), 2);

  auto count = [&](const std::string& id) { return d.Timeline("c-1", "event", "id", id).size(); };
  ASSERT_TRUE(WaitUntil([&] { return count("form-1") >= 1 && count("form-2") >= 1; })) << d.Log();
  ASSERT_TRUE(WaitUntil([&] { return d.MailFiles().size() >= 2; })) << d.Log();
  ASSERT_EQ(d.Stop(), 0);

  // After a restart the ids are still known.
  ASSERT_TRUE(d.Start());
  EXPECT_EQ(d.Post("/v1/events", signup.dump()).status, 202);
  d.PostEvent({{"id", "form-3"}, {"customer_id", "c-1"}, {"type", "other"}});
  ASSERT_TRUE(WaitUntil([&] { return count("form-3") == 1; })) << d.Log();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(count("form-1"), 1u);
  EXPECT_EQ(count("form-2"), 1u);
  EXPECT_EQ(d.Entries("c-1", "hello").size(), 2u);  // one entry per distinct signup
  EXPECT_EQ(d.MailFiles().size(), 2u);
}

}  // namespace
}  // namespace itinera::daemon_testing
