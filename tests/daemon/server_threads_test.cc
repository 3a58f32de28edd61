// [server] threads reaches the daemon's HTTP server, whose connections do not hold its threads.
// The daemon's threads carry names that say what each does (top -H, ps -L, perf).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "tests/daemon/daemon_harness.h"

namespace itinera::daemon_testing {
namespace {

// `threads` bounds the requests that wait on the store at once, not the connections: a client
// that keeps its connection open does not stop the next one from being served.
TEST(ServerThreadsTest, AnOpenConnectionDoesNotHoldTheOnlyThread) {
  Daemon d;
  ConfigText config;
  config.server = "threads = 1\n";
  d.WriteConfig(config);
  ASSERT_TRUE(d.Start());

  httplib::Client held("127.0.0.1", d.port());
  held.set_keep_alive(true);
  auto first = held.Get("/v1/journeys");
  ASSERT_TRUE(first);
  ASSERT_EQ(first->status, 200);

  for (int i = 0; i < 3; ++i) {
    httplib::Client other("127.0.0.1", d.port());
    other.set_read_timeout(1, 0);
    auto r = other.Get("/v1/journeys");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    auto event =
        other.Post("/v1/events", R"({"customer_id": "c-1", "type": "t"})", "application/json");
    ASSERT_TRUE(event);
    EXPECT_EQ(event->status, 202);
  }
  auto again = held.Get("/v1/journeys");  // the held connection is still served
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200);
}

// The names of a running process's threads, from /proc.
std::multiset<std::string> ThreadNames(pid_t pid) {
  std::multiset<std::string> names;
  std::error_code ec;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    if (std::getline(comm, name)) names.insert(name);
  }
  return names;
}

TEST(ServerThreadsTest, EachOfTheDaemonsThreadsIsNamedForWhatItDoes) {
  Daemon d;
  ConfigText config;
  config.server = "threads = 3\n";
  d.WriteConfig(config);
  ASSERT_TRUE(d.Start());
  httplib::Client client("127.0.0.1", d.port());
  auto health = client.Get("/healthz");
  ASSERT_TRUE(health);
  ASSERT_EQ(health->status, 200);

  std::multiset<std::string> names;
  EXPECT_TRUE(WaitUntil([&] {
    names = ThreadNames(d.pid());
    return names.count("commit") == 1;  // started by the processor's first run
  }));
  EXPECT_EQ(names.count("api"), 1u);  // the event loop
  EXPECT_EQ(names.count("api work"), 3u);
  EXPECT_EQ(names.count("processor"), 1u);
  for (const char* lane : {"lane alert", "lane email", "lane sms", "lane webhook"}) {
    EXPECT_EQ(names.count(lane), 1u) << lane;
  }
}

}  // namespace
}  // namespace itinera::daemon_testing
