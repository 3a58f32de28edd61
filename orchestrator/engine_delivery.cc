#include "orchestrator/engine_delivery.h"

#include <algorithm>

#include "orchestrator/engine.h"
#include "orchestrator/zone.h"

namespace itinera::orch {

using nlohmann::json;

const char* SendBlocked(const dsl::Program& program, const std::string& channel,
                        const json& profile, const std::vector<SendRecord>& sends, bool count_held,
                        int64_t pending, Time now, std::string* to) {
  auto consent = profile.find("consent");
  bool consented = consent != profile.end() && consent->is_object() &&
                   consent->value(channel, json(false)) == json(true);
  if (!consented) return "no_consent";
  auto address = profile.find(channel == "sms" ? "phone" : "email");
  if (address == profile.end() || !address->is_string() ||
      address->get_ref<const std::string&>().empty()) {
    return "no_address";
  }
  *to = address->get_ref<const std::string&>();
  for (const auto& cap : program.frequency_caps) {
    if (cap.channel.text != channel) continue;
    const Time from = now - Seconds{cap.per_seconds};
    int64_t count = std::count_if(sends.begin(), sends.end(), [&](const SendRecord& s) {
      if (s.channel != channel) return false;
      if (s.held) return count_held;
      return s.at > from && s.at <= now;
    });
    if (count_held) count += pending;
    if (count >= cap.count) return "frequency_cap";
  }
  return nullptr;
}

std::optional<Time> QuietUntil(const dsl::Program& program, const json& profile,
                               const json& entry_event, Time now) {
  if (!program.quiet_hours) return std::nullopt;
  Zone zone = CustomerZone(program.timezone, profile, &entry_event);
  auto end = QuietHoursEnd(zone, program.quiet_hours->from, program.quiet_hours->to, now);
  if (end && *end > now) return end;
  return std::nullopt;
}

HeldDelivery DeliverHeld(const dsl::Program& program, const HeldMessage& message,
                         const json& profile, const std::vector<SendRecord>& recent_sends,
                         Time now) {
  HeldDelivery d;
  static const json kNoProfile = json::object();
  const json& p = profile.is_object() ? profile : kNoProfile;  // no copy of the profile
  if (const char* reason =
          SendBlocked(program, message.channel, p, recent_sends, false, 0, now, &d.to)) {
    d.kind = HeldDelivery::Kind::kSkipped;
    d.reason = reason;
    d.to.clear();
    return d;
  }
  if (auto until = QuietUntil(program, p, message.entry_event, now)) {
    d.kind = HeldDelivery::Kind::kHeld;
    d.until = *until;
    d.to.clear();
    return d;
  }
  d.kind = HeldDelivery::Kind::kSent;
  return d;
}

void DeliverDueHeld(const dsl::Program& program, Instance& in, const json& profile,
                    const Directory& directory, const std::string& public_url, Time now,
                    const Effect& base, std::vector<SendRecord>& sends,
                    std::vector<Effect>& effects) {
  std::vector<HeldMessage> kept;
  for (HeldMessage& m : in.held) {
    if (m.until > now) {
      kept.push_back(std::move(m));
      continue;
    }
    HeldDelivery d = DeliverHeld(program, m, profile, sends, now);
    Effect e = base;
    e.at = now;
    e.step = m.step;
    e.channel = m.channel;
    e.template_name = m.template_name;
    e.message_id = m.message_id;
    e.handle = m.handle;
    switch (d.kind) {
      case HeldDelivery::Kind::kSent: {
        e.kind = Effect::Kind::kSent;
        e.to = d.to;
        sends.push_back({m.channel, now});
        // Rendered with the events of the moment it was held (TemplateData reads the version
        // and the events of the instance); the message is not kept, so they are moved.
        Instance view;
        view.version = in.version;
        view.entry_event = std::move(m.entry_event);
        view.last_event = std::move(m.last_event);
        e.data = TemplateData(program, view, profile, directory, public_url + "/u/" + m.message_id);
        break;
      }
      case HeldDelivery::Kind::kSkipped:
        e.kind = Effect::Kind::kSkipped;
        e.reason = d.reason;
        break;
      case HeldDelivery::Kind::kHeld:
        e.kind = Effect::Kind::kHeld;
        m.until = *d.until;
        e.until = m.until;
        kept.push_back(std::move(m));
        break;
    }
    effects.push_back(std::move(e));
  }
  in.held = std::move(kept);
}

void CancelHeldMessages(Instance& in, const Effect& base, std::vector<Effect>& effects) {
  for (const HeldMessage& m : in.held) {
    Effect e = base;
    e.kind = Effect::Kind::kSkipped;
    e.step = m.step;
    e.channel = m.channel;
    e.template_name = m.template_name;
    e.message_id = m.message_id;
    e.reason = "exited";
    effects.push_back(std::move(e));
  }
  in.held.clear();
}

}  // namespace itinera::orch
