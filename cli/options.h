// Command-line flags: `--name value` or `--name=value`, everything else positional.
#ifndef ITINERA_CLI_OPTIONS_H_
#define ITINERA_CLI_OPTIONS_H_

#include <map>
#include <string>
#include <vector>

#include "util/result.h"

namespace itinera::cli {

struct Options {
  std::map<std::string, std::string> flags;
  std::vector<std::string> positional;

  std::string Get(const std::string& name, const std::string& fallback = "") const {
    auto it = flags.find(name);
    return it == flags.end() ? fallback : it->second;
  }
  bool Has(const std::string& name) const { return flags.count(name) > 0; }
};

// Only flags in `known` are accepted; each takes a value.
Result<Options> ParseOptions(const std::vector<std::string>& args,
                             const std::vector<std::string>& known);

}  // namespace itinera::cli

#endif  // ITINERA_CLI_OPTIONS_H_
