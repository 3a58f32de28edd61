// Talks real SMTP to tests/connectors/smtp_server.py (Debian's aiosmtpd) on a free
// loopback port.
#include "connectors/smtp.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/connectors/mime_parse.h"
#include "tests/connectors/temp_dir.h"
#include "util/time.h"

namespace itinera::connectors {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs the test SMTP server for the lifetime of the object.
class SmtpServer {
 public:
  explicit SmtpServer(const fs::path& dir, const std::string& auth_args = "") {
    std::string command = "exec /usr/bin/python3 " ITINERA_SOURCE_DIR
                          "/tests/connectors/smtp_server.py --dir '" +
                          dir.string() + "' " + auth_args;
    pipe_ = ::popen(command.c_str(), "r");
    if (pipe_ == nullptr) return;
    char line[128] = {};
    if (std::fgets(line, sizeof line, pipe_) == nullptr) return;
    // The server prints its port only once it is listening, so it accepts from here on. (No
    // probe connection: the tests count the connections the server sees.)
    if (std::sscanf(line, "PORT %d PID %d", &port_, &pid_) != 2) return;
  }
  ~SmtpServer() {
    if (pid_ > 0) ::kill(pid_, SIGTERM);
    if (pipe_ != nullptr) ::pclose(pipe_);
  }
  SmtpServer(const SmtpServer&) = delete;
  SmtpServer& operator=(const SmtpServer&) = delete;

  bool running() const { return pid_ > 0 && port_ > 0; }
  std::string url() const { return "smtp://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }

 private:
  FILE* pipe_ = nullptr;
  int port_ = 0;
  int pid_ = 0;
};

Message Mail(std::string to) {
  Message m;
  m.id = "journey/1/cust-9/e1/s2/email";
  m.from = "Itinera Motors <hello@motors.example>";
  m.to = "Jana Nováková <" + to + ">";
  m.subject = "Váš testovací jízda";
  m.html_body = "<p>Dobrý den,</p><p><a href=\"https://motors.example/b\">Rezervovat</a></p>";
  m.text_body = "";
  m.date = *ParseTime("2026-11-22T10:00:00Z");
  m.list_unsubscribe_url = "https://motors.example/u/1";
  m.list_unsubscribe_one_click = true;
  return m;
}

std::unique_ptr<SmtpConnector> Connect(const SmtpServer& server, std::string user = "",
                                       std::string password = "") {
  SmtpConfig config;
  config.url = server.url();
  config.username = std::move(user);
  config.password = std::move(password);
  config.connect_timeout = std::chrono::milliseconds(2000);
  config.total_timeout = std::chrono::milliseconds(10000);
  auto connector = SmtpConnector::Create(config);
  EXPECT_TRUE(connector.ok()) << connector.error().message;
  return connector.ok() ? std::move(*connector) : nullptr;
}

class SmtpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<SmtpServer>(dir_.path());
    if (!server_->running())
      FAIL() << "the aiosmtpd test server did not start (apt-get install python3-aiosmtpd)";
  }
  testing::TempDir dir_;
  std::unique_ptr<SmtpServer> server_;
};

TEST_F(SmtpTest, DeliversEnvelopeAndMime) {
  auto smtp = Connect(*server_);
  Delivery d = smtp->Send(Mail("jana@example.cz"));
  ASSERT_EQ(d.outcome, Delivery::kSent) << d.error;
  EXPECT_EQ(d.provider_id, "250 2.0.0 Ok: queued as TEST1");
  EXPECT_EQ(ReadFile(dir_.path() / "1.envelope"), "<hello@motors.example>\n<jana@example.cz>\n");

  auto msg = testing::ParseEntity(ReadFile(dir_.path() / "1.eml"));
  EXPECT_EQ(msg.Header("Message-ID"), "<journey%2F1%2Fcust-9%2Fe1%2Fs2%2Femail@motors.example>");
  EXPECT_EQ(testing::DecodeWords(msg.Header("Subject")), "Váš testovací jízda");
  EXPECT_EQ(msg.Header("List-Unsubscribe-Post"), "List-Unsubscribe=One-Click");
  auto parts = testing::SplitMultipart(msg.body, testing::BoundaryOf(msg.Header("Content-Type")));
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(testing::DecodedBody(testing::ParseEntity(parts[0])),
            "Dobrý den,\r\n\r\nRezervovat (https://motors.example/b)");
  EXPECT_EQ(testing::ParseEntity(parts[1]).Header("Content-Type"), "text/html; charset=utf-8");
}

TEST_F(SmtpTest, DotStuffingRoundTrips) {
  auto smtp = Connect(*server_);
  Message m = Mail("jana@example.cz");
  m.html_body.clear();
  m.text_body = ".\n..leading dots\n.";
  ASSERT_EQ(smtp->Send(m).outcome, Delivery::kSent);
  auto msg = testing::ParseEntity(ReadFile(dir_.path() / "1.eml"));
  EXPECT_EQ(testing::DecodedBody(msg), ".\r\n..leading dots\r\n.\r\n");
}

TEST_F(SmtpTest, ReusesOneConnection) {
  auto smtp = Connect(*server_);
  for (int i = 0; i < 3; ++i) {
    Message m = Mail("jana@example.cz");
    m.id += std::to_string(i);
    ASSERT_EQ(smtp->Send(m).outcome, Delivery::kSent);
  }
  EXPECT_EQ(ReadFile(dir_.path() / "connections"), "1");
  EXPECT_TRUE(fs::exists(dir_.path() / "3.eml"));
}

TEST_F(SmtpTest, MapsRepliesToOutcomes) {
  auto smtp = Connect(*server_);
  struct Case {
    const char* rcpt;
    Delivery::Outcome outcome;
    const char* reply;
  };
  const Case cases[] = {
      {"reject550@example.cz", Delivery::kPermanent, "550 5.1.1"},
      {"defer451@example.cz", Delivery::kTransient, "451 4.3.0"},
      {"data554@example.cz", Delivery::kPermanent, "554 5.6.0"},
      {"data452@example.cz", Delivery::kTransient, "452 4.3.1"},
  };
  for (const Case& c : cases) {
    Delivery d = smtp->Send(Mail(c.rcpt));
    EXPECT_EQ(d.outcome, c.outcome) << c.rcpt << ": " << d.error;
    EXPECT_NE(d.error.find(c.reply), std::string::npos) << d.error;
  }
  // A failure leaves the connector usable.
  Delivery ok = smtp->Send(Mail("jana@example.cz"));
  EXPECT_EQ(ok.outcome, Delivery::kSent) << ok.error;
  EXPECT_TRUE(fs::exists(dir_.path() / "1.eml"));
}

TEST_F(SmtpTest, UnrenderableMessageIsPermanentAndNotSent) {
  auto smtp = Connect(*server_);
  Message m = Mail("jana@example.cz");
  m.subject = "Hi\r\nBcc: victim@example.com";
  Delivery d = smtp->Send(m);
  EXPECT_EQ(d.outcome, Delivery::kPermanent);
  EXPECT_FALSE(fs::exists(dir_.path() / "connections"));
}

TEST(SmtpAuthTest, AuthenticatesAndNeverReportsThePassword) {
  testing::TempDir dir;
  SmtpServer server(dir.path(), "--user itinera --password 's3cr3t-pw'");
  if (!server.running())
    FAIL() << "the aiosmtpd test server did not start (apt-get install python3-aiosmtpd)";
  auto good = Connect(server, "itinera", "s3cr3t-pw");
  Delivery d = good->Send(Mail("jana@example.cz"));
  EXPECT_EQ(d.outcome, Delivery::kSent) << d.error;

  auto bad = Connect(server, "itinera", "wrong-pw");
  Delivery denied = bad->Send(Mail("jana@example.cz"));
  EXPECT_EQ(denied.outcome, Delivery::kTransient) << denied.error;
  EXPECT_EQ(denied.error.find("wrong-pw"), std::string::npos);
  EXPECT_NE(denied.error.find("535"), std::string::npos) << denied.error;
}

TEST(SmtpConnectTest, RefusedConnectionIsTransient) {
  int port;
  {
    testing::TempDir dir;
    SmtpServer server(dir.path());
    if (!server.running())
      FAIL() << "the aiosmtpd test server did not start (apt-get install python3-aiosmtpd)";
    port = server.port();
  }
  SmtpConfig config;
  config.url = "smtp://127.0.0.1:" + std::to_string(port);
  config.connect_timeout = std::chrono::milliseconds(1000);
  auto smtp = SmtpConnector::Create(config);
  ASSERT_TRUE(smtp.ok());
  Delivery d = (*smtp)->Send(Mail("jana@example.cz"));
  EXPECT_EQ(d.outcome, Delivery::kTransient) << d.error;
}

TEST(SmtpConfigTest, NormalizesUrls) {
  SmtpConfig c;
  c.url = "smtp://mail.example:587?starttls=1";
  Result<SmtpConfig> n = NormalizeSmtpConfig(c);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->url, "smtp://mail.example:587");
  EXPECT_TRUE(n->starttls);

  c.url = "smtps://mail.example:465";
  c.helo_domain = "motors.example";
  n = NormalizeSmtpConfig(c);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->url, "smtps://mail.example:465/motors.example");
  EXPECT_FALSE(n->starttls);

  for (const char* bad : {"http://mail.example", "smtp://", "smtp://user:pw@mail.example",
                          "smtp://mail.example?tls=yes", "smtps://mail.example?starttls=1"}) {
    c.url = bad;
    EXPECT_FALSE(NormalizeSmtpConfig(c).ok()) << bad;
  }
}

}  // namespace
}  // namespace itinera::connectors
