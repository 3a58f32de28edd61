// Graph drawing (golden dot and Mermaid) and expressions printed back as journey text.

#include "dsl/graph.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dsl/checker.h"

namespace itinera::dsl {
namespace {

// ---- ExprToString -------------------------------------------------------------------------

ExprPtr Lit(nlohmann::json v) {
  auto e = std::make_shared<Expr>();
  e->kind = Expr::Kind::kLiteral;
  e->literal = std::move(v);
  return e;
}

ExprPtr Path(std::vector<std::string> parts) {
  auto e = std::make_shared<Expr>();
  e->kind = Expr::Kind::kPath;
  e->path = std::move(parts);
  return e;
}

ExprPtr Bin(Op op, ExprPtr l, ExprPtr r) {
  auto e = std::make_shared<Expr>();
  e->kind = Expr::Kind::kBinary;
  e->op = op;
  e->operands = {std::move(l), std::move(r)};
  return e;
}

ExprPtr Un(Op op, ExprPtr x) {
  auto e = std::make_shared<Expr>();
  e->kind = Expr::Kind::kUnary;
  e->op = op;
  e->operands = {std::move(x)};
  return e;
}

ExprPtr Has(ExprPtr path) {
  auto e = std::make_shared<Expr>();
  e->kind = Expr::Kind::kHas;
  e->operands = {std::move(path)};
  return e;
}

ExprPtr List(std::vector<ExprPtr> items) {
  auto e = std::make_shared<Expr>();
  e->kind = Expr::Kind::kList;
  e->operands = std::move(items);
  return e;
}

TEST(GraphTest, PrintsLiteralsAsWritten) {
  EXPECT_EQ(ExprToString(*Lit("say \"hi\"\n")), R"("say \"hi\"\n")");
  EXPECT_EQ(ExprToString(*Lit(20)), "20");
  EXPECT_EQ(ExprToString(*Lit(19.99)), "19.99");
  EXPECT_EQ(ExprToString(*Lit(3.0)), "3");
  EXPECT_EQ(ExprToString(*Lit(true)), "true");
  EXPECT_EQ(ExprToString(*Lit(nullptr)), "null");
  EXPECT_EQ(ExprToString(*List({Lit("a"), Lit("b")})), R"(["a", "b"])");
  EXPECT_EQ(ExprToString(*Path({"customer", "consent", "sms"})), "customer.consent.sms");
}

TEST(GraphTest, PrintsOnlyTheParenthesesThatMatter) {
  ExprPtr score = Path({"customer", "score"});
  ExprPtr vip = Path({"customer", "vip"});
  ExprPtr phone = Has(Path({"customer", "phone"}));
  // customer.score + 20 > 50
  EXPECT_EQ(ExprToString(*Bin(Op::kGt, Bin(Op::kAdd, score, Lit(20)), Lit(50))),
            "customer.score + 20 > 50");
  // (a + b) * 2, and a * (b + 2)
  EXPECT_EQ(ExprToString(*Bin(Op::kMul, Bin(Op::kAdd, score, Lit(1)), Lit(2))),
            "(customer.score + 1) * 2");
  EXPECT_EQ(ExprToString(*Bin(Op::kMul, Lit(2), Bin(Op::kAdd, score, Lit(1)))),
            "2 * (customer.score + 1)");
  // Left to right needs none; the other way round does.
  EXPECT_EQ(ExprToString(*Bin(Op::kSub, Bin(Op::kSub, score, Lit(1)), Lit(2))),
            "customer.score - 1 - 2");
  EXPECT_EQ(ExprToString(*Bin(Op::kSub, score, Bin(Op::kSub, Lit(1), Lit(2)))),
            "customer.score - (1 - 2)");
  // and binds tighter than or; not is looser than comparisons.
  EXPECT_EQ(ExprToString(*Bin(Op::kOr, Bin(Op::kAnd, phone, vip), vip)),
            "has customer.phone and customer.vip or customer.vip");
  EXPECT_EQ(ExprToString(*Bin(Op::kAnd, Bin(Op::kOr, phone, vip), vip)),
            "(has customer.phone or customer.vip) and customer.vip");
  EXPECT_EQ(ExprToString(*Un(Op::kNot, Bin(Op::kEq, score, Lit(1)))), "not customer.score == 1");
  EXPECT_EQ(ExprToString(*Un(Op::kNot, Bin(Op::kAnd, phone, vip))),
            "not (has customer.phone and customer.vip)");
  EXPECT_EQ(ExprToString(*Un(Op::kNeg, Bin(Op::kAdd, score, Lit(1)))), "-(customer.score + 1)");
  EXPECT_EQ(ExprToString(*Un(Op::kNeg, Lit(-3))), "-(-3)");
  EXPECT_EQ(ExprToString(*Bin(Op::kIn, Path({"customer", "plan"}), List({Lit("a"), Lit("b")}))),
            R"(customer.plan in ["a", "b"])");
  EXPECT_EQ(ExprToString(*Bin(Op::kEq, Path({"event", "message"}), Path({"offer"}))),
            "event.message == offer");
}

// ---- DrawGraph ----------------------------------------------------------------------------

constexpr std::string_view kJourney = R"(journey welcome "Welcome \"new\" customers" {
  enter when event "signup"
  step greet {
    send email "welcome" as hello
    wait up to 2d for event "email_opened" where event.message == hello
    when received then vip_check
    when timed_out then nudge
  }
  step vip_check {
    if customer.score >= 50 and has customer.phone then call else done
  }
  step call {
    alert team "prague_sales" "hot_lead"
    exit "handed to sales"
  }
  step nudge {
    wait 1d12h
    split 50% -> done, 50% -> call
  }
  step done { exit }
}
)";

Program Compiled() {
  CheckEnvironment env;
  env.teams = {"prague_sales"};
  CompileResult r = CompileText(kJourney, "welcome.journey", env);
  EXPECT_TRUE(r.diagnostics.empty());
  return r.program.value_or(Program{});
}

TEST(GraphTest, DrawsDot) {
  EXPECT_EQ(DrawGraph(Compiled(), GraphFormat::kDot), R"gv(digraph "welcome" {
  rankdir=TB;
  label="Welcome \"new\" customers";
  labelloc=t;
  node [shape=box, style=rounded, fontname="Helvetica"];
  edge [fontname="Helvetica"];
  "start" [shape=circle, style=filled, fillcolor=black, fontcolor=white, label="start"];
  "step_greet" [label="greet\nsend email \"welcome\" as hello\nwait up to 2d for event \"email_opened\""];
  "step_vip_check" [label="vip_check"];
  "step_call" [label="call\nalert team \"prague_sales\" \"hot_lead\""];
  "step_nudge" [label="nudge\nwait 1d12h"];
  "step_done" [label="done"];
  "exit_0" [shape=doublecircle, label="exit: handed to sales"];
  "exit_1" [shape=doublecircle, label="exit: completed"];
  "start" -> "step_greet";
  "step_greet" -> "step_vip_check" [label="received"];
  "step_greet" -> "step_nudge" [label="timed out (2d)"];
  "step_vip_check" -> "step_call" [label="if customer.score >= 50 and has customer.phone"];
  "step_vip_check" -> "step_done" [label="else"];
  "step_call" -> "exit_0";
  "step_nudge" -> "step_done" [label="50%"];
  "step_nudge" -> "step_call" [label="50%"];
  "step_done" -> "exit_1";
}
)gv");
}

TEST(GraphTest, DrawsMermaid) {
  EXPECT_EQ(DrawGraph(Compiled(), GraphFormat::kMermaid), R"gv(flowchart TD
  %% Welcome "new" customers
  start(("start"))
  step_greet["greet<br/>send email #quot;welcome#quot; as hello<br/>wait up to 2d for event #quot;email_opened#quot;"]
  step_vip_check["vip_check"]
  step_call["call<br/>alert team #quot;prague_sales#quot; #quot;hot_lead#quot;"]
  step_nudge["nudge<br/>wait 1d12h"]
  step_done["done"]
  exit_0(["exit: handed to sales"])
  exit_1(["exit: completed"])
  start --> step_greet
  step_greet -->|"received"| step_vip_check
  step_greet -->|"timed out (2d)"| step_nudge
  step_vip_check -->|"if customer.score #gt;= 50 and has customer.phone"| step_call
  step_vip_check -->|"else"| step_done
  step_call --> exit_0
  step_nudge -->|"50%"| step_done
  step_nudge -->|"50%"| step_call
  step_done --> exit_1
)gv");
}

TEST(GraphTest, DrawsEveryKindOfAction) {
  CompileResult r = CompileText(R"(journey t {
  enter when event "signup"
  step a {
    assign owner from team "sales" by territory customer.region
    alert owner "o"
    alert rep "anna" "r"
    set customer.stage = "hot"
    webhook "crm"
    wait until 10:00 on mon, fri
    send sms "s"
    exit
  }
}
)",
                                "t.journey", CheckEnvironment{{"sales"}, {"anna"}, {"crm"}});
  ASSERT_TRUE(r.program.has_value());
  EXPECT_NE(DrawGraph(*r.program, GraphFormat::kDot)
                .find("\"step_a\" [label=\"a\\n"
                      "assign owner from team \\\"sales\\\" by territory customer.region\\n"
                      "alert owner \\\"o\\\"\\n"
                      "alert rep \\\"anna\\\" \\\"r\\\"\\n"
                      "set customer.stage = \\\"hot\\\"\\n"
                      "webhook \\\"crm\\\"\\n"
                      "wait until 10:00 on mon, fri\\n"
                      "send sms \\\"s\\\"\"];"),
            std::string::npos)
      << DrawGraph(*r.program, GraphFormat::kDot);
}

TEST(GraphTest, LabelsEveryBranchOfAnIf) {
  CompileResult r = CompileText(R"(journey t {
  enter when event "signup"
  step a {
    if customer.score > 80 then b else if customer.plan in ["pro", "team|x"] then c else d
  }
  step b { exit "hot" }
  step c { exit "hot" }
  step d { exit }
}
)",
                                "t.journey", CheckEnvironment{});
  ASSERT_TRUE(r.program.has_value());
  std::string dot = DrawGraph(*r.program, GraphFormat::kDot);
  EXPECT_NE(dot.find(R"("step_a" -> "step_b" [label="if customer.score > 80"];)"),
            std::string::npos)
      << dot;
  EXPECT_NE(
      dot.find(R"("step_a" -> "step_c" [label="else if customer.plan in [\"pro\", \"team|x\"]"];)"),
      std::string::npos)
      << dot;
  EXPECT_NE(dot.find(R"("step_a" -> "step_d" [label="else"];)"), std::string::npos) << dot;
  // Both "hot" exits lead to one terminal node.
  EXPECT_NE(dot.find(R"("step_b" -> "exit_0";)"), std::string::npos) << dot;
  EXPECT_NE(dot.find(R"("step_c" -> "exit_0";)"), std::string::npos) << dot;
  EXPECT_NE(dot.find(R"("step_d" -> "exit_1";)"), std::string::npos) << dot;
  std::string mermaid = DrawGraph(*r.program, GraphFormat::kMermaid);
  EXPECT_NE(
      mermaid.find(
          R"(step_a -->|"else if customer.plan in [#quot;pro#quot;, #quot;team#124;x#quot;]"| step_c)"),
      std::string::npos)
      << mermaid;
}

TEST(GraphTest, IsDeterministic) {
  Program p = Compiled();
  EXPECT_EQ(DrawGraph(p, GraphFormat::kDot), DrawGraph(p, GraphFormat::kDot));
  EXPECT_EQ(DrawGraph(p, GraphFormat::kMermaid), DrawGraph(p, GraphFormat::kMermaid));
}

}  // namespace
}  // namespace itinera::dsl
