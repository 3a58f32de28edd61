// Waiting in tests for what other threads do (a daemon's lanes, a cluster member's renewals).
#ifndef ITINERA_TESTS_ORCHESTRATOR_EVENTUALLY_H_
#define ITINERA_TESTS_ORCHESTRATOR_EVENTUALLY_H_

#include <chrono>
#include <functional>
#include <thread>

namespace itinera::orch::testing {

// Polls `done` every 5 ms until it is true (returns true) or `timeout` passes (returns false).
inline bool Eventually(const std::function<bool()>& done,
                       std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace itinera::orch::testing

#endif  // ITINERA_TESTS_ORCHESTRATOR_EVENTUALLY_H_
