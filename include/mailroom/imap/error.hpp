// Errors of the IMAP client side: imap::response_parser (a hostile or broken server) and
// imap::client (policy failures, refusals, per-operation outcomes).
#pragma once

#include <system_error>

namespace mailroom::imap {

enum class errc {
  // response_parser: the connection cannot be read further.
  malformed_response = 1,  ///< not RFC 9051 response syntax (or a tag we never sent)
  line_too_long,           ///< a response line (outside literals) over max_line
  literal_too_large,       ///< a literal {n} over max_literal
  nesting_too_deep,        ///< parenthesised lists nested deeper than max_depth
  response_too_large,      ///< one response holding more than its bound (inlined literals, tokens)
  // client
  protocol_error,          ///< a reply that makes no sense at this point (e.g. an unexpected "+")
  starttls_unavailable,    ///< the TLS policy requires STARTTLS and the server did not do it
  auth_unavailable,        ///< no usable way to log in (LOGINDISABLED, no TLS, unsendable credentials)
  login_refused,           ///< the server refused the credentials (text in last_response())
  command_failed,          ///< NO/BAD to a command (text in last_response())
  too_large,               ///< the message is larger than the caller's max_size
  no_such_message,         ///< the UID is not (or no longer) in the mailbox
  unsupported,             ///< the server lacks a needed capability (IDLE)
  server_closed,           ///< the server said BYE (greeting or later; text in last_response())
};

std::error_category const& category() noexcept;
inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

}  // namespace mailroom::imap

template <>
struct std::is_error_code_enum<mailroom::imap::errc> : std::true_type {};
