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
};

std::error_category const& category() noexcept;
inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

}  // namespace mailroom

template <>
struct std::is_error_code_enum<mailroom::errc> : std::true_type {};
