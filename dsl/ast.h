// The syntax tree of one journey file.
//
// The parser produces a Journey that mirrors the text, with a source position on every node a
// diagnostic may point at. It is permissive where a later check can say something more useful
// (an unknown channel, a missing `else`, a wait without both outcomes): those are left for the
// checker. Plain values; copying is cheap because expressions are shared and immutable.
#ifndef ITINERA_DSL_AST_H_
#define ITINERA_DSL_AST_H_

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace itinera::dsl {

// 1-based line and column (column counts Unicode code points, so a caret lines up).
struct SourcePos {
  int line = 0;
  int column = 0;
  size_t byte = 0;  // offset into the file
};

// ---- Expressions --------------------------------------------------------------------------

enum class Op {
  kOr,
  kAnd,
  kNot,
  kNeg,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kIn,
  kContains,
  kAdd,
  kSub,
  kMul,
  kDiv,
};

struct Expr;
using ExprPtr = std::shared_ptr<const Expr>;

struct Expr {
  enum class Kind {
    kLiteral,  // literal: string, number, true/false/null; a duration is its number of seconds
    kList,     // operands: the items
    kPath,     // path: {"customer", "consent", "email"}; a single segment is a message handle
    kHas,      // operands[0]: a kPath
    kUnary,    // op (kNot, kNeg), operands[0]
    kBinary,   // op, operands[0], operands[1]
  };
  Kind kind = Kind::kLiteral;
  SourcePos pos;
  nlohmann::json literal;
  std::vector<std::string> path;
  Op op = Op::kEq;
  std::vector<ExprPtr> operands;
  int height = 1;  // longest chain of operands below; bounded by the parser (see kMaxHeight)
};

// ---- Settings -----------------------------------------------------------------------------

struct TimeOfDay {
  int hour = 0;
  int minute = 0;
  SourcePos pos;
};

struct Name {  // an identifier or string the checker may point at
  std::string text;
  SourcePos pos;
};

// `event "<type>" [where <expr>]`
struct EventMatcher {
  Name type;
  ExprPtr where;  // null when absent
};

struct VersionSetting {
  int64_t version = 1;
  SourcePos pos;
};
struct EnterSetting {  // `enter when event ...` or `enter when customer <expr>`
  std::optional<EventMatcher> event;
  ExprPtr customer_condition;  // set when it is the customer form
  SourcePos pos;
};
struct ReEnterSetting {
  enum class Kind { kNever, kAfter, kAlways };
  Kind kind = Kind::kNever;
  int64_t after_seconds = 0;
  SourcePos pos;
};
struct TimezoneSetting {
  ExprPtr path;                  // a kPath, e.g. customer.timezone; null: fixed zone
  std::optional<Name> fallback;  // "Europe/Prague"
  SourcePos pos;
};
struct QuietHoursSetting {
  TimeOfDay from, to;
  SourcePos pos;
};
struct FrequencyCapSetting {
  Name channel;
  int64_t count = 0;
  int64_t per_seconds = 0;
  SourcePos pos;
};
struct HoldoutSetting {
  double percent = 0;
  SourcePos pos;
};
struct ExitSetting {
  EventMatcher event;
  SourcePos pos;
};
struct GoalSetting {
  Name name;
  EventMatcher event;
  std::optional<int64_t> within_seconds;
  SourcePos pos;
};

using Setting =
    std::variant<VersionSetting, EnterSetting, ReEnterSetting, TimezoneSetting, QuietHoursSetting,
                 FrequencyCapSetting, HoldoutSetting, ExitSetting, GoalSetting>;

// ---- Actions ------------------------------------------------------------------------------

struct SendAction {  // send <channel> "<template>" [as <handle>]
  Name channel;      // "email" or "sms"; anything else is a check error
  Name template_name;
  std::optional<Name> handle;
  SourcePos pos;
};
struct AlertAction {  // alert owner|team "<team>"|rep "<rep>" "<template>"
  enum class Target { kOwner, kTeam, kRep };
  Target target = Target::kOwner;
  Name target_name;  // team or rep id; empty for owner
  Name template_name;
  SourcePos pos;
};
struct AssignAction {  // assign owner from team "<team>" by ...
  enum class Strategy { kRoundRobin, kLeastLoaded, kTerritory };
  Name team;
  Strategy strategy = Strategy::kRoundRobin;
  ExprPtr territory;  // for kTerritory
  SourcePos pos;
};
struct SetAction {                     // set customer.<attr>... = <expr>
  std::vector<std::string> attribute;  // the path after `customer.`
  SourcePos attribute_pos;
  ExprPtr value;
  SourcePos pos;
};
struct WebhookAction {  // webhook "<name>"
  Name name;
  SourcePos pos;
};
struct WaitAction {  // wait <dur>
  int64_t seconds = 0;
  SourcePos pos;
};
struct WaitUntilAction {  // wait until HH:MM [on mon, tue, ...]
  TimeOfDay at;
  std::vector<int> weekdays;  // ISO: 1 = Monday ... 7 = Sunday; empty = every day
  SourcePos pos;
};

using Action = std::variant<SendAction, AlertAction, AssignAction, SetAction, WebhookAction,
                            WaitAction, WaitUntilAction>;

// ---- Transitions --------------------------------------------------------------------------

struct StepRef {
  std::string id;
  SourcePos pos;
  int index = -1;  // resolved by the compiler: position in Journey::steps
};

struct ThenTransition {
  StepRef target;
  SourcePos pos;
};
struct ExitTransition {
  std::optional<std::string> reason;  // absent: "completed"
  SourcePos pos;
};
struct IfTransition {
  struct Branch {
    ExprPtr condition;
    StepRef target;
  };
  std::vector<Branch> branches;      // `if` and each `else if`
  std::optional<StepRef> otherwise;  // `else`; required, the checker reports its absence
  SourcePos pos;
};
struct SplitTransition {
  struct Branch {
    double percent = 0;
    SourcePos pos;
    StepRef target;
  };
  std::vector<Branch> branches;
  SourcePos pos;
};
struct WaitForTransition {  // wait up to <dur> for event ... when received ... when timed_out ...
  int64_t timeout_seconds = 0;
  EventMatcher event;
  std::optional<StepRef> received;  // both required; the checker reports a missing one
  std::optional<StepRef> timed_out;
  SourcePos pos;
};

using Transition =
    std::variant<ThenTransition, ExitTransition, IfTransition, SplitTransition, WaitForTransition>;

struct Step {
  Name id;
  std::vector<Action> actions;
  std::optional<Transition> transition;  // absent is a check error
  SourcePos pos;                         // the `step` keyword
  SourcePos close_pos;                   // the closing brace
};

struct Journey {
  Name id;
  std::optional<std::string> title;
  std::vector<Setting> settings;  // in source order
  std::vector<Step> steps;        // in source order; steps[0] is where customers enter
  std::string file;               // as given on the command line
  SourcePos pos;
};

}  // namespace itinera::dsl

#endif  // ITINERA_DSL_AST_H_
