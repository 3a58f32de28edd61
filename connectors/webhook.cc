#include "connectors/webhook.h"

#include <cctype>
#include <charconv>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/crypto.h"

namespace itinera::connectors {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string SignedPayload(std::string_view timestamp, std::string_view body) {
  std::string payload(timestamp);
  payload += '.';
  payload += body;
  return payload;
}

}  // namespace

std::string WebhookSignature(std::string_view secret, Time t, std::string_view body) {
  std::string timestamp = std::to_string(t.time_since_epoch().count());
  std::string mac = HmacSha256(secret, SignedPayload(timestamp, body));
  if (mac.empty()) return "";
  return "t=" + timestamp + ",v1=" + HexEncode(mac);
}

bool VerifyWebhookSignature(std::string_view header, std::string_view secret, std::string_view body,
                            Time now, Seconds tolerance) {
  std::optional<std::string_view> timestamp;
  std::vector<std::string_view> signatures;
  while (!header.empty()) {
    size_t comma = header.find(',');
    std::string_view item = Trim(header.substr(0, comma));
    header = comma == header.npos ? std::string_view() : header.substr(comma + 1);
    size_t eq = item.find('=');
    if (eq == item.npos) continue;
    std::string_view key = item.substr(0, eq);
    std::string_view value = item.substr(eq + 1);
    if (key == "t") {
      if (timestamp) return false;  // two timestamps: which one was signed?
      timestamp = value;
    } else if (key == "v1") {
      signatures.push_back(value);
    }
  }
  if (!timestamp || signatures.empty()) return false;

  Seconds::rep seconds = 0;
  const char* end = timestamp->data() + timestamp->size();
  auto [parsed_end, ec] = std::from_chars(timestamp->data(), end, seconds);
  if (ec != std::errc() || parsed_end != end || timestamp->front() == '-') return false;
  Seconds age = now - Time(Seconds(seconds));
  if (age > tolerance || -age > tolerance) return false;

  std::string mac = HmacSha256(secret, SignedPayload(*timestamp, body));
  if (mac.empty()) return false;
  std::string expected = HexEncode(mac);
  bool match = false;
  for (std::string_view signature : signatures) {
    match = ConstantTimeEqual(expected, signature) || match;  // no early exit
  }
  return match;
}

Delivery WebhookConnector::Send(const Message& message) {
  if (message.id.empty() || message.to.empty()) {
    return {Delivery::kPermanent, "", "webhook needs an id and a URL"};
  }
  if (!nlohmann::json::accept(message.text_body)) {
    return {Delivery::kPermanent, "", "webhook body is not JSON"};
  }
  HttpRequest request;
  request.url = message.to;
  request.content_type = "application/json";
  request.body = message.text_body;
  request.headers = {{"Idempotency-Key", message.id}};
  if (!message.signing_secret.empty()) {
    if (!clock_) return {Delivery::kTransient, "", "webhook connector has no clock to sign with"};
    std::string signature = WebhookSignature(message.signing_secret, clock_(), request.body);
    if (signature.empty()) return {Delivery::kTransient, "", "cannot compute the signature"};
    request.headers.emplace_back(kWebhookSignatureHeader, std::move(signature));
  }
  return ToDelivery(poster_.Post(request), message.id);
}

}  // namespace itinera::connectors
