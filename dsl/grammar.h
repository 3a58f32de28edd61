// Internal to dsl/: the PEGTL grammar of a journey file, piece by piece.
//
// The parser (parser.cc) drives these rules one setting, step header, action or transition at a
// time, which is what lets it resume after an error. Each rule that appears inside must<> has a
// message in marketer words (ErrorText below); a rule that fails there raises a SyntaxError at
// the offending token. Every token rule swallows the whitespace and comments after it, so the
// input always sits on the next token when a must<> fails.
//
// Rule types that only differ in the role they play (a template name, a team name) are distinct
// structs so that actions and error messages can tell them apart.
#ifndef ITINERA_DSL_GRAMMAR_H_
#define ITINERA_DSL_GRAMMAR_H_

#include <string>
#include <tao/pegtl.hpp>

namespace itinera::dsl::grammar {

using tao::pegtl::digit;
using tao::pegtl::eolf;
using tao::pegtl::identifier;
using tao::pegtl::identifier_other;
using tao::pegtl::list;
using tao::pegtl::must;
using tao::pegtl::not_at;
using tao::pegtl::one;
using tao::pegtl::opt;
using tao::pegtl::plus;
using tao::pegtl::seq;
using tao::pegtl::sor;
using tao::pegtl::space;
using tao::pegtl::star;
using tao::pegtl::string;
using tao::pegtl::until;
using tao::pegtl::ascii::keyword;

// Thrown by rules and actions with the byte where the problem is; the parser catches it.
struct SyntaxError {
  const char* where;
  std::string message;
};

inline constexpr char kUnclosedString[] = "this text is missing its closing quote";

// ---- Lexical --------------------------------------------------------------------------------

struct comment : seq<one<'#'>, until<eolf>> {};
struct sep : star<sor<plus<space>, comment>> {};
template <typename Rule>
struct tok : seq<Rule, sep> {};

// "..." on one line. A newline or the end of the file before the closing quote is an error at
// the opening quote, because that is where the marketer has to look. Escapes are checked and
// decoded by the action.
struct string_raw {
  template <typename ParseInput>
  static bool match(ParseInput& in) {
    if (in.empty() || in.peek_char() != '"') return false;
    const char* p = in.current() + 1;
    const char* end = in.end();
    while (p != end && *p != '\n' && *p != '\r') {
      if (*p == '"') {
        in.bump(static_cast<size_t>(p + 1 - in.current()));
        return true;
      }
      p += (*p == '\\' && p + 1 != end && p[1] != '\n' && p[1] != '\r') ? 2 : 1;
    }
    throw SyntaxError{in.current(), kUnclosedString};
  }
};

struct digits : plus<digit> {};
struct integer_raw : seq<digits, not_at<identifier_other>> {};
struct number_raw : seq<opt<one<'-'>>, digits, opt<one<'.'>, digits>, not_at<one<'.'>>,
                        not_at<identifier_other>> {};
struct duration_unit : one<'s', 'm', 'h', 'd', 'w'> {};
struct duration_raw : seq<plus<digits, duration_unit>, not_at<identifier_other>> {};
struct time_raw : seq<digit, digit, one<':'>, digit, digit, not_at<identifier_other>> {};
struct percent_number : seq<digits, opt<one<'.'>, digits>> {};
struct percent_sign : one<'%'> {};
struct percent : seq<percent_number, must<percent_sign>, sep> {};
struct weekday_raw : sor<keyword<'m', 'o', 'n'>, keyword<'t', 'u', 'e'>, keyword<'w', 'e', 'd'>,
                         keyword<'t', 'h', 'u'>, keyword<'f', 'r', 'i'>, keyword<'s', 'a', 't'>,
                         keyword<'s', 'u', 'n'>> {};

// Item-level tokens; each has one action no matter which role it plays.
struct quoted : string_raw {};
struct name_raw : identifier {};
struct step_ref_raw : identifier {};

// Words that start an item cannot name a step, so `then` followed by a new line `then b` is a
// missing step name rather than a step called "then".
struct item_word
    : sor<TAO_PEGTL_KEYWORD("step"), TAO_PEGTL_KEYWORD("then"), TAO_PEGTL_KEYWORD("else"),
          TAO_PEGTL_KEYWORD("if"), TAO_PEGTL_KEYWORD("exit"), TAO_PEGTL_KEYWORD("split"),
          TAO_PEGTL_KEYWORD("wait"), TAO_PEGTL_KEYWORD("when"), TAO_PEGTL_KEYWORD("send"),
          TAO_PEGTL_KEYWORD("alert"), TAO_PEGTL_KEYWORD("assign"), TAO_PEGTL_KEYWORD("set"),
          TAO_PEGTL_KEYWORD("webhook")> {};
template <typename Raw>
struct step_word : seq<not_at<item_word>, tok<Raw>> {};
struct duration : tok<duration_raw> {};
struct integer : tok<integer_raw> {};
struct time_of_day : tok<time_raw> {};
struct weekday : tok<weekday_raw> {};
struct comma : tok<one<','>> {};

#define ITINERA_KEYWORD(name, word) \
  struct name : tok<TAO_PEGTL_KEYWORD(word)> {}

ITINERA_KEYWORD(k_journey, "journey");
ITINERA_KEYWORD(k_step, "step");
ITINERA_KEYWORD(k_version, "version");
ITINERA_KEYWORD(k_enter, "enter");
ITINERA_KEYWORD(k_re_enter, "re_enter");
ITINERA_KEYWORD(k_timezone, "timezone");
ITINERA_KEYWORD(k_quiet_hours, "quiet_hours");
ITINERA_KEYWORD(k_frequency_cap, "frequency_cap");
ITINERA_KEYWORD(k_holdout, "holdout");
ITINERA_KEYWORD(k_exit, "exit");
ITINERA_KEYWORD(k_goal, "goal");
ITINERA_KEYWORD(k_when, "when");
ITINERA_KEYWORD(k_event, "event");
ITINERA_KEYWORD(k_customer, "customer");
ITINERA_KEYWORD(k_where, "where");
ITINERA_KEYWORD(k_within, "within");
ITINERA_KEYWORD(k_never, "never");
ITINERA_KEYWORD(k_after, "after");
ITINERA_KEYWORD(k_always, "always");
ITINERA_KEYWORD(k_or, "or");
ITINERA_KEYWORD(k_to, "to");
ITINERA_KEYWORD(k_per, "per");
ITINERA_KEYWORD(k_send, "send");
ITINERA_KEYWORD(k_as, "as");
ITINERA_KEYWORD(k_alert, "alert");
ITINERA_KEYWORD(k_owner, "owner");
ITINERA_KEYWORD(k_team, "team");
ITINERA_KEYWORD(k_rep, "rep");
ITINERA_KEYWORD(k_assign, "assign");
ITINERA_KEYWORD(k_from, "from");
ITINERA_KEYWORD(k_by, "by");
ITINERA_KEYWORD(k_round_robin, "round_robin");
ITINERA_KEYWORD(k_least_loaded, "least_loaded");
ITINERA_KEYWORD(k_territory, "territory");
ITINERA_KEYWORD(k_set, "set");
ITINERA_KEYWORD(k_webhook, "webhook");
ITINERA_KEYWORD(k_wait, "wait");
ITINERA_KEYWORD(k_until, "until");
ITINERA_KEYWORD(k_on, "on");
ITINERA_KEYWORD(k_up, "up");
ITINERA_KEYWORD(k_for, "for");
ITINERA_KEYWORD(k_then, "then");
ITINERA_KEYWORD(k_if, "if");
ITINERA_KEYWORD(k_else, "else");
ITINERA_KEYWORD(k_split, "split");
ITINERA_KEYWORD(k_received, "received");
ITINERA_KEYWORD(k_timed_out, "timed_out");
ITINERA_KEYWORD(k_and, "and");
ITINERA_KEYWORD(k_not, "not");
ITINERA_KEYWORD(k_has, "has");

#undef ITINERA_KEYWORD

// ---- Expressions ----------------------------------------------------------------------------

struct expression;

// Words that cannot begin a path, so `if not x then y` and `x or y` read as operators.
struct reserved_word
    : sor<TAO_PEGTL_KEYWORD("or"), TAO_PEGTL_KEYWORD("and"), TAO_PEGTL_KEYWORD("not"),
          TAO_PEGTL_KEYWORD("in"), TAO_PEGTL_KEYWORD("contains"), TAO_PEGTL_KEYWORD("has"),
          TAO_PEGTL_KEYWORD("true"), TAO_PEGTL_KEYWORD("false"), TAO_PEGTL_KEYWORD("null"),
          TAO_PEGTL_KEYWORD("then"), TAO_PEGTL_KEYWORD("else")> {};
struct path_segment : identifier {};
struct path : seq<not_at<reserved_word>, identifier, star<one<'.'>, must<path_segment>>> {};

struct expr_string : string_raw {};
struct expr_number : number_raw {};
struct expr_duration : duration_raw {};
struct expr_true : TAO_PEGTL_KEYWORD("true") {};
struct expr_false : TAO_PEGTL_KEYWORD("false") {};
struct expr_null : TAO_PEGTL_KEYWORD("null") {};
struct expr_path : path {};
struct has_path : tok<expr_path> {};
struct has_expr : seq<k_has, must<has_path>> {};
struct close_paren : tok<one<')'>> {};
struct paren_expr : seq<tok<one<'('>>, must<expression>, must<close_paren>> {};
struct list_open : tok<one<'['>> {};
struct list_close : tok<one<']'>> {};
struct list_body
    : sor<list_close, seq<expression, star<comma, must<expression>>, must<list_close>>> {};
struct list_expr : seq<list_open, must<list_body>> {};
struct primary : sor<paren_expr, list_expr, has_expr,
                     seq<sor<expr_duration, expr_number, expr_string, expr_true, expr_false,
                             expr_null, expr_path>,
                         sep>> {};

struct unary;
struct neg_op : tok<one<'-'>> {};
struct neg_expr : seq<neg_op, must<unary>> {};
struct unary : sor<primary, neg_expr> {};

struct mul_op : tok<one<'*', '/'>> {};
struct mul_tail : seq<mul_op, must<unary>> {};
struct mul_expr : seq<unary, star<mul_tail>> {};

struct add_op : tok<one<'+', '-'>> {};
struct add_tail : seq<add_op, must<mul_expr>> {};
struct add_expr : seq<mul_expr, star<add_tail>> {};

// A lone `=` is almost always a comparison written the spreadsheet way; say so.
struct lone_equals : seq<one<'='>, not_at<one<'='>>> {};
struct cmp_op
    : tok<sor<string<'=', '='>, string<'!', '='>, string<'<', '='>, string<'>', '='>, one<'<'>,
              one<'>'>, TAO_PEGTL_KEYWORD("in"), TAO_PEGTL_KEYWORD("contains"), lone_equals>> {};
struct cmp_tail : seq<cmp_op, must<add_expr>> {};
struct cmp_expr : seq<add_expr, opt<cmp_tail>> {};

struct not_expr;
struct not_op : k_not {};
struct not_tail : seq<not_op, must<not_expr>> {};
struct not_expr : sor<not_tail, cmp_expr> {};

struct and_op : k_and {};
struct and_tail : seq<and_op, must<not_expr>> {};
struct and_expr : seq<not_expr, star<and_tail>> {};

struct or_op : k_or {};
struct or_tail : seq<or_op, must<and_expr>> {};
struct or_expr : seq<and_expr, star<or_tail>> {};

struct expression : or_expr {};

// ---- Settings -------------------------------------------------------------------------------

struct event_type : tok<quoted> {};
struct where_clause : seq<k_where, must<expression>> {};
struct event_matcher : seq<k_event, must<event_type>, opt<where_clause>> {};

struct journey_name : tok<name_raw> {};
struct journey_title : tok<quoted> {};
struct open_journey : tok<one<'{'>> {};
struct journey_header : seq<k_journey, must<journey_name>, opt<journey_title>, must<open_journey>> {
};

struct version_setting : seq<k_version, must<integer>> {};

struct enter_customer : seq<k_customer, must<expression>> {};
struct enter_source : sor<event_matcher, enter_customer> {};
struct enter_setting : seq<k_enter, must<k_when>, must<enter_source>> {};

struct re_enter_after : seq<k_after, must<duration>> {};
struct re_enter_mode : sor<k_never, re_enter_after, k_always> {};
struct re_enter_setting : seq<k_re_enter, must<re_enter_mode>> {};

struct zone_name : tok<quoted> {};
struct timezone_path : tok<expr_path> {};
struct timezone_value : sor<seq<timezone_path, opt<k_or, must<zone_name>>>, zone_name> {};
struct timezone_setting : seq<k_timezone, must<timezone_value>> {};

struct quiet_hours_setting : seq<k_quiet_hours, must<time_of_day>, must<k_to>, must<time_of_day>> {
};

struct channel : tok<name_raw> {};
struct cap_count : integer {};
struct frequency_cap_setting
    : seq<k_frequency_cap, must<channel>, must<cap_count>, must<k_per>, must<duration>> {};

struct holdout_setting : seq<k_holdout, must<percent>> {};

struct exit_setting : seq<k_exit, must<k_when>, must<event_matcher>> {};

struct goal_name : tok<quoted> {};
struct goal_within : seq<k_within, must<duration>> {};
struct goal_setting
    : seq<k_goal, must<goal_name>, must<k_when>, must<event_matcher>, opt<goal_within>> {};

// ---- Steps ----------------------------------------------------------------------------------

struct step_name : step_word<name_raw> {};
struct open_step : tok<one<'{'>> {};
struct step_header : seq<k_step, must<step_name>, must<open_step>> {};

struct template_name : tok<quoted> {};
struct handle_name : tok<name_raw> {};
struct send_handle : seq<k_as, must<handle_name>> {};
struct send_action : seq<k_send, must<channel>, must<template_name>, opt<send_handle>> {};

struct team_name : tok<quoted> {};
struct rep_name : tok<quoted> {};
struct alert_owner : k_owner {};
struct alert_team : k_team {};
struct alert_rep : k_rep {};
struct alert_target : sor<seq<alert_owner, must<template_name>>,
                          seq<alert_team, must<team_name>, must<template_name>>,
                          seq<alert_rep, must<rep_name>, must<template_name>>> {};
struct alert_action : seq<k_alert, must<alert_target>> {};

struct by_round_robin : k_round_robin {};
struct by_least_loaded : k_least_loaded {};
struct by_territory : seq<k_territory, must<expression>> {};
struct assign_strategy : sor<by_round_robin, by_least_loaded, by_territory> {};
struct assign_action : seq<k_assign, must<k_owner>, must<k_from>, must<k_team>, must<team_name>,
                           must<k_by>, must<assign_strategy>> {};

struct attribute_dot : one<'.'> {};
struct attribute : identifier {};
struct set_target : seq<TAO_PEGTL_KEYWORD("customer"), must<attribute_dot>, must<attribute>,
                        star<one<'.'>, must<attribute>>, sep> {};
struct set_equals : tok<seq<one<'='>, not_at<one<'='>>>> {};
struct set_action : seq<k_set, must<set_target>, must<set_equals>, must<expression>> {};

struct webhook_name : tok<quoted> {};
struct webhook_action : seq<k_webhook, must<webhook_name>> {};

struct wait_days : seq<k_on, must<weekday>, star<comma, must<weekday>>> {};
struct wait_until : seq<k_until, must<time_of_day>, opt<wait_days>> {};
struct wait_what : sor<wait_until, duration> {};
struct wait_action : seq<k_wait, must<wait_what>> {};

struct then_target : step_word<step_ref_raw> {};
struct then_transition : seq<k_then, must<then_target>> {};

struct exit_reason : tok<quoted> {};
struct exit_transition : seq<k_exit, opt<exit_reason>> {};

struct then_after_condition : k_then {};
struct branch_target : step_word<step_ref_raw> {};
struct else_target_raw : identifier {};
struct else_target : step_word<else_target_raw> {};
struct if_branch : seq<expression, must<then_after_condition>, must<branch_target>> {};
struct else_if : seq<k_else, k_if, must<if_branch>> {};
struct else_branch : seq<k_else, must<else_target>> {};
struct if_transition : seq<k_if, must<if_branch>, star<else_if>, opt<else_branch>> {};

struct split_arrow : tok<string<'-', '>'>> {};
struct split_target : step_word<step_ref_raw> {};
struct split_branch : seq<percent, must<split_arrow>, must<split_target>> {};
struct split_transition : seq<k_split, must<split_branch>, star<comma, must<split_branch>>> {};

struct when_received : k_received {};
struct when_timed_out : k_timed_out {};
struct when_outcome : sor<when_received, when_timed_out> {};
struct then_after_outcome : k_then {};
struct when_target_raw : identifier {};
struct when_target : step_word<when_target_raw> {};
struct when_clause : seq<k_when, must<when_outcome>, must<then_after_outcome>, must<when_target>> {
};
struct up_to : k_to {};
struct wait_for_transition : seq<k_wait, k_up, must<up_to>, must<duration>, must<k_for>,
                                 must<event_matcher>, star<when_clause>> {};

// ---- Error messages -------------------------------------------------------------------------

// The message for a rule that failed inside must<>. Rules without a specialization fall back
// on a generic message; the tests make sure the common mistakes have a specific one.
template <typename Rule>
struct ErrorText {
  static constexpr const char* kText = "unexpected text here";
};

#define ITINERA_ERROR(rule, text)              \
  template <>                                  \
  struct ErrorText<rule> {                     \
    static constexpr const char* kText = text; \
  }

inline constexpr char kExpectedExpression[] =
    "expected a value or condition such as customer.score, 42 or \"text\"";
inline constexpr char kExpectedDuration[] = "expected a duration such as 3d, 12h or 30m";
inline constexpr char kExpectedStepName[] = "expected a step name after `then`";
inline constexpr char kExpectedString[] = "expected a string in double quotes such as \"welcome\"";

ITINERA_ERROR(expression, kExpectedExpression);
ITINERA_ERROR(unary, kExpectedExpression);
ITINERA_ERROR(mul_expr, kExpectedExpression);
ITINERA_ERROR(add_expr, kExpectedExpression);
ITINERA_ERROR(not_expr, kExpectedExpression);
ITINERA_ERROR(and_expr, kExpectedExpression);
ITINERA_ERROR(path_segment, "expected a name after `.`");
ITINERA_ERROR(has_path, "expected a path such as customer.phone after `has`");
ITINERA_ERROR(close_paren, "expected `)` to close the `(`");
ITINERA_ERROR(list_body, "expected a list item or `]`");
ITINERA_ERROR(list_close, "expected `,` or `]` to close the list");

ITINERA_ERROR(duration, kExpectedDuration);
ITINERA_ERROR(integer, "expected a whole number such as 2");
ITINERA_ERROR(time_of_day, "expected a time of day such as 09:30");
ITINERA_ERROR(percent, "expected a percentage such as 5% or 12.5%");
ITINERA_ERROR(percent_sign, "expected `%` after the percentage");
ITINERA_ERROR(weekday, "expected a weekday: mon, tue, wed, thu, fri, sat or sun");

ITINERA_ERROR(journey_name, "expected the journey's id (letters, digits and _) after `journey`");
ITINERA_ERROR(open_journey, "expected `{` to open the journey");
ITINERA_ERROR(journey_header, "expected `journey <id> {`");
ITINERA_ERROR(k_when, "expected `when`");
ITINERA_ERROR(event_type, "expected the event type in double quotes such as \"purchase\"");
ITINERA_ERROR(event_matcher, "expected `event \"<type>\"` after `when`");
ITINERA_ERROR(enter_source,
              "expected `event \"<type>\"` or `customer <condition>` after `enter when`");
ITINERA_ERROR(re_enter_mode, "expected `never`, `after <duration>` or `always` after `re_enter`");
ITINERA_ERROR(zone_name, "expected a time zone in double quotes such as \"Europe/Prague\"");
ITINERA_ERROR(timezone_value,
              "expected a path such as customer.timezone or a zone such as \"Europe/Prague\"");
ITINERA_ERROR(k_to, "expected `to` between the two times, as in 21:00 to 08:00");
ITINERA_ERROR(channel, "expected a channel such as email or sms");
ITINERA_ERROR(cap_count, "expected how many messages are allowed, such as 3");
ITINERA_ERROR(k_per, "expected `per` and a duration, as in 3 per 7d");
ITINERA_ERROR(goal_name, "expected the goal's name in double quotes such as \"purchase\"");

ITINERA_ERROR(step_name, "expected a step name after `step`");
ITINERA_ERROR(open_step, "expected `{` to open the step");
ITINERA_ERROR(template_name, kExpectedString);
ITINERA_ERROR(handle_name, "expected a name for the message after `as`, such as offer");
ITINERA_ERROR(team_name, "expected a team name in double quotes such as \"prague_sales\"");
ITINERA_ERROR(rep_name, "expected a rep id in double quotes such as \"jana\"");
ITINERA_ERROR(alert_target, "expected `owner`, `team \"<team>\"` or `rep \"<rep>\"` after `alert`");
ITINERA_ERROR(k_owner, "expected `owner` after `assign`");
ITINERA_ERROR(k_from, "expected `from team \"<team>\"`");
ITINERA_ERROR(k_team, "expected `team \"<team>\"` after `from`");
ITINERA_ERROR(k_by, "expected `by` and a routing rule, as in by round_robin");
ITINERA_ERROR(assign_strategy,
              "expected `round_robin`, `least_loaded` or `territory <expression>` after `by`");
ITINERA_ERROR(set_target, "expected a profile attribute such as customer.lead_stage after `set`");
ITINERA_ERROR(attribute_dot, "expected `.` and an attribute name after `customer`");
ITINERA_ERROR(attribute, "expected an attribute name after `.`");
ITINERA_ERROR(set_equals, "expected `=` and a value after the attribute");
ITINERA_ERROR(webhook_name, "expected a webhook name in double quotes such as \"crm_task\"");
ITINERA_ERROR(wait_what, kExpectedDuration);
ITINERA_ERROR(then_target, kExpectedStepName);
ITINERA_ERROR(if_branch, kExpectedExpression);
ITINERA_ERROR(then_after_condition, "expected `then` after the condition");
ITINERA_ERROR(branch_target, kExpectedStepName);
ITINERA_ERROR(else_target, "expected a step name or `if` after `else`");
ITINERA_ERROR(split_branch, "expected a percentage such as 50% and `-> <step>`");
ITINERA_ERROR(split_arrow, "expected `->` and a step name after the percentage");
ITINERA_ERROR(split_target, "expected a step name after `->`");
ITINERA_ERROR(up_to, "expected `to` and a duration, as in wait up to 3d");
ITINERA_ERROR(k_for, "expected `for event \"<type>\"` after the duration");
ITINERA_ERROR(when_outcome, "expected `received` or `timed_out` after `when`");
ITINERA_ERROR(then_after_outcome, "expected `then` and a step name");
ITINERA_ERROR(when_target, kExpectedStepName);

#undef ITINERA_ERROR

}  // namespace itinera::dsl::grammar

#endif  // ITINERA_DSL_GRAMMAR_H_
