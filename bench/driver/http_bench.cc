// HTTP pieces: the hello-world server that is the reference (and the SMS sink), the open-loop
// latency probe, and the campaign client that drives a running daemon.
#include <httplib.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "bench/driver/bench.h"

namespace itinera::bench {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

int64_t WallNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "host:port" -> (host, port).
std::pair<std::string, int> HostPort(const std::string& text) {
  auto colon = text.rfind(':');
  Check(colon != std::string::npos, "expected host:port, got " + text);
  return {text.substr(0, colon), std::stoi(text.substr(colon + 1))};
}

// The hello-world server: GET answers "Hello, World!"; POST answers as a Twilio-compatible SMS
// API does (201 with a message sid), so the same server is the SMS provider of the delivery
// benchmarks. `on_post` sees every POST body. Set up as the daemon's API server was while it
// used cpp-httplib: a pool of 64 threads (httplib gives a keep-alive connection a thread of its
// own, so a smaller pool leaves clients waiting for one), up to 100 requests per keep-alive
// connection, and TCP_NODELAY
// (without it Nagle's algorithm and the client's delayed ACK hold every answer 40 ms, and the
// reference would measure that).
void HelloRoutes(httplib::Server& server, std::function<void(const std::string&)> on_post) {
  server.new_task_queue = [] { return new httplib::ThreadPool(64); };
  server.set_tcp_nodelay(true);
  server.set_keep_alive_max_count(100);
  server.Get("/.*", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("Hello, World!", "text/plain");
  });
  auto sid = std::make_shared<std::atomic<int64_t>>(0);
  server.Post("/.*", [sid, on_post](const httplib::Request& req, httplib::Response& res) {
    if (on_post) on_post(req.body);
    res.status = 201;
    res.set_content("{\"sid\":\"SM" + std::to_string(++*sid) + "\"}", "application/json");
  });
}

// The value of form field `name` in an x-www-form-urlencoded body, decoded.
std::string FormField(const std::string& body, const std::string& name) {
  size_t at = 0;
  while (at <= body.size()) {
    size_t end = body.find('&', at);
    if (end == std::string::npos) end = body.size();
    std::string pair = body.substr(at, end - at);
    if (pair.rfind(name + "=", 0) == 0) {
      return httplib::detail::decode_url(pair.substr(name.size() + 1), true);
    }
    at = end + 1;
  }
  return "";
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(i, values.size() - 1)];
}

// The value of the first sample of `name` whose labels contain every one of `labels`.
double MetricValue(const std::string& text, const std::string& name,
                   const std::vector<std::string>& labels) {
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(at, end - at);
    at = end + 1;
    if (line.rfind(name + "{", 0) != 0 && line.rfind(name + " ", 0) != 0) continue;
    bool match = std::all_of(labels.begin(), labels.end(), [&](const std::string& l) {
      return line.find(l) != std::string::npos;
    });
    if (match) return std::stod(line.substr(line.rfind(' ') + 1));
  }
  return 0;
}

}  // namespace

// --listen HOST:PORT: the hello-world cpp-httplib server, with the library's defaults, until
// SIGTERM or SIGINT.
int Sink(const Flags& flags) {
  auto [host, port] = HostPort(flags.Text("listen", "127.0.0.1:9000"));
  httplib::Server server;
  HelloRoutes(server, nullptr);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread stopper([&] {
    int signo = 0;
    sigwait(&set, &signo);
    server.stop();
  });
  bool ok = server.listen(host, port);
  stopper.join();
  return ok ? 0 : 1;
}

// Open-loop load at a fixed rate: request i is due at start + i / rate, whoever is free sends
// it, and its latency counts from when it was due (a slow answer delays the next requests,
// and that delay is counted, not hidden).
//   --mode hello --target http://HOST:PORT: GET / ; the latency is the answer's.
//   --mode events --target http://HOST:PORT --sink HOST:PORT [--prefix P]: POST /v1/events
//     with one "ping" event of customer P<i>; the daemon texts that customer through the SMS
//     sink run here, and the latency is from the event being due to the SMS reaching the sink
//     (event -> durable -> processed -> outbox -> sent).
//   --rate R --seconds S [--clients C] [--first K: customers P<K> onwards]
// A rate above what the daemon sustains measures its peak instead: action_rate, the events that
// became actions per second.
int Latency(const Flags& flags) {
  const std::string mode = flags.Text("mode", "hello");
  const std::string target = flags.Text("target", "http://127.0.0.1:9000");
  const double rate = flags.Real("rate", 1000);
  const int64_t total = static_cast<int64_t>(rate * flags.Real("seconds", 5));
  const int clients = static_cast<int>(flags.Int("clients", 32));
  const std::string prefix = flags.Text("prefix", "lat-");
  const int64_t first = flags.Int("first", 0);  // customers prefix<first> onwards
  const bool events = mode == "events";

  // The SMS sink: arrival time (wall clock, ns) per customer.
  std::mutex arrivals_mu;
  std::unordered_map<std::string, int64_t> arrivals;
  httplib::Server sink;
  std::thread sink_thread;
  if (events) {
    HelloRoutes(sink, [&](const std::string& body) {
      int64_t now = WallNanos();
      std::string text = FormField(body, "Body");  // "bench <customer>: ..."
      size_t colon = text.find(':');
      if (text.rfind("bench ", 0) != 0 || colon == std::string::npos) return;
      std::lock_guard lock(arrivals_mu);
      arrivals.emplace(text.substr(6, colon - 6), now);
    });
    auto [host, port] = HostPort(flags.Text("sink", "127.0.0.1:9100"));
    Check(sink.bind_to_port(host, port), "cannot listen on the sink address");
    sink_thread = std::thread([&] { sink.listen_after_bind(); });
  }

  std::vector<int64_t> due_wall(total);
  std::vector<double> answer_ms(total, -1);
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> failures{0};
  const auto start = Clock::now() + std::chrono::milliseconds(100);
  const int64_t start_wall = WallNanos() + 100'000'000;
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      httplib::Client client(target);
      client.set_keep_alive(true);
      client.set_tcp_nodelay(true);  // headers and body go in two writes: no Nagle wait
      for (;;) {
        int64_t i = next++;
        if (i >= total) return;
        auto offset = std::chrono::nanoseconds(static_cast<int64_t>(1e9 * i / rate));
        std::this_thread::sleep_until(start + offset);
        due_wall[i] = start_wall + offset.count();
        json body = {{"customer_id", prefix + std::to_string(first + i)}, {"type", "ping"}};
        httplib::Result res =
            events ? client.Post("/v1/events", body.dump(), "application/json") : client.Get("/");
        if (!res || res->status >= 300) ++failures;
        answer_ms[i] =
            std::chrono::duration<double, std::milli>(Clock::now() - (start + offset)).count();
      }
    });
  }
  for (auto& t : threads) t.join();
  const double sent_for = std::chrono::duration<double>(Clock::now() - start).count();

  std::vector<double> latencies;
  int64_t missing = 0;
  int64_t last_arrival = start_wall;
  if (events) {
    // Every SMS should arrive within a few seconds of the last event.
    auto deadline = Clock::now() + std::chrono::seconds(static_cast<int>(flags.Int("wait", 30)));
    while (Clock::now() < deadline) {
      {
        std::lock_guard lock(arrivals_mu);
        if (static_cast<int64_t>(arrivals.size()) >= total) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    sink.stop();
    sink_thread.join();
    for (int64_t i = 0; i < total; ++i) {
      auto it = arrivals.find(prefix + std::to_string(first + i));
      if (it == arrivals.end()) {
        ++missing;
        continue;
      }
      latencies.push_back(static_cast<double>(it->second - due_wall[i]) / 1e6);
      last_arrival = std::max(last_arrival, it->second);
    }
  } else {
    latencies = answer_ms;
  }
  Emit({{"mode", mode},
        {"rate", rate},
        {"requests", total},
        {"achieved_rate", total / sent_for},
        {"failures", failures.load()},
        {"missing", missing},
        {"p50_ms", Percentile(latencies, 0.50)},
        {"p99_ms", Percentile(latencies, 0.99)},
        {"max_ms", Percentile(latencies, 1.0)},
        {"answer_p99_ms", Percentile(answer_ms, 0.99)},
        // Events that became actions per second, first due to last action.
        {"action_rate",
         events ? static_cast<double>(latencies.size()) * 1e9 /
                      static_cast<double>(std::max<int64_t>(1, last_arrival - start_wall))
                : 0.0}});
  return failures == 0 && missing == 0 ? 0 : 1;
}

// --api http://HOST:PORT --customers N [--prefix P] [--clients C] [--pid PID]: a campaign on a
// running daemon whose audience is already stored (itinera_bench seed). Posts one "campaign"
// event per customer through the batch API (100 per request), then waits until the daemon's
// metrics count N emails sent. The time is end to end: first request to last email accepted by
// the SMTP server. With --pid, the daemon's resident memory afterwards (every customer now
// waiting 30 days in the journey) and its peak.
int Campaign(const Flags& flags) {
  const std::string api = flags.Text("api", "http://127.0.0.1:8080");
  const int64_t n = flags.Int("customers", 10000);
  const std::string prefix = flags.Text("prefix", "c");
  const int clients = static_cast<int>(flags.Int("clients", 4));
  const int pid = static_cast<int>(flags.Int("pid", 0));
  const double limit = flags.Real("timeout", 900);
  const std::vector<std::string> sent_labels = {"lane=\"email\"", "outcome=\"sent\""};

  httplib::Client probe(api);
  auto metrics = [&] {
    auto res = probe.Get("/metrics");
    Check(res && res->status == 200, "cannot read the daemon's metrics");
    return res->body;
  };
  const double sent_before = MetricValue(metrics(), "itinera_messages_total", sent_labels);

  constexpr int64_t kPerRequest = 100;
  const int64_t requests = (n + kPerRequest - 1) / kPerRequest;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> retries{0};
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      httplib::Client client(api);
      client.set_keep_alive(true);
      client.set_tcp_nodelay(true);  // headers and body go in two writes: no Nagle wait
      client.set_read_timeout(60, 0);
      for (;;) {
        int64_t r = next++;
        if (r >= requests) return;
        json batch = json::array();
        for (int64_t i = r * kPerRequest; i < std::min(n, (r + 1) * kPerRequest); ++i) {
          batch.push_back({{"customer_id", prefix + std::to_string(i)},
                           {"type", "campaign"},
                           {"properties", {{"campaign", "winter-2026"}}}});
        }
        const std::string body = batch.dump();
        for (;;) {
          auto res = client.Post("/v1/events", body, "application/json");
          if (res && res->status == 202) break;
          Check(!res || res->status == 503,
                "the daemon refused a batch: " + (res ? std::to_string(res->status) : "no answer"));
          ++retries;
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const double accepted_after = std::chrono::duration<double>(Clock::now() - start).count();

  double sent = 0;
  while (std::chrono::duration<double>(Clock::now() - start).count() < limit) {
    sent = MetricValue(metrics(), "itinera_messages_total", sent_labels) - sent_before;
    if (sent >= static_cast<double>(n)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  Check(sent >= static_cast<double>(n), "only " + std::to_string(static_cast<int64_t>(sent)) +
                                            " of " + std::to_string(n) + " emails were sent");
  json out = {{"customers", n},
              {"events_accepted_s", accepted_after},
              {"seconds", elapsed},
              {"per_s", static_cast<double>(n) / elapsed},
              {"us_per_customer", elapsed * 1e6 / static_cast<double>(n)},
              {"retried_requests", retries.load()}};
  if (pid > 0) {
    out["rss_bytes"] = ResidentBytes(pid);
    out["peak_rss_bytes"] = ResidentBytes(pid, "VmHWM:");
  }
  Emit(out);
  return 0;
}

}  // namespace itinera::bench
