#include "mailroom/smtp/data_decoder.hpp"

#include <cstring>

namespace mailroom::smtp {

void data_decoder::emit(std::string& out, std::size_t& room, char const* p, std::size_t n) {
  std::size_t take = n < room ? n : room;
  out.append(p, take);
  room -= take;
  overflow_ += n - take;
}

data_decoder::step data_decoder::decode(std::span<char const> in, std::string& out, std::size_t room) {
  static constexpr char crlf[] = "\r\n";
  std::size_t i = 0;
  std::size_t const n = in.size();
  char const* p = in.data();
  // A bare CR or LF ends a line for the content (the output gets CRLF, a following stuffed dot is
  // removed) but leads to soft_start, from where "." never ends the message.
  auto bare_line_end = [&] {
    ++bare_;
    emit(out, room, crlf, 2);
    state_ = state::soft_start;
  };
  while (i < n && state_ != state::done) {
    switch (state_) {
      case state::mid: {
        // Fast path: copy up to the next CR or LF in one go.
        std::size_t j = i;
        while (j < n && p[j] != '\r' && p[j] != '\n') ++j;
        if (j > i) emit(out, room, p + i, j - i);
        i = j;
        if (i == n) break;
        if (p[i] == '\r') {
          state_ = state::cr;
        } else {
          bare_line_end();
        }
        ++i;
        break;
      }
      case state::line_start:
      case state::soft_start:
        if (p[i] == '.') {
          state_ = state_ == state::line_start ? state::dot : state::soft_dot;
          ++i;
        } else {
          state_ = state::mid;
        }
        break;
      case state::cr:
        if (p[i] == '\n') {
          emit(out, room, crlf, 2);
          state_ = state::line_start;
          ++i;
        } else {
          bare_line_end();  // this byte is looked at again from soft_start
        }
        break;
      case state::dot:
        if (p[i] == '\r') {
          state_ = state::dot_cr;
          ++i;
        } else if (p[i] == '\n') {  // a lone dot ended by a bare LF is data
          emit(out, room, ".", 1);
          bare_line_end();
          ++i;
        } else {  // a leading dot before other characters is stuffing (RFC 5321 4.5.2)
          state_ = state::mid;
        }
        break;
      case state::soft_dot:
        if (p[i] == '\r' || p[i] == '\n') emit(out, room, ".", 1);  // a lone dot is data
        state_ = state::mid;  // otherwise the dot was stuffing
        break;
      case state::dot_cr:
        if (p[i] == '\n') {
          state_ = state::done;
          ++i;
        } else {  // ".\r" and more: a lone dot ended by a bare CR is data
          emit(out, room, ".", 1);
          bare_line_end();
        }
        break;
      case state::done:
        break;
    }
  }
  return {i, state_ == state::done};
}

}  // namespace mailroom::smtp
