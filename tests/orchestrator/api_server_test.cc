// The HTTP API over real loopback HTTP: httplib::Client against ApiServer on a free port, with a
// MemoryStore behind it.
#include "orchestrator/api_server.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "orchestrator/memory_store.h"
#include "orchestrator/tracking.h"
#include "util/log.h"

namespace itinera::orch {
namespace {

using json = nlohmann::json;

constexpr char kSecret[] = "tracking-secret-for-tests";
const Time kNow = *ParseTime("2026-11-22T10:00:00Z");

struct ServerConfig {
  std::vector<std::string> tokens;
  int64_t max_body_bytes = 1 << 20;
  int threads = 4;
  // POST /v1/events goes to advance_events, which holds each request in held_ until the test
  // answers it.
  bool advance = false;
};

// One request (or several, pipelined) written on a fresh connection, and what came back until
// `answers` answers were read, the server closed the connection, or 3 s passed.
struct RawConnection {
  explicit RawConnection(int port) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    connected = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    timeval timeout{3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }
  ~RawConnection() { ::close(fd); }

  bool Send(const std::string& bytes) {
    return ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }
  // Reads until `answers` whole answers (head and Content-Length body) are in, or the server
  // closes, or the read times out. Returns them, heads and bodies, as received.
  std::vector<std::string> Read(int answers) {
    std::vector<std::string> out;
    while (static_cast<int>(out.size()) < answers) {
      const size_t end = in.find("\r\n\r\n");
      if (end != std::string::npos) {
        const std::string head = in.substr(0, end);
        size_t length = 0;
        const size_t at = head.find("Content-Length: ");
        if (at != std::string::npos) length = std::stoul(head.substr(at + 16));
        if (head.rfind("HTTP/1.1 100", 0) == 0) length = 0;
        if (in.size() >= end + 4 + length) {
          out.push_back(in.substr(0, end + 4 + length));
          in.erase(0, end + 4 + length);
          continue;
        }
      }
      char buffer[4096];
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      in.append(buffer, static_cast<size_t>(n));
    }
    return out;
  }

  int fd = -1;
  bool connected = false;
  std::string in;
};

std::string StatusOf(const std::string& answer) { return answer.substr(9, 3); }
std::string BodyOf(const std::string& answer) { return answer.substr(answer.find("\r\n\r\n") + 4); }

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer({}); }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  void StartServer(const ServerConfig& config) {
    if (server_) server_->Stop();
    ApiBackend backend;
    backend.store = &store_;
    backend.clock = &clock_;
    backend.metrics = &metrics_;
    backend.append_events = [this](std::vector<NewEvent> events) -> Status {
      if (fail_storage_) return Error{"storage", "disk on fire"};
      auto added = store_.AppendEvents(events);
      if (!added.ok()) return added.error();
      return Status::Ok();
    };
    backend.upsert_customer = [this](const std::string& customer,
                                     const json& patch) -> Result<ProfileChange> {
      if (fail_storage_) return Error{"storage", "disk on fire"};
      return store_.UpsertProfile(customer, patch);
    };
    if (config.advance) {
      backend.advance_events = [this](std::vector<NewEvent> events, ApiBackend::Advanced done) {
        std::lock_guard lock(held_mu_);
        held_.push_back({std::move(events), std::move(done)});
      };
    }
    backend.journeys = [this] {
      if (journeys_throw_) throw std::runtime_error("a bug");
      return std::vector<JourneyInfo>{
          {"welcome",
           2,
           {1, 2},
           {"confirm", "wait_for_open", "offer"},
           {"purchased"},
           "journeys/welcome.journey"},
          {"winback", 1, {1}, {"nudge"}, {}, "journeys/winback.journey"}};
    };
    ApiOptions options;
    options.port = 0;
    options.api_tokens = config.tokens;
    options.tracking_secret = kSecret;
    options.max_body_bytes = config.max_body_bytes;
    options.threads = config.threads;
    server_ = std::make_unique<ApiServer>(std::move(backend), std::move(options));
    Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started.error().message;
    ASSERT_GT(server_->port(), 0);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
  }

  httplib::Client& http() { return *client_; }

  // The error code of a JSON error answer, checking its shape on the way.
  static std::string ErrorCode(const httplib::Result& r) {
    if (!r) return "no response";
    json body = json::parse(r->body, nullptr, false);
    if (!body.is_object() || !body.contains("error") || !body["error"].contains("code") ||
        !body["error"]["message"].is_string()) {
      return "not an error body: " + r->body;
    }
    EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
    return body["error"]["code"].get<std::string>();
  }
  static std::string ErrorMessage(const httplib::Result& r) {
    return r ? json::parse(r->body, nullptr, false)["error"].value("message", "") : "";
  }

  httplib::Result PostEvents(const std::string& body) {
    return http().Post("/v1/events", body, "application/json");
  }

  std::vector<StoredEvent> Events(const std::string& customer) {
    auto events = store_.PendingEvents(customer, 100);
    EXPECT_TRUE(events.ok());
    return events.ok() ? *events : std::vector<StoredEvent>{};
  }

  void Commit(const Batch& batch) {
    Status s = store_.Commit(batch);
    ASSERT_TRUE(s.ok()) << s.error().message;
  }

  // An email of `customer` with two tracked links and the handle "offer".
  OutboxMessage Email(const std::string& id, const std::string& customer) {
    OutboxMessage m;
    m.id = id;
    m.customer = customer;
    m.journey = "welcome";
    m.channel = "email";
    m.recipient = "ann@example.com";
    m.payload = {{"handle", "offer"},
                 {"subject", "Your offer"},
                 {"links", {"https://dealer.example/offer?x=1", "https://dealer.example/b"}}};
    m.created_at = kNow;
    m.not_before = kNow;
    return m;
  }

  std::string Token(TrackingKind kind, const std::string& message, uint32_t link = 0) {
    auto token = MakeToken({kind, message, link}, kSecret);
    EXPECT_TRUE(token.ok());
    return token.ok() ? *token : "";
  }

  // Waits (up to 5 s) until advance_events holds `n` requests.
  bool WaitHeld(size_t n) {
    for (int i = 0; i < 5000; ++i) {
      {
        std::lock_guard lock(held_mu_);
        if (held_.size() >= n) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
  }

  struct Held {
    std::vector<NewEvent> events;
    ApiBackend::Advanced done;
  };
  std::mutex held_mu_;
  std::vector<Held> held_;
  MemoryStore store_;
  ManualClock clock_{kNow};
  MetricsRegistry metrics_;
  std::atomic<bool> fail_storage_{false};
  std::atomic<bool> journeys_throw_{false};
  std::unique_ptr<ApiServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

// ---------------------------------------------------------------- POST /v1/events

TEST_F(ApiTest, AKeepAliveConnectionServesManyRequests) {
  // httplib closes a connection after 5 requests unless told otherwise; a client sending events
  // one by one would reconnect every 5.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(server_->port()));
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string request = "GET /v1/journeys HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  int answered = 0;
  std::string in;
  for (int i = 0; i < 50; ++i) {
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) < 0) break;
    size_t end;
    while ((end = in.find("\r\n\r\n")) == std::string::npos) {
      char buffer[4096];
      ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      in.append(buffer, static_cast<size_t>(n));
    }
    if (end == std::string::npos) break;
    std::string head = in.substr(0, end);
    size_t length_at = head.find("Content-Length: ");
    ASSERT_NE(length_at, std::string::npos) << head;
    size_t length = std::stoul(head.substr(length_at + 16));
    while (in.size() < end + 4 + length) {
      char buffer[4096];
      ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      in.append(buffer, static_cast<size_t>(n));
    }
    in.erase(0, end + 4 + length);
    EXPECT_EQ(head.rfind("HTTP/1.1 200", 0), 0u) << head;
    ++answered;
    if (head.find("Connection: close") != std::string::npos) break;
  }
  ::close(fd);
  EXPECT_EQ(answered, 50);
}

TEST_F(ApiTest, EventIsAcceptedAndStoredNormalised) {
  auto r = PostEvents(R"({"customer_id": "c-1", "type": "form_submitted",
                          "properties": {"form": "test_drive"}, "handle": "offer",
                          "colour": "ignored"})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 202);
  EXPECT_EQ(json::parse(r->body), json({{"accepted", 1}}));
  auto events = Events("c-1");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].at, kNow);
  EXPECT_EQ(events[0].id, "");
  EXPECT_EQ(events[0].body, json({{"customer_id", "c-1"},
                                  {"type", "form_submitted"},
                                  {"timestamp", "2026-11-22T10:00:00Z"},
                                  {"properties", {{"form", "test_drive"}, {"handle", "offer"}}}}));
}

TEST_F(ApiTest, EventTimestampIsParsedAndPropertiesWinOverShorthands) {
  auto r = PostEvents(R"({"id": "e-1", "customer_id": "c-1", "type": "email_opened",
                          "timestamp": "2026-11-22T11:30:00.250+01:00",
                          "message": "top", "properties": {"message": "inside"}})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 202);
  auto events = Events("c-1");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].at, *ParseTime("2026-11-22T10:30:00Z"));
  EXPECT_EQ(events[0].id, "e-1");
  EXPECT_EQ(events[0].body["id"], "e-1");
  EXPECT_EQ(events[0].body["timestamp"], "2026-11-22T10:30:00Z");
  EXPECT_EQ(events[0].body["properties"], json({{"message", "inside"}}));
}

TEST_F(ApiTest, ArrayOfEventsCountsDuplicatesAsAccepted) {
  auto r = PostEvents(R"([{"id": "a", "customer_id": "c-1", "type": "t"},
                          {"id": "a", "customer_id": "c-1", "type": "t"},
                          {"customer_id": "c-2", "type": "t"}])");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 202);
  EXPECT_EQ(json::parse(r->body)["accepted"], 3);
  EXPECT_EQ(Events("c-1").size(), 1u);
  EXPECT_EQ(Events("c-2").size(), 1u);
}

TEST_F(ApiTest, SameIdTwiceIsAcceptedTwiceAndStoredOnce) {
  const std::string event = R"({"id": "once", "customer_id": "c-1", "type": "t"})";
  for (int i = 0; i < 2; ++i) {
    auto r = PostEvents(event);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 202);
    EXPECT_EQ(json::parse(r->body)["accepted"], 1);
  }
  EXPECT_EQ(Events("c-1").size(), 1u);
  EXPECT_NE(metrics_.Render().find("itinera_events_accepted_total 2\n"), std::string::npos);
}

TEST_F(ApiTest, BadEventsAreRefusedWithTheirPath) {
  const std::string long_id(257, 'x');
  const std::string long_type(129, 't');
  struct Case {
    std::string body;
    std::string code;
    std::string message;  // a part of the message
  };
  const std::vector<Case> cases = {
      {"", "invalid_json", "not valid JSON"},
      {"{\"customer_id\": ", "invalid_json", "not valid JSON"},
      {"{\"customer_id\": \"c\xff\", \"type\": \"t\"}", "invalid_json", "UTF-8"},
      {std::string(65, '[') + std::string(65, ']'), "invalid_json", "deeper than 64"},
      {R"({"customer_id": "c\u0000", "type": "t"})", "invalid_json", "\\u0000"},
      {"[]", "invalid_event", "empty array"},
      {"42", "invalid_event", "event object or an array"},
      {"[1]", "invalid_event", "events[0]: not an object"},
      {R"({"type": "t"})", "missing_field", "customer_id: missing"},
      {R"({"customer_id": null, "type": "t"})", "missing_field", "customer_id: missing"},
      {R"({"customer_id": 7, "type": "t"})", "invalid_event", "customer_id: not a string"},
      {R"({"customer_id": "", "type": "t"})", "invalid_event", "customer_id: empty"},
      {R"({"customer_id": "c\n1", "type": "t"})", "invalid_event",
       "customer_id: holds control characters"},
      {R"({"customer_id": ")" + long_id + R"(", "type": "t"})", "invalid_event",
       "customer_id: longer than 256 bytes"},
      {R"({"customer_id": "c"})", "missing_field", "type: missing"},
      {R"({"customer_id": "c", "type": ["t"]})", "invalid_event", "type: not a string"},
      {R"({"customer_id": "c", "type": "$profile"})", "invalid_event",
       "type: types starting with '$' are reserved"},
      {R"({"customer_id": "c", "type": ")" + long_type + R"("})", "invalid_event",
       "type: longer than 128 bytes"},
      {R"({"customer_id": "c", "type": "t", "timestamp": "yesterday"})", "invalid_event",
       "timestamp: not an RFC 3339"},
      {R"({"customer_id": "c", "type": "t", "timestamp": 1700000000})", "invalid_event",
       "timestamp: not a string"},
      {R"({"customer_id": "c", "type": "t", "properties": [1]})", "invalid_event",
       "properties: not an object"},
      {R"({"customer_id": "c", "type": "t", "id": 5})", "invalid_event", "id: not a string"},
      {R"({"customer_id": "c", "type": "t", "id": ""})", "invalid_event", "id: empty"},
      {R"([{"customer_id": "c", "type": "t"}, {"customer_id": "c", "type": "t"},
           {"customer_id": "c", "type": "t"}, {"customer_id": "c"}])",
       "missing_field", "events[3].type: missing"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body.substr(0, 80));
    auto r = PostEvents(c.body);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400);
    EXPECT_EQ(ErrorCode(r), c.code);
    EXPECT_NE(ErrorMessage(r).find(c.message), std::string::npos) << ErrorMessage(r);
  }
  auto r = http().Post("/v1/events");  // no body at all
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(ErrorCode(r), "invalid_json");
  // Not one of the valid events in a refused array was appended.
  EXPECT_TRUE(Events("c").empty());
}

TEST_F(ApiTest, StorageFailureIs503WithRetryAfterAndNothingClaimed) {
  fail_storage_ = true;
  auto r = PostEvents(R"({"customer_id": "c-1", "type": "t"})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(ErrorCode(r), "unavailable");
  EXPECT_EQ(r->get_header_value("Retry-After"), "1");
  // The store's own words (hosts, users) stay in the log.
  EXPECT_EQ(ErrorMessage(r), "storage is unavailable, retry later");
  EXPECT_TRUE(Events("c-1").empty());
}

// ---------------------------------------------------------------- customers

TEST_F(ApiTest, PutCustomerCreatesAndMerges) {
  auto r = http().Put("/v1/customers/c-1",
                      R"({"email": "ann@example.com", "timezone": "Europe/Prague",
                          "attributes": {"city": "Brno", "tier": "gold"},
                          "consent": {"email": true, "sms": false}})",
                      "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["attributes"]["city"], "Brno");
  r = http().Put("/v1/customers/c-1",
                 R"({"phone": "+420600000001", "email": null, "attributes": {"tier": null},
                     "consent": {"sms": null}, "id": "c-1"})",
                 "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body), json({{"id", "c-1"},
                                        {"phone", "+420600000001"},
                                        {"timezone", "Europe/Prague"},
                                        {"attributes", {{"city", "Brno"}}},
                                        {"consent", {{"email", true}}}}));
  auto stored = store_.GetProfile("c-1");
  ASSERT_TRUE(stored.ok() && *stored);
  EXPECT_EQ((**stored)["phone"], "+420600000001");
}

TEST_F(ApiTest, PutCustomerRefusesBadFields) {
  struct Case {
    std::string body;
    std::string code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {R"({"emial": "ann@example.com"})", "invalid_field", "did you mean \"email\""},
      {R"({"email": 5})", "invalid_field", "email: a string or null"},
      {R"({"phone": true})", "invalid_field", "phone: a string or null"},
      {R"({"timezone": "Mars/Olympus"})", "invalid_field", "not an IANA time zone"},
      {R"({"timezone": 1})", "invalid_field", "timezone: a string or null"},
      {R"({"attributes": [1, 2]})", "invalid_field", "attributes: an object"},
      {R"({"attributes": null})", "invalid_field", "attributes: an object"},
      {R"({"consent": {"email": "yes"}})", "invalid_field", "consent.email: true, false or null"},
      {R"({"consent": true})", "invalid_field", "consent: an object"},
      {R"({"id": "someone-else"})", "invalid_field", "id: must be absent or equal"},
      {R"(["email"])", "invalid_field", "a JSON object"},
      {R"({"email": )", "invalid_json", "not valid JSON"},
      {"{\"attributes\": {\"name\": \"\xc3\x28\"}}", "invalid_json", "UTF-8"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body);
    auto r = http().Put("/v1/customers/c-1", c.body, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400);
    EXPECT_EQ(ErrorCode(r), c.code);
    EXPECT_NE(ErrorMessage(r).find(c.message), std::string::npos) << ErrorMessage(r);
  }
  auto profile = store_.GetProfile("c-1");
  ASSERT_TRUE(profile.ok());
  EXPECT_FALSE(*profile);
}

TEST_F(ApiTest, GetCustomerShowsProfileJourneysAndTimeline) {
  ASSERT_TRUE(store_.UpsertProfile("c-1", {{"email", "ann@example.com"}}).ok());
  Batch batch;
  Instance current;
  current.journey = "welcome";
  current.version = 2;
  current.customer = "c-1";
  current.entered_at = kNow;
  current.step = 1;
  current.status = InstanceStatus::kWaiting;
  Instance old_version = current;
  old_version.version = 1;
  old_version.step = 4;
  old_version.status = InstanceStatus::kExited;
  old_version.exited_at = kNow + Seconds(60);
  old_version.exit_reason = "completed";
  batch.states.push_back({"c-1", "welcome", JourneyState{{old_version, current}}, std::nullopt});
  batch.outbox.push_back(Email("m-1", "c-1"));
  batch.timeline.push_back({0, "c-1", kNow, "entered", {{"journey", "welcome"}, {"version", 2}}});
  batch.timeline.push_back({0,
                            "c-1",
                            kNow + Seconds(1),
                            "sent",
                            {{"journey", "welcome"}, {"message", "m-1"}, {"step_id", "confirm"}}});
  Commit(batch);
  ASSERT_TRUE(store_.MarkSent("m-1", kNow + Seconds(2)).ok());

  auto r = http().Get("/v1/customers/c-1");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json body = json::parse(r->body);
  EXPECT_EQ(body["profile"], json({{"id", "c-1"}, {"email", "ann@example.com"}}));
  ASSERT_EQ(body["journeys"].size(), 2u);
  EXPECT_EQ(body["journeys"][0], json({{"journey", "welcome"},
                                       {"version", 1},
                                       {"entry", 1},
                                       {"step", 4},
                                       {"step_index", 4},
                                       {"status", "exited"},
                                       {"holdout", false},
                                       {"entered_at", "2026-11-22T10:00:00Z"},
                                       {"exited_at", "2026-11-22T10:01:00Z"},
                                       {"exit_reason", "completed"}}));
  EXPECT_EQ(body["journeys"][1]["step"], "wait_for_open");
  EXPECT_EQ(body["journeys"][1]["status"], "waiting");
  EXPECT_FALSE(body["journeys"][1].contains("exited_at"));
  ASSERT_EQ(body["timeline"].size(), 2u);
  EXPECT_EQ(body["timeline"][0], json({{"at", "2026-11-22T10:00:01Z"},
                                       {"kind", "sent"},
                                       {"journey", "welcome"},
                                       {"message", "m-1"},
                                       {"step_id", "confirm"},
                                       {"status", "sent"}}));
  EXPECT_EQ(body["timeline"][1]["kind"], "entered");

  r = http().Get("/v1/customers/c-1?limit=1");
  ASSERT_TRUE(r);
  EXPECT_EQ(json::parse(r->body)["timeline"].size(), 1u);
}

TEST_F(ApiTest, GetCustomerErrors) {
  auto r = http().Get("/v1/customers/nobody");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(ErrorCode(r), "customer_not_found");
  ASSERT_TRUE(store_.UpsertProfile("c-1", json::object()).ok());
  for (const char* limit : {"0", "1001", "-1", "ten", "", "5x"}) {
    SCOPED_TRACE(limit);
    r = http().Get(std::string("/v1/customers/c-1?limit=") + limit);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400);
    EXPECT_EQ(ErrorCode(r), "invalid_field");
  }
  r = http().Get("/v1/customers/c-1?limit=1000");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(ApiTest, CustomerIdsInPathsAreDecodedAndChecked) {
  auto r = http().Put("/v1/customers/a%2Fb%20c", "{}", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["id"], "a/b c");
  r = http().Get("/v1/customers/" + std::string(257, 'x'));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(ErrorCode(r), "invalid_field");
  for (const char* bad : {"%FF%FE", "a%00b", "tab%09"}) {
    SCOPED_TRACE(bad);
    r = http().Get(std::string("/v1/customers/") + bad);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400);
    EXPECT_EQ(ErrorCode(r), "invalid_field");
  }
  r = http().Get("/v1/customers/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(ErrorCode(r), "not_found");
}

TEST_F(ApiTest, DeleteCustomerErases) {
  auto r = http().Delete("/v1/customers/nobody");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(ErrorCode(r), "customer_not_found");

  ASSERT_TRUE(store_.UpsertProfile("c-1", {{"email", "ann@example.com"}}).ok());
  Batch batch;
  batch.outbox.push_back(Email("m-1", "c-1"));
  Commit(batch);
  r = http().Delete("/v1/customers/c-1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body), json({{"erased", "c-1"}}));
  r = http().Get("/v1/customers/c-1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  auto message = store_.GetMessage("m-1");
  ASSERT_TRUE(message.ok() && *message);
  EXPECT_EQ((*message)->recipient, "");
}

TEST_F(ApiTest, DeleteReachesACustomerKnownOnlyByEvents) {
  ASSERT_EQ(PostEvents(R"({"customer_id": "ghost", "type": "t"})")->status, 202);
  auto r = http().Delete("/v1/customers/ghost");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(Events("ghost").empty());
}

// ---------------------------------------------------------------- journeys and messages

TEST_F(ApiTest, ListsJourneys) {
  auto r = http().Get("/v1/journeys");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body), json({{"journeys",
                                         {{{"id", "welcome"},
                                           {"current_version", 2},
                                           {"versions", {1, 2}},
                                           {"file", "journeys/welcome.journey"}},
                                          {{"id", "winback"},
                                           {"current_version", 1},
                                           {"versions", {1}},
                                           {"file", "journeys/winback.journey"}}}}}));
}

TEST_F(ApiTest, JourneyStats) {
  Batch batch;
  for (auto [name, n] :
       std::vector<std::pair<std::string, int64_t>>{{"entered", 10},
                                                    {"holdout", 2},
                                                    {"exited", 4},
                                                    {"step.confirm.entered", 8},
                                                    {"step.confirm.left", 8},
                                                    {"step.wait_for_open.entered", 8},
                                                    {"step.wait_for_open.left", 3},
                                                    {"step.retired.entered", 1},
                                                    {"goal.purchased", 3},
                                                    {"sent.email", 8}}) {
    batch.counters.push_back({"welcome", name, n});
  }
  batch.outbox.push_back(Email("m-1", "c-1"));
  batch.outbox.push_back(Email("m-2", "c-2"));
  Commit(batch);
  ASSERT_TRUE(store_.MarkDead("m-2", "550 no such user").ok());

  auto r = http().Get("/v1/journeys/welcome");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json body = json::parse(r->body);
  EXPECT_EQ(body["current_version"], 2);
  EXPECT_EQ(body["versions"], json({1, 2}));
  EXPECT_EQ(body["steps"], json::parse(R"([
      {"step": "confirm", "now": 0, "entered": 8, "left": 8},
      {"step": "wait_for_open", "now": 5, "entered": 8, "left": 3},
      {"step": "offer", "now": 0, "entered": 0, "left": 0},
      {"step": "retired", "now": 1, "entered": 1, "left": 0}])"));
  EXPECT_EQ(body["entered"], 10);
  EXPECT_EQ(body["exited"], 4);
  EXPECT_EQ(body["goals"], json({{"purchased", 3}}));
  EXPECT_EQ(body["holdout"], json({{"holdout", 2}, {"treatment", 8}}));
  EXPECT_EQ(body["messages"],
            json({{"email", {{"pending", 1}, {"sent", 0}, {"dead", 1}, {"cancelled", 0}}}}));
  EXPECT_EQ(body["counters"]["sent.email"], 8);

  r = http().Get("/v1/journeys/winback");
  ASSERT_TRUE(r);
  body = json::parse(r->body);
  EXPECT_EQ(body["entered"], 0);
  EXPECT_EQ(body["messages"], json::object());

  r = http().Get("/v1/journeys/nope");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(ErrorCode(r), "journey_not_found");
}

TEST_F(ApiTest, ListsMessagesByStatus) {
  Batch batch;
  batch.outbox.push_back(Email("m-1", "c-1"));
  batch.outbox.push_back(Email("m-2", "c-2"));
  Commit(batch);
  ASSERT_TRUE(store_.MarkDead("m-2", "550 no such user").ok());

  auto r = http().Get("/v1/messages");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  json body = json::parse(r->body);
  ASSERT_EQ(body["messages"].size(), 1u);
  EXPECT_EQ(body["messages"][0], json({{"id", "m-2"},
                                       {"customer", "c-2"},
                                       {"journey", "welcome"},
                                       {"channel", "email"},
                                       {"recipient", "ann@example.com"},
                                       {"status", "dead"},
                                       {"attempts", 0},
                                       {"last_error", "550 no such user"},
                                       {"created_at", "2026-11-22T10:00:00Z"},
                                       {"not_before", "2026-11-22T10:00:00Z"},
                                       {"sent_at", nullptr}}));
  r = http().Get("/v1/messages?status=pending&limit=5");
  ASSERT_TRUE(r);
  body = json::parse(r->body);
  ASSERT_EQ(body["messages"].size(), 1u);
  EXPECT_EQ(body["messages"][0]["id"], "m-1");
  EXPECT_FALSE(body["messages"][0].contains("payload"));

  for (const char* query : {"?status=lost", "?status=", "?limit=0", "?limit=abc"}) {
    SCOPED_TRACE(query);
    r = http().Get(std::string("/v1/messages") + query);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400);
    EXPECT_EQ(ErrorCode(r), "invalid_field");
  }
}

// ---------------------------------------------------------------- protocol errors

TEST_F(ApiTest, UnknownRouteAndWrongMethod) {
  auto r = http().Get("/v2/events");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(ErrorCode(r), "not_found");
  r = http().Get("/v1/events/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);

  r = http().Get("/v1/events");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(ErrorCode(r), "method_not_allowed");
  EXPECT_EQ(r->get_header_value("Allow"), "POST");
  r = http().Post("/v1/customers/c-1", "{}", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->get_header_value("Allow"), "GET, HEAD, PUT, DELETE");
  r = http().Delete("/v1/journeys");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(ErrorCode(r), "method_not_allowed");
  r = http().Patch("/v1/customers/c-1", "{}", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
}

TEST_F(ApiTest, BodiesOverTheLimitAre413) {
  ServerConfig config;
  config.max_body_bytes = 512;
  StartServer(config);
  std::string padding(600, ' ');
  auto r = PostEvents(R"({"customer_id": "c-1", "type": "t"})" + padding);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(ErrorCode(r), "body_too_large");

  // The same over chunked transfer encoding (no Content-Length).
  std::string chunked = R"({"customer_id": "c-1", "type": "t"})" + std::string(2000, ' ');
  r = http().Post(
      "/v1/events",
      [&chunked](size_t offset, httplib::DataSink& sink) {
        if (offset >= chunked.size()) {
          sink.done();
        } else {
          sink.write(chunked.data() + offset, std::min<size_t>(100, chunked.size() - offset));
        }
        return true;
      },
      "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(ErrorCode(r), "body_too_large");

  // A chunked body under the limit is fine, and the server still answers afterwards.
  std::string small = R"({"customer_id": "c-1", "type": "t"})";
  r = http().Post(
      "/v1/events",
      [&small](size_t offset, httplib::DataSink& sink) {
        if (offset >= small.size()) {
          sink.done();
        } else {
          sink.write(small.data() + offset, small.size() - offset);
        }
        return true;
      },
      "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 202);
  r = PostEvents(small);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 202);
  EXPECT_EQ(Events("c-1").size(), 2u);

  // Refused on its Content-Length alone, the request still counts under its route.
  r = http().Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_NE(r->body.find("itinera_http_requests_total{code=\"413\",route=\"/v1/events\"} 2\n"),
            std::string::npos)
      << r->body;
}

// The read timeout is for a stall, not for the whole body: a slow client's body is read.
TEST_F(ApiTest, ASlowBodyIsReadAsLongAsItKeepsComing) {
  const std::string body = R"({"customer_id": "c-1", "type": "t"})";
  RawConnection c(server_->port());
  ASSERT_TRUE(c.Send("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n"));
  const size_t pieces = 7;  // 6.3 s in all, more than the 5 s a stall may take
  for (size_t i = 0; i < pieces; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(900));
    const size_t from = body.size() * i / pieces, to = body.size() * (i + 1) / pieces;
    ASSERT_TRUE(c.Send(body.substr(from, to - from)));
  }
  auto answers = c.Read(1);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(StatusOf(answers[0]), "202");
  EXPECT_EQ(Events("c-1").size(), 1u);
}

TEST_F(ApiTest, TokensAreRequiredOnV1Only) {
  ServerConfig config;
  config.tokens = {"first-token", "second-token"};
  StartServer(config);
  const std::string event = R"({"customer_id": "c-1", "type": "t"})";

  auto r = PostEvents(event);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(ErrorCode(r), "unauthorized");
  EXPECT_EQ(r->get_header_value("WWW-Authenticate"), "Bearer");
  for (const char* header : {"Bearer wrong-token", "Bearer first-token2", "Basic first-token",
                             "Bearer ", "first-token"}) {
    SCOPED_TRACE(header);
    r = http().Post("/v1/events", {{"Authorization", header}}, event, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401);
    EXPECT_EQ(ErrorCode(r), "unauthorized");
  }
  r = http().Get("/v1/nothing-here");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_TRUE(Events("c-1").empty());

  for (const char* header : {"Bearer second-token", "bearer first-token"}) {
    SCOPED_TRACE(header);
    r = http().Post("/v1/events", {{"Authorization", header}}, event, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 202);
  }
  r = http().Get("/v1/journeys", {{"Authorization", "Bearer first-token"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);

  // No token needed for health, metrics and tracking.
  r = http().Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  r = http().Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  r = http().Get("/t/o/not-a-token");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
}

TEST_F(ApiTest, HandlerExceptionIs500WithTheErrorShape) {
  journeys_throw_ = true;
  std::mutex mu;
  std::string logged;
  SetLogSink([&](const std::string& line) {
    std::lock_guard lock(mu);
    logged += line;
  });
  auto r = http().Get("/v1/journeys");
  SetLogSink(nullptr);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(ErrorCode(r), "internal");
  EXPECT_EQ(ErrorMessage(r), "internal error");  // no internals in the answer...
  std::lock_guard lock(mu);
  EXPECT_NE(logged.find("a bug"), std::string::npos) << logged;  // ...but in the log
}

TEST_F(ApiTest, HealthAndMetrics) {
  auto r = http().Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body), json({{"status", "ok"}}));
  ASSERT_EQ(PostEvents(R"({"customer_id": "c-1", "type": "t"})")->status, 202);
  ASSERT_EQ(http().Get("/nope")->status, 404);

  r = http().Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/plain; version=0.0.4");
  EXPECT_NE(r->body.find("# TYPE itinera_http_requests_total counter\n"), std::string::npos);
  EXPECT_NE(r->body.find("itinera_http_requests_total{code=\"202\",route=\"/v1/events\"} 1\n"),
            std::string::npos)
      << r->body;
  EXPECT_NE(r->body.find("itinera_http_requests_total{code=\"404\",route=\"unmatched\"} 1\n"),
            std::string::npos)
      << r->body;
  EXPECT_NE(r->body.find("itinera_http_request_seconds_count{route=\"/v1/events\"} 1\n"),
            std::string::npos)
      << r->body;
  EXPECT_NE(r->body.find("itinera_events_accepted_total 1\n"), std::string::npos);
}

TEST_F(ApiTest, StopFinishesTheRequestInFlight) {
  std::atomic<bool> entered{false};
  std::atomic<bool> release{false};
  ApiBackend backend;
  backend.store = &store_;
  backend.clock = &clock_;
  backend.append_events = [](std::vector<NewEvent>) { return Status::Ok(); };
  backend.upsert_customer = [](const std::string&, const json&) -> Result<ProfileChange> {
    return ProfileChange{};
  };
  backend.journeys = [&] {
    entered = true;
    while (!release) std::this_thread::yield();
    return std::vector<JourneyInfo>{};
  };
  ApiOptions options;
  options.port = 0;
  ApiServer server(backend, options);
  ASSERT_TRUE(server.Start().ok());
  httplib::Result result{nullptr, httplib::Error::Unknown};
  std::thread request([&] {
    httplib::Client client("127.0.0.1", server.port());
    result = client.Get("/v1/journeys");
  });
  while (!entered) std::this_thread::yield();
  std::thread stopper([&] { server.Stop(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // Stop is now waiting on it
  release = true;
  stopper.join();
  request.join();
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  httplib::Client late("127.0.0.1", server.port());
  EXPECT_FALSE(late.Get("/healthz"));  // no longer accepting
}

TEST_F(ApiTest, StartFailsClearlyWhenThePortIsTaken) {
  ApiBackend backend;
  backend.store = &store_;
  backend.clock = &clock_;
  backend.append_events = [](std::vector<NewEvent>) { return Status::Ok(); };
  backend.upsert_customer = [](const std::string&, const json&) -> Result<ProfileChange> {
    return ProfileChange{};
  };
  backend.journeys = [] { return std::vector<JourneyInfo>{}; };
  ApiOptions options;
  options.port = server_->port();
  ApiServer second(backend, options);
  Status s = second.Start();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, "listen");
  EXPECT_NE(s.error().message.find("already in use"), std::string::npos) << s.error().message;

  ApiServer incomplete(ApiBackend{}, ApiOptions{});
  s = incomplete.Start();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, "invalid_argument");
}

// ---------------------------------------------------------------- tracking

TEST_F(ApiTest, OpenPixelRecordsAnOpenEveryTime) {
  Batch batch;
  batch.outbox.push_back(Email("m-1", "c-1"));
  Commit(batch);
  const std::string token = Token(TrackingKind::kOpen, "m-1");
  for (int i = 0; i < 2; ++i) {
    auto r = http().Get("/t/o/" + token);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->get_header_value("Content-Type"), "image/gif");
    EXPECT_EQ(r->get_header_value("Cache-Control"), "no-store");
    EXPECT_EQ(r->body.substr(0, 6), "GIF89a");
    EXPECT_EQ(r->body.size(), 43u);
  }
  auto events = Events("c-1");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].id, "");
  EXPECT_EQ(events[0].body, json({{"customer_id", "c-1"},
                                  {"type", "email_opened"},
                                  {"timestamp", "2026-11-22T10:00:00Z"},
                                  {"properties",
                                   {{"message", "m-1"},
                                    {"journey", "welcome"},
                                    {"handle", "offer"},
                                    {"channel", "email"}}}}));
  EXPECT_NE(metrics_.Render().find("itinera_tracking_hits_total{kind=\"open\"} 2\n"),
            std::string::npos);
}

TEST_F(ApiTest, ClickRedirectsToTheStoredLink) {
  Batch batch;
  batch.outbox.push_back(Email("m-1", "c-1"));
  Commit(batch);
  auto r = http().Get("/t/c/" + Token(TrackingKind::kClick, "m-1", 0));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 302);
  EXPECT_EQ(r->get_header_value("Location"), "https://dealer.example/offer?x=1");
  r = http().Get("/t/c/" + Token(TrackingKind::kClick, "m-1", 1));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 302);
  EXPECT_EQ(r->get_header_value("Location"), "https://dealer.example/b");
  auto events = Events("c-1");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].body["type"], "link_clicked");
  EXPECT_EQ(events[0].body["properties"], json({{"message", "m-1"},
                                                {"journey", "welcome"},
                                                {"handle", "offer"},
                                                {"channel", "email"},
                                                {"url", "https://dealer.example/offer?x=1"}}));

  // A validly signed index the message has no link for.
  r = http().Get("/t/c/" + Token(TrackingKind::kClick, "m-1", 2));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(Events("c-1").size(), 2u);
}

TEST_F(ApiTest, UnsubscribeByGetAndOneClickPost) {
  ASSERT_TRUE(store_.UpsertProfile("c-1", {{"consent", {{"email", true}, {"sms", true}}}}).ok());
  Batch batch;
  batch.outbox.push_back(Email("m-1", "c-1"));
  Commit(batch);
  const std::string path = "/u/" + Token(TrackingKind::kUnsubscribe, "m-1");

  auto r = http().Get(path);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(r->body.find("You are unsubscribed"), std::string::npos);
  auto profile = store_.GetProfile("c-1");
  ASSERT_TRUE(profile.ok() && *profile);
  EXPECT_EQ((**profile)["consent"], json({{"email", false}, {"sms", true}}));

  ASSERT_TRUE(store_.UpsertProfile("c-1", {{"consent", {{"email", true}}}}).ok());
  r = http().Post(path, "List-Unsubscribe=One-Click", "application/x-www-form-urlencoded");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("You are unsubscribed"), std::string::npos);
  profile = store_.GetProfile("c-1");
  EXPECT_EQ((**profile)["consent"]["email"], false);

  auto events = Events("c-1");
  ASSERT_EQ(events.size(), 1u);  // the second one had the same idempotency id
  EXPECT_EQ(events[0].id, "unsubscribe:m-1");
  EXPECT_EQ(events[0].body["type"], "unsubscribed");
  EXPECT_EQ(events[0].body["properties"],
            json({{"message", "m-1"}, {"journey", "welcome"}, {"channel", "email"}}));
}

TEST_F(ApiTest, BadTokensGet404AndRecordNothing) {
  ASSERT_TRUE(store_.UpsertProfile("c-1", {{"consent", {{"email", true}}}}).ok());
  Batch batch;
  batch.outbox.push_back(Email("m-1", "c-1"));
  Commit(batch);
  const std::string open = Token(TrackingKind::kOpen, "m-1");
  std::string altered = open;
  altered[altered.size() / 2] = altered[altered.size() / 2] == 'A' ? 'B' : 'A';
  auto other_secret = MakeToken({TrackingKind::kOpen, "m-1", 0}, "another-secret");
  ASSERT_TRUE(other_secret.ok());
  const std::vector<std::string> paths = {
      "/t/o/" + altered,
      "/t/o/" + *other_secret,
      "/t/o/" + open.substr(0, open.size() - 1),
      "/t/o/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
      "/t/o/" + std::string(300, 'A'),
      "/t/c/" + open,                                     // an open token on the click path
      "/u/" + Token(TrackingKind::kClick, "m-1", 0),      // a click token on unsubscribe
      "/t/o/" + Token(TrackingKind::kOpen, "m-unknown"),  // signed, but no such message
  };
  for (const std::string& path : paths) {
    SCOPED_TRACE(path);
    auto r = http().Get(path);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 404);
    EXPECT_EQ(ErrorCode(r), "not_found");
    EXPECT_EQ(r->get_header_value("Location"), "");
  }
  auto r = http().Post("/u/" + altered, "List-Unsubscribe=One-Click",
                       "application/x-www-form-urlencoded");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_TRUE(Events("c-1").empty());
  auto profile = store_.GetProfile("c-1");
  EXPECT_EQ((**profile)["consent"]["email"], true);
}

TEST_F(ApiTest, TrackingAnErasedCustomerRecordsNothing) {
  ASSERT_TRUE(store_.UpsertProfile("c-1", {{"email", "ann@example.com"}}).ok());
  Batch batch;
  batch.outbox.push_back(Email("m-1", "c-1"));
  Commit(batch);
  ASSERT_TRUE(store_.EraseCustomer("c-1").ok());
  for (const std::string& path :
       {"/t/o/" + Token(TrackingKind::kOpen, "m-1"), "/t/c/" + Token(TrackingKind::kClick, "m-1"),
        "/u/" + Token(TrackingKind::kUnsubscribe, "m-1")}) {
    SCOPED_TRACE(path);
    auto r = http().Get(path);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 404);
  }
  EXPECT_TRUE(Events("c-1").empty());
  auto profile = store_.GetProfile("c-1");
  ASSERT_TRUE(profile.ok());
  EXPECT_FALSE(*profile);  // the unsubscribe did not bring the profile back
}

TEST_F(ApiTest, TrackingWhenStorageFails) {
  Batch batch;
  batch.outbox.push_back(Email("m-1", "c-1"));
  Commit(batch);
  fail_storage_ = true;
  auto r = http().Get("/t/o/" + Token(TrackingKind::kOpen, "m-1"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->get_header_value("Retry-After"), "1");
  EXPECT_EQ(ErrorCode(r), "unavailable");
  EXPECT_EQ(ErrorMessage(r), "storage is unavailable, retry later");  // public: no internals
  r = http().Get("/u/" + Token(TrackingKind::kUnsubscribe, "m-1"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  // The person who clicked still gets to the page; the lost click is counted.
  r = http().Get("/t/c/" + Token(TrackingKind::kClick, "m-1"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 302);
  EXPECT_NE(metrics_.Render().find("itinera_tracking_failures_total{kind=\"click\"} 1\n"),
            std::string::npos);
}

TEST_F(ApiTest, HeadOnTrackingLinksRecordsNothing) {
  Batch batch;
  batch.outbox.push_back(Email("m-1", "c-1"));
  Commit(batch);
  auto r = http().Head("/t/o/" + Token(TrackingKind::kOpen, "m-1"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  r = http().Head("/u/" + Token(TrackingKind::kUnsubscribe, "m-1"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(Events("c-1").empty());
}

// ---------------------------------------------------------------- the connections

TEST_F(ApiTest, AnOpenConnectionDoesNotHoldAThread) {
  ServerConfig config;
  config.threads = 1;
  StartServer(config);
  const std::string request = "GET /v1/journeys HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  RawConnection first(server_->port());
  ASSERT_TRUE(first.connected);
  ASSERT_TRUE(first.Send(request));
  ASSERT_EQ(first.Read(1).size(), 1u);
  // The first connection stays open, idle; with one worker thread the second is served anyway.
  RawConnection second(server_->port());
  ASSERT_TRUE(second.connected);
  ASSERT_TRUE(second.Send(request));
  auto answers = second.Read(1);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(StatusOf(answers[0]), "200");
  // And the first is still served.
  ASSERT_TRUE(first.Send(request));
  answers = first.Read(1);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(StatusOf(answers[0]), "200");
}

// Out of descriptors, the server leaves new connections in the kernel's queue and takes them
// once one is free, rather than failing or spinning.
TEST_F(ApiTest, AtTheDescriptorLimitNewConnectionsWaitTheirTurn) {
  // The limit bounds descriptor numbers, and a new descriptor takes the lowest free one: leave
  // three free below it, for one connection (its client end and its server end) and the next
  // one's client end.
  auto open = [](int fd) {  // without a descriptor of its own, as listing the folder would
    char target[256];
    return readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), target, sizeof target) > 0;
  };
  int free_below = 0, limit = 0;
  while (free_below < 3) {
    if (!open(limit)) ++free_below;
    ++limit;
  }
  rlimit before{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &before), 0);
  rlimit low = before;
  low.rlim_cur = static_cast<rlim_t>(limit);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  struct Restore {
    rlimit limit;
    ~Restore() { setrlimit(RLIMIT_NOFILE, &limit); }
  } restore{before};

  const std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  auto first = std::make_unique<RawConnection>(server_->port());
  ASSERT_TRUE(first->connected);
  ASSERT_TRUE(first->Send(request));
  ASSERT_EQ(first->Read(1).size(), 1u);
  RawConnection second(server_->port());  // its client end takes the last descriptor
  ASSERT_TRUE(second.connected);
  ASSERT_TRUE(second.Send(request));
  timeval short_wait{0, 500000};
  setsockopt(second.fd, SOL_SOCKET, SO_RCVTIMEO, &short_wait, sizeof short_wait);
  auto got = second.Read(1);
  EXPECT_TRUE(got.empty());  // not accepted: the server has no descriptor for it

  first.reset();  // the server closes its end too, and takes the waiting connection
  timeval long_wait{5, 0};
  setsockopt(second.fd, SOL_SOCKET, SO_RCVTIMEO, &long_wait, sizeof long_wait);
  auto answers = second.Read(1);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(StatusOf(answers[0]), "200");
}

TEST_F(ApiTest, EventsWaitingToBeAdvancedHoldNoThread) {
  ServerConfig config;
  config.threads = 1;
  config.advance = true;
  StartServer(config);
  std::vector<std::unique_ptr<RawConnection>> posts;
  for (int i = 0; i < 5; ++i) {
    const std::string body =
        R"({"customer_id": "c-)" + std::to_string(i) + R"(", "type": "offer_opened"})";
    posts.push_back(std::make_unique<RawConnection>(server_->port()));
    ASSERT_TRUE(
        posts.back()->Send("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: "
                           "application/json\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n" + body));
  }
  ASSERT_TRUE(WaitHeld(5));
  // Five requests wait on the engine; the one worker thread still serves a read.
  auto r = http().Get("/v1/journeys");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);

  std::vector<Held> held;
  {
    std::lock_guard lock(held_mu_);
    held = std::move(held_);
  }
  ASSERT_EQ(held.size(), 5u);
  std::map<std::string, size_t> by_customer;
  for (size_t i = 0; i < held.size(); ++i) {
    ASSERT_EQ(held[i].events.size(), 1u);
    EXPECT_EQ(held[i].events[0].body["type"], "offer_opened");
    by_customer[held[i].events[0].customer] = i;
  }
  // Answered from another thread: three advanced, one failed storage, one declined (the
  // server appends it through append_events, the inbox).
  std::thread answering([&] {
    for (int i : {0, 1, 2}) held[by_customer["c-" + std::to_string(i)]].done(Status::Ok(), {});
    held[by_customer["c-3"]].done(Status(Error{"storage", "disk on fire"}), {});
    Held& declined = held[by_customer["c-4"]];
    declined.done(std::nullopt, std::move(declined.events));
  });
  answering.join();
  std::vector<std::string> statuses;
  for (auto& post : posts) {
    auto answers = post->Read(1);
    statuses.push_back(answers.size() == 1 ? StatusOf(answers[0]) : "none");
  }
  EXPECT_EQ(statuses, (std::vector<std::string>{"202", "202", "202", "503", "202"}));
  EXPECT_TRUE(Events("c-0").empty());  // advanced, not appended
  EXPECT_TRUE(Events("c-3").empty());
  ASSERT_EQ(Events("c-4").size(), 1u);
  EXPECT_EQ(Events("c-4")[0].body["type"], "offer_opened");
}

TEST_F(ApiTest, StopWaitsForEventsBeingAdvanced) {
  ServerConfig config;
  config.advance = true;
  StartServer(config);
  httplib::Result result{nullptr, httplib::Error::Unknown};
  std::thread request([&] { result = PostEvents(R"({"customer_id": "c-1", "type": "t"})"); });
  ASSERT_TRUE(WaitHeld(1));
  std::thread stopper([&] { server_->Stop(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // Stop is now waiting on it
  {
    std::lock_guard lock(held_mu_);
    held_[0].done(Status::Ok(), {});
  }
  stopper.join();
  request.join();
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 202);
}

TEST_F(ApiTest, ExpectContinueIsAnswered) {
  const std::string body = R"({"customer_id": "c-1", "type": "t"})";
  RawConnection c(server_->port());
  ASSERT_TRUE(
      c.Send("POST /v1/events HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
             "Content-Length: " +
             std::to_string(body.size()) + "\r\n\r\n"));
  auto answers = c.Read(1);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0], "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(c.Send(body));
  answers = c.Read(1);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(StatusOf(answers[0]), "202");
  EXPECT_EQ(Events("c-1").size(), 1u);
}

TEST_F(ApiTest, PipelinedRequestsAreAnsweredInOrder) {
  const std::string body = R"({"customer_id": "c-1", "type": "t"})";
  RawConnection c(server_->port());
  ASSERT_TRUE(
      c.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
             "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: " +
             std::to_string(body.size()) + "\r\n\r\n" + body +
             "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  auto answers = c.Read(3);
  ASSERT_EQ(answers.size(), 3u);
  EXPECT_EQ(StatusOf(answers[0]), "200");
  EXPECT_EQ(StatusOf(answers[1]), "202");
  EXPECT_EQ(StatusOf(answers[2]), "404");
  EXPECT_NE(answers[2].find("Connection: close"), std::string::npos) << answers[2];
  EXPECT_TRUE(c.Read(1).empty());  // and the server closed the connection
}

TEST_F(ApiTest, MalformedRequestsGetTheErrorShape) {
  struct Case {
    std::string bytes;
    std::string status;
    std::string code;
  };
  const std::vector<Case> cases = {
      {"NOT HTTP AT ALL\r\n\r\n", "400", "invalid_request"},
      {"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n", "400", "invalid_request"},
      {"GET /" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n", "414", "uri_too_long"},
      {"GET /healthz HTTP/1.1\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n", "400",
       "invalid_request"},
      {"POST /v1/events HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "400",
       "invalid_request"},
      {"GET /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400",
       "invalid_request"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.bytes.substr(0, 40));
    RawConnection connection(server_->port());
    ASSERT_TRUE(connection.Send(c.bytes));
    auto answers = connection.Read(1);
    ASSERT_EQ(answers.size(), 1u);
    EXPECT_EQ(StatusOf(answers[0]), c.status);
    EXPECT_NE(answers[0].find("Connection: close"), std::string::npos);
    json body = json::parse(BodyOf(answers[0]), nullptr, false);
    EXPECT_EQ(body["error"]["code"], c.code) << answers[0];
  }
  auto r = http().Get("/healthz");  // the server is fine
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

}  // namespace
}  // namespace itinera::orch
