#include "connectors/http_post.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace itinera::connectors {
namespace {

std::once_flag curl_init_once;
CURLcode curl_init_result = CURLE_OK;

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  }
  return true;
}

bool IsHttpUrl(std::string_view url) {
  return StartsWithNoCase(url, "http://") || StartsWithNoCase(url, "https://");
}

// A header line must stay one line: CR, LF or NUL would let a value inject headers.
bool IsHeaderSafe(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) == s.npos;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Printable, one line, at most kErrorExcerptBytes, never cut inside a UTF-8 sequence.
std::string Excerpt(std::string_view body) {
  body = Trim(body);
  bool cut = body.size() > kErrorExcerptBytes;
  if (cut) {
    size_t end = kErrorExcerptBytes;
    while (end > 0 && (static_cast<unsigned char>(body[end]) & 0xC0) == 0x80) --end;
    body = body.substr(0, end);
  }
  std::string out(body);
  for (char& c : out) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) c = ' ';
  }
  if (cut) out += "...";
  return out;
}

size_t OnBody(char* data, size_t size, size_t nmemb, void* userdata) {
  auto* response = static_cast<HttpResponse*>(userdata);
  size_t n = size * nmemb;
  if (response->body.size() < kMaxResponseBody) {
    response->body.append(data, std::min(n, kMaxResponseBody - response->body.size()));
  }
  return n;  // the rest is read and dropped, not an error
}

size_t OnHeader(char* data, size_t size, size_t nitems, void* userdata) {
  auto* response = static_cast<HttpResponse*>(userdata);
  size_t n = size * nitems;
  std::string_view line(data, n);
  if (StartsWithNoCase(line, "http/")) {  // a new response (after 100 Continue, say)
    response->retry_after.reset();
  } else if (StartsWithNoCase(line, "retry-after:")) {
    std::string_view value = Trim(line.substr(12));
    Seconds::rep seconds = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (ec == std::errc() && end == value.data() + value.size() && seconds >= 0) {
      response->retry_after = Seconds(seconds);
    }
  }
  return n;
}

// Appends "Name: value" (or "Name;", libcurl's spelling of an empty value). False on failure,
// with the list freed.
bool AppendHeader(curl_slist*& list, std::string_view name, std::string_view value) {
  std::string line(name);
  line += value.empty() ? ";" : ": ";
  line += value;
  curl_slist* appended = curl_slist_append(list, line.c_str());
  if (appended == nullptr) {
    curl_slist_free_all(list);
    list = nullptr;
    return false;
  }
  list = appended;
  return true;
}

std::string StatusError(const HttpResponse& response) {
  std::string error = "HTTP " + std::to_string(response.status);
  if (response.status >= 300 && response.status < 400) error += " (redirects are not followed)";
  if (response.retry_after) {
    error += ", retry after " + std::to_string(response.retry_after->count()) + "s";
  }
  std::string excerpt = Excerpt(response.body);
  if (!excerpt.empty()) error += ": " + excerpt;
  return error;
}

}  // namespace

Delivery::Outcome ClassifyHttpStatus(long status) {
  if (status >= 200 && status < 300) return Delivery::kSent;
  if (status == 408 || status == 429 || (status >= 500 && status < 600))
    return Delivery::kTransient;
  if (status >= 300 && status < 500) return Delivery::kPermanent;
  return Delivery::kTransient;  // 1xx as a final answer, or nonsense: the peer is misbehaving
}

std::string FormUrlEncode(const std::vector<std::pair<std::string, std::string>>& fields) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  auto encode = [&out](std::string_view s) {
    for (char c : s) {
      unsigned char u = static_cast<unsigned char>(c);
      if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
        out += c;
      } else {
        out += '%';
        out += kHex[u >> 4];
        out += kHex[u & 0x0F];
      }
    }
  };
  for (const auto& [name, value] : fields) {
    if (!out.empty()) out += '&';
    encode(name);
    out += '=';
    encode(value);
  }
  return out;
}

HttpPoster::HttpPoster(HttpOptions options) : options_(std::move(options)) {}

HttpPoster::~HttpPoster() {
  if (curl_ != nullptr) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

HttpResponse HttpPoster::Post(const HttpRequest& request) {
  HttpResponse response;
  if (!IsHttpUrl(request.url)) {
    response.outcome = Delivery::kPermanent;
    response.error = "not an http:// or https:// URL";
    return response;
  }
  bool headers_safe = IsHeaderSafe(request.content_type);
  for (const auto& [name, value] : request.headers) {
    headers_safe = headers_safe && !name.empty() && name.find(':') == std::string::npos &&
                   IsHeaderSafe(name) && IsHeaderSafe(value);
  }
  if (!headers_safe) {
    response.outcome = Delivery::kPermanent;
    response.error = "invalid header (empty name, or CR, LF or NUL in a name or value)";
    return response;
  }

  std::lock_guard<std::mutex> lock(mu_);
  if (curl_ == nullptr) {
    std::call_once(curl_init_once,
                   [] { curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT); });
    if (curl_init_result != CURLE_OK) {
      response.error = std::string("libcurl: ") + curl_easy_strerror(curl_init_result);
      return response;
    }
    curl_ = curl_easy_init();
    if (curl_ == nullptr) {
      response.error = "libcurl: cannot create a handle";
      return response;
    }
  }
  CURL* curl = static_cast<CURL*>(curl_);
  curl_easy_reset(curl);  // keeps the live connection for reuse

  curl_slist* headers = nullptr;
  bool listed = AppendHeader(headers, "Content-Type", request.content_type) &&
                AppendHeader(headers, "Expect", "");  // no 100-continue round trip
  for (const auto& [name, value] : request.headers) {
    listed = listed && AppendHeader(headers, name, value);
  }
  if (!listed) {
    response.error = "libcurl: out of memory";
    return response;
  }

  char error_buffer[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_POST, 1L);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "Itinera");
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(options_.connect_timeout.count()));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.total_timeout.count()));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &response);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
  if (!request.username.empty()) {
    curl_easy_setopt(curl, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
    curl_easy_setopt(curl, CURLOPT_USERNAME, request.username.c_str());
    curl_easy_setopt(curl, CURLOPT_PASSWORD, request.password.c_str());
  }
  if (!options_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, options_.ca_file.c_str());

  CURLcode rc = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  // Nothing on the handle may point into this frame once Post returns.
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, nullptr);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, nullptr);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, nullptr);
  curl_easy_setopt(curl, CURLOPT_PASSWORD, nullptr);
  curl_slist_free_all(headers);

  if (rc != CURLE_OK) {
    // The URL is not quoted: libcurl's messages name the host and port only.
    response.error = curl_easy_strerror(rc);
    if (error_buffer[0] != '\0') response.error += std::string(" (") + error_buffer + ")";
    bool request_is_bad = rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL;
    response.outcome = request_is_bad ? Delivery::kPermanent : Delivery::kTransient;
    return response;
  }
  response.outcome = ClassifyHttpStatus(response.status);
  if (response.outcome != Delivery::kSent) response.error = StatusError(response);
  return response;
}

Delivery ToDelivery(const HttpResponse& response, std::string provider_id) {
  if (response.outcome != Delivery::kSent) {
    return {response.outcome, "", response.error, response.retry_after};
  }
  return {Delivery::kSent, std::move(provider_id), ""};
}

}  // namespace itinera::connectors
