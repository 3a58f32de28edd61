// Routing, authentication, shared helpers, and the /v1 handlers other than customers.
#include "orchestrator/api_router.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <condition_variable>
#include <mutex>
#include <set>

#include "util/crypto.h"
#include "util/json_limits.h"
#include "util/log.h"
#include "util/time.h"

namespace itinera::orch {
namespace {

using json = nlohmann::json;

enum class RouteId {
  kEvents,
  kCustomer,
  kJourneys,
  kJourney,
  kMessages,
  kMetrics,
  kHealth,
  kOpen,
  kClick,
  kUnsubscribe,
};

struct RouteSpec {
  RouteId id;
  std::string_view label;  // the template, for metrics and messages
  std::string_view path;   // exact, or the prefix before the parameter
  bool param;              // the rest of the path (non-empty) is the parameter
  std::string_view allow;  // the Allow header; HEAD goes with GET (the server maps it)
};

constexpr RouteSpec kRoutes[] = {
    {RouteId::kEvents, "/v1/events", "/v1/events", false, "POST"},
    {RouteId::kCustomer, "/v1/customers/{id}", "/v1/customers/", true, "GET, HEAD, PUT, DELETE"},
    {RouteId::kJourneys, "/v1/journeys", "/v1/journeys", false, "GET, HEAD"},
    {RouteId::kJourney, "/v1/journeys/{id}", "/v1/journeys/", true, "GET, HEAD"},
    {RouteId::kMessages, "/v1/messages", "/v1/messages", false, "GET, HEAD"},
    {RouteId::kMetrics, "/metrics", "/metrics", false, "GET, HEAD"},
    {RouteId::kHealth, "/healthz", "/healthz", false, "GET, HEAD"},
    {RouteId::kOpen, "/t/o/{token}", "/t/o/", true, "GET, HEAD"},
    {RouteId::kClick, "/t/c/{token}", "/t/c/", true, "GET, HEAD"},
    {RouteId::kUnsubscribe, "/u/{token}", "/u/", true, "GET, HEAD, POST"},
};

struct RouteMatch {
  const RouteSpec* spec = nullptr;
  std::string param;
};

std::optional<RouteMatch> MatchRoute(std::string_view path) {
  for (const RouteSpec& r : kRoutes) {
    if (r.param) {
      if (path.size() > r.path.size() && path.starts_with(r.path)) {
        return RouteMatch{&r, std::string(path.substr(r.path.size()))};
      }
    } else if (path == r.path) {
      return RouteMatch{&r, ""};
    }
  }
  return std::nullopt;
}

bool Allows(const RouteSpec& route, std::string_view method) {
  std::string_view allow = route.allow;
  while (!allow.empty()) {
    size_t comma = allow.find(", ");
    if (allow.substr(0, comma) == method) return true;
    if (comma == std::string_view::npos) break;
    allow.remove_prefix(comma + 2);
  }
  return false;
}

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

int64_t CounterOf(const std::map<std::string, int64_t>& counters, const std::string& name) {
  auto it = counters.find(name);
  return it == counters.end() ? 0 : it->second;
}

// ---- events ----

// Where a field of event `index` is, for messages: "events[3].type", or "type" for a lone event.
std::string FieldPath(std::optional<size_t> index, std::string_view field) {
  std::string prefix = index ? "events[" + std::to_string(*index) + "]" : "";
  if (field.empty()) return index ? prefix : "event";
  return index ? prefix + "." + std::string(field) : std::string(field);
}

// A required or optional string field of an event: nullopt when absent (or null), else the
// string, else an error.
Result<std::optional<std::string>> StringField(const json& e, const char* key,
                                               std::optional<size_t> index, bool required) {
  auto it = e.find(key);
  if (it == e.end() || it->is_null()) {
    if (required) return Error{"missing_field", FieldPath(index, key) + ": missing"};
    return std::optional<std::string>();
  }
  if (!it->is_string()) return Error{"invalid_event", FieldPath(index, key) + ": not a string"};
  return std::optional<std::string>(it->get<std::string>());
}

// Validates one event of the request and normalises it as the store keeps it.
Result<NewEvent> NormaliseEvent(const json& e, std::optional<size_t> index, Time now) {
  if (!e.is_object()) return Error{"invalid_event", FieldPath(index, "") + ": not an object"};
  NewEvent out;
  struct Required {
    const char* key;
    size_t max;
    std::string* value;
  };
  std::string type;
  for (Required r : {Required{"customer_id", kMaxCustomerIdBytes, &out.customer},
                     Required{"type", kMaxEventTypeBytes, &type}}) {
    auto field = StringField(e, r.key, index, true);
    if (!field.ok()) return field.error();
    if (auto problem = IdProblem(**field, r.max)) {
      return Error{"invalid_event", FieldPath(index, r.key) + ": " + *problem};
    }
    *r.value = **field;
  }
  if (!type.empty() && type[0] == '$') {
    // Types starting with '$' are the daemon's own (a profile change through PUT).
    return Error{"invalid_event",
                 FieldPath(index, "type") + ": types starting with '$' are reserved for Itinera"};
  }
  auto id = StringField(e, "id", index, false);
  if (!id.ok()) return id.error();
  if (*id) {
    if (auto problem = IdProblem(**id, kMaxEventIdBytes)) {
      return Error{"invalid_event", FieldPath(index, "id") + ": " + *problem};
    }
    out.id = **id;
  }
  auto stamp = StringField(e, "timestamp", index, false);
  if (!stamp.ok()) return stamp.error();
  out.at = now;
  if (*stamp) {
    auto at = ParseTime(**stamp);
    if (!at) {
      return Error{"invalid_event", FieldPath(index, "timestamp") +
                                        ": not an RFC 3339 date-time (\"2026-11-22T10:00:00Z\")"};
    }
    out.at = *at;
  }
  json properties = json::object();
  if (auto it = e.find("properties"); it != e.end() && !it->is_null()) {
    if (!it->is_object()) {
      return Error{"invalid_event", FieldPath(index, "properties") + ": not an object"};
    }
    properties = *it;
  }
  // As the simulator does: these top-level keys are shorthands for properties.
  for (const char* key : {"handle", "journey", "message"}) {
    if (auto it = e.find(key); it != e.end() && !properties.contains(key)) properties[key] = *it;
  }
  out.body = {{"customer_id", out.customer},
              {"type", type},
              {"timestamp", FormatTime(out.at)},
              {"properties", std::move(properties)}};
  if (!out.id.empty()) out.body["id"] = out.id;
  return out;
}

json MessageJson(const OutboxMessage& m) {
  return {{"id", m.id},
          {"customer", m.customer},
          {"journey", m.journey},
          {"channel", m.channel},
          {"recipient", m.recipient},
          {"status", MessageStatusName(m.status)},
          {"attempts", m.attempts},
          {"last_error", m.last_error},
          {"created_at", FormatTime(m.created_at)},
          {"not_before", FormatTime(m.not_before)},
          {"sent_at", m.sent_at ? json(FormatTime(*m.sent_at)) : json(nullptr)}};
}

}  // namespace

// ---- helpers shared by the handler files ----

ApiResponse JsonResponse(int status, const json& body) {
  ApiResponse r;
  r.status = status;
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

ApiResponse ErrorResponse(int status, std::string_view code, std::string_view message) {
  return JsonResponse(status, {{"error", {{"code", code}, {"message", message}}}});
}

ApiResponse BadRequest(const Error& error) { return ErrorResponse(400, error.code, error.message); }

ApiResponse Unavailable(const Error& error) {
  // The cause goes to the log, not to the caller: a database's message names hosts and users.
  if (!error.code.empty()) {
    LogWarn("a request failed in the store", {{"code", error.code}, {"error", error.message}});
  }
  ApiResponse r = ErrorResponse(503, "unavailable", "storage is unavailable, retry later");
  r.headers.emplace_back("Retry-After", "1");
  return r;
}

std::string RouteLabel(std::string_view path) {
  auto match = MatchRoute(path);
  return match ? std::string(match->spec->label) : "unmatched";
}

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 2, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 3, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 4, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3F);
    }
    const uint32_t min = n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

std::optional<std::string> IdProblem(std::string_view id, size_t max_bytes) {
  if (id.empty()) return "empty";
  if (id.size() > max_bytes) return "longer than " + std::to_string(max_bytes) + " bytes";
  if (!IsValidUtf8(id)) return "not valid UTF-8";
  auto control = [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; };
  if (std::any_of(id.begin(), id.end(), control)) {
    return "holds control characters";
  }
  return std::nullopt;
}

Result<json> ParseJsonBody(std::string_view body) {
  if (JsonTooDeep(body)) {
    return Error{"invalid_json", "arrays and objects nest deeper than " +
                                     std::to_string(kMaxJsonDepth) + " levels"};
  }
  if (JsonHasNul(body)) return Error{"invalid_json", "strings may not contain \\u0000"};
  try {
    return json::parse(body);
  } catch (const json::exception& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line 1, column 2: ...".
    std::string what = e.what();
    size_t bracket = what.find("] ");
    return Error{"invalid_json",
                 "the body is not valid JSON: " +
                     (bracket == std::string::npos ? what : what.substr(bracket + 2))};
  }
}

Result<int> ParseLimit(const ApiRequest& request) {
  auto it = request.query.find("limit");
  if (it == request.query.end()) return kDefaultListLimit;
  const std::string& text = it->second;
  int limit = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), limit);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || limit < 1 ||
      limit > kMaxListLimit) {
    return Error{"invalid_field",
                 "limit: an integer from 1 to " + std::to_string(kMaxListLimit) + " expected"};
  }
  return limit;
}

// ---- routing ----

ApiRouter::ApiRouter(ApiBackend backend, ApiOptions options)
    : backend_(std::move(backend)), options_(std::move(options)) {}

bool ApiRouter::Authorized(const ApiRequest& request) const {
  if (options_.api_tokens.empty()) return true;
  std::string_view header = request.authorization;
  constexpr std::string_view kScheme = "bearer ";
  if (header.size() <= kScheme.size() ||
      !EqualsIgnoringCase(header.substr(0, kScheme.size()), kScheme)) {
    return false;
  }
  std::string_view token = header.substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  bool match = false;
  for (const std::string& t : options_.api_tokens) {
    // Every token is compared, so the time taken does not say which one matched. An empty
    // configured token (an unset "env:" variable) never matches.
    match |= !t.empty() && !token.empty() && ConstantTimeEqual(token, t);
  }
  return match;
}

std::optional<ApiResponse> ApiRouter::Refuse(const ApiRequest& request) const {
  if (request.path.starts_with("/v1/") && !Authorized(request)) {
    ApiResponse r = ErrorResponse(401, "unauthorized",
                                  request.authorization.empty()
                                      ? "an API token is required: Authorization: Bearer <token>"
                                      : "the API token is not valid");
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return r;
  }
  auto match = MatchRoute(request.path);
  if (!match) {
    return ErrorResponse(404, "not_found", "no such endpoint: " + request.path);
  }
  const RouteSpec& route = *match->spec;
  if (!Allows(route, request.method)) {
    ApiResponse r =
        ErrorResponse(405, "method_not_allowed",
                      request.method + " is not allowed on " + std::string(route.label) +
                          " (allowed: " + std::string(route.allow) + ")");
    r.headers.emplace_back("Allow", std::string(route.allow));
    return r;
  }
  return std::nullopt;
}

ApiResponse ApiRouter::Handle(const ApiRequest& request) const {
  if (auto refused = Refuse(request)) return std::move(*refused);
  auto match = MatchRoute(request.path);
  const RouteSpec& route = *match->spec;
  switch (route.id) {
    case RouteId::kEvents:
      return PostEvents(request);
    case RouteId::kCustomer: {
      if (auto problem = IdProblem(match->param, kMaxCustomerIdBytes)) {
        return ErrorResponse(400, "invalid_field", "customer id: " + *problem);
      }
      if (request.method == "PUT") return PutCustomer(request, match->param);
      if (request.method == "DELETE") return DeleteCustomer(match->param);
      return GetCustomer(request, match->param);
    }
    case RouteId::kJourneys:
      return ListJourneys();
    case RouteId::kJourney:
      return GetJourney(match->param);
    case RouteId::kMessages:
      return ListMessages(request);
    case RouteId::kMetrics:
      return Metrics();
    case RouteId::kHealth:
      return Health();
    case RouteId::kOpen:
      return Track(request, TrackingKind::kOpen, match->param);
    case RouteId::kClick:
      return Track(request, TrackingKind::kClick, match->param);
    case RouteId::kUnsubscribe:
      return Track(request, TrackingKind::kUnsubscribe, match->param);
  }
  return ErrorResponse(404, "not_found", "no such endpoint: " + request.path);
}

// ---- /v1/events ----

Status ApiRouter::Append(std::vector<NewEvent> events) const {
  if (!backend_.advance_events) return backend_.append_events(std::move(events));
  // The blocking form of the server's own path: advanced, or declined to the inbox.
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::optional<Status> advanced;
  backend_.advance_events(std::move(events),
                          [&](std::optional<Status> status, std::vector<NewEvent>&& back) {
                            if (!status) events = std::move(back);
                            std::lock_guard lock(mu);
                            advanced = std::move(status);
                            done = true;
                            cv.notify_one();  // under the lock: `cv` lives on this stack
                          });
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return done; });
  if (advanced) return *advanced;
  return backend_.append_events(std::move(events));
}

std::variant<ApiResponse, std::vector<NewEvent>> ApiRouter::PrepareEvents(
    const ApiRequest& request) const {
  if (auto refused = Refuse(request)) return std::move(*refused);
  return ParseEvents(request);
}

ApiResponse ApiRouter::EventsAnswer(const Status& appended, int64_t accepted) const {
  if (!appended.ok()) return Unavailable(appended.error());
  backend_.metrics->Counter("itinera_events_accepted_total", "Events accepted by POST /v1/events.")
      .Increment(static_cast<double>(accepted));
  return JsonResponse(202, {{"accepted", accepted}});
}

std::variant<ApiResponse, std::vector<NewEvent>> ApiRouter::ParseEvents(
    const ApiRequest& request) const {
  auto doc = ParseJsonBody(request.body);
  if (!doc.ok()) return BadRequest(doc.error());
  std::vector<const json*> items;
  const bool batch = doc->is_array();
  if (batch) {
    if (doc->empty()) return ErrorResponse(400, "invalid_event", "events: an empty array");
    for (const json& e : *doc) items.push_back(&e);
  } else if (doc->is_object()) {
    items.push_back(&*doc);
  } else {
    return ErrorResponse(400, "invalid_event",
                         "the body is an event object or an array of event objects");
  }
  // Every event is checked before any is appended: a request is taken whole or not at all.
  const Time now = backend_.clock->Now();
  std::vector<NewEvent> events;
  events.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    auto event = NormaliseEvent(*items[i], batch ? std::optional<size_t>(i) : std::nullopt, now);
    if (!event.ok()) return BadRequest(event.error());
    events.push_back(std::move(*event));
  }
  return events;
}

ApiResponse ApiRouter::PostEvents(const ApiRequest& request) const {
  auto parsed = ParseEvents(request);
  if (auto* refused = std::get_if<ApiResponse>(&parsed)) return std::move(*refused);
  auto& events = std::get<std::vector<NewEvent>>(parsed);
  const auto accepted = static_cast<int64_t>(events.size());
  return EventsAnswer(Append(std::move(events)), accepted);
}

// ---- /v1/journeys ----

ApiResponse ApiRouter::ListJourneys() const {
  json list = json::array();
  for (const JourneyInfo& j : backend_.journeys()) {
    list.push_back({{"id", j.id},
                    {"current_version", j.current_version},
                    {"versions", j.versions},
                    {"file", j.file}});
  }
  return JsonResponse(200, {{"journeys", std::move(list)}});
}

ApiResponse ApiRouter::GetJourney(const std::string& id) const {
  std::optional<JourneyInfo> info;
  for (JourneyInfo& j : backend_.journeys()) {
    if (j.id == id) info = std::move(j);
  }
  if (!info) return ErrorResponse(404, "journey_not_found", "no journey \"" + id + "\" is loaded");
  auto counters = backend_.store->JourneyCounters(id);
  if (!counters.ok()) return Unavailable(counters.error());
  auto message_counts = backend_.store->MessageCounts(id);
  if (!message_counts.ok()) return Unavailable(message_counts.error());

  // The current version's steps in file order, then steps only older versions have (customers
  // may still be in them).
  std::vector<std::string> steps = info->steps;
  std::set<std::string> listed(steps.begin(), steps.end());
  for (const auto& [name, n] : *counters) {
    if (!name.starts_with("step.")) continue;
    for (std::string_view suffix : {".entered", ".left"}) {
      if (name.size() > 5 + suffix.size() && name.ends_with(suffix)) {
        std::string step = name.substr(5, name.size() - 5 - suffix.size());
        if (listed.insert(step).second) steps.push_back(step);
      }
    }
  }
  json step_list = json::array();
  for (const std::string& step : steps) {
    int64_t entered = CounterOf(*counters, "step." + step + ".entered");
    int64_t left = CounterOf(*counters, "step." + step + ".left");
    step_list.push_back(
        {{"step", step}, {"now", entered - left}, {"entered", entered}, {"left", left}});
  }

  json goals = json::object();
  for (const std::string& goal : info->goals) goals[goal] = CounterOf(*counters, "goal." + goal);
  for (const auto& [name, n] : *counters) {
    if (name.starts_with("goal.") && name.size() > 5) goals[name.substr(5)] = n;
  }

  json messages = json::object();
  for (const auto& [key, n] : *message_counts) {
    size_t dot = key.rfind('.');
    if (dot == std::string::npos) continue;
    json& channel = messages[key.substr(0, dot)];
    if (channel.is_null()) {
      for (const char* s : {"pending", "sent", "dead", "cancelled"}) channel[s] = 0;
    }
    channel[key.substr(dot + 1)] = n;
  }

  const int64_t entered = CounterOf(*counters, "entered");
  const int64_t holdout = CounterOf(*counters, "holdout");
  return JsonResponse(200, {{"id", info->id},
                            {"current_version", info->current_version},
                            {"versions", info->versions},
                            {"file", info->file},
                            {"steps", std::move(step_list)},
                            {"entered", entered},
                            {"exited", CounterOf(*counters, "exited")},
                            {"messages", std::move(messages)},
                            {"goals", std::move(goals)},
                            {"holdout", {{"holdout", holdout}, {"treatment", entered - holdout}}},
                            {"counters", *counters}});
}

// ---- /v1/messages ----

ApiResponse ApiRouter::ListMessages(const ApiRequest& request) const {
  MessageStatus status = MessageStatus::kDead;
  if (auto it = request.query.find("status"); it != request.query.end()) {
    auto parsed = ParseMessageStatus(it->second);
    if (!parsed) {
      return ErrorResponse(400, "invalid_field",
                           "status: one of pending, sent, dead, cancelled expected");
    }
    status = *parsed;
  }
  auto limit = ParseLimit(request);
  if (!limit.ok()) return BadRequest(limit.error());
  auto messages = backend_.store->ListMessages(status, *limit);
  if (!messages.ok()) return Unavailable(messages.error());
  json list = json::array();
  for (const OutboxMessage& m : *messages) list.push_back(MessageJson(m));
  return JsonResponse(200, {{"messages", std::move(list)}});
}

// ---- unauthenticated ----

ApiResponse ApiRouter::Metrics() const {
  ApiResponse r;
  r.content_type = "text/plain; version=0.0.4";
  r.body = backend_.metrics->Render();
  return r;
}

ApiResponse ApiRouter::Health() const {
  // A point read: proves the store answers without costing anything.
  auto probe = backend_.store->GetProfile("healthz");
  if (!probe.ok()) return Unavailable(probe.error());
  return JsonResponse(200, {{"status", "ok"}});
}

}  // namespace itinera::orch
