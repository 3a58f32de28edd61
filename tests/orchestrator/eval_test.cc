#include "orchestrator/eval.h"

#include <gtest/gtest.h>

#include "tests/orchestrator/engine_harness.h"

namespace itinera::orch {
namespace {

using nlohmann::json;
using testing::CompileExpr;

class EvalTest : public ::testing::Test {
 protected:
  json Eval(const std::string& text) {
    dsl::ExprPtr e = CompileExpr(text);
    if (!e) {
      ADD_FAILURE() << "did not compile: " << text;
      return json("<compile error>");
    }
    Scope scope;
    scope.profile = &profile_;
    scope.event = &event_;
    scope.entry = &entry_;
    scope.handles = &handles_;
    return Evaluate(*e, scope);
  }
  bool True(const std::string& text) { return Truthy(Eval(text)); }

  json profile_ = {{"id", "c-1"},
                   {"email", "ann@example.com"},
                   {"timezone", "Europe/Prague"},
                   {"owner", "rep_anna"},
                   {"consent", {{"email", true}, {"sms", false}}},
                   {"attributes",
                    {{"first_name", "Ann"},
                     {"score", 10},
                     {"ratio", 1.0},
                     {"tags", {"vip", "suv"}},
                     {"address", {{"city", "Prague"}}},
                     {"empty", ""},
                     {"nothing", nullptr}}}};
  json event_ = {{"customer_id", "c-1"},
                 {"type", "form_submitted"},
                 {"timestamp", "2026-11-22T10:00:00Z"},
                 {"properties", {{"form", "test_drive"}, {"amount", 250}, {"message", "m-1"}}}};
  json entry_ = {{"customer_id", "c-1"},
                 {"type", "signup"},
                 {"timestamp", "2026-11-01T10:00:00Z"},
                 {"properties", {{"source", "web"}}}};
  std::map<std::string, std::string> handles_ = {{"offer", "m-1"}};
};

TEST_F(EvalTest, CustomerCoreFieldsAndAttributes) {
  EXPECT_EQ(Eval("customer.email"), "ann@example.com");
  EXPECT_EQ(Eval("customer.owner"), "rep_anna");
  EXPECT_EQ(Eval("customer.consent.email"), true);
  EXPECT_EQ(Eval("customer.consent.sms"), false);
  EXPECT_EQ(Eval("customer.first_name"), "Ann");
  EXPECT_EQ(Eval("customer.address.city"), "Prague");
}

TEST_F(EvalTest, EventAndEntryPaths) {
  EXPECT_EQ(Eval("event.form"), "test_drive");
  EXPECT_EQ(Eval("event.type"), "form_submitted");
  EXPECT_EQ(Eval("event.customer_id"), "c-1");
  EXPECT_EQ(Eval("entry.source"), "web");
  EXPECT_EQ(Eval("entry.type"), "signup");
}

TEST_F(EvalTest, MissingPathIsNull) {
  EXPECT_TRUE(Eval("customer.nope").is_null());
  EXPECT_TRUE(Eval("customer.address.street.number").is_null());
  EXPECT_TRUE(Eval("event.nope").is_null());
  EXPECT_TRUE(Eval("customer.nope == null").get<bool>());
}

TEST_F(EvalTest, OrderingWithNullIsFalse) {
  EXPECT_FALSE(True("customer.nope < 5"));
  EXPECT_FALSE(True("customer.nope >= 5"));
  EXPECT_FALSE(True("5 > customer.nope"));
  EXPECT_TRUE(True("customer.score >= 10"));
  EXPECT_TRUE(True("customer.score < 10.5"));
  EXPECT_TRUE(True("\"abc\" < \"abd\""));
}

TEST_F(EvalTest, AdditionCountsMissingAsZeroAndConcatenatesStrings) {
  EXPECT_EQ(Eval("customer.visits + 1"), 1);
  EXPECT_EQ(Eval("customer.visits - 2"), -2);
  EXPECT_EQ(Eval("customer.score + 20"), 30);
  EXPECT_EQ(Eval("customer.first_name + \" Smith\""), "Ann Smith");
  EXPECT_EQ(Eval("\"a\" + \"b\""), "ab");
  EXPECT_EQ(Eval("2 + 3 * 4"), 14);
  EXPECT_EQ(Eval("(2 + 3) * 4"), 20);
  EXPECT_DOUBLE_EQ(Eval("19.99 + 0.01").get<double>(), 20.0);
}

TEST_F(EvalTest, DivisionByZeroIsNullAndExactDivisionStaysInteger) {
  EXPECT_TRUE(Eval("customer.score / 0").is_null());
  EXPECT_EQ(Eval("customer.score / 2"), 5);
  EXPECT_DOUBLE_EQ(Eval("customer.score / 4").get<double>(), 2.5);
  EXPECT_TRUE(Eval("customer.nope * 3").is_null());
}

TEST_F(EvalTest, NumericEqualityIgnoresRepresentation) {
  EXPECT_TRUE(True("customer.ratio == 1"));
  EXPECT_TRUE(True("1 == 1.0"));
  EXPECT_FALSE(True("1 != 1.0"));
  EXPECT_FALSE(True("\"1\" == 1"));
}

TEST_F(EvalTest, InAndContains) {
  EXPECT_TRUE(True("\"vip\" in customer.tags"));
  EXPECT_FALSE(True("\"gold\" in customer.tags"));
  EXPECT_TRUE(True("customer.tags contains \"suv\""));
  EXPECT_TRUE(True("\"rag\" in \"Prague\""));
  EXPECT_TRUE(True("customer.email contains \"@example\""));
  EXPECT_TRUE(True("event.form in [\"test_drive\", \"quote\"]"));
  EXPECT_FALSE(True("customer.nope in customer.tags"));
  EXPECT_FALSE(True("customer.nope contains \"x\""));
}

TEST_F(EvalTest, HasIsTrueOnlyForPresentNonNull) {
  EXPECT_TRUE(True("has customer.email"));
  EXPECT_TRUE(True("has customer.empty"));
  EXPECT_FALSE(True("has customer.nothing"));
  EXPECT_FALSE(True("has customer.phone"));
  EXPECT_TRUE(True("not has customer.phone"));
}

TEST_F(EvalTest, LogicUsesTruthiness) {
  EXPECT_FALSE(True("customer.empty"));
  EXPECT_FALSE(True("customer.nope"));
  EXPECT_FALSE(True("0"));
  EXPECT_TRUE(True("customer.first_name"));
  EXPECT_TRUE(True("customer.consent.email and customer.score > 5"));
  EXPECT_TRUE(True("customer.consent.sms or customer.score > 5"));
  EXPECT_FALSE(True("not customer.consent.email"));
  EXPECT_TRUE(True("not customer.consent.sms and has customer.email"));
}

TEST_F(EvalTest, DurationsAreSeconds) { EXPECT_EQ(Eval("1d12h"), 129600); }

TEST_F(EvalTest, HandleIsTheMessageIdAndAnUnsentHandleNeverCompares) {
  auto handle = [](const std::string& name) {
    auto e = std::make_shared<dsl::Expr>();
    e->kind = dsl::Expr::Kind::kPath;
    e->path = {name};
    return e;
  };
  auto event_message = std::make_shared<dsl::Expr>();
  event_message->kind = dsl::Expr::Kind::kPath;
  event_message->path = {"event", "message"};
  auto compare = [&](dsl::Op op, const std::string& h) {
    dsl::Expr e;
    e.kind = dsl::Expr::Kind::kBinary;
    e.op = op;
    e.operands = {event_message, handle(h)};
    Scope scope;
    scope.event = &event_;
    scope.handles = &handles_;
    return IsTrue(e, scope);
  };
  EXPECT_TRUE(compare(dsl::Op::kEq, "offer"));
  EXPECT_FALSE(compare(dsl::Op::kNe, "offer"));
  EXPECT_FALSE(compare(dsl::Op::kEq, "reminder"));
  EXPECT_FALSE(compare(dsl::Op::kNe, "reminder"));  // unsent: comparisons are false
  json no_message = event_;
  no_message["properties"].erase("message");
  dsl::Expr e;
  e.kind = dsl::Expr::Kind::kBinary;
  e.op = dsl::Op::kEq;
  e.operands = {event_message, handle("reminder")};
  Scope scope;
  scope.event = &no_message;
  scope.handles = &handles_;
  EXPECT_FALSE(IsTrue(e, scope));  // not null == null
}

TEST(ProfileWriteTest, SetCreatesNestedAttributesAndCoreFields) {
  json p = {{"id", "c-1"}};
  SetProfileValue(p, {"lead_stage"}, "hot");
  SetProfileValue(p, {"address", "city"}, "Brno");
  SetProfileValue(p, {"consent", "sms"}, false);
  SetProfileValue(p,
                  {
                      "email",
                  },
                  "new@example.com");
  EXPECT_EQ(p["attributes"]["lead_stage"], "hot");
  EXPECT_EQ(p["attributes"]["address"]["city"], "Brno");
  EXPECT_EQ(p["consent"]["sms"], false);
  EXPECT_EQ(p["email"], "new@example.com");
}

}  // namespace
}  // namespace itinera::orch
