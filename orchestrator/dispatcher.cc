#include "orchestrator/dispatcher.h"

#include <algorithm>
#include <deque>
#include <optional>
#include <set>
#include <system_error>

#include "orchestrator/engine.h"
#include "orchestrator/processor.h"
#include "util/log.h"
#include "util/thread_name.h"

namespace itinera::orch {

using connectors::Delivery;
using connectors::Message;
using nlohmann::json;

namespace {

constexpr int kClaimPerConnection = 256;  // the default claim: messages per sender worker
constexpr size_t kRecordEvery = 256;      // outcomes recorded in one transaction, at most
constexpr size_t kReadEvery = 256;        // messages whose customers are read at once

std::string Text(const json& object, const char* key) {
  if (!object.is_object()) return "";
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

Delivery Permanent(std::string error) {
  return Delivery{Delivery::kPermanent, "", std::move(error)};
}

Delivery SendVia(connectors::Connector* connector, const Message& m, const char* what) {
  if (connector == nullptr) return Permanent(std::string("no ") + what + " connector configured");
  return connector->Send(m);
}

}  // namespace

std::string AlertContextText(const json& context) {
  std::string out;
  std::string name = Text(context, "name");
  std::string id = Text(context, "customer_id");
  out += "Customer: " + (name.empty() ? id : name + " (" + id + ")") + "\n";
  std::string contact = Text(context, "email");
  std::string phone = Text(context, "phone");
  if (!phone.empty()) contact += (contact.empty() ? "" : ", ") + phone;
  if (!contact.empty()) out += "Contact: " + contact + "\n";
  if (context.contains("journey")) {
    std::string title = Text(context["journey"], "title");
    out += "Journey: " + (title.empty() ? Text(context["journey"], "id") : title);
    std::string step = Text(context, "step");
    if (!step.empty()) out += " (step " + step + ")";
    out += "\n";
  }
  if (context.contains("last_events") && context["last_events"].is_array() &&
      !context["last_events"].empty()) {
    out += "Last events:\n";
    for (const json& e : context["last_events"]) {
      out += "  " + Text(e, "timestamp") + " " + Text(e, "type");
      if (e.contains("properties") && e["properties"].is_object() && !e["properties"].empty()) {
        out += " " + e["properties"].dump(-1, ' ', false, json::error_handler_t::replace);
      }
      out += "\n";
    }
  }
  return out;
}

// The profiles and recent sends of the email and SMS customers of kReadEvery messages of a pass,
// read once.
struct Dispatcher::CustomerRead {
  std::once_flag once;
  std::map<std::string, CustomerSnapshot> customers;
  std::optional<Error> error;  // the read failed: those messages are retried soon
};

// One claimed batch of a lane being delivered. The workers take messages by `next`; outcomes
// wait in `outcomes` (under `mu`) until a chunk is recorded.
//
// The customers of the pre-send check are read a chunk of kReadEvery messages at a time: the
// first chunk by the first worker to take a message of the pass (a pass claimed ahead is checked
// as of its turn, not its claim), each next one as soon as the chunk before it is begun. So a
// read is never older than the sends of one chunk, and the workers seldom wait for one.
struct Dispatcher::Pass {
  Pass(Lane& lane, std::vector<OutboxMessage> messages, std::chrono::steady_clock::time_point at)
      : lane(lane),
        messages(std::move(messages)),
        started(at),
        reads((this->messages.size() + kReadEvery - 1) / kReadEvery) {}

  Lane& lane;
  const std::vector<OutboxMessage> messages;
  const std::chrono::steady_clock::time_point started;  // the claim: its lease runs from here
  bool queued = false;              // a started lane's: its end is reported to the lane thread
  bool taken = false;               // taken from the processor (Take), not claimed
  std::vector<CustomerRead> reads;  // [i / kReadEvery] for messages[i]
  std::atomic<size_t> next{0};
  std::atomic<int> handled{0};
  std::atomic<size_t> finished{0};  // messages handled or given back
  std::mutex mu;
  std::vector<OutboxOutcome> outcomes;  // reported, not recorded yet
};

const std::vector<std::string>& Dispatcher::Lanes() {
  static const std::vector<std::string> lanes = {"email", "sms", "alert", "webhook"};
  return lanes;
}

Dispatcher::Dispatcher(Store& store, const Clock& clock, const JourneyRegistry& registry,
                       const Directory& directory, DispatcherOptions options,
                       std::function<LaneConnectors(const std::string&)> make)
    : store_(store),
      clock_(clock),
      registry_(registry),
      directory_(directory),
      options_(std::move(options)),
      connections_(std::max(1, options_.connections)),
      make_(std::move(make)),
      rng_(options_.seed != 0 ? options_.seed : std::random_device{}()) {
  for (const std::string& name : Lanes()) {
    auto lane = std::make_unique<Lane>();
    lane->name = name;
    auto rate = options_.rates.find(name);
    lane->rate = rate == options_.rates.end() ? 0 : rate->second;
    lanes_[name] = std::move(lane);
  }
}

Dispatcher::~Dispatcher() { Stop(); }

void Dispatcher::MakeConnectors(Lane& lane) {
  while (static_cast<int>(lane.connectors.size()) < connections_) {
    lane.connectors.push_back(make_(lane.name));
  }
}

void Dispatcher::Start() {
  for (auto& [name, lane] : lanes_) {
    Lane* l = lane.get();
    MakeConnectors(*l);
    l->thread = std::thread([this, l] { Loop(*l); });
  }
}

void Dispatcher::Poke() {
  {
    std::lock_guard lock(mu_);
    for (auto& [name, lane] : lanes_) ++lane->pokes;
  }
  wake_.notify_all();
}

void Dispatcher::Poke(const std::string& lane) {
  auto it = lanes_.find(lane);
  if (it == lanes_.end()) return;
  {
    std::lock_guard lock(mu_);
    ++it->second->pokes;
  }
  wake_.notify_all();
}

void Dispatcher::Stop() {
  {
    std::lock_guard lock(mu_);  // so no waiter checks the flag and then misses the wake-up
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& [name, lane] : lanes_) {
    { std::lock_guard lock(lane->queue_mu); }  // as above, for the lane's own waiters
    lane->ready_cv.notify_all();
  }
  for (auto& [name, lane] : lanes_) {
    if (lane->thread.joinable()) lane->thread.join();
    for (std::thread& worker : lane->workers) worker.join();
    lane->workers.clear();
  }
}

void Dispatcher::Loop(Lane& lane) {
  NameThread("lane " + lane.name);
  while (!stopping_) {
    {
      std::unique_lock lock(lane.queue_mu);
      lane.ready_cv.wait(lock, [&] { return stopping_ || Ready(lane); });
    }
    if (stopping_) break;
    uint64_t seen;
    {
      std::lock_guard lock(mu_);
      seen = lane.pokes;
    }
    Result<std::shared_ptr<Pass>> claimed = Claim(lane);
    if (!claimed.ok()) {
      LogError("dispatcher pass failed", {{"lane", lane.name}, {"error", claimed.error().message}});
    } else if (*claimed != nullptr) {
      std::shared_ptr<Pass> pass = std::move(*claimed);
      if (!Queue(lane, pass)) Work(*pass, lane.connectors[0]);  // no thread: send it here
      continue;
    }
    std::unique_lock lock(mu_);
    // At least 1 ms: an idle lane must sleep between its looks, or it would spin on empty
    // claims.
    const auto idle = std::max(options_.idle_poll, std::chrono::milliseconds(1));
    wake_.wait_for(lock, idle, [&] { return stopping_ || lane.pokes != seen; });
  }
  {
    std::lock_guard lock(lane.queue_mu);
    lane.closed = true;
  }
  lane.work_cv.notify_all();
}

bool Dispatcher::Ready(const Lane& lane) const {
  // How many passes may be unfinished at once: the one being sent, and the next one claimed
  // ahead when the last pass took less than a quarter of the lease. A pass claimed ahead
  // waits for the current one, and its lease runs meanwhile: behind a slow or rate-limited
  // pass it would be given back late, each of its messages an attempt the poorer.
  const int depth = lane.rate <= 0 && lane.quick ? 2 : 1;
  return lane.claims_unfinished < depth;
}

bool Dispatcher::Queue(Lane& lane, std::shared_ptr<Pass> pass) {
  // Only the lane's thread starts workers (Take queues once they run).
  while (lane.workers.size() < static_cast<size_t>(connections_)) {
    LaneConnectors* connectors = &lane.connectors[lane.workers.size()];
    try {
      lane.workers.emplace_back([this, &lane, connectors] { Serve(lane, *connectors); });
    } catch (const std::system_error& e) {
      LogWarn("cannot start a sender worker", {{"lane", lane.name}, {"error", e.what()}});
      break;
    }
  }
  if (lane.workers.empty()) return false;
  const size_t messages = pass->messages.size();
  {
    std::lock_guard lock(lane.queue_mu);
    lane.serving = true;
    pass->queued = true;
    lane.queue.push_back(std::move(pass));
    ++lane.unfinished;
    ++lane.claims_unfinished;
  }
  WakeWorkers(lane, messages);
  return true;
}

void Dispatcher::WakeWorkers(Lane& lane, size_t messages) {
  if (messages >= static_cast<size_t>(connections_)) {
    lane.work_cv.notify_all();
    return;
  }
  for (size_t i = 0; i < messages; ++i) lane.work_cv.notify_one();
}

bool Dispatcher::Takes(const std::string& name) {
  auto it = lanes_.find(name);
  if (it == lanes_.end() || stopping_) return false;
  Lane& lane = *it->second;
  if (lane.rate > 0) return false;
  std::lock_guard lock(lane.queue_mu);
  return lane.serving && !lane.closed && lane.quick && lane.unfinished < connections_;
}

void Dispatcher::Claimed(OutboxMessage& message, Time now) const {
  message.attempts += 1;
  message.not_before = now + options_.lease;
}

void Dispatcher::Take(const std::string& name, std::vector<OutboxMessage> messages,
                      std::chrono::steady_clock::time_point claimed) {
  if (messages.empty()) return;
  Lane& lane = *lanes_.at(name);
  auto pass = std::make_shared<Pass>(lane, std::move(messages), claimed);
  {
    std::lock_guard lock(lane.queue_mu);
    // Until the lane thread closes the lane, its workers are there to take the pass: they
    // leave only once it is closed and the queue is empty.
    if (!lane.closed) {
      pass->queued = true;
      pass->taken = true;
      lane.queue.push_back(pass);
      ++lane.unfinished;
    }
  }
  if (pass->queued) {
    lane.stats->taken += static_cast<int64_t>(pass->messages.size());
    WakeWorkers(lane, pass->messages.size());
    return;
  }
  // Stopped: back to the outbox, due at once, for the next start to claim.
  std::vector<OutboxOutcome> back;
  for (const OutboxMessage& m : pass->messages) {
    back.push_back({m.id, OutboxOutcome::kRetry, clock_.Now(), m.last_error});
  }
  Flush(name, back);
}

void Dispatcher::Serve(Lane& lane, LaneConnectors& connectors) {
  NameThread("send " + lane.name);
  for (;;) {
    std::shared_ptr<Pass> pass;
    {
      std::unique_lock lock(lane.queue_mu);
      for (;;) {
        // A pass whose every message some worker has taken is done with the queue.
        while (!lane.queue.empty() &&
               lane.queue.front()->next.load() >= lane.queue.front()->messages.size()) {
          lane.queue.pop_front();
        }
        if (!lane.queue.empty() || lane.closed) break;
        lane.work_cv.wait(lock);
      }
      if (lane.queue.empty()) return;  // closed, and nothing left to give back
      pass = lane.queue.front();
    }
    Work(*pass, connectors);  // returns once every message of the pass is taken; the loop
                              // above then drops it from the queue
  }
}

int Dispatcher::ClaimSize(const Lane& lane) const {
  int claim = options_.claim > 0 ? options_.claim : kClaimPerConnection * connections_;
  if (lane.rate > 0) {
    // No more than the rate lets the lane send before the pass is late (half the lease): what
    // is given back has used up an attempt.
    double affordable = lane.rate * static_cast<double>(options_.lease.count()) / 4;
    claim = static_cast<int>(std::clamp(affordable, 1.0, static_cast<double>(claim)));
  }
  return claim;
}

Result<std::shared_ptr<Dispatcher::Pass>> Dispatcher::Claim(Lane& lane) {
  const auto started = std::chrono::steady_clock::now();
  const Time now = clock_.Now();
  auto claimed = store_.ClaimDue(now, ClaimSize(lane), options_.lease, lane.name);
  if (!claimed.ok()) return claimed.error();
  if (claimed->empty()) return std::shared_ptr<Pass>();
  lane.stats->claimed += static_cast<int64_t>(claimed->size());
  return std::make_shared<Pass>(lane, std::move(*claimed), started);
}

Result<int> Dispatcher::RunLane(const std::string& name) {
  Lane& lane = *lanes_.at(name);
  MakeConnectors(lane);
  Result<std::shared_ptr<Pass>> claimed = Claim(lane);
  if (!claimed.ok()) return claimed.error();
  if (*claimed == nullptr) return 0;
  Pass& pass = **claimed;
  const size_t workers = std::min(static_cast<size_t>(connections_), pass.messages.size());
  std::vector<std::thread> threads;
  for (size_t i = 1; i < workers; ++i) {
    try {
      threads.emplace_back([this, &pass, &lane, i] { Work(pass, lane.connectors[i]); });
    } catch (const std::system_error& e) {  // no thread to be had: fewer workers do it all
      LogWarn("cannot start a sender worker", {{"lane", name}, {"error", e.what()}});
      break;
    }
  }
  Work(pass, lane.connectors[0]);
  for (std::thread& t : threads) t.join();
  return pass.handled.load();
}

const Dispatcher::CustomerRead& Dispatcher::ReadCustomers(Pass& pass, size_t chunk) {
  CustomerRead& read = pass.reads[chunk];
  std::call_once(read.once, [&] {
    const Time now = clock_.Now();
    std::vector<std::string> customers;
    std::set<std::string> seen;
    const size_t end = std::min(pass.messages.size(), (chunk + 1) * kReadEvery);
    for (size_t i = chunk * kReadEvery; i < end; ++i) {
      const OutboxMessage& m = pass.messages[i];
      if ((m.channel == "email" || m.channel == "sms") && !m.payload.contains("render_error") &&
          seen.insert(m.customer).second) {
        customers.push_back(m.customer);
      }
    }
    if (customers.empty()) return;
    auto loaded = store_.LoadCustomers(customers, {.sends_since = now - kSendHistory});
    if (loaded.ok()) {
      read.customers = std::move(*loaded);
    } else {
      read.error = loaded.error();
    }
  });
  return read;
}

void Dispatcher::Work(Pass& pass, LaneConnectors& connectors) {
  for (size_t i = pass.next++; i < pass.messages.size(); i = pass.next++) {
    const OutboxMessage& m = pass.messages[i];
    const size_t chunk = i / kReadEvery;
    // A pass taken from the processor is not read again: the processor decided it on its own
    // read, milliseconds ago, with the same rules (Deliver).
    static const CustomerRead kUnread;
    const CustomerRead& customers = pass.taken ? kUnread : ReadCustomers(pass, chunk);
    Throttle(pass.lane);
    // Give back what we will not get to: on stop, or when a send started now might outlast the
    // lease (another daemon could then claim and send it too). Checked after the rate limit's
    // wait, right before the send.
    bool late = std::chrono::steady_clock::now() - pass.started > Lease() / 2;
    if (stopping_ || late) {
      Report(pass, {m.id, OutboxOutcome::kRetry, clock_.Now(), m.last_error});
    } else {
      Deliver(pass, connectors, m, customers);
      ++pass.handled;
    }
    // Begun a chunk: read the next one now, so its first sends need not wait for it.
    if (!pass.taken && i % kReadEvery == 0 && chunk + 1 < pass.reads.size()) {
      ReadCustomers(pass, chunk + 1);
    }
    if (++pass.finished < pass.messages.size()) continue;
    // The pass's last message: every outcome has been reported.
    std::vector<OutboxOutcome> rest;
    {
      std::lock_guard lock(pass.mu);
      rest.swap(pass.outcomes);
    }
    Flush(pass.lane.name, rest);
    if (pass.queued) {
      {
        std::lock_guard lock(pass.lane.queue_mu);
        --pass.lane.unfinished;
        if (!pass.taken) --pass.lane.claims_unfinished;
        pass.lane.quick = std::chrono::steady_clock::now() - pass.started < Lease() / 4;
      }
      pass.lane.ready_cv.notify_one();
    }
  }
}

void Dispatcher::Report(Pass& pass, OutboxOutcome outcome) {
  std::vector<OutboxOutcome> chunk;
  {
    std::lock_guard lock(pass.mu);
    pass.outcomes.push_back(std::move(outcome));
    if (pass.outcomes.size() < kRecordEvery) return;
    chunk.swap(pass.outcomes);
  }
  Flush(pass.lane.name, chunk);
}

void Dispatcher::Flush(const std::string& lane, const std::vector<OutboxOutcome>& outcomes) {
  if (outcomes.empty()) return;
  Status s = Record([&] { return store_.RecordOutcomes(outcomes); });
  if (!s.ok()) {
    LogError("cannot record delivery outcomes", {{"lane", lane},
                                                 {"messages", outcomes.size()},
                                                 {"first_id", outcomes.front().id},
                                                 {"error", s.error().message}});
  }
}

void Dispatcher::Throttle(Lane& lane) {
  if (lane.rate <= 0) return;
  auto interval = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(1.0 / lane.rate));
  std::chrono::steady_clock::time_point slot;
  {
    std::lock_guard lock(lane.throttle_mu);
    slot = std::max(lane.next_send, std::chrono::steady_clock::now());
    lane.next_send = slot + interval;
  }
  if (slot > std::chrono::steady_clock::now()) {
    std::unique_lock lock(mu_);
    wake_.wait_until(lock, slot, [&] { return stopping_.load(); });
  }
}

Seconds Dispatcher::Backoff(int64_t attempts) {
  double delay = static_cast<double>(options_.retry_initial.count());
  for (int64_t i = 1; i < attempts && delay < options_.retry_max.count(); ++i) delay *= 2;
  delay = std::min(delay, static_cast<double>(options_.retry_max.count()));
  std::lock_guard lock(rng_mu_);
  std::uniform_real_distribution<double> jitter(delay / 2, delay);
  return Seconds{std::max<int64_t>(1, static_cast<int64_t>(jitter(rng_)))};
}

Status Dispatcher::Record(const std::function<Status()>& write) {
  std::chrono::milliseconds pause(100);
  for (int attempt = 1;; ++attempt) {
    Status s = write();
    if (s.ok() || s.error().code != "storage" || stopping_) return s;
    if (attempt == 1) {
      LogWarn("cannot record a delivery outcome; retrying until the store answers",
              {{"error", s.error().message}});
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(2000));
  }
}

bool Dispatcher::Recheck(Pass& pass, const OutboxMessage& m, const CustomerRead& read, Time now,
                         std::string& to) {
  LaneStats& stats = *pass.lane.stats;
  const std::string& channel = m.channel;
  if (read.error) {
    Report(pass, {m.id, OutboxOutcome::kRetry, now + Seconds{5}, read.error->message});
    return false;
  }
  auto customer = read.customers.find(m.customer);
  if (customer == read.customers.end() || !customer->second.profile) {
    ++stats.cancelled;
    Report(pass, {m.id, OutboxOutcome::kCancelled, Time{}, "erased"});
    return false;
  }
  const nlohmann::json& profile = *customer->second.profile;
  auto catalog = registry_.Snapshot();
  const dsl::Program* program =
      catalog->Find(m.journey, m.payload.value("version", static_cast<int64_t>(0)));
  if (program == nullptr) return true;  // no such journey version loaded: nothing to check
  std::vector<SendRecord> others = customer->second.sends;
  // This message's own send record is in there; it must not count against itself.
  for (auto it = others.begin(); it != others.end(); ++it) {
    if (it->channel == channel && it->at == m.created_at && !it->held) {
      others.erase(it);
      break;
    }
  }
  HeldMessage held;
  held.channel = channel;
  held.template_name = Text(m.payload, "template");
  held.handle = Text(m.payload, "handle");
  held.message_id = m.id;
  held.step = Text(m.payload, "step");
  held.held_at = m.created_at;
  held.until = now;
  if (m.payload.contains("entry_event")) held.entry_event = m.payload["entry_event"];
  HeldDelivery check = DeliverHeld(*program, held, profile, others, now);
  if (check.kind == HeldDelivery::Kind::kSkipped) {
    ++stats.cancelled;
    Report(pass, {m.id, OutboxOutcome::kCancelled, Time{}, check.reason});
    LogInfo("message cancelled at dispatch", {{"id", m.id}, {"reason", check.reason}});
    return false;
  }
  if (check.kind == HeldDelivery::Kind::kHeld && check.until) {
    ++stats.deferred;
    Report(pass, {m.id, OutboxOutcome::kRetry, *check.until,
                  "quiet hours until " + FormatTime(*check.until)});
    return false;
  }
  if (!check.to.empty()) to = check.to;
  return true;
}

void Dispatcher::Deliver(Pass& pass, LaneConnectors& connectors, const OutboxMessage& m,
                         const CustomerRead& read) {
  Lane& lane = pass.lane;
  LaneStats& stats = *lane.stats;
  const Time now = clock_.Now();
  auto dead = [&](const std::string& error) {
    ++stats.dead;
    Report(pass, {m.id, OutboxOutcome::kDead, Time{}, error});
    LogWarn("message is dead", {{"id", m.id},
                                {"lane", lane.name},
                                {"customer", m.customer},
                                {"journey", m.journey},
                                {"error", error}});
  };
  if (m.payload.contains("render_error"))
    return dead("template: " + Text(m.payload, "render_error"));

  Message msg;
  msg.id = m.id;
  msg.date = m.created_at;
  Delivery result;
  const std::string channel = m.channel;

  if (channel == "email" || channel == "sms") {
    std::string to = Text(m.payload, "to");
    // Checked again just before sending: consent, address, caps, quiet hours. Not for a
    // message taken from the processor's commit: the engine checked it on the processor's
    // read, just before that commit.
    if (!pass.taken && !Recheck(pass, m, read, now, to)) return;
    msg.to = to;
    if (channel == "email") {
      msg.channel = connectors::Channel::kEmail;
      msg.from = options_.email_from;
      msg.subject = Text(m.payload, "subject");
      msg.html_body = Text(m.payload, "html");
      msg.list_unsubscribe_url = Text(m.payload, "list_unsubscribe");
      msg.list_unsubscribe_one_click = msg.list_unsubscribe_url.rfind("https://", 0) == 0;
      msg.headers.push_back({"X-Itinera-Journey", m.journey});
      auto t0 = std::chrono::steady_clock::now();
      result = SendVia(connectors.email.get(), msg, "email");
      stats.send_micros += std::chrono::duration_cast<std::chrono::microseconds>(
                               std::chrono::steady_clock::now() - t0)
                               .count();
    } else {
      msg.channel = connectors::Channel::kSms;
      msg.text_body = Text(m.payload, "text");
      result = SendVia(connectors.sms.get(), msg, "sms");
    }
  } else if (channel == "alert") {
    const Rep* rep = directory_.FindRep(Text(m.payload, "rep"));
    if (rep == nullptr) return dead("rep " + Text(m.payload, "rep") + " is not configured");
    std::string text = Text(m.payload, "text");
    std::string context = AlertContextText(m.payload.value("context", json::object()));
    std::string subject = Text(m.payload, "subject");
    const std::string& via = rep->alert_via;
    if (via == "slack") {
      msg.channel = connectors::Channel::kChat;
      msg.to = rep->slack_webhook;
      msg.subject = subject;
      msg.text_body = text + (text.empty() || text.back() == '\n' ? "" : "\n") + context;
      result = SendVia(connectors.chat.get(), msg, "slack");
    } else if (via == "sms") {
      msg.channel = connectors::Channel::kSms;
      msg.to = rep->phone;
      msg.text_body = text;
      result = SendVia(connectors.sms.get(), msg, "sms");
    } else if (via == "webhook") {
      auto hook = directory_.webhooks.find(rep->webhook);
      if (hook == directory_.webhooks.end())
        return dead("webhook " + rep->webhook + " is not configured");
      msg.channel = connectors::Channel::kWebhook;
      msg.to = hook->second.url;
      msg.signing_secret = hook->second.secret;
      json body = {{"id", m.id},          {"type", "sales.alert"},
                   {"rep", rep->id},      {"subject", subject},
                   {"text", text},        {"context", m.payload.value("context", json::object())},
                   {"journey", m.journey}};
      msg.text_body = body.dump(-1, ' ', false, json::error_handler_t::replace);
      result = SendVia(connectors.webhook.get(), msg, "webhook");
    } else {
      msg.channel = connectors::Channel::kEmail;
      msg.to = rep->name.empty() ? rep->email : rep->name + " <" + rep->email + ">";
      if (rep->email.empty()) return dead("rep " + rep->id + " has no email address");
      msg.from = options_.email_from;
      msg.subject = subject;
      msg.text_body = text + (text.empty() || text.back() == '\n' ? "\n" : "\n\n") + context;
      result = SendVia(connectors.email.get(), msg, "email");
    }
  } else if (channel == "webhook") {
    auto hook = directory_.webhooks.find(Text(m.payload, "name"));
    if (hook == directory_.webhooks.end()) {
      return dead("webhook " + Text(m.payload, "name") + " is not configured");
    }
    msg.channel = connectors::Channel::kWebhook;
    msg.to = hook->second.url;
    msg.signing_secret = hook->second.secret;
    msg.text_body = m.payload.value("body", json::object())
                        .dump(-1, ' ', false, json::error_handler_t::replace);
    result = SendVia(connectors.webhook.get(), msg, "webhook");
  } else {
    return dead("unknown channel " + channel);
  }

  switch (result.outcome) {
    case Delivery::kSent: {
      ++stats.sent;
      Report(pass, {m.id, OutboxOutcome::kSent, clock_.Now(), ""});
      LogDebug("message sent",
               {{"id", m.id}, {"lane", lane.name}, {"provider_id", result.provider_id}});
      break;
    }
    case Delivery::kTransient: {
      if (m.attempts >= options_.max_attempts) {
        dead(result.error + " (after " + std::to_string(m.attempts) + " attempts)");
        break;
      }
      ++stats.retried;
      Seconds wait = Backoff(m.attempts);
      // A provider's Retry-After (429, 503) is honoured when it asks for longer.
      if (result.retry_after && *result.retry_after > wait) {
        wait = std::min(*result.retry_after, options_.retry_max);
      }
      Report(pass, {m.id, OutboxOutcome::kRetry, clock_.Now() + wait, result.error});
      LogWarn("send failed; will retry", {{"id", m.id},
                                          {"lane", lane.name},
                                          {"attempt", m.attempts},
                                          {"retry_in_s", wait.count()},
                                          {"error", result.error}});
      break;
    }
    case Delivery::kPermanent:
      dead(result.error);
      break;
  }
}

}  // namespace itinera::orch
