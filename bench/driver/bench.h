// The benchmark driver's shared pieces: flags, results, a workspace with the bench journeys.
//
// Every subcommand prints ONE line of JSON on stdout (its figures); scripts/bench collects the
// lines and bench/report.py turns them into the table of docs/benchmarks.md. Progress and
// errors go to stderr.
#ifndef ITINERA_BENCH_DRIVER_BENCH_H_
#define ITINERA_BENCH_DRIVER_BENCH_H_

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "orchestrator/clock.h"
#include "orchestrator/config.h"
#include "orchestrator/journey_registry.h"
#include "orchestrator/processor.h"
#include "orchestrator/store.h"

namespace itinera::bench {

// --name value pairs (and bare --flag, read as "1").
class Flags {
 public:
  Flags(int argc, char** argv, int first);
  std::string Text(const std::string& name, const std::string& fallback = "") const;
  int64_t Int(const std::string& name, int64_t fallback) const;
  double Real(const std::string& name, double fallback) const;
  bool Has(const std::string& name) const { return values_.count(name) > 0; }

 private:
  std::map<std::string, std::string> values_;
};

// Exits with a message on stderr when `ok` is false.
void Check(bool ok, const std::string& what);

// Prints `result` as one JSON line on stdout.
void Emit(const nlohmann::json& result);

// Seconds elapsed on the monotonic clock since `start`.
double Since(std::chrono::steady_clock::time_point start);

// Resident and peak resident memory of a process, in bytes (/proc/PID/status).
int64_t ResidentBytes(int pid, const char* field = "VmRSS:");

// A temporary folder (under `parent`, or the system's) with the bench journeys and templates and
// a Config pointing at it; Use(name) selects the journeys folder "journeys/<name>".
//   flow, bench_flow: "signup" enters; sets, sends a personalised email, waits 1 day; sets, waits 1
//               day; exits (three durable transitions per customer).
//   mail, bench_mail: "campaign" enters; sends a personalised ~5 KB email, then waits 30 days.
//   sms, bench_sms:   "ping" enters; sends a personalised SMS, then waits 30 days.
class Workspace {
 public:
  explicit Workspace(const std::string& parent = "");
  ~Workspace();
  const std::filesystem::path& path() const { return path_; }
  orch::Config& config() { return config_; }
  void Use(const std::string& journey) { config_.paths.journeys = "journeys/" + journey; }

 private:
  std::filesystem::path path_;
  orch::Config config_;
};

// Writes the bench journeys (journeys/<name>/) and templates (templates/) into `dir`.
void WriteBenchFiles(const std::filesystem::path& dir);

// The profile of bench customer `i` (email and SMS consent, an address, a phone, a name).
nlohmann::json BenchProfile(const std::string& prefix, int64_t i);
std::string CustomerId(const std::string& prefix, int64_t i);

// Creates the profiles of customers [0, n) in commits of 5,000 (the audience of a campaign:
// imported before it starts, not part of any timing).
void SeedProfiles(orch::Store& store, const std::string& prefix, int64_t n);

// Appends one event of `type` for each of customers [0, n), in groups of 5,000.
void AppendEvents(orch::Store& store, const std::string& prefix, int64_t n, const std::string& type,
                  Time at);

// Runs the processor until it has nothing left to do; returns the customers advanced.
int64_t Drain(orch::Processor& processor);

// Subcommands (bench/driver/*.cc).
int Files(const Flags& flags);
int SqliteReference(const Flags& flags);
int Transitions(const Flags& flags);
int Seed(const Flags& flags);
int Deliver(const Flags& flags);
int Sink(const Flags& flags);
int Latency(const Flags& flags);
int Campaign(const Flags& flags);

}  // namespace itinera::bench

#endif  // ITINERA_BENCH_DRIVER_BENCH_H_
