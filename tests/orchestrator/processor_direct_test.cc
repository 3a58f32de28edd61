// Processor::Advance: a request's events advanced and stored in one batch commit, without the
// inbox; and the requests it declines, which the daemon then appends to the inbox.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "daemon_fixture.h"
#include "orchestrator/processor.h"
#include "tests/orchestrator/eventually.h"
#include "tests/orchestrator/forwarding_store.h"

namespace itinera::orch {
namespace {

using nlohmann::json;
using testing::DaemonFixture;
using testing::Eventually;

constexpr char kOffer[] = R"(  enter when event "form_submitted"
  step offer {
    send email "hello" as offer
    then wait_open
  }
  step wait_open {
    wait up to 1h for event "email_opened" where event.message == offer
    when received then hot
    when timed_out then done
  }
  step hot {
    send email "again"
    then done
  }
  step done {
    exit
  }
)";

// Keeps the batches it commits; fails the next `fail` commits with `fail_code`; holds each
// commit while the gate is closed (Open(false)); counts the inbox reads (one per batch
// prepared) and fails the next `fail_reads` of them; calls `before_load` before each batch's
// read of its customers.
class GateStore final : public testing::ForwardingStore {
 public:
  using ForwardingStore::Commit;
  using ForwardingStore::ForwardingStore;
  Status Commit(const Batch& b, std::vector<size_t>* inserted) override {
    {
      std::unique_lock lock(mu);
      ++waiting;
      cv.notify_all();
      cv.wait(lock, [&] { return open; });
      --waiting;
      if (fail > 0) {
        --fail;
        return Error{fail_code, "the commit failed"};
      }
      batches.push_back(b);
    }
    return ForwardingStore::Commit(b, inserted);
  }
  Result<std::vector<std::string>> InboxCustomers(int limit, const PartitionSet& only) override {
    {
      std::lock_guard lock(mu);
      ++inbox_reads;
      if (fail_reads > 0) {
        --fail_reads;
        return Error{"storage", "the database is unreachable"};
      }
    }
    return ForwardingStore::InboxCustomers(limit, only);
  }
  Result<std::map<std::string, CustomerSnapshot>> LoadCustomers(
      const std::vector<std::string>& customers, const CustomerReads& reads) override {
    if (before_load) before_load();
    return ForwardingStore::LoadCustomers(customers, reads);
  }
  int InboxReads() {
    std::lock_guard lock(mu);
    return inbox_reads;
  }
  void Open(bool value) {
    std::lock_guard lock(mu);
    open = value;
    cv.notify_all();
  }
  std::vector<Batch> Batches() {
    std::lock_guard lock(mu);
    return batches;
  }

  std::mutex mu;
  std::condition_variable cv;
  bool open = true;
  int waiting = 0;  // commits held at the gate
  int fail = 0;
  std::string fail_code = "storage";
  int fail_reads = 0;
  int inbox_reads = 0;
  std::vector<Batch> batches;
  std::function<void()> before_load;  // set before the processor runs
};

class DirectTest : public DaemonFixture {
 protected:
  void SetUp() override {
    DaemonFixture::SetUp();
    Journey("lead", 1, kOffer);
    StartRegistry();
    for (const char* c : {"c-1", "c-2"}) {
      Profile(c, {{"email", std::string(c) + "@example.com"},
                  {"attributes", {{"first_name", "Jana"}}},
                  {"consent", {{"email", true}}}});
    }
  }

  void TearDown() override {
    if (runner_.joinable()) {
      {
        std::lock_guard lock(mu_);
        stop_ = true;
      }
      cv_.notify_all();
      runner_.join();
    }
  }

  // A direct processor on `store`, and a thread that calls its RunOnce whenever Advance wakes
  // it (as the daemon's processor thread does), and only then.
  Processor& Direct(Store& store, int events_per_customer = 100, int batch = 500) {
    ProcessorOptions options;
    options.batch = batch;
    options.public_url = "https://t.example";
    options.tracking_secret = "test-secret";
    options.events_per_customer = events_per_customer;
    options.direct = true;
    options.arrived = [this] { Wake(); };
    direct_ = std::make_unique<Processor>(store, clock_, *registry_, config_.directory, options);
    runner_ = std::thread([this] {
      std::unique_lock lock(mu_);
      uint64_t seen = 0;
      for (;;) {
        cv_.wait(lock, [&] { return stop_ || wakes_ != seen; });
        if (stop_) return;
        seen = wakes_;
        lock.unlock();
        Result<int> n = direct_->RunOnce();
        lock.lock();
        ++runs_;
        if (!n.ok()) errors_.push_back(n.error().code);
        cv_.notify_all();
      }
    });
    return *direct_;
  }

  void Wake() {
    {
      std::lock_guard lock(mu_);
      ++wakes_;
    }
    cv_.notify_all();
  }

  uint64_t Wakes() {
    std::lock_guard lock(mu_);
    return wakes_;
  }

  // Wakes the runner and waits for the RunOnce that follows.
  void RunOnceMore() {
    std::unique_lock lock(mu_);
    const int before = runs_;
    ++wakes_;
    cv_.notify_all();
    ASSERT_TRUE(cv_.wait_for(lock, std::chrono::seconds(5), [&] { return runs_ > before; }));
  }

  // Advance on another thread: a request that is never answered fails the test instead of
  // hanging it (Close then answers it, declined).
  std::optional<std::optional<Status>> AdvanceWithin(Processor& p, std::vector<NewEvent> events) {
    auto f = std::async(std::launch::async, [&] { return p.Advance(events); });
    if (f.wait_for(std::chrono::seconds(5)) == std::future_status::ready) return f.get();
    p.Close();
    f.wait();
    return std::nullopt;
  }

  struct TwoAnswers {
    std::optional<Status> first, second;
    bool second_waited = false;  // not answered while the first batch committed
  };
  // Two requests, the second while the first's batch commits, on a new direct processor: the
  // first batch reads its customers once the second request is queued, and its commit is held
  // until the next batch has been prepared (which sees the second request while the first is in
  // flight).
  TwoAnswers TwoInARow(std::vector<NewEvent> one, std::vector<NewEvent> two) {
    gate_.before_load = [this, first = std::make_shared<std::atomic<bool>>(true)] {
      if (!first->exchange(false)) return;
      EXPECT_TRUE(Eventually([&] { return Wakes() >= 2; }));
    };
    gate_.Open(false);
    Processor& p = Direct(gate_);
    std::future<std::optional<Status>> first, second;
    struct OpenAtExit {  // a failed wait must not leave the requests blocked at the gate
      GateStore& gate;
      ~OpenAtExit() { gate.Open(true); }
    } open_at_exit{gate_};
    TwoAnswers answers;
    first = std::async(std::launch::async, [&] { return p.Advance(one); });
    EXPECT_TRUE(Eventually([&] { return Wakes() >= 1; }));
    second = std::async(std::launch::async, [&] { return p.Advance(two); });
    EXPECT_TRUE(Eventually([&] {
      std::lock_guard lock(gate_.mu);
      return gate_.waiting == 1 && gate_.inbox_reads >= 2;
    }));
    answers.second_waited = second.wait_for(std::chrono::seconds(0)) == std::future_status::timeout;
    gate_.Open(true);
    answers.first = first.get();
    answers.second = second.get();
    return answers;
  }

  std::vector<std::string> Errors() {
    std::lock_guard lock(mu_);
    return errors_;
  }

  GateStore gate_{store_};  // outlives the runner, which TearDown joins
  std::unique_ptr<Processor> direct_;
  std::thread runner_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t wakes_ = 0;
  int runs_ = 0;
  bool stop_ = false;
  std::vector<std::string> errors_;
};

TEST_F(DirectTest, AnEventIsAdvancedAndStoredProcessedInItsBatchsOneCommit) {
  Processor& p = Direct(gate_);
  std::optional<Status> advanced = p.Advance({MakeEvent("c-1", "form_submitted")});
  ASSERT_TRUE(advanced.has_value()) << "declined";
  ASSERT_TRUE(advanced->ok()) << advanced->error().message;

  // Answered after the one commit that holds the event, already processed, and its effects.
  std::vector<Batch> batches = gate_.Batches();
  ASSERT_EQ(batches.size(), 1u);
  ASSERT_EQ(batches[0].arrived.size(), 1u);
  EXPECT_EQ(batches[0].arrived[0].body["type"], "form_submitted");
  EXPECT_TRUE(batches[0].processed_events.empty());
  EXPECT_EQ(batches[0].outbox.size(), 1u);
  EXPECT_TRUE(store_.PendingEvents("c-1", 10)->empty());
  EXPECT_TRUE(store_.InboxCustomers(10, PartitionSet())->empty());
  ASSERT_EQ(Pending().size(), 1u);
  EXPECT_EQ(Pending()[0].payload["subject"], "Hello Jana");
  EXPECT_EQ(Counter("lead", "step.wait_open.entered"), 1);
  auto timeline = store_.Timeline("c-1", 100);
  ASSERT_TRUE(timeline.ok());
  bool event = false;
  for (const auto& t : *timeline) {
    if (t.kind == "event" && t.data["type"] == "form_submitted") event = true;
  }
  EXPECT_TRUE(event);
  EXPECT_EQ(p.stats().direct_events.load(), 1);
  EXPECT_EQ(p.stats().events.load(), 1);
  EXPECT_EQ(p.stats().declined.load(), 0);
}

TEST_F(DirectTest, TheEventsFollowWhatTheirCustomerHadPendingInTheInbox) {
  Processor& p = Direct(gate_);
  Event("c-1", "form_submitted");  // in the inbox; nothing has read it yet
  // The open only counts once the customer waits for it: after the entry in the inbox.
  std::optional<Status> advanced =
      p.Advance({MakeEvent("c-1", "email_opened", {{"message", "offer"}, {"journey", "lead"}})});
  ASSERT_TRUE(advanced.has_value()) << "declined";
  ASSERT_TRUE(advanced->ok());
  std::vector<Batch> batches = gate_.Batches();
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].processed_events.size(), 1u);
  EXPECT_EQ(batches[0].arrived.size(), 1u);
  EXPECT_EQ(Counter("lead", "step.hot.entered"), 1);
  EXPECT_EQ(Counter("lead", "exited"), 1);
  EXPECT_EQ(Pending().size(), 2u);
}

TEST_F(DirectTest, ARequestItCannotTakeIsDeclinedAndNothingIsStored) {
  Processor& p = Direct(store_);
  std::vector<NewEvent> many(Processor::kMaxDirectEvents + 1, MakeEvent("c-1", "form_submitted"));
  EXPECT_FALSE(p.Advance(many).has_value());  // a big batch goes through the inbox
  EXPECT_FALSE(p.Advance({}).has_value());
  EXPECT_EQ(p.stats().declined.load(), 2);

  ProcessorOptions off;  // direct not set
  off.tracking_secret = "test-secret";
  Processor plain(store_, clock_, *registry_, config_.directory, off);
  EXPECT_FALSE(plain.Advance({MakeEvent("c-1", "form_submitted")}).has_value());

  EXPECT_TRUE(store_.PendingEvents("c-1", 10)->empty());
  EXPECT_FALSE(store_.GetState("c-1", "lead")->has_value());
  EXPECT_TRUE(Errors().empty());
}

// As the inbox accepts it: an event whose id is stored already (processed or still in the
// inbox), or came earlier in the batch, is accepted without effect.
TEST_F(DirectTest, AnEventWhoseIdIsKnownIsAcceptedWithoutEffect) {
  Processor& p = Direct(gate_);
  auto events = [&](const std::string& customer, const std::string& id) {
    auto timeline = store_.Timeline(customer, 100);
    int n = 0;
    if (!timeline.ok()) return -1;
    for (const auto& t : *timeline) n += t.kind == "event" && t.data.value("id", "") == id;
    return n;
  };
  const json none = json::object();
  for (int i = 0; i < 2; ++i) {
    std::optional<Status> answer = p.Advance({MakeEvent("c-1", "form_submitted", none, "f-1")});
    ASSERT_TRUE(answer.has_value() && answer->ok()) << i;
  }
  EXPECT_EQ(events("c-1", "f-1"), 1);
  std::optional<Status> twice = p.Advance(
      {MakeEvent("c-1", "page_viewed", none, "v-1"), MakeEvent("c-1", "page_viewed", none, "v-1")});
  ASSERT_TRUE(twice.has_value() && twice->ok());
  EXPECT_EQ(events("c-1", "v-1"), 1);
  Event("c-2", "form_submitted", none, "f-2");  // in the inbox, not processed yet
  std::optional<Status> queued = p.Advance({MakeEvent("c-2", "form_submitted", none, "f-2")});
  ASSERT_TRUE(queued.has_value() && queued->ok());
  EXPECT_EQ(events("c-2", "f-2"), 1);
  EXPECT_EQ(Counter("lead", "entered"), 2);
  EXPECT_EQ(p.stats().direct_events.load(), 5);  // accepted, duplicates included
  EXPECT_EQ(p.stats().declined.load(), 0);
}

TEST_F(DirectTest, ACustomerWithMorePendingThanABatchReadsHasTheRequestDeclined) {
  Processor& p = Direct(gate_, /*events_per_customer=*/2);
  Event("c-1", "form_submitted");
  Event("c-1", "page_viewed");
  // The inbox may hold more than the two the batch reads: the event cannot be put after them.
  EXPECT_FALSE(p.Advance({MakeEvent("c-1", "email_opened")}).has_value());
  EXPECT_TRUE(p.Advance({MakeEvent("c-2", "form_submitted")}).has_value());  // another customer
  ASSERT_TRUE(Eventually([&] { return store_.PendingEvents("c-1", 10)->empty(); }));
  for (const Batch& b : gate_.Batches()) {
    for (const NewEvent& e : b.arrived) EXPECT_EQ(e.customer, "c-2");
  }
  EXPECT_EQ(p.stats().declined.load(), 1);
}

// A full batch leaves a backlog that later batches take first: a request that did not fit
// would wait for all of it.
TEST_F(DirectTest, ARequestThatDoesNotFitAFullBatchIsDeclined) {
  Processor& p = Direct(gate_, /*events_per_customer=*/100, /*batch=*/1);
  Event("c-2", "form_submitted");  // the inbox fills the one-customer batch
  EXPECT_FALSE(p.Advance({MakeEvent("c-1", "form_submitted")}).has_value());
  ASSERT_TRUE(Eventually([&] { return Counter("lead", "entered") == 1; }));
  RunOnceMore();  // the inbox is drained: batches have room again
  std::optional<Status> advanced = p.Advance({MakeEvent("c-1", "form_submitted")});
  ASSERT_TRUE(advanced.has_value());
  EXPECT_TRUE(advanced->ok());
  EXPECT_EQ(Counter("lead", "entered"), 2);
  EXPECT_EQ(p.stats().declined.load(), 1);
}

TEST_F(DirectTest, ARequestWithMoreCustomersThanABatchHoldsIsDeclined) {
  Processor& p = Direct(gate_, /*events_per_customer=*/100, /*batch=*/1);
  auto answer = AdvanceWithin(p, {MakeEvent("c-1", "form_submitted"), MakeEvent("c-2", "x")});
  ASSERT_TRUE(answer.has_value()) << "never answered";
  EXPECT_FALSE(answer->has_value());
  EXPECT_EQ(p.stats().declined.load(), 1);
}

TEST_F(DirectTest, ARefusedCommitDeclinesItsRequestsAndTheNextOnesUntilABatchGoesThrough) {
  gate_.fail = 1;
  gate_.fail_code = "conflict";  // refused: nothing was written
  Processor& p = Direct(gate_);
  EXPECT_FALSE(p.Advance({MakeEvent("c-1", "form_submitted")}).has_value());
  EXPECT_FALSE(store_.GetState("c-1", "lead")->has_value());  // nothing of it was stored
  EXPECT_TRUE(store_.PendingEvents("c-1", 10)->empty());
  ASSERT_TRUE(Eventually([&] { return !Errors().empty(); }));
  EXPECT_EQ(Errors()[0], "conflict");
  // While the processor fails, requests go to the inbox at once instead of waiting for it.
  EXPECT_FALSE(p.Advance({MakeEvent("c-1", "form_submitted")}).has_value());
  RunOnceMore();  // a run that goes through (the daemon retries after a pause)
  std::optional<Status> advanced = p.Advance({MakeEvent("c-1", "form_submitted")});
  ASSERT_TRUE(advanced.has_value());
  EXPECT_TRUE(advanced->ok());
  EXPECT_EQ(Counter("lead", "entered"), 1);
  EXPECT_EQ(p.stats().declined.load(), 2);
}

// A storage error at the commit may have come after the commit was durable: appending the
// events to the inbox again could store them twice, so the request gets the error (a 503).
TEST_F(DirectTest, AStorageErrorAtTheCommitIsTheRequestsAnswer) {
  gate_.fail = 1;
  Processor& p = Direct(gate_);
  std::optional<Status> answer = p.Advance({MakeEvent("c-1", "form_submitted")});
  ASSERT_TRUE(answer.has_value()) << "declined";
  ASSERT_FALSE(answer->ok());
  EXPECT_EQ(answer->error().code, "storage");
  EXPECT_EQ(p.stats().declined.load(), 0);
}

// A run that fails before it takes the waiting requests (the store unreachable) declines them:
// the next run may be seconds away.
TEST_F(DirectTest, AFailedRunDeclinesTheRequestsWaiting) {
  gate_.fail_reads = 1;
  Processor& p = Direct(gate_);
  auto answer = AdvanceWithin(p, {MakeEvent("c-1", "form_submitted")});
  ASSERT_TRUE(answer.has_value()) << "never answered";
  EXPECT_FALSE(answer->has_value());
  // The run answers the request before it returns its error to the runner.
  ASSERT_TRUE(Eventually([&] { return !Errors().empty(); }));
  EXPECT_EQ(Errors(), std::vector<std::string>{"storage"});
}

TEST_F(DirectTest, ARequestForACustomerInFlightWaitsForTheNextBatch) {
  // The next batch sees the second request while c-1 is in flight (its stored state not
  // settled), and must leave it for the batch after.
  TwoAnswers answers =
      TwoInARow({MakeEvent("c-1", "form_submitted")},
                {MakeEvent("c-1", "email_opened", {{"message", "offer"}, {"journey", "lead"}})});
  EXPECT_TRUE(answers.second_waited);
  ASSERT_TRUE(answers.first.has_value() && answers.second.has_value()) << "declined";
  EXPECT_TRUE(answers.first->ok() && answers.second->ok());
  std::vector<Batch> batches = gate_.Batches();
  ASSERT_EQ(batches.size(), 2u);
  ASSERT_EQ(batches[0].arrived.size(), 1u);
  EXPECT_EQ(batches[0].arrived[0].body["type"], "form_submitted");
  ASSERT_EQ(batches[1].arrived.size(), 1u);
  EXPECT_EQ(batches[1].arrived[0].body["type"], "email_opened");
  EXPECT_EQ(Counter("lead", "step.hot.entered"), 1);  // the open found the customer waiting
  EXPECT_TRUE(Errors().empty());
}

// An id in the batch being committed is not in the store yet: a request that carries it again
// (for any customer) waits for the next batch, which finds it stored.
TEST_F(DirectTest, ARequestWithAnIdInFlightWaitsForTheNextBatch) {
  const json none = json::object();
  TwoAnswers answers = TwoInARow({MakeEvent("c-1", "form_submitted", none, "same")},
                                 {MakeEvent("c-2", "form_submitted", none, "same")});
  EXPECT_TRUE(answers.second_waited);
  ASSERT_TRUE(answers.first.has_value() && answers.second.has_value()) << "declined";
  EXPECT_TRUE(answers.first->ok() && answers.second->ok());
  EXPECT_EQ(Counter("lead", "entered"), 1);  // c-1 only: c-2's event was a duplicate
  EXPECT_FALSE(store_.GetState("c-2", "lead")->has_value());
  EXPECT_TRUE(Errors().empty());
}

// AdvanceAsync does not block: the request is answered from the thread that settles it, and a
// declined request gets its events back for the inbox.
TEST_F(DirectTest, AdvanceAsyncAnswersLaterAndGivesDeclinedEventsBack) {
  gate_.Open(false);
  struct OpenAtExit {
    GateStore& gate;
    ~OpenAtExit() { gate.Open(true); }
  } open_at_exit{gate_};
  Processor& p = Direct(gate_);

  std::vector<std::optional<Status>> answers;
  std::vector<size_t> returned;
  std::vector<std::thread::id> threads;
  std::mutex mu;
  std::condition_variable cv;
  auto done = [&](std::optional<Status> status, std::vector<NewEvent>&& events) {
    std::lock_guard lock(mu);
    answers.push_back(std::move(status));
    returned.push_back(events.size());
    threads.push_back(std::this_thread::get_id());
    cv.notify_all();
  };
  std::vector<NewEvent> many(Processor::kMaxDirectEvents + 1, MakeEvent("c-2", "form_submitted"));
  p.AdvanceAsync(many, done);  // declined at once, on this thread, with its events
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(answers.size(), 1u);
    EXPECT_FALSE(answers[0].has_value());
    EXPECT_EQ(returned[0], many.size());
    EXPECT_EQ(threads[0], std::this_thread::get_id());
  }

  p.AdvanceAsync({MakeEvent("c-1", "form_submitted")}, done);  // returns with its commit held
  EXPECT_TRUE(Eventually([&] {
    std::lock_guard lock(gate_.mu);
    return gate_.waiting == 1;
  }));
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(answers.size(), 1u);
  }
  gate_.Open(true);
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(5), [&] { return answers.size() == 2; }));
  ASSERT_TRUE(answers[1].has_value());
  EXPECT_TRUE(answers[1]->ok());
  EXPECT_NE(threads[1], std::this_thread::get_id());
  EXPECT_EQ(p.stats().direct_events.load(), 1);
  EXPECT_EQ(p.stats().declined.load(), 1);
  EXPECT_TRUE(store_.PendingEvents("c-2", 10)->empty());  // nothing of the declined one stored
}

// A declined request is answered outside the processor's locks: its callback may call the
// processor again.
TEST_F(DirectTest, ADeclinedRequestIsAnsweredOutsideTheProcessorsLock) {
  ProcessorOptions options;
  options.tracking_secret = "test-secret";
  options.direct = true;
  Processor p(store_, clock_, *registry_, config_.directory, options);
  p.Close();
  auto answered = std::async(std::launch::async, [&] {
    bool declined = false;
    p.AdvanceAsync({MakeEvent("c-1", "x")},
                   [&](std::optional<Status> status, std::vector<NewEvent>&& events) {
                     p.Close();  // takes the queue's lock
                     declined = !status && events.size() == 1;
                   });
    return declined;
  });
  ASSERT_EQ(answered.wait_for(std::chrono::seconds(5)), std::future_status::ready)
      << "the callback ran under the lock";
  EXPECT_TRUE(answered.get());
}

TEST_F(DirectTest, CloseDeclinesTheWaitingRequestsAndEveryLaterOne) {
  ProcessorOptions options;
  options.tracking_secret = "test-secret";
  options.direct = true;
  std::promise<void> queued;
  options.arrived = [&] { queued.set_value(); };
  Processor p(store_, clock_, *registry_, config_.directory, options);  // no RunOnce
  auto waiting = std::async(std::launch::async, [&] { return p.Advance({MakeEvent("c-1", "x")}); });
  queued.get_future().wait();
  EXPECT_EQ(waiting.wait_for(std::chrono::milliseconds(20)), std::future_status::timeout);
  p.Close();
  EXPECT_FALSE(waiting.get().has_value());
  EXPECT_FALSE(p.Advance({MakeEvent("c-1", "x")}).has_value());
  EXPECT_EQ(p.stats().declined.load(), 2);
}

}  // namespace
}  // namespace itinera::orch
