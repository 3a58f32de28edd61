// Errors as values across module boundaries.
//
// Result<T> holds either a value or an Error (a short code and a human message). Library
// exceptions are caught at the seam that calls the library and turned into an Error; callers
// never see them. Not thread-safe beyond what T is.
#ifndef ITINERA_UTIL_RESULT_H_
#define ITINERA_UTIL_RESULT_H_

#include <string>
#include <utility>
#include <variant>

namespace itinera {

struct Error {
  std::string code;     // machine-readable, e.g. "not_found", "invalid_json"
  std::string message;  // for people
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : state_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(state_); }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<T>(state_); }
  const T& value() const& { return std::get<T>(state_); }
  T&& value() && { return std::get<T>(std::move(state_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { return std::get<Error>(state_); }

 private:
  std::variant<T, Error> state_;
};

// Result<void>: success or an Error.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT: implicit by design
  static Status Ok() { return Status(); }

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

}  // namespace itinera

#endif  // ITINERA_UTIL_RESULT_H_
