#include "cli/commands.h"

#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cli/options.h"
#include "cli/simulate.h"
#include "dsl/graph.h"
#include "orchestrator/catalog.h"
#include "orchestrator/daemon.h"

namespace itinera::cli {

namespace {

constexpr char kUsage[] =
    R"(usage: itinera <command> [options]

Commands:
  check [FILES...]                  check journeys (default: the journeys folder)
  graph FILE [--format dot|mermaid] draw a journey as a graph (default: dot)
  simulate FILE --customers FILE --events FILE [--until DUR|TIME] [--format text|json]
                                    run a journey on a virtual clock
  serve                             run the daemon: HTTP API, journeys, delivery (SIGTERM
                                    stops gracefully, SIGHUP reloads journeys and templates)
  help                              this text

Options for every command:
  --config FILE                     configuration (default: ./itinera.toml when present)
)";

int Usage(const std::string& problem) {
  std::cerr << "itinera: " << problem << "\n\n" << kUsage;
  return 2;
}

// Loads --config, or ./itinera.toml when present, or the built-in defaults.
std::optional<orch::Config> LoadConfigFor(const Options& opts) {
  std::string path = opts.Get("config");
  if (path.empty()) {
    if (!std::filesystem::exists("itinera.toml")) return orch::Config{};
    path = "itinera.toml";
  }
  auto config = orch::LoadConfig(path);
  if (!config.ok()) {
    std::cerr << config.error().message << "\n";
    return std::nullopt;
  }
  return std::move(config).value();
}

void PrintDiagnostics(const orch::LoadedJourney& j) {
  std::cerr << dsl::FormatDiagnostics(j.result.diagnostics, j.source);
}

int Check(const Options& opts) {
  auto config = LoadConfigFor(opts);
  if (!config) return 1;
  orch::TemplateSet templates(config->Resolve(config->paths.templates));
  dsl::CheckEnvironment env = orch::MakeCheckEnvironment(*config, templates);

  std::vector<std::string> files = opts.positional;
  if (files.empty()) {
    files = orch::ListJourneyFiles(config->Resolve(config->paths.journeys));
    if (files.empty()) {
      std::cerr << "itinera: no journeys to check in " << config->Resolve(config->paths.journeys)
                << "/\n";
      return 1;
    }
  }

  std::vector<orch::LoadedJourney> journeys;
  int errors = 0, warnings = 0, bad_files = 0;
  for (const std::string& file : files) {
    journeys.push_back(orch::LoadJourney(file, env));
  }
  std::vector<dsl::Diagnostic> clashes = orch::CheckUniqueIds(journeys);
  for (orch::LoadedJourney& j : journeys) {
    for (const dsl::Diagnostic& d : clashes)
      if (d.file == j.file) j.result.diagnostics.push_back(d);
    PrintDiagnostics(j);
    int file_errors = 0;
    for (const dsl::Diagnostic& d : j.result.diagnostics) {
      if (d.severity == dsl::Diagnostic::Severity::kError) ++file_errors;
      if (d.severity == dsl::Diagnostic::Severity::kWarning) ++warnings;
    }
    errors += file_errors;
    if (file_errors) ++bad_files;
  }
  auto plural = [](int n, const char* word) {
    return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
  };
  if (errors) {
    std::cerr << plural(errors, "error") << " in " << plural(bad_files, "journey") << "\n";
    return 1;
  }
  std::cout << "checked " << plural(static_cast<int>(files.size()), "journey") << ": no errors";
  if (warnings) std::cout << ", " << plural(warnings, "warning");
  std::cout << "\n";
  return 0;
}

int Graph(const Options& opts) {
  if (opts.positional.size() != 1) return Usage("graph takes one journey file");
  std::string format = opts.Get("format", "dot");
  if (format != "dot" && format != "mermaid")
    return Usage("--format must be dot or mermaid, not \"" + format + "\"");
  auto config = LoadConfigFor(opts);
  if (!config) return 1;
  orch::TemplateSet templates(config->Resolve(config->paths.templates));
  orch::LoadedJourney j =
      orch::LoadJourney(opts.positional[0], orch::MakeCheckEnvironment(*config, templates));
  PrintDiagnostics(j);
  if (!j.result.program) return 1;
  std::cout << dsl::DrawGraph(
      *j.result.program, format == "dot" ? dsl::GraphFormat::kDot : dsl::GraphFormat::kMermaid);
  return 0;
}

int Serve(const Options& opts) {
  if (!opts.positional.empty()) return Usage("serve takes no files; journeys come from [paths]");
  auto config = LoadConfigFor(opts);
  if (!config) return 1;
  return orch::RunDaemon(*config);
}

}  // namespace

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return Usage("no command given");
  std::string command = args[0];
  args.erase(args.begin());
  if (command == "help" || command == "--help" || command == "-h") {
    std::cout << kUsage;
    return 0;
  }

  struct Command {
    std::vector<std::string> flags;
    int (*run)(const Options&);
  };
  const std::map<std::string, Command> commands = {
      {"check", {{"config"}, Check}},
      {"graph", {{"config", "format"}, Graph}},
      {"simulate", {{"config", "customers", "events", "until", "format"}, Simulate}},
      {"serve", {{"config"}, Serve}},
  };
  auto it = commands.find(command);
  if (it == commands.end()) {
    std::vector<std::string> names = {"check", "graph", "simulate", "serve", "help"};
    return Usage(dsl::WithSuggestion("unknown command \"" + command + "\"", command, names));
  }
  auto opts = ParseOptions(args, it->second.flags);
  if (!opts.ok()) return Usage(opts.error().message);
  return it->second.run(*opts);
}

}  // namespace itinera::cli
