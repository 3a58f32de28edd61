#include "orchestrator/dispatcher.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <thread>

#include "daemon_fixture.h"
#include "tests/orchestrator/forwarding_store.h"

namespace itinera::orch {
namespace {

using connectors::Delivery;
using connectors::FakeConnector;
using nlohmann::json;
using testing::DaemonFixture;
using testing::T;

// Hands a lane a connector the test keeps (LaneConnectors owns its connectors).
class Forward final : public connectors::Connector {
 public:
  explicit Forward(connectors::Connector* to) : to_(to) {}
  Delivery Send(const connectors::Message& m) override { return to_->Send(m); }

 private:
  connectors::Connector* to_;
};

// Blocks every Send until released: a provider that hangs.
class Hanging final : public connectors::Connector {
 public:
  Delivery Send(const connectors::Message&) override {
    std::unique_lock lock(mu_);
    ++calls_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return released_; });
    return Delivery{Delivery::kSent, "late", ""};
  }
  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  bool WaitCalled() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(5), [&] { return calls_ > 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int calls_ = 0;
  bool released_ = false;
};

constexpr char kJourney[] = R"(  enter when event "form_submitted"
  step hello {
    assign owner from team "sales" by round_robin
    send email "hello"
    send sms "nudge"
    alert owner "hot"
    then done
  }
  step done {
    exit
  }
)";

class DispatcherTest : public DaemonFixture {
 protected:
  void SetUp() override {
    DaemonFixture::SetUp();
    Journey("lead", 1, kJourney);
    StartRegistry();
    Profile("c-1", {{"email", "jana@example.com"},
                    {"phone", "+420601111001"},
                    {"attributes", {{"first_name", "Jana"}}},
                    {"consent", {{"email", true}, {"sms", true}}}});
  }

  void MakeDispatcher(DispatcherOptions options = {}) {
    options.retry_initial = Seconds{60};
    options.seed = 7;
    dispatcher_ = std::make_unique<Dispatcher>(store_, clock_, *registry_, config_.directory,
                                               options, [this](const std::string&) {
                                                 LaneConnectors c;
                                                 c.email = std::make_unique<Forward>(email_);
                                                 c.sms = std::make_unique<Forward>(sms_);
                                                 c.chat = std::make_unique<Forward>(&chat_);
                                                 c.webhook = std::make_unique<Forward>(&webhook_);
                                                 return c;
                                               });
  }

  OutboxMessage Message(const std::string& channel) {
    for (auto status : {MessageStatus::kPending, MessageStatus::kSent, MessageStatus::kDead,
                        MessageStatus::kCancelled}) {
      auto messages = store_.ListMessages(status, 100);
      if (!messages.ok()) continue;
      for (const auto& m : *messages)
        if (m.channel == channel) return m;
    }
    ADD_FAILURE() << "no " << channel << " message";
    return {};
  }

  FakeConnector fake_email_, fake_sms_, chat_, webhook_;
  connectors::Connector* email_ = &fake_email_;
  connectors::Connector* sms_ = &fake_sms_;
  std::unique_ptr<Dispatcher> dispatcher_;
};

TEST_F(DispatcherTest, SendsEachLaneThroughItsConnector) {
  Event("c-1", "form_submitted");
  Drain();
  MakeDispatcher();
  for (const std::string& lane : Dispatcher::Lanes()) ASSERT_TRUE(dispatcher_->RunLane(lane).ok());
  auto emails = fake_email_.sent();
  ASSERT_EQ(emails.size(), 2u);  // the customer's email and the rep's alert (alert_via email)
  const auto& mail = emails[0];
  EXPECT_EQ(mail.to, "jana@example.com");
  EXPECT_EQ(mail.subject, "Hello Jana");
  EXPECT_EQ(mail.id, Message("email").id);
  EXPECT_NE(mail.html_body.find("/t/o/"), std::string::npos);
  EXPECT_EQ(mail.list_unsubscribe_url.rfind("https://t.example/u/", 0), 0u);
  EXPECT_TRUE(mail.list_unsubscribe_one_click);
  const auto& alert = emails[1];
  EXPECT_EQ(alert.to, "Anna <anna@dealer.example>");
  EXPECT_NE(alert.text_body.find("Jana opened the offer"), std::string::npos);
  EXPECT_NE(alert.text_body.find("Contact: jana@example.com, +420601111001"), std::string::npos)
      << alert.text_body;
  EXPECT_NE(alert.text_body.find("form_submitted"), std::string::npos) << alert.text_body;
  ASSERT_EQ(fake_sms_.sent().size(), 1u);
  EXPECT_EQ(fake_sms_.sent()[0].text_body, "Hi Jana!");
  EXPECT_EQ(Message("email").status, MessageStatus::kSent);
  EXPECT_EQ(Message("sms").status, MessageStatus::kSent);
  EXPECT_EQ(Message("alert").status, MessageStatus::kSent);
}

TEST_F(DispatcherTest, TransientFailuresBackOffWithJitterThenDie) {
  Event("c-1", "form_submitted");
  Drain();
  DispatcherOptions options;
  options.max_attempts = 3;
  MakeDispatcher(options);
  for (int i = 0; i < 3; ++i) fake_sms_.Script({Delivery::kTransient, "", "451 later"});
  ASSERT_TRUE(dispatcher_->RunLane("sms").ok());
  OutboxMessage m = Message("sms");
  EXPECT_EQ(m.status, MessageStatus::kPending);
  EXPECT_EQ(m.last_error, "451 later");
  EXPECT_GE(m.not_before, T(30));  // half to all of retry_initial (60 s)
  EXPECT_LE(m.not_before, T(60));
  ASSERT_TRUE(dispatcher_->RunLane("sms").ok());
  EXPECT_EQ(*dispatcher_->RunLane("sms"), 0);  // not due yet
  clock_.Set(m.not_before);
  const Time second_attempt = m.not_before;
  ASSERT_TRUE(dispatcher_->RunLane("sms").ok());
  m = Message("sms");
  // The second retry waits half to all of twice retry_initial (120 s).
  EXPECT_GE(m.not_before, second_attempt + Seconds{60});
  EXPECT_LE(m.not_before, second_attempt + Seconds{120});
  clock_.Set(T(100000));
  ASSERT_TRUE(dispatcher_->RunLane("sms").ok());
  m = Message("sms");
  EXPECT_EQ(m.status, MessageStatus::kDead);
  EXPECT_NE(m.last_error.find("after 3 attempts"), std::string::npos) << m.last_error;
  EXPECT_EQ(fake_sms_.sent().size(), 3u);
}

TEST_F(DispatcherTest, AProvidersRetryAfterIsHonoured) {
  Event("c-1", "form_submitted");
  Drain();
  MakeDispatcher();
  Delivery busy{Delivery::kTransient, "", "HTTP 429"};
  busy.retry_after = Seconds{600};  // longer than the backoff's 30-60 s
  fake_sms_.Script(busy);
  ASSERT_TRUE(dispatcher_->RunLane("sms").ok());
  EXPECT_EQ(Message("sms").not_before, T(600));
}

TEST_F(DispatcherTest, APermanentFailureIsADeadLetterAtOnce) {
  Event("c-1", "form_submitted");
  Drain();
  MakeDispatcher();
  fake_email_.Script({Delivery::kPermanent, "", "550 no such user"});
  ASSERT_TRUE(dispatcher_->RunLane("email").ok());
  auto dead = store_.ListMessages(MessageStatus::kDead, 10);
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].last_error, "550 no such user");
  EXPECT_EQ(fake_email_.sent().size(), 1u);
}

TEST_F(DispatcherTest, ConsentWithdrawnBeforeDispatchCancels) {
  Event("c-1", "form_submitted");
  Drain();
  Profile("c-1", {{"consent", {{"email", false}}}, {"phone", nullptr}});
  MakeDispatcher();
  ASSERT_TRUE(dispatcher_->RunLane("email").ok());
  ASSERT_TRUE(dispatcher_->RunLane("sms").ok());
  EXPECT_TRUE(fake_email_.sent().empty());
  EXPECT_TRUE(fake_sms_.sent().empty());
  EXPECT_EQ(Message("email").status, MessageStatus::kCancelled);
  EXPECT_EQ(Message("email").last_error, "no_consent");
  EXPECT_EQ(Message("sms").last_error, "no_address");
}

TEST_F(DispatcherTest, AnUnknownTemplateIsDeadNotRetried) {
  Event("c-1", "form_submitted");
  Drain();
  std::filesystem::remove(dir_.path() / "templates/nudge.sms.mustache");
  // Rendering happened at commit; simulate a message whose rendering failed.
  Batch b;
  OutboxMessage m = Message("sms");
  m.id = "broken";
  m.payload = {{"render_error", "nudge.sms: no such template"}, {"to", "+1"}};
  b.outbox.push_back(m);
  ASSERT_TRUE(store_.Commit(b).ok());
  MakeDispatcher();
  ASSERT_TRUE(dispatcher_->RunLane("sms").ok());
  auto msg = store_.GetMessage("broken");
  EXPECT_EQ((*msg)->status, MessageStatus::kDead);
  EXPECT_NE((*msg)->last_error.find("template"), std::string::npos);
}

TEST_F(DispatcherTest, AHangingProviderDoesNotStallTheOtherLanes) {
  Hanging hanging;
  sms_ = &hanging;
  Event("c-1", "form_submitted");
  Drain();
  MakeDispatcher();
  dispatcher_->Start();
  ASSERT_TRUE(hanging.WaitCalled());
  // The SMS provider hangs; email still goes out.
  for (int i = 0; i < 200 && fake_email_.sent().size() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(fake_email_.sent().size(), 2u);
  EXPECT_EQ(Message("email").status, MessageStatus::kSent);
  EXPECT_EQ(Message("sms").status, MessageStatus::kPending);
  hanging.Release();
  dispatcher_->Stop();
  EXPECT_EQ(Message("sms").status, MessageStatus::kSent);
}

TEST_F(DispatcherTest, TheRateLimitSpacesSends) {
  for (int i = 2; i <= 6; ++i) {
    std::string id = "c-" + std::to_string(i);
    Profile(id, {{"email", id + "@example.com"}, {"consent", {{"email", true}}}});
    Event(id, "form_submitted");
  }
  Drain();
  DispatcherOptions options;
  options.rates["email"] = 20;  // 50 ms apart
  MakeDispatcher(options);
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(dispatcher_->RunLane("email").ok());
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(fake_email_.sent().size(), 5u);
  EXPECT_GE(took, std::chrono::milliseconds(190));  // 4 gaps of 50 ms
}

// A database that is restarting: the first `failures` MarkSent calls fail with "storage".
class RestartingStore final : public testing::ForwardingStore {
 public:
  RestartingStore(Store& inner, int failures) : ForwardingStore(inner), failures_(failures) {}
  Status MarkSent(const std::string& id, Time at) override {
    ++calls;
    if (failures_-- > 0) return Error{"storage", "server closed the connection"};
    return ForwardingStore::MarkSent(id, at);
  }
  int calls = 0;

 private:
  int failures_;
};

TEST_F(DispatcherTest, ASendIsRecordedOnceTheStoreIsBackNotSentAgain) {
  Event("c-1", "form_submitted");
  Drain();
  RestartingStore restarting(store_, 3);
  DispatcherOptions options;
  options.seed = 7;
  Dispatcher d(restarting, clock_, *registry_, config_.directory, options,
               [this](const std::string&) {
                 LaneConnectors c;
                 c.email = std::make_unique<Forward>(email_);
                 c.sms = std::make_unique<Forward>(sms_);
                 c.chat = std::make_unique<Forward>(&chat_);
                 c.webhook = std::make_unique<Forward>(&webhook_);
                 return c;
               });
  ASSERT_TRUE(d.RunLane("email").ok());
  EXPECT_EQ(fake_email_.sent().size(), 1u);
  EXPECT_EQ(restarting.calls, 4);  // three failures, then recorded
  EXPECT_EQ(Message("email").status, MessageStatus::kSent);
  // Even once its lease has run out, the message is not claimed (and sent) again.
  clock_.Set(T(100000));
  ASSERT_TRUE(d.RunLane("email").ok());
  EXPECT_EQ(fake_email_.sent().size(), 1u);
}

}  // namespace
}  // namespace itinera::orch
