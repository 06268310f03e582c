// SpamAssassin's spamd (the SPAMC/1.5 protocol of spamc): CHECK, SYMBOLS and REPORT of one
// message, and PING for health checks.
//
// Protocol (SpamAssassin spamd/PROTOCOL): the client sends "CHECK SPAMC/1.5", a Content-length
// header, an optional User header, a blank line and the message, then half-closes. spamd
// answers "SPAMD/1.1 0 EX_OK", headers ("Spam: True ; 15.3 / 5.0", "Content-length: N" when a
// body follows), a blank line, and for SYMBOLS the comma-separated rule names, for REPORT the
// report text. A non-zero code is a sysexits.h value (76 EX_PROTOCOL, 75 EX_TEMPFAIL, ...)
// with no headers or body, and spamd closes the connection.
//
// Contract: spamd_reply_parser and interpret_spamd_reply() are the sans-I/O core; spamd_client
// runs one connection per call under the deadlines and errors of scanner.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailroom/core/log.hpp"
#include "mailroom/core/result.hpp"
#include "mailroom/core/task.hpp"
#include "mailroom/filter/scanner.hpp"

namespace mailroom::filter {

enum class spamd_command { check, symbols, report };

struct spamd_verdict {
  bool spam = false;
  double score = 0;                  ///< as spamd rounds it (one decimal)
  double threshold = 0;              ///< required_score for this user
  std::vector<std::string> symbols;  ///< SYMBOLS: the rules that hit, in spamd's order
  std::string report;                ///< REPORT: spamd's report text
};

struct spamd_reply_limits {
  std::size_t max_line = 1024;      ///< status and header lines, without the line end
  std::size_t max_headers = 32;     ///< header lines
  std::size_t max_body = 64 * 1024; ///< symbol list or report
};

/// A spamd reply as sent: status, the headers the client reads, and the body.
struct spamd_reply {
  int code = 0;                       ///< sysexits.h value, 0 = EX_OK
  std::string message;                ///< "EX_OK", or spamd's description of the error
  std::optional<std::string> spam;    ///< the Spam header's value
  std::optional<std::uint64_t> content_length;
  std::string body;
};

/// Reads one reply. Bytes in with feed(); next() gives the reply once complete: at the status
/// line for a non-zero code, at the blank line when there is no body (Content-length absent or
/// 0) and the command has none (CHECK), else after Content-length octets of body. A body without
/// Content-length (older spamd) ends at the end of the stream: call finish() there.
/// Errors are final: scan_errc::reply_too_large beyond the limits (a line is refused as soon
/// as max_line octets arrived without a line end), scan_errc::malformed_reply for a status
/// line that is not "SPAMD/d.d CODE MESSAGE", a header line without ':', a bad Content-length,
/// or octets after the reply.
class spamd_reply_parser {
 public:
  explicit spamd_reply_parser(spamd_command cmd, spamd_reply_limits limits = {});
  void feed(std::string_view bytes);
  result<std::optional<spamd_reply>> next();
  /// At the end of the stream: the reply if it is complete or its body was delimited by the end;
  /// net::errc::eof when it stopped short.
  result<spamd_reply> finish();

 private:
  result<std::optional<spamd_reply>> fail_with(scan_errc e);
  result<void> status_line(std::string_view line);
  result<void> header_line(std::string_view line);

  spamd_command cmd_;
  spamd_reply_limits limits_;
  std::string buf_;
  enum class phase { status, headers, body, done } phase_ = phase::status;
  std::size_t headers_ = 0;
  spamd_reply reply_;
  std::error_code error_;
};

/// The verdict in a reply to `cmd`: EX_OK with a valid Spam header ("True|False|Yes|No ; SCORE /
/// THRESHOLD"); the body split into symbols (SYMBOLS) or kept (REPORT). Non-zero codes:
/// EX_TEMPFAIL (75), EX_UNAVAILABLE (69) and 79 (spamd's timeout) are
/// scan_errc::temporarily_unavailable; EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_NOUSER, EX_NOHOST,
/// EX_PROTOCOL, EX_NOPERM (64-68, 76, 77) scan_errc::request_refused; others scanner_error.
result<spamd_verdict> interpret_spamd_reply(spamd_reply const& reply, spamd_command cmd);

/// The request line and headers (up to the blank line) for a message of `length` octets.
/// mailroom::errc::invalid_argument when user holds CR, LF or NUL.
result<std::string> spamd_request_head(spamd_command cmd, std::uint64_t length, std::string_view user);

struct spamd_options {
  scanner_address address = scanner_address::tcp({asio::ip::address_v4::loopback(), 783});
  scan_deadlines deadlines;
  std::string user;  ///< the User header (per-user preferences in spamd); empty: none sent
  /// Larger messages are scan_errc::message_too_large without connecting (spamc's default is
  /// 500 KiB; spam is rarely larger, and scanning big messages is slow).
  std::uint64_t max_size = 500 * 1024;
  spamd_reply_limits limits;
};

class spamd_client {
 public:
  spamd_client(executor ex, spamd_options opts, log::logger logger = {});

  /// The message as it will be delivered (headers and body, CRLF line ends).
  task<result<spamd_verdict>> scan(std::string_view message, spamd_command cmd = spamd_command::check);

  /// PING: succeeds when spamd answers "SPAMD/1.x 0 PONG".
  task<result<void>> ping();

  spamd_options const& options() const noexcept { return opts_; }

 private:
  executor ex_;
  spamd_options opts_;
  log::logger log_;
};

}  // namespace mailroom::filter
