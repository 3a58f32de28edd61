#include "cli/options.h"

#include <algorithm>

#include "dsl/diagnostic.h"

namespace itinera::cli {

Result<Options> ParseOptions(const std::vector<std::string>& args,
                             const std::vector<std::string>& known) {
  Options out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0 || a == "--") {
      out.positional.push_back(a);
      continue;
    }
    std::string name = a.substr(2), value;
    size_t eq = name.find('=');
    bool inline_value = eq != std::string::npos;
    if (inline_value) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      std::vector<std::string> flags;
      for (const auto& k : known) flags.push_back(k);
      return Error{"usage", dsl::WithSuggestion("unknown option --" + name, name, flags)};
    }
    if (!inline_value) {
      if (i + 1 >= args.size()) return Error{"usage", "--" + name + " needs a value"};
      value = args[++i];
    }
    if (out.flags.count(name)) return Error{"usage", "--" + name + " is given twice"};
    out.flags[name] = value;
  }
  return out;
}

}  // namespace itinera::cli
