#include "orchestrator/engine.h"

#include <algorithm>
#include <cctype>

#include "orchestrator/engine_delivery.h"
#include "orchestrator/eval.h"
#include "orchestrator/zone.h"

namespace itinera::orch {

using nlohmann::json;

namespace {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

std::string StringField(const json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

// The string at `key`, or an empty string; no copy.
const std::string& StringRef(const json& j, const char* key) {
  static const std::string kEmpty;
  if (!j.is_object()) return kEmpty;
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get_ref<const std::string&>() : kEmpty;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// One call of the engine: a working copy of the state, profile, sends and routing counters,
// and the effects recorded so far.
class Run {
 public:
  Run(const dsl::Program& program, JourneyState state, Time now, const CustomerContext& context)
      : p_(program),
        now_(now),
        ctx_(context),
        profile_(context.profile.is_object() ? &context.profile : &EmptyObject()),
        sends_(&context.recent_sends) {
    out_.state = std::move(state);
    // One call rarely records more; growing the vector would move every Effect.
    out_.effects.reserve(16);
    customer_ = StringField(profile(), "id");
  }

  Outcome Finish() {
    out_.state_changed = out_.state_changed || !out_.effects.empty();
    return std::move(out_);
  }

  void SetCustomerFromEvent(const json& event) {
    if (customer_.empty()) customer_ = StringField(event, "customer_id");
  }

  void Goals(const json& event);
  bool ExitRules(const json& event);
  bool WaitFor(const json& event);
  void EnterOnEvent(const json& event);
  void EnterOnProfile(const json& previous);
  void Timer();

 private:
  static const json& EmptyObject() {
    static const json kEmpty = json::object();
    return kEmpty;
  }
  // The profile as this call sees it: the caller's until the first write, then the copy.
  const json& profile() const { return *profile_; }
  // The profile to write to: copied from the caller's on the first write of the call.
  json& MutableProfile() {
    if (!out_.profile_changed) {
      out_.profile = *profile_;
      out_.profile_changed = true;
      profile_ = &out_.profile;
    }
    return out_.profile;
  }
  // The sends to append to: copied from the caller's on the first send of the call.
  std::vector<SendRecord>& MutableSends() {
    if (sends_ != &own_sends_) {
      own_sends_ = *sends_;
      sends_ = &own_sends_;
    }
    return own_sends_;
  }

  void DeliverDue();
  void CancelHeld(Instance& in);
  enum class Next { kContinue, kPause };

  Scope StepScope(const Instance& in) const {
    Scope s;
    s.profile = &profile();
    s.event = &in.last_event;
    s.entry = &in.entry_event;
    s.handles = &in.handles;
    return s;
  }
  bool Matches(const dsl::EventMatcher& m, const json& event, const Instance* in) const;
  Effect Base(Effect::Kind kind, const Instance& in) const;
  void Stamp(Effect& e, Effect::Kind kind, const Instance& in) const;
  // Appends an effect stamped as Base would and returns it to be filled in place. The
  // reference is good until the next effect is emitted.
  Effect& Emit(Effect::Kind kind, const Instance& in) {
    Effect& e = out_.effects.emplace_back();
    Stamp(e, kind, in);
    return e;
  }

  void Enter(json entry_event);
  void Advance(Instance& in);
  void EnterStep(Instance& in, int index);
  void Exit(Instance& in, const std::string& reason);
  void Pause(Instance& in, WaitKind kind, Time wake_at);
  void Transition(Instance& in);

  Next Send(Instance& in, const dsl::SendAction& a, int index);
  void Alert(Instance& in, const dsl::AlertAction& a, int index);
  void Assign(Instance& in, const dsl::AssignAction& a);
  void Set(Instance& in, const dsl::SetAction& a);
  void Webhook(Instance& in, const dsl::WebhookAction& a, int index);
  void AlertRep(Instance& in, const Rep& rep, const std::string& template_name, int index);
  std::string ActionMessageId(const Instance& in, int index) const;

  const dsl::Program& p_;
  Time now_;
  const CustomerContext& ctx_;
  const json* profile_;                   // ctx_.profile, or out_.profile once written
  const std::vector<SendRecord>* sends_;  // ctx_.recent_sends, or own_sends_ once appended
  std::vector<SendRecord> own_sends_;
  Outcome out_;
  std::string customer_;
  int steps_run_ = 0;
};

bool Run::Matches(const dsl::EventMatcher& m, const json& event, const Instance* in) const {
  if (StringRef(event, "type") != m.type.text) return false;
  if (!m.where) return true;
  Scope s;
  s.profile = &profile();
  s.event = &event;
  if (in != nullptr) {
    s.entry = &in->entry_event;
    s.handles = &in->handles;
  }
  return IsTrue(*m.where, s);
}

Effect Run::Base(Effect::Kind kind, const Instance& in) const {
  Effect e;
  Stamp(e, kind, in);
  return e;
}

void Run::Stamp(Effect& e, Effect::Kind kind, const Instance& in) const {
  e.kind = kind;
  e.at = now_;
  e.journey = p_.id;
  e.customer = customer_;
  e.entry = in.entry;
  if (in.step >= 0 && static_cast<size_t>(in.step) < p_.steps.size()) {
    e.step = p_.step(in.step).id.text;
  }
}

void Run::Goals(const json& event) {
  for (auto& in : out_.state.instances) {
    for (const auto& goal : p_.goals) {
      if (in.goals.count(goal.name.text) != 0) continue;
      // Without `within` the window is unbounded, until the next entry starts a new one.
      bool open = now_ >= in.entered_at &&
                  (goal.within_seconds ? (now_ - in.entered_at).count() <= *goal.within_seconds
                                       : &in == &out_.state.instances.back());
      if (!open || !Matches(goal.event, event, &in)) continue;
      in.goals.insert(goal.name.text);
      Effect& e = Emit(Effect::Kind::kGoal, in);
      e.goal = goal.name.text;
    }
  }
}

bool Run::ExitRules(const json& event) {
  Instance* in = out_.state.Active();
  if (in == nullptr) return false;
  for (const auto& rule : p_.exits) {
    if (Matches(rule.event, event, in)) {
      Exit(*in, "event:" + rule.event.type.text);
      CancelHeld(*in);
      return true;
    }
  }
  return false;
}

bool Run::WaitFor(const json& event) {
  Instance* in = out_.state.Active();
  if (in == nullptr || in->wait != WaitKind::kEvent) return false;
  const auto* wait = std::get_if<dsl::WaitForTransition>(&*p_.step(in->step).transition);
  if (wait == nullptr || !Matches(wait->event, event, in)) return false;
  in->last_event = event;
  in->status = InstanceStatus::kActive;
  in->wait = WaitKind::kNone;
  in->wake_at.reset();
  EnterStep(*in, wait->received ? wait->received->index : -1);
  Advance(*in);
  return true;
}

void Run::EnterOnEvent(const json& event) {
  for (const auto& enter : p_.enter) {
    if (!enter.event || !Matches(*enter.event, event, nullptr)) continue;
    if (MayEnter(p_, out_.state, now_)) Enter(event);
    return;
  }
}

void Run::EnterOnProfile(const json& previous) {
  for (const auto& enter : p_.enter) {
    if (!enter.customer_condition) continue;
    Scope now_scope;
    now_scope.profile = &profile();
    if (!IsTrue(*enter.customer_condition, now_scope)) continue;
    if (previous.is_object()) {
      Scope before;
      before.profile = &previous;
      if (IsTrue(*enter.customer_condition, before)) continue;
    }
    if (!MayEnter(p_, out_.state, now_)) return;
    Enter(json{{"type", "profile_updated"},
               {"customer_id", customer_},
               {"timestamp", FormatTime(now_)},
               {"properties", json::object()}});
    return;
  }
}

void Run::DeliverDue() {
  for (auto& in : out_.state.instances) {
    if (in.held.empty()) continue;
    DeliverDueHeld(p_, in, profile(), *ctx_.directory, ctx_.public_url, now_,
                   Base(Effect::Kind::kSent, in), MutableSends(), out_.effects);
  }
}

void Run::CancelHeld(Instance& in) {
  CancelHeldMessages(in, Base(Effect::Kind::kSkipped, in), out_.effects);
}

void Run::Timer() {
  DeliverDue();
  Instance* in = out_.state.Active();
  if (in == nullptr || in->status != InstanceStatus::kWaiting || !in->wake_at ||
      *in->wake_at > now_) {
    return;
  }
  WaitKind kind = in->wait;
  out_.state_changed = true;
  in->status = InstanceStatus::kActive;
  in->wait = WaitKind::kNone;
  in->wake_at.reset();
  if (kind == WaitKind::kEvent) {
    const auto* wait = std::get_if<dsl::WaitForTransition>(&*p_.step(in->step).transition);
    EnterStep(*in, wait && wait->timed_out ? wait->timed_out->index : -1);
  }
  Advance(*in);
}

void Run::Enter(json entry_event) {
  Instance in;
  in.journey = p_.id;
  in.version = p_.version;
  in.customer = customer_;
  in.entry = out_.state.instances.empty() ? 1 : out_.state.instances.back().entry + 1;
  in.entered_at = now_;
  in.holdout = InHoldout(p_, customer_);
  in.last_event = entry_event;
  in.entry_event = std::move(entry_event);
  out_.state.instances.push_back(std::move(in));
  Instance& added = out_.state.instances.back();
  Effect& e = Emit(Effect::Kind::kEntered, added);
  e.step.clear();
  e.version = added.version;
  e.holdout = added.holdout;
  EnterStep(added, 0);
  Advance(added);
}

void Run::EnterStep(Instance& in, int index) {
  if (index < 0 || static_cast<size_t>(index) >= p_.steps.size()) {
    Exit(in, "completed");  // unreachable for a checked program
    return;
  }
  if (++steps_run_ > kMaxStepsPerCall) {
    Exit(in, "loop_limit");
    return;
  }
  in.step = index;
  in.next_action = 0;
  in.status = InstanceStatus::kActive;
  ++in.step_visits[p_.step(index).id.text];
  Emit(Effect::Kind::kStep, in);
}

void Run::Exit(Instance& in, const std::string& reason) {
  in.status = InstanceStatus::kExited;
  in.wait = WaitKind::kNone;
  in.wake_at.reset();
  in.exit_reason = reason;
  in.exited_at = now_;
  Effect& e = Emit(Effect::Kind::kExited, in);
  e.reason = reason;
}

void Run::Pause(Instance& in, WaitKind kind, Time wake_at) {
  out_.state_changed = true;
  in.status = InstanceStatus::kWaiting;
  in.wait = kind;
  in.wake_at = wake_at;
  in.wait_started_at = now_;
}

void Run::Advance(Instance& in) {
  while (in.status == InstanceStatus::kActive) {
    const dsl::Step& step = p_.step(in.step);
    while (in.next_action >= 0 && static_cast<size_t>(in.next_action) < step.actions.size()) {
      const int index = in.next_action;
      Next next = std::visit(Overloaded{
                                 [&](const dsl::SendAction& a) { return Send(in, a, index); },
                                 [&](const dsl::AlertAction& a) {
                                   Alert(in, a, index);
                                   return Next::kContinue;
                                 },
                                 [&](const dsl::AssignAction& a) {
                                   Assign(in, a);
                                   return Next::kContinue;
                                 },
                                 [&](const dsl::SetAction& a) {
                                   Set(in, a);
                                   return Next::kContinue;
                                 },
                                 [&](const dsl::WebhookAction& a) {
                                   Webhook(in, a, index);
                                   return Next::kContinue;
                                 },
                                 [&](const dsl::WaitAction& a) {
                                   in.next_action = index + 1;
                                   if (a.seconds <= 0) return Next::kContinue;
                                   Pause(in, WaitKind::kTimer, now_ + Seconds{a.seconds});
                                   return Next::kPause;
                                 },
                                 [&](const dsl::WaitUntilAction& a) {
                                   in.next_action = index + 1;
                                   Zone zone =
                                       CustomerZone(p_.timezone, profile(), &in.entry_event);
                                   Time wake = NextLocalTime(zone, a.at, a.weekdays, now_);
                                   if (wake <= now_) return Next::kContinue;
                                   Pause(in, WaitKind::kTimer, wake);
                                   return Next::kPause;
                                 },
                             },
                             step.actions[static_cast<size_t>(index)]);
      if (next == Next::kPause) return;
      if (in.next_action == index) in.next_action = index + 1;
    }
    Transition(in);
  }
}

void Run::Transition(Instance& in) {
  const dsl::Step& step = p_.step(in.step);
  if (!step.transition) {
    Exit(in, "completed");
    return;
  }
  std::visit(Overloaded{
                 [&](const dsl::ThenTransition& t) { EnterStep(in, t.target.index); },
                 [&](const dsl::ExitTransition& t) { Exit(in, t.reason.value_or("completed")); },
                 [&](const dsl::IfTransition& t) {
                   Scope scope = StepScope(in);
                   for (const auto& branch : t.branches) {
                     if (branch.condition && IsTrue(*branch.condition, scope)) {
                       EnterStep(in, branch.target.index);
                       return;
                     }
                   }
                   EnterStep(in, t.otherwise ? t.otherwise->index : -1);
                 },
                 [&](const dsl::SplitTransition& t) {
                   if (t.branches.empty()) {
                     Exit(in, "completed");
                     return;
                   }
                   size_t b = SplitBranch(t, p_.id, customer_, step.id.text);
                   EnterStep(in, t.branches[b].target.index);
                 },
                 [&](const dsl::WaitForTransition& t) {
                   Pause(in, WaitKind::kEvent, now_ + Seconds{t.timeout_seconds});
                 },
             },
             *step.transition);
}

std::string Run::ActionMessageId(const Instance& in, int index) const {
  const std::string& step_id = p_.step(in.step).id.text;
  auto it = in.step_visits.find(step_id);
  int64_t visit = it == in.step_visits.end() ? 1 : it->second;
  return MessageId(p_.id, in.version, customer_, in.entry, step_id, index, visit);
}

Run::Next Run::Send(Instance& in, const dsl::SendAction& a, int index) {
  const std::string& channel = a.channel.text;
  auto skip = [&](const char* reason) {
    Effect& e = Emit(Effect::Kind::kSkipped, in);
    e.channel = channel;
    e.template_name = a.template_name.text;
    e.reason = reason;
    return Next::kContinue;
  };
  if (in.holdout) return skip("holdout");
  // Held messages not delivered yet count against the caps, so two can't share one slot.
  int64_t pending = 0;
  for (const auto& other : out_.state.instances) {
    pending += std::count_if(other.held.begin(), other.held.end(),
                             [&](const HeldMessage& m) { return m.channel == channel; });
  }
  std::string to;
  if (const char* reason = SendBlocked(p_, channel, profile(), *sends_, true, pending, now_, &to)) {
    return skip(reason);
  }
  const std::string id = ActionMessageId(in, index);
  if (a.handle) in.handles[a.handle->text] = id;
  if (auto until = QuietUntil(p_, profile(), in.entry_event, now_)) {
    HeldMessage m;
    m.channel = channel;
    m.template_name = a.template_name.text;
    m.handle = a.handle ? a.handle->text : "";
    m.message_id = id;
    m.step = p_.step(in.step).id.text;
    m.held_at = now_;
    m.until = *until;
    m.entry_event = in.entry_event;
    m.last_event = in.last_event;
    in.held.push_back(std::move(m));
    Effect& e = Emit(Effect::Kind::kHeld, in);
    e.channel = channel;
    e.template_name = a.template_name.text;
    e.handle = a.handle ? a.handle->text : "";
    e.until = *until;
    e.message_id = id;
    return Next::kContinue;  // delivered at `until`; the customer moves on now
  }
  MutableSends().push_back({channel, now_});
  Effect& e = Emit(Effect::Kind::kSent, in);
  e.channel = channel;
  e.template_name = a.template_name.text;
  e.to = std::move(to);
  e.handle = a.handle ? a.handle->text : "";
  e.message_id = id;
  e.data = TemplateData(p_, in, profile(), *ctx_.directory, ctx_.public_url + "/u/" + id);
  return Next::kContinue;
}

void Run::AlertRep(Instance& in, const Rep& rep, const std::string& template_name, int index) {
  Effect& e = Emit(Effect::Kind::kAlert, in);
  e.rep = rep.id;
  e.template_name = template_name;
  e.channel = rep.alert_via;
  if (rep.alert_via == "slack") {
    e.to = rep.slack_webhook;
  } else if (rep.alert_via == "sms") {
    e.to = rep.phone;
  } else if (rep.alert_via == "webhook") {
    e.to = rep.webhook;
  } else {
    e.to = rep.email;
  }
  e.message_id = HexId(StableHash({ActionMessageId(in, index), rep.id}));
  e.data = TemplateData(p_, in, profile(), *ctx_.directory, "");
  e.data["rep"] = {{"id", rep.id}, {"name", rep.name}, {"email", rep.email}, {"phone", rep.phone}};
}

void Run::Alert(Instance& in, const dsl::AlertAction& a, int index) {
  const Directory& dir = *ctx_.directory;
  auto skip = [&](const char* reason) {
    Effect& e = Emit(Effect::Kind::kSkipped, in);
    e.channel = "alert";
    e.template_name = a.template_name.text;
    e.reason = reason;
  };
  if (in.holdout) return skip("holdout");
  switch (a.target) {
    case dsl::AlertAction::Target::kOwner: {
      const Rep* rep = dir.FindRep(StringField(profile(), "owner"));
      if (rep == nullptr) return skip("no_owner");
      AlertRep(in, *rep, a.template_name.text, index);
      return;
    }
    case dsl::AlertAction::Target::kTeam: {
      auto it = dir.teams.find(a.target_name.text);
      if (it == dir.teams.end()) return;
      for (const Rep& rep : it->second) AlertRep(in, rep, a.template_name.text, index);
      return;
    }
    case dsl::AlertAction::Target::kRep: {
      if (const Rep* rep = dir.FindRep(a.target_name.text)) {
        AlertRep(in, *rep, a.template_name.text, index);
      }
      return;
    }
  }
}

void Run::Assign(Instance& in, const dsl::AssignAction& a) {
  auto it = ctx_.directory->teams.find(a.team.text);
  if (it == ctx_.directory->teams.end() || it->second.empty()) return;
  const std::vector<Rep>& reps = it->second;
  const std::string& team = a.team.text;
  const Rep* chosen = nullptr;
  // The caller's counters plus this call's own deltas: the snapshot is read, never copied.
  auto counter = [](const std::map<std::string, int64_t>& snapshot,
                    const std::map<std::string, int64_t>& delta, const std::string& key) {
    auto a = snapshot.find(key);
    auto b = delta.find(key);
    return (a == snapshot.end() ? 0 : a->second) + (b == delta.end() ? 0 : b->second);
  };
  auto load = [&](const std::string& rep) {
    return counter(ctx_.routing.load, out_.routing.load, rep);
  };
  auto round_robin = [&] {
    int64_t n = counter(ctx_.routing.round_robin, out_.routing.round_robin, team);
    chosen = &reps[static_cast<size_t>(n % static_cast<int64_t>(reps.size()))];
    ++out_.routing.round_robin[team];
  };
  switch (a.strategy) {
    case dsl::AssignAction::Strategy::kRoundRobin:
      round_robin();
      break;
    case dsl::AssignAction::Strategy::kLeastLoaded:
      for (const Rep& rep : reps) {
        if (chosen == nullptr || load(rep.id) < load(chosen->id)) chosen = &rep;
      }
      break;
    case dsl::AssignAction::Strategy::kTerritory: {
      json value = a.territory ? Evaluate(*a.territory, StepScope(in)) : json();
      if (value.is_string()) {
        std::string wanted = Lower(value.get<std::string>());
        for (const Rep& rep : reps) {
          if (!rep.territory.empty() && Lower(rep.territory) == wanted) {
            chosen = &rep;
            break;
          }
        }
      }
      if (chosen == nullptr) round_robin();
      break;
    }
  }
  std::string previous = StringField(profile(), "owner");
  if (previous != chosen->id) {
    if (!previous.empty()) --out_.routing.load[previous];
    ++out_.routing.load[chosen->id];
    MutableProfile()["owner"] = chosen->id;
  }
  Effect& e = Emit(Effect::Kind::kAssigned, in);
  e.rep = chosen->id;
  e.team = team;
}

void Run::Set(Instance& in, const dsl::SetAction& a) {
  json value = a.value ? Evaluate(*a.value, StepScope(in)) : json();
  SetProfileValue(MutableProfile(), a.attribute, value);
  std::string attribute;
  for (const auto& part : a.attribute) attribute += (attribute.empty() ? "" : ".") + part;
  Effect& e = Emit(Effect::Kind::kSet, in);
  e.attribute = std::move(attribute);
  e.value = std::move(value);
}

void Run::Webhook(Instance& in, const dsl::WebhookAction& a, int index) {
  if (in.holdout) {
    Effect& e = Emit(Effect::Kind::kSkipped, in);
    e.channel = "webhook";
    e.template_name = a.name.text;
    e.reason = "holdout";
    return;
  }
  Effect& e = Emit(Effect::Kind::kWebhook, in);
  e.name = a.name.text;
  e.message_id = ActionMessageId(in, index);
  e.value = {{"customer", profile()},
             {"journey", {{"id", p_.id}, {"title", p_.title}, {"version", in.version}}},
             {"event", in.last_event}};
}

}  // namespace

Outcome OnEvent(const dsl::Program& program, JourneyState state, const json& event, Time now,
                const CustomerContext& context) {
  Run run(program, std::move(state), now, context);
  run.SetCustomerFromEvent(event);
  run.Goals(event);
  if (!run.ExitRules(event)) run.WaitFor(event);
  run.EnterOnEvent(event);
  return run.Finish();
}

Outcome OnTimer(const dsl::Program& program, JourneyState state, Time now,
                const CustomerContext& context) {
  Run run(program, std::move(state), now, context);
  run.Timer();
  return run.Finish();
}

Outcome OnProfileChange(const dsl::Program& program, JourneyState state, const json& previous,
                        Time now, const CustomerContext& context) {
  Run run(program, std::move(state), now, context);
  run.EnterOnProfile(previous);
  return run.Finish();
}

}  // namespace itinera::orch
