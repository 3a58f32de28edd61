// Loading journey files against a configuration.
//
// The one place that turns a Config (teams, reps, webhooks, templates folder) into the names a
// journey may use, reads journey files, and compiles them. The CLI's check/graph/simulate and
// the daemon's (re)load share it, so they accept exactly the same journeys.
#ifndef ITINERA_ORCHESTRATOR_CATALOG_H_
#define ITINERA_ORCHESTRATOR_CATALOG_H_

#include <string>
#include <vector>

#include "dsl/checker.h"
#include "orchestrator/config.h"
#include "orchestrator/templates.h"

namespace itinera::orch {

// The environment a journey is checked in. `templates` must outlive the returned value.
dsl::CheckEnvironment MakeCheckEnvironment(const Config& config, TemplateSet& templates);

struct LoadedJourney {
  std::string file;
  std::string source;         // the file's text
  dsl::CompileResult result;  // diagnostics, and the program when there are no errors
};

// Reads and compiles one file. An unreadable file is reported as a diagnostic, not an Error.
LoadedJourney LoadJourney(const std::string& file, const dsl::CheckEnvironment& env);

// The *.journey files directly in `folder`, sorted by name; empty when the folder is missing.
std::vector<std::string> ListJourneyFiles(const std::string& folder);

// Errors for journeys that share an id (two files, one journey): one per later file.
std::vector<dsl::Diagnostic> CheckUniqueIds(const std::vector<LoadedJourney>& journeys);

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_CATALOG_H_
