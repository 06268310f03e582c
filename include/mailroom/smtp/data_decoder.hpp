// Sans-I/O decoder for the SMTP DATA stream (RFC 5321 4.5.2, 2.3.8).
//
// Contract: only <CRLF>.<CRLF> ends the message (the initial CRLF may be the one that ended the
// DATA command). A bare LF or bare CR ends a content line (written out as CRLF; a stuffed dot
// after it is removed, as the sending client meant) but never starts the end-of-data line, so
// `\n.\n`, `\r.\r\n`, `\n.\r\n` and similar cannot end the message early (SMTP smuggling,
// CVE-2023-51764). Bare line ends are counted so a caller can reject such messages instead
// (bare_policy::reject) once they ended.
// Output always uses CRLF line ends; dot-stuffing is removed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace mailroom::smtp {

enum class bare_policy : std::uint8_t { reject, normalize };

class data_decoder {
 public:
  struct step {
    std::size_t consumed = 0;  ///< input bytes used (up to and including the terminator when done)
    bool done = false;         ///< the terminator was seen
  };

  /// Appends decoded bytes to out, at most `out_room` of them (the caller's size limit); bytes past
  /// that are dropped and counted in overflow().
  step decode(std::span<char const> in, std::string& out, std::size_t out_room = SIZE_MAX);

  std::uint64_t bare_newlines() const noexcept { return bare_; }
  std::uint64_t overflow() const noexcept { return overflow_; }
  bool done() const noexcept { return state_ == state::done; }

 private:
  enum class state : std::uint8_t { line_start, soft_start, mid, cr, dot, soft_dot, dot_cr, done };
  void emit(std::string& out, std::size_t& room, char const* p, std::size_t n);

  state state_ = state::line_start;
  std::uint64_t bare_ = 0;
  std::uint64_t overflow_ = 0;
};

}  // namespace mailroom::smtp
