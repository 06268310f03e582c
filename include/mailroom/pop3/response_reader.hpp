// Sans-I/O reader of POP3 server responses (RFC 1939 3, RFC 2449, RFC 5034): bytes in, status
// lines, multi-line body lines and message content out. pop3::client drives it; it does no I/O.
//
// Contract: feed() what the server sent, then call the reader for what the client expects next:
// next_status() after a command, then (only after +OK to LIST, UIDL, CAPA, RETR, TOP) next_line()
// for a listing or read_message() for message content, until the body's end ("." alone on a
// line). "Need more" (nullopt / false) is not an error: feed more and call again.
//
// Bounded memory whatever the server sends: a status line or a listing line over max_line
// octets (without its line end) fails with errc::line_too_long as soon as that many octets
// arrived without a line end; message content is appended to the caller's string and never
// beyond the caller's limit (errc::too_large, reported before the octet over it is appended),
// and is never held in the reader. So the reader holds at most one partial line plus the last
// feed(); a client feeds one read buffer at a time.
//
// Syntax: a status is "+OK[ text]", "-ERR[ text]", or a SASL continuation "+[ base64]"
// (RFC 5034); anything else is errc::malformed_response. Lines end with CRLF or a bare LF (the
// CR is dropped). In a multi-line body a leading '.' is removed (dot-unstuffing), "." alone
// ends it; message content comes out with CRLF line ends (bare LF becomes CRLF, a bare CR
// stays). Errors are final (a POP3 stream cannot be resynchronised): every later call fails
// with the same error.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "mailroom/core/result.hpp"

namespace mailroom::pop3 {

/// Errors of the POP3 client and its response reader.
enum class errc {
  malformed_response = 1,  ///< not "+OK", "-ERR" or "+ " where a status is expected; a bad listing line
  line_too_long,           ///< a status or listing line over the client's max_line
  too_large,               ///< a message over the caller's max_size; a listing over the entry cap
  refused,                 ///< the server answered -ERR (greeting, STLS, RETR, DELE, QUIT...)
  auth_failed,             ///< the server refused the credentials (USER, PASS or AUTH got -ERR)
  auth_unavailable,        ///< no way to send the credentials: no TLS (and plaintext not allowed),
                           ///< or CAPA offers neither USER nor a SASL mechanism we know
  stls_unavailable,        ///< the TLS policy requires STLS and the server does not offer it
  no_uidl,                 ///< the server does not support UIDL
  protocol_error,          ///< a server that breaks the protocol otherwise (LIST and UIDL disagree...)
};

std::error_category const& category() noexcept;
inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

struct status {
  enum class kind { ok, err, continuation };
  kind k = kind::err;
  std::string text;  ///< after "+OK ", "-ERR " or "+ " (empty when nothing follows)
  std::string line;  ///< the whole line without its line end
};

class response_reader {
 public:
  explicit response_reader(std::size_t max_line = 8192) : max_line_(max_line) {}

  /// Appends bytes from the server (none are looked at until the next call).
  void feed(std::string_view bytes);

  /// The next status line; nullopt when more bytes are needed.
  result<std::optional<status>> next_status();

  /// The next line of a multi-line body (a listing), dot-unstuffed and without its line end;
  /// nullopt when more bytes are needed; `end` set when the terminating "." was read.
  struct line {
    bool end = false;
    std::string text;
  };
  result<std::optional<line>> next_line();

  /// Message content of a multi-line body: appends what is buffered to `out` (dot-unstuffed,
  /// CRLF line ends). True once the final "." was read, false when more bytes are needed.
  /// errc::too_large when `out` would grow past `max_size`.
  result<bool> read_message(std::string& out, std::size_t max_size);

  /// Bytes fed and not consumed yet.
  std::size_t buffered() const noexcept { return buf_.size() - pos_; }
  /// Drops unparsed bytes; a client calls this after the +OK to STLS (anything that came with
  /// it in plaintext must not be read as coming from the TLS session).
  void discard_buffered() noexcept;

 private:
  template <class T>
  result<T> fail_with(std::error_code ec) {
    error_ = ec;
    return fail(ec);
  }
  /// The next complete line (without its line end), or nullopt; errors for an overlong one.
  result<std::optional<std::string_view>> take_line();
  void compact();

  std::size_t max_line_;
  std::string buf_;
  std::size_t pos_ = 0;
  std::error_code error_;
  // read_message's position in the current line.
  enum class mstate { bol, dot, dot_cr, mid, cr };
  mstate ms_ = mstate::bol;
};

}  // namespace mailroom::pop3

template <>
struct std::is_error_code_enum<mailroom::pop3::errc> : std::true_type {};
