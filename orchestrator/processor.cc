#include "orchestrator/processor.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "orchestrator/engine.h"
#include "orchestrator/tracking.h"
#include "util/log.h"
#include "util/thread_name.h"

namespace itinera::orch {

using nlohmann::json;

namespace {

constexpr int kMaxProfileRounds = 16;  // profile-triggered entries that cascade
constexpr Seconds kStuckRetry{60};     // a due timer whose journey cannot run is looked at again
constexpr int kAlertEvents = 5;        // the last events an alert carries

bool HasCustomerRule(const dsl::Program& p) {
  return std::any_of(p.enter.begin(), p.enter.end(),
                     [](const dsl::EnterSetting& s) { return !!s.customer_condition; });
}

std::string Text(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

json MergePatchDiff(const json& before, const json& after) {
  if (!before.is_object() || !after.is_object()) return after;
  json patch = json::object();
  for (const auto& [key, value] : before.items()) {
    if (!after.contains(key)) patch[key] = nullptr;
  }
  for (const auto& [key, value] : after.items()) {
    auto old = before.find(key);
    if (old == before.end()) {
      patch[key] = value;
    } else if (*old != value) {
      patch[key] = old->is_object() && value.is_object() ? MergePatchDiff(*old, value) : value;
    }
  }
  return patch;
}

// One batch: the customers it advances and the Batch it will commit.
class Processor::Work {
 public:
  Work(Processor& p, std::shared_ptr<const JourneyCatalog> catalog, Time now,
       RoutingSnapshot routing)
      : p_(p), catalog_(std::move(catalog)), now_(now) {
    ctx_.routing = std::move(routing);
    ctx_.directory = &p_.directory_;
    ctx_.public_url = p_.options_.public_url;
  }
  // Requests of this batch not answered yet (it failed before its commit) are declined.
  ~Work() { p_.Finish(arrivals, std::nullopt); }

  // Advances one customer from what the store held (its due timers, then its pending events),
  // then the events `arrived` through Advance; an error abandons the batch.
  Status Customer(const std::string& id, const std::vector<DueTimer>& timers,
                  CustomerSnapshot snapshot, const std::vector<const NewEvent*>& arrived);

  Batch& batch() { return batch_; }
  // The routing counters with this batch's assignments applied.
  const RoutingSnapshot& routing() const { return ctx_.routing; }

  // The requests whose events this batch advances; answered by its commit.
  std::vector<Arrival*> arrivals;

 private:
  struct Stored {
    JourneyState state;
    int64_t version = 0;  // 0: not in the store yet
  };

  void SetHeldElsewhere(const std::string& journey);
  void Run(const std::string& journey, const dsl::Program& program,
           const std::function<Outcome(JourneyState, const CustomerContext&)>& call);
  void ProfileTriggers();
  void ResolveHandle(json& event);
  void Record(const Effect& e, const dsl::Program& program);
  json EventBrief(const json& body, Time at) const;

  Processor& p_;
  std::shared_ptr<const JourneyCatalog> catalog_;
  const Time now_;
  Batch batch_;

  // The customer being advanced. ctx_ is what the engine is handed on every call: its profile
  // is the customer's current profile and its routing the batch's counters, kept in place so a
  // call copies neither; its recent_sends are sends_ plus the other journeys' held messages.
  std::string customer_;
  CustomerContext ctx_;
  json& profile_ = ctx_.profile;
  // The profile as it was before the current input, saved (moved, not copied) by the input's
  // first write; unset while the input has written nothing.
  std::optional<json> before_;
  std::vector<SendRecord> sends_;
  std::map<std::string, Stored> states_;
  std::set<std::string> touched_;
  std::vector<json> recent_events_;  // newest last, for alert context
  std::map<std::pair<std::string, int64_t>, std::string> at_step_;  // (journey, entry) -> step
};

Status Processor::Work::Customer(const std::string& id, const std::vector<DueTimer>& timers,
                                 CustomerSnapshot snapshot,
                                 const std::vector<const NewEvent*>& arrived) {
  customer_ = id;
  states_.clear();
  touched_.clear();
  at_step_.clear();
  recent_events_.clear();

  const bool known = snapshot.profile.has_value();
  const json original = known ? std::move(*snapshot.profile) : json{{"id", id}};
  profile_ = original;
  sends_ = std::move(snapshot.sends);
  for (StoredState& s : snapshot.states) states_[s.journey] = {std::move(s.state), s.version};
  // Events from Advance come after the stored ones; seq 0 marks them (not in the store yet).
  std::vector<StoredEvent>& events = snapshot.pending;
  for (const NewEvent* e : arrived) {
    events.push_back({0, e->id, e->customer, e->at, e->body, false});
    batch_.arrived.push_back(*e);
  }
  // Due timers first: a timer and an event at the same second, the timer runs first.
  std::set<std::string> stuck;  // journeys whose due timer was pushed back: nothing to run it
  for (const DueTimer& t : timers) {
    Stored& s = states_[t.journey];
    const dsl::Program* program = catalog_->ForState(t.journey, s.state);
    if (program == nullptr) {
      LogWarn("a due timer's journey version is not loaded; retrying later",
              {{"customer", id}, {"journey", t.journey}});
      batch_.timers.push_back({id, t.journey, now_ + kStuckRetry});
      stuck.insert(t.journey);
      continue;
    }
    ++p_.stats_.timers;
    before_.reset();
    Run(t.journey, *program, [&](JourneyState state, const CustomerContext& ctx) {
      return OnTimer(*program, std::move(state), now_, ctx);
    });
    ProfileTriggers();
  }

  for (const StoredEvent& ev : events) {
    if (ev.seq != 0) batch_.processed_events.push_back(ev.seq);
    ++p_.stats_.events;
    json body = ev.body;
    const std::string type = Text(body, "type");
    before_.reset();
    if (type == kProfileChangedEvent) {
      // The API changed the profile; journeys with `enter when customer` react.
      if (!body.contains("before")) continue;  // not made by the daemon: nothing to compare
      json previous = body["before"];
      json after = profile_;
      batch_.timeline.push_back(
          {0,
           id,
           ev.at,
           "profile",
           {{"changed", MergePatchDiff(previous.is_object() ? previous : json::object(), after)}}});
      for (const std::string& journey : catalog_->Ids()) {
        const dsl::Program* program = catalog_->ForInput(journey, states_[journey].state);
        if (program == nullptr || !HasCustomerRule(*program)) continue;
        Run(journey, *program, [&](JourneyState state, const CustomerContext& ctx) {
          return OnProfileChange(*program, std::move(state), previous, now_, ctx);
        });
      }
      ProfileTriggers();
      continue;
    }
    if (!body.contains("properties") || !body["properties"].is_object()) {
      body["properties"] = json::object();
    }
    ResolveHandle(body);
    json brief = EventBrief(body, ev.at);
    batch_.timeline.push_back({0, id, ev.at, "event", brief});
    recent_events_.push_back(brief);
    for (const std::string& journey : catalog_->Ids()) {
      const dsl::Program* program = catalog_->ForInput(journey, states_[journey].state);
      if (program == nullptr) continue;
      Run(journey, *program, [&](JourneyState state, const CustomerContext& ctx) {
        return OnEvent(*program, std::move(state), body, now_, ctx);
      });
    }
    ProfileTriggers();
  }

  if (profile_ != original || !known) {
    batch_.profiles.push_back({id, known ? MergePatchDiff(original, profile_) : profile_});
  }
  for (const std::string& journey : touched_) {
    Stored& s = states_[journey];
    batch_.states.push_back({id, journey, s.state, s.version});
    std::optional<Time> wake = s.state.NextWake();
    // A wake-up that is already due is taken on the next pass, never in a tight loop.
    if (wake && *wake <= now_) wake = now_ + Seconds{1};
    batch_.timers.push_back({id, journey, wake});
  }
  for (const DueTimer& t : timers) {
    // A timer whose state did not change (nothing was due after all) still needs its index
    // entry moved, or it would be due forever.
    if (touched_.count(t.journey) || stuck.count(t.journey)) continue;
    batch_.timers.push_back({id, t.journey, states_[t.journey].state.NextWake()});
  }
  return Status::Ok();
}

void Processor::Work::SetHeldElsewhere(const std::string& journey) {
  ctx_.recent_sends = sends_;
  for (const auto& [other, s] : states_) {
    if (other == journey) continue;
    for (const auto& in : s.state.instances)
      for (const auto& m : in.held) ctx_.recent_sends.push_back({m.channel, m.held_at, true});
  }
}

void Processor::Work::Run(
    const std::string& journey, const dsl::Program& program,
    const std::function<Outcome(JourneyState, const CustomerContext&)>& call) {
  Stored& s = states_[journey];
  if (const Instance* active = s.state.Active()) {
    at_step_[{journey, active->entry}] = program.step(active->step).id.text;
  }
  SetHeldElsewhere(journey);
  Outcome out = call(std::move(s.state), ctx_);
  s.state = std::move(out.state);
  ++p_.stats_.transitions;
  // Most journeys have nothing to do with most events: a state the engine did not change is
  // settled without serialising anything (this runs for every journey on every event).
  if (!out.state_changed && !out.profile_changed) return;
  touched_.insert(journey);
  if (out.profile_changed) {
    if (!before_) before_ = std::move(profile_);
    profile_ = std::move(out.profile);
  }
  for (const auto& [team, n] : out.routing.round_robin) {
    ctx_.routing.round_robin[team] += n;
    batch_.routing.round_robin[team] += n;
  }
  for (const auto& [rep, n] : out.routing.load) {
    ctx_.routing.load[rep] += n;
    batch_.routing.load[rep] += n;
  }
  for (const Effect& e : out.effects) {
    ++p_.stats_.effects;
    if (e.kind == Effect::Kind::kSent) {
      sends_.push_back({e.channel, e.at});
      batch_.sends.push_back({customer_, {e.channel, e.at}});
    }
    Record(e, program);
  }
}

void Processor::Work::ProfileTriggers() {
  for (int round = 0; round < kMaxProfileRounds; ++round) {
    // The profile before this round's input; the round's own writes save the next round's.
    if (!before_) return;
    const json before = std::move(*before_);
    before_.reset();
    if (profile_ == before) return;
    for (const std::string& journey : catalog_->Ids()) {
      const dsl::Program* program = catalog_->ForInput(journey, states_[journey].state);
      if (program == nullptr || !HasCustomerRule(*program)) continue;
      Run(journey, *program, [&](JourneyState state, const CustomerContext& ctx) {
        return OnProfileChange(*program, std::move(state), before, now_, ctx);
      });
    }
  }
}

void Processor::Work::ResolveHandle(json& event) {
  const std::string type = Text(event, "type");
  if (type != "email_opened" && type != "link_clicked") return;
  json& props = event["properties"];
  std::string handle;
  auto message = props.find("message");
  if (message != props.end()) {
    if (!message->is_string()) return;
    handle = message->get<std::string>();  // a message id, or a handle's name
  } else {
    handle = Text(props, "handle");
  }
  if (handle.empty()) return;
  const std::string journey = Text(props, "journey");
  // A real message id is left alone; a handle's name resolves to the latest message under it.
  for (const auto& [j, s] : states_) {
    for (const auto& in : s.state.instances)
      for (const auto& [h, id] : in.handles)
        if (id == handle) return;
  }
  for (const auto& [j, s] : states_) {
    if (!journey.empty() && j != journey) continue;
    for (auto in = s.state.instances.rbegin(); in != s.state.instances.rend(); ++in) {
      auto it = in->handles.find(handle);
      if (it != in->handles.end()) {
        props["message"] = it->second;
        return;
      }
    }
  }
}

json Processor::Work::EventBrief(const json& body, Time at) const {
  json brief = {{"type", Text(body, "type")}, {"timestamp", FormatTime(at)}};
  if (body.contains("id") && body["id"].is_string()) brief["id"] = body["id"];
  brief["properties"] = body.contains("properties") ? body["properties"] : json::object();
  return brief;
}

void Processor::Work::Record(const Effect& e, const dsl::Program& program) {
  const std::string& j = e.journey;
  auto count = [&](const std::string& name) { batch_.counters.push_back({j, name, 1}); };
  json data = {{"journey", j}};
  const Instance* instance = nullptr;
  for (const auto& in : states_[j].state.instances)
    if (in.entry == e.entry) instance = &in;
  if (!e.step.empty()) data["step"] = e.step;

  auto outbox = [&](const std::string& channel, const std::string& recipient, json payload) {
    OutboxMessage m;
    m.id = e.message_id;
    m.customer = customer_;
    m.journey = j;
    m.channel = channel;
    m.recipient = recipient;
    payload["version"] = program.version;
    payload["entry"] = e.entry;
    payload["step"] = e.step;
    m.payload = std::move(payload);
    m.created_at = now_;
    m.not_before = now_;
    batch_.outbox.push_back(std::move(m));
    ++p_.stats_.messages;
  };

  switch (e.kind) {
    case Effect::Kind::kEntered: {
      data["version"] = e.version;
      data["holdout"] = e.holdout;
      at_step_[{j, e.entry}] = "";
      count("entered");
      if (e.holdout) count("holdout");
      break;
    }
    case Effect::Kind::kStep: {
      std::string& at = at_step_[{j, e.entry}];
      if (!at.empty()) count("step." + at + ".left");
      at = e.step;
      count("step." + e.step + ".entered");
      break;
    }
    case Effect::Kind::kExited: {
      data["reason"] = e.reason;
      std::string& at = at_step_[{j, e.entry}];
      if (!at.empty()) count("step." + at + ".left");
      at.clear();
      count("exited");
      break;
    }
    case Effect::Kind::kGoal:
      data["goal"] = e.goal;
      count("goal." + e.goal);
      break;
    case Effect::Kind::kSkipped:
      data["channel"] = e.channel;
      data["template"] = e.template_name;
      data["reason"] = e.reason;
      count("skipped." + e.reason);
      break;
    case Effect::Kind::kHeld:
      data["channel"] = e.channel;
      data["template"] = e.template_name;
      data["message"] = e.message_id;
      if (e.until) data["until"] = FormatTime(*e.until);
      count("held." + e.channel);
      break;
    case Effect::Kind::kAssigned:
      data["rep"] = e.rep;
      data["team"] = e.team;
      break;
    case Effect::Kind::kSet:
      data["attribute"] = e.attribute;
      data["value"] = e.value;
      break;
    case Effect::Kind::kSent: {
      data["channel"] = e.channel;
      data["template"] = e.template_name;
      data["to"] = e.to;
      data["message"] = e.message_id;
      if (!e.handle.empty()) data["handle"] = e.handle;
      count("sent." + e.channel);
      json payload = {{"template", e.template_name}, {"to", e.to}};
      if (!e.handle.empty()) payload["handle"] = e.handle;
      if (instance) payload["entry_event"] = instance->entry_event;
      json model = e.data;
      if (e.channel == "email") {
        auto unsubscribe =
            UnsubscribeUrl(p_.options_.public_url, e.message_id, p_.options_.tracking_secret);
        if (unsubscribe.ok()) {
          model["links"]["unsubscribe"] = *unsubscribe;
          payload["list_unsubscribe"] = *unsubscribe;
        }
        auto rendered = catalog_->Render("email", e.template_name, model);
        if (!rendered.ok()) {
          payload["render_error"] = rendered.error().message;
        } else {
          auto rewritten = RewriteEmail(rendered->body, e.message_id, p_.options_.public_url,
                                        p_.options_.tracking_secret);
          payload["subject"] = rendered->subject;
          data["subject"] = rendered->subject;
          if (rewritten.ok()) {
            payload["html"] = rewritten->html;
            payload["links"] = rewritten->links;
          } else {
            payload["html"] = rendered->body;
            payload["links"] = json::array();
          }
        }
      } else {
        auto rendered = catalog_->Render(e.channel, e.template_name, model);
        if (rendered.ok()) {
          payload["text"] = rendered->body;
        } else {
          payload["render_error"] = rendered.error().message;
        }
      }
      outbox(e.channel, e.to, std::move(payload));
      break;
    }
    case Effect::Kind::kAlert: {
      data["rep"] = e.rep;
      data["template"] = e.template_name;
      data["message"] = e.message_id;
      count("alerts");
      const Rep* rep = p_.directory_.FindRep(e.rep);
      json payload = {{"rep", e.rep}, {"template", e.template_name}};
      payload["via"] = rep ? rep->alert_via : "email";
      auto rendered = catalog_->Render("alert", e.template_name, e.data);
      if (rendered.ok()) {
        payload["text"] = rendered->body;
      } else {
        payload["render_error"] = rendered.error().message;
      }
      // The customer's context, so the rep can act without opening anything.
      json flat = FlattenProfile(profile_);
      std::string name = Text(flat, "name");
      if (name.empty()) {
        name = Text(flat, "first_name");
        std::string last = Text(flat, "last_name");
        if (!last.empty()) name += (name.empty() ? "" : " ") + last;
      }
      json context = {{"customer_id", customer_},
                      {"name", name},
                      {"email", Text(profile_, "email")},
                      {"phone", Text(profile_, "phone")},
                      {"journey", {{"id", program.id}, {"title", program.title}}},
                      {"step", e.step}};
      // This batch's events, then the stored ones before them.
      std::vector<json> events = recent_events_;
      if (static_cast<int>(events.size()) < kAlertEvents) {
        auto timeline = p_.store_.Timeline(customer_, 50);
        if (timeline.ok()) {
          std::vector<json> older;
          for (auto it = timeline->rbegin(); it != timeline->rend(); ++it)
            if (it->kind == "event") older.push_back(it->data);
          events.insert(events.begin(), older.begin(), older.end());
        }
      }
      json last = json::array();
      for (auto it = events.rbegin();
           it != events.rend() && static_cast<int>(last.size()) < kAlertEvents; ++it) {
        last.push_back(*it);
      }
      context["last_events"] = std::move(last);
      payload["context"] = std::move(context);
      payload["subject"] = program.title + ": " + (name.empty() ? customer_ : name);
      outbox("alert", e.rep, std::move(payload));
      break;
    }
    case Effect::Kind::kWebhook: {
      data["name"] = e.name;
      data["message"] = e.message_id;
      count("webhooks");
      json body = {{"id", e.message_id},
                   {"type", "journey.webhook"},
                   {"webhook", e.name},
                   {"step", e.step},
                   {"timestamp", FormatTime(e.at)}};
      for (const auto& [key, value] : e.value.items()) body[key] = value;
      outbox("webhook", e.name, {{"name", e.name}, {"body", std::move(body)}});
      break;
    }
  }
  batch_.timeline.push_back({0, customer_, e.at, Effect::KindName(e.kind), std::move(data)});
}

Processor::Processor(Store& store, const Clock& clock, const JourneyRegistry& registry,
                     const Directory& directory, ProcessorOptions options)
    : store_(store),
      clock_(clock),
      registry_(registry),
      directory_(directory),
      options_(std::move(options)) {}

Processor::~Processor() { Close(); }

void Processor::AdvanceAsync(std::vector<NewEvent> events, Advanced done) {
  auto decline = [&] {
    ++stats_.declined;
    done(std::nullopt, std::move(events));
  };
  if (!options_.direct || options_.ownership || events.empty() ||
      events.size() > kMaxDirectEvents || behind_) {
    return decline();
  }
  for (const NewEvent& e : events) {
    if (e.customer.empty()) return decline();
  }
  auto arrival = std::make_unique<Arrival>(Arrival{std::move(events), std::move(done)});
  {
    std::lock_guard lock(arrivals_mu_);
    if (!closed_ && arrivals_.size() < static_cast<size_t>(std::max(options_.batch, 1))) {
      arrivals_.push_back(arrival.get());
      arrival.release();  // the queue owns it
    }
  }
  if (arrival) {  // declined, outside the lock: `done` may take locks of its own
    ++stats_.declined;
    return arrival->done(std::nullopt, std::move(arrival->events));
  }
  if (options_.arrived) options_.arrived();
}

std::optional<Status> Processor::Advance(std::vector<NewEvent> events) {
  std::mutex mu;
  std::condition_variable cv;
  bool answered = false;
  std::optional<Status> result;
  AdvanceAsync(std::move(events), [&](std::optional<Status> status, std::vector<NewEvent>&&) {
    std::lock_guard lock(mu);
    result = std::move(status);
    answered = true;
    cv.notify_one();  // under the lock: `cv` lives on this stack
  });
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return answered; });
  return result;
}

void Processor::Close() {
  {
    std::lock_guard lock(arrivals_mu_);
    closed_ = true;
  }
  DeclineWaiting();
}

void Processor::DeclineWaiting() {
  std::vector<Arrival*> queued;
  {
    std::lock_guard lock(arrivals_mu_);
    queued.assign(arrivals_.begin(), arrivals_.end());
    arrivals_.clear();
  }
  Finish(queued, std::nullopt);
}

void Processor::Finish(std::vector<Arrival*>& arrivals, const std::optional<Status>& result) {
  for (Arrival* a : arrivals) {
    std::unique_ptr<Arrival> owned(a);
    if (!result) {
      ++stats_.declined;
    } else if (result->ok()) {
      stats_.direct_events += static_cast<int64_t>(a->events.size());
    }
    a->done(result, std::move(a->events));
  }
  arrivals.clear();
}

std::vector<Processor::Arrival*> Processor::TakeArrivals(const InFlight& in_flight,
                                                         std::vector<std::string>& customers,
                                                         size_t limit) {
  std::vector<Arrival*> taken, refused;
  std::set<std::string> chosen(customers.begin(), customers.end());
  {
    std::lock_guard lock(arrivals_mu_);
    for (auto it = arrivals_.begin(); it != arrivals_.end();) {
      std::set<std::string> fresh;
      bool blocked = false;
      for (const NewEvent& e : (*it)->events) {
        if (in_flight.customers.count(e.customer) || in_flight.event_ids.count(e.id)) {
          blocked = true;
        }
        if (!chosen.count(e.customer)) fresh.insert(e.customer);
      }
      if (blocked) {
        // A customer in flight is not settled in the store yet, nor is an id in flight: the
        // request waits for the next batch, which comes as soon as that commit is done.
        ++it;
        continue;
      }
      // One that does not fit could be passed over again and again: the inbox takes it now.
      const bool fits = chosen.size() + fresh.size() <= limit;
      (fits ? taken : refused).push_back(*it);
      it = arrivals_.erase(it);
      if (!fits) continue;
      for (const NewEvent& e : taken.back()->events) {
        if (chosen.insert(e.customer).second) customers.push_back(e.customer);
      }
    }
  }
  Finish(refused, std::nullopt);
  return taken;
}

// The thread that commits the batches, kept for the processor's life (a thread started for
// every batch cost more than some batches' commits). One task at a time: RunOnce has at most
// one commit in flight.
class Processor::Committer {
 public:
  Committer() : thread_([this] { Run(); }) {}

  ~Committer() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

  std::future<Status> Submit(std::function<Status()> commit) {
    std::packaged_task<Status()> task(std::move(commit));
    std::future<Status> result = task.get_future();
    {
      std::lock_guard lock(mu_);
      task_ = std::move(task);
    }
    cv_.notify_one();
    return result;
  }

 private:
  void Run() {
    NameThread("commit");
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || task_.valid(); });
      if (!task_.valid()) return;  // stopped, nothing left
      std::packaged_task<Status()> task = std::move(task_);
      lock.unlock();
      task();
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::packaged_task<Status()> task_;
  bool stop_ = false;
  std::thread thread_;  // last: started once the members it uses exist
};

// A batch read and advanced, ready to commit.
struct Processor::Prepared {
  std::vector<std::string> customers;
  int due_rows = 0;  // timer rows read for them
  std::unique_ptr<Work> work;
};

Result<std::optional<Processor::Prepared>> Processor::Prepare(
    const InFlight& in_flight, std::optional<RoutingSnapshot> carried) {
  const Ownership ownership = options_.ownership ? options_.ownership() : Ownership();
  if (!ownership.all && ownership.epochs.empty()) {
    return std::optional<Prepared>();  // no partition leased (yet)
  }
  const Time now = clock_.Now();
  const int limit = std::max(options_.batch, 1);
  // The batch being committed may still be in what the store answers: read past it.
  auto due = store_.DueCustomers(now, limit + in_flight.due_rows, ownership.Partitions());
  if (!due.ok()) return due.error();
  auto inbox = store_.InboxCustomers(limit + static_cast<int>(in_flight.customers.size()),
                                     ownership.Partitions());
  if (!inbox.ok()) return inbox.error();

  // The customers of this batch, in the order first seen, at most `limit`.
  Prepared prepared;
  std::map<std::string, std::vector<DueTimer>> timers;
  for (const DueTimer& t : *due) {
    if (in_flight.customers.count(t.customer)) continue;
    if (!timers.count(t.customer)) {
      if (static_cast<int>(prepared.customers.size()) >= limit) break;
      prepared.customers.push_back(t.customer);
    }
    timers[t.customer].push_back(t);
    ++prepared.due_rows;
  }
  for (const std::string& c : *inbox) {
    if (in_flight.customers.count(c)) continue;
    if (!timers.count(c)) {
      if (static_cast<int>(prepared.customers.size()) >= limit) break;
      prepared.customers.push_back(c);
      timers[c];
    }
  }
  // Then the requests waiting in Advance, as many as fit.
  std::vector<Arrival*> taken;
  if (ownership.all) taken = TakeArrivals(in_flight, prepared.customers, limit);
  behind_ = static_cast<int>(prepared.customers.size()) >= limit;
  // A full batch leaves a backlog that later batches take first: the requests that did not fit
  // would wait for all of it, so they go to the inbox now (behind it, as the order requires).
  if (behind_) DeclineWaiting();
  if (prepared.customers.empty()) return std::optional<Prepared>();

  // Routing counters: the store's, or, while a batch is in flight, the ones that batch ended
  // with (the store may or may not show its deltas yet).
  RoutingSnapshot routing;
  if (carried) {
    routing = std::move(*carried);
  } else {
    auto read = store_.GetRouting();
    if (!read.ok()) {
      Finish(taken, std::nullopt);
      return read.error();
    }
    routing = std::move(*read);
  }
  prepared.work = std::make_unique<Work>(*this, registry_.Snapshot(), now, std::move(routing));
  prepared.work->arrivals = std::move(taken);  // declined by the Work if it never commits
  // One read for the whole batch: a few round trips instead of four per customer.
  auto loaded = store_.LoadCustomers(prepared.customers,
                                     {.sends_since = now - kSendHistory,
                                      .states = true,
                                      .events_per_customer = options_.events_per_customer});
  if (!loaded.ok()) return loaded.error();
  // A request's events go after what its customers had pending; a customer with more pending
  // than one batch reads of it would have them jump the queue, so that request is declined.
  std::vector<Arrival*> kept, refused;
  std::vector<std::string> ids;  // of the requests kept
  for (Arrival* a : prepared.work->arrivals) {
    const bool follows = std::all_of(a->events.begin(), a->events.end(), [&](const NewEvent& e) {
      return static_cast<int>((*loaded)[e.customer].pending.size()) < options_.events_per_customer;
    });
    (follows ? kept : refused).push_back(a);
    if (!follows) continue;
    for (const NewEvent& e : a->events)
      if (!e.id.empty()) ids.push_back(e.id);
  }
  Finish(refused, std::nullopt);
  prepared.work->arrivals = std::move(kept);
  // An event whose id is stored already, or came earlier in the batch, is accepted without
  // effect, as the inbox accepts it.
  std::set<std::string> seen;
  if (!ids.empty()) {
    auto known = store_.KnownEventIds(ids);
    if (!known.ok()) return known.error();
    seen.insert(known->begin(), known->end());
  }
  std::map<std::string, std::vector<const NewEvent*>> arrived;
  for (Arrival* a : prepared.work->arrivals) {
    for (const NewEvent& e : a->events) {
      if (e.id.empty() || seen.insert(e.id).second) arrived[e.customer].push_back(&e);
    }
  }
  for (const std::string& c : prepared.customers) {
    // A customer woken by a timer also gets the events that arrived meanwhile.
    if (Status s = prepared.work->Customer(c, timers[c], std::move((*loaded)[c]), arrived[c]);
        !s.ok()) {
      return s.error();
    }
  }

  if (!ownership.all) {
    Fence fence{ownership.node, {}};
    for (const std::string& c : prepared.customers) {
      const int partition = PartitionOf(c);
      auto held = ownership.epochs.find(partition);
      if (held == ownership.epochs.end()) {
        return Error{"internal", "the store returned " + c + " of partition " +
                                     std::to_string(partition) + ", which is not held"};
      }
      fence.epochs[partition] = held->second;
    }
    prepared.work->batch().fence = std::move(fence);
  }
  return std::optional<Prepared>(std::move(prepared));
}

Result<int> Processor::RunOnce() {
  Result<int> advanced = RunBatches();
  if (!advanced.ok()) {
    // Failing: requests take the inbox (which answers at once, if only with the error) until
    // a batch goes through; those waiting too, since the next run may be seconds away.
    behind_ = true;
    DeclineWaiting();
  }
  return advanced;
}

Result<int> Processor::RunBatches() {
  // Batch N+1 is read and advanced while batch N commits: the commit (an fsync, or a round trip
  // and a WAL flush) and the engine's work overlap. Only one commit is ever in flight, so batch
  // N+2 is read after batch N is durable; batch N+1 leaves out N's customers, whose stored
  // state is not settled until N commits.
  int total = 0;
  InFlight in_flight;
  std::unique_ptr<Work> committing;
  std::future<Status> commit;
  std::chrono::steady_clock::time_point started;

  // Waits for the commit in flight and accounts for it.
  auto settle = [&]() -> Status {
    if (!commit.valid()) return Status::Ok();
    Status s = commit.get();
    auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::steady_clock::now() - started)
                      .count();
    const int n = static_cast<int>(in_flight.customers.size());
    committing.reset();
    in_flight = InFlight();
    if (!s.ok()) {
      ++stats_.commit_failures;
      return s;
    }
    stats_.commit_micros += micros;
    ++stats_.batches;
    stats_.customers += n;
    total += n;
    return Status::Ok();
  };

  if (!committer_) committer_ = std::make_unique<Committer>();
  for (int round = 0; round < kBatchesPerRun;) {
    if (options_.stop && options_.stop()) break;
    std::optional<RoutingSnapshot> carried;
    if (committing) carried = committing->routing();
    auto prepared = Prepare(in_flight, std::move(carried));
    if (!prepared.ok()) {
      // What is in flight is committed (or not) on its own; this batch was not.
      if (Status s = settle(); !s.ok()) return s.error();
      return prepared.error();
    }
    if (!*prepared) {
      if (!commit.valid()) break;  // nothing in flight, nothing due: done
      // Everything due may be the batch in flight: look again once it is committed.
      if (Status s = settle(); !s.ok()) return s.error();
      continue;
    }
    if (Status s = settle(); !s.ok()) return s.error();
    ++round;
    committing = std::move((*prepared)->work);
    for (std::string& c : (*prepared)->customers) in_flight.customers.insert(std::move(c));
    in_flight.due_rows = (*prepared)->due_rows;
    for (const NewEvent& e : committing->batch().arrived)
      if (!e.id.empty()) in_flight.event_ids.insert(e.id);
    started = std::chrono::steady_clock::now();
    commit = committer_->Submit(
        [this, work = committing.get(), n = static_cast<int>(in_flight.customers.size())] {
          return Commit(work->batch(), n, work->arrivals);
        });
  }
  if (Status s = settle(); !s.ok()) return s.error();
  return total;
}

Status Processor::Commit(Batch& batch, int customers, std::vector<Arrival*>& arrivals) {
  // The channels whose lanes take this batch's messages in memory: those due now are inserted
  // claimed, as the lane's own claim would leave them.
  const ProcessorOptions::HandOver& hand = options_.hand_over;
  std::map<std::string, bool> takes;               // channel -> its lane takes them
  std::vector<bool> claimed(batch.outbox.size());  // [i]: batch.outbox[i] is inserted claimed
  const auto claimed_at = std::chrono::steady_clock::now();
  if (hand.takes && hand.claim && hand.take) {
    const Time now = clock_.Now();
    for (size_t i = 0; i < batch.outbox.size(); ++i) {
      OutboxMessage& m = batch.outbox[i];
      if (m.not_before > now) continue;
      auto it = takes.find(m.channel);
      if (it == takes.end()) it = takes.emplace(m.channel, hand.takes(m.channel)).first;
      if (!it->second) continue;
      hand.claim(m, now);
      claimed[i] = true;
    }
  }
  std::vector<size_t> inserted;
  Status s = store_.Commit(batch, &inserted);
  if (!s.ok()) {
    // A refused batch stored nothing: the inbox takes its requests. A storage error may have
    // come after the commit was durable (a failed fsync, a dropped connection), so appending
    // the events again could store twice the ones without an id: the requests get the error,
    // as the inbox's own group commit answers it.
    Finish(arrivals, s.error().code == "storage" ? std::optional<Status>(s) : std::nullopt);
    return s;
  }
  // Stored: whatever happens below, the requests are answered Ok.
  struct AnswerOk {
    Processor& p;
    std::vector<Arrival*>& arrivals;
    ~AnswerOk() { p.Finish(arrivals, Status::Ok()); }
  } answer{*this, arrivals};
  // At once, not when the next batch is ready: its messages are in the outbox now.
  // A claimed message is handed over only if this commit inserted it; the lanes of the others
  // are woken to claim what is due.
  std::vector<bool> handed(batch.outbox.size());
  for (size_t i : inserted) handed[i] = claimed[i];
  std::map<std::string, std::vector<OutboxMessage>> take;
  std::vector<std::string> channels;  // to claim
  for (size_t i = 0; i < batch.outbox.size(); ++i) {
    OutboxMessage& m = batch.outbox[i];
    if (handed[i]) {
      take[m.channel].push_back(std::move(m));
    } else if (std::find(channels.begin(), channels.end(), m.channel) == channels.end()) {
      channels.push_back(m.channel);
    }
  }
  for (auto& [channel, messages] : take) hand.take(channel, std::move(messages), claimed_at);
  if (options_.committed) {
    std::sort(channels.begin(), channels.end());
    options_.committed(customers, channels);
  }
  return s;  // `answer` answers the requests after the hand-over: the sends start first
}

}  // namespace itinera::orch
