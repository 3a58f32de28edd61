// The `itinera` command line: check, graph, simulate (and later serve).
//
// Main parses argv and dispatches; each command writes its result to stdout, diagnostics and
// errors to stderr, and returns the process exit status (0 ok, 1 errors found, 2 bad usage).
#ifndef ITINERA_CLI_COMMANDS_H_
#define ITINERA_CLI_COMMANDS_H_

namespace itinera::cli {

int Main(int argc, char** argv);

}  // namespace itinera::cli

#endif  // ITINERA_CLI_COMMANDS_H_
