#include "orchestrator/config.h"

#include <toml++/toml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "dsl/diagnostic.h"
#include "util/time.h"

namespace itinera::orch {

namespace {

// Reads one TOML table into fields, rejecting unknown keys and wrong types. Errors name the
// file, line and key so an operator can fix them without reading code.
class TableReader {
 public:
  TableReader(const toml::table& table, std::string section, const std::string& source)
      : table_(table), section_(std::move(section)), source_(source) {}

  void String(const char* key, std::string& out) {
    Field(key, [&](const toml::node& n) {
      if (!n.is_string()) return Fail(n, key, "must be a string in double quotes");
      out = Expand(*n.value<std::string>());
    });
  }
  void Int(const char* key, int64_t& out) {
    Field(key, [&](const toml::node& n) {
      if (!n.is_integer()) return Fail(n, key, "must be a whole number");
      out = *n.value<int64_t>();
    });
  }
  void Double(const char* key, double& out) {
    Field(key, [&](const toml::node& n) {
      if (!n.is_number()) return Fail(n, key, "must be a number");
      out = *n.value<double>();
      if (out < 0) return Fail(n, key, "must not be negative");
    });
  }
  void Strings(const char* key, std::vector<std::string>& out) {
    Field(key, [&](const toml::node& n) {
      const toml::array* a = n.as_array();
      if (!a) return Fail(n, key, "must be a list of strings, such as [\"a\", \"b\"]");
      out.clear();
      for (const toml::node& item : *a) {
        if (!item.is_string()) return Fail(item, key, "must be a list of strings");
        std::string v = Expand(*item.value<std::string>());
        if (!v.empty()) out.push_back(v);  // an unset env: secret configures nothing
      }
    });
  }

  // Reports every key that no reader asked for.
  void RejectUnknown() {
    std::vector<std::string> known(known_.begin(), known_.end());
    for (const auto& [key, node] : table_) {
      std::string k(key.str());
      if (known_.count(k)) continue;
      Fail(node, k.c_str(), dsl::WithSuggestion("is not a known key", k, known));
    }
  }

  const std::optional<Error>& error() const { return error_; }

  static std::string Expand(const std::string& value) {
    if (value.rfind("env:", 0) != 0) return value;
    const char* v = std::getenv(value.c_str() + 4);
    return v ? v : "";
  }

 private:
  template <typename F>
  void Field(const char* key, F&& read) {
    known_.insert(key);
    if (const toml::node* n = table_.get(key)) read(*n);
  }

  void Fail(const toml::node& n, const std::string& key, const std::string& what) {
    if (error_) return;
    std::ostringstream msg;
    msg << source_ << ":" << n.source().begin.line << ": " << Where() << " " << key << " " << what;
    error_ = Error{"config", msg.str()};
  }

  std::string Where() const { return section_.empty() ? "the file" : "[" + section_ + "]"; }

  const toml::table& table_;
  std::string section_;
  const std::string& source_;
  std::set<std::string> known_;
  std::optional<Error> error_;
};

std::optional<Error> ReadTeams(const toml::table& teams, const std::string& source,
                               Directory& dir) {
  for (const auto& [name, node] : teams) {
    std::string team(name.str());
    const toml::array* reps = node.as_array();
    if (!reps || !reps->is_array_of_tables()) {
      return Error{"config", source + ":" + std::to_string(node.source().begin.line) +
                                 ": a team is a list of reps: write [[teams." + team + "]]"};
    }
    std::vector<Rep>& out = dir.teams[team];
    for (const toml::node& r : *reps) {
      Rep rep;
      rep.team = team;
      TableReader reader(*r.as_table(), "[teams." + team + "]", source);
      reader.String("id", rep.id);
      reader.String("name", rep.name);
      reader.String("email", rep.email);
      reader.String("phone", rep.phone);
      reader.String("alert_via", rep.alert_via);
      reader.String("slack_webhook", rep.slack_webhook);
      reader.String("webhook", rep.webhook);
      reader.String("territory", rep.territory);
      reader.RejectUnknown();
      if (reader.error()) return reader.error();
      std::string line = std::to_string(r.source().begin.line);
      if (rep.id.empty())
        return Error{"config", source + ":" + line + ": a rep of team " + team + " has no id"};
      if (rep.alert_via != "slack" && rep.alert_via != "email" && rep.alert_via != "sms" &&
          rep.alert_via != "webhook") {
        return Error{"config", source + ":" + line + ": rep " + rep.id + " alert_via must be " +
                                   "slack, email, sms or webhook, not \"" + rep.alert_via + "\""};
      }
      if (rep.name.empty()) rep.name = rep.id;
      out.push_back(std::move(rep));
    }
  }
  return std::nullopt;
}

std::optional<Error> ReadWebhooks(const toml::table& hooks, const std::string& source,
                                  Directory& dir) {
  for (const auto& [name, node] : hooks) {
    const toml::table* t = node.as_table();
    std::string id(name.str());
    if (!t) {
      return Error{"config", source + ":" + std::to_string(node.source().begin.line) +
                                 ": write the webhook as a table: [webhooks." + id + "]"};
    }
    Webhook hook;
    hook.name = id;
    TableReader reader(*t, "webhooks." + id, source);
    reader.String("url", hook.url);
    reader.String("secret", hook.secret);
    reader.RejectUnknown();
    if (reader.error()) return reader.error();
    dir.webhooks[id] = std::move(hook);
  }
  return std::nullopt;
}

}  // namespace

std::string Config::Resolve(const std::string& path) const {
  std::filesystem::path p(path);
  if (p.is_absolute() || base_dir.empty() || base_dir == ".") return path;
  return (std::filesystem::path(base_dir) / p).lexically_normal().string();
}

Result<Config> ParseConfig(const std::string& text, const std::string& source_name,
                           const std::string& base_dir) {
  toml::table root;
  try {
    root = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << source_name << ":" << e.source().begin.line << ":" << e.source().begin.column << ": "
        << e.description();
    return Error{"config", msg.str()};
  }

  Config config;
  config.source = source_name;
  config.base_dir = base_dir.empty() ? "." : base_dir;

  // Sections and their readers; an unknown section is an error like an unknown key.
  std::map<std::string, std::function<std::optional<Error>(const toml::table&)>> sections = {
      {"server",
       [&](const toml::table& t) {
         TableReader r(t, "server", source_name);
         r.String("listen", config.server.listen);
         r.String("public_url", config.server.public_url);
         r.Strings("api_tokens", config.server.api_tokens);
         r.String("tracking_secret", config.server.tracking_secret);
         r.Int("max_body_bytes", config.server.max_body_bytes);
         r.Int("threads", config.server.threads);
         r.RejectUnknown();
         return r.error();
       }},
      {"store",
       [&](const toml::table& t) {
         TableReader r(t, "store", source_name);
         r.String("url", config.store.url);
         r.Int("pool", config.store.pool);
         r.RejectUnknown();
         return r.error();
       }},
      {"cluster",
       [&](const toml::table& t) {
         TableReader r(t, "cluster", source_name);
         r.String("node", config.cluster.node);
         r.String("lease", config.cluster.lease);
         r.RejectUnknown();
         return r.error();
       }},
      {"paths",
       [&](const toml::table& t) {
         TableReader r(t, "paths", source_name);
         r.String("journeys", config.paths.journeys);
         r.String("templates", config.paths.templates);
         r.RejectUnknown();
         return r.error();
       }},
      {"email",
       [&](const toml::table& t) {
         TableReader r(t, "email", source_name);
         r.String("connector", config.email.connector);
         r.String("from", config.email.from);
         r.String("maildir", config.email.maildir);
         r.String("smtp_url", config.email.smtp_url);
         r.String("smtp_user", config.email.smtp_user);
         r.String("smtp_password", config.email.smtp_password);
         r.RejectUnknown();
         return r.error();
       }},
      {"sms",
       [&](const toml::table& t) {
         TableReader r(t, "sms", source_name);
         r.String("connector", config.sms.connector);
         r.String("file", config.sms.file);
         r.String("url", config.sms.url);
         r.String("account", config.sms.account);
         r.String("token", config.sms.token);
         r.String("from", config.sms.from);
         r.RejectUnknown();
         return r.error();
       }},
      {"delivery",
       [&](const toml::table& t) {
         TableReader r(t, "delivery", source_name);
         r.Int("max_attempts", config.delivery.max_attempts);
         r.String("retry_initial", config.delivery.retry_initial);
         r.String("retry_max", config.delivery.retry_max);
         r.Double("email_rate", config.delivery.email_rate);
         r.Double("sms_rate", config.delivery.sms_rate);
         r.Double("alert_rate", config.delivery.alert_rate);
         r.Double("webhook_rate", config.delivery.webhook_rate);
         r.Int("batch", config.delivery.batch);
         r.Int("connections", config.delivery.connections);
         r.String("lease", config.delivery.lease);
         r.RejectUnknown();
         return r.error();
       }},
      {"teams", [&](const toml::table& t) { return ReadTeams(t, source_name, config.directory); }},
      {"webhooks",
       [&](const toml::table& t) { return ReadWebhooks(t, source_name, config.directory); }},
  };

  std::vector<std::string> names;
  for (const auto& [name, reader] : sections) names.push_back(name);
  for (const auto& [key, node] : root) {
    std::string name(key.str());
    auto it = sections.find(name);
    std::string line = std::to_string(node.source().begin.line);
    if (it == sections.end()) {
      return Error{"config",
                   source_name + ":" + line + ": " +
                       dsl::WithSuggestion("unknown section [" + name + "]", name, names)};
    }
    const toml::table* t = node.as_table();
    if (!t) return Error{"config", source_name + ":" + line + ": " + name + " must be a table"};
    if (auto error = it->second(*t)) return *error;
  }

  if (config.email.connector != "maildir" && config.email.connector != "smtp") {
    return Error{"config", source_name + ": [email] connector must be \"maildir\" or \"smtp\""};
  }
  if (config.sms.connector != "file" && config.sms.connector != "http") {
    return Error{"config", source_name + ": [sms] connector must be \"file\" or \"http\""};
  }
  if (config.delivery.max_attempts < 1) {
    return Error{"config", source_name + ": [delivery] max_attempts must be at least 1"};
  }
  if (config.delivery.batch < 1 || config.delivery.batch > 10000) {
    return Error{"config", source_name + ": [delivery] batch must be between 1 and 10000"};
  }
  if (config.delivery.connections < 1 || config.delivery.connections > 64) {
    return Error{"config", source_name + ": [delivery] connections must be between 1 and 64"};
  }
  for (const auto* key :
       {&config.delivery.retry_initial, &config.delivery.retry_max, &config.delivery.lease}) {
    auto d = ParseDuration(*key);
    if (!d || d->count() <= 0) {
      return Error{"config", source_name + ": [delivery] " +
                                 (key == &config.delivery.retry_initial ? "retry_initial"
                                  : key == &config.delivery.retry_max   ? "retry_max"
                                                                        : "lease") +
                                 " must be a duration such as \"30s\" or \"5m\", not \"" + *key +
                                 "\""};
    }
  }
  if (config.store.pool < 1 || config.store.pool > 200) {
    return Error{"config", source_name + ": [store] pool must be between 1 and 200"};
  }
  if (auto d = ParseDuration(config.cluster.lease); !d || d->count() < 2) {
    return Error{"config", source_name +
                               ": [cluster] lease must be a duration of at least \"2s\", not \"" +
                               config.cluster.lease + "\""};
  }
  if (config.server.max_body_bytes <= 0) {
    return Error{"config", source_name + ": [server] max_body_bytes must be positive"};
  }
  if (config.server.threads < 1 || config.server.threads > 1024) {
    return Error{"config", source_name + ": [server] threads must be between 1 and 1024"};
  }
  std::map<std::string, std::string> rep_team;  // rep id -> the team that first named it
  for (const auto& [team, reps] : config.directory.teams) {
    for (const Rep& rep : reps) {
      auto [it, fresh] = rep_team.emplace(rep.id, team);
      if (!fresh) {
        return Error{"config", source_name + ": rep id " + rep.id + " appears twice (in team " +
                                   it->second + " and in team " + team + "): give each rep one id"};
      }
      if (rep.alert_via == "webhook" && !config.directory.webhooks.count(rep.webhook)) {
        return Error{"config", source_name + ": rep " + rep.id +
                                   " alerts via webhook but names no [webhooks.<name>] entry "
                                   "in its webhook key"};
      }
    }
  }
  return config;
}

Result<Config> LoadConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{"config", path + ": cannot open the configuration file"};
  std::ostringstream text;
  text << in.rdbuf();
  std::string dir = std::filesystem::path(path).parent_path().string();
  return ParseConfig(text.str(), path, dir);
}

}  // namespace itinera::orch
