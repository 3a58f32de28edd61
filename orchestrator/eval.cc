#include "orchestrator/eval.h"

#include <cmath>
#include <limits>

namespace itinera::orch {

using nlohmann::json;

namespace {

// A value plus whether it came from a handle with no message yet: comparisons with such a
// value are false, so `event.message == offer` never matches before `offer` is sent.
struct Value {
  json v;
  bool unset_handle = false;
};

const json* Walk(const json* node, const std::vector<std::string>& path, size_t from) {
  for (size_t i = from; i < path.size(); ++i) {
    if (node == nullptr || !node->is_object()) return nullptr;
    auto it = node->find(path[i]);
    if (it == node->end()) return nullptr;
    node = &*it;
  }
  return node;
}

// `event.X`: type, customer_id, timestamp and id are the event's own fields; anything else is
// a property.
const json* EventPath(const json* event, const std::vector<std::string>& path) {
  if (event == nullptr || path.size() < 2) return event;
  const std::string& first = path[1];
  if (first == "type" || first == "customer_id" || first == "timestamp" || first == "id") {
    return Walk(event, path, 1);
  }
  auto props = event->find("properties");
  if (props == event->end()) return nullptr;
  return Walk(&*props, path, 1);
}

const json* Resolve(const std::vector<std::string>& path, const Scope& scope, bool& unset) {
  unset = false;
  if (path.empty()) return nullptr;
  if (path.size() == 1) {
    if (scope.handles == nullptr) {
      unset = true;
      return nullptr;
    }
    auto it = scope.handles->find(path[0]);
    if (it == scope.handles->end()) {
      unset = true;
      return nullptr;
    }
    thread_local json holder;
    holder = it->second;
    return &holder;
  }
  if (path[0] == "customer") {
    if (scope.profile == nullptr) return nullptr;
    std::vector<std::string> rest(path.begin() + 1, path.end());
    auto ptr = ProfilePointer(rest);
    if (!scope.profile->contains(ptr)) return nullptr;
    return &(*scope.profile)[ptr];
  }
  if (path[0] == "event") return path.size() == 1 ? nullptr : EventPath(scope.event, path);
  if (path[0] == "entry") return path.size() == 1 ? nullptr : EventPath(scope.entry, path);
  return nullptr;
}

bool IsNumber(const json& v) { return v.is_number(); }

double AsDouble(const json& v) { return v.get<double>(); }

bool BothIntegers(const json& a, const json& b) {
  return a.is_number_integer() && b.is_number_integer();
}

// Equality with numbers compared by value (1 == 1.0) and lists element by element.
bool Equal(const json& a, const json& b) {
  if (IsNumber(a) && IsNumber(b)) {
    if (BothIntegers(a, b)) return a.get<int64_t>() == b.get<int64_t>();
    return AsDouble(a) == AsDouble(b);
  }
  if (a.is_array() && b.is_array()) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (!Equal(a[i], b[i])) return false;
    return true;
  }
  return a == b;
}

// -1, 0, 1, or nullopt when the two are not ordered (null, mixed types).
std::optional<int> Order(const json& a, const json& b) {
  if (IsNumber(a) && IsNumber(b)) {
    if (BothIntegers(a, b)) {
      auto x = a.get<int64_t>(), y = b.get<int64_t>();
      return x < y ? -1 : (x > y ? 1 : 0);
    }
    double x = AsDouble(a), y = AsDouble(b);
    if (std::isnan(x) || std::isnan(y)) return std::nullopt;
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    int c = a.get_ref<const std::string&>().compare(b.get_ref<const std::string&>());
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  return std::nullopt;
}

bool Contains(const json& haystack, const json& needle) {
  if (haystack.is_array()) {
    for (const auto& item : haystack)
      if (Equal(item, needle)) return true;
    return false;
  }
  if (haystack.is_string() && needle.is_string()) {
    return haystack.get_ref<const std::string&>().find(needle.get_ref<const std::string&>()) !=
           std::string::npos;
  }
  return false;
}

json Number(double d) {
  if (std::isnan(d) || std::isinf(d)) return nullptr;
  return d;
}

json Arithmetic(dsl::Op op, json a, json b) {
  if (op == dsl::Op::kAdd && a.is_string() && (b.is_string() || b.is_null())) {
    return a.get<std::string>() + (b.is_null() ? "" : b.get<std::string>());
  }
  if (op == dsl::Op::kAdd && a.is_null() && b.is_string()) return b;
  if (op == dsl::Op::kAdd || op == dsl::Op::kSub) {
    // A missing number counts as 0 so counters start themselves.
    if (a.is_null() && IsNumber(b)) a = 0;
    if (b.is_null() && IsNumber(a)) b = 0;
  }
  if (!IsNumber(a) || !IsNumber(b)) return nullptr;
  if (BothIntegers(a, b)) {
    int64_t x = a.get<int64_t>(), y = b.get<int64_t>(), r = 0;
    switch (op) {
      case dsl::Op::kAdd:
        if (!__builtin_add_overflow(x, y, &r)) return r;
        break;
      case dsl::Op::kSub:
        if (!__builtin_sub_overflow(x, y, &r)) return r;
        break;
      case dsl::Op::kMul:
        if (!__builtin_mul_overflow(x, y, &r)) return r;
        break;
      case dsl::Op::kDiv:
        if (y == 0) return nullptr;
        if (y != -1 && x % y == 0) return x / y;
        break;
      default:
        return nullptr;
    }
  }
  double x = AsDouble(a), y = AsDouble(b);
  switch (op) {
    case dsl::Op::kAdd:
      return Number(x + y);
    case dsl::Op::kSub:
      return Number(x - y);
    case dsl::Op::kMul:
      return Number(x * y);
    case dsl::Op::kDiv:
      return y == 0 ? json(nullptr) : Number(x / y);
    default:
      return nullptr;
  }
}

Value Eval(const dsl::Expr& e, const Scope& scope, int depth);

json EvalPlain(const dsl::ExprPtr& e, const Scope& scope, int depth) {
  if (!e) return nullptr;
  return Eval(*e, scope, depth).v;
}

Value Eval(const dsl::Expr& e, const Scope& scope, int depth) {
  if (depth > 200) return {};  // the parser bounds nesting; this is a second fence
  using K = dsl::Expr::Kind;
  switch (e.kind) {
    case K::kLiteral:
      return {e.literal};
    case K::kList: {
      json list = json::array();
      for (const auto& item : e.operands) list.push_back(EvalPlain(item, scope, depth + 1));
      return {list};
    }
    case K::kPath: {
      bool unset = false;
      const json* v = Resolve(e.path, scope, unset);
      return {v ? *v : json(nullptr), unset};
    }
    case K::kHas: {
      if (e.operands.empty() || !e.operands[0]) return {false};
      bool unset = false;
      const json* v = Resolve(e.operands[0]->path, scope, unset);
      return {v != nullptr && !v->is_null()};
    }
    case K::kUnary: {
      if (e.operands.empty() || !e.operands[0]) return {};
      Value x = Eval(*e.operands[0], scope, depth + 1);
      if (e.op == dsl::Op::kNot) return {!Truthy(x.v)};
      if (e.op == dsl::Op::kNeg) {
        if (x.v.is_number_integer() && x.v.get<int64_t>() != std::numeric_limits<int64_t>::min())
          return {-x.v.get<int64_t>()};
        if (IsNumber(x.v)) return {Number(-AsDouble(x.v))};
      }
      return {};
    }
    case K::kBinary: {
      if (e.operands.size() != 2 || !e.operands[0] || !e.operands[1]) return {};
      if (e.op == dsl::Op::kAnd) {
        if (!Truthy(Eval(*e.operands[0], scope, depth + 1).v)) return {false};
        return {Truthy(Eval(*e.operands[1], scope, depth + 1).v)};
      }
      if (e.op == dsl::Op::kOr) {
        if (Truthy(Eval(*e.operands[0], scope, depth + 1).v)) return {true};
        return {Truthy(Eval(*e.operands[1], scope, depth + 1).v)};
      }
      Value a = Eval(*e.operands[0], scope, depth + 1);
      Value b = Eval(*e.operands[1], scope, depth + 1);
      bool unset = a.unset_handle || b.unset_handle;
      switch (e.op) {
        case dsl::Op::kEq:
          return {!unset && Equal(a.v, b.v)};
        case dsl::Op::kNe:
          return {!unset && !Equal(a.v, b.v)};
        case dsl::Op::kLt:
        case dsl::Op::kLe:
        case dsl::Op::kGt:
        case dsl::Op::kGe: {
          auto o = Order(a.v, b.v);
          if (unset || !o) return {false};
          if (e.op == dsl::Op::kLt) return {*o < 0};
          if (e.op == dsl::Op::kLe) return {*o <= 0};
          if (e.op == dsl::Op::kGt) return {*o > 0};
          return {*o >= 0};
        }
        case dsl::Op::kIn:
          return {!unset && Contains(b.v, a.v)};
        case dsl::Op::kContains:
          return {!unset && Contains(a.v, b.v)};
        case dsl::Op::kAdd:
        case dsl::Op::kSub:
        case dsl::Op::kMul:
        case dsl::Op::kDiv:
          return {Arithmetic(e.op, a.v, b.v)};
        default:
          return {};
      }
    }
  }
  return {};
}

}  // namespace

bool IsCoreProfileField(const std::string& name) {
  return name == "id" || name == "email" || name == "phone" || name == "timezone" ||
         name == "owner" || name == "consent";
}

json::json_pointer ProfilePointer(const std::vector<std::string>& path) {
  json::json_pointer ptr;
  if (path.empty()) return ptr;
  if (!IsCoreProfileField(path[0])) ptr /= "attributes";
  for (const auto& segment : path) ptr /= segment;
  return ptr;
}

void SetProfileValue(json& profile, const std::vector<std::string>& path, const json& value) {
  if (path.empty()) return;
  if (!profile.is_object()) profile = json::object();
  json* node = &profile;
  std::vector<std::string> full;
  if (!IsCoreProfileField(path[0])) full.push_back("attributes");
  full.insert(full.end(), path.begin(), path.end());
  for (size_t i = 0; i + 1 < full.size(); ++i) {
    json& next = (*node)[full[i]];
    if (!next.is_object()) next = json::object();
    node = &next;
  }
  (*node)[full.back()] = value;
}

json Evaluate(const dsl::Expr& expr, const Scope& scope) {
  try {
    return Eval(expr, scope, 0).v;
  } catch (const std::exception&) {
    return nullptr;
  }
}

bool IsTrue(const dsl::Expr& expr, const Scope& scope) { return Truthy(Evaluate(expr, scope)); }

bool Truthy(const json& v) {
  if (v.is_null()) return false;
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number_integer()) return v.get<int64_t>() != 0;
  if (v.is_number_unsigned()) return v.get<uint64_t>() != 0;
  if (v.is_number_float()) return v.get<double>() != 0;
  if (v.is_string()) return !v.get_ref<const std::string&>().empty();
  return true;
}

}  // namespace itinera::orch
