#include "connectors/smtp.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "connectors/mime.h"

namespace itinera::connectors {
namespace {

std::once_flag curl_init_once;
CURLcode curl_init_result = CURLE_OK;

struct Upload {
  std::string_view data;
  size_t pos = 0;
};

size_t ReadBody(char* buffer, size_t size, size_t nitems, void* userdata) {
  auto* upload = static_cast<Upload*>(userdata);
  size_t n = std::min(size * nitems, upload->data.size() - upload->pos);
  std::memcpy(buffer, upload->data.data() + upload->pos, n);
  upload->pos += n;
  return n;
}

// Keeps the server's reply lines only: what we send (including AUTH) is never recorded.
struct Trace {
  std::string last_reply;
  std::string first_error;  // the first 4xx/5xx reply: the one that explains a failure
};

// libcurl hands every SMTP reply line to the header callback, one line per call.
size_t OnReply(char* data, size_t size, size_t nitems, void* userdata) {
  const size_t n = size * nitems;
  std::string_view line(data, n);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.empty()) return n;
  auto* trace = static_cast<Trace*>(userdata);
  if (trace->first_error.empty() && (line[0] == '4' || line[0] == '5')) trace->first_error = line;
  trace->last_reply = line;
  return n;
}

std::string Lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

}  // namespace

Result<SmtpConfig> NormalizeSmtpConfig(SmtpConfig config) {
  std::string url = config.url;
  size_t q = url.find('?');
  if (q != std::string::npos) {
    std::string query = Lower(url.substr(q + 1));
    if (query == "starttls=1" || query == "starttls=true") {
      config.starttls = true;
    } else if (query != "starttls=0" && query != "starttls=false") {
      return Error{"invalid_smtp_url",
                   "unknown SMTP URL option \"" + query + "\"; only starttls=1 is understood"};
    }
    url.resize(q);
  }
  std::string lower = Lower(url);
  bool smtps = lower.rfind("smtps://", 0) == 0;
  if (!smtps && lower.rfind("smtp://", 0) != 0) {
    return Error{"invalid_smtp_url", "SMTP URL must start with smtp:// or smtps://"};
  }
  size_t host_start = smtps ? 8 : 7;
  if (url.find('@', host_start) != std::string::npos) {
    return Error{"invalid_smtp_url", "put credentials in username/password, not in the URL"};
  }
  size_t path = url.find('/', host_start);
  if (url.size() == host_start || path == host_start) {
    return Error{"invalid_smtp_url", "SMTP URL has no host"};
  }
  if (smtps && config.starttls) {
    return Error{"invalid_smtp_url", "smtps:// is already TLS; starttls applies to smtp://"};
  }
  if (path != std::string::npos) url.resize(path);
  if (!config.helo_domain.empty()) url += "/" + config.helo_domain;
  config.url = url;
  return config;
}

Result<std::unique_ptr<SmtpConnector>> SmtpConnector::Create(SmtpConfig config) {
  Result<SmtpConfig> normalized = NormalizeSmtpConfig(std::move(config));
  if (!normalized.ok()) return normalized.error();
  std::call_once(curl_init_once, [] { curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (curl_init_result != CURLE_OK) {
    return Error{"smtp_init", std::string("libcurl: ") + curl_easy_strerror(curl_init_result)};
  }
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return Error{"smtp_init", "libcurl: cannot create a handle"};
  return std::unique_ptr<SmtpConnector>(new SmtpConnector(std::move(*normalized), curl));
}

SmtpConnector::SmtpConnector(SmtpConfig config, void* curl)
    : config_(std::move(config)), curl_(curl) {}

SmtpConnector::~SmtpConnector() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

Delivery SmtpConnector::Send(const Message& message) {
  Result<std::string> mime = BuildMime(message);
  if (!mime.ok())
    return {Delivery::kPermanent, "", mime.error().code + ": " + mime.error().message};
  Result<Mailbox> from = ParseMailbox(message.from);
  Result<Mailbox> to = ParseMailbox(message.to);
  if (!from.ok() || !to.ok()) {  // BuildMime checked both already
    return {Delivery::kPermanent, "", "invalid_address"};
  }

  std::lock_guard<std::mutex> lock(mu_);
  CURL* curl = static_cast<CURL*>(curl_);
  curl_easy_reset(curl);  // keeps the live connection for reuse
  Upload upload{*mime};
  Trace trace;
  const std::string mail_from = "<" + from->address + ">";
  curl_slist* rcpt = curl_slist_append(nullptr, ("<" + to->address + ">").c_str());
  curl_easy_setopt(curl, CURLOPT_URL, config_.url.c_str());
  curl_easy_setopt(curl, CURLOPT_MAIL_FROM, mail_from.c_str());
  curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, rcpt);
  curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(curl, CURLOPT_READFUNCTION, &ReadBody);
  curl_easy_setopt(curl, CURLOPT_READDATA, &upload);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(config_.connect_timeout.count()));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(config_.total_timeout.count()));
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &OnReply);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &trace);
  if (config_.starttls) curl_easy_setopt(curl, CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_ALL));
  if (!config_.username.empty()) {
    curl_easy_setopt(curl, CURLOPT_USERNAME, config_.username.c_str());
    curl_easy_setopt(curl, CURLOPT_PASSWORD, config_.password.c_str());
  }
  if (!config_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, config_.ca_file.c_str());
  if (!config_.verify_peer) {
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
  }

  CURLcode rc = curl_easy_perform(curl);
  long code = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  curl_slist_free_all(rcpt);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, nullptr);
  curl_easy_setopt(curl, CURLOPT_READDATA, nullptr);

  if (rc == CURLE_OK) {
    std::string id =
        trace.last_reply.empty() ? MessageIdFor(message.id, from->address) : trace.last_reply;
    return {Delivery::kSent, id, ""};
  }
  std::string error = std::string(curl_easy_strerror(rc));
  const std::string& reply = trace.first_error.empty() ? trace.last_reply : trace.first_error;
  if (!reply.empty()) error += " (server: " + reply + ")";
  bool permanent = code >= 500 && code < 600 && rc != CURLE_LOGIN_DENIED;
  return {permanent ? Delivery::kPermanent : Delivery::kTransient, "", error};
}

}  // namespace itinera::connectors
