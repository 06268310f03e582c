// Rspamd's HTTP protocol: POST /checkv2 with the message and its envelope, a JSON verdict back
// (action, score, symbols, milter header changes, SMTP message); GET /ping for health checks.
//
// Protocol (rspamd.com/doc/developers/protocol.html): an HTTP/1.1 request whose headers carry
// the envelope (IP, Helo, From, Rcpt once per recipient, Queue-Id, User, Hostname) and whose
// body is the message; the answer is an HTTP/1.x response, its body delimited by
// Content-Length, chunked coding or the end of the connection, holding a JSON object.
//
// Contract: rspamd_reply_parser (HTTP + JSON, bytes in) and parse_rspamd_json() are the sans-I/O
// core; rspamd_client runs one connection per call (Connection: close) under the deadlines and
// errors of scanner.hpp. Non-200 statuses: 503 scan_errc::temporarily_unavailable, 413
// size_limit_exceeded, other 4xx request_refused, 5xx scanner_error, anything else
// malformed_reply. The reply is bounded by rspamd_reply_limits (HTTP lines and body size, JSON
// depth, value count and string length).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mailroom/core/log.hpp"
#include "mailroom/core/result.hpp"
#include "mailroom/core/task.hpp"
#include "mailroom/filter/scanner.hpp"

namespace mailroom::filter {

struct rspamd_symbol {
  std::string name;
  double score = 0;
};

/// A header rspamd wants added (milter.add_headers). The value is as rspamd sent it and may
/// hold folding (CRLF + white space); check it before adding it to a message.
struct rspamd_add_header {
  std::string name;
  std::string value;
  std::optional<int> order;  ///< position rspamd asked for, when it gave one
};

/// A header rspamd wants removed (milter.remove_headers): the index-th instance, 0 = all
/// (negative counts from the end, as rspamd sends it).
struct rspamd_remove_header {
  std::string name;
  int index = 0;
};

struct rspamd_verdict {
  /// "no action", "greylist", "add header", "rewrite subject", "soft reject" or "reject" (kept as
  /// sent: rspamd may be configured with others).
  std::string action;
  double score = 0;
  double required_score = 0;
  bool skipped = false;                   ///< is_skipped: rspamd did not scan (settings, size)
  std::vector<rspamd_symbol> symbols;     ///< in the order of the reply
  std::vector<rspamd_add_header> add_headers;
  std::vector<rspamd_remove_header> remove_headers;
  std::string smtp_message;               ///< messages.smtp_message: the text for a rejection
  std::string subject;                    ///< the new Subject under "rewrite subject"
};

struct rspamd_reply_limits {
  std::size_t max_line = 8192;            ///< HTTP status, header and chunk-size lines
  std::size_t max_headers = 100;          ///< HTTP header lines
  std::size_t max_body = 4 << 20;         ///< octets of the JSON document
  std::size_t max_depth = 32;             ///< JSON nesting
  std::size_t max_values = 50'000;        ///< JSON values in the document
  std::size_t max_string = 64 * 1024;     ///< one JSON string
};

/// The verdict in a /checkv2 JSON document: an object with string "action" and number "score"
/// (required), "required_score", "is_skipped", "symbols" (an object of objects with "score"),
/// "milter" {"add_headers": {NAME: VALUE | {"value", "order"} | [those...]}, "remove_headers":
/// {NAME: INDEX}}, "messages" {"smtp_message"}, "subject". Members of other types than these
/// are scan_errc::malformed_reply; unknown members are ignored.
result<rspamd_verdict> parse_rspamd_json(std::string_view json, rspamd_reply_limits const& limits = {});

/// Reads one HTTP response and interprets it (status, then JSON) as the contract above says.
/// feed() bytes, next() until it gives the verdict, finish() at the end of the stream (a body
/// delimited by the connection's end; net::errc::eof if the response stopped short). Errors
/// are final.
class rspamd_reply_parser {
 public:
  explicit rspamd_reply_parser(rspamd_reply_limits limits = {});
  ~rspamd_reply_parser();
  rspamd_reply_parser(rspamd_reply_parser&&) noexcept;
  rspamd_reply_parser& operator=(rspamd_reply_parser&&) noexcept;

  void feed(std::string_view bytes);
  result<std::optional<rspamd_verdict>> next();
  result<rspamd_verdict> finish();
  /// The HTTP status and rspamd's "error" text of the last non-200 response (for logs).
  int status() const noexcept;
  std::string const& error_text() const noexcept;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

/// What rspamd is told about the message (every field optional; empty ones are not sent).
struct rspamd_envelope {
  std::optional<asio::ip::address> ip;  ///< the SMTP client's address
  std::string helo;
  std::string from;                     ///< envelope sender, "" for the null sender
  std::vector<std::string> rcpts;
  std::string queue_id;
  std::string user;                     ///< the authenticated user
  std::string hostname;                 ///< the client's verified reverse DNS name
  /// More headers for rspamd (Settings-Id, Pass, MTA-Tag, Log-Tag ...), names as tokens.
  std::vector<std::pair<std::string, std::string>> extra;
};

/// The request line and headers for a message of `length` octets, ending with the blank line.
/// mailroom::errc::invalid_argument when a value holds CR, LF or NUL, or a name is not a token.
result<std::string> rspamd_request_head(std::string_view path, std::string_view host, rspamd_envelope const& env,
                                        std::uint64_t length);

struct rspamd_options {
  scanner_address address = scanner_address::tcp({asio::ip::address_v4::loopback(), 11333});
  scan_deadlines deadlines;
  std::string path = "/checkv2";
  /// Larger messages are scan_errc::message_too_large without connecting (rspamd's own
  /// max_message is 50 MB by default).
  std::uint64_t max_size = 20u << 20;
  rspamd_reply_limits limits;
};

class rspamd_client {
 public:
  rspamd_client(executor ex, rspamd_options opts, log::logger logger = {});

  task<result<rspamd_verdict>> scan(std::string_view message, rspamd_envelope const& env);
  /// GET /ping: succeeds on a 200 whose body is "pong".
  task<result<void>> ping();

  rspamd_options const& options() const noexcept { return opts_; }

 private:
  executor ex_;
  rspamd_options opts_;
  log::logger log_;
};

}  // namespace mailroom::filter
