// Talks real HTTP to an in-process sink (tests/connectors/http_sink.h) on a free loopback port.
// The classification, timeout and connection tests here cover HttpPoster (connectors/
// http_post.h), which every HTTP connector shares.
#include "connectors/sms_http.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "connectors/http_post.h"
#include "tests/connectors/http_sink.h"
#include "util/time.h"

namespace itinera::connectors {
namespace {

using testing::HttpSink;
using testing::Reply;

constexpr char kPath[] = "/2010-04-01/Accounts/AC123/Messages.json";
constexpr char kText[] = "Váš termín: zítra 10:00 & 50% + \"€\" = ok?";

TwilioSmsConfig Config(const std::string& url) {
  TwilioSmsConfig config;
  config.url = url;
  config.account = "AC123";
  config.token = "s3cret";
  config.from = "+420600000000";
  return config;
}

std::unique_ptr<TwilioSmsConnector> Connect(const std::string& url, HttpOptions http = {}) {
  TwilioSmsConfig config = Config(url);
  config.http = http;
  auto sms = TwilioSmsConnector::Create(std::move(config));
  EXPECT_TRUE(sms.ok()) << sms.error().message;
  return sms.ok() ? std::move(*sms) : nullptr;
}

Message Sms(std::string id) {
  Message m;
  m.id = std::move(id);
  m.channel = Channel::kSms;
  m.to = "+420601234567";
  m.text_body = kText;
  m.date = *ParseTime("2026-11-22T10:00:00Z");
  return m;
}

TEST(TwilioSmsTest, CreateRejectsInvalidConfig) {
  struct Case {
    const char* name;
    void (*spoil)(TwilioSmsConfig&);
  };
  const Case cases[] = {
      {"ftp url", [](TwilioSmsConfig& c) { c.url = "ftp://127.0.0.1/x"; }},
      {"empty url", [](TwilioSmsConfig& c) { c.url.clear(); }},
      {"empty account", [](TwilioSmsConfig& c) { c.account.clear(); }},
      {"colon in account", [](TwilioSmsConfig& c) { c.account = "AC:123"; }},
      {"empty token", [](TwilioSmsConfig& c) { c.token.clear(); }},
      {"empty from", [](TwilioSmsConfig& c) { c.from.clear(); }},
  };
  for (const Case& c : cases) {
    TwilioSmsConfig config = Config("http://127.0.0.1:9000" + std::string(kPath));
    c.spoil(config);
    auto sms = TwilioSmsConnector::Create(config);
    ASSERT_FALSE(sms.ok()) << c.name;
    EXPECT_EQ(sms.error().code, "invalid_sms_config") << c.name;
  }
  EXPECT_TRUE(TwilioSmsConnector::Create(Config("https://api.example/x")).ok());
}

TEST(TwilioSmsTest, PostsFormWithBasicAuthAndIdempotencyKey) {
  HttpSink sink;
  ASSERT_TRUE(sink.running());
  sink.Script({201, R"({"sid": "SM0123456789abcdef", "status": "queued"})", "application/json"});
  auto sms = Connect(sink.Url(kPath));
  ASSERT_NE(sms, nullptr);

  Delivery d = sms->Send(Sms("j1:v1:c-1:e1:s2:a0"));
  EXPECT_EQ(d.outcome, Delivery::kSent) << d.error;
  EXPECT_EQ(d.provider_id, "SM0123456789abcdef");
  EXPECT_EQ(d.error, "");

  auto requests = sink.requests();
  ASSERT_EQ(requests.size(), 1u);
  const auto& r = requests[0];
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.path, kPath);
  EXPECT_EQ(r.Header("Content-Type"), "application/x-www-form-urlencoded");
  EXPECT_EQ(r.Header("Authorization"), "Basic QUMxMjM6czNjcmV0");  // AC123:s3cret
  EXPECT_EQ(r.Header("Idempotency-Key"), "j1:v1:c-1:e1:s2:a0");
  EXPECT_EQ(r.Param("To"), "+420601234567");
  EXPECT_EQ(r.Param("From"), "+420600000000");
  EXPECT_EQ(r.Param("Body"), kText);  // UTF-8 and & % + = survive the form encoding
  EXPECT_EQ(r.params.size(), 3u);
  EXPECT_EQ(r.body.find_first_of(" +\"€"), std::string::npos) << r.body;
}

TEST(TwilioSmsTest, FormEncodingIsPercentEncodedUtf8) {
  EXPECT_EQ(FormUrlEncode({{"To", "+420 601"}, {"Body", "a&b=c~_.-é"}}),
            "To=%2B420%20601&Body=a%26b%3Dc~_.-%C3%A9");
  EXPECT_EQ(FormUrlEncode({}), "");
}

TEST(TwilioSmsTest, MessageFromOverridesConfiguredSender) {
  HttpSink sink;
  auto sms = Connect(sink.Url(kPath));
  Message m = Sms("a");
  m.from = "Motors";
  ASSERT_EQ(sms->Send(m).outcome, Delivery::kSent);
  ASSERT_EQ(sink.requests().size(), 1u);
  EXPECT_EQ(sink.requests()[0].Param("From"), "Motors");
}

TEST(TwilioSmsTest, ProviderIdFallsBackToMessageId) {
  HttpSink sink;
  sink.Script({200, "not json"});
  auto sms = Connect(sink.Url(kPath));
  Delivery d = sms->Send(Sms("msg-7"));
  EXPECT_EQ(d.outcome, Delivery::kSent);
  EXPECT_EQ(d.provider_id, "msg-7");
}

TEST(TwilioSmsTest, IncompleteMessageIsPermanentAndNotSent) {
  HttpSink sink;
  auto sms = Connect(sink.Url(kPath));
  Message no_body = Sms("a");
  no_body.text_body.clear();
  Message no_to = Sms("a");
  no_to.to.clear();
  Message no_id = Sms("");
  EXPECT_EQ(sms->Send(no_body).outcome, Delivery::kPermanent);
  EXPECT_EQ(sms->Send(no_to).outcome, Delivery::kPermanent);
  EXPECT_EQ(sms->Send(no_id).outcome, Delivery::kPermanent);
  EXPECT_TRUE(sink.requests().empty());
}

TEST(TwilioSmsTest, ClassifiesHttpStatuses) {
  struct Case {
    int status;
    Delivery::Outcome outcome;
  };
  const std::vector<Case> cases = {
      {200, Delivery::kSent},      {201, Delivery::kSent},      {202, Delivery::kSent},
      {400, Delivery::kPermanent}, {401, Delivery::kPermanent}, {404, Delivery::kPermanent},
      {408, Delivery::kTransient}, {429, Delivery::kTransient}, {500, Delivery::kTransient},
      {503, Delivery::kTransient}, {301, Delivery::kPermanent}, {410, Delivery::kPermanent},
  };
  HttpSink sink;
  for (const Case& c : cases) {
    sink.Script({c.status, "{\"code\": " + std::to_string(c.status) + "}", "application/json"});
  }
  auto sms = Connect(sink.Url(kPath));
  for (const Case& c : cases) {
    Delivery d = sms->Send(Sms("a"));
    EXPECT_EQ(d.outcome, c.outcome) << c.status << ": " << d.error;
    EXPECT_EQ(ClassifyHttpStatus(c.status), c.outcome) << c.status;
    if (c.outcome == Delivery::kSent) {
      EXPECT_EQ(d.error, "") << c.status;
    } else {
      EXPECT_EQ(d.provider_id, "") << c.status;
      EXPECT_NE(d.error.find("HTTP " + std::to_string(c.status)), std::string::npos) << d.error;
      EXPECT_NE(d.error.find("\"code\": " + std::to_string(c.status)), std::string::npos)
          << d.error;
    }
  }
  EXPECT_EQ(sink.requests().size(), cases.size());
}

TEST(TwilioSmsTest, ErrorQuotesAShortExcerptAndRetryAfter) {
  HttpSink sink;
  std::string long_body = "{\"message\": \"slow down\"," + std::string(2000, 'x') + "}";
  sink.Script({429, long_body, "application/json", {{"Retry-After", "30"}}});
  auto sms = Connect(sink.Url(kPath));
  Delivery d = sms->Send(Sms("a"));
  EXPECT_EQ(d.outcome, Delivery::kTransient);
  EXPECT_NE(d.error.find("HTTP 429, retry after 30s: {\"message\": \"slow down\""),
            std::string::npos)
      << d.error;
  EXPECT_LT(d.error.size(), 300u);
  EXPECT_EQ(d.error.find("s3cret"), std::string::npos);
}

TEST(TwilioSmsTest, RedirectIsPermanentAndNotFollowed) {
  HttpSink sink;
  sink.Script({302, "", "text/plain", {{"Location", sink.Url("/elsewhere")}}});
  auto sms = Connect(sink.Url(kPath));
  Delivery d = sms->Send(Sms("a"));
  EXPECT_EQ(d.outcome, Delivery::kPermanent);
  EXPECT_NE(d.error.find("HTTP 302"), std::string::npos) << d.error;
  EXPECT_EQ(sink.requests().size(), 1u);
}

TEST(TwilioSmsTest, ConnectionRefusedIsTransient) {
  int port = testing::UnusedLoopbackPort();
  ASSERT_GT(port, 0);
  auto sms = Connect("http://127.0.0.1:" + std::to_string(port) + kPath);
  Delivery d = sms->Send(Sms("a"));
  EXPECT_EQ(d.outcome, Delivery::kTransient);
  EXPECT_NE(d.error, "");
  EXPECT_EQ(d.error.find("s3cret"), std::string::npos);
}

TEST(TwilioSmsTest, SlowProviderTimesOutAsTransient) {
  HttpSink sink;
  sink.Script({201, R"({"sid": "late"})", "application/json", {}, std::chrono::seconds(2)});
  HttpOptions http;
  http.connect_timeout = std::chrono::milliseconds(200);
  http.total_timeout = std::chrono::milliseconds(300);
  auto sms = Connect(sink.Url(kPath), http);
  auto start = std::chrono::steady_clock::now();
  Delivery d = sms->Send(Sms("a"));
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(d.outcome, Delivery::kTransient);
  EXPECT_NE(d.error.find("imeout"), std::string::npos) << d.error;
  EXPECT_LT(elapsed, std::chrono::seconds(1));
  sms.reset();  // close the connection before the sink goes
}

TEST(TwilioSmsTest, ReusesOneConnection) {
  HttpSink sink;
  auto sms = Connect(sink.Url(kPath));
  ASSERT_EQ(sms->Send(Sms("a")).outcome, Delivery::kSent);
  ASSERT_EQ(sms->Send(Sms("b")).outcome, Delivery::kSent);
  auto requests = sink.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].remote_port, requests[1].remote_port);
  EXPECT_EQ(requests[1].Header("Idempotency-Key"), "b");
}

TEST(TwilioSmsTest, AConnectionClosedWhileIdleIsReopenedAndThePostSent) {
  HttpSink sink;  // closes a connection idle for 1 s
  auto sms = Connect(sink.Url(kPath));
  ASSERT_EQ(sms->Send(Sms("a")).outcome, Delivery::kSent);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  Delivery d = sms->Send(Sms("b"));
  EXPECT_EQ(d.outcome, Delivery::kSent) << d.error;
  auto requests = sink.requests();
  ASSERT_EQ(requests.size(), 2u);  // sent once, on the new connection
  EXPECT_NE(requests[0].remote_port, requests[1].remote_port);
  EXPECT_EQ(requests[1].Header("Idempotency-Key"), "b");
}

TEST(TwilioSmsTest, AnAnswerThatClosesTheConnectionIsFollowedByANewOne) {
  HttpSink sink;
  sink.Script({201, R"({"sid": "SM1"})", "application/json", {{"Connection", "close"}}});
  auto sms = Connect(sink.Url(kPath));
  ASSERT_EQ(sms->Send(Sms("a")).outcome, Delivery::kSent);
  ASSERT_EQ(sms->Send(Sms("b")).outcome, Delivery::kSent);
  auto requests = sink.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_NE(requests[0].remote_port, requests[1].remote_port);
}

TEST(HttpPosterTest, APostElsewhereOpensAConnectionThereAndSendsTheHostItNames) {
  HttpSink first;
  HttpSink second;
  HttpPoster poster;
  HttpRequest request;
  request.content_type = "application/json";
  request.body = R"({"text": "hi"})";
  for (const std::string& url :
       {first.Url("/hooks/a?x=1"), second.Url("/hooks/b"), first.Url("/hooks/c")}) {
    request.url = url;
    HttpResponse response = poster.Post(request);
    EXPECT_EQ(response.outcome, Delivery::kSent) << response.error;
  }
  auto at_first = first.requests();
  auto at_second = second.requests();
  ASSERT_EQ(at_first.size(), 2u);
  ASSERT_EQ(at_second.size(), 1u);
  EXPECT_EQ(at_first[0].path, "/hooks/a");
  EXPECT_EQ(at_first[0].Param("x"), "1");
  EXPECT_EQ(at_first[0].Header("Host"), "127.0.0.1:" + std::to_string(first.port()));
  EXPECT_EQ(at_second[0].Header("Host"), "127.0.0.1:" + std::to_string(second.port()));
  EXPECT_EQ(at_second[0].body, request.body);
  EXPECT_EQ(at_second[0].Header("Content-Type"), "application/json");
}

TEST(HttpPosterTest, RefusesWhatItCannotSendAsPermanent) {
  HttpPoster poster;
  HttpRequest request;
  request.content_type = "text/plain";
  for (const char* url :
       {"ftp://example.com/x", "http://user:pw@example.com/x", "http://example.com:0/x",
        "http://example.com:99999/x", "http:///x", "http://[::1/x"}) {
    request.url = url;
    HttpResponse response = poster.Post(request);
    EXPECT_EQ(response.outcome, Delivery::kPermanent) << url;
    EXPECT_NE(response.error, "") << url;
    EXPECT_EQ(response.error.find("pw"), std::string::npos) << response.error;
  }
  request.url = "http://127.0.0.1:1/x";
  request.headers = {{"X-Evil", "a\r\nInjected: yes"}};
  EXPECT_EQ(poster.Post(request).outcome, Delivery::kPermanent);
}

// A raw peer: answers the first connection's request with stray bytes after the answer, and
// every later connection's requests properly. Counts connections.
class StrayBytesPeer {
 public:
  StrayBytesPeer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd_, 4) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~StrayBytesPeer() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    if (thread_.joinable()) thread_.join();
  }
  int port() const { return port_; }
  int connections() const { return connections_; }

 private:
  void Serve() {
    std::vector<std::thread> served;
    for (;;) {
      int client = ::accept(fd_, nullptr, nullptr);
      if (client < 0) break;
      const bool stray = ++connections_ == 1;
      served.emplace_back([client, stray] {
        std::string in;
        char buffer[4096];
        for (;;) {
          ssize_t n = ::recv(client, buffer, sizeof buffer, 0);
          if (n <= 0) break;
          in.append(buffer, static_cast<size_t>(n));
          size_t end = in.find("\r\n\r\n");
          size_t length = in.find("Content-Length: ");
          if (end == std::string::npos || length == std::string::npos) continue;
          size_t body = std::stoul(in.substr(length + 16));
          if (in.size() < end + 4 + body) continue;
          in.erase(0, end + 4 + body);
          std::string out = stray ? "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nokJUNK"
                                  : "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
          if (::send(client, out.data(), out.size(), MSG_NOSIGNAL) < 0) break;
        }
        ::close(client);
      });
    }
    for (std::thread& t : served) t.join();
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<int> connections_{0};
  std::thread thread_;
};

TEST(HttpPosterTest, BytesLeftAfterAnAnswerAreNotTakenForTheNextAnswer) {
  StrayBytesPeer peer;
  ASSERT_GT(peer.port(), 0);
  {
    HttpPoster poster;
    HttpRequest request;
    request.url = "http://127.0.0.1:" + std::to_string(peer.port()) + "/hook";
    request.content_type = "text/plain";
    request.body = "hello";
    for (int i = 0; i < 2; ++i) {
      HttpResponse response = poster.Post(request);
      EXPECT_EQ(response.outcome, Delivery::kSent) << i << ": " << response.error;
      EXPECT_EQ(response.status, 201) << i;
    }
  }  // closes the poster's connection, so the peer's threads end
  EXPECT_EQ(peer.connections(), 2);
}

}  // namespace
}  // namespace itinera::connectors
