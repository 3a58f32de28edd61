#include "orchestrator/dispatcher.h"

#include <algorithm>

#include "orchestrator/engine.h"
#include "orchestrator/processor.h"
#include "util/log.h"

namespace itinera::orch {

using connectors::Delivery;
using connectors::Message;
using nlohmann::json;

namespace {

constexpr auto kIdlePoll = std::chrono::seconds(1);

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

void Dispatcher::Start() {
  for (auto& [name, lane] : lanes_) {
    Lane* l = lane.get();
    if (!l->made) {
      l->connectors = make_(name);
      l->made = true;
    }
    l->thread = std::thread([this, l] { Loop(*l); });
  }
}

void Dispatcher::Poke() {
  {
    std::lock_guard lock(mu_);
    ++pokes_;
  }
  wake_.notify_all();
}

void Dispatcher::Stop() {
  stopping_ = true;
  wake_.notify_all();
  for (auto& [name, lane] : lanes_) {
    if (lane->thread.joinable()) lane->thread.join();
  }
}

void Dispatcher::Loop(Lane& lane) {
  while (!stopping_) {
    uint64_t seen;
    {
      std::lock_guard lock(mu_);
      seen = pokes_;
    }
    Result<int> handled = RunLane(lane.name);
    if (!handled.ok()) {
      LogError("dispatcher pass failed", {{"lane", lane.name}, {"error", handled.error().message}});
    }
    if (handled.ok() && *handled > 0) continue;
    std::unique_lock lock(mu_);
    wake_.wait_for(lock, kIdlePoll, [&] { return stopping_ || pokes_ != seen; });
  }
}

Result<int> Dispatcher::RunLane(const std::string& name) {
  Lane& lane = *lanes_.at(name);
  if (!lane.made) {
    lane.connectors = make_(name);
    lane.made = true;
  }
  const Time now = clock_.Now();
  auto claimed = store_.ClaimDue(now, options_.claim, options_.lease, name);
  if (!claimed.ok()) return claimed.error();
  const auto started = std::chrono::steady_clock::now();
  int handled = 0;
  for (const OutboxMessage& m : *claimed) {
    Throttle(lane);
    // Give back what we will not get to: on stop, or when a send started now might outlast the
    // lease (another daemon could then claim and send it too). Checked after the rate limit's
    // wait, right before the send.
    bool late = std::chrono::steady_clock::now() - started > options_.lease / 2;
    if (stopping_ || late) {
      Status s = store_.MarkRetry(m.id, clock_.Now(), m.last_error);
      if (!s.ok())
        LogError("cannot release a message", {{"id", m.id}, {"error", s.error().message}});
      continue;
    }
    Deliver(lane, m);
    ++handled;
  }
  return handled;
}

void Dispatcher::Throttle(Lane& lane) {
  if (lane.rate <= 0) return;
  auto now = std::chrono::steady_clock::now();
  if (lane.next_send > now) {
    std::unique_lock lock(mu_);
    wake_.wait_until(lock, lane.next_send, [&] { return stopping_.load(); });
    now = std::chrono::steady_clock::now();
  }
  auto interval = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(1.0 / lane.rate));
  lane.next_send = std::max(lane.next_send, now) + interval;
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

void Dispatcher::Deliver(Lane& lane, const OutboxMessage& m) {
  LaneStats& stats = *lane.stats;
  const Time now = clock_.Now();
  auto dead = [&](const std::string& error) {
    ++stats.dead;
    Status s = Record([&] { return store_.MarkDead(m.id, error); });
    LogWarn("message is dead", {{"id", m.id},
                                {"lane", lane.name},
                                {"customer", m.customer},
                                {"journey", m.journey},
                                {"error", error}});
    if (!s.ok())
      LogError("cannot record a dead message", {{"id", m.id}, {"error", s.error().message}});
  };
  if (m.payload.contains("render_error"))
    return dead("template: " + Text(m.payload, "render_error"));

  Message msg;
  msg.id = m.id;
  msg.date = m.created_at;
  Delivery result;
  const std::string channel = m.channel;

  if (channel == "email" || channel == "sms") {
    // Checked again just before sending: consent, address, caps, quiet hours.
    auto profile = store_.GetProfile(m.customer);
    if (!profile.ok()) {
      Status s = store_.MarkRetry(m.id, now + Seconds{5}, profile.error().message);
      (void)s;
      return;
    }
    if (!profile->has_value()) {
      ++stats.cancelled;
      (void)store_.MarkCancelled(m.id, "erased");
      return;
    }
    std::string to = Text(m.payload, "to");
    auto catalog = registry_.Snapshot();
    const dsl::Program* program =
        catalog->Find(m.journey, m.payload.value("version", static_cast<int64_t>(0)));
    if (program != nullptr) {
      auto sends = store_.RecentSends(m.customer, now - kSendHistory);
      std::vector<SendRecord> others = sends.ok() ? *sends : std::vector<SendRecord>();
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
      HeldDelivery check = DeliverHeld(*program, held, **profile, others, now);
      if (check.kind == HeldDelivery::Kind::kSkipped) {
        ++stats.cancelled;
        Status s = store_.MarkCancelled(m.id, check.reason);
        LogInfo("message cancelled at dispatch", {{"id", m.id}, {"reason", check.reason}});
        if (!s.ok()) LogError("cannot cancel a message", {{"id", m.id}});
        return;
      }
      if (check.kind == HeldDelivery::Kind::kHeld && check.until) {
        ++stats.deferred;
        (void)store_.MarkRetry(m.id, *check.until, "quiet hours until " + FormatTime(*check.until));
        return;
      }
      if (!check.to.empty()) to = check.to;
    }
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
      result = SendVia(lane.connectors.email.get(), msg, "email");
      stats.send_micros += std::chrono::duration_cast<std::chrono::microseconds>(
                               std::chrono::steady_clock::now() - t0)
                               .count();
    } else {
      msg.channel = connectors::Channel::kSms;
      msg.text_body = Text(m.payload, "text");
      result = SendVia(lane.connectors.sms.get(), msg, "sms");
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
      result = SendVia(lane.connectors.chat.get(), msg, "slack");
    } else if (via == "sms") {
      msg.channel = connectors::Channel::kSms;
      msg.to = rep->phone;
      msg.text_body = text;
      result = SendVia(lane.connectors.sms.get(), msg, "sms");
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
      result = SendVia(lane.connectors.webhook.get(), msg, "webhook");
    } else {
      msg.channel = connectors::Channel::kEmail;
      msg.to = rep->name.empty() ? rep->email : rep->name + " <" + rep->email + ">";
      if (rep->email.empty()) return dead("rep " + rep->id + " has no email address");
      msg.from = options_.email_from;
      msg.subject = subject;
      msg.text_body = text + (text.empty() || text.back() == '\n' ? "\n" : "\n\n") + context;
      result = SendVia(lane.connectors.email.get(), msg, "email");
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
    result = SendVia(lane.connectors.webhook.get(), msg, "webhook");
  } else {
    return dead("unknown channel " + channel);
  }

  switch (result.outcome) {
    case Delivery::kSent: {
      ++stats.sent;
      Status s = Record([&] { return store_.MarkSent(m.id, clock_.Now()); });
      if (!s.ok())
        LogError("cannot record a sent message", {{"id", m.id}, {"error", s.error().message}});
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
      Status s = Record([&] { return store_.MarkRetry(m.id, clock_.Now() + wait, result.error); });
      LogWarn("send failed; will retry", {{"id", m.id},
                                          {"lane", lane.name},
                                          {"attempt", m.attempts},
                                          {"retry_in_s", wait.count()},
                                          {"error", result.error}});
      if (!s.ok()) LogError("cannot record a retry", {{"id", m.id}, {"error", s.error().message}});
      break;
    }
    case Delivery::kPermanent:
      dead(result.error);
      break;
  }
}

}  // namespace itinera::orch
