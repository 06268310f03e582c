// Errors of the SMTP layer, as seen by session handlers reading a message.
#pragma once

#include <system_error>

namespace mailroom::smtp {

enum class errc {
  message_too_big = 1,   ///< the message passed the size limit; the rest is discarded
  bare_newline,          ///< a bare CR or LF in DATA under the reject policy
  transaction_aborted,   ///< the client reset or quit in the middle of a BDAT transaction
  protocol_error,        ///< the peer broke the protocol (e.g. improper pipelining)
};

std::error_category const& category() noexcept;
inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

}  // namespace mailroom::smtp

template <>
struct std::is_error_code_enum<mailroom::smtp::errc> : std::true_type {};
