// Error codes of the Sieve compiler and interpreter. The code says what kind of failure it was;
// the diagnostic next to it (script.hpp) says where and why in words.
#pragma once

#include <system_error>

namespace mailroom::sieve {

enum class errc {
  syntax = 1,           ///< the script is not Sieve grammar (RFC 5228 section 8)
  unknown_command,      ///< a command or test this implementation does not know
  bad_argument,         ///< a known command with wrong, missing or extra arguments
  not_required,         ///< an extension used without `require`
  unsupported,          ///< `require` of an extension this implementation lacks
  limit_exceeded,       ///< a compile-time bound (script size, depth, list size, commands)
  runtime_limit,        ///< a run-time bound (actions, redirects, matching work)
  action_conflict,      ///< actions that cannot be combined (reject with keep, ...)
  runtime_error,        ///< another failure while running (an invalid redirect address, ...)
};

std::error_category const& category() noexcept;
inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

}  // namespace mailroom::sieve

template <>
struct std::is_error_code_enum<mailroom::sieve::errc> : std::true_type {};
