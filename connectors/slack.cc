#include "connectors/slack.h"

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace itinera::connectors {
namespace {

// Slack reads &, < and > as markup (links, mentions); plain text must escape them.
std::string EscapeSlackText(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace

std::string SlackPayload(const Message& message) {
  std::string text = message.text_body;
  if (!message.subject.empty()) text = "*" + EscapeSlackText(message.subject) + "*\n" + text;
  nlohmann::json body = {{"text", text}};
  // Invalid UTF-8 is replaced rather than thrown on: the seam turns no exception loose.
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Delivery SlackConnector::Send(const Message& message) {
  if (message.id.empty() || message.to.empty() || message.text_body.empty()) {
    return {Delivery::kPermanent, "", "Slack message needs an id, a webhook URL and a text"};
  }
  HttpRequest request;
  request.url = message.to;
  request.content_type = "application/json; charset=utf-8";
  request.body = SlackPayload(message);
  request.headers = {{"Idempotency-Key", message.id}};
  return ToDelivery(poster_.Post(request), message.id);
}

}  // namespace itinera::connectors
