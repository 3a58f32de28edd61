#include "orchestrator/simulator.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "orchestrator/clock.h"
#include "orchestrator/engine.h"
#include "orchestrator/model.h"

namespace itinera::orch {

using nlohmann::json;
using nlohmann::ordered_json;

namespace {

constexpr Seconds kMaxRun{365 * 86400};
constexpr int kMaxProfileRounds = 16;  // profile-triggered entries that cascade

struct SentMessage {
  std::string journey;
  std::string handle;
  std::string id;
};

struct Customer {
  json profile;
  std::vector<SendRecord> sends;
  std::vector<SentMessage> messages;  // with a handle, oldest first
  std::set<std::string> message_ids;  // every message sent
};

struct Event {
  Time at{};
  size_t order = 0;
  json body;  // normalised: customer_id, type, timestamp, properties (+ id when given)
};

using Key = std::pair<size_t, std::string>;                          // (program index, customer)
using TimerEntry = std::tuple<Time, uint64_t, size_t, std::string>;  // wake, seq, program, customer

class Simulator {
 public:
  Simulator(const std::vector<const dsl::Program*>& programs, const Directory& directory,
            TemplateSet& templates, const SimulationOptions& options)
      : programs_(programs), directory_(directory), templates_(templates), options_(options) {}

  Status AddCustomers(const std::vector<json>& customers);
  Status AddEvents(const std::vector<json>& events);
  Simulation Run();

 private:
  // The context for `program`: the customer's delivered sends plus what other journeys hold.
  CustomerContext Context(const std::string& customer, size_t program);
  Customer& GetCustomer(const std::string& id);
  void Apply(size_t program, const std::string& customer, Outcome outcome);
  void ProfileTriggers(const std::string& customer, json before);
  void ProcessEvent(const Event& event);
  void ProcessTimer(TimerEntry timer);  // a copy: the entry is erased
  void ResolveHandle(json& event);
  ordered_json Record(const Effect& e);
  ordered_json Summary() const;
  std::string Qualified(const dsl::Program& p, const std::string& name) const {
    return programs_.size() > 1 ? p.id + "." + name : name;
  }

  const std::vector<const dsl::Program*>& programs_;
  const Directory& directory_;
  TemplateSet& templates_;
  const SimulationOptions& options_;
  ManualClock clock_;

  std::map<std::string, Customer> customers_;
  std::vector<std::string> customer_order_;
  std::vector<Event> events_;
  std::map<Key, JourneyState> states_;
  std::set<TimerEntry> timers_;
  std::map<Key, TimerEntry> timer_of_;
  uint64_t timer_seq_ = 0;
  RoutingSnapshot routing_;

  std::vector<ordered_json> records_;
  // Summary counters.
  std::map<std::string, std::set<std::string>> step_customers_;  // qualified step -> customers
  std::map<std::string, int64_t> goal_counts_;
  int64_t sent_email_ = 0, sent_sms_ = 0, entered_ = 0, holdout_ = 0, exited_ = 0, skipped_ = 0,
          alerts_ = 0, webhooks_ = 0;
};

Status Simulator::AddCustomers(const std::vector<json>& customers) {
  for (size_t i = 0; i < customers.size(); ++i) {
    const json& c = customers[i];
    if (!c.is_object() || !c.contains("id") || !c["id"].is_string() ||
        c["id"].get<std::string>().empty()) {
      return Error{"invalid_customer", "customer " + std::to_string(i + 1) + ": no \"id\""};
    }
    std::string id = c["id"].get<std::string>();
    auto [it, added] = customers_.try_emplace(id);
    if (added) {
      customer_order_.push_back(id);
      it->second.profile = c;
    } else {
      it->second.profile.merge_patch(c);  // a repeated id updates the profile, as PUT does
    }
  }
  return Status::Ok();
}

Status Simulator::AddEvents(const std::vector<json>& events) {
  std::set<std::string> seen_ids;
  for (size_t i = 0; i < events.size(); ++i) {
    const json& e = events[i];
    const std::string where = "event " + std::to_string(i + 1) + ": ";
    if (!e.is_object()) return Error{"invalid_event", where + "not a JSON object"};
    auto text = [&](const char* key) {
      auto it = e.find(key);
      return it != e.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    if (e.contains("id") && !e["id"].is_null() && !seen_ids.insert(e["id"].dump()).second) {
      continue;  // an id seen before is accepted again without effect
    }
    std::string customer = text("customer_id"), type = text("type"), stamp = text("timestamp");
    if (customer.empty()) return Error{"invalid_event", where + "no \"customer_id\""};
    if (type.empty()) return Error{"invalid_event", where + "no \"type\""};
    auto at = ParseTime(stamp);
    if (!at) return Error{"invalid_event", where + "\"timestamp\" missing or not RFC 3339"};
    json body = {{"customer_id", customer}, {"type", type}, {"timestamp", FormatTime(*at)}};
    if (e.contains("id")) body["id"] = e["id"];
    body["properties"] =
        e.contains("properties") && e["properties"].is_object() ? e["properties"] : json::object();
    for (const char* key : {"handle", "journey", "message"}) {
      if (e.contains(key) && !body["properties"].contains(key)) body["properties"][key] = e[key];
    }
    events_.push_back({*at, i, std::move(body)});
  }
  if (events_.empty()) return Error{"no_events", "a simulation needs at least one event"};
  std::stable_sort(events_.begin(), events_.end(),
                   [](const Event& a, const Event& b) { return a.at < b.at; });
  return Status::Ok();
}

Customer& Simulator::GetCustomer(const std::string& id) {
  auto [it, added] = customers_.try_emplace(id);
  if (added) {
    customer_order_.push_back(id);
    it->second.profile = {{"id", id}};
  }
  return it->second;
}

CustomerContext Simulator::Context(const std::string& customer, size_t program) {
  Customer& c = GetCustomer(customer);
  CustomerContext ctx;
  ctx.profile = c.profile;
  ctx.recent_sends = c.sends;
  for (size_t i = 0; i < programs_.size(); ++i) {
    auto it = states_.find({i, customer});
    if (i == program || it == states_.end()) continue;
    for (const auto& in : it->second.instances) {
      for (const auto& m : in.held) ctx.recent_sends.push_back({m.channel, m.held_at, true});
    }
  }
  ctx.directory = &directory_;
  ctx.routing = routing_;
  ctx.public_url = options_.public_url;
  return ctx;
}

void Simulator::Apply(size_t program, const std::string& customer, Outcome outcome) {
  Customer& c = GetCustomer(customer);
  if (outcome.profile_changed) c.profile = std::move(outcome.profile);
  for (const auto& [team, n] : outcome.routing.round_robin) routing_.round_robin[team] += n;
  for (const auto& [rep, n] : outcome.routing.load) routing_.load[rep] += n;
  for (const Effect& e : outcome.effects) {
    if (e.kind == Effect::Kind::kSent) {
      c.sends.push_back({e.channel, e.at});
      c.message_ids.insert(e.message_id);
      if (!e.handle.empty()) c.messages.push_back({e.journey, e.handle, e.message_id});
    }
    records_.push_back(Record(e));
  }
  Key key{program, customer};
  JourneyState& state = states_[key] = std::move(outcome.state);
  auto old = timer_of_.find(key);
  std::optional<Time> wake = state.NextWake();
  if (old != timer_of_.end()) {
    // An unchanged wake-up keeps its place among timers due at the same second.
    if (wake && std::get<0>(old->second) == *wake) return;
    timers_.erase(old->second);
    timer_of_.erase(old);
  }
  if (wake) {
    TimerEntry t{*wake, timer_seq_++, program, customer};
    timers_.insert(t);
    timer_of_[key] = t;
  }
}

void Simulator::ProfileTriggers(const std::string& customer, json before) {
  for (int round = 0; round < kMaxProfileRounds; ++round) {
    json after = GetCustomer(customer).profile;
    if (after == before) return;
    for (size_t i = 0; i < programs_.size(); ++i) {
      bool has_rule =
          std::any_of(programs_[i]->enter.begin(), programs_[i]->enter.end(),
                      [](const dsl::EnterSetting& s) { return !!s.customer_condition; });
      if (!has_rule) continue;
      CustomerContext ctx = Context(customer, i);
      Apply(i, customer,
            OnProfileChange(*programs_[i], std::move(states_[{i, customer}]), before, clock_.Now(),
                            ctx));
    }
    before = std::move(after);
  }
}

void Simulator::ResolveHandle(json& event) {
  const std::string type = event["type"].get<std::string>();
  json& props = event["properties"];
  if (type != "email_opened" && type != "link_clicked") return;
  const Customer& c = GetCustomer(event["customer_id"].get<std::string>());
  // The handle: `"handle"`, or a `"message"` that is no message id but a handle's name.
  std::string handle;
  auto message = props.find("message");
  if (message != props.end()) {
    if (!message->is_string() || c.message_ids.count(message->get<std::string>()) != 0) return;
    handle = message->get<std::string>();
  } else if (props.contains("handle") && props["handle"].is_string()) {
    handle = props["handle"].get<std::string>();
  } else {
    return;
  }
  const std::string journey = props.contains("journey") && props["journey"].is_string()
                                  ? props["journey"].get<std::string>()
                                  : "";
  for (auto it = c.messages.rbegin(); it != c.messages.rend(); ++it) {
    if (it->handle == handle && (journey.empty() || it->journey == journey)) {
      props["message"] = it->id;
      return;
    }
  }
}

void Simulator::ProcessEvent(const Event& event) {
  json body = event.body;
  ResolveHandle(body);
  const std::string customer = body["customer_id"].get<std::string>();
  json before = GetCustomer(customer).profile;
  for (size_t i = 0; i < programs_.size(); ++i) {
    CustomerContext ctx = Context(customer, i);
    Apply(i, customer,
          OnEvent(*programs_[i], std::move(states_[{i, customer}]), body, clock_.Now(), ctx));
  }
  ProfileTriggers(customer, std::move(before));
}

void Simulator::ProcessTimer(TimerEntry timer) {
  timers_.erase(timer);
  const auto& [wake, seq, program, customer] = timer;
  (void)seq;
  timer_of_.erase({program, customer});
  json before = GetCustomer(customer).profile;
  CustomerContext ctx = Context(customer, program);
  Apply(program, customer,
        OnTimer(*programs_[program], std::move(states_[{program, customer}]), wake, ctx));
  ProfileTriggers(customer, std::move(before));
}

ordered_json Simulator::Record(const Effect& e) {
  ordered_json r;
  r["at"] = FormatTime(e.at);
  r["customer"] = e.customer;
  r["journey"] = e.journey;
  r["kind"] = Effect::KindName(e.kind);
  const dsl::Program* program = nullptr;
  for (const auto* p : programs_)
    if (p->id == e.journey) program = p;
  switch (e.kind) {
    case Effect::Kind::kEntered:
      r["version"] = e.version;
      r["holdout"] = e.holdout;
      ++entered_;
      if (e.holdout) ++holdout_;
      break;
    case Effect::Kind::kStep:
      r["step"] = e.step;
      if (program) step_customers_[Qualified(*program, e.step)].insert(e.customer);
      break;
    case Effect::Kind::kSent: {
      r["channel"] = e.channel;
      r["template"] = e.template_name;
      r["to"] = e.to;
      r["handle"] = e.handle.empty() ? ordered_json() : ordered_json(e.handle);
      if (e.channel == "email") {
        ordered_json subject;
        try {
          auto rendered = templates_.Render("email", e.template_name, e.data);
          if (rendered.ok()) subject = rendered->subject;
        } catch (const std::exception&) {
        }
        r["subject"] = subject;
        ++sent_email_;
      } else if (e.channel == "sms") {
        ++sent_sms_;
      }
      r["message"] = e.message_id;
      break;
    }
    case Effect::Kind::kSkipped:
      r["channel"] = e.channel;
      r["template"] = e.template_name;
      r["reason"] = e.reason;
      ++skipped_;
      break;
    case Effect::Kind::kHeld:
      r["channel"] = e.channel;
      r["template"] = e.template_name;
      r["until"] = e.until ? ordered_json(FormatTime(*e.until)) : ordered_json();
      r["message"] = e.message_id;
      break;
    case Effect::Kind::kAlert:
      r["rep"] = e.rep;
      r["template"] = e.template_name;
      ++alerts_;
      break;
    case Effect::Kind::kAssigned:
      r["rep"] = e.rep;
      break;
    case Effect::Kind::kSet:
      r["attribute"] = e.attribute;
      r["value"] = ordered_json::parse(e.value.dump());
      break;
    case Effect::Kind::kWebhook:
      r["name"] = e.name;
      ++webhooks_;
      break;
    case Effect::Kind::kGoal:
      r["goal"] = e.goal;
      if (program) ++goal_counts_[Qualified(*program, e.goal)];
      break;
    case Effect::Kind::kExited:
      r["reason"] = e.reason;
      ++exited_;
      break;
  }
  return r;
}

// Appends to a JSON object whose keys are known to be unique, skipping ordered_json's linear
// key search, which would make a summary of a journey with many steps quadratic.
void AppendUnique(ordered_json& object, std::string key, ordered_json value) {
  auto& pairs =
      static_cast<ordered_json::object_t::Container&>(object.get_ref<ordered_json::object_t&>());
  pairs.emplace_back(std::move(key), std::move(value));
}

ordered_json Simulator::Summary() const {
  ordered_json steps = ordered_json::object(), goals = ordered_json::object();
  for (const auto* p : programs_) {
    for (const auto& step : p->steps) {
      auto it = step_customers_.find(Qualified(*p, step.id.text));
      AppendUnique(steps, Qualified(*p, step.id.text),
                   it == step_customers_.end() ? 0 : it->second.size());
    }
    for (const auto& goal : p->goals) {
      auto it = goal_counts_.find(Qualified(*p, goal.name.text));
      AppendUnique(goals, Qualified(*p, goal.name.text), it == goal_counts_.end() ? 0 : it->second);
    }
  }
  ordered_json s;
  s["kind"] = "summary";
  s["steps"] = steps;
  s["sent"] = {{"email", sent_email_}, {"sms", sent_sms_}};
  s["goals"] = goals;
  s["entered"] = entered_;
  s["holdout"] = holdout_;
  s["exited"] = exited_;
  s["skipped"] = skipped_;
  s["alerts"] = alerts_;
  s["webhooks"] = webhooks_;
  return s;
}

Simulation Simulator::Run() {
  const Time start = events_.front().at;
  const Time cap = start + kMaxRun;
  Time end = cap;
  if (options_.until) end = *options_.until;
  if (options_.until_after_start) end = start + *options_.until_after_start;
  clock_.Set(start);

  // Profiles that already satisfy an `enter when customer` rule enter at the start.
  if (start <= end) {
    for (const std::string& id : std::vector<std::string>(customer_order_)) {
      for (size_t i = 0; i < programs_.size(); ++i) {
        CustomerContext ctx = Context(id, i);
        Apply(i, id,
              OnProfileChange(*programs_[i], std::move(states_[{i, id}]), json(), start, ctx));
      }
    }
  }

  size_t next_event = 0;
  while (true) {
    const bool have_event = next_event < events_.size();
    const bool have_timer = !timers_.empty();
    if (!have_event && !have_timer) break;
    const bool timer_first =
        have_timer && (!have_event || std::get<0>(*timers_.begin()) <= events_[next_event].at);
    Time at = timer_first ? std::get<0>(*timers_.begin()) : events_[next_event].at;
    if (at > end) break;
    clock_.Set(at);
    if (timer_first) {
      ProcessTimer(*timers_.begin());
    } else {
      ProcessEvent(events_[next_event++]);
    }
  }

  Simulation sim;
  sim.records = std::move(records_);
  sim.records.push_back(Summary());
  return sim;
}

}  // namespace

Result<Simulation> Simulate(const std::vector<const dsl::Program*>& programs,
                            const std::vector<json>& customers, const std::vector<json>& events,
                            const Directory& directory, TemplateSet& templates,
                            const SimulationOptions& options) {
  for (const auto* p : programs) {
    if (p == nullptr) return Error{"invalid_program", "null program"};
  }
  Simulator sim(programs, directory, templates, options);
  if (Status s = sim.AddCustomers(customers); !s.ok()) return s.error();
  if (Status s = sim.AddEvents(events); !s.ok()) return s.error();
  return sim.Run();
}

}  // namespace itinera::orch
