// Error codes: each area has an `errc` enum registered with std::is_error_code_enum and its own
// category, so callers compare with `ec == net::errc::timeout` and log `ec.message()`.
#pragma once

#include <string>
#include <system_error>

namespace mailroom {

/// Generic library errors not tied to one protocol.
enum class errc {
  invalid_argument = 1,  ///< a caller-supplied value is malformed
  limit_exceeded,        ///< a configured bound (size, count, depth) would be crossed
  not_found,             ///< the named thing does not exist
  unsupported,           ///< the operation or option is not available in this build
  io_error,              ///< an operating-system call failed; details were logged
  cancelled,             ///< the operation was cancelled by shutdown
  unknown_credentials,   ///< an auth backend does not know the user (lets backends chain)
  bad_credentials,       ///< the user exists but the secret does not match
  unavailable,           ///< a remote peer could not be reached or refused the request
};

std::error_category const& category() noexcept;
inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

namespace detail {
/// The category of an area's errc: a name and a function from value to message. Each area keeps
/// one static instance behind its category() function.
template <class Enum>
class enum_category final : public std::error_category {
 public:
  using describe_fn = char const* (*)(Enum) noexcept;  ///< nullptr for values it does not know
  constexpr enum_category(char const* name, describe_fn describe, char const* unknown) noexcept
      : name_(name), describe_(describe), unknown_(unknown) {}
  char const* name() const noexcept override { return name_; }
  std::string message(int ev) const override {
    char const* m = describe_(static_cast<Enum>(ev));
    return m ? m : unknown_;
  }

 private:
  char const* name_;
  describe_fn describe_;
  char const* unknown_;
};
}  // namespace detail

}  // namespace mailroom

template <>
struct std::is_error_code_enum<mailroom::errc> : std::true_type {};
