// What the content-scanner clients (clamd.hpp, spamd.hpp, rspamd.hpp) share: where a scanner
// listens, the deadlines of one exchange, and the errors an exchange can end with.
//
// Contract for every client: a verdict is a value; anything that kept the scanner from giving
// one is an error, so the caller applies its own policy when a scanner is down or misbehaves
// (tempfail the message, or accept it unscanned). The errors are:
// - the connection: asio/system errors (connection_refused, no such socket file, ...),
//   net::errc::timeout when a deadline passed, net::errc::eof when the scanner closed early;
// - a scanner that does not follow its protocol: scan_errc::malformed_reply, reply_too_large;
// - what the scanner said: scan_errc::size_limit_exceeded, scanner_error, request_refused,
//   temporarily_unavailable (the clients log the scanner's own words at warning level);
// - the caller's limits: scan_errc::message_too_large.
// Each exchange uses its own connection, closed at the end, so one client object may serve any
// number of concurrent scans from its executor.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <system_error>

#include <asio/ip/tcp.hpp>

#include "mailroom/core/result.hpp"

namespace mailroom::filter {

enum class scan_errc {
  malformed_reply = 1,      ///< the scanner's answer does not follow its protocol
  reply_too_large,          ///< a line, header block, body or document over the client's limits
  message_too_large,        ///< the message is over the caller's max_size (nothing past it was sent)
  size_limit_exceeded,      ///< the scanner refused the message as too large (clamd StreamMaxLength)
  scanner_error,            ///< the scanner failed on its side (clamd ERROR, spamd EX_SOFTWARE, HTTP 5xx)
  request_refused,          ///< the scanner refused the request (unknown user, permission, HTTP 4xx)
  temporarily_unavailable,  ///< the scanner said to try later (spamd EX_TEMPFAIL, HTTP 503)
};

std::error_category const& scan_category() noexcept;
inline std::error_code make_error_code(scan_errc e) noexcept { return {static_cast<int>(e), scan_category()}; }

/// A scanner's socket. Written forms (parse() accepts them, to_string() gives the first two):
///   "inet:PORT@HOST"  (as Postfix writes milter addresses)   "unix:/path/to/socket"
///   "HOST:PORT", "[IPV6]:PORT", "/path/to/socket"
/// HOST is an IP literal or "localhost" (127.0.0.1); resolve other names before (net::dns).
struct scanner_address {
  enum class kind { tcp, unix_socket };
  kind k = kind::tcp;
  asio::ip::tcp::endpoint endpoint;  ///< kind::tcp
  std::string path;                  ///< kind::unix_socket: at most 107 octets

  static scanner_address tcp(asio::ip::tcp::endpoint ep);
  static scanner_address unix_socket(std::string path);
  /// mailroom::errc::invalid_argument for anything else (no port, port 0 or over 65535, a
  /// host name, an empty or relative or too long path).
  static result<scanner_address> parse(std::string_view text);
  std::string to_string() const;
};

/// Deadlines of one exchange. Each read and write must finish within `io` and the whole exchange
/// (connect included) within `total`, so a scanner trickling one byte at a time cannot hold a
/// message longer than `total`. Expiry is net::errc::timeout.
struct scan_deadlines {
  std::chrono::milliseconds connect{std::chrono::seconds(10)};
  std::chrono::milliseconds io{std::chrono::seconds(60)};
  std::chrono::milliseconds total{std::chrono::seconds(300)};
};

}  // namespace mailroom::filter

template <>
struct std::is_error_code_enum<mailroom::filter::scan_errc> : std::true_type {};
