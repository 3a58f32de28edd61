#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "bench/driver/bench.h"

namespace itinera::bench {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int64_t kSeedGroup = 5000;

constexpr const char* kFlowJourney = R"(journey bench_flow "Bench: three transitions" {
  version 1
  enter when event "signup"

  step welcome {
    set customer.stage = "welcomed"
    send email "bench_welcome"
    wait 1d
    then nudge
  }

  step nudge {
    set customer.stage = "nudged"
    wait 1d
    then done
  }

  step done { exit "done" }
}
)";

constexpr const char* kMailJourney = R"(journey bench_mail "Bench: a campaign email" {
  version 1
  enter when event "campaign"

  step mail {
    send email "bench_offer"
    wait 30d
    then done
  }

  step done { exit "done" }
}
)";

constexpr const char* kSmsJourney = R"(journey bench_sms "Bench: a text" {
  version 1
  enter when event "ping"

  step text {
    send sms "bench_text"
    wait 30d
    then done
  }

  step done { exit "done" }
}
)";

constexpr const char* kWelcomeTemplate = R"(---
subject: Welcome to Vltava Motors, {{customer.first_name}}
---
<p>Hello {{customer.first_name}},</p>
<p>thank you for signing up. Our <a href="https://dealer.example/models">current models</a> are
waiting for a test drive.</p>
)";

constexpr const char* kTextTemplate =
    "bench {{customer.id}}: {{customer.first_name}}, your winter tyre slot is ready.";

// The 5 KB campaign email: a personalised HTML body with three tracked links. With the
// generated text part, the headers and the open pixel the message is a little over 5,120 bytes
// on the wire, the size smtp-source sends in the reference.
std::string OfferTemplate() {
  std::string t =
      "---\nsubject: {{customer.first_name}}, your winter offer is here\n---\n"
      "<html><body>\n<h1>Winter offer for {{customer.first_name}} {{customer.last_name}}</h1>\n"
      "<p>Hello {{customer.first_name}}, as a Vltava Motors customer in {{customer.city}} you get "
      "a free winter check and 15 % off winter tyres until the end of the month.</p>\n";
  const char* paragraph =
      "<p>Our service team checks the battery, the lights, the wipers, the coolant and the tyre "
      "tread, and tells you what needs doing before the first frost. Book a slot that suits you "
      "online or at the front desk; the check takes about forty minutes and you can wait in the "
      "lounge with a coffee.</p>\n";
  for (int i = 0; i < 5; ++i) t += paragraph;
  t += "<p><a href=\"https://dealer.example/service/book?c={{customer.id}}\">Book your check</a> "
       "&middot; <a href=\"https://dealer.example/tyres\">Winter tyres</a> &middot; "
       "<a href=\"https://dealer.example/contact\">Contact us</a></p>\n"
       "<p>Kind regards,<br>the Vltava Motors service team</p>\n"
       "<p>P.S. Bring your service book along: we stamp it at the front desk, and a full "
       "history keeps the warranty and the resale value of your car.</p>\n</body></html>\n";
  return t;
}

void WriteFile(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

}  // namespace

Flags::Flags(int argc, char** argv, int first) {
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    Check(a.rfind("--", 0) == 0, "unexpected argument " + a);
    a = a.substr(2);
    if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
      values_[a] = argv[++i];
    } else {
      values_[a] = "1";
    }
  }
}

std::string Flags::Text(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

int64_t Flags::Int(const std::string& name, int64_t fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : std::stoll(it->second);
}

double Flags::Real(const std::string& name, double fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : std::stod(it->second);
}

void Check(bool ok, const std::string& what) {
  if (ok) return;
  std::cerr << "itinera_bench: " << what << std::endl;
  std::exit(1);
}

void Emit(const json& result) { std::cout << result.dump() << std::endl; }

double Since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int64_t ResidentBytes(int pid, const char* field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  const std::string key = field;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::stoll(line.substr(key.size())) * 1024;  // kB
  }
  return -1;
}

void WriteBenchFiles(const fs::path& dir) {
  // One folder per journey, so each run loads only the journey it measures.
  WriteFile(dir / "journeys/flow/bench_flow.journey", kFlowJourney);
  WriteFile(dir / "journeys/mail/bench_mail.journey", kMailJourney);
  WriteFile(dir / "journeys/sms/bench_sms.journey", kSmsJourney);
  WriteFile(dir / "templates/bench_welcome.email.mustache", kWelcomeTemplate);
  WriteFile(dir / "templates/bench_offer.email.mustache", OfferTemplate());
  WriteFile(dir / "templates/bench_text.sms.mustache", kTextTemplate);
}

Workspace::Workspace(const std::string& parent) {
  fs::path base = parent.empty() ? fs::temp_directory_path() : fs::path(parent);
  fs::create_directories(base);
  std::string pattern = (base / "itinera-bench-XXXXXX").string();
  Check(::mkdtemp(pattern.data()) != nullptr, "cannot create a temporary folder");
  path_ = pattern;
  WriteBenchFiles(path_);
  config_.base_dir = path_.string();
  config_.server.tracking_secret = "bench-tracking-secret";
  config_.server.public_url = "https://t.dealer.example";
}

Workspace::~Workspace() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string CustomerId(const std::string& prefix, int64_t i) { return prefix + std::to_string(i); }

json BenchProfile(const std::string& prefix, int64_t i) {
  static const char* kFirst[] = {"Anna", "Tomas", "Klara", "Marek", "Lucie", "Petr", "Eva"};
  static const char* kCity[] = {"Prague", "Brno", "Ostrava", "Plzen", "Liberec"};
  char phone[32];
  std::snprintf(phone, sizeof phone, "+1555%07lld", static_cast<long long>(i % 10000000));
  return {{"email", CustomerId(prefix, i) + "@customers.example"},
          {"phone", phone},
          {"first_name", kFirst[i % 7]},
          {"last_name", "Novak"},
          {"consent", {{"email", true}, {"sms", true}}},
          {"attributes", {{"city", kCity[i % 5]}, {"segment", i % 2 ? "fleet" : "retail"}}}};
}

void SeedProfiles(orch::Store& store, const std::string& prefix, int64_t n) {
  for (int64_t first = 0; first < n; first += kSeedGroup) {
    orch::Batch batch;
    for (int64_t i = first; i < std::min(n, first + kSeedGroup); ++i) {
      batch.profiles.push_back({CustomerId(prefix, i), BenchProfile(prefix, i)});
    }
    Status s = store.Commit(batch);
    Check(s.ok(), "seeding profiles: " + (s.ok() ? "" : s.error().message));
  }
}

void AppendEvents(orch::Store& store, const std::string& prefix, int64_t n, const std::string& type,
                  Time at) {
  std::vector<orch::NewEvent> group;
  for (int64_t i = 0; i < n; ++i) {
    orch::NewEvent e;
    e.customer = CustomerId(prefix, i);
    e.at = at;
    e.body = {{"customer_id", e.customer},
              {"type", type},
              {"timestamp", FormatTime(at)},
              {"properties", json::object()}};
    group.push_back(std::move(e));
    if (static_cast<int64_t>(group.size()) == kSeedGroup || i + 1 == n) {
      auto appended = store.AppendEvents(group);
      Check(appended.ok(), "appending events: " + (appended.ok() ? "" : appended.error().message));
      group.clear();
    }
  }
}

int Files(const Flags& flags) {
  Check(flags.Has("dir"), "--dir is required");
  WriteBenchFiles(flags.Text("dir"));
  return 0;
}

int64_t Drain(orch::Processor& processor) {
  int64_t total = 0;
  for (;;) {
    auto n = processor.RunOnce();
    Check(n.ok(), "processor: " + (n.ok() ? "" : n.error().message));
    if (*n == 0) return total;
    total += *n;
  }
}

}  // namespace itinera::bench
