// Talks HTTPS to tests/connectors/https_server.py (Python's http.server behind ssl, with a
// self-signed certificate for "localhost") on a free loopback port: HttpPoster's (connectors/
// http_post.h) certificate and host-name checks, connection reuse over TLS, and error texts.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "connectors/http_post.h"
#include "tests/connectors/http_sink.h"
#include "tests/connectors/script_server.h"
#include "tests/connectors/temp_dir.h"

namespace itinera::connectors {
namespace {

namespace fs = std::filesystem;

constexpr char kUser[] = "AC123";
constexpr char kPassword[] = "pw-SECRET-42";
constexpr char kBasicAuth[] = "Basic QUMxMjM6cHctU0VDUkVULTQy";  // base64("AC123:pw-SECRET-42")
constexpr char kSecretPath[] = "/hooks/SECRETPATH?token=SECRETQUERY";

// One request as the server saw it.
struct SeenRequest {
  std::string path;
  std::map<std::string, std::string> headers;  // lower-case names, first value
  std::string body;
  int remote_port = 0;  // the client's port: equal ports mean a reused connection

  std::string Header(const std::string& lower_case_name) const {
    auto it = headers.find(lower_case_name);
    return it == headers.end() ? "" : it->second;
  }
};

// Runs the test HTTPS server for the lifetime of the object. It writes its certificate (the CA
// to trust) and its record of requests into `dir`, which must outlive it.
class HttpsServer {
 public:
  explicit HttpsServer(const fs::path& dir) : dir_(dir), process_("https_server.py", dir) {}

  bool running() const { return process_.running(); }
  std::string Url(const std::string& host, const std::string& path) const {
    return "https://" + host + ":" + std::to_string(process_.port()) + path;
  }
  std::string ca_file() const { return (dir_ / "cert.pem").string(); }

  // Every request recorded so far. The server records a request before it answers it.
  std::vector<SeenRequest> requests() const {
    std::vector<SeenRequest> seen;
    std::ifstream in(dir_ / "requests.jsonl");
    for (std::string line; std::getline(in, line);) {
      nlohmann::json j = nlohmann::json::parse(line);
      SeenRequest r;
      r.path = j.at("path").get<std::string>();
      r.headers = j.at("headers").get<std::map<std::string, std::string>>();
      r.body = j.at("body").get<std::string>();
      r.remote_port = j.at("remote_port").get<int>();
      seen.push_back(std::move(r));
    }
    return seen;
  }

 private:
  fs::path dir_;
  testing::ScriptServer process_;
};

class HttpTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<HttpsServer>(dir_.path());
    ASSERT_TRUE(server_->running()) << "tests/connectors/https_server.py did not start";
  }

  // Trusts the server's certificate; short timeouts, since everything is on loopback.
  HttpOptions Trusting() const {
    HttpOptions options;
    options.connect_timeout = std::chrono::milliseconds(2000);
    options.total_timeout = std::chrono::milliseconds(5000);
    options.ca_file = server_->ca_file();
    return options;
  }

  HttpRequest Json(const std::string& host, const std::string& path, std::string body) const {
    HttpRequest request;
    request.url = server_->Url(host, path);
    request.content_type = "application/json";
    request.body = std::move(body);
    request.headers = {{"Idempotency-Key", "msg-1"}};
    request.username = kUser;
    request.password = kPassword;
    return request;
  }

  testing::TempDir dir_;  // declared first: outlives the server writing into it
  std::unique_ptr<HttpsServer> server_;
};

TEST_F(HttpTlsTest, PostsOverHttpsToAServerTheCaFileVouchesFor) {
  HttpPoster poster(Trusting());
  HttpResponse r = poster.Post(Json("localhost", "/hooks/a", R"({"text":"Dobrý den"})"));
  EXPECT_EQ(r.outcome, Delivery::kSent) << r.error;
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.body, R"({"sid":"SM1"})");
  EXPECT_EQ(r.error, "");

  std::vector<SeenRequest> seen = server_->requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].path, "/hooks/a");
  EXPECT_EQ(seen[0].body, R"({"text":"Dobrý den"})");
  EXPECT_EQ(seen[0].Header("content-type"), "application/json");
  EXPECT_EQ(seen[0].Header("authorization"), kBasicAuth);
  EXPECT_EQ(seen[0].Header("idempotency-key"), "msg-1");
}

TEST_F(HttpTlsTest, ConsecutivePostsReuseOneTlsConnection) {
  HttpPoster poster(Trusting());
  for (const char* body : {"1", "2"}) {
    HttpResponse r = poster.Post(Json("localhost", "/hooks/a", body));
    EXPECT_EQ(r.outcome, Delivery::kSent) << r.error;
  }
  HttpPoster other(Trusting());  // a connection of its own: shows the ports tell them apart
  EXPECT_EQ(other.Post(Json("localhost", "/hooks/a", "3")).outcome, Delivery::kSent);

  std::vector<SeenRequest> seen = server_->requests();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].body, "1");
  EXPECT_EQ(seen[1].body, "2");
  EXPECT_EQ(seen[0].remote_port, seen[1].remote_port);
  EXPECT_NE(seen[2].remote_port, seen[0].remote_port);
}

TEST_F(HttpTlsTest, AnUntrustedCertificateIsTransientAndSendsNothing) {
  HttpOptions system_store = Trusting();
  system_store.ca_file.clear();  // the system's trust store does not know the test certificate
  HttpPoster untrusting(system_store);
  HttpResponse r = untrusting.Post(Json("localhost", "/hooks/a", "untrusted"));
  EXPECT_EQ(r.outcome, Delivery::kTransient);
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.error, "");

  // The server is up and records what reaches it: only the trusting poster's request does.
  HttpPoster trusting(Trusting());
  EXPECT_EQ(trusting.Post(Json("localhost", "/hooks/a", "trusted")).outcome, Delivery::kSent);
  std::vector<SeenRequest> seen = server_->requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].body, "trusted");
}

TEST_F(HttpTlsTest, ChecksTheHostNameAgainstTheCertificate) {
  HttpPoster poster(Trusting());
  // The certificate names the DNS name "localhost" only, not the address 127.0.0.1.
  HttpResponse by_address = poster.Post(Json("127.0.0.1", "/hooks/by-address", "address"));
  EXPECT_EQ(by_address.outcome, Delivery::kTransient);
  EXPECT_EQ(by_address.status, 0);
  EXPECT_NE(by_address.error, "");

  HttpResponse by_name = poster.Post(Json("localhost", "/hooks/by-name", "name"));
  EXPECT_EQ(by_name.outcome, Delivery::kSent) << by_name.error;
  EXPECT_EQ(by_name.status, 201);

  std::vector<SeenRequest> seen = server_->requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].path, "/hooks/by-name");
}

TEST_F(HttpTlsTest, ErrorsNameNeitherThePasswordNorThePath) {
  struct Case {
    const char* name;
    HttpOptions options;
    std::string host;
    int port;  // 0: the server's
    std::vector<std::pair<std::string, std::string>> headers;
  };
  HttpOptions system_store = Trusting();
  system_store.ca_file.clear();
  HttpOptions missing_ca = Trusting();
  missing_ca.ca_file = (dir_.path() / "missing.pem").string();
  const Case cases[] = {
      {"untrusted certificate", system_store, "localhost", 0, {}},
      {"certificate for another name", Trusting(), "127.0.0.1", 0, {}},
      {"unreadable CA file", missing_ca, "localhost", 0, {}},
      {"connection refused", Trusting(), "127.0.0.1", testing::UnusedLoopbackPort(), {}},
      {"503 answer", Trusting(), "localhost", 0, {{"X-Reply-Status", "503"}}},
  };
  for (const Case& c : cases) {
    HttpPoster poster(c.options);
    HttpRequest request = Json(c.host, kSecretPath, "{}");
    if (c.port != 0) {
      request.url = "https://" + c.host + ":" + std::to_string(c.port) + kSecretPath;
    }
    request.headers.insert(request.headers.end(), c.headers.begin(), c.headers.end());
    HttpResponse r = poster.Post(request);
    EXPECT_EQ(r.outcome, Delivery::kTransient) << c.name;
    EXPECT_NE(r.error, "") << c.name;
    for (const char* secret : {"SECRETPATH", "SECRETQUERY", kPassword, kBasicAuth + 6}) {
      EXPECT_TRUE(r.error.find(secret) == std::string::npos)
          << c.name << ": the error quotes " << secret << ": " << r.error;
    }
  }
  // Only the 503 answer came from a request that reached the server.
  std::vector<SeenRequest> seen = server_->requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].Header("x-reply-status"), "503");
}

}  // namespace
}  // namespace itinera::connectors
