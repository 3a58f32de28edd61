#include "orchestrator/journey_registry.h"

#include <filesystem>
#include <set>

#include "dsl/checker.h"
#include "dsl/diagnostic.h"
#include "orchestrator/catalog.h"
#include "util/log.h"

namespace itinera::orch {

using nlohmann::json;

const dsl::Program* JourneyCatalog::Find(const std::string& journey, int64_t version) const {
  auto it = versions_.find(journey);
  if (it == versions_.end()) return nullptr;
  auto v = it->second.find(version);
  return v == it->second.end() ? nullptr : v->second.program.get();
}

const dsl::Program* JourneyCatalog::Current(const std::string& journey) const {
  auto it = current_.find(journey);
  return it == current_.end() ? nullptr : Find(journey, it->second);
}

const dsl::Program* JourneyCatalog::ForState(const std::string& journey,
                                             const JourneyState& state) const {
  if (const Instance* active = state.Active()) {
    if (const dsl::Program* p = Find(journey, active->version)) return p;
  }
  if (const dsl::Program* p = Current(journey)) return p;
  for (auto it = state.instances.rbegin(); it != state.instances.rend(); ++it) {
    if (const dsl::Program* p = Find(journey, it->version)) return p;
  }
  return nullptr;
}

const dsl::Program* JourneyCatalog::ForInput(const std::string& journey,
                                             const JourneyState& state) const {
  if (const Instance* active = state.Active()) {
    if (const dsl::Program* p = Find(journey, active->version)) return p;
  }
  return Current(journey);
}

std::vector<std::string> JourneyCatalog::Ids() const {
  std::vector<std::string> ids;
  for (const auto& [id, versions] : versions_) ids.push_back(id);
  return ids;
}

std::vector<int64_t> JourneyCatalog::Versions(const std::string& journey) const {
  std::vector<int64_t> out;
  auto it = versions_.find(journey);
  if (it != versions_.end())
    for (const auto& [v, entry] : it->second) out.push_back(v);
  return out;
}

std::string JourneyCatalog::File(const std::string& journey) const {
  auto it = versions_.find(journey);
  if (it == versions_.end() || it->second.empty()) return "";
  auto cur = current_.find(journey);
  if (cur != current_.end()) {
    auto v = it->second.find(cur->second);
    if (v != it->second.end()) return v->second.file;
  }
  return it->second.rbegin()->second.file;
}

Result<RenderedMessage> JourneyCatalog::Render(std::string_view channel, std::string_view name,
                                               const json& data) const {
  std::lock_guard lock(*templates_mu_);
  try {
    return templates_->Render(channel, name, data);
  } catch (const std::exception& e) {
    return Error{"template", std::string(name) + "." + std::string(channel) + ": " + e.what()};
  }
}

JourneyRegistry::JourneyRegistry(Config config, Store& store)
    : config_(std::move(config)), store_(store), current_(std::make_shared<JourneyCatalog>()) {}

std::shared_ptr<const JourneyCatalog> JourneyRegistry::Snapshot() const {
  std::lock_guard lock(mu_);
  return current_;
}

ReloadReport JourneyRegistry::Load() {
  std::lock_guard reload(reload_mu_);
  auto next = std::make_shared<JourneyCatalog>();
  next->templates_ = std::make_shared<TemplateSet>(config_.Resolve(config_.paths.templates));
  dsl::CheckEnvironment env = MakeCheckEnvironment(config_, *next->templates_);
  ReloadReport report;
  auto stored = store_.ListJourneyVersions();
  if (!stored.ok()) {
    LogError("cannot read journey versions from the store", {{"error", stored.error().message}});
    ++report.errors;
  } else {
    for (const JourneyVersion& v : *stored) {
      dsl::CompileResult r = dsl::CompileText(v.source, v.file, env);
      if (!r.program) {
        // A stored version that no longer checks (a template or rep was removed since): its
        // customers cannot advance until the configuration is fixed. Say so loudly.
        LogError("stored journey version no longer checks; its customers wait",
                 {{"journey", v.journey},
                  {"version", v.version},
                  {"diagnostics", dsl::FormatDiagnostics(r.diagnostics, v.source)}});
        ++report.errors;
        continue;
      }
      next->versions_[v.journey][v.version] = {
          std::make_shared<const dsl::Program>(std::move(*r.program)), v.file};
    }
  }
  ReloadReport folder = LoadFolder(std::move(next));
  folder.errors += report.errors;
  return folder;
}

ReloadReport JourneyRegistry::Reload() {
  std::lock_guard reload(reload_mu_);
  auto next = std::make_shared<JourneyCatalog>(*Snapshot());
  next->templates_ = std::make_shared<TemplateSet>(config_.Resolve(config_.paths.templates));
  next->templates_mu_ = std::make_shared<std::mutex>();
  return LoadFolder(std::move(next));
}

ReloadReport JourneyRegistry::LoadFolder(std::shared_ptr<JourneyCatalog> next) {
  ReloadReport report;
  dsl::CheckEnvironment env = MakeCheckEnvironment(config_, *next->templates_);
  const std::string folder = config_.Resolve(config_.paths.journeys);
  std::vector<LoadedJourney> loaded;
  for (const std::string& file : ListJourneyFiles(folder)) loaded.push_back(LoadJourney(file, env));

  std::set<std::string> refused_files;
  for (const dsl::Diagnostic& d : CheckUniqueIds(loaded)) {
    refused_files.insert(d.file);
    for (auto& j : loaded)
      if (j.file == d.file) j.result.diagnostics.push_back(d);
  }
  std::set<std::string> seen_files, defined;
  for (LoadedJourney& j : loaded) {
    seen_files.insert(j.file);
    if (!j.result.program || refused_files.count(j.file)) {
      std::string text = dsl::FormatDiagnostics(j.result.diagnostics, j.source);
      LogError("journey file refused: it does not check; what ran before keeps running",
               {{"file", j.file}, {"diagnostics", text}});
      report.refused.push_back(j.file + ": does not check");
      report.errors += static_cast<int>(j.result.diagnostics.size());
      // Keep the journey this file defined before, if any, taking new entrants as it did. On
      // the first load that is the newest version recorded from this file.
      bool known = false;
      for (const auto& [id, file] : file_of_) {
        if (file == j.file) {
          defined.insert(id);
          known = true;
        }
      }
      if (!known) {
        for (const auto& [id, versions] : next->versions_) {
          for (auto v = versions.rbegin(); v != versions.rend(); ++v) {
            if (v->second.file != j.file) continue;
            if (!next->current_.count(id)) next->current_[id] = v->first;
            file_of_[id] = j.file;
            defined.insert(id);
            break;
          }
        }
      }
      continue;
    }
    dsl::Program& p = *j.result.program;
    const std::string id = p.id;
    const int64_t version = p.version;
    defined.insert(id);
    const dsl::Program* existing = next->Find(id, version);
    if (existing != nullptr) {
      if (existing->fingerprint != p.fingerprint) {
        std::string line = "journey " + id + " changed but kept version " +
                           std::to_string(version) +
                           ": refused; raise its version to publish the change";
        LogError(line, {{"journey", id}, {"version", version}, {"file", j.file}});
        report.refused.push_back(line);
        // The recorded program of this version keeps running (on a first load, it becomes
        // current: it is what ran before the restart).
        if (!next->current_.count(id)) next->current_[id] = version;
        file_of_[id] = j.file;
        continue;
      }
    } else {
      JourneyVersion record{id, version, p.fingerprint, j.file, j.source, Time{}};
      record.loaded_at =
          std::chrono::floor<Seconds>(std::chrono::system_clock::now());  // informational
      Status saved = store_.SaveJourneyVersion(record);
      if (!saved.ok()) {
        std::string line = saved.error().code == "conflict"
                               ? "journey " + id + " changed but kept version " +
                                     std::to_string(version) +
                                     ": refused; raise its version to publish the change"
                               : "journey " + id + ": cannot record version " +
                                     std::to_string(version) + ": " + saved.error().message;
        LogError(line, {{"journey", id}, {"version", version}, {"file", j.file}});
        report.refused.push_back(line);
        continue;
      }
      next->versions_[id][version] = {std::make_shared<const dsl::Program>(std::move(p)), j.file};
    }
    auto cur = next->current_.find(id);
    if (cur == next->current_.end() || cur->second != version) {
      next->current_[id] = version;
      report.published.push_back(id + "@" + std::to_string(version));
      LogInfo("journey version takes new entrants",
              {{"journey", id}, {"version", version}, {"file", j.file}});
    }
    file_of_[id] = j.file;
  }
  for (auto it = next->current_.begin(); it != next->current_.end();) {
    if (defined.count(it->first)) {
      ++it;
      continue;
    }
    LogWarn("journey file is gone: no new entrants; customers in flight finish",
            {{"journey", it->first}});
    report.retired.push_back(it->first);
    file_of_.erase(it->first);
    it = next->current_.erase(it);
  }
  {
    std::lock_guard lock(mu_);
    current_ = std::move(next);
  }
  return report;
}

}  // namespace itinera::orch
