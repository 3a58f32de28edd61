#include "orchestrator/processor.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>

#include "daemon_fixture.h"
#include "orchestrator/tracking.h"
#include "tests/orchestrator/forwarding_store.h"

namespace itinera::orch {
namespace {

using nlohmann::json;
using testing::DaemonFixture;
using testing::T;

constexpr char kOffer[] = R"(  enter when event "form_submitted"
  step offer {
    assign owner from team "sales" by round_robin
    send email "hello" as offer
    then wait_open
  }
  step wait_open {
    wait up to 1h for event "email_opened" where event.message == offer
    when received then hot
    when timed_out then again
  }
  step hot {
    alert owner "hot"
    webhook "crm"
    then done
  }
  step again {
    send email "again"
    then done
  }
  step done {
    exit
  }
)";

class ProcessorTest : public DaemonFixture {
 protected:
  void SetUp() override {
    DaemonFixture::SetUp();
    Journey("lead", 1, kOffer);
    StartRegistry();
    Profile("c-1", {{"email", "jana@example.com"},
                    {"attributes", {{"first_name", "Jana"}}},
                    {"consent", {{"email", true}}}});
  }
};

TEST_F(ProcessorTest, AnEventEntersAndTheRenderedEmailCommitsWithTheState) {
  Event("c-1", "form_submitted");
  EXPECT_EQ(Drain(), 1);
  auto pending = Pending();
  ASSERT_EQ(pending.size(), 1u);
  const OutboxMessage& m = pending[0];
  EXPECT_EQ(m.channel, "email");
  EXPECT_EQ(m.recipient, "jana@example.com");
  EXPECT_EQ(m.payload["subject"], "Hello Jana");
  EXPECT_EQ(m.payload["handle"], "offer");
  // Links point at the click tracker; the original URL is stored for the redirect.
  std::string html = m.payload["html"];
  EXPECT_NE(html.find("https://t.example/t/c/"), std::string::npos) << html;
  EXPECT_NE(html.find("https://t.example/t/o/"), std::string::npos) << html;
  EXPECT_EQ(html.find("dealer.example/offer"), std::string::npos) << html;
  EXPECT_EQ(m.payload["links"], json::array({"https://dealer.example/offer?x=1&y=2"}));
  std::string unsubscribe = m.payload["list_unsubscribe"];
  ASSERT_EQ(unsubscribe.rfind("https://t.example/u/", 0), 0u);
  auto token = VerifyToken(unsubscribe.substr(20), "test-secret", TrackingKind::kUnsubscribe);
  ASSERT_TRUE(token.has_value());
  EXPECT_EQ(token->message_id, m.id);

  EXPECT_TRUE(store_.PendingEvents("c-1", 10)->empty());
  auto state = store_.GetState("c-1", "lead");
  ASSERT_TRUE(state.ok() && state->has_value());
  EXPECT_EQ((*state)->state.instances.at(0).status, InstanceStatus::kWaiting);
  EXPECT_EQ(Counter("lead", "entered"), 1);
  EXPECT_EQ(Counter("lead", "step.offer.entered"), 1);
  EXPECT_EQ(Counter("lead", "step.offer.left"), 1);
  EXPECT_EQ(Counter("lead", "step.wait_open.entered"), 1);
  EXPECT_EQ(Counter("lead", "sent.email"), 1);
  auto profile = store_.GetProfile("c-1");
  EXPECT_EQ((**profile)["owner"], "rep_anna");
  auto timeline = store_.Timeline("c-1", 100);
  ASSERT_TRUE(timeline.ok());
  bool event = false, sent = false;
  for (const auto& t : *timeline) {
    if (t.kind == "event" && t.data["type"] == "form_submitted") event = true;
    if (t.kind == "sent" && t.data["message"] == m.id && t.data["subject"] == "Hello Jana") {
      sent = true;
    }
  }
  EXPECT_TRUE(event);
  EXPECT_TRUE(sent);
}

TEST_F(ProcessorTest, DueTimersWakeFromTheIndexAndNothingRunsEarly) {
  Event("c-1", "form_submitted");
  Drain();
  clock_.Set(T(3599));
  EXPECT_EQ(Drain(), 0);
  clock_.Set(T(3600));
  EXPECT_EQ(Drain(), 1);
  auto pending = Pending();
  ASSERT_EQ(pending.size(), 2u);
  EXPECT_EQ(Counter("lead", "step.again.entered"), 1);
  EXPECT_EQ(Counter("lead", "exited"), 1);
  EXPECT_TRUE(store_.DueCustomers(T(100000), 10, PartitionSet())->empty());
}

// The timer that ends the first wait starts the second without any effect; the new wake-up
// must still be stored, or the second wait would restart from the stored first one.
TEST_F(ProcessorTest, AWaitThatEndsInAnotherWaitIsStored) {
  Journey("drip", 1, R"(  enter when event "signed_up"
  step pause {
    wait 1h
    wait 2h
    send email "hello"
    then done
  }
  step done {
    exit
  }
)");
  StartRegistry();
  Event("c-1", "signed_up");
  Drain();
  clock_.Set(T(3600));
  EXPECT_EQ(Drain(), 1);
  auto state = store_.GetState("c-1", "drip");
  ASSERT_TRUE(state.ok() && state->has_value());
  EXPECT_EQ((*state)->state.NextWake(), T(3 * 3600));
  clock_.Set(T(3 * 3600 - 1));
  EXPECT_EQ(Drain(), 0);
  clock_.Set(T(3 * 3600));
  EXPECT_EQ(Drain(), 1);
  EXPECT_EQ(Counter("drip", "sent.email"), 1);
}

TEST_F(ProcessorTest, AnOpenNamingTheHandleResolvesToTheMessage) {
  Event("c-1", "form_submitted");
  Drain();
  clock_.Advance(Seconds{60});
  Event("c-1", "email_opened", {{"handle", "offer"}});
  Drain();
  EXPECT_EQ(Counter("lead", "step.hot.entered"), 1);
  auto pending = Pending();
  ASSERT_EQ(pending.size(), 3u);  // the offer, the alert, the webhook
  bool alert = false, webhook = false;
  for (const auto& m : pending) {
    if (m.channel == "alert") {
      alert = true;
      EXPECT_EQ(m.recipient, "rep_anna");
      EXPECT_EQ(m.payload["text"], "Jana opened the offer");
      EXPECT_EQ(m.payload["context"]["email"], "jana@example.com");
      EXPECT_EQ(m.payload["context"]["last_events"].at(0)["type"], "email_opened");
      EXPECT_EQ(m.payload["context"]["last_events"].at(1)["type"], "form_submitted");
    }
    if (m.channel == "webhook") {
      webhook = true;
      EXPECT_EQ(m.payload["name"], "crm");
      EXPECT_EQ(m.payload["body"]["customer"]["id"], "c-1");
      EXPECT_EQ(m.payload["body"]["journey"]["id"], "lead");
    }
  }
  EXPECT_TRUE(alert);
  EXPECT_TRUE(webhook);
}

TEST_F(ProcessorTest, ManyCustomersShareOneCommit) {
  for (int i = 2; i <= 40; ++i) Event("c-" + std::to_string(i), "form_submitted");
  Event("c-1", "form_submitted");
  EXPECT_EQ(Drain(), 40);
  EXPECT_EQ(processor_->stats().batches.load(), 1);
  EXPECT_EQ(Counter("lead", "entered"), 40);
}

TEST_F(ProcessorTest, AProfileUpdateBetweenReadAndCommitIsKept) {
  // The engine writes owner; an API upsert of another attribute must survive the commit.
  EXPECT_EQ(MergePatchDiff({{"a", 1}, {"b", {{"x", 1}, {"y", 2}}}},
                           {{"a", 1}, {"b", {{"x", 3}}}, {"c", true}}),
            json({{"b", {{"x", 3}, {"y", nullptr}}}, {"c", true}}));
  Event("c-1", "form_submitted");
  Profile("c-1", {{"attributes", {{"city", "Brno"}}}});
  Drain();
  auto profile = store_.GetProfile("c-1");
  EXPECT_EQ((**profile)["owner"], "rep_anna");
  EXPECT_EQ((**profile)["attributes"]["city"], "Brno");
}

TEST_F(ProcessorTest, AProfileChangeEntersCustomerRules) {
  Journey("vip", 1, R"(  enter when customer customer.tier == "gold"
  step hello {
    send email "hello"
    then done
  }
  step done {
    exit
  }
)");
  registry_->Reload();
  json before = store_.GetProfile("c-1")->value();
  Profile("c-1", {{"attributes", {{"tier", "gold"}}}});
  NewEvent e;
  e.customer = "c-1";
  e.at = clock_.Now();
  e.body = {{"customer_id", "c-1"}, {"type", kProfileChangedEvent}, {"before", before}};
  ASSERT_TRUE(store_.AppendEvents({e}).ok());
  Drain();
  EXPECT_EQ(Counter("vip", "entered"), 1);
  EXPECT_EQ(Counter("lead", "entered"), 0);
}

TEST_F(ProcessorTest, WithoutConsentNothingIsQueued) {
  Profile("c-1", {{"consent", {{"email", false}}}});
  Event("c-1", "form_submitted");
  Drain();
  EXPECT_TRUE(Pending().empty());
  EXPECT_EQ(Counter("lead", "skipped.no_consent"), 1);
}

// ---- versions and reload ----

TEST_F(ProcessorTest, ANewVersionTakesNewEntrantsAndInFlightCustomersStay) {
  Event("c-1", "form_submitted");
  Drain();
  Journey("lead", 2, std::string(kOffer).replace(std::string(kOffer).find("1h"), 2, "2h"));
  ReloadReport r = registry_->Reload();
  EXPECT_EQ(r.published, std::vector<std::string>{"lead@2"});
  Event("c-2", "form_submitted");
  Drain();
  EXPECT_EQ((*store_.GetState("c-2", "lead"))->state.instances[0].version, 2);
  // c-1 times out after 1h on version 1; c-2 waits 2h on version 2.
  clock_.Set(T(3600));
  Drain();
  EXPECT_EQ((*store_.GetState("c-1", "lead"))->state.instances[0].version, 1);
  EXPECT_EQ((*store_.GetState("c-1", "lead"))->state.instances[0].status, InstanceStatus::kExited);
  EXPECT_EQ((*store_.GetState("c-2", "lead"))->state.instances[0].status, InstanceStatus::kWaiting);

  // After a restart the version-1 program comes back from the store, not from the file.
  JourneyRegistry restarted(config_, store_);
  restarted.Load();
  auto catalog = restarted.Snapshot();
  ASSERT_NE(catalog->Find("lead", 1), nullptr);
  EXPECT_EQ(catalog->Current("lead")->version, 2);
}

TEST_F(ProcessorTest, AChangedJourneyThatKeepsItsVersionIsRefused) {
  std::string changed = kOffer;
  changed.replace(changed.find("1h"), 2, "5h");
  Journey("lead", 1, changed);
  ReloadReport r = registry_->Reload();
  ASSERT_EQ(r.refused.size(), 1u);
  EXPECT_NE(r.refused[0].find("changed but kept version 1"), std::string::npos) << r.refused[0];
  // The old program keeps taking entrants.
  EXPECT_NE(registry_->Snapshot()->Current("lead"), nullptr);
  // And a restart with the changed file refuses it too: the stored version wins.
  JourneyRegistry restarted(config_, store_);
  ReloadReport again = restarted.Load();
  EXPECT_EQ(again.refused.size(), 1u);
}

TEST_F(ProcessorTest, AFileThatDoesNotCheckIsRefusedAndTheOldOneKeepsRunning) {
  Write("journeys/lead.journey", "journey lead {\n  version 2\n  step oops {\n");
  ReloadReport r = registry_->Reload();
  EXPECT_EQ(r.refused.size(), 1u);
  EXPECT_GT(r.errors, 0);
  ASSERT_NE(registry_->Snapshot()->Current("lead"), nullptr);
  EXPECT_EQ(registry_->Snapshot()->Current("lead")->version, 1);
}

TEST_F(ProcessorTest, ARemovedJourneyTakesNoNewEntrants) {
  Event("c-1", "form_submitted");
  Drain();
  std::filesystem::remove(dir_.path() / "journeys/lead.journey");
  ReloadReport r = registry_->Reload();
  EXPECT_EQ(r.retired, std::vector<std::string>{"lead"});
  Event("c-2", "form_submitted");
  Drain();
  EXPECT_FALSE(store_.GetState("c-2", "lead")->has_value());
  // c-1 still finishes.
  clock_.Set(T(3600));
  Drain();
  EXPECT_EQ((*store_.GetState("c-1", "lead"))->state.instances[0].status, InstanceStatus::kExited);
}

// Keeps the batches it commits, to look at their fences.
class RecordingStore final : public testing::ForwardingStore {
 public:
  using ForwardingStore::Commit;
  using ForwardingStore::ForwardingStore;
  Status Commit(const Batch& b, std::vector<size_t>* inserted) override {
    batches.push_back(b);
    return ForwardingStore::Commit(b, inserted);
  }
  std::vector<Batch> batches;
};

TEST_F(ProcessorTest, OnASharedStoreOnlyHeldPartitionsAdvanceAndCommitsCarryTheirEpochs) {
  ASSERT_NE(PartitionOf("c-1"), PartitionOf("c-2"));
  Profile("c-2", {{"email", "petr@example.com"}, {"consent", {{"email", true}}}});
  Event("c-1", "form_submitted");
  Event("c-2", "form_submitted");
  clock_.Set(T(10));

  RecordingStore recording(store_);
  Ownership held;
  held.node = "node-a";
  held.all = false;
  held.epochs = {{PartitionOf("c-1"), 7}};
  ProcessorOptions options;
  options.public_url = "https://t.example";
  options.tracking_secret = "test-secret";
  options.ownership = [&] { return held; };
  Processor mine(recording, clock_, *registry_, config_.directory, options);

  auto n = mine.RunOnce();
  ASSERT_TRUE(n.ok()) << n.error().message;
  EXPECT_EQ(*n, 1);
  EXPECT_TRUE(store_.GetState("c-1", "lead")->has_value());
  EXPECT_FALSE(store_.GetState("c-2", "lead")->has_value());  // not ours: left in the inbox
  EXPECT_EQ(store_.PendingEvents("c-2", 10)->size(), 1u);
  ASSERT_EQ(recording.batches.size(), 1u);
  ASSERT_TRUE(recording.batches[0].fence.has_value());
  EXPECT_EQ(recording.batches[0].fence->node, "node-a");
  EXPECT_EQ(recording.batches[0].fence->epochs, (std::map<int, int64_t>{{PartitionOf("c-1"), 7}}));
  EXPECT_EQ(*mine.RunOnce(), 0);  // c-2 stays for its owner

  held.epochs.clear();  // every lease lost: nothing is read or advanced
  Event("c-1", "form_submitted");
  EXPECT_EQ(*mine.RunOnce(), 0);
  EXPECT_EQ(store_.PendingEvents("c-1", 10)->size(), 1u);
}

TEST_F(ProcessorTest, OnAStoreThatIsNotSharedCommitsCarryNoFence) {
  RecordingStore recording(store_);
  ProcessorOptions options;
  options.tracking_secret = "test-secret";
  Processor single(recording, clock_, *registry_, config_.directory, options);
  Event("c-1", "form_submitted");
  ASSERT_EQ(*single.RunOnce(), 1);
  ASSERT_EQ(recording.batches.size(), 1u);
  EXPECT_FALSE(recording.batches[0].fence.has_value());
}

// Holds each Commit until the processor has begun reading its next batch (or 5 s pass), and
// only then lets it reach the store: the next batch's reads see the store without the batch in
// flight, as they may on a real database whose commit is still waiting for its fsync.
class SlowCommitStore final : public testing::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;

  using ForwardingStore::Commit;
  Status Commit(const Batch& b, std::vector<size_t>* inserted) override {
    {
      // Every batch starts with a read of the inbox, so commit k is overlapped once read k + 1
      // has begun (the commit's thread may start after it did).
      std::unique_lock lock(mu_);
      const int k = ++commits_;
      overlapped.push_back(
          cv_.wait_for(lock, std::chrono::seconds(5), [&] { return inbox_reads_ > k; }));
    }
    if (fail_commits > 0) {
      --fail_commits;
      return Error{"storage", "the disk is full"};
    }
    return ForwardingStore::Commit(b, inserted);
  }
  Result<std::vector<std::string>> InboxCustomers(int limit, const PartitionSet& only) override {
    {
      std::lock_guard lock(mu_);
      ++inbox_reads_;
    }
    cv_.notify_all();
    return ForwardingStore::InboxCustomers(limit, only);
  }
  Result<std::map<std::string, CustomerSnapshot>> LoadCustomers(
      const std::vector<std::string>& customers, const CustomerReads& reads) override {
    int k;
    {
      std::lock_guard lock(mu_);
      for (const std::string& c : customers) ++loaded[c];
      k = ++loads_;
    }
    if (before_load) before_load(k);
    return Store::LoadCustomers(customers, reads);
  }

  // Written by the commit thread, read after RunOnce returns.
  std::vector<bool> overlapped;  // per commit: the next read began while it was in flight
  std::map<std::string, int> loaded;
  int fail_commits = 0;
  std::function<void(int)> before_load;  // called with k before the k-th batch's read

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int inbox_reads_ = 0;
  int commits_ = 0;
  int loads_ = 0;
};

class PipelineTest : public ProcessorTest {
 protected:
  void SetUp() override {
    ProcessorTest::SetUp();
    config_.directory.teams["sales"].push_back(SalesRep("rep_bob", "Bob", "bob@dealer.example"));
    for (const char* c : {"c-2", "c-3"}) {
      Profile(c, {{"email", std::string(c) + "@example.com"}, {"consent", {{"email", true}}}});
    }
  }

  using Committed = std::pair<int, std::vector<std::string>>;  // customers, channels

  std::unique_ptr<Processor> OneCustomerPerBatch(Store& store,
                                                 std::function<void(int)> committed = nullptr) {
    ProcessorOptions options;
    options.batch = 1;
    options.public_url = "https://t.example";
    options.tracking_secret = "test-secret";
    options.committed = [this, committed](int n, const std::vector<std::string>& channels) {
      if (committed) return committed(n);
      committed_.emplace_back(n, channels);
    };
    return std::make_unique<Processor>(store, clock_, *registry_, config_.directory, options);
  }

  std::vector<Committed> committed_;
};

TEST_F(PipelineTest, TheNextBatchIsAdvancedWhileThePreviousOneCommits) {
  for (const char* c : {"c-1", "c-2", "c-3"}) Event(c, "form_submitted");
  SlowCommitStore slow(store_);
  auto processor = OneCustomerPerBatch(slow);

  auto n = processor->RunOnce();
  ASSERT_TRUE(n.ok()) << n.error().message;
  EXPECT_EQ(*n, 3);
  EXPECT_EQ(slow.overlapped, (std::vector<bool>{true, true, true}));
  EXPECT_EQ(committed_, (std::vector<Committed>{{1, {"email"}}, {1, {"email"}}, {1, {"email"}}}));
  EXPECT_EQ(processor->stats().batches.load(), 3);
  EXPECT_EQ(processor->stats().customers.load(), 3);
  // Each customer was read once: the batch in flight is left out of the next one, although the
  // store still showed its events as pending.
  EXPECT_EQ(slow.loaded, (std::map<std::string, int>{{"c-1", 1}, {"c-2", 1}, {"c-3", 1}}));
  EXPECT_EQ(Counter("lead", "entered"), 3);
  EXPECT_EQ(Pending().size(), 3u);
  // Round robin went on from the assignments of the batch in flight, not from the store's
  // counters, which did not show them yet.
  EXPECT_EQ((**store_.GetProfile("c-1"))["owner"], "rep_anna");
  EXPECT_EQ((**store_.GetProfile("c-2"))["owner"], "rep_bob");
  EXPECT_EQ((**store_.GetProfile("c-3"))["owner"], "rep_anna");
  EXPECT_EQ(store_.GetRouting()->round_robin["sales"], 3);
}

TEST_F(PipelineTest, ACommitNamesTheChannelsItAddedMessagesTo) {
  // c-1 gets the email; c-4 has no consent, so its email is skipped and its batch adds no
  // message.
  Profile("c-4", {{"email", "c-4@example.com"}});
  Event("c-1", "form_submitted");
  Event("c-4", "form_submitted");
  auto processor = OneCustomerPerBatch(store_);
  ASSERT_EQ(*processor->RunOnce(), 2);
  std::sort(committed_.begin(), committed_.end(),
            [](const Committed& a, const Committed& b) { return a.second < b.second; });
  EXPECT_EQ(committed_, (std::vector<Committed>{{1, {}}, {1, {"email"}}}));

  Event("c-1", "email_opened", {{"handle", "offer"}});  // the hot step: an alert and a webhook
  committed_.clear();
  ASSERT_EQ(*processor->RunOnce(), 1);
  EXPECT_EQ(committed_, (std::vector<Committed>{{1, {"alert", "webhook"}}}));
}

// A hand-over to lanes: "email" takes its messages, the other channels decline. Records what
// it is handed.
class HandOverTest : public PipelineTest {
 protected:
  struct Taken {
    std::string channel;
    std::vector<OutboxMessage> messages;
  };

  std::unique_ptr<Processor> Handing(Store& store) {
    ProcessorOptions options;
    options.batch = 1;
    options.public_url = "https://t.example";
    options.tracking_secret = "test-secret";
    options.committed = [this](int n, const std::vector<std::string>& channels) {
      committed_.emplace_back(n, channels);
    };
    options.hand_over.takes = [](const std::string& channel) { return channel == "email"; };
    options.hand_over.claim = [](OutboxMessage& m, Time now) {
      m.attempts += 1;
      m.not_before = now + Seconds{60};
    };
    options.hand_over.take = [this](const std::string& channel, std::vector<OutboxMessage> ms,
                                    std::chrono::steady_clock::time_point) {
      taken_.push_back({channel, std::move(ms)});
    };
    return std::make_unique<Processor>(store, clock_, *registry_, config_.directory, options);
  }

  std::vector<Taken> taken_;
};

TEST_F(HandOverTest, ALaneThatTakesItsMessagesGetsThemClaimedByTheirCommit) {
  clock_.Set(T(10));
  Event("c-1", "form_submitted");
  auto processor = Handing(store_);
  ASSERT_EQ(*processor->RunOnce(), 1);
  ASSERT_EQ(taken_.size(), 1u);
  EXPECT_EQ(taken_[0].channel, "email");
  ASSERT_EQ(taken_[0].messages.size(), 1u);
  const OutboxMessage& m = taken_[0].messages[0];
  EXPECT_EQ(m.attempts, 1);
  EXPECT_EQ(m.not_before, T(70));
  // In the outbox as the lane's claim would have left it: not claimed again before the lease
  // runs out (a daemon that died before sending it leaves it to the next claim).
  auto stored = store_.GetMessage(m.id);
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->attempts, 1);
  EXPECT_EQ((*stored)->not_before, T(70));
  EXPECT_EQ((*stored)->payload, m.payload);
  EXPECT_TRUE(store_.ClaimDue(T(69), 10, Seconds{60}, "email")->empty());
  EXPECT_EQ(store_.ClaimDue(T(70), 10, Seconds{60}, "email")->size(), 1u);
  EXPECT_EQ(committed_, (std::vector<Committed>{{1, {}}}));  // nothing for a lane to claim

  // The hot step's alert and webhook: their lanes decline, so they wait to be claimed.
  Event("c-1", "email_opened", {{"handle", "offer"}});
  ASSERT_EQ(*processor->RunOnce(), 1);
  EXPECT_EQ(taken_.size(), 1u);
  EXPECT_EQ(committed_.back(), (Committed{1, {"alert", "webhook"}}));
  EXPECT_EQ(store_.ClaimDue(T(10), 10, Seconds{60}, "alert")->size(), 1u);
}

TEST_F(HandOverTest, AMessageAlreadyInTheOutboxIsNotHandedOver) {
  // Puts each batch's messages in the outbox, plain pending, just before the batch commits.
  class Replaying final : public testing::ForwardingStore {
   public:
    using ForwardingStore::Commit;
    using ForwardingStore::ForwardingStore;
    Status Commit(const Batch& b, std::vector<size_t>* inserted) override {
      Batch first;
      for (OutboxMessage m : b.outbox) {
        m.attempts = 0;
        m.not_before = m.created_at;
        first.outbox.push_back(std::move(m));
      }
      if (Status s = ForwardingStore::Commit(first, nullptr); !s.ok()) return s;
      return ForwardingStore::Commit(b, inserted);
    }
  } replaying(store_);
  clock_.Set(T(10));
  Event("c-1", "form_submitted");
  auto processor = Handing(replaying);
  ASSERT_EQ(*processor->RunOnce(), 1);
  EXPECT_TRUE(taken_.empty());
  // Its row stands, unclaimed: the email lane is woken to claim it.
  EXPECT_EQ(committed_, (std::vector<Committed>{{1, {"email"}}}));
  auto claimed = store_.ClaimDue(T(10), 10, Seconds{60}, "email");
  ASSERT_EQ(claimed->size(), 1u);
  EXPECT_EQ((*claimed)[0].attempts, 1);
}

TEST_F(PipelineTest, ACommitIsAnnouncedAsSoonAsItLandsNotWhenTheNextBatchIsReady) {
  for (const char* c : {"c-1", "c-2", "c-3"}) Event(c, "form_submitted");
  SlowCommitStore slow(store_);
  std::mutex mu;
  std::condition_variable cv;
  int announced = 0;
  std::vector<bool> on_time;  // per batch k > 1: batch k - 1 was announced before k's read
  slow.before_load = [&](int k) {
    if (k == 1) return;
    std::unique_lock lock(mu);
    on_time.push_back(
        cv.wait_for(lock, std::chrono::seconds(5), [&] { return announced >= k - 1; }));
  };
  auto processor = OneCustomerPerBatch(slow, [&](int) {
    std::lock_guard lock(mu);
    ++announced;
    cv.notify_all();
  });
  EXPECT_EQ(*processor->RunOnce(), 3);
  EXPECT_EQ(on_time, (std::vector<bool>{true, true}));
  EXPECT_EQ(announced, 3);
}

TEST_F(PipelineTest, AFailedCommitLeavesItsBatchAndTheOneAdvancedMeanwhileForTheNextRun) {
  for (const char* c : {"c-1", "c-2"}) Event(c, "form_submitted");
  SlowCommitStore slow(store_);
  slow.fail_commits = 1;
  auto processor = OneCustomerPerBatch(slow);

  auto failed = processor->RunOnce();
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, "storage");
  EXPECT_TRUE(committed_.empty());
  EXPECT_EQ(processor->stats().commit_failures.load(), 1);
  EXPECT_EQ(store_.PendingEvents("c-1", 10)->size(), 1u);
  EXPECT_EQ(store_.PendingEvents("c-2", 10)->size(), 1u);
  EXPECT_TRUE(Pending().empty());

  auto n = processor->RunOnce();
  ASSERT_TRUE(n.ok()) << n.error().message;
  EXPECT_EQ(*n, 2);
  EXPECT_EQ(Counter("lead", "entered"), 2);
  EXPECT_EQ(Pending().size(), 2u);
}

TEST_F(PipelineTest, AStopEndsTheRunOnceTheBatchInFlightHasCommitted) {
  for (const char* c : {"c-1", "c-2", "c-3"}) Event(c, "form_submitted");
  ProcessorOptions options;
  options.batch = 1;
  options.tracking_secret = "test-secret";
  int asked = 0;
  options.stop = [&] { return ++asked > 2; };  // the third batch is not started
  Processor processor(store_, clock_, *registry_, config_.directory, options);
  EXPECT_EQ(*processor.RunOnce(), 2);
  EXPECT_EQ(Counter("lead", "entered"), 2);
  EXPECT_EQ(store_.PendingEvents("c-3", 10)->size(), 1u);
}

TEST_F(PipelineTest, ARunStopsAfterABoundedNumberOfBatches) {
  const int customers = Processor::kBatchesPerRun + 2;
  for (int i = 0; i < customers; ++i) Event("b-" + std::to_string(i), "form_submitted");
  auto processor = OneCustomerPerBatch(store_);
  EXPECT_EQ(*processor->RunOnce(), Processor::kBatchesPerRun);
  EXPECT_EQ(*processor->RunOnce(), 2);
  EXPECT_EQ(*processor->RunOnce(), 0);
  EXPECT_EQ(Counter("lead", "entered"), customers);
}

}  // namespace
}  // namespace itinera::orch
