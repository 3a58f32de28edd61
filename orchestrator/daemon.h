// `itinera serve`: the daemon that runs the journeys.
//
// Threads and who owns what:
//  - the main thread runs a Boost.Asio io_context, the one owner of the event loop: it handles
//    SIGTERM/SIGINT (graceful stop), SIGHUP (reload journeys and templates) and a one-second tick
//    that wakes the workers and publishes metrics;
//  - the HTTP API answers from its own event loop and worker pool; an accepted event is handed
//    to the processor, or group-committed by EventIngest when the processor declines it, before
//    the 2xx;
//  - one processor thread advances customers (Processor::RunOnce, one commit per batch);
//  - one thread per dispatcher lane delivers the outbox.
// A graceful stop closes the API (in-flight requests finish), lets the processor finish and
// commit its batch and the dispatcher finish the sends in progress, then exits 0.
#ifndef ITINERA_ORCHESTRATOR_DAEMON_H_
#define ITINERA_ORCHESTRATOR_DAEMON_H_

#include <memory>
#include <string>

#include "orchestrator/config.h"
#include "orchestrator/store.h"
#include "util/result.h"

namespace itinera::orch {

// Opens the store a configuration names ("sqlite:PATH" relative to the config's folder,
// "memory:").
Result<std::unique_ptr<Store>> OpenConfiguredStore(const Config& config);

// The tracking secret: the configured one, else one generated on first start and kept in
// `<store folder>/tracking.key` (0600) so links stay valid across restarts.
Result<std::string> TrackingSecret(const Config& config);

// Runs the daemon until SIGTERM or SIGINT. Returns the process exit status (0 after a graceful
// stop; 1 when it cannot start, with the reason logged).
int RunDaemon(const Config& config);

// `url` with any password (user:PASSWORD@ or password=PASSWORD) replaced by "***", for logs.
std::string RedactUrl(std::string url);

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_DAEMON_H_
