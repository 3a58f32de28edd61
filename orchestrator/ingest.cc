#include "orchestrator/ingest.h"

namespace itinera::orch {

EventIngest::EventIngest(Store& store, std::function<void()> committed)
    : store_(store), committed_(std::move(committed)) {}

Status EventIngest::Append(std::vector<NewEvent> events) {
  if (events.empty()) return Status::Ok();
  Request me;
  me.events = std::move(events);
  std::unique_lock lock(mu_);
  queue_.push_back(&me);
  while (!me.result) {
    if (writing_) {
      me.cv.wait(lock);
      continue;
    }
    // Lead: commit everything queued so far in one transaction.
    writing_ = true;
    std::vector<Request*> group(queue_.begin(), queue_.end());
    queue_.clear();
    lock.unlock();

    std::vector<NewEvent> all;
    for (Request* r : group) all.insert(all.end(), r->events.begin(), r->events.end());
    Result<int64_t> added = store_.AppendEvents(all);
    std::vector<Status> results(group.size(), Status::Ok());
    int64_t commits = 1;
    if (!added.ok()) {
      // A storage failure fails every request of the group: the commit's outcome may be
      // unknown (the connection dropped during COMMIT), and appending each request again could
      // store twice the events that carry no id. Only a refused request (a bad event) is worth
      // isolating, so the others in its group still get in.
      if (group.size() == 1 || added.error().code == "storage") {
        for (Status& r : results) r = added.error();
      } else {
        commits = 0;
        for (size_t i = 0; i < group.size(); ++i) {
          Result<int64_t> one = store_.AppendEvents(group[i]->events);
          ++commits;
          if (!one.ok()) results[i] = one.error();
        }
      }
    }
    commits_ += commits;
    events_ += static_cast<int64_t>(all.size());

    lock.lock();
    for (size_t i = 0; i < group.size(); ++i) {
      group[i]->result = results[i];
      if (group[i] != &me) group[i]->cv.notify_one();
    }
    writing_ = false;
    if (!queue_.empty()) queue_.front()->cv.notify_one();  // the next leader
    lock.unlock();
    if (committed_) committed_();
    lock.lock();
  }
  return *me.result;
}

}  // namespace itinera::orch
