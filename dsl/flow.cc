// Checks over the step graph: every step a transition names exists, every step can be reached
// from the first, no loop lets a customer go round without waiting, and every message handle an
// expression uses was sent on every path to it.
//
// Only the first definition of a step id takes part; a second one is already an error and is
// otherwise ignored here, like the engine would never reach it. Work is linear in the size of
// the graph apart from the handle dataflow (steps x handles per pass), so hostile files with
// thousands of steps stay fast; nothing recurses on the graph, so deep chains cannot overflow
// the stack.

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "dsl/check_internal.h"

namespace itinera::dsl::internal {
namespace {

struct Edge {
  int to;
  const StepRef* ref;  // where the transition names the target
};

struct StepGraph {
  std::map<std::string, int> index;  // step id -> index of its first definition
  std::vector<bool> primary;         // steps[i] is the first definition of its id
  std::vector<std::vector<Edge>> edges;
  // Edges to the step an unknown name was most likely meant to be ("reminde" -> "reminder").
  // Used for reachability only, so one typo does not also make its target "never reached".
  std::vector<std::vector<int>> guessed;
};

StepGraph BuildGraph(const Journey& j) {
  StepGraph g;
  size_t n = j.steps.size();
  g.primary.assign(n, false);
  g.edges.resize(n);
  g.guessed.resize(n);
  std::vector<std::string> ids;
  for (size_t i = 0; i < n; ++i) {
    if (g.index.emplace(j.steps[i].id.text, static_cast<int>(i)).second) {
      g.primary[i] = true;
      ids.push_back(j.steps[i].id.text);
    }
  }
  for (size_t i = 0; i < n; ++i) {
    if (!g.primary[i] || !j.steps[i].transition) continue;
    for (const StepRef* ref : TargetsOf(*j.steps[i].transition)) {
      if (auto it = g.index.find(ref->id); it != g.index.end()) {
        g.edges[i].push_back(Edge{it->second, ref});
      } else if (std::optional<std::string> guess = SuggestSpelling(ref->id, ids)) {
        if (auto g_it = g.index.find(*guess); g_it != g.index.end()) {
          g.guessed[i].push_back(g_it->second);
        }
      }
    }
  }
  return g;
}

void CheckStepNames(const CheckContext& ctx, const StepGraph& g) {
  std::vector<std::string> ids;
  for (const auto& [id, i] : g.index) ids.push_back(id);
  for (size_t i = 0; i < ctx.journey.steps.size(); ++i) {
    const Step& step = ctx.journey.steps[i];
    if (!step.transition) continue;
    for (const StepRef* ref : TargetsOf(*step.transition)) {
      if (g.index.contains(ref->id)) continue;
      ctx.report.Error(ref->pos, WithSuggestion("unknown step \"" + ref->id + "\"", ref->id, ids));
    }
  }
}

// Steps reachable from the first, following real and guessed edges.
std::vector<bool> Reachable(const StepGraph& g) {
  std::vector<bool> seen(g.edges.size(), false);
  if (g.edges.empty()) return seen;
  std::vector<int> stack = {0};
  seen[0] = true;
  while (!stack.empty()) {
    int u = stack.back();
    stack.pop_back();
    auto visit = [&](int v) {
      if (!seen[v]) {
        seen[v] = true;
        stack.push_back(v);
      }
    };
    for (const Edge& e : g.edges[u]) visit(e.to);
    for (int v : g.guessed[u]) visit(v);
  }
  return seen;
}

void CheckReachable(const CheckContext& ctx, const StepGraph& g, const std::vector<bool>& seen) {
  size_t n = g.edges.size();
  std::vector<bool> has_predecessor(n, false);
  for (size_t u = 0; u < n; ++u) {
    for (const Edge& e : g.edges[u]) {
      if (e.to != static_cast<int>(u)) has_predecessor[e.to] = true;
    }
    for (int v : g.guessed[u]) {
      if (v != static_cast<int>(u)) has_predecessor[v] = true;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    if (!g.primary[i] || seen[i]) continue;
    const Name& id = ctx.journey.steps[i].id;
    ctx.report.Error(id.pos,
                     "step \"" + id.text + "\" is never reached: " +
                         (has_predecessor[i] ? "only steps that are never reached lead to it"
                                             : "no step leads to it"));
  }
}

// A step that makes the customer wait (for a time, or for an event) breaks a loop.
bool Waits(const Step& step) {
  for (const Action& a : step.actions) {
    if (const auto* w = std::get_if<WaitAction>(&a); w && w->seconds > 0) return true;
    if (std::holds_alternative<WaitUntilAction>(a)) return true;
  }
  return step.transition && std::holds_alternative<WaitForTransition>(*step.transition);
}

// Strongly connected components of the steps that do not wait (iterative Tarjan). Returns the
// component id of each step, -1 for steps left out.
std::vector<int> NoWaitComponents(const Journey& j, const StepGraph& g) {
  int n = static_cast<int>(g.edges.size());
  std::vector<bool> in_graph(n);
  for (int i = 0; i < n; ++i) in_graph[i] = g.primary[i] && !Waits(j.steps[i]);
  std::vector<int> order(n, -1), low(n, 0), component(n, -1), stack;
  std::vector<bool> on_stack(n, false);
  int counter = 0, components = 0;
  struct Frame {
    int node;
    size_t next_edge;
  };
  for (int root = 0; root < n; ++root) {
    if (!in_graph[root] || order[root] >= 0) continue;
    std::vector<Frame> frames = {{root, 0}};
    order[root] = low[root] = counter++;
    stack.push_back(root);
    on_stack[root] = true;
    while (!frames.empty()) {
      Frame& f = frames.back();
      int u = f.node;
      if (f.next_edge < g.edges[u].size()) {
        int v = g.edges[u][f.next_edge++].to;
        if (!in_graph[v]) continue;
        if (order[v] < 0) {
          order[v] = low[v] = counter++;
          stack.push_back(v);
          on_stack[v] = true;
          frames.push_back({v, 0});  // invalidates f
        } else if (on_stack[v]) {
          low[u] = std::min(low[u], order[v]);
        }
        continue;
      }
      if (low[u] == order[u]) {
        int v;
        do {
          v = stack.back();
          stack.pop_back();
          on_stack[v] = false;
          component[v] = components;
        } while (v != u);
        ++components;
      }
      frames.pop_back();
      if (!frames.empty()) {
        int parent = frames.back().node;
        low[parent] = std::min(low[parent], low[u]);
      }
    }
  }
  return component;
}

// One loop per component of steps that do not wait: the shortest way round from its first step
// in the file, reported where the transition closing it names that first step.
void CheckLoops(const CheckContext& ctx, const StepGraph& g) {
  const Journey& j = ctx.journey;
  int n = static_cast<int>(g.edges.size());
  std::vector<int> component = NoWaitComponents(j, g);
  std::set<int> reported;
  // One array for every search; each search resets only the entries it touched, so checking a
  // journey of many steps stays linear.
  std::vector<int> parent(n, -2);
  std::vector<int> queue;
  for (int start = 0; start < n; ++start) {
    int c = component[start];
    if (c < 0 || reported.contains(c)) continue;
    // Breadth-first within the component until an edge comes back to `start`.
    for (int v : queue) parent[v] = -2;
    queue.assign(1, start);
    parent[start] = -1;
    const StepRef* closing = nullptr;
    int last = -1;
    for (size_t head = 0; head < queue.size() && !closing; ++head) {
      int u = queue[head];
      for (const Edge& e : g.edges[u]) {
        if (component[e.to] != c) continue;
        if (e.to == start) {
          closing = e.ref;
          last = u;
          break;
        }
        if (parent[e.to] == -2) {
          parent[e.to] = u;
          queue.push_back(e.to);
        }
      }
    }
    if (!closing) continue;  // a single step with no edge to itself is not a loop
    reported.insert(c);
    std::vector<int> path;
    for (int v = last; v >= 0; v = parent[v]) path.push_back(v);
    std::reverse(path.begin(), path.end());
    path.push_back(start);
    std::string names;
    for (size_t i = 0; i < path.size(); ++i) {
      if (i > 0) names += " -> ";
      names += "\"" + j.steps[path[i]].id.text + "\"";
    }
    ctx.report.Error(closing->pos, "steps " + names +
                                       " form a loop with no wait: a customer would go round "
                                       "it forever");
  }
}

// ---- Names in expressions -----------------------------------------------------------------

struct NameScope {
  const std::set<std::string>& all_handles;
  // Handles sent on every path to here; null where any handle of the journey may be used
  // (settings, and steps the dataflow does not reach).
  const std::set<std::string>* defined;
};

bool IsRoot(const std::string& name) {
  return name == "customer" || name == "event" || name == "entry";
}

void CheckPath(const CheckContext& ctx, const Expr& e, const NameScope& scope, bool under_has) {
  if (e.path.empty()) return;
  const std::string& root = e.path[0];
  if (IsRoot(root)) return;
  if (scope.all_handles.contains(root)) {
    if (e.path.size() > 1) {
      ctx.report.Error(e.pos,
                       "message \"" + root +
                           "\" has no fields: compare it whole, as in event.message == " + root);
    } else if (scope.defined && !under_has && !scope.defined->contains(root)) {
      // `has offer` asks exactly this question at run time, so it is allowed anywhere.
      ctx.report.Error(e.pos, "message \"" + root +
                                  "\" is not sent on every path to this step; every path must "
                                  "pass a \"send ... as " +
                                  root + "\" before it is used");
    }
    return;
  }
  std::vector<std::string> candidates(scope.all_handles.begin(), scope.all_handles.end());
  candidates.insert(candidates.end(), {"customer", "event", "entry"});
  std::string message = "unknown name \"" + root + "\"";
  if (SuggestSpelling(root, candidates)) {
    ctx.report.Error(e.pos, WithSuggestion(std::move(message), root, candidates));
  } else {
    ctx.report.Error(e.pos, message +
                                ": use customer.<attribute>, event.<property>, "
                                "entry.<property> or a message named by \"send ... as\"");
  }
}

// Iterative: the parser bounds nesting, but a long chain such as `1 + 1 + ... + 1` still makes a
// tree as deep as it is long.
void CheckNames(const CheckContext& ctx, const ExprPtr& root, const NameScope& scope) {
  struct Item {
    const Expr* e;
    bool under_has;
  };
  std::vector<Item> stack;
  if (root) stack.push_back({root.get(), false});
  while (!stack.empty()) {
    Item item = stack.back();
    stack.pop_back();
    if (item.e->kind == Expr::Kind::kPath) {
      CheckPath(ctx, *item.e, scope, item.under_has);
      continue;
    }
    bool has = item.e->kind == Expr::Kind::kHas;
    // Pushed last to first so they are visited, and reported, left to right.
    for (auto it = item.e->operands.rbegin(); it != item.e->operands.rend(); ++it) {
      if (*it) stack.push_back({it->get(), has});
    }
  }
}

void CheckActionNames(const CheckContext& ctx, const Action& a, const NameScope& scope) {
  if (const auto* x = std::get_if<SetAction>(&a)) CheckNames(ctx, x->value, scope);
  if (const auto* x = std::get_if<AssignAction>(&a)) CheckNames(ctx, x->territory, scope);
}

void CheckTransitionNames(const CheckContext& ctx, const Transition& t, const NameScope& scope) {
  if (const auto* x = std::get_if<IfTransition>(&t)) {
    for (const IfTransition::Branch& b : x->branches) CheckNames(ctx, b.condition, scope);
  } else if (const auto* x = std::get_if<WaitForTransition>(&t)) {
    CheckNames(ctx, x->event.where, scope);
  }
}

void AddSentHandle(const Action& a, std::set<std::string>& handles) {
  if (const auto* s = std::get_if<SendAction>(&a); s && s->handle) handles.insert(s->handle->text);
}

// Handles definitely sent on entry to each step: the intersection over its predecessors of what
// they leave defined. nullopt for steps no path reaches.
std::vector<std::optional<std::set<std::string>>> HandlesAtEntry(const Journey& j,
                                                                 const StepGraph& g) {
  size_t n = g.edges.size();
  std::vector<std::optional<std::set<std::string>>> in(n);
  if (n == 0) return in;
  in[0] = std::set<std::string>();
  std::vector<int> work = {0};
  std::vector<bool> queued(n, false);
  queued[0] = true;
  while (!work.empty()) {
    int u = work.back();
    work.pop_back();
    queued[u] = false;
    std::set<std::string> out = *in[u];
    for (const Action& a : j.steps[u].actions) AddSentHandle(a, out);
    for (const Edge& e : g.edges[u]) {
      auto& target = in[e.to];
      bool changed = false;
      if (!target) {
        target = out;
        changed = true;
      } else {
        for (auto it = target->begin(); it != target->end();) {
          if (out.contains(*it)) {
            ++it;
          } else {
            it = target->erase(it);
            changed = true;
          }
        }
      }
      if (changed && !queued[e.to]) {
        queued[e.to] = true;
        work.push_back(e.to);
      }
    }
  }
  return in;
}

void CheckAllNames(const CheckContext& ctx, const StepGraph& g) {
  const Journey& j = ctx.journey;
  std::set<std::string> all_handles;
  for (const Step& step : j.steps) {
    for (const Action& a : step.actions) AddSentHandle(a, all_handles);
  }
  const NameScope anywhere{all_handles, nullptr};
  for (const Setting& setting : j.settings) {
    if (const auto* s = std::get_if<EnterSetting>(&setting)) {
      if (s->event) CheckNames(ctx, s->event->where, anywhere);
      CheckNames(ctx, s->customer_condition, anywhere);
    } else if (const auto* s = std::get_if<ExitSetting>(&setting)) {
      CheckNames(ctx, s->event.where, anywhere);
    } else if (const auto* s = std::get_if<GoalSetting>(&setting)) {
      CheckNames(ctx, s->event.where, anywhere);
    }
  }
  std::vector<std::optional<std::set<std::string>>> at_entry = HandlesAtEntry(j, g);
  for (size_t i = 0; i < j.steps.size(); ++i) {
    const Step& step = j.steps[i];
    std::set<std::string> defined;
    if (at_entry[i]) defined = *at_entry[i];
    NameScope scope{all_handles, at_entry[i] && g.primary[i] ? &defined : nullptr};
    for (const Action& a : step.actions) {
      CheckActionNames(ctx, a, scope);
      AddSentHandle(a, defined);
    }
    if (step.transition) CheckTransitionNames(ctx, *step.transition, scope);
  }
}

}  // namespace

void CheckFlow(const CheckContext& ctx) {
  if (!ctx.structural || ctx.journey.steps.empty()) return;
  StepGraph g = BuildGraph(ctx.journey);
  CheckStepNames(ctx, g);
  CheckReachable(ctx, g, Reachable(g));
  CheckLoops(ctx, g);
  CheckAllNames(ctx, g);
}

}  // namespace itinera::dsl::internal
