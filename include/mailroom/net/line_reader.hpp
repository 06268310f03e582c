// Buffered reads of lines with a hard length cap, over any net::stream.
//
// Contract: memory is bounded by the buffer size given at construction, whatever the peer sends.
// A line longer than max_line is discarded up to and including its LF, and read_line then fails
// with net::errc::line_too_long; the next read_line starts on the following line.
// The stream is passed per call so a session can swap it (STARTTLS) while keeping the reader;
// discard_buffered() drops what the peer pipelined before the swap.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

#include "mailroom/net/stream.hpp"

namespace mailroom::net {

class line_reader {
 public:
  struct line {
    std::string_view text;  ///< without the terminator; valid until the next call on the reader
    bool bare_lf = false;   ///< ended by LF alone rather than CRLF
  };

  /// max_line counts the bytes before the terminator. The buffer holds at least max_line + 2 bytes.
  explicit line_reader(std::size_t max_line, std::size_t buffer_size = 16 * 1024);

  /// limit: a tighter or looser cap for this line (0 = max_line); at most buffer size - 2.
  task<result<line>> read_line(stream& s, std::size_t limit = 0);

  /// Bytes read from the stream and not yet consumed.
  std::span<char const> buffered() const noexcept { return {buf_.data() + begin_, end_ - begin_}; }
  void consume(std::size_t n) noexcept;
  void discard_buffered() noexcept { begin_ = end_ = 0; }

  /// Reads at least one more byte from s into the buffer (compacting it first if needed).
  task<result<void>> fill(stream& s);

  std::size_t max_line() const noexcept { return max_line_; }

 private:
  std::size_t find_lf(std::size_t from) const noexcept;
  void compact() noexcept;

  std::vector<char> buf_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  std::size_t max_line_;
};

}  // namespace mailroom::net
