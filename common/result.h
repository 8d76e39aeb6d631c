// The one error type of Portier: every error says where, what and why.
#pragma once

#include <string>
#include <utility>
#include <version>

#if defined(__cpp_lib_expected)
#include <expected>
#else
// clang 14 (the fuzz build) cannot use libstdc++ 12's <expected>: a minimal
// stand-in with the subset Portier uses. GCC builds never see it.
#include <optional>
#include <type_traits>
#include <variant>

namespace std {

template <class E>
class unexpected {
 public:
  explicit unexpected(E e) : e_(std::move(e)) {}
  const E& error() const& { return e_; }
  E& error() & { return e_; }
  E&& error() && { return std::move(e_); }

 private:
  E e_;
};
template <class E>
unexpected(E) -> unexpected<E>;

template <class T, class E>
class expected {
 public:
  expected() requires std::is_default_constructible_v<T> : v_(std::in_place_index<0>) {}
  // Not for another expected (copies and moves stay the implicit ones):
  // T = std::any would otherwise ask whether it is constructible from itself.
  template <class U = T>
  expected(U&& v) requires(!std::is_same_v<std::remove_cvref_t<U>, expected> &&
                           std::is_constructible_v<T, U&&>)
      : v_(std::in_place_index<0>, std::forward<U>(v)) {}
  template <class G>
  expected(unexpected<G> u) : v_(std::in_place_index<1>, std::move(u).error()) {}
  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& operator*() & { return std::get<0>(v_); }
  const T& operator*() const& { return std::get<0>(v_); }
  T&& operator*() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  E& error() & { return std::get<1>(v_); }
  const E& error() const& { return std::get<1>(v_); }

 private:
  std::variant<T, E> v_;
};

template <class E>
class expected<void, E> {
 public:
  expected() = default;
  template <class G>
  expected(unexpected<G> u) : e_(std::move(u).error()) {}
  bool has_value() const { return !e_.has_value(); }
  explicit operator bool() const { return has_value(); }
  void operator*() const {}
  void value() const {}
  E& error() & { return *e_; }
  const E& error() const& { return *e_; }

 private:
  std::optional<E> e_;
};

}  // namespace std
#endif

namespace portier {

enum class Errc {
  invalid_argument,
  not_found,
  permission_denied,
  already_exists,
  unavailable,
  failed_precondition,
  resource_exhausted,
  aborted,  // the operation was overtaken (e.g. a claim ended while it was recorded)
  io,
  internal,
};

// The gRPC status code (grpc::StatusCode's value, which the gRPC spec fixes)
// an error of `code` is returned with. The one mapping the API layer uses, so
// that common/ needs no gRPC header.
constexpr int grpc_status_code(Errc code) {
  switch (code) {
    case Errc::invalid_argument:
      return 3;
    case Errc::not_found:
      return 5;
    case Errc::already_exists:
      return 6;
    case Errc::permission_denied:
      return 7;
    case Errc::resource_exhausted:
      return 8;
    case Errc::failed_precondition:
      return 9;
    case Errc::aborted:
      return 10;
    case Errc::internal:
      return 13;
    case Errc::unavailable:
    case Errc::io:
      return 14;
  }
  return 2;  // UNKNOWN
}

struct Error {
  Errc code = Errc::internal;
  std::string where;  // context: file:line, component, device id
  std::string what;   // the object or operation that failed
  std::string why;    // the reason, phrased so a person can act on it

  std::string message() const {
    std::string m = where;
    if (!what.empty()) m += (m.empty() ? "" : ": ") + what;
    if (!why.empty()) m += (m.empty() ? "" : ": ") + why;
    return m;
  }

  // The same error seen from an outer layer: `where` gains `context` in
  // front ("config: /etc/portier/portierd.toml:3:1"), code, what and why stay.
  Error with_context(const std::string& context) const& {
    Error e = *this;
    e.where = where.empty() ? context : context + ": " + where;
    return e;
  }
};

template <class T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(Errc code, std::string where, std::string what,
                                   std::string why = {}) {
  return std::unexpected<Error>(Error{code, std::move(where), std::move(what), std::move(why)});
}

// An error whose whole message is `message` (no where/what), e.g. the
// sentence an API call returns to the app.
inline std::unexpected<Error> fail_msg(Errc code, std::string message) {
  return std::unexpected<Error>(Error{code, {}, {}, std::move(message)});
}

// An error from a failed system call: `why` is strerror(err).
std::unexpected<Error> fail_errno(Errc code, std::string where, std::string what, int err);

// Adds context to the error of a failed result, passing a success through.
template <class T>
Result<T> with_context(Result<T> r, const std::string& context) {
  if (r) return r;
  return std::unexpected<Error>(r.error().with_context(context));
}

}  // namespace portier

// Returns the error of `expr` (any Result) from the enclosing function,
// which returns a Result too.
#define PORTIER_TRY(expr)                                          \
  do {                                                             \
    if (auto _r = (expr); !_r) return std::unexpected(_r.error()); \
  } while (0)
