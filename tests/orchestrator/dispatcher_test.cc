#include "orchestrator/dispatcher.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <set>
#include <thread>

#include "daemon_fixture.h"
#include "tests/orchestrator/eventually.h"
#include "tests/orchestrator/forwarding_store.h"

namespace itinera::orch {
namespace {

using connectors::Delivery;
using connectors::FakeConnector;
using nlohmann::json;
using testing::DaemonFixture;
using testing::Eventually;
using testing::T;

// Hands a lane a connector the test keeps (LaneConnectors owns its connectors).
class Forward final : public connectors::Connector {
 public:
  explicit Forward(connectors::Connector* to) : to_(to) {}
  Delivery Send(const connectors::Message& m) override { return to_->Send(m); }

 private:
  connectors::Connector* to_;
};

// Blocks every Send after the first `free` until released: a provider that hangs.
class Hanging final : public connectors::Connector {
 public:
  explicit Hanging(int free = 0) : free_(free) {}
  Delivery Send(const connectors::Message&) override {
    std::unique_lock lock(mu_);
    if (free_-- > 0) return Delivery{Delivery::kSent, "quick", ""};
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
  int free_;
  int calls_ = 0;  // sends that hung
  bool released_ = false;
};

// Holds each Send until `parties` sends have arrived, or 2 s have passed (then kTransient): the
// first sends get through only when that many are in flight at once.
class Barrier final : public connectors::Connector {
 public:
  explicit Barrier(int parties) : parties_(parties) {}
  Delivery Send(const connectors::Message&) override {
    std::unique_lock lock(mu_);
    ++arrived_;
    cv_.notify_all();
    if (!cv_.wait_for(lock, std::chrono::seconds(2), [&] { return arrived_ >= parties_; })) {
      ++timeouts_;
      return Delivery{Delivery::kTransient, "", "the other sends never came"};
    }
    return Delivery{Delivery::kSent, "together", ""};
  }
  int timeouts() {
    std::lock_guard lock(mu_);
    return timeouts_;
  }

 private:
  const int parties_;
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  int timeouts_ = 0;
};

// A connector that must not be used by two sends at once (as libcurl's handles): counts the
// sends that overlapped on this instance.
class SingleUser final : public connectors::Connector {
 public:
  SingleUser(connectors::Connector* to, std::atomic<int>* overlaps)
      : to_(to), overlaps_(overlaps) {}
  Delivery Send(const connectors::Message& m) override {
    if (busy_.exchange(true)) ++*overlaps_;
    Delivery d = to_->Send(m);
    ++sends;
    busy_ = false;
    return d;
  }
  std::atomic<int> sends{0};

 private:
  connectors::Connector* to_;
  std::atomic<int>* overlaps_;
  std::atomic<bool> busy_{false};
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
    dispatcher_ = DispatcherOn(store_, options);
  }

  std::unique_ptr<Dispatcher> DispatcherOn(Store& store, DispatcherOptions options) {
    options.retry_initial = Seconds{60};
    options.seed = 7;
    return std::make_unique<Dispatcher>(store, clock_, *registry_, config_.directory, options,
                                        [this](const std::string&) {
                                          LaneConnectors c;
                                          c.email = std::make_unique<Forward>(email_);
                                          c.sms = std::make_unique<Forward>(sms_);
                                          c.chat = std::make_unique<Forward>(&chat_);
                                          c.webhook = std::make_unique<Forward>(&webhook_);
                                          return c;
                                        });
  }

  // Customers c-2 .. c-<n> enter the journey too (c-1 is there already): n emails in all.
  void Customers(int n) {
    for (int i = 2; i <= n; ++i) {
      std::string id = "c-" + std::to_string(i);
      Profile(id, {{"email", id + "@example.com"}, {"consent", {{"email", true}}}});
      Event(id, "form_submitted");
    }
    Event("c-1", "form_submitted");
    Drain();
  }

  // Six emails on a started lane with one connection that claims two at a time. The first pass
  // goes out at once (`hanging` lets two sends through), so the lane knows its passes are quick;
  // the second pass's first send hangs until the test releases `hanging`.
  void StartWithHangingSend(Hanging& hanging, DispatcherOptions options = {}) {
    Customers(6);
    options.connections = 1;
    options.claim = 2;
    MakeDispatcher(options);
    SendAlerts();
    email_ = &hanging;
    dispatcher_->Start();
    ASSERT_TRUE(hanging.WaitCalled());
  }

  // Sends the reps' alerts, which go by email too, through connectors made now: those of the
  // email lane, made later, may then count or hold the emails alone.
  void SendAlerts() {
    for (int i = 0; i < 100; ++i) {
      auto handled = dispatcher_->RunLane("alert");
      ASSERT_TRUE(handled.ok());
      if (*handled == 0) return;
    }
  }

  // The email messages with the status.
  size_t Emails(MessageStatus status) {
    auto messages = store_.ListMessages(status, 1000);
    if (!messages.ok()) return 0;
    return static_cast<size_t>(
        std::count_if(messages->begin(), messages->end(),
                      [](const OutboxMessage& m) { return m.channel == "email"; }));
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

  // A connector that hangs, owned by the fixture: a test that fails before releasing it would
  // otherwise leave the started lane's workers blocked in a destroyed connector, and the test
  // binary hanging instead of failing.
  Hanging& Hang(int free = 0) { return *hangings_.emplace_back(std::make_unique<Hanging>(free)); }

  void TearDown() override {
    for (auto& hanging : hangings_) hanging->Release();
    if (dispatcher_ != nullptr) dispatcher_->Stop();
  }

  FakeConnector fake_email_, fake_sms_, chat_, webhook_;
  connectors::Connector* email_ = &fake_email_;
  connectors::Connector* sms_ = &fake_sms_;
  std::vector<std::unique_ptr<Hanging>> hangings_;
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
  Hanging& hanging = Hang();
  sms_ = &hanging;
  Event("c-1", "form_submitted");
  Drain();
  MakeDispatcher();
  dispatcher_->Start();
  ASSERT_TRUE(hanging.WaitCalled());
  // The SMS provider hangs; email still goes out, and is recorded (at the end of its pass).
  for (int i = 0; i < 200 && (fake_email_.sent().size() < 2 ||
                              Message("email").status != MessageStatus::kSent);
       ++i) {
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
  auto dispatcher = DispatcherOn(restarting, DispatcherOptions());
  Dispatcher& d = *dispatcher;
  ASSERT_TRUE(d.RunLane("email").ok());
  EXPECT_EQ(fake_email_.sent().size(), 1u);
  EXPECT_EQ(restarting.calls, 4);  // three failures, then recorded
  EXPECT_EQ(Message("email").status, MessageStatus::kSent);
  // Even once its lease has run out, the message is not claimed (and sent) again.
  clock_.Set(T(100000));
  ASSERT_TRUE(d.RunLane("email").ok());
  EXPECT_EQ(fake_email_.sent().size(), 1u);
}

TEST_F(DispatcherTest, ALaneSendsOverItsConnectionsAtOnce) {
  Barrier barrier(4);  // passes only when four sends are in flight together
  email_ = &barrier;
  Customers(8);
  DispatcherOptions options;
  options.connections = 4;
  MakeDispatcher(options);
  auto handled = dispatcher_->RunLane("email");
  ASSERT_TRUE(handled.ok());
  EXPECT_EQ(*handled, 8);
  EXPECT_EQ(barrier.timeouts(), 0);
  EXPECT_EQ(Emails(MessageStatus::kSent), 8u);
  EXPECT_EQ(dispatcher_->stats("email").sent.load(), 8);
}

TEST_F(DispatcherTest, EachWorkerSendsThroughItsOwnConnectors) {
  Barrier barrier(3);  // the first three sends are in flight at once, on three workers
  Customers(9);
  std::map<std::string, int> made;  // lane -> make calls
  std::vector<SingleUser*> instances;
  std::atomic<int> overlaps{0};
  DispatcherOptions options;
  options.connections = 3;
  Dispatcher d(store_, clock_, *registry_, config_.directory, options,
               [&](const std::string& lane) {
                 ++made[lane];
                 LaneConnectors c;
                 auto email = std::make_unique<SingleUser>(&barrier, &overlaps);
                 instances.push_back(email.get());
                 c.email = std::move(email);
                 return c;
               });
  ASSERT_TRUE(d.RunLane("email").ok());
  ASSERT_TRUE(d.RunLane("email").ok());  // connectors are made once, not per pass
  EXPECT_EQ(made["email"], 3);
  ASSERT_EQ(instances.size(), 3u);
  for (SingleUser* connector : instances) EXPECT_GE(connector->sends.load(), 1);
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(barrier.timeouts(), 0);
  EXPECT_EQ(Emails(MessageStatus::kSent), 9u);
}

// Counts the calls a dispatcher makes; RecordOutcomes and LoadCustomers reach the inner store's
// own implementations.
class CountingStore final : public testing::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Status RecordOutcomes(const std::vector<OutboxOutcome>& outcomes) override {
    ++record_calls;
    for (const OutboxOutcome& o : outcomes) ++recorded[o.kind];
    return inner_.RecordOutcomes(outcomes);
  }
  Status MarkSent(const std::string& id, Time at) override {
    ++marks;
    return ForwardingStore::MarkSent(id, at);
  }
  Status MarkRetry(const std::string& id, Time at, const std::string& e) override {
    ++marks;
    return ForwardingStore::MarkRetry(id, at, e);
  }
  Status MarkDead(const std::string& id, const std::string& e) override {
    ++marks;
    return ForwardingStore::MarkDead(id, e);
  }
  Status MarkCancelled(const std::string& id, const std::string& r) override {
    ++marks;
    return ForwardingStore::MarkCancelled(id, r);
  }
  Result<std::map<std::string, CustomerSnapshot>> LoadCustomers(
      const std::vector<std::string>& customers, const CustomerReads& reads) override {
    ++loads;
    loaded_states = reads.states;
    loaded_events = reads.events_per_customer;
    return inner_.LoadCustomers(customers, reads);
  }
  Result<std::optional<nlohmann::json>> GetProfile(const std::string& c) override {
    ++single_reads;
    return ForwardingStore::GetProfile(c);
  }
  Result<std::vector<SendRecord>> RecentSends(const std::string& c, Time since) override {
    ++single_reads;
    return ForwardingStore::RecentSends(c, since);
  }

  std::atomic<int> record_calls{0}, marks{0}, loads{0}, single_reads{0};
  std::map<OutboxOutcome::Kind, int> recorded;  // written under the dispatcher's pass
  bool loaded_states = true;
  int loaded_events = -1;
};

TEST_F(DispatcherTest, APassRecordsItsOutcomesInOneCall) {
  Customers(6);
  Profile("c-2", {{"consent", {{"email", false}}}});  // cancelled at dispatch
  fake_email_.Script({Delivery::kPermanent, "", "550 no such user"});
  fake_email_.Script({Delivery::kTransient, "", "451 later"});
  CountingStore counting(store_);
  DispatcherOptions options;
  options.connections = 3;
  auto d = DispatcherOn(counting, options);
  ASSERT_TRUE(d->RunLane("email").ok());
  EXPECT_EQ(counting.record_calls.load(), 1);
  EXPECT_EQ(counting.marks.load(), 0);
  EXPECT_EQ(counting.recorded[OutboxOutcome::kSent], 3);
  EXPECT_EQ(counting.recorded[OutboxOutcome::kDead], 1);
  EXPECT_EQ(counting.recorded[OutboxOutcome::kRetry], 1);
  EXPECT_EQ(counting.recorded[OutboxOutcome::kCancelled], 1);
  EXPECT_EQ(Emails(MessageStatus::kSent), 3u);
  EXPECT_EQ(Emails(MessageStatus::kDead), 1u);
  EXPECT_EQ(Emails(MessageStatus::kPending), 1u);
  EXPECT_EQ(Emails(MessageStatus::kCancelled), 1u);
  EXPECT_EQ(fake_email_.sent().size(), 5u);
}

TEST_F(DispatcherTest, APassReadsItsCustomersOnce) {
  Customers(6);
  Profile("c-3", {{"consent", {{"email", false}}}});
  ASSERT_TRUE(store_.EraseCustomer("c-4").ok());  // its pending email is cancelled with it
  CountingStore counting(store_);
  auto d = DispatcherOn(counting, {});
  ASSERT_TRUE(d->RunLane("email").ok());
  EXPECT_EQ(counting.loads.load(), 1);
  EXPECT_FALSE(counting.loaded_states);  // the pre-send check needs no journey states
  EXPECT_EQ(counting.loaded_events, 0);
  EXPECT_EQ(counting.single_reads.load(), 0);
  EXPECT_EQ(fake_email_.sent().size(), 4u);
  EXPECT_EQ(Emails(MessageStatus::kCancelled), 2u);
}

TEST_F(DispatcherTest, AnErasedCustomersClaimedMessageIsCancelled) {
  Event("c-1", "form_submitted");
  Drain();
  // Erased between the claim and the pre-send read: the read finds no profile.
  class ErasingStore final : public testing::ForwardingStore {
   public:
    using ForwardingStore::ForwardingStore;
    Result<std::map<std::string, CustomerSnapshot>> LoadCustomers(
        const std::vector<std::string>& customers, const CustomerReads& reads) override {
      auto loaded = inner_.LoadCustomers(customers, reads);
      if (loaded.ok()) (*loaded)["c-1"].profile.reset();
      return loaded;
    }
  } erasing(store_);
  auto d = DispatcherOn(erasing, {});
  ASSERT_TRUE(d->RunLane("email").ok());
  EXPECT_TRUE(fake_email_.sent().empty());
  EXPECT_EQ(Message("email").status, MessageStatus::kCancelled);
  EXPECT_EQ(Message("email").last_error, "erased");
}

// A database that is restarting: the first `failures` RecordOutcomes calls fail with "storage".
class RestartingBatchStore final : public testing::ForwardingStore {
 public:
  RestartingBatchStore(Store& inner, int failures) : ForwardingStore(inner), failures_(failures) {}
  Status RecordOutcomes(const std::vector<OutboxOutcome>& outcomes) override {
    ++calls;
    if (failures_-- > 0) return Error{"storage", "server closed the connection"};
    return inner_.RecordOutcomes(outcomes);
  }
  std::atomic<int> calls{0};

 private:
  std::atomic<int> failures_;
};

TEST_F(DispatcherTest, APassIsRecordedOnceTheStoreIsBackNotSentAgain) {
  Customers(3);
  RestartingBatchStore restarting(store_, 2);
  auto d = DispatcherOn(restarting, {});
  ASSERT_TRUE(d->RunLane("email").ok());
  EXPECT_EQ(fake_email_.sent().size(), 3u);
  EXPECT_EQ(restarting.calls.load(), 3);  // two failures, then recorded
  EXPECT_EQ(Emails(MessageStatus::kSent), 3u);
  // Even once their lease has run out, the messages are not claimed (and sent) again.
  clock_.Set(T(100000));
  EXPECT_EQ(*d->RunLane("email"), 0);
  EXPECT_EQ(fake_email_.sent().size(), 3u);
}

TEST_F(DispatcherTest, MessagesGivenBackOnStopAreRecordedWithTheSends) {
  Hanging& hanging = Hang();
  email_ = &hanging;
  Customers(3);
  CountingStore counting(store_);
  DispatcherOptions options;
  options.connections = 1;
  auto d = DispatcherOn(counting, options);
  std::thread stopper([&] {
    EXPECT_TRUE(hanging.WaitCalled());
    d->Stop();  // while the first send hangs: the other two are given back
    hanging.Release();
  });
  auto handled = d->RunLane("email");
  stopper.join();
  ASSERT_TRUE(handled.ok());
  EXPECT_EQ(*handled, 1);
  EXPECT_EQ(counting.record_calls.load(), 1);
  EXPECT_EQ(counting.recorded[OutboxOutcome::kSent], 1);
  EXPECT_EQ(counting.recorded[OutboxOutcome::kRetry], 2);
  EXPECT_EQ(Emails(MessageStatus::kSent), 1u);
  EXPECT_EQ(Emails(MessageStatus::kPending), 2u);
  for (const OutboxMessage& m : Pending()) {
    if (m.channel == "email") {
      EXPECT_LE(m.not_before, clock_.Now());  // due again at once
    }
  }
}

TEST_F(DispatcherTest, ARateLimitedLaneClaimsOnlyWhatItCanSendInTime) {
  Customers(12);
  DispatcherOptions options;
  options.rates["email"] = 20;
  options.lease = Seconds{2};  // no send after 1 s: 20 per second can send 10 in a half-lease
  MakeDispatcher(options);
  ASSERT_TRUE(dispatcher_->RunLane("email").ok());
  EXPECT_EQ(fake_email_.sent().size(), 10u);
  EXPECT_EQ(Emails(MessageStatus::kPending), 2u);
  for (const OutboxMessage& m : Pending()) {
    if (m.channel == "email") {
      EXPECT_EQ(m.attempts, 0) << m.id;  // not claimed, so not given back either
    }
  }
}

// The lane's email messages claimed at least once (given back or not), sent or pending.
int ClaimedEmails(Store& store) {
  int claimed = 0;
  for (auto status : {MessageStatus::kPending, MessageStatus::kSent}) {
    auto messages = store.ListMessages(status, 1000);
    if (!messages.ok()) return -1;
    for (const OutboxMessage& m : *messages) claimed += m.channel == "email" && m.attempts > 0;
  }
  return claimed;
}

TEST_F(DispatcherTest, AStartedLaneClaimsItsNextPassWhileSending) {
  Hanging& hanging = Hang(2);                              // the first pass goes out
  ASSERT_NO_FATAL_FAILURE(StartWithHangingSend(hanging));  // three passes of two
  // The second pass's first send hangs; meanwhile the third pass is claimed.
  EXPECT_TRUE(Eventually([&] { return ClaimedEmails(store_) == 6; }));
  hanging.Release();
  EXPECT_TRUE(Eventually([&] { return Emails(MessageStatus::kSent) == 6; }));
  dispatcher_->Stop();
  EXPECT_EQ(Emails(MessageStatus::kSent), 6u);
}

TEST_F(DispatcherTest, ALaneWhosePassesAreSlowClaimsOnePassAtATime) {
  // Each send takes 150 ms, so a pass of two takes more than a quarter of the 1 s lease.
  class Slow final : public connectors::Connector {
   public:
    explicit Slow(Store& store) : store_(store) {}
    Delivery Send(const connectors::Message&) override {
      if (++sends_ == 4) claimed_at_fourth = ClaimedEmails(store_);
      std::this_thread::sleep_for(std::chrono::milliseconds(150));
      return Delivery{Delivery::kSent, "slow", ""};
    }
    int claimed_at_fourth = -1;

   private:
    Store& store_;
    int sends_ = 0;
  } slow(store_);
  Customers(6);
  DispatcherOptions options;
  options.connections = 1;
  options.claim = 2;
  options.lease = Seconds{1};
  MakeDispatcher(options);
  SendAlerts();
  email_ = &slow;
  dispatcher_->Start();
  EXPECT_TRUE(Eventually([&] { return Emails(MessageStatus::kSent) == 6; }));
  dispatcher_->Stop();
  // The second pass was claimed once the first was done, and the third not while the second
  // was sent: claimed ahead, it would have waited out part of its lease.
  EXPECT_EQ(slow.claimed_at_fourth, 4);
  EXPECT_EQ(Emails(MessageStatus::kSent), 6u);
}

// Counts each lane's claims and pre-send reads.
class ClaimCountingStore final : public testing::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Result<std::vector<OutboxMessage>> ClaimDue(Time now, int limit, Seconds lease,
                                              const std::string& channel) override {
    {
      std::lock_guard lock(mu_);
      ++claims_[channel];
    }
    return ForwardingStore::ClaimDue(now, limit, lease, channel);
  }
  Result<std::map<std::string, CustomerSnapshot>> LoadCustomers(
      const std::vector<std::string>& customers, const CustomerReads& reads) override {
    ++loads;
    return ForwardingStore::LoadCustomers(customers, reads);
  }
  std::map<std::string, int> claims() {
    std::lock_guard lock(mu_);
    return claims_;
  }
  std::atomic<int> loads{0};  // the lanes' pre-send reads

 private:
  std::mutex mu_;
  std::map<std::string, int> claims_;
};

TEST_F(DispatcherTest, APokeForOneLaneWakesThatLaneAlone) {
  // A claim that finds nothing still takes SQLite's writer.
  ClaimCountingStore counting(store_);
  DispatcherOptions options;
  options.idle_poll = std::chrono::hours(1);  // only pokes wake a lane
  auto dispatcher = DispatcherOn(counting, options);
  dispatcher->Start();
  // Each lane looks once as it starts, finds nothing and sleeps.
  using Claims = std::map<std::string, int>;
  ASSERT_TRUE(Eventually([&] { return counting.claims().size() == 4; }));
  EXPECT_EQ(counting.claims(), (Claims{{"alert", 1}, {"email", 1}, {"sms", 1}, {"webhook", 1}}));

  dispatcher->Poke("sms");
  EXPECT_TRUE(Eventually([&] { return counting.claims()["sms"] == 2; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(counting.claims(), (Claims{{"alert", 1}, {"email", 1}, {"sms", 2}, {"webhook", 1}}));

  dispatcher->Poke();  // every lane
  EXPECT_TRUE(Eventually([&] {
    return counting.claims() == Claims{{"alert", 2}, {"email", 2}, {"sms", 3}, {"webhook", 2}};
  }));
  dispatcher->Stop();
}

TEST_F(DispatcherTest, ALaneTakesFreshMessagesOnceServingUnlessRateLimitedOrBusy) {
  Hanging& hanging = Hang(2);  // the first pass goes out
  DispatcherOptions options;
  options.rates["sms"] = 1000;
  options.connections = 1;
  options.claim = 2;
  Customers(6);
  MakeDispatcher(options);
  SendAlerts();
  EXPECT_FALSE(dispatcher_->Takes("email"));  // not started
  email_ = &hanging;
  dispatcher_->Start();
  ASSERT_TRUE(hanging.WaitCalled());
  // The second pass hangs and the third is claimed ahead: the lane is busy.
  ASSERT_TRUE(Eventually([&] { return ClaimedEmails(store_) == 6; }));
  EXPECT_TRUE(Eventually([&] { return !dispatcher_->Takes("email"); }));  // once it is queued
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(dispatcher_->Takes("email"));
  hanging.Release();
  EXPECT_TRUE(Eventually([&] { return Emails(MessageStatus::kSent) == 6; }));
  EXPECT_TRUE(Eventually([&] { return dispatcher_->Takes("email"); }));
  EXPECT_FALSE(dispatcher_->Takes("sms"));  // rate-limited: it claims what its rate allows
  EXPECT_FALSE(dispatcher_->Takes("push"));
  dispatcher_->Stop();
  EXPECT_FALSE(dispatcher_->Takes("email"));
}

// An email like c-1's, committed claimed as the processor commits what it hands over.
OutboxMessage CommitClaimed(Store& store, const Dispatcher& dispatcher, OutboxMessage m,
                            const std::string& id, Time now) {
  m.id = id;
  m.status = MessageStatus::kPending;
  m.attempts = 0;
  m.sent_at.reset();
  dispatcher.Claimed(m, now);
  Batch b;
  b.outbox.push_back(m);
  std::vector<size_t> inserted;
  EXPECT_TRUE(store.Commit(b, &inserted).ok());
  EXPECT_EQ(inserted, (std::vector<size_t>{0}));
  return m;
}

TEST_F(DispatcherTest, AMessageHandedOverIsSentWithoutAClaimOrARead) {
  Event("c-1", "form_submitted");
  Drain();
  ClaimCountingStore counting(store_);
  DispatcherOptions options;
  options.idle_poll = std::chrono::hours(1);  // only pokes wake a lane
  dispatcher_ = DispatcherOn(counting, options);
  dispatcher_->Start();
  // The lane's first claim found c-1's emails, its second one nothing: it sleeps. The second
  // claim may come before the first pass's reads of c-1 (a lane claims while it sends): once
  // nothing is pending, the first pass is sent and recorded, its reads done.
  ASSERT_TRUE(Eventually([&] {
    return counting.claims()["email"] == 2 && dispatcher_->Takes("email") && Pending().empty();
  }));
  const int loads = counting.loads.load();
  OutboxMessage m = CommitClaimed(counting, *dispatcher_, Message("email"), "m-handed", T(0));
  EXPECT_EQ(m.attempts, 1);
  EXPECT_EQ(m.not_before, T(0) + Seconds{300});
  dispatcher_->Take("email", {m}, std::chrono::steady_clock::now());
  EXPECT_TRUE(Eventually([&] {
    auto stored = store_.GetMessage("m-handed");
    return stored.ok() && stored->has_value() && (*stored)->status == MessageStatus::kSent;
  }));
  auto sent = fake_email_.sent();
  EXPECT_EQ(std::count_if(sent.begin(), sent.end(),
                          [](const connectors::Message& s) { return s.id == "m-handed"; }),
            1);
  EXPECT_EQ(counting.claims()["email"], 2);
  // Nor read again before its send: the processor's check, just before its commit, stands.
  EXPECT_EQ(counting.loads.load(), loads);
  dispatcher_->Stop();
}

TEST_F(DispatcherTest, PassesHandedOverDoNotHoldUpTheLanesClaims) {
  // Sends hang for the messages handed over; the others go out.
  class HangsHanded final : public connectors::Connector {
   public:
    HangsHanded(connectors::Connector* to, Hanging* hanging) : to_(to), hanging_(hanging) {}
    Delivery Send(const connectors::Message& m) override {
      return m.id.rfind("m-handed", 0) == 0 ? hanging_->Send(m) : to_->Send(m);
    }

   private:
    connectors::Connector* to_;
    Hanging* hanging_;
  } hangs_handed(&fake_email_, &Hang());
  Event("c-1", "form_submitted");
  Drain();
  email_ = &hangs_handed;
  DispatcherOptions options;
  options.connections = 3;
  MakeDispatcher(options);
  dispatcher_->Start();
  ASSERT_TRUE(Eventually([&] { return dispatcher_->Takes("email"); }));
  const OutboxMessage email = Message("email");
  // Two passes handed over hang on two of the three connections: as many as the lane keeps
  // claimed passes going.
  for (const char* id : {"m-handed-1", "m-handed-2"}) {
    OutboxMessage m = CommitClaimed(store_, *dispatcher_, email, id, T(0));
    dispatcher_->Take("email", {m}, std::chrono::steady_clock::now());
  }
  // A message due in the outbox is claimed and sent all the same.
  OutboxMessage due = email;
  due.id = "m-due";
  due.status = MessageStatus::kPending;
  due.attempts = 0;
  due.not_before = clock_.Now();
  Batch b;
  b.outbox.push_back(due);
  ASSERT_TRUE(store_.Commit(b).ok());
  dispatcher_->Poke("email");
  EXPECT_TRUE(Eventually([&] {
    auto stored = store_.GetMessage("m-due");
    return stored.ok() && stored->has_value() && (*stored)->status == MessageStatus::kSent;
  }));
}

TEST_F(DispatcherTest, AMessageHandedOverAfterTheStopGoesBackToTheOutbox) {
  Event("c-1", "form_submitted");
  Drain();
  MakeDispatcher();
  dispatcher_->Start();
  ASSERT_TRUE(Eventually([&] { return dispatcher_->Takes("email"); }));
  OutboxMessage m = CommitClaimed(store_, *dispatcher_, Message("email"), "m-late", T(0));
  dispatcher_->Stop();
  dispatcher_->Take("email", {m}, std::chrono::steady_clock::now());
  // Due at once, for the next start to claim.
  auto claimed = store_.ClaimDue(T(0), 10, Seconds{60}, "email");
  ASSERT_TRUE(claimed.ok());
  ASSERT_EQ(claimed->size(), 1u);
  EXPECT_EQ((*claimed)[0].id, "m-late");
  auto sent = fake_email_.sent();
  EXPECT_TRUE(std::none_of(sent.begin(), sent.end(),
                           [](const connectors::Message& s) { return s.id == "m-late"; }));
}

TEST_F(DispatcherTest, ARateLimitedLaneClaimsOnePassAtATime) {
  Hanging& hanging = Hang(2);  // the first pass goes out
  DispatcherOptions options;
  options.rates["email"] = 1000;
  ASSERT_NO_FATAL_FAILURE(StartWithHangingSend(hanging, options));
  // A pass claimed ahead would spend its lease waiting for the rate: none is.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(ClaimedEmails(store_), 4);
  hanging.Release();
  EXPECT_TRUE(Eventually([&] { return Emails(MessageStatus::kSent) == 6; }));
  dispatcher_->Stop();
}

TEST_F(DispatcherTest, AStartedLanesWorkersServeEveryPass) {
  // Each connector instance records the threads that sent through it (kernel thread ids, which
  // a new thread does not reuse as it may a joined thread's std::thread::id).
  class ThreadRecorder final : public connectors::Connector {
   public:
    Delivery Send(const connectors::Message&) override {
      {
        std::lock_guard lock(mu);
        threads.insert(gettid());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      return Delivery{Delivery::kSent, "ok", ""};
    }
    std::mutex mu;
    std::set<pid_t> threads;
  };
  Customers(8);
  std::vector<ThreadRecorder*> instances;
  DispatcherOptions options;
  options.connections = 2;
  options.claim = 2;  // four passes
  Dispatcher d(store_, clock_, *registry_, config_.directory, options,
               [&](const std::string& lane) {
                 LaneConnectors c;
                 if (lane == "email") {
                   auto email = std::make_unique<ThreadRecorder>();
                   instances.push_back(email.get());
                   c.email = std::move(email);
                 }
                 return c;
               });
  d.Start();
  EXPECT_TRUE(Eventually([&] { return Emails(MessageStatus::kSent) == 8; }));
  d.Stop();
  ASSERT_EQ(instances.size(), 2u);
  std::set<pid_t> all;
  for (ThreadRecorder* connector : instances) {
    EXPECT_EQ(connector->threads.size(), 1u);  // one worker per connection, for every pass
    all.insert(connector->threads.begin(), connector->threads.end());
  }
  EXPECT_EQ(all.size(), 2u);
}

TEST_F(DispatcherTest, APassReadsItsCustomersAChunkAheadOfItsSends) {
  // During the second send every customer withdraws email consent. The pass read its first 256
  // customers before the first send and the next 256 right after it, ahead of their sends; the
  // rest are read once the second chunk is begun, and see the withdrawal.
  class Withdrawing final : public connectors::Connector {
   public:
    explicit Withdrawing(Store& store) : store_(store) {}
    Delivery Send(const connectors::Message&) override {
      if (sends_++ == 1) {
        for (int i = 1; i <= 600; ++i) {
          EXPECT_TRUE(
              store_.UpsertProfile("c-" + std::to_string(i), {{"consent", {{"email", false}}}})
                  .ok());
        }
      }
      return Delivery{Delivery::kSent, "ok", ""};
    }

   private:
    Store& store_;
    int sends_ = 0;
  } withdrawing(store_);
  email_ = &withdrawing;
  Customers(600);
  CountingStore counting(store_);
  DispatcherOptions options;
  options.connections = 1;
  options.claim = 600;  // one pass
  auto d = DispatcherOn(counting, options);
  ASSERT_TRUE(d->RunLane("email").ok());
  EXPECT_EQ(counting.loads.load(), 3);
  EXPECT_EQ(Emails(MessageStatus::kSent), 512u);
  EXPECT_EQ(Emails(MessageStatus::kCancelled), 88u);
}

TEST_F(DispatcherTest, AStartedLaneGivesBackItsQueuedPassOnStop) {
  Hanging& hanging = Hang(2);  // the first pass goes out
  ASSERT_NO_FATAL_FAILURE(StartWithHangingSend(hanging));
  ASSERT_TRUE(Eventually([&] { return ClaimedEmails(store_) == 6; }));
  std::thread stopper([&] { dispatcher_->Stop(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // Stop has begun
  hanging.Release();
  stopper.join();
  // The first pass and the hanging send went out; the hanging send's pass's other message and
  // the whole queued pass came back.
  EXPECT_EQ(Emails(MessageStatus::kSent), 3u);
  EXPECT_EQ(Emails(MessageStatus::kPending), 3u);
  for (const OutboxMessage& m : Pending()) {
    if (m.channel == "email") {
      EXPECT_LE(m.not_before, clock_.Now()) << m.id;  // due at once
    }
  }
}

}  // namespace
}  // namespace itinera::orch
