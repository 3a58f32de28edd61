// Journey text to syntax tree: the driver around the PEGTL grammar.
//
// The grammar (grammar.h) knows one item at a time: the journey header, a setting, a step
// header, an action or a transition. This driver looks at the first word of each item, runs the
// matching rule, turns what it captured into AST nodes, and on a syntax error records a
// diagnostic and resumes at the next line that starts something it knows. Doing recovery here
// rather than inside the grammar keeps both simple, and is what lets one run report many errors.
#include "dsl/parser.h"

#include <algorithm>
#include <array>
#include <exception>
#include <string_view>

#include "dsl/grammar.h"
#include "dsl/parse_actions.h"
#include "dsl/source_text.h"

namespace itinera::dsl {
namespace {

namespace g = grammar;
using internal::ItemState;

// Past this many, further errors are mostly echoes of the first ones.
constexpr size_t kMaxErrors = 50;

const std::vector<std::string> kSettingWords = {"version",  "enter",       "re_enter",
                                                "timezone", "quiet_hours", "frequency_cap",
                                                "holdout",  "exit",        "goal"};
const std::vector<std::string> kActionWords = {"send", "alert", "assign", "set", "webhook", "wait"};
const std::vector<std::string> kTransitionWords = {"then", "exit", "if", "split", "wait"};

bool Contains(const std::vector<std::string>& words, std::string_view w) {
  return std::find(words.begin(), words.end(), w) != words.end();
}

bool IsIdentifierChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// Where a resumed parse may pick up again.
enum class Context { kJourney, kStep };

class Parser {
 public:
  Parser(std::string_view text, const std::string& file)
      : text_(text), file_(file), locator_(text) {}

  ParseResult Run() {
    result_.journey.file = file_;
    CheckEncoding();
    try {
      ParseJourney();
    } catch (const TooManyErrors&) {
      // Enough has been said about this file.
    }
    std::stable_sort(
        result_.diagnostics.begin(), result_.diagnostics.end(),
        [](const Diagnostic& a, const Diagnostic& b) { return a.pos.byte < b.pos.byte; });
    return std::move(result_);
  }

 private:
  struct TooManyErrors {};

  // ---- Diagnostics and scanning -------------------------------------------------------------

  void Error(size_t byte, std::string message) {
    // A bad byte already reported by CheckEncoding usually also breaks the grammar there;
    // one message per spot is enough.
    for (const Diagnostic& d : result_.diagnostics) {
      if (d.pos.byte == byte) return;
    }
    if (result_.diagnostics.size() >= kMaxErrors) throw TooManyErrors{};
    result_.diagnostics.push_back(
        Diagnostic{Diagnostic::Severity::kError, file_, locator_.At(byte), std::move(message)});
  }

  // NUL bytes and invalid UTF-8 are reported once each wherever they are, including inside
  // strings and comments, which the grammar otherwise accepts byte by byte.
  void CheckEncoding() {
    constexpr size_t kMaxEncodingErrors = 10;
    size_t reported = 0;
    for (size_t i = 0; i < text_.size() && reported < kMaxEncodingErrors;) {
      size_t n = internal::Utf8SequenceLength(text_, i);
      if (n == 1 && text_[i] == '\0') {
        Error(i, "unexpected NUL byte");
        ++reported;
      } else if (n == 0) {
        Error(i, "invalid UTF-8 byte");
        ++reported;
      }
      i += n == 0 ? 1 : n;
    }
  }

  size_t SkipSpace(size_t pos) const {
    while (pos < text_.size()) {
      char c = text_[pos];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
        ++pos;
      } else if (c == '#') {
        while (pos < text_.size() && text_[pos] != '\n') ++pos;
      } else {
        break;
      }
    }
    return pos;
  }

  // Just past the last non-space byte, where a missing closing brace belongs.
  size_t EndOfLastToken() const {
    size_t end = text_.size();
    while (end > 0 &&
           std::string_view(" \t\r\n\v\f").find(text_[end - 1]) != std::string_view::npos) {
      --end;
    }
    return end;
  }

  std::string_view WordAt(size_t pos) const {
    size_t end = pos;
    while (end < text_.size() && IsIdentifierChar(text_[end])) ++end;
    if (end == pos || (text_[pos] >= '0' && text_[pos] <= '9')) return {};
    return text_.substr(pos, end - pos);
  }

  // A word that starts an item here, or a likely misspelling of one (reported as unknown
  // rather than silently skipped).
  static bool IsRecoveryWord(std::string_view word, Context context) {
    // `when` and `else` continue a transition that failed; resuming there would only echo it.
    if (word.empty() || word == "when" || word == "else") return false;
    std::vector<std::string> words = kSettingWords;
    words.push_back("step");
    if (context == Context::kStep) {
      words.insert(words.end(), kActionWords.begin(), kActionWords.end());
      words.insert(words.end(), kTransitionWords.begin(), kTransitionWords.end());
    }
    return SuggestSpelling(word, words).has_value();
  }

  // After an error at `pos`: the next `}` (which closes the enclosing block) or the first word
  // of a later line that starts an item. Strings and comments are skipped whole so a `}` in
  // them does not count. Always moves past the line of `pos` unless it stops at a `}`.
  size_t Recover(size_t pos, Context context) const {
    while (pos < text_.size()) {
      char c = text_[pos];
      if (c == '}') return pos;
      if (c == '"') {
        for (++pos; pos < text_.size() && text_[pos] != '"' && text_[pos] != '\n'; ++pos) {
          if (text_[pos] == '\\' && pos + 1 < text_.size() && text_[pos + 1] != '\n') ++pos;
        }
        if (pos < text_.size() && text_[pos] == '"') ++pos;
      } else if (c == '#') {
        while (pos < text_.size() && text_[pos] != '\n') ++pos;
      } else if (c == '\n') {
        ++pos;
        size_t start = pos;
        while (start < text_.size() && (text_[start] == ' ' || text_[start] == '\t')) ++start;
        if (IsRecoveryWord(WordAt(start), context)) return start;
      } else {
        ++pos;
      }
    }
    return pos;
  }

  // Runs `Rule` at `pos` with error control. On success returns true and moves `pos` past the
  // item; on failure records the error and leaves `*error_at` at it.
  template <typename Rule>
  bool Match(size_t& pos, ItemState& state, size_t* error_at) {
    tao::pegtl::memory_input<tao::pegtl::tracking_mode::lazy, tao::pegtl::eol::lf_crlf> in(
        text_.data() + pos, text_.data() + text_.size(), "");
    size_t at = pos;
    std::string message;
    try {
      tao::pegtl::parse<tao::pegtl::must<Rule>, internal::Action, internal::Control>(in, state);
      pos = static_cast<size_t>(in.current() - text_.data());
      return true;
    } catch (const g::SyntaxError& e) {
      at = static_cast<size_t>(e.where - text_.data());
      message = e.message;
    } catch (const std::exception& e) {
      // Not expected from this grammar; kept so Parse never throws whatever happens.
      at = static_cast<size_t>(in.current() - text_.data());
      message = std::string("cannot read this: ") + e.what();
    }
    *error_at = at;
    Error(at, std::move(message));
    return false;
  }

  // ---- File and steps -----------------------------------------------------------------------

  void ParseJourney() {
    Journey& journey = result_.journey;
    size_t pos = SkipSpace(0);
    journey.pos = locator_.At(pos);
    ItemState header(text_.data(), &locator_);
    size_t error_at = 0;
    if (Match<g::journey_header>(pos, header, &error_at)) {
      journey.id = header.names[0];
      if (!header.strings.empty()) journey.title = header.strings[0].text;
    } else {
      if (!header.names.empty()) journey.id = header.names[0];
      if (error_at >= text_.size()) return;
      pos = Recover(error_at, Context::kJourney);
    }

    bool seen_step = false;
    while (true) {
      pos = SkipSpace(pos);
      if (pos >= text_.size()) {
        Error(EndOfLastToken(), "expected `}` to close the journey");
        return;
      }
      if (text_[pos] == '}') {
        size_t after = SkipSpace(pos + 1);
        if (after < text_.size()) {
          Error(after, "unexpected text after the journey's closing `}`; a file holds one journey");
        }
        return;
      }
      std::string_view word = WordAt(pos);
      if (word == "step") {
        pos = ParseStep(pos);
        seen_step = true;
      } else if (Contains(kSettingWords, word)) {
        if (seen_step) {
          Error(pos,
                "settings such as `" + std::string(word) + "` must come before the first step");
        }
        pos = ParseSetting(pos, word);
      } else if (Contains(kActionWords, word) || Contains(kTransitionWords, word)) {
        Error(pos, "`" + std::string(word) + "` belongs inside a step: step <id> { ... }");
        pos = Recover(pos, Context::kJourney);
      } else if (!word.empty()) {
        std::vector<std::string> known = kSettingWords;
        known.push_back("step");
        Error(pos, Unknown("setting", word, known));
        pos = Recover(pos, Context::kJourney);
      } else {
        Error(pos, "expected a setting such as `enter`, a `step`, or `}` to close the journey");
        pos = Recover(pos, Context::kJourney);
      }
    }
  }

  static std::string Unknown(const char* what, std::string_view word,
                             const std::vector<std::string>& known) {
    std::string message = std::string("unknown ") + what + " `" + std::string(word) + "`";
    if (auto s = SuggestSpelling(word, known)) message += "; did you mean `" + *s + "`?";
    return message;
  }

  size_t ParseStep(size_t pos) {
    ItemState header(text_.data(), &locator_);
    Step step;
    step.pos = locator_.At(pos);
    size_t error_at = 0;
    if (Match<g::step_header>(pos, header, &error_at)) {
      step.id = header.names[0];
    } else {
      if (!header.names.empty()) step.id = header.names[0];
      // Read the body anyway, from the `{` if it is on this line, so its errors are found too.
      pos = error_at;
      while (pos < text_.size() && text_[pos] != '\n' && text_[pos] != '{') ++pos;
      if (pos < text_.size() && text_[pos] == '{') ++pos;
    }

    std::optional<size_t> transition_at;
    while (true) {
      pos = SkipSpace(pos);
      if (pos >= text_.size()) {
        Error(EndOfLastToken(), "expected `}` to close step `" + step.id.text + "`");
        break;
      }
      if (text_[pos] == '}') {
        step.close_pos = locator_.At(pos);
        ++pos;
        break;
      }
      std::string_view word = WordAt(pos);
      if (word == "step") {
        Error(pos, "expected `}` to close step `" + step.id.text + "` before the next step");
        step.close_pos = locator_.At(pos);
        break;
      }
      bool is_wait_for = word == "wait" && WordAt(SkipSpace(pos + 4)) == "up";
      bool is_transition = is_wait_for || (word != "wait" && Contains(kTransitionWords, word));
      if (is_transition) {
        if (transition_at) {
          Error(pos, "a step has one transition, and this one already has `" +
                         std::string(WordAt(*transition_at)) + "` at line " +
                         std::to_string(locator_.At(*transition_at).line));
        }
        size_t start = pos;
        std::optional<Transition> t = ParseTransition(pos, word, is_wait_for);
        if (t && !transition_at) {
          step.transition = std::move(t);
          transition_at = start;
        }
        continue;
      }
      if (Contains(kActionWords, word)) {
        if (transition_at) {
          Error(pos, "the step's transition (then/exit/if/split/wait up to) must come last");
        }
        if (std::optional<Action> a = ParseAction(pos, word)) step.actions.push_back(std::move(*a));
        continue;
      }
      if (Contains(kSettingWords, word)) {
        Error(pos, "`" + std::string(word) + "` is a setting; settings go before the first step");
      } else if (word == "when") {
        Error(pos, "`when received` and `when timed_out` must follow `wait up to ... for event`");
      } else if (word == "else") {
        Error(pos, "`else` must follow `if <condition> then <step>`");
      } else if (!word.empty()) {
        std::vector<std::string> known = kActionWords;
        known.insert(known.end(), kTransitionWords.begin(), kTransitionWords.end());
        Error(pos, Unknown("action", word, known));
      } else {
        Error(pos, "expected an action such as `send`, a transition such as `then`, or `}`");
      }
      pos = Recover(pos, Context::kStep);
    }
    result_.journey.steps.push_back(std::move(step));
    return pos;
  }

  // Runs `Rule` for one item; on failure resumes at the next item and returns nullopt.
  template <typename Rule>
  std::optional<ItemState> Item(size_t& pos, Context context) {
    ItemState state(text_.data(), &locator_);
    size_t error_at = 0;
    if (Match<Rule>(pos, state, &error_at)) return state;
    pos = Recover(error_at, context);
    return std::nullopt;
  }

  // ---- Settings -----------------------------------------------------------------------------

  static EventMatcher TakeEvent(ItemState& s, size_t string_index) {
    EventMatcher m;
    m.type = s.strings[string_index];
    if (!s.exprs.empty()) m.where = s.exprs.back();
    return m;
  }

  size_t ParseSetting(size_t pos, std::string_view word) {
    SourcePos at = locator_.At(pos);
    std::vector<Setting>& out = result_.journey.settings;
    if (word == "version") {
      if (auto s = Item<g::version_setting>(pos, Context::kJourney)) {
        out.push_back(VersionSetting{s->integers[0].first, at});
      }
    } else if (word == "enter") {
      if (auto s = Item<g::enter_setting>(pos, Context::kJourney)) {
        EnterSetting e;
        e.pos = at;
        if (s->choice == 1) {
          e.customer_condition = s->exprs[0];
        } else {
          e.event = TakeEvent(*s, 0);
        }
        out.push_back(std::move(e));
      }
    } else if (word == "re_enter") {
      if (auto s = Item<g::re_enter_setting>(pos, Context::kJourney)) {
        ReEnterSetting r;
        r.pos = at;
        r.kind = static_cast<ReEnterSetting::Kind>(s->choice);
        if (!s->durations.empty()) r.after_seconds = s->durations[0].first;
        out.push_back(r);
      }
    } else if (word == "timezone") {
      if (auto s = Item<g::timezone_setting>(pos, Context::kJourney)) {
        TimezoneSetting t;
        t.pos = at;
        if (!s->exprs.empty()) t.path = s->exprs[0];
        if (!s->strings.empty()) t.fallback = s->strings[0];
        out.push_back(std::move(t));
      }
    } else if (word == "quiet_hours") {
      if (auto s = Item<g::quiet_hours_setting>(pos, Context::kJourney)) {
        out.push_back(QuietHoursSetting{s->times[0], s->times[1], at});
      }
    } else if (word == "frequency_cap") {
      if (auto s = Item<g::frequency_cap_setting>(pos, Context::kJourney)) {
        out.push_back(
            FrequencyCapSetting{s->names[0], s->integers[0].first, s->durations[0].first, at});
      }
    } else if (word == "holdout") {
      if (auto s = Item<g::holdout_setting>(pos, Context::kJourney)) {
        out.push_back(HoldoutSetting{s->percents[0].first, at});
      }
    } else if (word == "exit") {
      if (auto s = Item<g::exit_setting>(pos, Context::kJourney)) {
        out.push_back(ExitSetting{TakeEvent(*s, 0), at});
      }
    } else if (word == "goal") {
      if (auto s = Item<g::goal_setting>(pos, Context::kJourney)) {
        GoalSetting goal;
        goal.pos = at;
        goal.name = s->strings[0];
        goal.event = TakeEvent(*s, 1);
        if (!s->durations.empty()) goal.within_seconds = s->durations[0].first;
        out.push_back(std::move(goal));
      }
    }
    return pos;
  }

  // ---- Actions and transitions --------------------------------------------------------------

  std::optional<Action> ParseAction(size_t& pos, std::string_view word) {
    SourcePos at = locator_.At(pos);
    if (word == "send") {
      auto s = Item<g::send_action>(pos, Context::kStep);
      if (!s) return std::nullopt;
      SendAction a{s->names[0], s->strings[0], std::nullopt, at};
      if (s->names.size() > 1) a.handle = s->names[1];
      return a;
    }
    if (word == "alert") {
      auto s = Item<g::alert_action>(pos, Context::kStep);
      if (!s) return std::nullopt;
      AlertAction a;
      a.pos = at;
      a.target = static_cast<AlertAction::Target>(s->choice);
      if (s->strings.size() > 1) a.target_name = s->strings[0];
      a.template_name = s->strings.back();
      return a;
    }
    if (word == "assign") {
      auto s = Item<g::assign_action>(pos, Context::kStep);
      if (!s) return std::nullopt;
      AssignAction a;
      a.pos = at;
      a.team = s->strings[0];
      a.strategy = static_cast<AssignAction::Strategy>(s->choice);
      if (!s->exprs.empty()) a.territory = s->exprs[0];
      return a;
    }
    if (word == "set") {
      auto s = Item<g::set_action>(pos, Context::kStep);
      if (!s) return std::nullopt;
      return SetAction{std::move(s->attribute), s->attribute_pos, s->exprs[0], at};
    }
    if (word == "webhook") {
      auto s = Item<g::webhook_action>(pos, Context::kStep);
      if (!s) return std::nullopt;
      return WebhookAction{s->strings[0], at};
    }
    auto s = Item<g::wait_action>(pos, Context::kStep);
    if (!s) return std::nullopt;
    if (s->times.empty()) return WaitAction{s->durations[0].first, at};
    return WaitUntilAction{s->times[0], std::move(s->weekdays), at};
  }

  std::optional<Transition> ParseTransition(size_t& pos, std::string_view word, bool wait_for) {
    SourcePos at = locator_.At(pos);
    if (wait_for) {
      auto s = Item<g::wait_for_transition>(pos, Context::kStep);
      if (!s) return std::nullopt;
      WaitForTransition w;
      w.pos = at;
      w.timeout_seconds = s->durations[0].first;
      w.event = TakeEvent(*s, 0);
      for (ItemState::Outcome& o : s->outcomes) {
        std::optional<StepRef>& slot = o.received ? w.received : w.timed_out;
        if (slot) {
          Error(o.target.pos.byte, std::string("this wait already says where to go when ") +
                                       (o.received ? "the event is received" : "it times out") +
                                       ", at line " + std::to_string(slot->pos.line));
        } else {
          slot = std::move(o.target);
        }
      }
      return w;
    }
    if (word == "then") {
      auto s = Item<g::then_transition>(pos, Context::kStep);
      if (!s) return std::nullopt;
      return ThenTransition{s->targets[0], at};
    }
    if (word == "exit") {
      auto s = Item<g::exit_transition>(pos, Context::kStep);
      if (!s) return std::nullopt;
      ExitTransition e;
      e.pos = at;
      if (!s->strings.empty()) e.reason = s->strings[0].text;
      return e;
    }
    if (word == "if") {
      auto s = Item<g::if_transition>(pos, Context::kStep);
      if (!s) return std::nullopt;
      IfTransition t;
      t.pos = at;
      for (size_t i = 0; i < s->exprs.size(); ++i) {
        t.branches.push_back(IfTransition::Branch{s->exprs[i], s->targets[i]});
      }
      t.otherwise = s->else_target;
      return t;
    }
    auto s = Item<g::split_transition>(pos, Context::kStep);
    if (!s) return std::nullopt;
    SplitTransition t;
    t.pos = at;
    for (size_t i = 0; i < s->percents.size(); ++i) {
      t.branches.push_back(
          SplitTransition::Branch{s->percents[i].first, s->percents[i].second, s->targets[i]});
    }
    return t;
  }

  std::string_view text_;
  const std::string& file_;
  internal::Locator locator_;
  ParseResult result_;
};

}  // namespace

ParseResult Parse(std::string_view text, const std::string& file) {
  return Parser(text, file).Run();
}

}  // namespace itinera::dsl
