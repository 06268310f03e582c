// Sans-I/O reader of one HTTP/1.x response (RFC 9112) as a scanner's HTTP interface sends it:
// status line, headers, and a body delimited by Transfer-Encoding: chunked, Content-Length, or
// the end of the connection. Private to src/filter.
//
// Contract: feed() bytes, next() until it gives the response; at the end of the stream call
// finish(). Interim 1xx responses are skipped. Memory is bounded by the limits (a line is
// refused as soon as max_line octets arrived without its end). Errors are final:
// scan_errc::reply_too_large beyond a limit, scan_errc::malformed_reply for bad syntax, both
// Content-Length and chunked, differing Content-Lengths, or octets after a delimited body;
// net::errc::eof from finish() when the response stopped short.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mailroom/core/result.hpp"

namespace mailroom::filter::detail {

struct http_limits {
  std::size_t max_line = 8192;          ///< status, header, chunk-size and trailer lines
  std::size_t max_headers = 100;        ///< header and trailer lines
  std::size_t max_body = 4 << 20;       ///< octets of the body after de-chunking
};

struct http_response {
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;  ///< names as sent, values trimmed
  std::string body;
  /// The first header of that name (case-insensitive), or null.
  std::string const* header(std::string_view name) const noexcept;
};

class http_response_parser {
 public:
  explicit http_response_parser(http_limits limits = {}) : limits_(limits) {}
  void feed(std::string_view bytes);
  result<std::optional<http_response>> next();
  result<http_response> finish();

 private:
  result<std::optional<http_response>> fail_with(std::error_code ec);
  /// The next line (without CRLF/LF) if complete; an error when too long.
  result<std::optional<std::string_view>> line();
  result<void> on_status(std::string_view l);
  result<void> on_header(std::string_view l);
  result<void> end_of_headers();

  http_limits limits_;
  std::string buf_;
  std::size_t pos_ = 0;
  enum class phase { status, headers, length_body, chunk_size, chunk_data, chunk_end, trailers, eof_body, done };
  phase phase_ = phase::status;
  std::size_t header_lines_ = 0;
  std::uint64_t remaining_ = 0;  // of a Content-Length body or the current chunk
  http_response r_;
  std::error_code error_;
};

}  // namespace mailroom::filter::detail
