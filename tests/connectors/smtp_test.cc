// Talks real SMTP to tests/connectors/smtp_server.py (Debian's aiosmtpd) on a free
// loopback port.
#include "connectors/smtp.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

#include "tests/connectors/mime_parse.h"
#include "tests/connectors/script_server.h"
#include "tests/connectors/temp_dir.h"
#include "tests/orchestrator/eventually.h"
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

// Runs the test SMTP server (tests/connectors/smtp_server.py) for the lifetime of the object. (No
// probe connection: the tests count the connections the server sees.)
class SmtpServer {
 public:
  explicit SmtpServer(const fs::path& dir, const std::string& args = "")
      : process_("smtp_server.py", dir, args) {}

  bool running() const { return process_.running(); }
  std::string url() const { return "smtp://127.0.0.1:" + std::to_string(port()); }
  int port() const { return process_.port(); }

 private:
  testing::ScriptServer process_;
};

// One connection of a ScriptedPeer: what the client sent, line by line, and what to answer.
class PeerConnection {
 public:
  explicit PeerConnection(int fd) : fd_(fd) {}
  void Say(const std::string& text) { (void)::send(fd_, text.data(), text.size(), MSG_NOSIGNAL); }
  // The next line without its CRLF; "" once the client closes or after 5 s of silence.
  std::string Line() {
    for (;;) {
      size_t eol = in_.find("\r\n");
      if (eol != std::string::npos) {
        std::string line = in_.substr(0, eol);
        in_.erase(0, eol + 2);
        return line;
      }
      if (!Receive(5000)) return "";
    }
  }
  // Reads a message up to and including its end-of-data line.
  std::string Message() {
    std::string body;
    for (std::string line = Line(); line != "."; line = Line()) {
      if (line.empty() && in_.empty() && !open_) return body;
      body += line + "\r\n";
    }
    return body;
  }
  // Reads a pipelined group: MAIL FROM, RCPT TO and DATA.
  void Group() {
    for (int i = 0; i < 3; ++i) Line();
  }
  // True if the client sends nothing more for `ms` milliseconds.
  bool Quiet(int ms) { return in_.empty() && !Receive(ms); }

 private:
  bool Receive(int ms) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, ms) <= 0) return false;
    char buffer[4096];
    ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    if (n <= 0) {
      open_ = false;
      return false;
    }
    in_.append(buffer, static_cast<size_t>(n));
    return true;
  }

  int fd_;
  std::string in_;
  bool open_ = true;
};

// A scripted SMTP server on a loopback port, for what aiosmtpd does not show: how the client
// groups its commands, and a connection closed under it. Connections are served one after
// another on a thread of the peer's own; `script` gets each and its number (1, 2, ...), and the
// connection closes when the script returns.
class ScriptedPeer {
 public:
  using Script = std::function<void(PeerConnection&, int)>;
  explicit ScriptedPeer(Script script) : script_(std::move(script)) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(listener_, 8) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~ScriptedPeer() {
    Stop();
    ::close(listener_);
  }
  ScriptedPeer(const ScriptedPeer&) = delete;
  ScriptedPeer& operator=(const ScriptedPeer&) = delete;

  // Waits for the connection being served to end and serves no more: what the script recorded
  // may be read after this.
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::string url() const { return "smtp://127.0.0.1:" + std::to_string(port_); }
  int accepted() const { return accepted_; }
  int finished() const { return finished_; }  // connections the peer has closed

 private:
  void Serve() {
    while (!stop_) {
      pollfd p{listener_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int fd = ::accept(listener_, nullptr, nullptr);
      if (fd < 0) continue;
      PeerConnection connection(fd);
      script_(connection, ++accepted_);
      ::close(fd);
      ++finished_;
    }
  }

  Script script_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::atomic<int> finished_{0};
  std::thread thread_;
};

// The peer's side of a session up to the first MAIL FROM: greeting and EHLO reply.
void Greet(PeerConnection& c, bool pipelining) {
  c.Say("220 peer ESMTP\r\n");
  c.Line();  // EHLO
  c.Say(pipelining ? "250-peer\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
                   : "250-peer\r\n250 8BITMIME\r\n");
}

// The peer's side of a pipelined transaction that goes through: the three commands, the
// message, and "250 2.0.0 Ok: queued as <id>".
void Accept(PeerConnection& c, const std::string& id) {
  c.Group();
  c.Say("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n");
  c.Message();
  c.Say("250 2.0.0 Ok: queued as " + id + "\r\n");
}

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

SmtpConfig PeerConfig(const ScriptedPeer& peer) {
  SmtpConfig config;
  config.url = peer.url();
  config.helo_domain = "motors.example";
  config.connect_timeout = std::chrono::milliseconds(2000);
  config.total_timeout = std::chrono::milliseconds(3000);
  return config;
}

TEST(SmtpPipeliningTest, SendsTheEnvelopeAsOneGroupWhenTheServerOffersPipelining) {
  std::string helo, mail, rcpt, data, body;
  // The peer answers nothing until it has all three commands: a client that waited for the
  // reply to MAIL FROM would time out.
  ScriptedPeer peer([&](PeerConnection& c, int) {
    c.Say("220 peer ESMTP\r\n");
    helo = c.Line();
    c.Say("250-peer\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
    mail = c.Line();
    rcpt = c.Line();
    data = c.Line();
    c.Say("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n");
    body = c.Message();
    c.Say("250 2.0.0 Ok: queued as P1\r\n");
    c.Line();  // QUIT
  });
  auto smtp = SmtpConnector::Create(PeerConfig(peer));
  ASSERT_TRUE(smtp.ok());
  Message m = Mail("jana@example.cz");
  m.html_body.clear();
  m.text_body = "Line one\n.hidden dot";
  Delivery d = (*smtp)->Send(m);
  EXPECT_EQ(d.outcome, Delivery::kSent) << d.error;
  EXPECT_EQ(d.provider_id, "250 2.0.0 Ok: queued as P1");
  smtp->reset();  // QUIT
  peer.Stop();
  EXPECT_EQ(helo, "EHLO motors.example");
  EXPECT_EQ(mail, "MAIL FROM:<hello@motors.example>");
  EXPECT_EQ(rcpt, "RCPT TO:<jana@example.cz>");
  EXPECT_EQ(data, "DATA");
  EXPECT_NE(body.find("\r\n..hidden dot\r\n"), std::string::npos) << body;
}

TEST(SmtpPipeliningTest, WaitsForEachReplyWhenTheServerDoesNotOfferPipelining) {
  std::vector<std::string> lines;
  bool waited = true;
  ScriptedPeer peer([&](PeerConnection& c, int) {
    Greet(c, /*pipelining=*/false);
    for (const char* reply : {"250 2.1.0 Ok\r\n", "250 2.1.5 Ok\r\n", "354 go ahead\r\n"}) {
      lines.push_back(c.Line());
      waited = waited && c.Quiet(200);  // nothing more until this command is answered
      c.Say(reply);
    }
    c.Message();
    c.Say("250 2.0.0 Ok: queued as P2\r\n");
    c.Line();
  });
  auto smtp = SmtpConnector::Create(PeerConfig(peer));
  ASSERT_TRUE(smtp.ok());
  Delivery d = (*smtp)->Send(Mail("jana@example.cz"));
  EXPECT_EQ(d.outcome, Delivery::kSent) << d.error;
  smtp->reset();
  peer.Stop();
  EXPECT_TRUE(waited);
  EXPECT_EQ(lines, (std::vector<std::string>{"MAIL FROM:<hello@motors.example>",
                                             "RCPT TO:<jana@example.cz>", "DATA"}));
}

TEST(SmtpPipeliningTest, ReopensAConnectionTheServerClosedWhileIdle) {
  ScriptedPeer peer([&](PeerConnection& c, int n) {
    Greet(c, /*pipelining=*/true);
    Accept(c, "Q" + std::to_string(n));
    if (n > 1) c.Line();  // the first connection closes, as at a server's idle timeout
  });
  auto smtp = SmtpConnector::Create(PeerConfig(peer));
  ASSERT_TRUE(smtp.ok());
  EXPECT_EQ((*smtp)->Send(Mail("jana@example.cz")).outcome, Delivery::kSent);
  ASSERT_TRUE(orch::testing::Eventually([&] { return peer.finished() == 1; }));
  Delivery d = (*smtp)->Send(Mail("jana@example.cz"));
  EXPECT_EQ(d.outcome, Delivery::kSent) << d.error;
  EXPECT_EQ(d.provider_id, "250 2.0.0 Ok: queued as Q2");
  EXPECT_EQ(peer.accepted(), 2);
}

TEST(SmtpPipeliningTest, ReopensAConnectionTheServerSaid421OnWhileIdle) {
  // Postfix and Exim say "421 ... timeout" before they close an idle connection. The first
  // peer says it at once; the second only once the next transaction has begun.
  for (bool early : {true, false}) {
    ScriptedPeer peer([&](PeerConnection& c, int n) {
      Greet(c, /*pipelining=*/true);
      Accept(c, "Q" + std::to_string(n));
      if (n > 1) {
        c.Line();
        return;
      }
      if (!early) c.Line();  // the next MAIL FROM
      c.Say("421 4.4.2 peer Error: timeout exceeded\r\n");
    });
    auto smtp = SmtpConnector::Create(PeerConfig(peer));
    ASSERT_TRUE(smtp.ok());
    EXPECT_EQ((*smtp)->Send(Mail("jana@example.cz")).outcome, Delivery::kSent);
    if (early) {
      ASSERT_TRUE(orch::testing::Eventually([&] { return peer.finished() == 1; }));
    }
    Delivery d = (*smtp)->Send(Mail("jana@example.cz"));
    EXPECT_EQ(d.outcome, Delivery::kSent) << (early ? "early: " : "late: ") << d.error;
    EXPECT_EQ(d.provider_id, "250 2.0.0 Ok: queued as Q2");
    EXPECT_EQ(peer.accepted(), 2);
  }
}

TEST(SmtpPipeliningTest, ARefusalThatIsNotTheMessagesFaultIsTransient) {
  ScriptedPeer peer([&](PeerConnection& c, int) {
    Greet(c, /*pipelining=*/true);
    for (const char* replies :
         {"530 5.7.0 Authentication required\r\n503 5.5.1 Error: need MAIL command\r\n"
          "503 5.5.1 Error: need RCPT command\r\n",
          "250 2.1.0 Ok\r\n552 5.2.2 mailbox full\r\n554 5.5.1 Error: no valid recipients\r\n"}) {
      c.Group();
      c.Say(replies);
      c.Line();  // RSET
      c.Say("250 2.0.0 Ok\r\n");
    }
    c.Line();
  });
  auto smtp = SmtpConnector::Create(PeerConfig(peer));
  ASSERT_TRUE(smtp.ok());
  Delivery sender = (*smtp)->Send(Mail("jana@example.cz"));
  EXPECT_EQ(sender.outcome, Delivery::kTransient);
  EXPECT_NE(sender.error.find("MAIL FROM refused (server: 530"), std::string::npos) << sender.error;
  Delivery full = (*smtp)->Send(Mail("jana@example.cz"));
  EXPECT_EQ(full.outcome, Delivery::kTransient);
  EXPECT_NE(full.error.find("RCPT TO refused (server: 552"), std::string::npos) << full.error;
}

TEST(SmtpPipeliningTest, AServerClosingMidTransactionIsTransientAndNotRetried) {
  ScriptedPeer peer([&](PeerConnection& c, int) {
    Greet(c, /*pipelining=*/true);
    c.Group();
    c.Say("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n");
    c.Message();  // and closes without answering the message
  });
  auto smtp = SmtpConnector::Create(PeerConfig(peer));
  ASSERT_TRUE(smtp.ok());
  Delivery d = (*smtp)->Send(Mail("jana@example.cz"));
  EXPECT_EQ(d.outcome, Delivery::kTransient);
  EXPECT_EQ(peer.accepted(), 1);  // the message may have arrived: never sent twice by itself
}

// aiosmtpd does not offer PIPELINING: refusals inside a pipelined group are the peer's to script.
TEST(SmtpPipeliningTest, ARefusedRecipientInAGroupIsPermanentAndTheConnectionIsReset) {
  std::vector<std::string> after_refusal;
  ScriptedPeer peer([&](PeerConnection& c, int) {
    Greet(c, /*pipelining=*/true);
    c.Group();
    c.Say("250 2.1.0 Ok\r\n550 5.1.1 no such user\r\n554 5.5.1 no valid recipients\r\n");
    after_refusal.push_back(c.Line());
    c.Say("250 2.0.0 Ok\r\n");
    Accept(c, "R1");
    c.Line();
  });
  auto smtp = SmtpConnector::Create(PeerConfig(peer));
  ASSERT_TRUE(smtp.ok());
  Delivery refused = (*smtp)->Send(Mail("nobody@example.cz"));
  EXPECT_EQ(refused.outcome, Delivery::kPermanent);
  EXPECT_NE(refused.error.find("RCPT TO refused (server: 550 5.1.1"), std::string::npos)
      << refused.error;
  Delivery next = (*smtp)->Send(Mail("jana@example.cz"));
  EXPECT_EQ(next.outcome, Delivery::kSent) << next.error;
  smtp->reset();
  peer.Stop();
  EXPECT_EQ(after_refusal, std::vector<std::string>{"RSET"});
  EXPECT_EQ(peer.accepted(), 1);
}

TEST(SmtpPipeliningTest, DataAcceptedAfterARefusedRecipientGetsAnEmptyMessage) {
  std::vector<std::string> after_refusal;
  ScriptedPeer peer([&](PeerConnection& c, int) {
    Greet(c, /*pipelining=*/true);
    c.Group();
    c.Say("250 2.1.0 Ok\r\n451 4.3.0 try again later\r\n354 go ahead\r\n");
    after_refusal.push_back(c.Line());
    c.Say("554 5.5.1 no valid recipients\r\n");
    after_refusal.push_back(c.Line());
    c.Say("250 2.0.0 Ok\r\n");
    c.Line();
  });
  auto smtp = SmtpConnector::Create(PeerConfig(peer));
  ASSERT_TRUE(smtp.ok());
  Delivery d = (*smtp)->Send(Mail("jana@example.cz"));
  EXPECT_EQ(d.outcome, Delivery::kTransient);
  EXPECT_NE(d.error.find("451 4.3.0"), std::string::npos) << d.error;
  smtp->reset();
  peer.Stop();
  EXPECT_EQ(after_refusal, (std::vector<std::string>{".", "RSET"}));
}

TEST(SmtpPipeliningTest, A421ClosesTheConnectionAndTheNextMessageOpensAnother) {
  ScriptedPeer peer([&](PeerConnection& c, int n) {
    Greet(c, /*pipelining=*/true);
    if (n == 1) {
      c.Group();
      c.Say("421 4.3.2 shutting down\r\n");
      return;
    }
    Accept(c, "S2");
    c.Line();
  });
  auto smtp = SmtpConnector::Create(PeerConfig(peer));
  ASSERT_TRUE(smtp.ok());
  Delivery first = (*smtp)->Send(Mail("jana@example.cz"));
  EXPECT_EQ(first.outcome, Delivery::kTransient);
  EXPECT_NE(first.error.find("421 4.3.2"), std::string::npos) << first.error;
  Delivery second = (*smtp)->Send(Mail("jana@example.cz"));
  EXPECT_EQ(second.outcome, Delivery::kSent) << second.error;
  EXPECT_EQ(peer.accepted(), 2);
}

// TLS against aiosmtpd with a certificate it makes for "localhost" (tests/connectors/
// smtp_server.py --tls).
class SmtpTlsTest : public ::testing::Test {
 protected:
  void Start(const std::string& mode) {
    server_ = std::make_unique<SmtpServer>(dir_.path(), "--tls " + mode);
    ASSERT_TRUE(server_->running()) << "the aiosmtpd test server did not start with TLS";
  }
  SmtpConfig Config(const std::string& scheme, const std::string& host) {
    SmtpConfig config;
    config.url = scheme + "://" + host + ":" + std::to_string(server_->port());
    config.ca_file = (dir_.path() / "cert.pem").string();
    config.connect_timeout = std::chrono::milliseconds(2000);
    config.total_timeout = std::chrono::milliseconds(10000);
    return config;
  }
  testing::TempDir dir_;
  std::unique_ptr<SmtpServer> server_;
};

TEST_F(SmtpTlsTest, DeliversAfterStartTls) {
  Start("starttls");  // the server refuses MAIL before STARTTLS
  SmtpConfig config = Config("smtp", "localhost");
  config.url += "?starttls=1";
  auto smtp = SmtpConnector::Create(config);
  ASSERT_TRUE(smtp.ok()) << smtp.error().message;
  for (int i = 0; i < 2; ++i) {  // and keeps the TLS connection for the next message
    Delivery d = (*smtp)->Send(Mail("jana@example.cz"));
    EXPECT_EQ(d.outcome, Delivery::kSent) << d.error;
  }
  EXPECT_TRUE(fs::exists(dir_.path() / "2.eml"));
  EXPECT_EQ(ReadFile(dir_.path() / "connections"), "1");
}

TEST_F(SmtpTlsTest, DeliversOverImplicitTls) {
  Start("implicit");
  auto smtp = SmtpConnector::Create(Config("smtps", "localhost"));
  ASSERT_TRUE(smtp.ok()) << smtp.error().message;
  Delivery d = (*smtp)->Send(Mail("jana@example.cz"));
  EXPECT_EQ(d.outcome, Delivery::kSent) << d.error;
  EXPECT_TRUE(fs::exists(dir_.path() / "1.eml"));
}

TEST_F(SmtpTlsTest, RefusesACertificateThatIsNotTrustedOrNotForTheHost) {
  Start("implicit");
  SmtpConfig untrusted = Config("smtps", "localhost");
  untrusted.ca_file.clear();  // the system's store does not know the test certificate
  SmtpConfig other_name = Config("smtps", "127.0.0.1");  // the certificate names localhost only
  for (const SmtpConfig& config : {untrusted, other_name}) {
    auto smtp = SmtpConnector::Create(config);
    ASSERT_TRUE(smtp.ok()) << smtp.error().message;
    Delivery d = (*smtp)->Send(Mail("jana@example.cz"));
    EXPECT_EQ(d.outcome, Delivery::kTransient) << config.url;
    EXPECT_NE(d.error.find("not trusted"), std::string::npos) << d.error;
  }
  SmtpConfig unchecked = other_name;
  unchecked.verify_peer = false;
  auto smtp = SmtpConnector::Create(unchecked);
  ASSERT_TRUE(smtp.ok());
  EXPECT_EQ((*smtp)->Send(Mail("jana@example.cz")).outcome, Delivery::kSent);
  EXPECT_TRUE(fs::exists(dir_.path() / "1.eml"));
}

TEST_F(SmtpTest, StartTlsRequiredButNotOfferedIsTransientAndSendsNothing) {
  SmtpConfig config;
  config.url = server_->url() + "?starttls=1";
  auto smtp = SmtpConnector::Create(config);
  ASSERT_TRUE(smtp.ok());
  Delivery d = (*smtp)->Send(Mail("jana@example.cz"));
  EXPECT_EQ(d.outcome, Delivery::kTransient);
  EXPECT_NE(d.error.find("STARTTLS"), std::string::npos) << d.error;
  EXPECT_FALSE(fs::exists(dir_.path() / "1.eml"));
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
  EXPECT_EQ(n->url, "smtps://mail.example:465");
  EXPECT_EQ(n->helo_domain, "motors.example");
  EXPECT_FALSE(n->starttls);

  c.url = "smtp://[::1]:2525/";
  n = NormalizeSmtpConfig(c);
  ASSERT_TRUE(n.ok()) << n.error().message;
  EXPECT_EQ(n->url, "smtp://[::1]:2525");

  for (const char* bad : {"http://mail.example", "smtp://", "smtp://user:pw@mail.example",
                          "smtp://mail.example?tls=yes", "smtps://mail.example?starttls=1",
                          "smtp://mail.example:0", "smtp://mail.example:99999",
                          "smtp://mail.example:25x", "smtp://[::1", "smtp://mail.example/helo"}) {
    c.url = bad;
    EXPECT_FALSE(NormalizeSmtpConfig(c).ok()) << bad;
  }
}

}  // namespace
}  // namespace itinera::connectors
