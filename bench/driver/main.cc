// itinera_bench: the plain benchmark drivers (scripts/bench runs them; see bench/README.md).
#include <cstdlib>
#include <iostream>
#include <string>

#include "bench/driver/bench.h"

int main(int argc, char** argv) {
  using namespace itinera::bench;
  const std::string command = argc > 1 ? argv[1] : "";
  const struct {
    const char* name;
    int (*run)(const Flags&);
    const char* help;
  } commands[] = {
      {"files", Files, "--dir D (the bench journeys and templates, for a daemon)"},
      {"sqlite-reference", SqliteReference, "--seconds S [--dir D]"},
      {"transitions", Transitions, "--customers N [--store URL] [--batch B] [--dir D]"},
      {"seed", Seed, "--store URL --customers N [--prefix P]"},
      {"deliver", Deliver,
       "--channel email|sms --messages N [--smtp URL] [--sms-url URL] [--connections K]"},
      {"sink", Sink, "--listen HOST:PORT"},
      {"latency", Latency,
       "--mode hello|events --target URL --rate R --seconds S [--sink HOST:PORT]"},
      {"campaign", Campaign, "--api URL --customers N [--prefix P] [--clients C] [--pid PID]"},
  };
  for (const auto& c : commands) {
    if (command == c.name) {
      ::setenv("ITINERA_LOG_LEVEL", "warn", /*overwrite=*/0);  // the figures, not info lines
      return c.run(Flags(argc, argv, 2));
    }
  }
  std::cerr << "usage: itinera_bench <command> [flags]\n";
  for (const auto& c : commands) std::cerr << "  " << c.name << " " << c.help << "\n";
  return 2;
}
