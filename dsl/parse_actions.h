// Internal to dsl/: the PEGTL actions and control that turn grammar matches into AST pieces.
//
// One ItemState collects what a single setting, step header, action or transition matched:
// tokens in source order per kind, plus an expression stack. The parser reads it once the item
// matched in full and discards it when the item failed, so actions fired on a path that later
// failed never leak into the tree. Limits on hostile input (nesting depth, number size) are
// enforced here, at the token that breaks them.
#ifndef ITINERA_DSL_PARSE_ACTIONS_H_
#define ITINERA_DSL_PARSE_ACTIONS_H_

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "dsl/ast.h"
#include "dsl/grammar.h"
#include "dsl/source_text.h"
#include "util/time.h"

namespace itinera::dsl::internal {

// Past 2^53 a double no longer holds every integer, and JSON consumers would round silently.
inline constexpr int64_t kMaxNumber = int64_t{1} << 53;
// Deep enough for any journey a person writes; shallow enough that recursion stays small.
inline constexpr int kMaxNesting = 100;

inline constexpr char kTooLarge[] = "number is too large";
inline constexpr char kTooDeep[] = "expression is nested too deeply";
// A long chain such as `1 + 1 + ... + 1` is a deep tree even without parentheses; evaluating or
// freeing it recurses once per level, so its height is bounded too.
inline constexpr int kMaxHeight = 256;
inline constexpr char kTooLong[] =
    "expression is too long: split it into simpler conditions or steps";

struct ItemState {
  ItemState(const char* text_begin, const Locator* text_locator)
      : base(text_begin), locator(text_locator) {}

  SourcePos Pos(const char* p) const { return locator->At(static_cast<size_t>(p - base)); }

  const char* base;
  const Locator* locator;

  // Expressions are built bottom-up: operands on `exprs`, pending operators on `ops`.
  int depth = 0;
  std::vector<ExprPtr> exprs;
  std::vector<std::pair<Op, SourcePos>> ops;
  std::vector<size_t> list_starts;

  std::vector<Name> strings;  // every quoted string outside expressions, in order
  std::vector<Name> names;    // identifiers: journey and step ids, channels, handles
  std::vector<std::pair<int64_t, SourcePos>> durations;
  std::vector<std::pair<int64_t, SourcePos>> integers;
  std::vector<std::pair<double, SourcePos>> percents;
  std::vector<TimeOfDay> times;
  std::vector<int> weekdays;
  std::vector<StepRef> targets;  // step ids after `then` and `->`
  std::optional<StepRef> else_target;
  struct Outcome {
    bool received = false;
    StepRef target;
  };
  std::vector<Outcome> outcomes;  // `when received|timed_out then <step>`
  bool pending_received = false;
  std::vector<std::string> attribute;
  SourcePos attribute_pos;
  int choice = 0;  // which alternative keyword matched (alert target, routing, re_enter mode)
  const char* token_end = nullptr;  // just past the last token read, before its whitespace
};

// ---- Token decoding -------------------------------------------------------------------------

// The text between the quotes with escapes decoded; `text` includes the quotes.
inline std::string Unquote(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 1; i + 1 < text.size(); ++i) {
    char c = text[i];
    if (c != '\\') {
      out += c;
      continue;
    }
    char e = text[++i];
    switch (e) {
      case '"':
      case '\\':
        out += e;
        break;
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      default:
        // Name the escape only when it is plain ASCII, so the message stays valid UTF-8.
        std::string escape = (e > ' ' && e < 0x7f) ? std::string("`\\") + e + "` " : "";
        throw grammar::SyntaxError{
            text.data() + i - 1,
            "unknown escape " + escape + "in text; write \\\", \\\\, \\n or \\t"};
    }
  }
  return out;
}

// Reads decimal digits at `p`, failing past kMaxNumber (the digit count is unbounded).
inline int64_t ReadInteger(const char*& p, const char* end, const char* token) {
  int64_t value = 0;
  for (; p != end && *p >= '0' && *p <= '9'; ++p) {
    value = value * 10 + (*p - '0');
    if (value > kMaxNumber) throw grammar::SyntaxError{token, kTooLarge};
  }
  return value;
}

inline int64_t DurationSeconds(std::string_view text) {
  const char* p = text.data();
  const char* end = p + text.size();
  int64_t total = 0;
  while (p != end && *p >= '0' && *p <= '9') {
    int64_t n = ReadInteger(p, end, text.data());
    // The grammar admits only s, m, h, d and w; never divide by zero whatever it admits.
    int64_t unit = std::max<int64_t>(1, DurationUnitSeconds(*p++));
    if (n > (kMaxNumber - total) / unit) throw grammar::SyntaxError{text.data(), kTooLarge};
    total += n * unit;
  }
  return total;
}

// A number literal as JSON: an integer unless it has a fraction.
inline nlohmann::json NumberValue(std::string_view text) {
  const char* p = text.data();
  const char* end = p + text.size();
  bool negative = p != end && *p == '-';
  if (negative) ++p;
  int64_t whole = ReadInteger(p, end, text.data());
  if (p == end || *p != '.') return negative ? -whole : whole;
  double value = static_cast<double>(whole);
  double scale = 0.1;
  for (++p; p != end && *p >= '0' && *p <= '9'; ++p, scale /= 10) value += (*p - '0') * scale;
  return negative ? -value : value;
}

inline ExprPtr MakeLiteral(nlohmann::json value, SourcePos pos) {
  auto e = std::make_shared<Expr>();
  e->kind = Expr::Kind::kLiteral;
  e->pos = pos;
  e->literal = std::move(value);
  return e;
}

inline ExprPtr MakePath(std::string_view text, SourcePos pos) {
  auto e = std::make_shared<Expr>();
  e->kind = Expr::Kind::kPath;
  e->pos = pos;
  size_t start = 0;
  while (true) {
    size_t dot = text.find('.', start);
    e->path.emplace_back(text.substr(start, dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return e;
}

// ---- Actions --------------------------------------------------------------------------------

template <typename Rule>
struct Action : tao::pegtl::nothing<Rule> {};

// Pops the operator and operand(s) pushed by a *_tail rule and pushes the combined node.
struct ReduceBinary {
  template <typename ActionInput>
  static void apply(const ActionInput& in, ItemState& s) {
    auto e = std::make_shared<Expr>();
    e->kind = Expr::Kind::kBinary;
    std::tie(e->op, e->pos) = s.ops.back();
    s.ops.pop_back();
    ExprPtr right = std::move(s.exprs.back());
    s.exprs.pop_back();
    e->height = 1 + std::max(s.exprs.back()->height, right->height);
    if (e->height > kMaxHeight) throw grammar::SyntaxError{in.begin(), kTooLong};
    e->operands = {std::move(s.exprs.back()), std::move(right)};
    s.exprs.back() = std::move(e);
  }
};

struct ReduceUnary {
  template <typename ActionInput>
  static void apply(const ActionInput& in, ItemState& s) {
    auto [op, pos] = s.ops.back();
    s.ops.pop_back();
    ExprPtr operand = std::move(s.exprs.back());
    // `-3` is the number -3, not an operation on 3: fold it so the tree reads as the text does.
    if (op == Op::kNeg && operand->kind == Expr::Kind::kLiteral && operand->literal.is_number()) {
      nlohmann::json v = operand->literal.is_number_integer()
                             ? nlohmann::json(-operand->literal.get<int64_t>())
                             : nlohmann::json(-operand->literal.get<double>());
      s.exprs.back() = MakeLiteral(std::move(v), pos);
      return;
    }
    auto e = std::make_shared<Expr>();
    e->kind = Expr::Kind::kUnary;
    e->op = op;
    e->pos = pos;
    e->height = 1 + operand->height;
    if (e->height > kMaxHeight) throw grammar::SyntaxError{in.begin(), kTooLong};
    e->operands = {std::move(operand)};
    s.exprs.back() = std::move(e);
  }
};

template <Op kOp>
struct PushOp {
  template <typename ActionInput>
  static void apply(const ActionInput& in, ItemState& s) {
    s.ops.emplace_back(kOp, s.Pos(in.begin()));
  }
};

template <>
struct Action<grammar::expr_string> {
  template <typename ActionInput>
  static void apply(const ActionInput& in, ItemState& s) {
    s.exprs.push_back(MakeLiteral(Unquote(in.string_view()), s.Pos(in.begin())));
  }
};
template <>
struct Action<grammar::expr_number> {
  template <typename ActionInput>
  static void apply(const ActionInput& in, ItemState& s) {
    s.exprs.push_back(MakeLiteral(NumberValue(in.string_view()), s.Pos(in.begin())));
  }
};
template <>
struct Action<grammar::expr_duration> {
  template <typename ActionInput>
  static void apply(const ActionInput& in, ItemState& s) {
    s.exprs.push_back(MakeLiteral(DurationSeconds(in.string_view()), s.Pos(in.begin())));
  }
};
template <>
struct Action<grammar::expr_true> {
  template <typename ActionInput>
  static void apply(const ActionInput& in, ItemState& s) {
    s.exprs.push_back(MakeLiteral(true, s.Pos(in.begin())));
  }
};
template <>
struct Action<grammar::expr_false> {
  template <typename ActionInput>
  static void apply(const ActionInput& in, ItemState& s) {
    s.exprs.push_back(MakeLiteral(false, s.Pos(in.begin())));
  }
};
template <>
struct Action<grammar::expr_null> {
  template <typename ActionInput>
  static void apply(const ActionInput& in, ItemState& s) {
    s.exprs.push_back(MakeLiteral(nullptr, s.Pos(in.begin())));
  }
};
template <>
struct Action<grammar::expr_path> {
  template <typename ActionInput>
  static void apply(const ActionInput& in, ItemState& s) {
    s.exprs.push_back(MakePath(in.string_view(), s.Pos(in.begin())));
  }
};
template <>
struct Action<grammar::has_expr> {
  template <typename ActionInput>
  static void apply(const ActionInput& in, ItemState& s) {
    auto e = std::make_shared<Expr>();
    e->kind = Expr::Kind::kHas;
    e->pos = s.Pos(in.begin());
    e->operands = {std::move(s.exprs.back())};
    s.exprs.back() = std::move(e);
  }
};
template <>
struct Action<grammar::list_open> {
  template <typename ActionInput>
  static void apply(const ActionInput&, ItemState& s) {
    s.list_starts.push_back(s.exprs.size());
  }
};
template <>
struct Action<grammar::list_expr> {
  template <typename ActionInput>
  static void apply(const ActionInput& in, ItemState& s) {
    auto e = std::make_shared<Expr>();
    e->kind = Expr::Kind::kList;
    e->pos = s.Pos(in.begin());
    auto first = s.exprs.begin() + static_cast<std::ptrdiff_t>(s.list_starts.back());
    e->operands.assign(std::make_move_iterator(first), std::make_move_iterator(s.exprs.end()));
    s.exprs.erase(first, s.exprs.end());
    for (const ExprPtr& item : e->operands) e->height = std::max(e->height, 1 + item->height);
    s.list_starts.pop_back();
    s.exprs.push_back(std::move(e));
  }
};

template <>
struct Action<grammar::neg_op> : PushOp<Op::kNeg> {};
template <>
struct Action<grammar::neg_expr> : ReduceUnary {};
template <>
struct Action<grammar::not_op> : PushOp<Op::kNot> {};
template <>
struct Action<grammar::not_tail> : ReduceUnary {};
template <>
struct Action<grammar::and_op> : PushOp<Op::kAnd> {};
template <>
struct Action<grammar::and_tail> : ReduceBinary {};
template <>
struct Action<grammar::or_op> : PushOp<Op::kOr> {};
template <>
struct Action<grammar::or_tail> : ReduceBinary {};
template <>
struct Action<grammar::mul_tail> : ReduceBinary {};
template <>
struct Action<grammar::add_tail> : ReduceBinary {};
template <>
struct Action<grammar::cmp_tail> : ReduceBinary {};

template <>
struct Action<grammar::mul_op> {
  template <typename ActionInput>
  static void apply(const ActionInput& in, ItemState& s) {
    s.ops.emplace_back(*in.begin() == '*' ? Op::kMul : Op::kDiv, s.Pos(in.begin()));
  }
};
template <>
struct Action<grammar::add_op> {
  template <typename ActionInput>
  static void apply(const ActionInput& in, ItemState& s) {
    s.ops.emplace_back(*in.begin() == '+' ? Op::kAdd : Op::kSub, s.Pos(in.begin()));
  }
};
template <>
struct Action<grammar::cmp_op> {
  template <typename ActionInput>
  static void apply(const ActionInput& in, ItemState& s) {
    std::string_view t = in.string_view();  // includes trailing space
    Op op = Op::kContains;
    bool two = t.size() >= 2 && t[1] == '=';
    switch (t[0]) {
      case '=':
        op = Op::kEq;
        break;
      case '!':
        op = Op::kNe;
        break;
      case '<':
        op = two ? Op::kLe : Op::kLt;
        break;
      case '>':
        op = two ? Op::kGe : Op::kGt;
        break;
      case 'i':
        op = Op::kIn;
        break;
      default:
        break;
    }
    s.ops.emplace_back(op, s.Pos(in.begin()));
  }
};
template <>
struct Action<grammar::lone_equals> {
  template <typename ActionInput>
  static void apply(const ActionInput& in, ItemState&) {
    throw grammar::SyntaxError{in.begin(), "use `==` to compare; a single `=` is only for `set`"};
  }
};

// ---- Item-level tokens ----------------------------------------------------------------------

template <>
struct Action<grammar::quoted> {
  template <typename ActionInput>
  static void apply(const ActionInput& in, ItemState& s) {
    s.strings.push_back(Name{Unquote(in.string_view()), s.Pos(in.begin())});
  }
};
template <>
struct Action<grammar::name_raw> {
  template <typename ActionInput>
  static void apply(const ActionInput& in, ItemState& s) {
    s.names.push_back(Name{in.string(), s.Pos(in.begin())});
  }
};
template <>
struct Action<grammar::step_ref_raw> {
  template <typename ActionInput>
  static void apply(const ActionInput& in, ItemState& s) {
    s.targets.push_back(StepRef{in.string(), s.Pos(in.begin())});
  }
};
template <>
struct Action<grammar::else_target_raw> {
  template <typename ActionInput>
  static void apply(const ActionInput& in, ItemState& s) {
    s.else_target = StepRef{in.string(), s.Pos(in.begin())};
  }
};
template <>
struct Action<grammar::when_received> {
  static void apply0(ItemState& s) { s.pending_received = true; }
};
template <>
struct Action<grammar::when_timed_out> {
  static void apply0(ItemState& s) { s.pending_received = false; }
};
template <>
struct Action<grammar::when_target_raw> {
  template <typename ActionInput>
  static void apply(const ActionInput& in, ItemState& s) {
    s.outcomes.push_back({s.pending_received, StepRef{in.string(), s.Pos(in.begin())}});
  }
};
template <>
struct Action<grammar::duration_raw> {
  template <typename ActionInput>
  static void apply(const ActionInput& in, ItemState& s) {
    s.durations.emplace_back(DurationSeconds(in.string_view()), s.Pos(in.begin()));
  }
};
template <>
struct Action<grammar::integer_raw> {
  template <typename ActionInput>
  static void apply(const ActionInput& in, ItemState& s) {
    const char* p = in.begin();
    s.integers.emplace_back(ReadInteger(p, in.end(), in.begin()), s.Pos(in.begin()));
  }
};
template <>
struct Action<grammar::percent_number> {
  template <typename ActionInput>
  static void apply(const ActionInput& in, ItemState& s) {
    s.percents.emplace_back(NumberValue(in.string_view()).template get<double>(),
                            s.Pos(in.begin()));
  }
};
template <>
struct Action<grammar::time_raw> {
  template <typename ActionInput>
  static void apply(const ActionInput& in, ItemState& s) {
    const char* p = in.begin();
    s.times.push_back(
        TimeOfDay{(p[0] - '0') * 10 + (p[1] - '0'), (p[3] - '0') * 10 + (p[4] - '0'), s.Pos(p)});
  }
};
template <>
struct Action<grammar::weekday_raw> {
  template <typename ActionInput>
  static void apply(const ActionInput& in, ItemState& s) {
    static constexpr std::string_view kDays[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
    for (int i = 0; i < 7; ++i) {
      if (in.string_view() == kDays[i]) s.weekdays.push_back(i + 1);
    }
  }
};
template <>
struct Action<grammar::attribute> {
  template <typename ActionInput>
  static void apply(const ActionInput& in, ItemState& s) {
    s.attribute.push_back(in.string());
  }
};
template <>
struct Action<grammar::set_target> {
  template <typename ActionInput>
  static void apply(const ActionInput& in, ItemState& s) {
    s.attribute_pos = s.Pos(in.begin());
  }
};

template <int kChoice>
struct Choose {
  static void apply0(ItemState& s) { s.choice = kChoice; }
};
template <>
struct Action<grammar::alert_team> : Choose<1> {};
template <>
struct Action<grammar::alert_rep> : Choose<2> {};
template <>
struct Action<grammar::by_least_loaded> : Choose<1> {};
template <>
struct Action<grammar::by_territory> : Choose<2> {};
template <>
struct Action<grammar::re_enter_after> : Choose<1> {};
template <>
struct Action<grammar::k_always> : Choose<2> {};
template <>
struct Action<grammar::enter_customer> : Choose<1> {};

// ---- Control --------------------------------------------------------------------------------

// Rules that recurse into a whole expression; each level counts against kMaxNesting so deep
// input fails with a message instead of exhausting the stack.
template <typename Rule>
inline constexpr bool kNests = false;
template <>
inline constexpr bool kNests<grammar::expression> = true;
template <>
inline constexpr bool kNests<grammar::neg_expr> = true;
template <>
inline constexpr bool kNests<grammar::not_tail> = true;

template <typename Rule>
struct Control : tao::pegtl::normal<Rule> {
  // Something is missing. When the next token is on a later line, the marketer forgot it at
  // the end of this one, so point there (as compilers do for a missing `;`).
  template <typename ParseInput>
  [[noreturn]] static void raise(const ParseInput& in, ItemState& s) {
    const char* at = in.current();
    if (s.token_end != nullptr && s.token_end < at && std::find(s.token_end, at, '\n') != at) {
      at = s.token_end;
    }
    throw grammar::SyntaxError{at, grammar::ErrorText<Rule>::kText};
  }
  template <typename ParseInput>
  static void start(const ParseInput& in, ItemState& s) {
    if constexpr (std::is_same_v<Rule, grammar::sep>) s.token_end = in.current();
    if constexpr (kNests<Rule>) {
      if (++s.depth > kMaxNesting) throw grammar::SyntaxError{in.current(), kTooDeep};
    }
  }
  template <typename ParseInput>
  static void success(const ParseInput&, ItemState& s) {
    if constexpr (kNests<Rule>) --s.depth;
  }
  template <typename ParseInput>
  static void failure(const ParseInput&, ItemState& s) {
    if constexpr (kNests<Rule>) --s.depth;
  }
};

}  // namespace itinera::dsl::internal

#endif  // ITINERA_DSL_PARSE_ACTIONS_H_
