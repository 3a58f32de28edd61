// Drawing a Program as a graph: Graphviz dot or Mermaid flowchart text.
//
// Nodes are steps (labelled with their actions), edges are transitions labelled with their
// outcome: `if` conditions and `else`, split percentages, `received` / `timed_out` (with the
// wait's duration), and exits to a terminal node. Pure; deterministic output.
#ifndef ITINERA_DSL_GRAPH_H_
#define ITINERA_DSL_GRAPH_H_

#include <string>

#include "dsl/program.h"

namespace itinera::dsl {

enum class GraphFormat { kDot, kMermaid };

std::string DrawGraph(const Program& program, GraphFormat format);

// How the journey language spells an operator ("==", "contains", "not"; "-" for kNeg and kSub).
const char* OpText(Op op);

// The expression as it would be written in a journey ("customer.score + 20 > 50").
std::string ExprToString(const Expr& e);

}  // namespace itinera::dsl

#endif  // ITINERA_DSL_GRAPH_H_
