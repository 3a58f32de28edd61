// Bad input through the real daemon: every mistake a client can make gets a 4xx with
// {"error": {"code", "message"}}, and the daemon stays healthy.
#include <gtest/gtest.h>

#include <string>

#include "tests/daemon/daemon_harness.h"

namespace itinera::daemon_testing {
namespace {

constexpr char kToken[] = "t0ken-for-daemon-tests";

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ConfigText config;
    config.server = std::string("api_tokens = [\"") + kToken + "\"]\nmax_body_bytes = 4096\n";
    d_.WriteConfig(config);
    d_.WriteJourney("hello", R"(journey hello "Hello" {
  enter when event "signup"
  step greet {
    send email "hello"
    exit "done"
  }
}
)");
    d_.WriteJourney("vip", R"(journey vip "VIP welcome" {
  enter when customer customer.vip == true
  re_enter always
  step greet {
    send email "hello"
    exit "done"
  }
}
)");
    d_.WriteTemplate("hello.email.mustache", "---\nsubject: Hello\n---\n<p>Hello</p>\n");
    d_.SetToken(kToken);
    ASSERT_TRUE(d_.Start());
  }

  // Checks that `r` is the error `status`/`code` in the documented shape.
  static void ExpectError(const Reply& r, int status, const std::string& code,
                          const std::string& what) {
    EXPECT_EQ(r.status, status) << what << ": " << r.body;
    ASSERT_TRUE(r.doc.is_object()) << what << ": not JSON: " << r.body;
    ASSERT_TRUE(r.doc.contains("error") && r.doc["error"].is_object()) << what << ": " << r.body;
    EXPECT_EQ(r.ErrorCode(), code) << what << ": " << r.body;
    ASSERT_TRUE(r.doc["error"].contains("message")) << what;
    EXPECT_TRUE(r.doc["error"]["message"].is_string()) << what;
    EXPECT_FALSE(r.doc["error"]["message"].get<std::string>().empty()) << what;
  }

  void ExpectHealthy() {
    Reply health = d_.Get("/healthz");
    EXPECT_EQ(health.status, 200) << health.body;
    EXPECT_EQ(d_.Get("/v1/journeys").status, 200);
  }

  Daemon d_;
};

TEST_F(BadInputTest, EventsWithMistakesAreRefusedWhole) {
  ExpectError(d_.Post("/v1/events", "{\"customer_id\": \"c-1\", "), 400, "invalid_json",
              "truncated JSON");
  ExpectError(d_.Post("/v1/events", ""), 400, "invalid_json", "empty body");
  ExpectError(d_.Post("/v1/events", "\"signup\""), 400, "invalid_event", "a string");
  ExpectError(d_.Post("/v1/events", "[]"), 400, "invalid_event", "empty array");
  ExpectError(d_.Post("/v1/events", R"({"customer_id": 42, "type": "signup"})"), 400,
              "invalid_event", "numeric customer_id");
  ExpectError(d_.Post("/v1/events", R"({"customer_id": "c-1", "type": ["signup"]})"), 400,
              "invalid_event", "array type");
  ExpectError(d_.Post("/v1/events", R"({"customer_id": "c-1", "type": "x", "properties": 3})"), 400,
              "invalid_event", "properties not an object");
  ExpectError(
      d_.Post("/v1/events", R"({"customer_id": "c-1", "type": "x", "timestamp": "yesterday"})"),
      400, "invalid_event", "bad timestamp");
  ExpectError(d_.Post("/v1/events", R"({"type": "signup"})"), 400, "missing_field",
              "no customer_id");
  ExpectError(d_.Post("/v1/events", R"({"customer_id": "c-1", "type": null})"), 400,
              "missing_field", "null type");
  // One bad event in a batch refuses the whole batch: nothing is stored for c-batch.
  Reply batch =
      d_.Post("/v1/events",
              R"([{"customer_id": "c-batch", "type": "signup"}, {"customer_id": "c-batch"}])");
  ExpectError(batch, 400, "missing_field", "batch with a bad event");
  EXPECT_NE(batch.doc["error"].value("message", "").find("events[1]"), std::string::npos)
      << batch.body;
  ExpectError(d_.Delete("/v1/customers/c-batch"), 404, "customer_not_found",
              "a customer only a refused batch named");
  ExpectHealthy();
}

TEST_F(BadInputTest, CustomersJourneysAndMessagesRefuseBadRequests) {
  ExpectError(d_.Put("/v1/customers/c-1", "{\"email\": "), 400, "invalid_json", "PUT truncated");
  ExpectError(d_.Put("/v1/customers/c-1", R"({"email": 5})"), 400, "invalid_field",
              "numeric email");
  ExpectError(d_.Put("/v1/customers/c-1", R"({"emial": "a@example.com"})"), 400, "invalid_field",
              "misspelt key");
  ExpectError(d_.Put("/v1/customers/c-1", R"({"consent": {"email": "yes"}})"), 400, "invalid_field",
              "consent not boolean");
  ExpectError(d_.Put("/v1/customers/c-1", R"({"timezone": "Mars/Olympus"})"), 400, "invalid_field",
              "unknown zone");
  ExpectError(d_.Put("/v1/customers/c-1", "[1, 2]"), 400, "invalid_field", "array profile");
  ExpectError(d_.Get("/v1/customers/nobody"), 404, "customer_not_found", "GET unknown");
  ExpectError(d_.Delete("/v1/customers/nobody"), 404, "customer_not_found", "DELETE unknown");
  ExpectError(d_.Get("/v1/customers/c-1?limit=0"), 400, "invalid_field", "limit 0");
  ExpectError(d_.Get("/v1/journeys/no_such_journey"), 404, "journey_not_found", "unknown journey");
  ExpectError(d_.Get("/v1/messages?status=lost"), 400, "invalid_field", "unknown status");
  ExpectError(d_.Get("/v1/messages?limit=5000"), 400, "invalid_field", "limit too big");
  ExpectError(d_.Get("/v1/nothing/here"), 404, "not_found", "unknown path");
  Reply wrong_method = d_.Delete("/v1/journeys");
  ExpectError(wrong_method, 405, "method_not_allowed", "DELETE /v1/journeys");
  EXPECT_FALSE(wrong_method.Header("Allow").empty());
  // None of it created the customer.
  ExpectError(d_.Get("/v1/customers/c-1"), 404, "customer_not_found", "after refused PUTs");
  ExpectHealthy();
}

TEST_F(BadInputTest, BodyOverTheLimitIs413) {
  json event = {{"customer_id", "c-big"},
                {"type", "signup"},
                {"properties", {{"blob", std::string(5000, 'x')}}}};
  Reply r = d_.Post("/v1/events", event.dump());
  ExpectError(r, 413, "body_too_large", "5 kB event");
  Reply put = d_.Put("/v1/customers/c-big",
                     json{{"attributes", {{"blob", std::string(5000, 'y')}}}}.dump());
  ExpectError(put, 413, "body_too_large", "5 kB profile");
  // Just under the limit is fine.
  event["properties"]["blob"] = std::string(3000, 'x');
  EXPECT_EQ(d_.Post("/v1/events", event.dump()).status, 202);
  ExpectHealthy();
}

TEST_F(BadInputTest, ApiTokenIsRequiredOnV1Only) {
  auto anonymous = std::make_unique<httplib::Client>("127.0.0.1", d_.port());
  Reply none = ToReply(anonymous->Get("/v1/journeys"));
  ExpectError(none, 401, "unauthorized", "no token");
  EXPECT_EQ(none.Header("WWW-Authenticate"), "Bearer");
  ExpectError(ToReply(anonymous->Post("/v1/events", R"({"customer_id": "c-1", "type": "x"})",
                                      "application/json")),
              401, "unauthorized", "POST without token");
  auto wrong = std::make_unique<httplib::Client>("127.0.0.1", d_.port());
  wrong->set_bearer_token_auth("t0ken-for-daemon-testz");
  ExpectError(ToReply(wrong->Get("/v1/journeys")), 401, "unauthorized", "wrong token");
  ExpectError(ToReply(wrong->Get("/v1/customers/nobody")), 401, "unauthorized",
              "wrong token, unknown customer");
  // /healthz and /metrics need no token.
  EXPECT_EQ(ToReply(anonymous->Get("/healthz")).status, 200);
  EXPECT_EQ(ToReply(anonymous->Get("/metrics")).status, 200);
  // With the token: 2xx.
  EXPECT_EQ(d_.Get("/v1/journeys").status, 200);
  EXPECT_EQ(d_.Put("/v1/customers/c-1", R"({"email": "a@example.com"})").status, 200);
  EXPECT_EQ(d_.Post("/v1/events", R"({"customer_id": "c-1", "type": "x"})").status, 202);
  ExpectHealthy();
}

TEST_F(BadInputTest, ReservedEventTypesAreRefused) {
  // "$profile" is the daemon's own record of a profile change (processor.h: types starting
  // with '$' are refused from outside). Posted by a client it would fake a profile change.
  d_.PutCustomer("c-vip", {{"email", "vip@example.com"},
                           {"consent", {{"email", true}}},
                           {"attributes", {{"vip", true}}}});
  ASSERT_TRUE(WaitUntil([&] { return d_.MailFiles().size() == 1; })) << d_.Log();
  ExpectError(d_.Post("/v1/events", R"({"customer_id": "c-vip", "type": "$profile"})"), 400,
              "invalid_event", "a $profile event from outside");
  std::this_thread::sleep_for(700ms);
  EXPECT_EQ(d_.Entries("c-vip", "vip").size(), 1u)
      << "a posted $profile event entered the customer again";
  EXPECT_EQ(d_.MailFiles().size(), 1u);
  ExpectHealthy();
}

}  // namespace
}  // namespace itinera::daemon_testing
