// Delivery throughput: the dispatcher sending a full outbox through a real provider — SMTP to
// Postfix's smtp-sink, or the Twilio-compatible SMS API to an HTTP sink.
#include <iostream>
#include <thread>

#include "bench/driver/bench.h"
#include "connectors/mime.h"
#include "connectors/sms_http.h"
#include "connectors/smtp.h"
#include "orchestrator/dispatcher.h"

namespace itinera::bench {

using nlohmann::json;

// --channel email|sms --messages N [--smtp URL] [--sms-url URL] [--connections K] [--dir D]
// [--instant]: N customers enter bench_mail (or bench_sms); the processor fills the outbox with N
// rendered messages (untimed); then the timed part: the dispatcher delivers all of them and
// records every outcome in the store (SQLite, durable). With --instant the connector answers
// "sent" at once without a network: what the lane's claims, reads and outcomes allow alone.
int Deliver(const Flags& flags) {
  const std::string channel = flags.Text("channel", "email");
  Check(channel == "email" || channel == "sms", "--channel is email or sms");
  Workspace ws(flags.Text("dir"));
  ws.Use(channel == "email" ? "mail" : "sms");
  auto store = orch::OpenStore("sqlite:" + (ws.path() / "itinera.db").string());
  Check(store.ok(), "open store: " + (store.ok() ? "" : store.error().message));
  orch::SystemClock clock;
  orch::JourneyRegistry registry(ws.config(), **store);
  orch::ReloadReport report = registry.Load();
  Check(report.errors == 0 && report.published.size() == 1, "the bench journey does not load");
  orch::ProcessorOptions processor_options;
  processor_options.public_url = ws.config().server.public_url;
  processor_options.tracking_secret = ws.config().server.tracking_secret;
  orch::Processor processor(**store, clock, registry, ws.config().directory, processor_options);

  const int64_t n = flags.Int("messages", 1000);
  SeedProfiles(**store, "c", n);
  AppendEvents(**store, "c", n, channel == "email" ? "campaign" : "ping", clock.Now());
  Drain(processor);
  Check(processor.stats().messages == n, "the outbox does not hold one message per customer");

  // The size of one message as the provider receives it.
  int64_t bytes = 0;
  auto sample = (*store)->ListMessages(orch::MessageStatus::kPending, 1);
  Check(sample.ok() && !sample->empty(), "no pending message");
  if (channel == "email") {
    connectors::Message m;
    m.channel = connectors::Channel::kEmail;
    m.id = (*sample)[0].id;
    m.from = "Vltava Motors <hello@dealer.example>";
    m.to = (*sample)[0].payload.value("to", "");
    m.subject = (*sample)[0].payload.value("subject", "");
    m.html_body = (*sample)[0].payload.value("html", "");
    m.date = (*sample)[0].created_at;
    auto mime = connectors::BuildMime(m);
    bytes = mime.ok() ? static_cast<int64_t>(mime->size()) : 0;
  } else {
    bytes = static_cast<int64_t>((*sample)[0].payload.value("text", "").size());
  }

  orch::DispatcherOptions options;
  options.email_from = "Vltava Motors <hello@dealer.example>";
  options.connections = static_cast<int>(flags.Int("connections", options.connections));
  const std::string smtp_url = flags.Text("smtp", "smtp://127.0.0.1:2525");
  const std::string sms_url = flags.Text("sms-url", "http://127.0.0.1:9000/Messages.json");
  const bool instant = flags.Has("instant");
  orch::Dispatcher dispatcher(
      **store, clock, registry, ws.config().directory, options, [&](const std::string& lane) {
        orch::LaneConnectors c;
        if (instant) {
          c.email = std::make_unique<connectors::FakeConnector>();
          c.sms = std::make_unique<connectors::FakeConnector>();
        } else if (lane == "email") {
          connectors::SmtpConfig smtp;
          smtp.url = smtp_url;
          auto made = connectors::SmtpConnector::Create(smtp);
          Check(made.ok(), "smtp connector");
          c.email = std::move(*made);
        } else if (lane == "sms") {
          auto made =
              connectors::TwilioSmsConnector::Create({sms_url, "AC1", "token", "+15550000000", {}});
          Check(made.ok(), "sms connector");
          c.sms = std::move(*made);
        }
        return c;
      });

  const orch::LaneStats& stats = dispatcher.stats(channel);
  auto start = std::chrono::steady_clock::now();
  dispatcher.Start();
  dispatcher.Poke();
  const double limit = flags.Real("timeout", 600);
  while (stats.sent + stats.dead + stats.cancelled < n && Since(start) < limit) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  dispatcher.Stop();  // the last pass records its outcomes before the workers stop
  const double elapsed = Since(start);
  auto counts = (*store)->MessageCounts("");
  Check(counts.ok(), "message counts");
  const int64_t recorded = (*counts)[channel + ".sent"];
  Check(stats.sent == n && recorded == n,
        "sent " + std::to_string(stats.sent.load()) + ", recorded " + std::to_string(recorded) +
            " of " + std::to_string(n) + " (dead " + std::to_string(stats.dead.load()) + ")");
  Emit({{"channel", channel},
        {"instant", instant},
        {"messages", n},
        {"connections", options.connections},
        {"message_bytes", bytes},
        {"seconds", elapsed},
        {"per_s", n / elapsed}});
  return 0;
}

}  // namespace itinera::bench
