// ClamAV's clamd: a virus scan of a message with INSTREAM, and PING/VERSION for health checks.
//
// Protocol (clamd(8)): the client sends "zINSTREAM\0", then the message as chunks, each a 4-octet
// big-endian length and that many octets, then a zero length; clamd answers one NUL-terminated
// line: "stream: OK", "stream: NAME FOUND", or "TEXT ERROR" (e.g. "INSTREAM size limit exceeded.
// ERROR" once more than its StreamMaxLength arrived, after which it closes the connection).
//
// Contract: clamd_reply_parser and interpret_scan_reply() are the sans-I/O core (bytes in,
// verdict or error out); clamd_client runs one connection per call under the deadlines and
// errors of scanner.hpp. Memory is bounded: a reply of at most max_reply octets, and one chunk
// of the message in flight (chunk_size), whatever the message's size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "mailroom/core/log.hpp"
#include "mailroom/core/result.hpp"
#include "mailroom/core/task.hpp"
#include "mailroom/filter/scanner.hpp"

namespace mailroom::smtp {
class message_source;
}

namespace mailroom::filter {

struct clamd_verdict {
  bool infected = false;
  std::string signature;   ///< what clamd found ("Eicar-Test-Signature"), empty when clean
  bool truncated = false;  ///< only the first max_size octets were scanned (oversize::scan_prefix)
  friend bool operator==(clamd_verdict const&, clamd_verdict const&) = default;
};

/// Splits clamd's replies: octets up to a NUL (the "z" commands) or a LF (the "n" commands,
/// CR dropped). A reply longer than max_reply octets is scan_errc::reply_too_large, reported as
/// soon as that many octets arrived without a terminator. Errors are final.
class clamd_reply_parser {
 public:
  explicit clamd_reply_parser(std::size_t max_reply = 4096) : max_(max_reply) {}
  void feed(std::string_view bytes);
  /// The next complete reply; nullopt when more bytes are needed.
  result<std::optional<std::string>> next();
  /// At the end of the stream: the reply if a complete one is buffered, else net::errc::eof.
  result<std::string> finish();
  /// Octets fed and not yet returned.
  std::size_t buffered() const noexcept { return buf_.size() - pos_; }

 private:
  std::size_t max_;
  std::string buf_;
  std::size_t pos_ = 0;
  std::error_code error_;
};

/// The verdict in an INSTREAM reply: "stream: OK" clean, "stream: NAME FOUND" infected (NAME as
/// sent, non-empty); a reply ending in " ERROR" is scan_errc::size_limit_exceeded when it says
/// "size limit exceeded", else scan_errc::scanner_error; anything else scan_errc::malformed_reply.
result<clamd_verdict> interpret_scan_reply(std::string_view reply);

struct clamd_options {
  scanner_address address = scanner_address::tcp({asio::ip::address_v4::loopback(), 3310});
  scan_deadlines deadlines;
  /// Octets clamd accepts in one stream: set this to clamd's StreamMaxLength (25 MiB by default).
  std::uint64_t max_size = 25u << 20;
  /// A message over max_size: `fail` returns scan_errc::message_too_large (nothing past max_size
  /// is sent); `scan_prefix` scans the first max_size octets and sets clamd_verdict::truncated.
  enum class oversize { fail, scan_prefix } on_oversize = oversize::fail;
  std::size_t chunk_size = 64 * 1024;  ///< octets per INSTREAM chunk (1 or more)
  std::size_t max_reply = 4096;
};

class clamd_client {
 public:
  clamd_client(executor ex, clamd_options opts, log::logger logger = {});

  /// Streams the message (read to its end) to clamd. Errors: scanner.hpp's, the source's own
  /// (smtp::message_source::read), and scan_errc::message_too_large under oversize::fail.
  task<result<clamd_verdict>> scan(smtp::message_source& message);
  task<result<clamd_verdict>> scan(std::string_view message);

  /// PING: succeeds when clamd answers PONG (scan_errc::malformed_reply otherwise).
  task<result<void>> ping();
  /// VERSION: clamd's answer, "ClamAV 1.4.3/27480/Tue Dec  1 09:38:18 2026".
  task<result<std::string>> version();

  clamd_options const& options() const noexcept { return opts_; }

 private:
  task<result<std::string>> command(std::string_view cmd);

  executor ex_;
  clamd_options opts_;
  log::logger log_;
};

}  // namespace mailroom::filter
