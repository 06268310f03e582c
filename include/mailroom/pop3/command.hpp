// POP3 (RFC 1939, 2449, 5034) without I/O: command lines in, commands out; messages out as
// the multi-line response body (CRLF line ends, dot-stuffed, terminated).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mailroom::pop3 {

enum class verb { user, pass, apop, auth, stls, capa, stat, list, uidl, retr, top, dele, noop, rset, quit, unknown };

struct command {
  verb v = verb::unknown;
  std::string_view arg1;  ///< first argument (PASS: the rest of the line, spaces included)
  std::string_view arg2;  ///< second argument (TOP's line count, AUTH's initial response)
  std::size_t args = 0;   ///< how many arguments were given
};

/// Parses one line without its CRLF. Verbs are case-insensitive; arguments are separated by
/// single spaces (RFC 1939 3). More arguments than a verb takes: args > 2.
command parse_command(std::string_view line) noexcept;

/// A message number or count: 1..max decimal digits, no sign; nullopt otherwise.
std::optional<std::uint32_t> parse_number(std::string_view s) noexcept;

/// Turns message bytes into a multi-line response body: bare LF becomes CRLF, lines starting
/// with '.' get another '.', and finish() ends the last line and adds ".\r\n". With a line
/// limit (TOP), only the header and that many body lines pass.
class multiline_encoder {
 public:
  explicit multiline_encoder(std::optional<std::uint32_t> body_lines = std::nullopt) : body_lines_(body_lines) {}
  void feed(std::string_view in, std::string& out);
  void finish(std::string& out);
  /// True once a TOP limit was reached: the rest of the input is not needed.
  bool done() const noexcept { return done_; }

 private:
  void end_line(std::string& out);

  std::optional<std::uint32_t> body_lines_;
  bool pending_cr_ = false;
  bool in_body_ = false;
  bool line_empty_ = true;  ///< the current line has no characters yet (blank line = end of header)
  bool done_ = false;
};

}  // namespace mailroom::pop3
