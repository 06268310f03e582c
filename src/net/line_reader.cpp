#include "mailroom/net/line_reader.hpp"

#include <algorithm>
#include <cstring>

#include "mailroom/net/error.hpp"

namespace mailroom::net {

line_reader::line_reader(std::size_t max_line, std::size_t buffer_size)
    : buf_(std::max(buffer_size, max_line + 2)), max_line_(max_line) {}

void line_reader::consume(std::size_t n) noexcept {
  begin_ += std::min(n, end_ - begin_);
  if (begin_ == end_) begin_ = end_ = 0;
}

std::size_t line_reader::find_lf(std::size_t from) const noexcept {
  auto const* p = static_cast<char const*>(std::memchr(buf_.data() + from, '\n', end_ - from));
  return p ? static_cast<std::size_t>(p - buf_.data()) : std::string_view::npos;
}

void line_reader::compact() noexcept {
  if (begin_ == 0) return;
  std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
  end_ -= begin_;
  begin_ = 0;
}

task<result<void>> line_reader::fill(stream& s) {
  if (end_ == buf_.size()) compact();
  if (end_ == buf_.size()) co_return fail(errc::line_too_long);  // caller consumed nothing from a full buffer
  auto n = co_await s.read_some(std::span<char>(buf_.data() + end_, buf_.size() - end_));
  if (!n) co_return fail(n.error());
  end_ += *n;
  co_return result<void>{};
}

task<result<line_reader::line>> line_reader::read_line(stream& s, std::size_t limit) {
  std::size_t const cap = limit == 0 ? max_line_ : std::min(limit, buf_.size() - 2);
  std::size_t scanned = begin_;
  bool skipping = false;  // inside an overlong line: drop bytes until its LF
  for (;;) {
    auto lf = find_lf(scanned);
    if (lf != std::string_view::npos) {
      if (skipping) {
        begin_ = lf + 1;
        co_return fail(errc::line_too_long);
      }
      std::size_t len = lf - begin_;
      bool crlf = len > 0 && buf_[lf - 1] == '\r';
      if (crlf) --len;
      if (len > cap) {
        begin_ = lf + 1;
        co_return fail(errc::line_too_long);
      }
      line l{std::string_view(buf_.data() + begin_, len), !crlf};
      begin_ = lf + 1;
      if (begin_ == end_) begin_ = end_ = 0;  // safe: the view stays valid until the next call
      co_return l;
    }
    if (end_ - begin_ > cap + 1) {  // no LF within the cap (+1 for a CR): drop what we have
      skipping = true;
      begin_ = end_ = 0;
    }
    compact();
    scanned = end_;
    auto n = co_await s.read_some(std::span<char>(buf_.data() + end_, buf_.size() - end_));
    if (!n) co_return fail(n.error());
    end_ += *n;
  }
}

}  // namespace mailroom::net
