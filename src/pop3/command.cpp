#include "mailroom/pop3/command.hpp"

#include "mailroom/core/text.hpp"

namespace mailroom::pop3 {

command parse_command(std::string_view line) noexcept {
  static constexpr struct {
    std::string_view name;
    verb v;
  } verbs[] = {{"USER", verb::user}, {"PASS", verb::pass}, {"APOP", verb::apop}, {"AUTH", verb::auth},
               {"STLS", verb::stls}, {"CAPA", verb::capa}, {"STAT", verb::stat}, {"LIST", verb::list},
               {"UIDL", verb::uidl}, {"RETR", verb::retr}, {"TOP", verb::top},   {"DELE", verb::dele},
               {"NOOP", verb::noop}, {"RSET", verb::rset}, {"QUIT", verb::quit}};
  command c;
  auto sp = line.find(' ');
  auto name = line.substr(0, sp);
  for (auto const& x : verbs)
    if (text::iequals(x.name, name)) c.v = x.v;
  if (sp == std::string_view::npos) return c;
  auto rest = line.substr(sp + 1);
  if (c.v == verb::pass) {  // passwords may contain spaces
    c.arg1 = rest;
    c.args = 1;
    return c;
  }
  while (!rest.empty()) {
    auto next = rest.find(' ');
    auto a = rest.substr(0, next);
    if (c.args == 0) c.arg1 = a;
    else if (c.args == 1) c.arg2 = a;
    ++c.args;
    if (next == std::string_view::npos) break;
    rest = rest.substr(next + 1);
    if (rest.empty()) ++c.args;  // a trailing space: an empty argument, which no verb takes
  }
  return c;
}

std::optional<std::uint32_t> parse_number(std::string_view s) noexcept {
  if (s.empty() || s.size() > 9) return std::nullopt;
  auto n = text::parse_uint(s, UINT32_MAX);
  if (!n) return std::nullopt;
  return static_cast<std::uint32_t>(*n);
}

void multiline_encoder::end_line(std::string& out) {
  out += "\r\n";
  bool blank = line_empty_;
  line_empty_ = true;
  if (!in_body_) {
    if (blank) {  // the empty line between header and body
      in_body_ = true;
      if (body_lines_ && *body_lines_ == 0) done_ = true;
    }
  } else if (body_lines_ && --*body_lines_ == 0) {
    done_ = true;
  }
}

void multiline_encoder::feed(std::string_view in, std::string& out) {
  for (char c : in) {
    if (done_) return;
    if (pending_cr_) {
      pending_cr_ = false;
      end_line(out);            // CRLF, or a bare CR: the line ends either way
      if (c == '\n') continue;
      if (done_) return;
    }
    if (c == '\r') {
      pending_cr_ = true;
      continue;
    }
    if (c == '\n') {
      end_line(out);
      continue;
    }
    if (line_empty_ && c == '.') out += '.';
    line_empty_ = false;
    out += c;
  }
}

void multiline_encoder::finish(std::string& out) {
  if (pending_cr_ && !done_) end_line(out);
  pending_cr_ = false;
  if (!line_empty_ && !done_) out += "\r\n";
  out += ".\r\n";
}

}  // namespace mailroom::pop3
