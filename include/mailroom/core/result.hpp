// expected<T, E>: a value or an error, for failures a caller is expected to handle.
// A small subset of C++23 std::expected (which g++ 12 and clang 14 in C++20 mode lack); when the
// project moves to C++23 this becomes an alias of std::expected with the same spelling at call sites.
#pragma once

#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace mailroom {

template <class E>
class unexpected {
 public:
  constexpr explicit unexpected(E e) : error_(std::move(e)) {}
  constexpr E const& error() const& noexcept { return error_; }
  constexpr E& error() & noexcept { return error_; }
  constexpr E&& error() && noexcept { return std::move(error_); }

 private:
  E error_;
};
template <class E>
unexpected(E) -> unexpected<E>;

/// Thrown by value() on an expected that holds an error (a programming error at the call site).
class bad_expected_access : public std::exception {
 public:
  const char* what() const noexcept override { return "bad expected access"; }
};

template <class T, class E = std::error_code>
class expected {
 public:
  using value_type = T;
  using error_type = E;

  template <class U = T, class = std::enable_if_t<std::is_default_constructible_v<U>>>
  constexpr expected() : v_(std::in_place_index<0>) {}
  template <class U = T, class = std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                                  !std::is_same_v<std::remove_cvref_t<U>, expected> &&
                                                  !std::is_same_v<std::remove_cvref_t<U>, unexpected<E>>>>
  constexpr expected(U&& v) : v_(std::in_place_index<0>, std::forward<U>(v)) {}
  template <class G>
  constexpr expected(unexpected<G> u) : v_(std::in_place_index<1>, std::move(u).error()) {}

  constexpr bool has_value() const noexcept { return v_.index() == 0; }
  constexpr explicit operator bool() const noexcept { return has_value(); }

  constexpr T& value() & { check(); return std::get<0>(v_); }
  constexpr T const& value() const& { check(); return std::get<0>(v_); }
  constexpr T&& value() && { check(); return std::get<0>(std::move(v_)); }
  constexpr T& operator*() & noexcept { return *std::get_if<0>(&v_); }
  constexpr T const& operator*() const& noexcept { return *std::get_if<0>(&v_); }
  constexpr T&& operator*() && noexcept { return std::move(*std::get_if<0>(&v_)); }
  constexpr T* operator->() noexcept { return std::get_if<0>(&v_); }
  constexpr T const* operator->() const noexcept { return std::get_if<0>(&v_); }
  constexpr E const& error() const& noexcept { return *std::get_if<1>(&v_); }
  constexpr E& error() & noexcept { return *std::get_if<1>(&v_); }
  template <class U>
  constexpr T value_or(U&& fallback) const& {
    return has_value() ? **this : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  constexpr void check() const {
    if (!has_value()) throw bad_expected_access();
  }
  std::variant<T, E> v_;
};

template <class E>
class expected<void, E> {
 public:
  using value_type = void;
  using error_type = E;
  constexpr expected() noexcept = default;
  template <class G>
  constexpr expected(unexpected<G> u) : err_(std::move(u).error()), has_(false) {}
  constexpr bool has_value() const noexcept { return has_; }
  constexpr explicit operator bool() const noexcept { return has_; }
  constexpr void value() const {
    if (!has_) throw bad_expected_access();
  }
  constexpr E const& error() const& noexcept { return err_; }

 private:
  E err_{};
  bool has_ = true;
};

/// The library's result type: a value or a std::error_code.
template <class T = void>
using result = expected<T, std::error_code>;

/// Shorthand for returning an error: `return fail(errc::line_too_long);`.
template <class Enum, class = std::enable_if_t<std::is_error_code_enum_v<Enum>>>
inline unexpected<std::error_code> fail(Enum e) {
  return unexpected<std::error_code>(make_error_code(e));
}
inline unexpected<std::error_code> fail(std::error_code ec) { return unexpected<std::error_code>(ec); }

}  // namespace mailroom
