// The clock seam: nothing in Itinera reads the system clock except SystemClock.
//
// The daemon owns a SystemClock; tests and the simulator use a ManualClock that moves only when
// told. Now() is thread-safe on both (ManualClock uses an atomic).
#ifndef ITINERA_ORCHESTRATOR_CLOCK_H_
#define ITINERA_ORCHESTRATOR_CLOCK_H_

#include <atomic>
#include <chrono>

#include "util/time.h"

namespace itinera::orch {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Time Now() const = 0;
};

// Wall-clock time, truncated to whole seconds.
class SystemClock final : public Clock {
 public:
  Time Now() const override {
    return std::chrono::floor<Seconds>(std::chrono::system_clock::now());
  }
};

// A clock that stands still until Set or Advance moves it.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(Time start = Time{}) : now_(start.time_since_epoch().count()) {}
  Time Now() const override { return Time{Seconds{now_.load()}}; }
  void Set(Time t) { now_.store(t.time_since_epoch().count()); }
  void Advance(Seconds d) { now_.fetch_add(d.count()); }

 private:
  std::atomic<Seconds::rep> now_;
};

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_CLOCK_H_
