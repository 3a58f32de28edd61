// [server] threads reaches the daemon's HTTP server: with one request thread, a client whose
// keep-alive connection is open holds it, and the next client is served only once it closes.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace itinera::daemon_testing
