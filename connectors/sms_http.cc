#include "connectors/sms_http.h"

#include <nlohmann/json.hpp>
#include <string>
#include <utility>

namespace itinera::connectors {
namespace {

bool IsHttpUrl(const std::string& url) {
  return url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0;
}

}  // namespace

Result<std::unique_ptr<TwilioSmsConnector>> TwilioSmsConnector::Create(TwilioSmsConfig config) {
  auto invalid = [](std::string message) {
    return Error{"invalid_sms_config", std::move(message)};
  };
  if (!IsHttpUrl(config.url)) return invalid("sms url must start with http:// or https://");
  if (config.account.empty()) return invalid("sms account is empty");
  if (config.account.find(':') != std::string::npos) return invalid("sms account contains ':'");
  if (config.token.empty()) return invalid("sms token is empty");
  if (config.from.empty()) return invalid("sms from is empty");
  return std::unique_ptr<TwilioSmsConnector>(new TwilioSmsConnector(std::move(config)));
}

TwilioSmsConnector::TwilioSmsConnector(TwilioSmsConfig config)
    : config_(std::move(config)), poster_(config_.http) {}

Delivery TwilioSmsConnector::Send(const Message& message) {
  if (message.id.empty() || message.to.empty() || message.text_body.empty()) {
    return {Delivery::kPermanent, "", "SMS needs an id, a recipient and a body"};
  }
  HttpRequest request;
  request.url = config_.url;
  request.content_type = "application/x-www-form-urlencoded";
  request.body = FormUrlEncode({{"To", message.to},
                                {"From", message.from.empty() ? config_.from : message.from},
                                {"Body", message.text_body}});
  request.headers = {{"Idempotency-Key", message.id}, {"Accept", "application/json"}};
  request.username = config_.account;
  request.password = config_.token;
  HttpResponse response = poster_.Post(request);

  std::string sid = message.id;
  nlohmann::json answer = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (answer.is_object() && answer.contains("sid") && answer["sid"].is_string() &&
      !answer["sid"].get<std::string>().empty()) {
    sid = answer["sid"].get<std::string>();
  }
  return ToDelivery(response, std::move(sid));
}

}  // namespace itinera::connectors
