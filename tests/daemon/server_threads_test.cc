// [server] threads reaches the daemon's HTTP server: with one request thread, a client whose
// keep-alive connection is open holds it, and the next client is served only once it closes.
// The daemon's threads carry names that say what each does (top -H, ps -L, perf).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "tests/daemon/daemon_harness.h"

namespace itinera::daemon_testing {
namespace {

TEST(ServerThreadsTest, TheConfiguredThreadsBoundTheClientsServedAtOnce) {
  Daemon d;
  ConfigText config;
  config.server = "threads = 1\n";
  d.WriteConfig(config);
  ASSERT_TRUE(d.Start());

  httplib::Client held("127.0.0.1", d.port());
  held.set_keep_alive(true);
  auto first = held.Get("/healthz");
  ASSERT_TRUE(first);
  ASSERT_EQ(first->status, 200);

  // The only thread is serving `held`'s connection: another client is not answered.
  httplib::Client waiting("127.0.0.1", d.port());
  waiting.set_read_timeout(1, 0);
  EXPECT_FALSE(waiting.Get("/healthz"));

  held.stop();  // closes the connection; the thread is free again
  EXPECT_TRUE(WaitUntil([&] {
    httplib::Client next("127.0.0.1", d.port());
    next.set_read_timeout(1, 0);
    auto r = next.Get("/healthz");
    return r && r->status == 200;
  }));
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
  auto health = client.Get("/healthz");  // a request thread serves it: "api" from then on
  ASSERT_TRUE(health);
  ASSERT_EQ(health->status, 200);

  std::multiset<std::string> names;
  EXPECT_TRUE(WaitUntil([&] {
    names = ThreadNames(d.pid());
    return names.count("commit") == 1;  // started by the processor's first run
  }));
  EXPECT_EQ(names.count("api listen"), 1u);
  EXPECT_EQ(names.count("api"), 3u);
  EXPECT_EQ(names.count("processor"), 1u);
  for (const char* lane : {"lane alert", "lane email", "lane sms", "lane webhook"}) {
    EXPECT_EQ(names.count(lane), 1u) << lane;
  }
}

}  // namespace
}  // namespace itinera::daemon_testing
