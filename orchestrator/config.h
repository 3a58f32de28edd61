// itinera.toml: the one configuration file.
//
// Every key has a default that works on one machine, so an empty or missing file is a valid
// configuration. A string value "env:NAME" is read from the environment variable NAME (secrets);
// an unset variable reads as "". Relative paths are resolved against the folder holding the
// file. Unknown keys are errors, so a typo does not silently fall back to a default.
#ifndef ITINERA_ORCHESTRATOR_CONFIG_H_
#define ITINERA_ORCHESTRATOR_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "orchestrator/directory.h"
#include "util/result.h"

namespace itinera::orch {

struct Config {
  struct Server {
    std::string listen = "127.0.0.1:8080";
    std::string public_url = "http://127.0.0.1:8080";
    std::vector<std::string> api_tokens;  // empty: no authentication (loopback use)
    std::string tracking_secret;
    int64_t max_body_bytes = 1 << 20;
    // Request threads: each keep-alive connection holds one while it is open, so this is also
    // how many clients are served at once.
    int64_t threads = 64;
  } server;
  struct Store {
    std::string url = "sqlite:var/itinera.db";
    int64_t pool = 8;  // PostgreSQL: connections shared by the daemon's threads
  } store;
  // Several daemons on one PostgreSQL database (orchestrator/partitions.h). Ignored on SQLite.
  struct Cluster {
    std::string node;           // this daemon's id; empty: "<hostname>-<pid>"
    std::string lease = "15s";  // partitions of a daemon that stops renewing move after this
  } cluster;
  struct Paths {
    std::string journeys = "journeys";
    std::string templates = "templates";
  } paths;
  struct Email {
    std::string connector = "maildir";  // maildir | smtp
    std::string from = "Itinera <itinera@localhost>";
    std::string maildir = "var/mail";
    std::string smtp_url = "smtp://127.0.0.1:2525";
    std::string smtp_user;
    std::string smtp_password;
  } email;
  struct Sms {
    std::string connector = "file";  // file | http
    std::string file = "var/sms.log";
    std::string url;
    std::string account;
    std::string token;
    std::string from;
  } sms;
  // The dispatcher: retries with exponential backoff and jitter, then dead letters; a rate
  // limit per connector (messages per second; 0 means none).
  struct Delivery {
    int64_t max_attempts = 8;           // attempts before a transient failure becomes dead
    std::string retry_initial = "30s";  // the first retry waits about this long, then doubling
    std::string retry_max = "1h";       // no wait is longer
    double email_rate = 0;
    double sms_rate = 0;
    double alert_rate = 0;
    double webhook_rate = 0;
    int64_t batch = 500;  // customers advanced per commit (group commit)
    // Sends in flight at once per lane, each worker on its own connection (1 to 64).
    int64_t connections = 4;
    // A claimed message not reported sent, failed or released within this time (the process
    // died mid-send) is claimed again, with the same idempotency key. A lane starts no send
    // after half of it, so it must exceed twice the slowest send (SMTP gives up after 60 s).
    std::string lease = "2m";
  } delivery;
  Directory directory;

  std::string source;    // the file it was read from; empty for the built-in defaults
  std::string base_dir;  // relative paths above are resolved against this ("." by default)

  // `path` resolved against base_dir.
  std::string Resolve(const std::string& path) const;
};

// Reads and validates `path`. Errors name the file, the key and what is wrong.
Result<Config> LoadConfig(const std::string& path);

// Parses TOML text; `source_name` is used in errors, `base_dir` for relative paths.
Result<Config> ParseConfig(const std::string& text, const std::string& source_name,
                           const std::string& base_dir);

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_CONFIG_H_
