// Sans-I/O reader of SMTP/LMTP server replies (RFC 5321 4.2) with enhanced status codes
// (RFC 2034, RFC 3463): bytes in, whole replies out.
//
// Contract: feed() what the server sent, then call next() until it says it needs more. next()
// gives one complete reply at a time, in order; "need more" is not an error. Memory is bounded
// whatever the server sends: one partial line of at most max_line octets, at most max_lines lines
// of the reply being assembled, plus whatever the last feed() added and next() has not consumed
// (a client feeds one read buffer at a time, so that is bounded by its buffer size).
//
// Syntax accepted: "ddd-text" continues a reply, "ddd text" or "ddd" ends it; every line carries
// the same code, whose first digit is 2 to 5; CRLF or bare LF ends a line (the CR is dropped).
// An enhanced status code ("5.1.1 ") at the start of the first line whose class matches the
// reply's first digit is parsed into reply::enhanced and removed from every line that repeats it,
// so reply::wire() gives the lines back. Text is kept as sent otherwise (reply::wire() replaces
// control characters when a reply is relayed).
//
// Errors are final (the stream cannot be resynchronised; drop the connection):
// smtp::errc::reply_too_long for a line over max_line octets (reported as soon as that many
// octets arrived without a line end, so a 100 KB line never gets buffered) or a reply of more
// than max_lines lines; smtp::errc::malformed_reply for anything that is not a reply line or a
// line whose code differs from the first line's.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "mailroom/core/result.hpp"
#include "mailroom/smtp/reply.hpp"

namespace mailroom::smtp {

struct reply_limits {
  std::size_t max_line = 4096;   ///< octets of one line, without its line end
  std::size_t max_lines = 1000;  ///< lines of one reply
};

class reply_parser {
 public:
  explicit reply_parser(reply_limits limits = {});

  /// Appends bytes from the server (none are looked at until next()).
  void feed(std::string_view bytes);

  /// The next complete reply; nullopt when more bytes are needed. After an error every call
  /// returns the same error.
  result<std::optional<reply>> next();

  /// Bytes fed and not yet parsed into a returned reply or the reply being assembled.
  std::size_t buffered() const noexcept { return buf_.size() - pos_; }
  /// True while a multi-line reply has begun but not ended.
  bool in_reply() const noexcept { return lines_ != 0; }
  /// Drops unparsed bytes and a partial reply. A client calls this after the 220 to STARTTLS:
  /// anything that came with it in plaintext must not be taken as a reply from the TLS session.
  void discard_buffered() noexcept;

  reply_limits const& limits() const noexcept { return limits_; }

 private:
  result<std::optional<reply>> fail_with(std::error_code ec);

  reply_limits limits_;
  std::string buf_;
  std::size_t pos_ = 0;  // first unparsed byte of buf_
  // The reply being assembled.
  std::size_t lines_ = 0;
  int code_ = 0;
  std::array<std::uint8_t, 3> enhanced_{0, 0, 0};
  std::string enhanced_text_;  // "5.1.1" as it appeared on the first line
  std::string text_;
  std::error_code error_;
};

}  // namespace mailroom::smtp
