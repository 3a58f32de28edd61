// The tracking endpoints behind the links planted in emails: /t/o (open pixel), /t/c (click
// redirect) and /u (one-click unsubscribe, RFC 8058).
//
// A token is trusted only after VerifyToken with the kind the path serves; anything else, and a
// token naming a message that is gone or was erased, gets 404 and records nothing. A click
// redirects only to the URL stored with the message. HEAD requests answer the same way but
// record nothing, so link scanners that probe with HEAD do not open, click or unsubscribe.
#include "orchestrator/api_router.h"
#include "util/time.h"

namespace itinera::orch {
namespace {

using json = nlohmann::json;

// A 1x1 transparent GIF (GIF89a, 43 bytes).
constexpr unsigned char kPixel[] = {
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00,
    0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b};

const char* KindLabel(TrackingKind kind) {
  switch (kind) {
    case TrackingKind::kOpen:
      return "open";
    case TrackingKind::kClick:
      return "click";
    case TrackingKind::kUnsubscribe:
      return "unsubscribe";
  }
  return "open";
}

}  // namespace

ApiResponse ApiRouter::Track(const ApiRequest& request, TrackingKind kind,
                             std::string_view token) const {
  const MetricLabels labels = {{"kind", KindLabel(kind)}};
  auto count = [&](const char* name, const char* help) {
    backend_.metrics->Counter(name, help, labels).Increment();
  };
  auto reject = [&] {
    count("itinera_tracking_rejected_total",
          "Tracking requests answered 404: forged, altered or wrong-kind tokens, or messages "
          "that are gone.");
    return ErrorResponse(404, "not_found", "no such link");
  };
  // These links are public: a storage failure is not described to whoever follows them.
  auto unavailable = [] { return Unavailable(Error{}); };
  auto verified = VerifyToken(token, options_.tracking_secret, kind);
  if (!verified) return reject();
  auto found = backend_.store->GetMessage(verified->message_id);
  if (!found.ok()) return unavailable();
  // An erased customer's messages keep only their id and status.
  const bool erased = *found && ((*found)->customer.empty() || (*found)->recipient.empty());
  if (!*found || erased) return reject();
  const OutboxMessage& message = **found;

  std::string url;
  if (kind == TrackingKind::kClick) {
    auto links = message.payload.find("links");
    if (links == message.payload.end() || !links->is_array() ||
        verified->link_index >= links->size() || !(*links)[verified->link_index].is_string()) {
      return reject();
    }
    url = (*links)[verified->link_index].get<std::string>();
  }

  const bool record = request.method != "HEAD";
  const std::string channel = message.channel.empty() ? "email" : message.channel;
  json properties = {{"message", message.id}, {"journey", message.journey}, {"channel", channel}};
  NewEvent event;
  event.customer = message.customer;
  event.at = backend_.clock->Now();
  if (kind == TrackingKind::kUnsubscribe) {
    event.id = "unsubscribe:" + message.id;  // once per message, however often it is hit
    if (record) {
      auto change = backend_.upsert_customer(message.customer, {{"consent", {{channel, false}}}});
      if (!change.ok()) return unavailable();
    }
  } else {
    auto handle = message.payload.find("handle");
    if (handle != message.payload.end() && handle->is_string()) properties["handle"] = *handle;
    if (kind == TrackingKind::kClick) properties["url"] = url;
  }
  const char* type = kind == TrackingKind::kOpen    ? "email_opened"
                     : kind == TrackingKind::kClick ? "link_clicked"
                                                    : "unsubscribed";
  event.body = {{"customer_id", event.customer},
                {"type", type},
                {"timestamp", FormatTime(event.at)},
                {"properties", std::move(properties)}};
  if (!event.id.empty()) event.body["id"] = event.id;

  if (record) {
    Status appended = Append({std::move(event)});
    if (appended.ok()) {
      count("itinera_tracking_hits_total", "Tracking links followed (events recorded), by kind.");
    } else {
      count("itinera_tracking_failures_total", "Tracking hits whose event could not be stored.");
      // The person clicking must still get where the link goes; the loss is counted above.
      // An open or unsubscribe answers 503 so nothing claims a change that was not stored.
      if (kind != TrackingKind::kClick) return unavailable();
    }
  }

  ApiResponse r;
  r.headers.emplace_back("Cache-Control", "no-store");
  switch (kind) {
    case TrackingKind::kOpen:
      r.content_type = "image/gif";
      r.body.assign(reinterpret_cast<const char*>(kPixel), sizeof(kPixel));
      break;
    case TrackingKind::kClick:
      r.status = 302;
      r.content_type = "text/plain; charset=utf-8";
      r.headers.emplace_back("Location", url);
      r.body = "Redirecting to " + url + "\n";
      break;
    case TrackingKind::kUnsubscribe:
      if (request.method == "POST") {
        r.content_type = "text/plain; charset=utf-8";
        r.body = "You are unsubscribed.\n";
      } else {
        r.content_type = "text/html; charset=utf-8";
        r.body =
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Unsubscribed</title>"
            "</head>\n<body><p>You are unsubscribed. You will not receive these messages "
            "any more.</p></body></html>\n";
      }
      break;
  }
  return r;
}

}  // namespace itinera::orch
