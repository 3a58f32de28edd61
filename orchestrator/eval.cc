#include "orchestrator/eval.h"

#include <cmath>
#include <limits>

namespace itinera::orch {

using nlohmann::json;

namespace {

// A value plus whether it came from a handle with no message yet: comparisons with such a
// value are false, so `event.message == offer` never matches before `offer` is sent. Literals
// and paths are borrowed (`ref`, pointing into the expression or the scope's documents, which
// outlive the evaluation) rather than copied: conditions then compare without allocating.
struct Value {
  json owned;
  const json* ref = nullptr;
  bool unset_handle = false;

  const json& get() const { return ref != nullptr ? *ref : owned; }
};

Value Borrowed(const json& v) {
  Value out;
  out.ref = &v;
  return out;
}

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

// `customer.<path[1..]>`: what ProfilePointer(path[1..]) points at in `profile`, or nullptr.
// Objects are walked in place; an array on the way (never reached by identifier segments) takes
// the JSON-pointer route so its index rules apply unchanged.
const json* ProfileValue(const json& profile, const std::vector<std::string>& path) {
  const json* node = &profile;
  auto descend = [&node](const auto& key) {
    if (!node->is_object()) return false;
    auto it = node->find(key);
    if (it == node->end()) return false;
    node = &*it;
    return true;
  };
  auto through_pointer = [&] {
    auto ptr = ProfilePointer(std::vector<std::string>(path.begin() + 1, path.end()));
    return profile.contains(ptr) ? &profile[ptr] : nullptr;
  };
  if (!IsCoreProfileField(path[1])) {
    if (node->is_array()) return through_pointer();
    if (!descend("attributes")) return nullptr;
  }
  for (size_t i = 1; i < path.size(); ++i) {
    if (node->is_array()) return through_pointer();
    if (!descend(path[i])) return nullptr;
  }
  return node;
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
    return ProfileValue(*scope.profile, path);
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

json Arithmetic(dsl::Op op, const json& left, const json& right) {
  if (op == dsl::Op::kAdd && left.is_string() && (right.is_string() || right.is_null())) {
    const std::string& x = left.get_ref<const std::string&>();
    return right.is_null() ? x : x + right.get_ref<const std::string&>();
  }
  if (op == dsl::Op::kAdd && left.is_null() && right.is_string()) return right;
  const json zero = 0;
  const json& a = op == dsl::Op::kAdd || op == dsl::Op::kSub
                      // A missing number counts as 0 so counters start themselves.
                      ? (left.is_null() && IsNumber(right) ? zero : left)
                      : left;
  const json& b =
      (op == dsl::Op::kAdd || op == dsl::Op::kSub) && right.is_null() && IsNumber(a) ? zero : right;
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

json Plain(Value v) { return v.ref != nullptr ? *v.ref : std::move(v.owned); }

json EvalPlain(const dsl::ExprPtr& e, const Scope& scope, int depth) {
  if (!e) return nullptr;
  return Plain(Eval(*e, scope, depth));
}

Value Eval(const dsl::Expr& e, const Scope& scope, int depth) {
  if (depth > 200) return {};  // the parser bounds nesting; this is a second fence
  using K = dsl::Expr::Kind;
  switch (e.kind) {
    case K::kLiteral:
      return Borrowed(e.literal);
    case K::kList: {
      json list = json::array();
      for (const auto& item : e.operands) list.push_back(EvalPlain(item, scope, depth + 1));
      return {std::move(list)};
    }
    case K::kPath: {
      bool unset = false;
      const json* v = Resolve(e.path, scope, unset);
      if (v == nullptr) return {nullptr, nullptr, unset};
      // A handle's value lives in a holder the next handle overwrites: keep a copy.
      if (e.path.size() == 1) return {*v, nullptr, unset};
      return Borrowed(*v);
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
      const json& v = x.get();
      if (e.op == dsl::Op::kNot) return {!Truthy(v)};
      if (e.op == dsl::Op::kNeg) {
        if (v.is_number_integer() && v.get<int64_t>() != std::numeric_limits<int64_t>::min())
          return {-v.get<int64_t>()};
        if (IsNumber(v)) return {Number(-AsDouble(v))};
      }
      return {};
    }
    case K::kBinary: {
      if (e.operands.size() != 2 || !e.operands[0] || !e.operands[1]) return {};
      if (e.op == dsl::Op::kAnd) {
        if (!Truthy(Eval(*e.operands[0], scope, depth + 1).get())) return {false};
        return {Truthy(Eval(*e.operands[1], scope, depth + 1).get())};
      }
      if (e.op == dsl::Op::kOr) {
        if (Truthy(Eval(*e.operands[0], scope, depth + 1).get())) return {true};
        return {Truthy(Eval(*e.operands[1], scope, depth + 1).get())};
      }
      const Value left = Eval(*e.operands[0], scope, depth + 1);
      if (e.op == dsl::Op::kIn && e.operands[1]->kind == K::kList) {
        // `x in [a, b]`: the items compared one by one, as Contains would compare them, without
        // building the list (every item is still evaluated, at the depth it would have been).
        if (depth + 1 > 200) return {false};
        bool found = false;
        for (const auto& item : e.operands[1]->operands) {
          const Value v = item ? Eval(*item, scope, depth + 2) : Value{};
          if (!found && Equal(v.get(), left.get())) found = true;
        }
        return {!left.unset_handle && found};
      }
      const Value right = Eval(*e.operands[1], scope, depth + 1);
      const json& a = left.get();
      const json& b = right.get();
      bool unset = left.unset_handle || right.unset_handle;
      switch (e.op) {
        case dsl::Op::kEq:
          return {!unset && Equal(a, b)};
        case dsl::Op::kNe:
          return {!unset && !Equal(a, b)};
        case dsl::Op::kLt:
        case dsl::Op::kLe:
        case dsl::Op::kGt:
        case dsl::Op::kGe: {
          auto o = Order(a, b);
          if (unset || !o) return {false};
          if (e.op == dsl::Op::kLt) return {*o < 0};
          if (e.op == dsl::Op::kLe) return {*o <= 0};
          if (e.op == dsl::Op::kGt) return {*o > 0};
          return {*o >= 0};
        }
        case dsl::Op::kIn:
          return {!unset && Contains(b, a)};
        case dsl::Op::kContains:
          return {!unset && Contains(a, b)};
        case dsl::Op::kAdd:
        case dsl::Op::kSub:
        case dsl::Op::kMul:
        case dsl::Op::kDiv:
          return {Arithmetic(e.op, a, b)};
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
  auto descend = [&node](const auto& key) {
    json& next = (*node)[key];
    if (!next.is_object()) next = json::object();
    node = &next;
  };
  if (!IsCoreProfileField(path[0])) descend("attributes");
  for (size_t i = 0; i + 1 < path.size(); ++i) descend(path[i]);
  (*node)[path.back()] = value;
}

json Evaluate(const dsl::Expr& expr, const Scope& scope) {
  try {
    return Plain(Eval(expr, scope, 0));
  } catch (const std::exception&) {
    return nullptr;
  }
}

bool IsTrue(const dsl::Expr& expr, const Scope& scope) {
  try {
    return Truthy(Eval(expr, scope, 0).get());
  } catch (const std::exception&) {
    return false;  // Evaluate's null
  }
}

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
