// Drawing a Program. Both formats are built from one neutral description (nodes with label
// lines, edges with an optional label) so dot and Mermaid always show the same graph; only the
// quoting differs. Node names are "start", "step_<id>" and "exit_<n>": step ids are identifiers,
// so the prefix keeps them apart from the other nodes and from Mermaid's keywords ("end").

#include "dsl/graph.h"

#include <cmath>
#include <initializer_list>
#include <iterator>
#include <string>
#include <variant>
#include <vector>

#include "dsl/check_internal.h"

namespace itinera::dsl {
namespace {

// ---- Expressions --------------------------------------------------------------------------

// Binding strength, loosest first, as DSL.md lists the operators.
enum Level {
  kLevelOr = 1,
  kLevelAnd,
  kLevelNot,
  kLevelCompare,
  kLevelAdd,
  kLevelMul,
  kLevelNeg,
  kLevelHas,
  kLevelAtom,
};

int LevelOf(const Expr& e) {
  switch (e.kind) {
    case Expr::Kind::kLiteral:
      // A negative number prints with its sign, so it must be guarded like a negation.
      return e.literal.is_number() && e.literal.get<double>() < 0 ? kLevelNeg : kLevelAtom;
    case Expr::Kind::kList:
    case Expr::Kind::kPath:
      return kLevelAtom;
    case Expr::Kind::kHas:
      return kLevelHas;
    case Expr::Kind::kUnary:
      return e.op == Op::kNot ? kLevelNot : kLevelNeg;
    case Expr::Kind::kBinary:
      switch (e.op) {
        case Op::kOr:
          return kLevelOr;
        case Op::kAnd:
          return kLevelAnd;
        case Op::kAdd:
        case Op::kSub:
          return kLevelAdd;
        case Op::kMul:
        case Op::kDiv:
          return kLevelMul;
        default:
          return kLevelCompare;
      }
  }
  return kLevelAtom;
}

// A string as the journey language writes it.
std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += c;
    }
  }
  return out + "\"";
}

std::string LiteralToString(const nlohmann::json& v) {
  if (v.is_string()) return Quote(v.get<std::string>());
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e15) {
      return std::to_string(static_cast<long long>(d));
    }
  }
  return v.dump();  // integers, true, false, null
}

// ---- The neutral graph --------------------------------------------------------------------

struct Node {
  std::string name;
  std::vector<std::string> lines;
  enum class Shape { kStart, kStep, kExit } shape;
};

struct GraphEdge {
  std::string from, to, label;
};

struct Graph {
  std::vector<Node> nodes;
  std::vector<GraphEdge> edges;
};

std::string StepNode(const std::string& id) { return "step_" + id; }

std::string Weekdays(const std::vector<int>& days) {
  static const char* const kNames[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
  std::string out;
  for (int d : days) {
    if (!out.empty()) out += ", ";
    out += d >= 1 && d <= 7 ? kNames[d - 1] : "?";
  }
  return out;
}

std::string ActionLine(const Action& action) {
  if (const auto* a = std::get_if<SendAction>(&action)) {
    std::string s = "send " + a->channel.text + " " + Quote(a->template_name.text);
    return a->handle ? s + " as " + a->handle->text : s;
  }
  if (const auto* a = std::get_if<AlertAction>(&action)) {
    switch (a->target) {
      case AlertAction::Target::kOwner:
        return "alert owner " + Quote(a->template_name.text);
      case AlertAction::Target::kTeam:
        return "alert team " + Quote(a->target_name.text) + " " + Quote(a->template_name.text);
      case AlertAction::Target::kRep:
        return "alert rep " + Quote(a->target_name.text) + " " + Quote(a->template_name.text);
    }
  }
  if (const auto* a = std::get_if<AssignAction>(&action)) {
    std::string s = "assign owner from team " + Quote(a->team.text) + " by ";
    switch (a->strategy) {
      case AssignAction::Strategy::kRoundRobin:
        return s + "round_robin";
      case AssignAction::Strategy::kLeastLoaded:
        return s + "least_loaded";
      case AssignAction::Strategy::kTerritory:
        return s + "territory " + (a->territory ? ExprToString(*a->territory) : "?");
    }
  }
  if (const auto* a = std::get_if<SetAction>(&action)) {
    std::string s = "set customer";
    for (const std::string& part : a->attribute) s += "." + part;
    return s + " = " + (a->value ? ExprToString(*a->value) : "?");
  }
  if (const auto* a = std::get_if<WebhookAction>(&action)) return "webhook " + Quote(a->name.text);
  if (const auto* a = std::get_if<WaitAction>(&action)) {
    return "wait " + internal::FormatSeconds(a->seconds);
  }
  if (const auto* a = std::get_if<WaitUntilAction>(&action)) {
    std::string s = "wait until " + internal::FormatTimeOfDay(a->at);
    return a->weekdays.empty() ? s : s + " on " + Weekdays(a->weekdays);
  }
  return "?";
}

Graph Describe(const Program& p) {
  Graph g;
  g.nodes.push_back({"start", {"start"}, Node::Shape::kStart});
  if (!p.steps.empty()) g.edges.push_back({"start", StepNode(p.steps[0].id.text), ""});
  std::vector<std::string> exit_reasons;  // exit_<n> is exit_reasons[n]
  auto exit_node = [&](const std::string& reason) {
    size_t n = 0;
    while (n < exit_reasons.size() && exit_reasons[n] != reason) ++n;
    if (n == exit_reasons.size()) exit_reasons.push_back(reason);
    return "exit_" + std::to_string(n);
  };
  for (const Step& step : p.steps) {
    std::string from = StepNode(step.id.text);
    Node node{from, {step.id.text}, Node::Shape::kStep};
    for (const Action& a : step.actions) node.lines.push_back(ActionLine(a));
    auto edge = [&](const StepRef& to, std::string label) {
      g.edges.push_back({from, StepNode(to.id), std::move(label)});
    };
    if (!step.transition) {
      g.nodes.push_back(std::move(node));
      continue;
    }
    const Transition& t = *step.transition;
    if (const auto* x = std::get_if<ThenTransition>(&t)) {
      edge(x->target, "");
    } else if (const auto* x = std::get_if<ExitTransition>(&t)) {
      g.edges.push_back({from, exit_node(x->reason.value_or("completed")), ""});
    } else if (const auto* x = std::get_if<IfTransition>(&t)) {
      for (size_t i = 0; i < x->branches.size(); ++i) {
        const IfTransition::Branch& b = x->branches[i];
        edge(b.target, std::string(i == 0 ? "if " : "else if ") +
                           (b.condition ? ExprToString(*b.condition) : "?"));
      }
      if (x->otherwise) edge(*x->otherwise, "else");
    } else if (const auto* x = std::get_if<SplitTransition>(&t)) {
      for (const SplitTransition::Branch& b : x->branches) {
        edge(b.target, internal::FormatPercent(b.percent) + "%");
      }
    } else if (const auto* x = std::get_if<WaitForTransition>(&t)) {
      std::string duration = internal::FormatSeconds(x->timeout_seconds);
      node.lines.push_back("wait up to " + duration + " for event " + Quote(x->event.type.text));
      if (x->received) edge(*x->received, "received");
      if (x->timed_out) edge(*x->timed_out, "timed out (" + duration + ")");
    }
    g.nodes.push_back(std::move(node));
  }
  for (size_t n = 0; n < exit_reasons.size(); ++n) {
    g.nodes.push_back(
        {"exit_" + std::to_string(n), {"exit: " + exit_reasons[n]}, Node::Shape::kExit});
  }
  return g;
}

// ---- Dot ----------------------------------------------------------------------------------

std::string DotQuote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string DrawDot(const Program& p, const Graph& g) {
  std::string out = "digraph " + DotQuote(p.id) + " {\n";
  out += "  rankdir=TB;\n";
  out += "  label=" + DotQuote(p.title) + ";\n";
  out += "  labelloc=t;\n";
  out += "  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n";
  out += "  edge [fontname=\"Helvetica\"];\n";
  for (const Node& n : g.nodes) {
    std::string label;
    for (const std::string& line : n.lines) label += (label.empty() ? "" : "\n") + line;
    out += "  " + DotQuote(n.name) + " [";
    switch (n.shape) {
      case Node::Shape::kStart:
        out += "shape=circle, style=filled, fillcolor=black, fontcolor=white, label=";
        break;
      case Node::Shape::kStep:
        out += "label=";
        break;
      case Node::Shape::kExit:
        out += "shape=doublecircle, label=";
        break;
    }
    out += DotQuote(label) + "];\n";
  }
  for (const GraphEdge& e : g.edges) {
    out += "  " + DotQuote(e.from) + " -> " + DotQuote(e.to);
    if (!e.label.empty()) out += " [label=" + DotQuote(e.label) + "]";
    out += ";\n";
  }
  return out + "}\n";
}

// ---- Mermaid ------------------------------------------------------------------------------

// Mermaid reads entity codes inside quoted labels; escaping '#' first keeps a literal '#' from
// being taken as the start of one.
std::string MermaidText(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '#':
        out += "#35;";
        break;
      case '"':
        out += "#quot;";
        break;
      case '<':
        out += "#lt;";
        break;
      case '>':
        out += "#gt;";
        break;
      case '&':
        out += "#amp;";
        break;
      case '|':  // would end an edge label
        out += "#124;";
        break;
      case '\n':
        out += "<br/>";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string DrawMermaid(const Program& p, const Graph& g) {
  // The title goes in a comment: Mermaid's front-matter title is YAML, which a title with a
  // colon would break.
  std::string title = p.title;
  for (char& c : title) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  std::string out = "flowchart TD\n  %% " + title + "\n";
  for (const Node& n : g.nodes) {
    std::string label;
    for (const std::string& line : n.lines) {
      label += (label.empty() ? "" : "<br/>") + MermaidText(line);
    }
    out += "  " + n.name;
    switch (n.shape) {
      case Node::Shape::kStart:
        out += "((\"" + label + "\"))\n";
        break;
      case Node::Shape::kStep:
        out += "[\"" + label + "\"]\n";
        break;
      case Node::Shape::kExit:
        out += "([\"" + label + "\"])\n";
        break;
    }
  }
  for (const GraphEdge& e : g.edges) {
    out += "  " + e.from + " -->";
    if (!e.label.empty()) out += "|\"" + MermaidText(e.label) + "\"|";
    out += " " + e.to + "\n";
  }
  return out;
}

}  // namespace

// Written out in one pass into one string, with an explicit stack of what is left to write:
// a long chain such as `1 + 1 + ... + 1` makes a tree as deep as it is long, which neither the
// call stack nor re-concatenating every subexpression would survive.
const char* OpText(Op op) {
  switch (op) {
    case Op::kOr:
      return "or";
    case Op::kAnd:
      return "and";
    case Op::kNot:
      return "not";
    case Op::kNeg:
      return "-";
    case Op::kEq:
      return "==";
    case Op::kNe:
      return "!=";
    case Op::kLt:
      return "<";
    case Op::kLe:
      return "<=";
    case Op::kGt:
      return ">";
    case Op::kGe:
      return ">=";
    case Op::kIn:
      return "in";
    case Op::kContains:
      return "contains";
    case Op::kAdd:
      return "+";
    case Op::kSub:
      return "-";
    case Op::kMul:
      return "*";
    case Op::kDiv:
      return "/";
  }
  return "?";
}

std::string ExprToString(const Expr& root) {
  struct Item {
    const Expr* e;  // null: write `text`
    const char* text;
    bool parenthesize;
  };
  std::string out;
  std::vector<Item> todo = {{&root, nullptr, false}};
  // Pushes in reverse, so items come off the stack in the order given.
  auto then = [&todo](std::initializer_list<Item> items) {
    for (auto it = std::rbegin(items); it != std::rend(items); ++it) todo.push_back(*it);
  };
  auto operand = [](const Expr& e, size_t i, bool parenthesize) -> Item {
    if (i >= e.operands.size() || !e.operands[i]) return {nullptr, "?", false};
    return {e.operands[i].get(), nullptr, parenthesize};
  };
  auto level_of = [](const Expr& e, size_t i) {
    return i < e.operands.size() && e.operands[i] ? LevelOf(*e.operands[i]) : kLevelAtom;
  };
  while (!todo.empty()) {
    Item item = todo.back();
    todo.pop_back();
    if (!item.e) {
      out += item.text;
      continue;
    }
    const Expr& e = *item.e;
    if (item.parenthesize) {
      out += "(";
      todo.push_back({nullptr, ")", false});
    }
    switch (e.kind) {
      case Expr::Kind::kLiteral:
        out += LiteralToString(e.literal);
        break;
      case Expr::Kind::kPath:
        for (size_t i = 0; i < e.path.size(); ++i) out += (i > 0 ? "." : "") + e.path[i];
        break;
      case Expr::Kind::kList:
        out += "[";
        todo.push_back({nullptr, "]", false});
        for (size_t i = e.operands.size(); i-- > 0;) {
          todo.push_back(operand(e, i, false));
          if (i > 0) todo.push_back({nullptr, ", ", false});
        }
        break;
      case Expr::Kind::kHas:
        out += "has ";
        todo.push_back(operand(e, 0, false));
        break;
      case Expr::Kind::kUnary:
        if (e.op == Op::kNot) {
          out += "not ";
          todo.push_back(operand(e, 0, level_of(e, 0) < kLevelNot));
        } else {
          out += "-";
          todo.push_back(operand(e, 0, level_of(e, 0) <= kLevelNeg));
        }
        break;
      case Expr::Kind::kBinary: {
        int level = LevelOf(e);
        int left = level_of(e, 0);
        // Operators group to the left, except comparisons, which do not chain at all.
        bool paren_left = left < level || (level == kLevelCompare && left == level);
        then({operand(e, 0, paren_left),
              {nullptr, " ", false},
              {nullptr, OpText(e.op), false},
              {nullptr, " ", false},
              operand(e, 1, level_of(e, 1) <= level)});
        break;
      }
    }
  }
  return out;
}

std::string DrawGraph(const Program& program, GraphFormat format) {
  Graph g = Describe(program);
  return format == GraphFormat::kDot ? DrawDot(program, g) : DrawMermaid(program, g);
}

}  // namespace itinera::dsl
