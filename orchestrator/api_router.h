// Internal to orchestrator/: the HTTP API without the HTTP library.
//
// ApiServer (api_server.cc, the only file that sees the HTTP library) reads each request into an
// ApiRequest, asks ApiRouter::Handle for an ApiResponse (or, for POST /v1/events, PrepareEvents
// then EventsAnswer, without a thread waiting in between) and writes it back. Everything the API
// decides is here: routing (404, 405 with Allow), authentication (401), validation (400), the
// JSON it answers, the events it appends. So it can be read, and reasoned about, without sockets.
// The handlers live in api_router.cc (/v1/events, journeys, messages, health, metrics),
// api_customers.cc and api_tracking.cc.
//
// ApiRouter holds no mutable state of its own; Handle may run on many threads at once, and the
// backend it calls must be thread-safe (see api_server.h).
#ifndef ITINERA_ORCHESTRATOR_API_ROUTER_H_
#define ITINERA_ORCHESTRATOR_API_ROUTER_H_

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "orchestrator/api_server.h"
#include "orchestrator/tracking.h"

namespace itinera::orch {

// Bytes; longer ids (in paths or events) are refused with 400.
inline constexpr size_t kMaxCustomerIdBytes = 256;
inline constexpr size_t kMaxEventIdBytes = 256;
inline constexpr size_t kMaxEventTypeBytes = 128;
inline constexpr int kDefaultListLimit = 100;
inline constexpr int kMaxListLimit = 1000;

struct ApiRequest {
  std::string method;                             // "GET", "HEAD", "POST", ...
  std::string path;                               // URL-decoded, without the query
  std::multimap<std::string, std::string> query;  // decoded
  std::string authorization;                      // the Authorization header; "" when absent
  std::string body;
};

struct ApiResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// {"error": {"code": code, "message": message}} with `status`.
ApiResponse ErrorResponse(int status, std::string_view code, std::string_view message);
// `body` as JSON; invalid UTF-8 in strings is replaced, never thrown.
ApiResponse JsonResponse(int status, const nlohmann::json& body);
// 503 {"error": {"code": "unavailable"}} with Retry-After: 1, for a failed store or callback.
// The message names the error unless its code is empty (public endpoints show no internals).
ApiResponse Unavailable(const Error& error);

// The route a path falls under, as its template ("/v1/customers/{id}"), or "unmatched": the
// `route` label of the HTTP metrics.
std::string RouteLabel(std::string_view path);

// Whether `text` is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
bool IsValidUtf8(std::string_view text);

// The body as JSON. Error "invalid_json" when it is not JSON (also: invalid UTF-8, or arrays and
// objects nested deeper than kMaxJsonDepth).
Result<nlohmann::json> ParseJsonBody(std::string_view body);

// `?limit=`: kDefaultListLimit when absent, else an integer in [1, kMaxListLimit]; otherwise
// Error "invalid_field".
Result<int> ParseLimit(const ApiRequest& request);

// What is wrong with an id ("empty", "longer than 256 bytes", "not valid UTF-8", "holds control
// characters"), or nullopt.
std::optional<std::string> IdProblem(std::string_view id, size_t max_bytes);

// 400 with the error's code and message.
ApiResponse BadRequest(const Error& error);

class ApiRouter {
 public:
  // `backend.metrics` must not be null (ApiServer supplies its own registry when it is).
  ApiRouter(ApiBackend backend, ApiOptions options);

  // Never throws for bad input; an exception means a bug (the server answers 500). Blocks while
  // the store or the backend's callbacks work.
  ApiResponse Handle(const ApiRequest& request) const;

  // POST /v1/events in two halves, for a server that does not wait on the append: the events
  // to append (checked, normalised), or the answer when the request is refused (401, 400).
  // Does not block. Then EventsAnswer gives the answer to the append's status.
  std::variant<ApiResponse, std::vector<NewEvent>> PrepareEvents(const ApiRequest& request) const;
  ApiResponse EventsAnswer(const Status& appended, int64_t accepted) const;

 private:
  // The answer to a request refused before its handler: 401, 404, 405; nullopt: none.
  std::optional<ApiResponse> Refuse(const ApiRequest& request) const;
  // Appends through backend_.advance_events when there is one (waiting for its answer), else
  // or when declined through backend_.append_events.
  Status Append(std::vector<NewEvent> events) const;

  // /v1/...
  ApiResponse PostEvents(const ApiRequest& request) const;
  std::variant<ApiResponse, std::vector<NewEvent>> ParseEvents(const ApiRequest& request) const;
  ApiResponse PutCustomer(const ApiRequest& request, const std::string& id) const;
  ApiResponse GetCustomer(const ApiRequest& request, const std::string& id) const;
  ApiResponse DeleteCustomer(const std::string& id) const;
  ApiResponse ListJourneys() const;
  ApiResponse GetJourney(const std::string& id) const;
  ApiResponse ListMessages(const ApiRequest& request) const;
  // Unauthenticated.
  ApiResponse Metrics() const;
  ApiResponse Health() const;
  ApiResponse Track(const ApiRequest& request, TrackingKind kind, std::string_view token) const;

  bool Authorized(const ApiRequest& request) const;

  ApiBackend backend_;
  ApiOptions options_;
};

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_API_ROUTER_H_
