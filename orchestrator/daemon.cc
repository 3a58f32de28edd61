#include "orchestrator/daemon.h"

#include <sys/stat.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <condition_variable>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "connectors/maildir.h"
#include "connectors/slack.h"
#include "connectors/sms_file.h"
#include "connectors/sms_http.h"
#include "connectors/smtp.h"
#include "connectors/webhook.h"
#include "orchestrator/api_server.h"
#include "orchestrator/clock.h"
#include "orchestrator/cluster.h"
#include "orchestrator/dispatcher.h"
#include "orchestrator/ingest.h"
#include "orchestrator/journey_registry.h"
#include "orchestrator/metrics.h"
#include "orchestrator/processor.h"
#include "util/crypto.h"
#include "util/log.h"
#include "util/thread_name.h"

namespace itinera::orch {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kSqlitePrefix = "sqlite:";

// The SQLite file a configuration names, resolved against the config's folder; nullopt for
// stores that are not a file.
std::optional<std::string> SqliteFile(const Config& config) {
  const std::string& url = config.store.url;
  if (url.rfind(kSqlitePrefix, 0) != 0 || url == "sqlite::memory:") return std::nullopt;
  return config.Resolve(url.substr(std::string(kSqlitePrefix).size()));
}

// The folder the store lives in (for the generated tracking key): the SQLite file's folder.
std::string StoreFolder(const Config& config) {
  auto file = SqliteFile(config);
  return file ? fs::path(*file).parent_path().string() : config.Resolve("var");
}

Result<std::pair<std::string, int>> SplitListen(const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos)
    return Error{"config", "[server] listen must be HOST:PORT, not \"" + listen + "\""};
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  int port = 0;
  try {
    size_t used = 0;
    port = std::stoi(listen.substr(colon + 1), &used);
    if (used != listen.size() - colon - 1) throw std::invalid_argument("port");
  } catch (const std::exception&) {
    return Error{"config", "[server] listen must be HOST:PORT, not \"" + listen + "\""};
  }
  if (port < 0 || port > 65535) return Error{"config", "[server] listen port out of range"};
  return std::make_pair(host.empty() ? std::string("0.0.0.0") : host, port);
}

// Wakes a worker thread: a counter and a condition variable.
class Signal {
 public:
  void Notify() {
    {
      std::lock_guard lock(mu_);
      ++count_;
    }
    cv_.notify_all();
  }
  // Waits until notified after `seen` or the timeout; returns the count to pass next time.
  uint64_t Wait(uint64_t seen, std::chrono::milliseconds timeout, const std::atomic<bool>& stop) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return count_ != seen || stop.load(); });
    return count_;
  }
  uint64_t count() {
    std::lock_guard lock(mu_);
    return count_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t count_ = 0;
};

}  // namespace

Result<std::unique_ptr<Store>> OpenConfiguredStore(const Config& config) {
  auto file = SqliteFile(config);
  StoreOptions options;
  options.pool = static_cast<int>(config.store.pool);
  return OpenStore(file ? kSqlitePrefix + *file : config.store.url, options);
}

std::string RedactUrl(std::string url) {
  auto scheme = url.find("://");
  auto at = url.find('@');
  if (scheme != std::string::npos && at != std::string::npos && at > scheme) {
    auto colon = url.find(':', scheme + 3);
    if (colon != std::string::npos && colon < at)
      url = url.substr(0, colon + 1) + "***" + url.substr(at);
  }
  // A password given as a query parameter: ...?password=secret&sslmode=require
  for (size_t p = url.find("password="); p != std::string::npos; p = url.find("password=", p)) {
    p += std::string("password=").size();
    size_t end = url.find('&', p);
    url.replace(p, (end == std::string::npos ? url.size() : end) - p, "***");
  }
  return url;
}

Result<std::string> TrackingSecret(const Config& config) {
  if (!config.server.tracking_secret.empty()) return config.server.tracking_secret;
  fs::path file = fs::path(StoreFolder(config)) / "tracking.key";
  std::ifstream in(file);
  std::string secret;
  if (in && std::getline(in, secret) && secret.size() >= 32) return secret;
  std::error_code ec;
  fs::create_directories(file.parent_path(), ec);
  std::ifstream urandom("/dev/urandom", std::ios::binary);
  std::string bytes(32, '\0');
  if (!urandom.read(bytes.data(), static_cast<std::streamsize>(bytes.size()))) {
    return Error{"config", "cannot read /dev/urandom to make a tracking secret"};
  }
  secret = HexEncode(bytes);
  fs::path tmp = file;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << secret << "\n";
    if (!out) return Error{"config", "cannot write " + tmp.string()};
  }
  ::chmod(tmp.c_str(), 0600);
  fs::rename(tmp, file, ec);
  if (ec) return Error{"config", "cannot write " + file.string() + ": " + ec.message()};
  LogInfo("generated a tracking secret; set [server] tracking_secret to choose one",
          {{"file", file.string()}});
  return secret;
}

namespace {

// Builds one dispatcher lane's connectors from the configuration.
Result<LaneConnectors> MakeConnectors(const Config& config, const Clock& clock) {
  LaneConnectors c;
  if (config.email.connector == "smtp") {
    connectors::SmtpConfig smtp;
    smtp.url = config.email.smtp_url;
    smtp.username = config.email.smtp_user;
    smtp.password = config.email.smtp_password;
    auto made = connectors::SmtpConnector::Create(smtp);
    if (!made.ok()) return Error{"config", "[email] smtp: " + made.error().message};
    c.email = std::move(*made);
  } else {
    c.email = std::make_unique<connectors::MaildirConnector>(config.Resolve(config.email.maildir));
  }
  if (config.sms.connector == "http") {
    connectors::TwilioSmsConfig sms{
        config.sms.url, config.sms.account, config.sms.token, config.sms.from, {}};
    auto made = connectors::TwilioSmsConnector::Create(sms);
    if (!made.ok()) return Error{"config", "[sms] http: " + made.error().message};
    c.sms = std::move(*made);
  } else {
    c.sms = std::make_unique<connectors::SmsFileConnector>(config.Resolve(config.sms.file));
  }
  c.chat = std::make_unique<connectors::SlackConnector>();
  c.webhook = std::make_unique<connectors::WebhookConnector>([&clock] { return clock.Now(); });
  return c;
}

Seconds DurationOr(const std::string& text, Seconds fallback) {
  auto d = ParseDuration(text);
  return d ? *d : fallback;
}

// Copies the workers' running totals into the metrics registry (called every tick).
class MetricsSync {
 public:
  explicit MetricsSync(MetricsRegistry& registry) : registry_(registry) {}
  void Total(const std::string& name, const std::string& help, const MetricLabels& labels,
             int64_t value) {
    std::string key = name;
    for (const auto& [k, v] : labels) key += "|" + k + "=" + v;
    int64_t& last = last_[key];
    // Created at zero on the first tick, so alert rules see every series from the start.
    orch::Counter& counter = registry_.Counter(name, help, labels);
    if (value > last) counter.Increment(static_cast<double>(value - last));
    last = value;
  }

 private:
  MetricsRegistry& registry_;
  std::map<std::string, int64_t> last_;
};

}  // namespace

int RunDaemon(const Config& config) {
  // Signals first: from here on SIGTERM is a graceful stop, never a kill mid-commit.
  boost::asio::io_context io;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
  SystemClock clock;
  auto listen = SplitListen(config.server.listen);
  if (!listen.ok()) {
    LogError("cannot start", {{"error", listen.error().message}});
    return 1;
  }
  auto store_result = OpenConfiguredStore(config);
  // A database server that is still starting (or restarting) is waited for, up to a minute.
  for (int attempt = 1; !store_result.ok() && store_result.error().code == "storage" &&
                        IsPostgresUrl(config.store.url) && attempt <= 12;
       ++attempt) {
    LogWarn("cannot reach the database; retrying",
            {{"error", store_result.error().message}, {"attempt", attempt}});
    std::this_thread::sleep_for(std::chrono::seconds(std::min(attempt, 5)));
    store_result = OpenConfiguredStore(config);
  }
  if (!store_result.ok()) {
    LogError("cannot open the store",
             {{"url", RedactUrl(config.store.url)}, {"error", store_result.error().message}});
    return 1;
  }
  std::unique_ptr<Store> store = std::move(*store_result);
  if (store->Shared() && config.server.tracking_secret.empty()) {
    // A generated key lives beside one daemon; every daemon on a shared store must sign and
    // check tracking links with the same secret.
    LogError("cannot start",
             {{"error",
               "[server] tracking_secret is required with a shared store (PostgreSQL): "
               "every daemon must sign tracking links with the same secret"}});
    return 1;
  }
  auto secret = TrackingSecret(config);
  if (!secret.ok()) {
    LogError("cannot start", {{"error", secret.error().message}});
    return 1;
  }

  JourneyRegistry registry(config, *store);
  ReloadReport loaded = registry.Load();
  {
    auto catalog = registry.Snapshot();
    json journeys = json::array();
    for (const auto& id : catalog->Ids()) {
      const dsl::Program* current = catalog->Current(id);
      journeys.push_back({{"journey", id},
                          {"current_version", current ? json(current->version) : json()},
                          {"versions", catalog->Versions(id)}});
    }
    LogInfo("journeys loaded", {{"journeys", journeys}, {"refused", loaded.refused}});
  }

  MetricsRegistry metrics;
  Signal work;  // the processor's wake-up
  std::atomic<bool> stopping{false};

  ProcessorOptions popts;
  popts.batch = static_cast<int>(config.delivery.batch);
  popts.public_url = config.server.public_url;
  popts.tracking_secret = *secret;
  // On a shared store this daemon advances only the partitions it holds a lease on.
  std::unique_ptr<ClusterMember> member;
  if (store->Shared()) {
    member = std::make_unique<ClusterMember>(*store, ClusterMember::NodeId(config.cluster.node),
                                             DurationOr(config.cluster.lease, Seconds{15}),
                                             [&work] { work.Notify(); });
    popts.ownership = [&member] { return member->Current(); };
  }
  DispatcherOptions dopts;
  dopts.max_attempts = static_cast<int>(config.delivery.max_attempts);
  dopts.retry_initial = DurationOr(config.delivery.retry_initial, Seconds{30});
  dopts.retry_max = DurationOr(config.delivery.retry_max, Seconds{3600});
  dopts.rates = {{"email", config.delivery.email_rate},
                 {"sms", config.delivery.sms_rate},
                 {"alert", config.delivery.alert_rate},
                 {"webhook", config.delivery.webhook_rate}};
  dopts.email_from = config.email.from;
  dopts.lease = DurationOr(config.delivery.lease, Seconds{120});
  dopts.connections = static_cast<int>(config.delivery.connections);
  if (auto probe = MakeConnectors(config, clock); !probe.ok()) {
    LogError("cannot set up the connectors", {{"error", probe.error().message}});
    return 1;
  }
  Dispatcher dispatcher(*store, clock, registry, config.directory, dopts, [&](const std::string&) {
    return std::move(MakeConnectors(config, clock).value());
  });
  // Each committed batch's messages are in the outbox: their lanes take them at once. The
  // other lanes sleep on: a claim that finds nothing still takes the store's writer.
  popts.committed = [&dispatcher](int, const std::vector<std::string>& channels) {
    for (const std::string& channel : channels) dispatcher.Poke(channel);
  };
  // A lane that is keeping up takes a batch's messages straight from the processor, claimed as
  // they are committed: no claim, and no wake-up, between the commit and the send.
  popts.hand_over.takes = [&dispatcher](const std::string& lane) { return dispatcher.Takes(lane); };
  popts.hand_over.claim = [&dispatcher](OutboxMessage& m, Time now) { dispatcher.Claimed(m, now); };
  popts.hand_over.take = [&dispatcher](const std::string& lane, std::vector<OutboxMessage> ms,
                                       std::chrono::steady_clock::time_point at) {
    dispatcher.Take(lane, std::move(ms), at);
  };
  popts.stop = [&stopping] { return stopping.load(); };
  // A request's events go straight to the processor, which stores them with what they caused
  // in one commit; on a shared store they go through the inbox, whose partition's owner takes
  // them.
  popts.direct = !store->Shared();
  popts.arrived = [&work] { work.Notify(); };
  Processor processor(*store, clock, registry, config.directory, popts);

  EventIngest ingest(*store, [&] { work.Notify(); });

  ApiBackend backend;
  backend.store = store.get();
  backend.clock = &clock;
  backend.metrics = &metrics;
  // Events go to the processor first; what it declines, the server appends to the inbox.
  backend.advance_events = [&](std::vector<NewEvent> events, ApiBackend::Advanced done) {
    processor.AdvanceAsync(std::move(events), std::move(done));
  };
  backend.append_events = [&](std::vector<NewEvent> events) {
    return ingest.Append(std::move(events));
  };
  backend.upsert_customer = [&](const std::string& customer,
                                const json& patch) -> Result<ProfileChange> {
    // The profile and the event that tells the journeys commit together.
    NewEvent e;
    e.customer = customer;
    e.at = clock.Now();
    e.body = {{"customer_id", customer},
              {"type", kProfileChangedEvent},
              {"timestamp", FormatTime(e.at)},
              {"properties", json::object()}};
    auto change = store->UpsertProfileRecorded(customer, patch, std::move(e));
    if (change.ok() && change->before != change->after) work.Notify();
    return change;
  };
  backend.journeys = [&] {
    auto catalog = registry.Snapshot();
    std::vector<JourneyInfo> out;
    for (const std::string& id : catalog->Ids()) {
      JourneyInfo info;
      info.id = id;
      info.versions = catalog->Versions(id);
      info.file = catalog->File(id);
      const dsl::Program* p = catalog->Current(id);
      if (p == nullptr && !info.versions.empty()) p = catalog->Find(id, info.versions.back());
      if (const dsl::Program* cur = catalog->Current(id)) info.current_version = cur->version;
      if (p != nullptr) {
        for (const auto& step : p->steps) info.steps.push_back(step.id.text);
        for (const auto& goal : p->goals) info.goals.push_back(goal.name.text);
      }
      out.push_back(std::move(info));
    }
    return out;
  };
  ApiOptions aopts;
  aopts.host = listen->first;
  aopts.port = listen->second;
  aopts.public_url = config.server.public_url;
  aopts.api_tokens = config.server.api_tokens;
  aopts.tracking_secret = *secret;
  aopts.max_body_bytes = config.server.max_body_bytes;
  aopts.threads = static_cast<int>(config.server.threads);
  if (aopts.api_tokens.empty() && aopts.host != "127.0.0.1" && aopts.host != "::1" &&
      aopts.host != "localhost") {
    LogWarn("the API listens beyond loopback without api_tokens: anyone who reaches it can use it",
            {{"listen", config.server.listen}});
  }
  ApiServer api(backend, aopts);
  if (Status s = api.Start(); !s.ok()) {
    LogError("cannot start the HTTP API",
             {{"listen", config.server.listen}, {"error", s.error().message}});
    return 1;
  }

  if (member) member->Start();
  std::thread processor_thread([&] {
    NameThread("processor");
    uint64_t seen = 0;
    int failures = 0;
    while (!stopping) {
      seen = work.count();
      Result<int> advanced = processor.RunOnce();
      if (!advanced.ok() && advanced.error().code == "lease_lost") {
        // Another daemon took over a partition of this batch; it advances those customers now.
        LogInfo("a partition moved to another daemon; batch left to it",
                {{"error", advanced.error().message}});
        if (member) member->RenewSoon();
        work.Wait(seen, std::chrono::milliseconds(200), stopping);
        continue;
      }
      if (!advanced.ok()) {
        ++failures;
        LogError("processing failed; the failed batch was not committed, retrying",
                 {{"error", advanced.error().message}, {"failures", failures}});
        auto backoff =
            std::chrono::milliseconds(std::min(5000, 100 * (1 << std::min(failures, 6))));
        work.Wait(seen, backoff, stopping);
        continue;
      }
      failures = 0;
      if (*advanced > 0) continue;  // `committed` woke the lanes that have new messages
      work.Wait(seen, std::chrono::milliseconds(1000), stopping);
    }
  });
  dispatcher.Start();

  boost::asio::steady_timer tick(io);
  MetricsSync sync(metrics);
  metrics.Gauge("itinera_journeys_loaded", "Journeys loaded (any version).").SetCallback([&] {
    return static_cast<double>(registry.Snapshot()->Ids().size());
  });
  metrics.Gauge("itinera_partitions_held", "Customer partitions this daemon advances.")
      .SetCallback([&] {
        if (!member) return static_cast<double>(kPartitionCount);
        return static_cast<double>(member->Current().epochs.size());
      });

  auto publish = [&] {
    const ProcessorStats& ps = processor.stats();
    sync.Total("itinera_processor_batches_total", "Commits of advanced customers.", {}, ps.batches);
    sync.Total("itinera_customers_advanced_total", "Customers advanced (per batch).", {},
               ps.customers);
    sync.Total("itinera_events_processed_total", "Events advanced, from the inbox or directly.", {},
               ps.events);
    sync.Total("itinera_timers_fired_total", "Due timers handled.", {}, ps.timers);
    sync.Total("itinera_transitions_total", "Engine calls that were made.", {}, ps.transitions);
    sync.Total("itinera_effects_total", "Effects decided by the engine.", {}, ps.effects);
    sync.Total("itinera_outbox_written_total", "Messages written to the outbox.", {}, ps.messages);
    sync.Total("itinera_commit_failures_total", "Batches whose commit failed (retried).", {},
               ps.commit_failures);
    sync.Total("itinera_ingest_commits_total", "Group commits of accepted events.", {},
               ingest.commits());
    sync.Total("itinera_events_direct_total",
               "Events advanced and stored in one commit, without the inbox.", {},
               ps.direct_events);
    sync.Total("itinera_events_declined_total",
               "API requests the processor declined to take directly (sent to the inbox).", {},
               ps.declined);
    if (member) {
      sync.Total("itinera_lease_renewals_total", "Partition lease renewals.", {},
                 member->renewals());
      sync.Total("itinera_lease_renew_failures_total", "Partition lease renewals that failed.", {},
                 member->renew_failures());
      sync.Total("itinera_event_announcements_total", "Announcements of new events heard.", {},
                 member->announcements());
    }
    for (const std::string& lane : Dispatcher::Lanes()) {
      const LaneStats& ls = dispatcher.stats(lane);
      const char* help = "Outbox messages by lane and outcome.";
      sync.Total("itinera_messages_total", help, {{"lane", lane}, {"outcome", "sent"}}, ls.sent);
      sync.Total("itinera_messages_total", help, {{"lane", lane}, {"outcome", "retried"}},
                 ls.retried);
      sync.Total("itinera_messages_total", help, {{"lane", lane}, {"outcome", "dead"}}, ls.dead);
      sync.Total("itinera_messages_total", help, {{"lane", lane}, {"outcome", "cancelled"}},
                 ls.cancelled);
      sync.Total("itinera_messages_total", help, {{"lane", lane}, {"outcome", "deferred"}},
                 ls.deferred);
      const char* source = "Messages a lane took up, by where it found them.";
      sync.Total("itinera_messages_taken_total", source, {{"lane", lane}, {"from", "claim"}},
                 ls.claimed);
      sync.Total("itinera_messages_taken_total", source, {{"lane", lane}, {"from", "commit"}},
                 ls.taken);
    }
  };

  std::function<void(const boost::system::error_code&)> on_tick =
      [&](const boost::system::error_code& ec) {
        if (ec || stopping) return;
        work.Notify();  // due timers
        dispatcher.Poke();
        publish();
        tick.expires_after(std::chrono::seconds(1));
        tick.async_wait(on_tick);
      };
  tick.expires_after(std::chrono::seconds(1));
  tick.async_wait(on_tick);

  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int signo) {
        if (ec) return;
        if (signo == SIGHUP) {
          LogInfo("SIGHUP: reloading journeys and templates");
          ReloadReport r = registry.Reload();
          LogInfo("reload done",
                  {{"published", r.published}, {"refused", r.refused}, {"retired", r.retired}});
          work.Notify();
          signals.async_wait(on_signal);
          return;
        }
        LogInfo("stopping", {{"signal", signo == SIGTERM ? "SIGTERM" : "SIGINT"}});
        stopping = true;
        tick.cancel();
        signals.cancel();
      };
  signals.async_wait(on_signal);

  LogInfo("itinera serve started", {{"listen", aopts.host + ":" + std::to_string(api.port())},
                                    {"node", member ? member->node() : std::string()},
                                    {"store", RedactUrl(config.store.url)},
                                    {"email", config.email.connector},
                                    {"sms", config.sms.connector},
                                    {"public_url", config.server.public_url}});
  io.run();

  // Graceful stop: no new requests, the batch in flight commits and no other starts, sends in
  // progress finish.
  processor.Close();  // requests still coming in go to the inbox
  api.Stop();
  work.Notify();
  processor_thread.join();
  if (member) member->Stop();  // the others take over these partitions at their next renewal
  dispatcher.Stop();
  publish();
  LogInfo("stopped",
          {{"customers_advanced", processor.stats().customers.load()},
           {"events_accepted", ingest.events() + processor.stats().direct_events.load()}});
  return 0;
}

}  // namespace itinera::orch
