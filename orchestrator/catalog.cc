#include "orchestrator/catalog.h"

#include <date/tz.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace itinera::orch {

namespace fs = std::filesystem;

namespace {

// Template names available for a channel: files "<name>.<channel>.mustache" in the folder.
std::vector<std::string> TemplateNames(const std::string& folder, std::string_view channel) {
  std::vector<std::string> names;
  std::error_code ec;
  std::string suffix = "." + std::string(channel) + ".mustache";
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    std::string file = entry.path().filename().string();
    if (file.size() > suffix.size() && file.ends_with(suffix))
      names.push_back(file.substr(0, file.size() - suffix.size()));
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool ZoneExists(std::string_view zone) {
  try {
    return date::locate_zone(zone) != nullptr;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

dsl::CheckEnvironment MakeCheckEnvironment(const Config& config, TemplateSet& templates) {
  dsl::CheckEnvironment env;
  for (const auto& [team, reps] : config.directory.teams) {
    env.teams.insert(team);
    for (const Rep& rep : reps) env.reps.insert(rep.id);
  }
  for (const auto& [name, hook] : config.directory.webhooks) env.webhooks.insert(name);
  env.template_problem = [&templates](std::string_view channel,
                                      std::string_view name) -> std::optional<std::string> {
    auto problem = templates.Problem(channel, name);
    if (!problem) return std::nullopt;
    std::error_code ec;
    if (!fs::exists(templates.PathOf(channel, name), ec)) {
      return dsl::WithSuggestion(*problem, name, TemplateNames(templates.folder(), channel));
    }
    return problem;
  };
  env.zone_exists = ZoneExists;
  return env;
}

LoadedJourney LoadJourney(const std::string& file, const dsl::CheckEnvironment& env) {
  LoadedJourney out;
  out.file = file;
  std::error_code ec;
  std::ifstream in(file, std::ios::binary);
  if (!in || fs::is_directory(file, ec)) {
    dsl::Diagnostic d;
    d.file = file;
    d.message = fs::is_directory(file, ec) ? "this is a folder; give journey files, such as " +
                                                 (fs::path(file) / "*.journey").string()
                                           : "cannot read this file";
    out.result.diagnostics.push_back(d);
    return out;
  }
  std::ostringstream text;
  text << in.rdbuf();
  out.source = text.str();
  out.result = dsl::CompileText(out.source, file, env);
  return out;
}

std::vector<std::string> ListJourneyFiles(const std::string& folder) {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    if (entry.path().extension() == ".journey") files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<dsl::Diagnostic> CheckUniqueIds(const std::vector<LoadedJourney>& journeys) {
  std::vector<dsl::Diagnostic> out;
  std::map<std::string, const LoadedJourney*> seen;
  for (const LoadedJourney& j : journeys) {
    if (!j.result.program) continue;
    const dsl::Program& p = *j.result.program;
    auto [it, fresh] = seen.emplace(p.id, &j);
    if (fresh) continue;
    dsl::Diagnostic d;
    d.file = j.file;
    d.pos = dsl::PositionOf(j.source, j.source.find(p.id));
    d.message = "journey \"" + p.id + "\" is also defined in " + it->second->file +
                ": each journey needs its own id";
    out.push_back(d);
  }
  return out;
}

}  // namespace itinera::orch
