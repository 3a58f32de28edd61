// Group commit for accepted events: many concurrent API requests, one transaction.
//
// Append blocks its caller until its events are committed (the API answers 2xx only after
// that). Requests that arrive while a commit is running wait together and share the next one,
// so throughput grows with concurrency instead of stopping at one fsync per request. When a
// shared commit fails, each request of the group is retried on its own, so one bad request
// cannot fail its neighbours. Thread-safe.
#ifndef ITINERA_ORCHESTRATOR_INGEST_H_
#define ITINERA_ORCHESTRATOR_INGEST_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

#include "orchestrator/store.h"
#include "util/result.h"

namespace itinera::orch {

class EventIngest {
 public:
  // `committed` runs (outside any lock) after each commit that added events: it wakes the
  // processor.
  EventIngest(Store& store, std::function<void()> committed);

  // Durable when it returns Ok.
  Status Append(std::vector<NewEvent> events);

  int64_t commits() const { return commits_.load(); }
  int64_t events() const { return events_.load(); }

 private:
  // A caller waits on its own condition variable: a commit wakes the requests it answered
  // and the next leader, not every caller waiting.
  struct Request {
    std::vector<NewEvent> events;
    std::optional<Status> result;
    std::condition_variable cv;
  };

  Store& store_;
  std::function<void()> committed_;
  std::mutex mu_;
  std::deque<Request*> queue_;
  bool writing_ = false;
  std::atomic<int64_t> commits_{0};
  std::atomic<int64_t> events_{0};
};

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_INGEST_H_
