// `itinera simulate`: a journey run on a virtual clock against sample customers and events.
//
// Reads the customers and events JSON Lines files, drives the simulator, and prints either a
// readable timeline per customer with a summary table (text) or the JSON Lines records of
// DESIGN.md (json). Identical input gives byte-identical output.
#ifndef ITINERA_CLI_SIMULATE_H_
#define ITINERA_CLI_SIMULATE_H_

#include "cli/options.h"

namespace itinera::cli {

int Simulate(const Options& opts);

}  // namespace itinera::cli

#endif  // ITINERA_CLI_SIMULATE_H_
