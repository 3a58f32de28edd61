#include "cli/simulate.h"

#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "orchestrator/catalog.h"
#include "orchestrator/simulator.h"
#include "util/json_limits.h"
#include "util/time.h"

namespace itinera::cli {

namespace {

using nlohmann::json;
using nlohmann::ordered_json;

// Reads JSON Lines; blank lines are skipped. Errors name the file and line.
Result<std::vector<json>> ReadJsonLines(const std::string& path, Status (*validate)(const json&)) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{"input", path + ": cannot read this file"};
  std::vector<json> out;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::string where = path + ":" + std::to_string(line_no) + ": ";
    if (JsonTooDeep(line)) {
      return Error{"input", where + "this line nests deeper than " + std::to_string(kMaxJsonDepth) +
                                " levels"};
    }
    json value = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded()) return Error{"input", where + "this line is not valid JSON"};
    if (!value.is_object()) return Error{"input", where + "each line must be a JSON object"};
    if (Status s = validate(value); !s.ok()) return Error{"input", where + s.error().message};
    out.push_back(std::move(value));
  }
  return out;
}

bool IsOptional(const json& v, const char* key, bool (json::*is)() const) {
  return !v.contains(key) || v[key].is_null() || (v[key].*is)();
}

Status ValidateCustomer(const json& c) {
  if (!c.contains("id") || !c["id"].is_string() || c["id"].get<std::string>().empty())
    return Error{"input", "a customer needs an \"id\" string"};
  for (const char* key : {"email", "phone", "timezone"})
    if (!IsOptional(c, key, &json::is_string))
      return Error{"input", std::string("\"") + key + "\" must be a string"};
  for (const char* key : {"attributes", "consent"})
    if (!IsOptional(c, key, &json::is_object))
      return Error{"input", std::string("\"") + key + "\" must be an object"};
  return Status::Ok();
}

Status ValidateEvent(const json& e) {
  for (const char* key : {"customer_id", "type"}) {
    if (!e.contains(key) || !e[key].is_string() || e[key].get<std::string>().empty())
      return Error{"input", std::string("an event needs a \"") + key + "\" string"};
  }
  if (!e.contains("timestamp") || !e["timestamp"].is_string())
    return Error{"input", "an event needs a \"timestamp\" such as \"2026-11-22T10:00:00Z\""};
  if (!ParseTime(e["timestamp"].get<std::string>()))
    return Error{"input", "\"timestamp\" is not a date-time such as \"2026-11-22T10:00:00Z\""};
  if (!IsOptional(e, "properties", &json::is_object))
    return Error{"input", "\"properties\" must be an object"};
  return Status::Ok();
}

std::string Dump(const ordered_json& v) {
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

// "2026-11-22T10:00:00Z" -> "2026-11-22 10:00".
std::string Short(const std::string& at) {
  if (at.size() < 16) return at;
  std::string s = at.substr(0, 16);
  s[10] = ' ';
  return s;
}

std::string Scalar(const ordered_json& v) {
  if (v.is_string()) return v.get<std::string>();
  return Dump(v);
}

// One line of the text timeline for a record.
std::string Describe(const ordered_json& r) {
  const std::string kind = r.value("kind", "");
  std::ostringstream s;
  if (kind == "entered") {
    s << "entered " << Scalar(r["journey"]) << " v" << Scalar(r["version"]);
    if (r.value("holdout", false)) s << " (holdout: nothing will be sent)";
  } else if (kind == "step") {
    s << "step " << Scalar(r["step"]);
  } else if (kind == "sent") {
    s << "sent " << Scalar(r["channel"]) << " \"" << Scalar(r["template"]) << "\" to "
      << Scalar(r["to"]);
    if (r.contains("subject") && r["subject"].is_string())
      s << ": \"" << r["subject"].get<std::string>() << "\"";
    if (r.contains("handle") && r["handle"].is_string()) s << " as " << Scalar(r["handle"]);
  } else if (kind == "skipped") {
    s << "skipped " << Scalar(r["channel"]) << " \"" << Scalar(r["template"])
      << "\": " << Scalar(r["reason"]);
  } else if (kind == "held") {
    s << "held " << Scalar(r["channel"]) << " \"" << Scalar(r.value("template", ordered_json()))
      << "\" for quiet hours until " << Short(Scalar(r["until"]));
  } else if (kind == "alert") {
    s << "alerted " << Scalar(r["rep"]) << " with \"" << Scalar(r["template"]) << "\"";
  } else if (kind == "assigned") {
    s << "assigned to " << Scalar(r["rep"]);
  } else if (kind == "set") {
    s << "set customer." << Scalar(r["attribute"]) << " = " << Dump(r["value"]);
  } else if (kind == "webhook") {
    s << "webhook \"" << Scalar(r["name"]) << "\"";
  } else if (kind == "goal") {
    s << "reached goal \"" << Scalar(r["goal"]) << "\"";
  } else if (kind == "exited") {
    s << "exited: " << Scalar(r["reason"]);
  } else {
    s << kind;
  }
  return s.str();
}

void PrintText(const std::vector<ordered_json>& records, std::ostream& out) {
  // Timeline per customer, customers in order of first appearance.
  std::vector<std::string> order;
  std::map<std::string, std::vector<const ordered_json*>> by_customer;
  const ordered_json* summary = nullptr;
  for (const ordered_json& r : records) {
    if (r.value("kind", "") == "summary") {
      summary = &r;
      continue;
    }
    std::string c = r.value("customer", "");
    if (!by_customer.count(c)) order.push_back(c);
    by_customer[c].push_back(&r);
  }
  if (!order.empty()) out << "Timeline per customer (times in UTC)\n\n";
  for (const std::string& c : order) {
    out << "customer " << c << "\n";
    for (const ordered_json* r : by_customer[c])
      out << "  " << Short(r->value("at", "")) << "  " << Describe(*r) << "\n";
    out << "\n";
  }
  if (order.empty()) out << "No customer entered.\n\n";
  if (!summary) return;

  out << "Summary\n";
  size_t width = 4;
  for (const auto& [step, n] : (*summary)["steps"].items()) width = std::max(width, step.size());
  out << "  " << std::left << std::setw(static_cast<int>(width)) << "step"
      << "  customers\n";
  for (const auto& [step, n] : (*summary)["steps"].items())
    out << "  " << std::left << std::setw(static_cast<int>(width)) << step << "  " << Dump(n)
        << "\n";
  auto line = [&](const char* title, const ordered_json& counts) {
    out << "  " << title << ":";
    if (counts.empty()) out << " none";
    bool first = true;
    for (const auto& [k, n] : counts.items()) {
      out << (first ? " " : ", ") << k << " " << Dump(n);
      first = false;
    }
    out << "\n";
  };
  line("sent", (*summary)["sent"]);
  line("goals", (*summary)["goals"]);
  ordered_json totals = ordered_json::object();
  for (const char* key : {"entered", "holdout", "exited", "skipped", "alerts", "webhooks"})
    if (summary->contains(key)) totals[key] = (*summary)[key];
  if (!totals.empty()) line("customers and actions", totals);
}

}  // namespace

int Simulate(const Options& opts) {
  if (opts.positional.size() != 1) {
    std::cerr << "itinera: simulate takes one journey file\n";
    return 2;
  }
  for (const char* flag : {"customers", "events"}) {
    if (!opts.Has(flag)) {
      std::cerr << "itinera: simulate needs --" << flag << " FILE (JSON Lines)\n";
      return 2;
    }
  }
  std::string format = opts.Get("format", "text");
  if (format != "text" && format != "json") {
    std::cerr << "itinera: --format must be text or json, not \"" << format << "\"\n";
    return 2;
  }
  orch::SimulationOptions options;
  if (opts.Has("until")) {
    std::string until = opts.Get("until");
    if (auto d = ParseDuration(until)) {
      options.until_after_start = *d;
    } else if (auto t = ParseTime(until)) {
      options.until = *t;
    } else {
      std::cerr << "itinera: --until takes a duration such as 30d or a date-time such as "
                   "2026-12-01T00:00:00Z, not \""
                << until << "\"\n";
      return 2;
    }
  }

  orch::Config config;
  std::string config_path = opts.Get("config");
  if (config_path.empty() && std::filesystem::exists("itinera.toml")) config_path = "itinera.toml";
  if (!config_path.empty()) {
    auto loaded = orch::LoadConfig(config_path);
    if (!loaded.ok()) {
      std::cerr << loaded.error().message << "\n";
      return 1;
    }
    config = std::move(loaded).value();
  }
  options.public_url = config.server.public_url;

  orch::TemplateSet templates(config.Resolve(config.paths.templates));
  orch::LoadedJourney journey =
      orch::LoadJourney(opts.positional[0], orch::MakeCheckEnvironment(config, templates));
  std::cerr << dsl::FormatDiagnostics(journey.result.diagnostics, journey.source);
  if (!journey.result.program) return 1;

  auto customers = ReadJsonLines(opts.Get("customers"), ValidateCustomer);
  if (!customers.ok()) {
    std::cerr << customers.error().message << "\n";
    return 1;
  }
  auto events = ReadJsonLines(opts.Get("events"), ValidateEvent);
  if (!events.ok()) {
    std::cerr << events.error().message << "\n";
    return 1;
  }

  auto result = orch::Simulate({&*journey.result.program}, *customers, *events, config.directory,
                               templates, options);
  if (!result.ok()) {
    std::cerr << "itinera: " << result.error().message << "\n";
    return 1;
  }
  if (format == "json") {
    std::string out;
    for (const ordered_json& r : result->records) out.append(Dump(r)).append("\n");
    std::cout << out;
  } else {
    PrintText(result->records, std::cout);
  }
  return 0;
}

}  // namespace itinera::cli
