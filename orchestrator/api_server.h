// The HTTP API of `itinera serve`: events in, profiles, journeys, dead letters and metrics out,
// and the tracking endpoints behind the links planted in emails (docs/api.md is the reference).
//
// ApiServer serves every connection from one event loop and runs what waits on the store on a
// pool of worker threads (api_server.cc). It reads through ApiBackend::store and writes only
// through the backend's callbacks, which the daemon provides: advance_events (the engine takes
// the events and answers once they are committed), append_events (durable, group committed,
// wakes the engine), upsert_customer (merges a profile patch and lets the journeys react). An
// event is answered 2xx only once it is durable, so nothing acknowledged is lost; a storage
// failure answers 503 with Retry-After. Errors are always {"error": {"code", "message"}} with a
// 4xx status (5xx only for storage trouble or a bug).
//
// The backend (store, clock, metrics, callbacks) is borrowed and must outlive the server; every
// part of it is called from several threads at once and must be thread-safe. ApiServer itself is
// not copyable; Start, Stop and port may be called from any thread. Boost.Beast is used only in
// the implementation.
#ifndef ITINERA_ORCHESTRATOR_API_SERVER_H_
#define ITINERA_ORCHESTRATOR_API_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "orchestrator/clock.h"
#include "orchestrator/metrics.h"
#include "orchestrator/store.h"
#include "util/result.h"

namespace itinera::orch {

// One journey as the daemon has it loaded.
struct JourneyInfo {
  std::string id;
  int64_t current_version = 0;     // what new entrants get
  std::vector<int64_t> versions;   // every version with customers possibly in flight, ascending
  std::vector<std::string> steps;  // step ids of the current version, in file order
  std::vector<std::string> goals;  // goal names of the current version
  std::string file;
};

struct ApiBackend {
  Store* store = nullptr;  // reads; EraseCustomer
  const Clock* clock = nullptr;
  // Where the server records its metrics; null: a registry of the server's own (then /metrics
  // shows only the server's metrics).
  MetricsRegistry* metrics = nullptr;
  // Appends to the inbox: durable (committed) when it returns Ok; group-committed by the daemon
  // and wakes the engine.
  std::function<Status(std::vector<NewEvent>)> append_events;
  // Optional. Hands the events to the engine to advance without the inbox, and answers through
  // `done`, once, from any thread (possibly before it returns), without blocking on the caller:
  // with their status (Ok: stored, advanced; an error: the request's answer), or with nullopt
  // and the events back when it declines them, and the server appends them with append_events.
  // `done` must not block. If advance_events throws, it has not taken the events and `done` is
  // not called.
  using Advanced = std::function<void(std::optional<Status>, std::vector<NewEvent>&&)>;
  std::function<void(std::vector<NewEvent>, Advanced done)> advance_events;
  // Merges the patch into the profile (and lets the journeys react to the change).
  std::function<Result<ProfileChange>(const std::string& customer, const nlohmann::json& patch)>
      upsert_customer;
  std::function<std::vector<JourneyInfo>()> journeys;
};

struct ApiOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                      // 0: any free port (see ApiServer::port)
  std::string public_url;               // base of tracking links (unused by the server)
  std::vector<std::string> api_tokens;  // empty: no authentication (loopback use)
  std::string tracking_secret;          // empty: every tracking link answers 404
  int64_t max_body_bytes = 1 << 20;     // larger request bodies get 413
  int threads = 64;  // worker threads: requests that wait on the store, run at once
};

class ApiServer {
 public:
  ApiServer(ApiBackend backend, ApiOptions options);
  ~ApiServer();  // stops
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds and serves on background threads; at most once per server (a stopped server is not
  // restarted). Errors: "invalid_argument" (a missing backend part, a bad option, or already
  // started), "listen" (the address is taken or cannot be bound; the message says which).
  Status Start();
  // The bound port (the chosen one when options.port was 0); 0 before Start.
  int port() const;
  // Stops accepting, closes idle connections, waits for the requests under way to be answered.
  // Idempotent.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_API_SERVER_H_
