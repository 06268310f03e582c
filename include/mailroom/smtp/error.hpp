// Errors of the SMTP layer, as seen by session handlers reading a message and by the client.
#pragma once

#include <system_error>

namespace mailroom::smtp {

enum class errc {
  message_too_big = 1,   ///< the message passed the size limit; the rest is discarded
  bare_newline,          ///< a bare CR or LF in DATA under the reject policy
  transaction_aborted,   ///< the client reset or quit in the middle of a BDAT transaction
  protocol_error,        ///< the peer broke the protocol (e.g. improper pipelining)
  // Client side (smtp::client, smtp::reply_parser).
  malformed_reply,       ///< a server reply that is not RFC 5321 4.2 syntax, or mixes reply codes
  reply_too_long,        ///< a server reply line over the client's limit, or too many lines
  starttls_unavailable,  ///< the TLS policy requires STARTTLS and the server does not offer it
  auth_unavailable,      ///< credentials are set but no offered mechanism may be used (or no TLS)
};

std::error_category const& category() noexcept;
inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

}  // namespace mailroom::smtp

template <>
struct std::is_error_code_enum<mailroom::smtp::errc> : std::true_type {};
