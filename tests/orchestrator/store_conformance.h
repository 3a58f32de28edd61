// The Store conformance suite: every behaviour of the Store interface, run against each
// implementation. Instantiate it with a factory type that has
// `static std::unique_ptr<Store> Make()` returning an empty store:
//
//   using StoreTypes = ::testing::Types<MemoryFactory, SqliteFactory>;
//   INSTANTIATE_TYPED_TEST_SUITE_P(All, StoreConformanceTest, StoreTypes);
#ifndef ITINERA_TESTS_ORCHESTRATOR_STORE_CONFORMANCE_H_
#define ITINERA_TESTS_ORCHESTRATOR_STORE_CONFORMANCE_H_

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "orchestrator/store.h"

namespace itinera::orch::store_testing {

using nlohmann::json;

inline Time At(int64_t seconds) { return Time{Seconds{1'795'000'000 + seconds}}; }

inline JourneyState SampleState(const std::string& customer, const std::string& step_note) {
  Instance in;
  in.journey = "welcome";
  in.customer = customer;
  in.entered_at = At(0);
  in.status = InstanceStatus::kWaiting;
  in.wait = WaitKind::kTimer;
  in.wake_at = At(3600);
  in.entry_event = {{"type", "signed_up"}, {"note", step_note}};
  JourneyState state;
  state.instances.push_back(in);
  return state;
}

inline OutboxMessage Message(const std::string& id, Time not_before,
                             const std::string& customer = "c-1") {
  OutboxMessage m;
  m.id = id;
  m.customer = customer;
  m.journey = "welcome";
  m.channel = "email";
  m.recipient = "ann@example.com";
  m.payload = {{"subject", "Hello " + id}};
  m.created_at = not_before;
  m.not_before = not_before;
  return m;
}

inline NewEvent Event(const std::string& id, const std::string& customer, int64_t at = 0) {
  return NewEvent{id, customer, At(at), {{"customer_id", customer}, {"type", "clicked"}}};
}

template <typename Factory>
class StoreConformanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = Factory::Make();
    ASSERT_NE(store_, nullptr);
  }

  void CommitOk(const Batch& batch) {
    Status s = store_->Commit(batch);
    ASSERT_TRUE(s.ok()) << s.error().code << ": " << s.error().message;
  }
  void Insert(const OutboxMessage& m) {
    Batch b;
    b.outbox.push_back(m);
    CommitOk(b);
  }
  OutboxMessage Get(const std::string& id) {
    auto m = store_->GetMessage(id);
    EXPECT_TRUE(m.ok() && m->has_value()) << id;
    return m.ok() && m->has_value() ? **m : OutboxMessage{};
  }
  std::vector<std::string> ClaimIds(Time now, int limit = 100, const std::string& channel = "") {
    auto claimed = store_->ClaimDue(now, limit, Seconds{30}, channel);
    EXPECT_TRUE(claimed.ok());
    std::vector<std::string> ids;
    if (claimed.ok()) {
      for (const auto& m : *claimed) ids.push_back(m.id);
    }
    return ids;
  }
  std::vector<std::string> DueKeys(Time now, int limit = 100) {
    auto due = store_->DueCustomers(now, limit, PartitionSet());
    EXPECT_TRUE(due.ok());
    std::vector<std::string> keys;
    if (due.ok()) {
      for (const auto& d : *due) keys.push_back(d.customer + "/" + d.journey);
    }
    return keys;
  }

  std::unique_ptr<Store> store_;
};

TYPED_TEST_SUITE_P(StoreConformanceTest);

TYPED_TEST_P(StoreConformanceTest, UpsertMergesIntoTheProfile) {
  Store& store = *this->store_;
  EXPECT_FALSE(store.GetProfile("c-1")->has_value());
  auto first = store.UpsertProfile("c-1", {{"email", "ann@example.com"},
                                           {"attributes", {{"city", "Prague"}, {"score", 1}}},
                                           {"consent", {{"email", true}}}});
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(first->before.is_null());
  auto second = store.UpsertProfile("c-1", {{"phone", "+420600000001"},
                                            {"timezone", "Europe/Prague"},
                                            {"attributes", {{"score", 2}, {"city", nullptr}}},
                                            {"consent", {{"sms", false}}}});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->before, first->after);
  json expected = {{"id", "c-1"},
                   {"email", "ann@example.com"},
                   {"phone", "+420600000001"},
                   {"timezone", "Europe/Prague"},
                   {"attributes", {{"score", 2}}},
                   {"consent", {{"email", true}, {"sms", false}}}};
  EXPECT_EQ(second->after, expected);
  EXPECT_EQ(**store.GetProfile("c-1"), expected);
  EXPECT_FALSE(store.UpsertProfile("c-1", json::array()).ok());
  EXPECT_FALSE(store.UpsertProfile("", json::object()).ok());
}

TYPED_TEST_P(StoreConformanceTest, CommitPatchesTheProfileAndKeepsConcurrentUpserts) {
  Store& store = *this->store_;
  ASSERT_TRUE(store
                  .UpsertProfile("c-1", {{"email", "ann@example.com"},
                                         {"phone", "+420600000001"},
                                         {"attributes", {{"score", 1}}}})
                  .ok());
  auto read = store.GetProfile("c-1");  // the engine reads the profile ...
  ASSERT_TRUE(read.ok() && read->has_value());
  // ... an API upsert lands before the engine commits ...
  ASSERT_TRUE(store.UpsertProfile("c-1", {{"attributes", {{"city", "Prague"}}}}).ok());
  // ... and the commit carries only what the engine changed.
  Batch b;
  b.profiles.push_back({"c-1", {{"attributes", {{"score", 2}}}, {"phone", nullptr}}});
  b.profiles.push_back({"c-1", {{"owner", "rep_anna"}, {"id", "someone-else"}}});
  b.profiles.push_back({"c-new", {{"email", "new@example.com"}}});
  this->CommitOk(b);
  EXPECT_EQ(**store.GetProfile("c-1"), (json{{"id", "c-1"},
                                             {"email", "ann@example.com"},
                                             {"owner", "rep_anna"},
                                             {"attributes", {{"score", 2}, {"city", "Prague"}}}}));
  EXPECT_EQ(**store.GetProfile("c-new"), (json{{"id", "c-new"}, {"email", "new@example.com"}}));

  Batch not_an_object;
  not_an_object.profiles.push_back({"c-1", json::array()});
  EXPECT_EQ(store.Commit(not_an_object).error().code, "invalid_argument");
}

TYPED_TEST_P(StoreConformanceTest, EventsWithASeenIdAreAcceptedWithoutEffect) {
  Store& store = *this->store_;
  auto added = store.AppendEvents({Event("e-1", "c-1"), Event("e-2", "c-1"), Event("", "c-1")});
  ASSERT_TRUE(added.ok());
  EXPECT_EQ(*added, 3);
  added = store.AppendEvents({Event("e-1", "c-1"), Event("e-3", "c-1"), Event("e-3", "c-1")});
  ASSERT_TRUE(added.ok());
  EXPECT_EQ(*added, 1);  // e-1 seen before; e-3 once
  auto pending = store.PendingEvents("c-1", 100);
  ASSERT_TRUE(pending.ok());
  ASSERT_EQ(pending->size(), 4u);
  EXPECT_EQ((*pending)[0].id, "e-1");
  EXPECT_EQ((*pending)[2].id, "");
  EXPECT_EQ((*pending)[3].id, "e-3");
  for (size_t i = 1; i < pending->size(); ++i) {
    EXPECT_LT((*pending)[i - 1].seq, (*pending)[i].seq);
  }
  EXPECT_EQ((*pending)[0].body["type"], "clicked");
  EXPECT_EQ((*pending)[0].at, At(0));
  EXPECT_EQ(store.PendingEvents("c-1", 2)->size(), 2u);
  EXPECT_FALSE(store.AppendEvents({Event("e-9", "")}).ok());
}

TYPED_TEST_P(StoreConformanceTest, InboxHoldsEventsUntilMarkedProcessed) {
  Store& store = *this->store_;
  ASSERT_TRUE(store.AppendEvents({Event("a", "c-2"), Event("b", "c-1"), Event("c", "c-2")}).ok());
  EXPECT_EQ(*store.InboxCustomers(10, PartitionSet()), (std::vector<std::string>{"c-2", "c-1"}));
  EXPECT_EQ(*store.InboxCustomers(1, PartitionSet()), (std::vector<std::string>{"c-2"}));
  Batch b;
  auto pending = store.PendingEvents("c-2", 10);
  ASSERT_TRUE(pending.ok());
  for (const auto& e : *pending) b.processed_events.push_back(e.seq);
  this->CommitOk(b);
  EXPECT_TRUE(store.PendingEvents("c-2", 10)->empty());
  EXPECT_EQ(*store.InboxCustomers(10, PartitionSet()), (std::vector<std::string>{"c-1"}));
  EXPECT_EQ(*store.AppendEvents({Event("a", "c-2")}), 0);  // still seen after processing
}

// Events a batch advanced straight from the API are stored with it, already processed; their
// ids are as known as the inbox's, and one seen before refuses the whole batch.
TYPED_TEST_P(StoreConformanceTest, ArrivedEventsAreStoredProcessedWithTheirBatch) {
  Store& store = *this->store_;
  Batch b;
  b.arrived = {Event("", "c-1"), Event("e-1", "c-1", 5)};
  b.timeline.push_back({0, "c-1", At(5), "event", {{"type", "clicked"}}});
  this->CommitOk(b);
  EXPECT_TRUE(store.PendingEvents("c-1", 10)->empty());
  EXPECT_TRUE(store.InboxCustomers(10, PartitionSet())->empty());
  EXPECT_EQ(store.Timeline("c-1", 10)->size(), 1u);
  EXPECT_EQ(*store.AppendEvents({Event("e-1", "c-1")}), 0);  // the id is known

  ASSERT_TRUE(store.AppendEvents({Event("e-2", "c-2")}).ok());
  for (const std::vector<NewEvent>& arrived :
       {std::vector<NewEvent>{Event("e-2", "c-3")},                          // in the inbox
        std::vector<NewEvent>{Event("e-1", "c-3")},                          // arrived before
        std::vector<NewEvent>{Event("e-3", "c-3"), Event("e-3", "c-3")}}) {  // twice in one
    Batch refused;
    refused.arrived = arrived;
    refused.timeline.push_back({0, "c-3", At(6), "event", {{"type", "clicked"}}});
    Status s = store.Commit(refused);
    ASSERT_FALSE(s.ok()) << arrived[0].id;
    EXPECT_EQ(s.error().code, "conflict") << arrived[0].id;
    EXPECT_TRUE(store.Timeline("c-3", 10)->empty()) << arrived[0].id;
  }
  EXPECT_EQ(*store.AppendEvents({Event("e-3", "c-3")}), 1);  // the refused batch stored nothing
  EXPECT_EQ(store.PendingEvents("c-3", 10)->size(), 1u);

  // Ids known to the store, whether their event is in the inbox or was processed: each once.
  auto known = store.KnownEventIds({"e-2", "e-9", "e-1", "e-2", "", "e-3"});
  ASSERT_TRUE(known.ok());
  std::multiset<std::string> ids(known->begin(), known->end());
  EXPECT_EQ(ids, (std::multiset<std::string>{"e-1", "e-2", "e-3"}));
  EXPECT_TRUE(store.KnownEventIds({})->empty());
}

TYPED_TEST_P(StoreConformanceTest, StatesRoundTripWithVersions) {
  Store& store = *this->store_;
  EXPECT_FALSE(store.GetState("c-1", "welcome")->has_value());
  Batch b;
  b.states.push_back({"c-1", "welcome", SampleState("c-1", "one"), 0});
  b.states.push_back({"c-1", "alpha", SampleState("c-1", "alpha"), 0});
  this->CommitOk(b);
  auto got = store.GetState("c-1", "welcome");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->version, 1);
  EXPECT_EQ(ToJson((*got)->state), ToJson(SampleState("c-1", "one")));

  Batch next;
  next.states.push_back({"c-1", "welcome", SampleState("c-1", "two"), 1});
  this->CommitOk(next);
  EXPECT_EQ((*store.GetState("c-1", "welcome"))->version, 2);
  Status stale = store.Commit(next);  // computed from version 1 again
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.error().code, "conflict");
  EXPECT_EQ(stale.error().message, "state of c-1 in welcome is at version 2, not 1");
  Batch fresh;  // computed as if the customer had never entered
  fresh.states.push_back({"c-1", "alpha", SampleState("c-1", "again"), 0});
  Status taken = store.Commit(fresh);
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.error().code, "conflict");
  EXPECT_EQ(ToJson((*store.GetState("c-1", "alpha"))->state), ToJson(SampleState("c-1", "alpha")));
  Batch blind;
  blind.states.push_back({"c-1", "welcome", SampleState("c-1", "three"), std::nullopt});
  this->CommitOk(blind);
  auto third = *store.GetState("c-1", "welcome");
  EXPECT_EQ(third->version, 3);
  EXPECT_EQ(ToJson(third->state), ToJson(SampleState("c-1", "three")));

  auto all = store.ListStates("c-1");
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].journey, "alpha");
  EXPECT_EQ((*all)[1].journey, "welcome");
  EXPECT_TRUE(store.ListStates("c-2")->empty());
}

TYPED_TEST_P(StoreConformanceTest, DueIndexOrdersByWakeTimeAndHonoursTheLimit) {
  Batch b;
  b.timers = {{"c-3", "j", At(30)},
              {"c-2", "j", At(10)},
              {"c-1", "k", At(10)},
              {"c-1", "j", At(10)},
              {"c-4", "j", At(100)}};
  this->CommitOk(b);
  EXPECT_EQ(this->DueKeys(At(50)), (std::vector<std::string>{"c-1/j", "c-1/k", "c-2/j", "c-3/j"}));
  EXPECT_EQ(this->DueKeys(At(50), 2), (std::vector<std::string>{"c-1/j", "c-1/k"}));
  EXPECT_TRUE(this->DueKeys(At(9)).empty());
  auto due = *this->store_->DueCustomers(At(10), 1, PartitionSet());
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].wake, At(10));

  Batch move;
  move.timers = {{"c-1", "j", At(200)}, {"c-2", "j", std::nullopt}};
  this->CommitOk(move);
  EXPECT_EQ(this->DueKeys(At(150)), (std::vector<std::string>{"c-1/k", "c-3/j", "c-4/j"}));
  EXPECT_EQ(this->DueKeys(At(200)).size(), 4u);
}

TYPED_TEST_P(StoreConformanceTest, OutboxInsertWithASeenIdIsANoOp) {
  this->Insert(Message("m-1", At(0)));
  OutboxMessage again = Message("m-1", At(0));
  again.payload = {{"subject", "changed"}};
  this->Insert(again);
  EXPECT_EQ(this->Get("m-1").payload["subject"], "Hello m-1");
  ASSERT_TRUE(this->store_->MarkSent("m-1", At(5)).ok());
  this->Insert(Message("m-1", At(0)));  // a replay after the send must not resend
  OutboxMessage m = this->Get("m-1");
  EXPECT_EQ(m.status, MessageStatus::kSent);
  EXPECT_EQ(m.sent_at, At(5));
  EXPECT_TRUE(this->ClaimIds(At(100)).empty());
  EXPECT_FALSE(this->store_->GetMessage("m-2")->has_value());
}

// Commit tells which messages it inserted: a daemon hands only those to its lanes in memory.
TYPED_TEST_P(StoreConformanceTest, CommitReportsTheMessagesItInserted) {
  this->Insert(Message("m-old", At(0)));
  Batch b;
  b.outbox = {Message("m-new", At(0)), Message("m-old", At(0)), Message("m-z", At(0)),
              Message("m-new", At(0))};
  b.outbox[3].payload = {{"subject", "a repeat"}};
  std::vector<size_t> inserted = {99};
  Status s = this->store_->Commit(b, &inserted);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(inserted, (std::vector<size_t>{0, 2}));
  EXPECT_EQ(this->Get("m-new").payload["subject"], "Hello m-new");
  // Again: every id is in the outbox now.
  ASSERT_TRUE(this->store_->Commit(b, &inserted).ok());
  EXPECT_TRUE(inserted.empty());
  // A failed commit inserted nothing.
  Batch conflict;
  conflict.outbox = {Message("m-lost", At(0))};
  conflict.states.push_back({"c-1", "j", JourneyState{}, int64_t{5}});
  inserted = {7};
  EXPECT_FALSE(this->store_->Commit(conflict, &inserted).ok());
  EXPECT_TRUE(inserted.empty());
  EXPECT_FALSE(this->store_->GetMessage("m-lost")->has_value());
}

// A message may be inserted already claimed (attempts 1, leased): no claim takes it before its
// lease runs out, as if ClaimDue had claimed it at once.
TYPED_TEST_P(StoreConformanceTest, AMessageInsertedClaimedWaitsOutItsLease) {
  OutboxMessage m = Message("m-1", At(0));
  m.attempts = 1;
  m.not_before = At(300);
  this->Insert(m);
  this->Insert(Message("m-2", At(0)));
  EXPECT_EQ(this->ClaimIds(At(10)), (std::vector<std::string>{"m-2"}));
  EXPECT_EQ(this->Get("m-1").attempts, 1);
  // m-2 is due again after its own lease (40), m-1 after the one it was inserted with.
  EXPECT_EQ(this->ClaimIds(At(300)), (std::vector<std::string>{"m-2", "m-1"}));
  EXPECT_EQ(this->Get("m-1").attempts, 2);
}

// A payload comes back exactly as it was written, whatever the store does with its parts.
TYPED_TEST_P(StoreConformanceTest, OutboxPayloadsRoundTrip) {
  const std::vector<json> payloads = {
      {{"subject", "Ann, \"quoted\""},
       {"html", "<p class=\"x\">Dobr\u00fd den,\n\tAnn \\ <a href='y'>link</a></p>"},
       {"links", {"a", "b"}}},
      {{"html", ""}},
      {{"html", 42}, {"text", "not a body"}},
      {{"text", "an SMS"}},
      json::object(),
  };
  for (size_t i = 0; i < payloads.size(); ++i) {
    OutboxMessage m = Message("m-" + std::to_string(i), At(0));
    m.payload = payloads[i];
    this->Insert(m);
  }
  for (size_t i = 0; i < payloads.size(); ++i) {
    EXPECT_EQ(this->Get("m-" + std::to_string(i)).payload, payloads[i]) << i;
  }
  auto claimed = this->store_->ClaimDue(At(0), 10, Seconds(30), "email");
  ASSERT_TRUE(claimed.ok());
  ASSERT_EQ(claimed->size(), payloads.size());
  for (const OutboxMessage& m : *claimed) {
    EXPECT_EQ(m.payload, payloads[std::stoul(m.id.substr(2))]) << m.id;
  }
  auto listed = this->store_->ListMessages(MessageStatus::kPending, 10);
  ASSERT_TRUE(listed.ok());
  for (const OutboxMessage& m : *listed) {
    EXPECT_EQ(m.payload, payloads[std::stoul(m.id.substr(2))]) << m.id;
  }
}

TYPED_TEST_P(StoreConformanceTest, ClaimDueRespectsNotBeforeAndLeases) {
  // Written in id order, so that ties mean the same in every store (SQLite takes them in the
  // order they were written, the others by id: SqliteStoreTest.TiesAreClaimedInTheOrderWritten).
  this->Insert(Message("m-a", At(0)));
  this->Insert(Message("m-b", At(0)));
  this->Insert(Message("m-late", At(60)));
  EXPECT_EQ(this->ClaimIds(At(0), 1), (std::vector<std::string>{"m-a"}));
  EXPECT_EQ(this->ClaimIds(At(0)), (std::vector<std::string>{"m-b"}));  // m-a is leased
  OutboxMessage a = this->Get("m-a");
  EXPECT_EQ(a.attempts, 1);
  EXPECT_EQ(a.status, MessageStatus::kPending);
  EXPECT_TRUE(this->ClaimIds(At(29)).empty());
  // The dispatcher died: the lease runs out and the same message is claimed again.
  EXPECT_EQ(this->ClaimIds(At(30)), (std::vector<std::string>{"m-a", "m-b"}));
  EXPECT_EQ(this->Get("m-a").attempts, 2);
  // Leased until 60, as m-late's not_before: a tie.
  EXPECT_EQ(this->ClaimIds(At(60)), (std::vector<std::string>{"m-a", "m-b", "m-late"}));
}

TYPED_TEST_P(StoreConformanceTest, UpsertProfileRecordedAppendsTheChangeWithIt) {
  Store& store = *this->store_;
  NewEvent change;
  change.customer = "c-1";
  change.at = At(5);
  change.body = {{"customer_id", "c-1"}, {"type", "$profile"}};
  ASSERT_TRUE(store.UpsertProfileRecorded("c-1", {{"email", "a@example.com"}}, change).ok());
  auto pending = store.PendingEvents("c-1", 10);
  ASSERT_EQ(pending->size(), 1u);
  EXPECT_TRUE((*pending)[0].body["before"].is_null());
  EXPECT_EQ((*pending)[0].body["type"], "$profile");
  // No change: nothing appended.
  ASSERT_TRUE(store.UpsertProfileRecorded("c-1", {{"email", "a@example.com"}}, change).ok());
  EXPECT_EQ(store.PendingEvents("c-1", 10)->size(), 1u);
  ASSERT_TRUE(store.UpsertProfileRecorded("c-1", {{"email", "b@example.com"}}, change).ok());
  pending = store.PendingEvents("c-1", 10);
  ASSERT_EQ(pending->size(), 2u);
  EXPECT_EQ((*pending)[1].body["before"]["email"], "a@example.com");
  EXPECT_EQ((**store.GetProfile("c-1"))["email"], "b@example.com");
}

TYPED_TEST_P(StoreConformanceTest, ClaimDueByChannel) {
  OutboxMessage sms = Message("m-sms", At(0));
  sms.channel = "sms";
  this->Insert(sms);
  this->Insert(Message("m-email", At(1)));
  OutboxMessage hook = Message("m-hook", At(0));
  hook.channel = "webhook";
  this->Insert(hook);
  EXPECT_EQ(this->ClaimIds(At(5), 100, "email"), (std::vector<std::string>{"m-email"}));
  EXPECT_EQ(this->ClaimIds(At(5), 100, "alert"), (std::vector<std::string>{}));
  EXPECT_EQ(this->ClaimIds(At(5), 100, "sms"), (std::vector<std::string>{"m-sms"}));
  EXPECT_EQ(this->ClaimIds(At(5)), (std::vector<std::string>{"m-hook"}));  // the others leased
}

TYPED_TEST_P(StoreConformanceTest, RetryAndDeadLetters) {
  Store& store = *this->store_;
  this->Insert(Message("m-1", At(0)));
  this->Insert(Message("m-2", At(0)));
  ASSERT_EQ(this->ClaimIds(At(0)).size(), 2u);
  ASSERT_TRUE(store.MarkRetry("m-1", At(120), "421 try later").ok());
  ASSERT_TRUE(store.MarkSent("m-2", At(1)).ok());
  OutboxMessage m = this->Get("m-1");
  EXPECT_EQ(m.status, MessageStatus::kPending);
  EXPECT_EQ(m.not_before, At(120));
  EXPECT_EQ(m.last_error, "421 try later");
  EXPECT_TRUE(this->ClaimIds(At(119)).empty());
  EXPECT_EQ(this->ClaimIds(At(120)), (std::vector<std::string>{"m-1"}));
  ASSERT_TRUE(store.MarkDead("m-1", "550 no such user").ok());
  EXPECT_TRUE(this->ClaimIds(At(1000)).empty());
  auto dead = store.ListMessages(MessageStatus::kDead, 10);
  ASSERT_TRUE(dead.ok());
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].id, "m-1");
  EXPECT_EQ((*dead)[0].last_error, "550 no such user");
  EXPECT_EQ((*dead)[0].attempts, 2);
  EXPECT_EQ(store.ListMessages(MessageStatus::kSent, 10)->size(), 1u);
  EXPECT_EQ(store.MarkSent("nope", At(0)).error().code, "not_found");
  EXPECT_EQ(store.MarkRetry("nope", At(0), "x").error().code, "not_found");
  EXPECT_EQ(store.MarkDead("nope", "x").error().code, "not_found");
}

TYPED_TEST_P(StoreConformanceTest, CancelAffectsOnlyPendingMessages) {
  this->Insert(Message("m-1", At(0)));
  this->Insert(Message("m-2", At(0)));
  ASSERT_TRUE(this->store_->MarkSent("m-2", At(0)).ok());
  Batch b;
  b.cancel_messages = {"m-1", "m-2", "unknown"};
  this->CommitOk(b);
  EXPECT_EQ(this->Get("m-1").status, MessageStatus::kCancelled);
  EXPECT_EQ(this->Get("m-2").status, MessageStatus::kSent);
  EXPECT_TRUE(this->ClaimIds(At(100)).empty());
}

TYPED_TEST_P(StoreConformanceTest, MarkCancelledRecordsTheReason) {
  Store& store = *this->store_;
  this->Insert(Message("m-claimed", At(0)));
  this->Insert(Message("m-later", At(50)));
  this->Insert(Message("m-sent", At(0)));
  ASSERT_EQ(this->ClaimIds(At(0)), (std::vector<std::string>{"m-claimed", "m-sent"}));
  ASSERT_TRUE(store.MarkSent("m-sent", At(1)).ok());

  ASSERT_TRUE(store.MarkCancelled("m-claimed", "consent withdrawn").ok());
  ASSERT_TRUE(store.MarkCancelled("m-later", "frequency cap").ok());
  OutboxMessage claimed = this->Get("m-claimed");
  EXPECT_EQ(claimed.status, MessageStatus::kCancelled);
  EXPECT_EQ(claimed.last_error, "consent withdrawn");
  EXPECT_EQ(claimed.attempts, 1);
  EXPECT_EQ(this->Get("m-later").last_error, "frequency cap");
  EXPECT_TRUE(this->ClaimIds(At(1000)).empty());  // neither comes back after its lease

  // A message already sent stays sent: the cancellation came too late.
  ASSERT_TRUE(store.MarkCancelled("m-sent", "consent withdrawn").ok());
  EXPECT_EQ(this->Get("m-sent").status, MessageStatus::kSent);
  EXPECT_EQ(this->Get("m-sent").last_error, "");

  auto cancelled = store.ListMessages(MessageStatus::kCancelled, 10);
  ASSERT_TRUE(cancelled.ok());
  ASSERT_EQ(cancelled->size(), 2u);
  EXPECT_EQ((*cancelled)[0].id, "m-claimed");
  EXPECT_EQ((*cancelled)[1].id, "m-later");
  EXPECT_EQ(store.MarkCancelled("nope", "x").error().code, "not_found");
}

TYPED_TEST_P(StoreConformanceTest, MessageCountsByChannelAndStatus) {
  Store& store = *this->store_;
  auto message = [](const std::string& id, const std::string& journey, const std::string& channel) {
    OutboxMessage m = Message(id, At(0));
    m.journey = journey;
    m.channel = channel;
    return m;
  };
  Batch b;
  b.outbox = {message("w-1", "welcome", "email"),    message("w-2", "welcome", "email"),
              message("w-3", "welcome", "email"),    message("w-4", "welcome", "sms"),
              message("o-1", "onboarding", "email"), message("o-2", "onboarding", "webhook")};
  this->CommitOk(b);
  ASSERT_TRUE(store.MarkSent("w-1", At(1)).ok());
  ASSERT_TRUE(store.MarkSent("w-2", At(1)).ok());
  ASSERT_TRUE(store.MarkDead("w-4", "invalid number").ok());
  ASSERT_TRUE(store.MarkCancelled("o-1", "consent withdrawn").ok());

  using Counts = std::map<std::string, int64_t>;
  EXPECT_EQ(*store.MessageCounts("welcome"),
            (Counts{{"email.sent", 2}, {"email.pending", 1}, {"sms.dead", 1}}));
  EXPECT_EQ(*store.MessageCounts("onboarding"),
            (Counts{{"email.cancelled", 1}, {"webhook.pending", 1}}));
  EXPECT_EQ(*store.MessageCounts(""), (Counts{{"email.sent", 2},
                                              {"email.pending", 1},
                                              {"email.cancelled", 1},
                                              {"sms.dead", 1},
                                              {"webhook.pending", 1}}));
  EXPECT_TRUE(store.MessageCounts("unknown")->empty());
}

TYPED_TEST_P(StoreConformanceTest, RecentSendsAreWindowedPerCustomer) {
  Batch b;
  b.sends = {{"c-1", {"email", At(-100)}},
             {"c-1", {"sms", At(0)}},
             {"c-1", {"email", At(-50)}},
             {"c-2", {"email", At(0)}}};
  this->CommitOk(b);
  auto sends = this->store_->RecentSends("c-1", At(-50));
  ASSERT_TRUE(sends.ok());
  ASSERT_EQ(sends->size(), 2u);
  EXPECT_EQ((*sends)[0].channel, "email");
  EXPECT_EQ((*sends)[0].at, At(-50));
  EXPECT_EQ((*sends)[1].channel, "sms");
  EXPECT_EQ(this->store_->RecentSends("c-1", At(-1000))->size(), 3u);
  EXPECT_TRUE(this->store_->RecentSends("c-3", At(-1000))->empty());
}

TYPED_TEST_P(StoreConformanceTest, RoutingAndJourneyCountersAccumulate) {
  Batch b;
  b.routing.round_robin["prague"] = 1;
  b.routing.load["rep_anna"] = 1;
  b.counters = {{"welcome", "entered", 1}, {"welcome", "sent.email", 2}};
  this->CommitOk(b);
  b.routing.load["rep_anna"] = -1;
  b.routing.load["rep_bob"] = 1;
  this->CommitOk(b);
  RoutingSnapshot r = *this->store_->GetRouting();
  EXPECT_EQ(r.round_robin, (std::map<std::string, int64_t>{{"prague", 2}}));
  EXPECT_EQ(r.load, (std::map<std::string, int64_t>{{"rep_anna", 0}, {"rep_bob", 1}}));
  EXPECT_EQ(*this->store_->JourneyCounters("welcome"),
            (std::map<std::string, int64_t>{{"entered", 2}, {"sent.email", 4}}));
  EXPECT_TRUE(this->store_->JourneyCounters("other")->empty());
}

TYPED_TEST_P(StoreConformanceTest, TimelineIsNewestFirst) {
  Batch b;
  b.timeline = {{0, "c-1", At(0), "event", {{"n", 1}}},
                {0, "c-1", At(10), "sent", {{"n", 2}}},
                {0, "c-1", At(10), "goal", {{"n", 3}}},
                {0, "c-1", At(5), "step", {{"n", 4}}},
                {0, "c-2", At(7), "event", {{"n", 5}}}};
  this->CommitOk(b);
  auto t = this->store_->Timeline("c-1", 10);
  ASSERT_TRUE(t.ok());
  std::vector<int> order;
  for (const auto& e : *t) order.push_back(e.data["n"].template get<int>());
  EXPECT_EQ(order, (std::vector<int>{3, 2, 4, 1}));
  EXPECT_EQ((*t)[0].kind, "goal");
  EXPECT_EQ((*t)[0].at, At(10));
  EXPECT_EQ(this->store_->Timeline("c-1", 2)->size(), 2u);
}

TYPED_TEST_P(StoreConformanceTest, JourneyVersionsAreRecordedOnce) {
  Store& store = *this->store_;
  auto version = [](const std::string& journey, int64_t v, const std::string& fingerprint) {
    return JourneyVersion{journey,
                          v,
                          fingerprint,
                          "journeys/" + journey + ".itin",
                          "journey " + journey + " v" + std::to_string(v),
                          At(v)};
  };
  EXPECT_TRUE(store.ListJourneyVersions()->empty());
  ASSERT_TRUE(store.SaveJourneyVersion(version("welcome", 1, "aaaa")).ok());
  JourneyVersion reloaded = version("welcome", 1, "aaaa");
  reloaded.file = "elsewhere.itin";
  reloaded.loaded_at = At(500);
  EXPECT_TRUE(store.SaveJourneyVersion(reloaded).ok());  // the same content again: a no-op
  JourneyVersion changed = version("welcome", 1, "bbbb");
  changed.source = "journey welcome, edited";
  Status conflict = store.SaveJourneyVersion(changed);
  ASSERT_FALSE(conflict.ok());
  EXPECT_EQ(conflict.error().code, "conflict");
  EXPECT_EQ(conflict.error().message,
            "journey welcome version 1 was loaded before with other content");
  for (const auto& v : {version("welcome", 10, "cccc"), version("welcome", 2, "dddd"),
                        version("alpha", 1, "eeee")}) {
    ASSERT_TRUE(store.SaveJourneyVersion(v).ok());
  }

  auto all = store.ListJourneyVersions();
  ASSERT_TRUE(all.ok());
  std::vector<std::string> keys;
  for (const auto& v : *all) keys.push_back(v.journey + "/" + std::to_string(v.version));
  EXPECT_EQ(keys, (std::vector<std::string>{"alpha/1", "welcome/1", "welcome/2", "welcome/10"}));
  const JourneyVersion& first = (*all)[1];  // as first saved, untouched by the later calls
  EXPECT_EQ(first.fingerprint, "aaaa");
  EXPECT_EQ(first.file, "journeys/welcome.itin");
  EXPECT_EQ(first.source, "journey welcome v1");
  EXPECT_EQ(first.loaded_at, At(1));
  EXPECT_EQ(store.SaveJourneyVersion(version("", 1, "ffff")).error().code, "invalid_argument");
}

TYPED_TEST_P(StoreConformanceTest, AFailedBatchLeavesNothing) {
  Store& store = *this->store_;
  ASSERT_TRUE(store.AppendEvents({Event("e-1", "c-1")}).ok());
  Batch seed;
  seed.states.push_back({"c-9", "welcome", SampleState("c-9", "seed"), 0});
  this->CommitOk(seed);

  Batch b;
  b.profiles.push_back({"c-1", {{"email", "ann@example.com"}}});
  b.states.push_back({"c-1", "welcome", SampleState("c-1", "x"), 0});
  b.timers.push_back({"c-1", "welcome", At(0)});
  b.processed_events.push_back(store.PendingEvents("c-1", 1)->at(0).seq);
  b.outbox.push_back(Message("m-1", At(0)));
  b.sends.push_back({"c-1", {"email", At(0)}});
  b.routing.load["rep_anna"] = 1;
  b.timeline.push_back({0, "c-1", At(0), "sent", json::object()});
  b.counters.push_back({"welcome", "entered", 1});
  b.states.push_back({"c-9", "welcome", SampleState("c-9", "stale"), 0});  // conflicts
  Status s = store.Commit(b);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, "conflict");

  EXPECT_FALSE(store.GetProfile("c-1")->has_value());
  EXPECT_FALSE(store.GetState("c-1", "welcome")->has_value());
  EXPECT_EQ(ToJson((*store.GetState("c-9", "welcome"))->state), ToJson(SampleState("c-9", "seed")));
  EXPECT_TRUE(this->DueKeys(At(1000)).empty());
  EXPECT_EQ(store.PendingEvents("c-1", 10)->size(), 1u);
  EXPECT_FALSE(store.GetMessage("m-1")->has_value());
  EXPECT_TRUE(store.RecentSends("c-1", At(-1000))->empty());
  EXPECT_TRUE(store.GetRouting()->load.empty());
  EXPECT_TRUE(store.Timeline("c-1", 10)->empty());
  EXPECT_TRUE(store.JourneyCounters("welcome")->empty());

  b.states.pop_back();  // the same batch without the conflict commits whole
  this->CommitOk(b);
  EXPECT_TRUE(store.GetProfile("c-1")->has_value());
  EXPECT_EQ(store.Timeline("c-1", 10)->size(), 1u);
  EXPECT_TRUE(store.PendingEvents("c-1", 10)->empty());

  Batch invalid;
  invalid.profiles.push_back({"c-2", {{"email", "bob@example.com"}}});
  invalid.outbox.push_back(Message("", At(0)));
  EXPECT_EQ(store.Commit(invalid).error().code, "invalid_argument");
  EXPECT_FALSE(store.GetProfile("c-2")->has_value());
}

TYPED_TEST_P(StoreConformanceTest, EraseRemovesTheCustomersData) {
  Store& store = *this->store_;
  for (const std::string c : {"c-1", "c-2"}) {
    ASSERT_TRUE(store.UpsertProfile(c, {{"email", c + "@example.com"}}).ok());
    ASSERT_TRUE(store.AppendEvents({Event("e-" + c, c)}).ok());
    Batch b;
    b.states.push_back({c, "welcome", SampleState(c, "x"), 0});
    b.timers.push_back({c, "welcome", At(10)});
    for (const std::string& id : {"m-" + c, "sent-" + c}) {
      OutboxMessage m = Message(id, At(0), c);
      m.payload["html"] = "<p>Hello " + c + "</p>";  // the rendered body goes too
      b.outbox.push_back(m);
    }
    b.sends.push_back({c, {"email", At(0)}});
    b.timeline.push_back({0, c, At(0), "sent", {{"to", c + "@example.com"}}});
    this->CommitOk(b);
    ASSERT_TRUE(store.MarkSent("sent-" + c, At(1)).ok());
  }
  ASSERT_TRUE(store.EraseCustomer("c-1").ok());
  EXPECT_FALSE(store.GetProfile("c-1")->has_value());
  EXPECT_TRUE(store.PendingEvents("c-1", 10)->empty());
  EXPECT_TRUE(store.ListStates("c-1")->empty());
  EXPECT_EQ(this->DueKeys(At(100)), (std::vector<std::string>{"c-2/welcome"}));
  EXPECT_TRUE(store.RecentSends("c-1", At(-1000))->empty());
  EXPECT_TRUE(store.Timeline("c-1", 10)->empty());
  EXPECT_EQ(*store.InboxCustomers(10, PartitionSet()), (std::vector<std::string>{"c-2"}));
  OutboxMessage pending = this->Get("m-c-1");
  EXPECT_EQ(pending.status, MessageStatus::kCancelled);
  EXPECT_EQ(pending.recipient, "");
  EXPECT_EQ(pending.payload, json::object());
  OutboxMessage sent = this->Get("sent-c-1");
  EXPECT_EQ(sent.status, MessageStatus::kSent);
  EXPECT_EQ(sent.payload, json::object());
  EXPECT_EQ(this->ClaimIds(At(100)), (std::vector<std::string>{"m-c-2"}));
  // The other customer is untouched.
  EXPECT_TRUE(store.GetProfile("c-2")->has_value());
  EXPECT_EQ(store.ListStates("c-2")->size(), 1u);
  EXPECT_EQ(store.Timeline("c-2", 10)->size(), 1u);
  EXPECT_EQ(this->Get("m-c-2").recipient, "ann@example.com");
  EXPECT_TRUE(store.EraseCustomer("c-unknown").ok());
}

TYPED_TEST_P(StoreConformanceTest, CommitsFromManyThreadsAllLand) {
  constexpr int kThreads = 4, kCommits = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCommits; ++i) {
        Batch b;
        b.counters.push_back({"welcome", "entered", 1});
        b.outbox.push_back(Message("m-" + std::to_string(t) + "-" + std::to_string(i), At(0)));
        EXPECT_TRUE(this->store_->Commit(b).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(this->store_->JourneyCounters("welcome").value()["entered"], kThreads * kCommits);
  EXPECT_EQ(this->ClaimIds(At(0), 1000).size(), static_cast<size_t>(kThreads * kCommits));
}

TYPED_TEST_P(StoreConformanceTest, InboxAndDueCustomersFilterByPartition) {
  Store& store = *this->store_;
  std::vector<std::string> customers;
  for (int i = 0; i < 40; ++i) customers.push_back("c-" + std::to_string(i));
  std::vector<NewEvent> events;
  Batch timers;
  for (const auto& c : customers) {
    events.push_back(Event("", c));
    timers.timers.push_back({c, "j", At(10)});
  }
  ASSERT_TRUE(store.AppendEvents(events).ok());
  this->CommitOk(timers);

  const int mine = PartitionOf("c-1");
  std::string other;  // a customer in another partition
  for (const auto& c : customers) {
    if (PartitionOf(c) != mine) {
      other = c;
      break;
    }
  }
  ASSERT_FALSE(other.empty());
  auto in = [](const std::vector<int>& parts, const std::string& c) {
    return std::find(parts.begin(), parts.end(), PartitionOf(c)) != parts.end();
  };
  for (const std::vector<int>& parts :
       {std::vector<int>{mine}, std::vector<int>{mine, PartitionOf(other)}}) {
    std::vector<std::string> inbox;  // in arrival order
    std::vector<std::string> due;    // by customer: the wake times tie
    for (const auto& c : customers) {
      if (in(parts, c)) inbox.push_back(c);
    }
    due = inbox;
    std::sort(due.begin(), due.end());
    EXPECT_EQ(*store.InboxCustomers(100, PartitionSet::Of(parts)), inbox);
    auto timers_due = store.DueCustomers(At(10), 100, PartitionSet::Of(parts));
    ASSERT_TRUE(timers_due.ok());
    std::vector<std::string> got;
    for (const auto& d : *timers_due) got.push_back(d.customer);
    EXPECT_EQ(got, due);
    EXPECT_EQ(store.InboxCustomers(1, PartitionSet::Of(parts))->size(), 1u);
  }
  EXPECT_TRUE(store.InboxCustomers(100, PartitionSet::Of({}))->empty());
  EXPECT_TRUE(store.DueCustomers(At(10), 100, PartitionSet::Of({}))->empty());
  EXPECT_EQ(store.InboxCustomers(100, PartitionSet())->size(), customers.size());
  EXPECT_EQ(store.DueCustomers(At(10), 100, PartitionSet())->size(), customers.size());
}

TYPED_TEST_P(StoreConformanceTest, RepeatedKeysInOneBatchApplyInOrder) {
  Store& store = *this->store_;
  Batch b;
  b.states.push_back({"c-1", "welcome", SampleState("c-1", "one"), 0});
  b.states.push_back({"c-1", "welcome", SampleState("c-1", "two"), 1});
  b.timers = {{"c-1", "welcome", At(10)},
              {"c-1", "welcome", std::nullopt},
              {"c-2", "welcome", std::nullopt},
              {"c-2", "welcome", At(20)}};
  b.outbox = {Message("m-1", At(0)), Message("m-1", At(5))};
  b.counters = {{"welcome", "entered", 1}, {"welcome", "entered", 2}};
  this->CommitOk(b);
  auto state = *store.GetState("c-1", "welcome");
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ(state->version, 2);
  EXPECT_EQ(ToJson(state->state), ToJson(SampleState("c-1", "two")));
  EXPECT_EQ(this->DueKeys(At(100)), (std::vector<std::string>{"c-2/welcome"}));
  EXPECT_EQ(this->Get("m-1").not_before, At(0));  // the first insert counts
  EXPECT_EQ(store.JourneyCounters("welcome").value()["entered"], 3);

  Batch chain_broken;  // the second write expects a version the first does not leave
  chain_broken.states.push_back({"c-1", "welcome", SampleState("c-1", "three"), 2});
  chain_broken.states.push_back({"c-1", "welcome", SampleState("c-1", "four"), 2});
  EXPECT_EQ(store.Commit(chain_broken).error().code, "conflict");
  EXPECT_EQ((*store.GetState("c-1", "welcome"))->version, 2);
}

// LoadCustomers answers what the single-customer calls answer, for every customer asked.
TYPED_TEST_P(StoreConformanceTest, LoadCustomersMatchesTheSingleCustomerReads) {
  Store& store = *this->store_;
  ASSERT_TRUE(store.UpsertProfile("c-1", {{"email", "ann@example.com"}}).ok());
  ASSERT_TRUE(store.UpsertProfile("c-2", {{"email", "bob@example.com"}}).ok());
  ASSERT_TRUE(store
                  .AppendEvents({Event("e-1", "c-1", 1), Event("e-2", "c-2", 2),
                                 Event("e-3", "c-1", 3), Event("", "c-1", 4)})
                  .ok());
  Batch b;
  b.states.push_back({"c-1", "welcome", SampleState("c-1", "w"), 0});
  b.states.push_back({"c-1", "another", SampleState("c-1", "a"), 0});
  b.sends = {{"c-1", {"email", At(-100)}}, {"c-1", {"sms", At(0)}}, {"c-2", {"email", At(0)}}};
  this->CommitOk(b);
  auto first = store.PendingEvents("c-1", 10);
  ASSERT_TRUE(first.ok());
  Batch done;
  done.processed_events.push_back((*first)[0].seq);  // e-1 leaves the inbox
  this->CommitOk(done);

  const std::vector<std::string> ids = {"c-1", "c-2", "c-3"};
  auto loaded =
      store.LoadCustomers(ids, {.sends_since = At(-50), .states = true, .events_per_customer = 1});
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  ASSERT_EQ(loaded->size(), 3u);
  for (const std::string& c : ids) {
    const CustomerSnapshot& snap = loaded->at(c);
    auto profile = store.GetProfile(c);
    EXPECT_EQ(snap.profile.has_value(), profile->has_value()) << c;
    if (snap.profile && profile->has_value()) {
      EXPECT_EQ(*snap.profile, **profile) << c;
    }
    auto sends = *store.RecentSends(c, At(-50));
    ASSERT_EQ(snap.sends.size(), sends.size()) << c;
    for (size_t i = 0; i < sends.size(); ++i) {
      EXPECT_EQ(snap.sends[i].channel, sends[i].channel);
      EXPECT_EQ(snap.sends[i].at, sends[i].at);
    }
    auto states = *store.ListStates(c);
    ASSERT_EQ(snap.states.size(), states.size()) << c;
    for (size_t i = 0; i < states.size(); ++i) {
      EXPECT_EQ(snap.states[i].journey, states[i].journey);
      EXPECT_EQ(snap.states[i].version, states[i].version);
      EXPECT_EQ(ToJson(snap.states[i].state), ToJson(states[i].state));
    }
    auto pending = *store.PendingEvents(c, 1);
    ASSERT_EQ(snap.pending.size(), pending.size()) << c;
    for (size_t i = 0; i < pending.size(); ++i) {
      EXPECT_EQ(snap.pending[i].seq, pending[i].seq);
      EXPECT_EQ(snap.pending[i].id, pending[i].id);
      EXPECT_EQ(snap.pending[i].customer, c);
      EXPECT_EQ(snap.pending[i].at, pending[i].at);
      EXPECT_EQ(snap.pending[i].body, pending[i].body);
    }
  }
  // Concretely: c-1's oldest pending event is e-3 (e-1 was processed; one per customer asked).
  ASSERT_EQ(loaded->at("c-1").pending.size(), 1u);
  EXPECT_EQ(loaded->at("c-1").pending[0].id, "e-3");
  EXPECT_EQ(loaded->at("c-1").states.size(), 2u);
  EXPECT_EQ(loaded->at("c-1").sends.size(), 1u);
  EXPECT_FALSE(loaded->at("c-3").profile.has_value());
  EXPECT_TRUE(loaded->at("c-3").states.empty());
  EXPECT_TRUE(store.LoadCustomers({}, {.sends_since = At(0), .events_per_customer = 10})->empty());
}

// A late outcome from a lane that lost its claim never brings a decided message back.
TYPED_TEST_P(StoreConformanceTest, RetryAndDeadChangeOnlyPendingMessages) {
  this->Insert(Message("m-sent", At(0)));
  this->Insert(Message("m-cancelled", At(0)));
  Store& store = *this->store_;
  ASSERT_TRUE(store.MarkSent("m-sent", At(1)).ok());
  ASSERT_TRUE(store.MarkCancelled("m-cancelled", "consent withdrawn").ok());
  EXPECT_TRUE(store.MarkRetry("m-sent", At(5), "timeout").ok());
  EXPECT_TRUE(store.MarkDead("m-sent", "550").ok());
  EXPECT_TRUE(store.MarkRetry("m-cancelled", At(5), "timeout").ok());
  EXPECT_EQ(this->Get("m-sent").status, MessageStatus::kSent);
  EXPECT_EQ(this->Get("m-cancelled").status, MessageStatus::kCancelled);
  EXPECT_EQ(this->Get("m-cancelled").last_error, "consent withdrawn");
  EXPECT_TRUE(this->ClaimIds(At(100)).empty());
  EXPECT_EQ(store.MarkRetry("m-none", At(5), "x").error().code, "not_found");
  EXPECT_EQ(store.MarkDead("m-none", "x").error().code, "not_found");
}

// A dispatcher pass's outcomes land together, each as its Mark* call would record it.
TYPED_TEST_P(StoreConformanceTest, RecordOutcomesAppliesAMixInOneCall) {
  Store& store = *this->store_;
  for (const std::string id : {"m-sent", "m-retry", "m-dead", "m-cancelled", "m-decided"}) {
    this->Insert(Message(id, At(0)));
  }
  ASSERT_EQ(this->ClaimIds(At(0)).size(), 5u);
  ASSERT_TRUE(store.MarkSent("m-decided", At(1)).ok());
  const std::vector<OutboxOutcome> outcomes = {
      {"m-sent", OutboxOutcome::kSent, At(2), ""},
      {"m-retry", OutboxOutcome::kRetry, At(120), "421 try later"},
      {"m-dead", OutboxOutcome::kDead, Time{}, "550 no such user"},
      {"m-cancelled", OutboxOutcome::kCancelled, Time{}, "no_consent"},
      {"m-decided", OutboxOutcome::kRetry, At(5), "timeout"},  // late: the send stands
      {"m-decided", OutboxOutcome::kDead, Time{}, "550"},
  };
  for (int round = 0; round < 2; ++round) {  // the same outcomes again change nothing
    Status s = store.RecordOutcomes(outcomes);
    ASSERT_TRUE(s.ok()) << s.error().code << ": " << s.error().message;
    OutboxMessage sent = this->Get("m-sent");
    EXPECT_EQ(sent.status, MessageStatus::kSent);
    EXPECT_EQ(sent.sent_at, At(2));
    OutboxMessage retry = this->Get("m-retry");
    EXPECT_EQ(retry.status, MessageStatus::kPending);
    EXPECT_EQ(retry.not_before, At(120));
    EXPECT_EQ(retry.last_error, "421 try later");
    EXPECT_EQ(retry.attempts, 1);
    OutboxMessage dead = this->Get("m-dead");
    EXPECT_EQ(dead.status, MessageStatus::kDead);
    EXPECT_EQ(dead.last_error, "550 no such user");
    OutboxMessage cancelled = this->Get("m-cancelled");
    EXPECT_EQ(cancelled.status, MessageStatus::kCancelled);
    EXPECT_EQ(cancelled.last_error, "no_consent");
    OutboxMessage decided = this->Get("m-decided");
    EXPECT_EQ(decided.status, MessageStatus::kSent);
    EXPECT_EQ(decided.sent_at, At(1));
    EXPECT_EQ(decided.last_error, "");
  }
  EXPECT_TRUE(this->ClaimIds(At(119)).empty());
  EXPECT_EQ(this->ClaimIds(At(120)), (std::vector<std::string>{"m-retry"}));
  auto counts = store.MessageCounts("");
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ((*counts)["email.sent"], 2);
  EXPECT_EQ((*counts)["email.dead"], 1);
  EXPECT_EQ((*counts)["email.cancelled"], 1);
  EXPECT_EQ((*counts)["email.pending"], 1);
  EXPECT_TRUE(store.RecordOutcomes({}).ok());
}

// An unknown id fails the whole call: nothing of it is written.
TYPED_TEST_P(StoreConformanceTest, RecordOutcomesIsAllOrNothing) {
  Store& store = *this->store_;
  this->Insert(Message("m-1", At(0)));
  this->Insert(Message("m-2", At(0)));
  Status s = store.RecordOutcomes({{"m-1", OutboxOutcome::kSent, At(1), ""},
                                   {"m-2", OutboxOutcome::kRetry, At(60), "busy"},
                                   {"m-none", OutboxOutcome::kDead, Time{}, "x"}});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, "not_found");
  EXPECT_EQ(this->Get("m-1").status, MessageStatus::kPending);
  EXPECT_FALSE(this->Get("m-1").sent_at.has_value());
  EXPECT_EQ(this->Get("m-2").not_before, At(0));
  EXPECT_EQ(this->Get("m-2").last_error, "");
  EXPECT_EQ(store.RecordOutcomes({{"m-none", OutboxOutcome::kSent, At(1), ""}}).error().code,
            "not_found");
}

// Outcomes of one id in one call apply in order, as the Mark* calls one after the other would.
TYPED_TEST_P(StoreConformanceTest, RecordOutcomesOfOneIdApplyInOrder) {
  Store& store = *this->store_;
  for (const std::string id : {"m-1", "m-2", "m-3"}) this->Insert(Message(id, At(0)));
  Status s = store.RecordOutcomes({
      {"m-1", OutboxOutcome::kRetry, At(5), "first"},
      {"m-2", OutboxOutcome::kRetry, At(7), "451"},
      {"m-3", OutboxOutcome::kSent, At(3), ""},
      {"m-1", OutboxOutcome::kRetry, At(9), "second"},
      {"m-2", OutboxOutcome::kSent, At(8), ""},
      {"m-3", OutboxOutcome::kDead, Time{}, "too late"},
      {"m-1", OutboxOutcome::kCancelled, Time{}, "frequency_cap"},
  });
  ASSERT_TRUE(s.ok()) << s.error().code << ": " << s.error().message;
  OutboxMessage m1 = this->Get("m-1");
  EXPECT_EQ(m1.status, MessageStatus::kCancelled);
  EXPECT_EQ(m1.not_before, At(9));
  EXPECT_EQ(m1.last_error, "frequency_cap");
  OutboxMessage m2 = this->Get("m-2");
  EXPECT_EQ(m2.status, MessageStatus::kSent);
  EXPECT_EQ(m2.sent_at, At(8));
  EXPECT_EQ(m2.not_before, At(7));
  EXPECT_EQ(m2.last_error, "451");
  OutboxMessage m3 = this->Get("m-3");
  EXPECT_EQ(m3.status, MessageStatus::kSent);
  EXPECT_EQ(m3.last_error, "");
}

// The dispatcher's read: without states or events, LoadCustomers reads profiles and sends only.
TYPED_TEST_P(StoreConformanceTest, LoadCustomersWithoutEvents) {
  Store& store = *this->store_;
  ASSERT_TRUE(store.UpsertProfile("c-1", {{"email", "ann@example.com"}}).ok());
  ASSERT_TRUE(store.AppendEvents({Event("e-1", "c-1", 1)}).ok());
  Batch b;
  b.states.push_back({"c-1", "welcome", SampleState("c-1", "w"), 0});
  b.sends = {{"c-1", {"email", At(-100)}}, {"c-1", {"email", At(0)}}, {"c-1", {"email", At(0)}}};
  this->CommitOk(b);
  auto loaded = store.LoadCustomers({"c-1", "c-2"}, {.sends_since = At(-50)});
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  ASSERT_EQ(loaded->size(), 2u);
  const CustomerSnapshot& c1 = loaded->at("c-1");
  ASSERT_TRUE(c1.profile.has_value());
  EXPECT_EQ((*c1.profile)["email"], "ann@example.com");
  EXPECT_EQ(c1.sends.size(), 2u);  // both sends at the same instant count
  EXPECT_TRUE(c1.states.empty());
  EXPECT_TRUE(c1.pending.empty());
  EXPECT_FALSE(loaded->at("c-2").profile.has_value());
  EXPECT_TRUE(loaded->at("c-2").pending.empty());
}

REGISTER_TYPED_TEST_SUITE_P(
    StoreConformanceTest, UpsertMergesIntoTheProfile,
    CommitPatchesTheProfileAndKeepsConcurrentUpserts, EventsWithASeenIdAreAcceptedWithoutEffect,
    InboxHoldsEventsUntilMarkedProcessed, ArrivedEventsAreStoredProcessedWithTheirBatch,
    StatesRoundTripWithVersions, DueIndexOrdersByWakeTimeAndHonoursTheLimit,
    OutboxInsertWithASeenIdIsANoOp, ClaimDueRespectsNotBeforeAndLeases, ClaimDueByChannel,
    UpsertProfileRecordedAppendsTheChangeWithIt, RetryAndDeadLetters,
    CancelAffectsOnlyPendingMessages, MarkCancelledRecordsTheReason,
    MessageCountsByChannelAndStatus, RecentSendsAreWindowedPerCustomer,
    RoutingAndJourneyCountersAccumulate, TimelineIsNewestFirst, JourneyVersionsAreRecordedOnce,
    AFailedBatchLeavesNothing, EraseRemovesTheCustomersData, CommitsFromManyThreadsAllLand,
    RetryAndDeadChangeOnlyPendingMessages, LoadCustomersMatchesTheSingleCustomerReads,
    InboxAndDueCustomersFilterByPartition, RepeatedKeysInOneBatchApplyInOrder,
    RecordOutcomesAppliesAMixInOneCall, RecordOutcomesIsAllOrNothing,
    RecordOutcomesOfOneIdApplyInOrder, LoadCustomersWithoutEvents, OutboxPayloadsRoundTrip,
    CommitReportsTheMessagesItInserted, AMessageInsertedClaimedWaitsOutItsLease);

}  // namespace itinera::orch::store_testing

#endif  // ITINERA_TESTS_ORCHESTRATOR_STORE_CONFORMANCE_H_
