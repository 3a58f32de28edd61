// The daemon's journeys: every version that may have customers in flight, and which version
// takes new entrants.
//
// A JourneyCatalog is an immutable snapshot: the processor takes one per batch and keeps using
// it while SIGHUP publishes the next. Versions are recorded in the store the first time they
// load (Store::SaveJourneyVersion), so after a restart customers in flight on version 1 keep
// running on version 1 even though the file now says version 2.
//
// Reload rules (DESIGN.md, issue "itinera serve"):
//  - a file that does not check is refused with its diagnostics logged; what ran before stays;
//  - a new `version` takes new entrants; older versions stay loaded for customers in flight;
//  - a changed journey that keeps its version number is refused with a clear log line;
//  - a journey whose file is gone takes no new entrants; its customers in flight finish.
// Templates are re-read on every reload (they are not versioned).
#ifndef ITINERA_ORCHESTRATOR_JOURNEY_REGISTRY_H_
#define ITINERA_ORCHESTRATOR_JOURNEY_REGISTRY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dsl/program.h"
#include "orchestrator/config.h"
#include "orchestrator/model.h"
#include "orchestrator/store.h"
#include "orchestrator/templates.h"

namespace itinera::orch {

class JourneyCatalog {
 public:
  struct Entry {
    std::shared_ptr<const dsl::Program> program;
    std::string file;
  };

  // The program of `journey` at `version`, or nullptr.
  const dsl::Program* Find(const std::string& journey, int64_t version) const;
  // The version new entrants get, or nullptr when the journey takes none.
  const dsl::Program* Current(const std::string& journey) const;
  // The program that handles inputs for a customer's state in `journey`: the in-flight
  // instance's version, else the current one, else (a removed journey with held messages) the
  // newest instance's version. nullptr when none applies.
  const dsl::Program* ForState(const std::string& journey, const JourneyState& state) const;
  // The program that handles an event or a profile change: the in-flight instance's version,
  // else the current one; nullptr for a journey that takes no new entrants and has no one in
  // flight (its held messages still go out through ForState on their timers).
  const dsl::Program* ForInput(const std::string& journey, const JourneyState& state) const;
  // Every journey id with any version loaded, sorted.
  std::vector<std::string> Ids() const;
  // Loaded versions of `journey`, ascending.
  std::vector<int64_t> Versions(const std::string& journey) const;
  std::string File(const std::string& journey) const;

  // Renders templates; serialised, as TemplateSet is not thread-safe.
  Result<RenderedMessage> Render(std::string_view channel, std::string_view name,
                                 const nlohmann::json& data) const;

 private:
  friend class JourneyRegistry;
  std::map<std::string, std::map<int64_t, Entry>> versions_;
  std::map<std::string, int64_t> current_;
  std::shared_ptr<TemplateSet> templates_;
  std::shared_ptr<std::mutex> templates_mu_ = std::make_shared<std::mutex>();
};

// What a (re)load did, for logs and tests.
struct ReloadReport {
  std::vector<std::string> published;  // "welcome@2": versions that now take new entrants
  std::vector<std::string> refused;    // one line per refused file or version
  std::vector<std::string> retired;    // journeys whose file is gone
  int errors = 0;                      // diagnostics logged
};

class JourneyRegistry {
 public:
  JourneyRegistry(Config config, Store& store);

  // First load: every version recorded in the store, then the journeys folder.
  ReloadReport Load();
  // SIGHUP: the journeys folder and templates again. Serialised with itself.
  ReloadReport Reload();

  std::shared_ptr<const JourneyCatalog> Snapshot() const;

 private:
  ReloadReport LoadFolder(std::shared_ptr<JourneyCatalog> next);

  const Config config_;
  Store& store_;
  std::mutex reload_mu_;
  mutable std::mutex mu_;
  std::shared_ptr<const JourneyCatalog> current_;
  std::map<std::string, std::string> file_of_;  // journey id -> the file that defines it now
};

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_JOURNEY_REGISTRY_H_
