// Errors of the stream layer.
#pragma once

#include <system_error>

namespace mailroom::net {

enum class errc {
  timeout = 1,    ///< the per-operation deadline passed
  eof,            ///< the peer closed the connection (TCP FIN or TLS close_notify)
  line_too_long,  ///< a line exceeded the reader's cap; the rest of it was discarded
};

std::error_category const& category() noexcept;
inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

}  // namespace mailroom::net

template <>
struct std::is_error_code_enum<mailroom::net::errc> : std::true_type {};
