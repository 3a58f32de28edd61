#include "orchestrator/config.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "orchestrator/daemon.h"

namespace itinera::orch {
namespace {

TEST(ConfigTest, EmptyFileGivesWorkingDefaults) {
  auto c = ParseConfig("", "itinera.toml", ".");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->server.listen, "127.0.0.1:8080");
  EXPECT_EQ(c->store.url, "sqlite:var/itinera.db");
  EXPECT_EQ(c->paths.journeys, "journeys");
  EXPECT_EQ(c->email.connector, "maildir");
  EXPECT_EQ(c->sms.connector, "file");
  EXPECT_TRUE(c->server.api_tokens.empty());
  EXPECT_EQ(c->server.max_body_bytes, 1 << 20);
}

TEST(ConfigTest, ReadsTeamsRepsAndWebhooks) {
  auto c = ParseConfig(R"(
[[teams.prague_sales]]
id = "rep_anna"
name = "Anna Novak"
email = "anna@dealer.example"
alert_via = "slack"
slack_webhook = "http://127.0.0.1:9002/hooks/anna"
territory = "prague"
[[teams.prague_sales]]
id = "rep_petr"
alert_via = "sms"
phone = "+420600000002"
[webhooks.crm_task]
url = "http://127.0.0.1:9001/tasks"
secret = "s3cret"
)",
                       "itinera.toml", ".");
  ASSERT_TRUE(c.ok()) << c.error().message;
  const auto& team = c->directory.teams.at("prague_sales");
  ASSERT_EQ(team.size(), 2u);
  EXPECT_EQ(team[0].id, "rep_anna");
  EXPECT_EQ(team[0].territory, "prague");
  EXPECT_EQ(team[0].team, "prague_sales");
  EXPECT_EQ(team[1].name, "rep_petr");  // a rep without a name is called by id
  EXPECT_EQ(c->directory.webhooks.at("crm_task").secret, "s3cret");
  ASSERT_NE(c->directory.FindRep("rep_petr"), nullptr);
  EXPECT_EQ(c->directory.FindRep("nobody"), nullptr);
}

TEST(ConfigTest, EnvValuesAreReadFromTheEnvironment) {
  setenv("ITINERA_TEST_TOKEN", "t0ken", 1);
  unsetenv("ITINERA_TEST_MISSING");
  auto c = ParseConfig(R"(
[server]
api_tokens = ["env:ITINERA_TEST_TOKEN", "env:ITINERA_TEST_MISSING"]
tracking_secret = "env:ITINERA_TEST_TOKEN"
)",
                       "itinera.toml", ".");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->server.api_tokens, std::vector<std::string>{"t0ken"});
  EXPECT_EQ(c->server.tracking_secret, "t0ken");
}

TEST(ConfigTest, ReadsThePostgresStoreAndTheCluster) {
  auto c = ParseConfig(R"(
[store]
url = "postgresql://itinera@db.internal:5432/itinera"
pool = 16
[cluster]
node = "web-1"
lease = "20s"
)",
                       "itinera.toml", ".");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->store.url, "postgresql://itinera@db.internal:5432/itinera");
  EXPECT_EQ(c->store.pool, 16);
  EXPECT_EQ(c->cluster.node, "web-1");
  EXPECT_EQ(c->cluster.lease, "20s");
  auto defaults = ParseConfig("", "itinera.toml", ".");
  EXPECT_EQ(defaults->store.pool, 8);
  EXPECT_EQ(defaults->cluster.lease, "15s");
  EXPECT_TRUE(defaults->cluster.node.empty());

  auto pool = ParseConfig("[store]\npool = 0\n", "itinera.toml", ".");
  ASSERT_FALSE(pool.ok());
  EXPECT_EQ(pool.error().message, "itinera.toml: [store] pool must be between 1 and 200");
  auto lease = ParseConfig("[cluster]\nlease = \"1s\"\n", "itinera.toml", ".");
  ASSERT_FALSE(lease.ok());
  EXPECT_EQ(lease.error().message,
            "itinera.toml: [cluster] lease must be a duration of at least \"2s\", not \"1s\"");
}

TEST(ConfigTest, ReadsTheDeliveryConnections) {
  auto defaults = ParseConfig("", "itinera.toml", ".");
  ASSERT_TRUE(defaults.ok()) << defaults.error().message;
  EXPECT_EQ(defaults->delivery.connections, 4);
  auto c = ParseConfig("[delivery]\nconnections = 20\n", "itinera.toml", ".");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->delivery.connections, 20);
  for (const char* bad : {"0", "65", "-1"}) {
    auto r =
        ParseConfig(std::string("[delivery]\nconnections = ") + bad + "\n", "itinera.toml", ".");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().message, "itinera.toml: [delivery] connections must be between 1 and 64");
  }
  auto text = ParseConfig("[delivery]\nconnections = \"4\"\n", "itinera.toml", ".");
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.error().message, "itinera.toml:2: [delivery] connections must be a whole number");
}

TEST(ConfigTest, ReadsTheServerThreads) {
  auto defaults = ParseConfig("", "itinera.toml", ".");
  ASSERT_TRUE(defaults.ok()) << defaults.error().message;
  EXPECT_EQ(defaults->server.threads, 64);
  auto c = ParseConfig("[server]\nthreads = 200\n", "itinera.toml", ".");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->server.threads, 200);
  for (const char* bad : {"0", "1025", "-3"}) {
    auto r = ParseConfig(std::string("[server]\nthreads = ") + bad + "\n", "itinera.toml", ".");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().message, "itinera.toml: [server] threads must be between 1 and 1024");
  }
}

TEST(ConfigTest, StoreUrlsAreLoggedWithoutPasswords) {
  EXPECT_EQ(RedactUrl("postgresql://itinera:s3cret@db:5432/itinera"),
            "postgresql://itinera:***@db:5432/itinera");
  EXPECT_EQ(RedactUrl("postgresql://itinera@db/itinera?password=s3cret&sslmode=require"),
            "postgresql://itinera@db/itinera?password=***&sslmode=require");
  EXPECT_EQ(RedactUrl("postgresql://db/x?sslmode=require&password=s3cret"),
            "postgresql://db/x?sslmode=require&password=***");
  EXPECT_EQ(RedactUrl("postgresql://itinera@db/itinera"), "postgresql://itinera@db/itinera");
  EXPECT_EQ(RedactUrl("sqlite:var/itinera.db"), "sqlite:var/itinera.db");
}

TEST(ConfigTest, UnknownKeyIsAnErrorWithSuggestion) {
  auto c = ParseConfig("[email]\nsmpt_url = \"smtp://x\"\n", "itinera.toml", ".");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message,
            "itinera.toml:2: [email] smpt_url is not a known key; did you mean \"smtp_url\"?");
}

TEST(ConfigTest, UnknownSectionIsAnError) {
  auto c = ParseConfig("[emial]\nfrom = \"x\"\n", "itinera.toml", ".");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message, "itinera.toml:1: unknown section [emial]; did you mean \"email\"?");
}

TEST(ConfigTest, WrongTypeIsAnError) {
  auto c = ParseConfig("[server]\nlisten = 8080\n", "itinera.toml", ".");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message, "itinera.toml:2: [server] listen must be a string in double quotes");
}

TEST(ConfigTest, MalformedTomlIsAnErrorWithPosition) {
  auto c = ParseConfig("[server\nlisten = \"x\"\n", "itinera.toml", ".");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message.rfind("itinera.toml:1:", 0), 0u) << c.error().message;
}

TEST(ConfigTest, BadAlertChannelIsAnError) {
  auto c = ParseConfig("[[teams.t]]\nid = \"r\"\nalert_via = \"pigeon\"\n", "itinera.toml", ".");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("alert_via must be slack, email, sms or webhook"),
            std::string::npos);
}

TEST(ConfigTest, DuplicateRepIdIsAnError) {
  auto c = ParseConfig("[[teams.a]]\nid = \"r\"\n[[teams.b]]\nid = \"r\"\n", "itinera.toml", ".");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message,
            "itinera.toml: rep id r appears twice (in team a and in team b): give each rep one id");
}

TEST(ConfigTest, RelativePathsResolveAgainstTheConfigFolder) {
  auto c =
      ParseConfig("[paths]\ntemplates = \"tpl\"\n", "/etc/itinera/itinera.toml", "/etc/itinera");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->Resolve(c->paths.templates), "/etc/itinera/tpl");
  EXPECT_EQ(c->Resolve("/abs/x"), "/abs/x");
}

}  // namespace
}  // namespace itinera::orch
