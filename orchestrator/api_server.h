// The HTTP API of `itinera serve`: events in, profiles, journeys, dead letters and metrics out,
// and the tracking endpoints behind the links planted in emails (docs/api.md is the reference).
//
// ApiServer serves on its own pool of threads. It reads through ApiBackend::store and writes
// only through the backend's callbacks, which the daemon provides: append_events (durable, group
// committed, wakes the engine), upsert_customer (merges a profile patch and lets the journeys
// react). An event is answered 2xx only after append_events returned Ok, so nothing acknowledged
// is lost; a storage failure answers 503 with Retry-After. Errors are always
// {"error": {"code", "message"}} with a 4xx status (5xx only for storage trouble or a bug).
//
// The backend (store, clock, metrics, callbacks) is borrowed and must outlive the server; every
// part of it is called from several threads at once and must be thread-safe. ApiServer itself is
// not copyable; Start, Stop and port may be called from any thread. cpp-httplib is used only in
// the implementation.
#ifndef ITINERA_ORCHESTRATOR_API_SERVER_H_
#define ITINERA_ORCHESTRATOR_API_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
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
  // Durable (committed) when it returns Ok: group-committed by the daemon and wakes the engine.
  std::function<Status(std::vector<NewEvent>)> append_events;
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
  int threads = 64;                     // worker threads (concurrent requests)
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
  // Stops accepting, waits for in-flight requests to finish. Idempotent.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_API_SERVER_H_
