#include "mailroom/smtp/reply_parser.hpp"

#include <algorithm>

#include "mailroom/smtp/error.hpp"

namespace mailroom::smtp {

namespace {

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// "c.s.d" at the start of text, followed by a space or the end: RFC 3463 class (which must be
// the reply's first digit), subject and detail of 1 to 3 digits each. Values that do not fit
// reply::enhanced (over 255) are not taken as an enhanced code. Returns the length of the code.
std::size_t parse_enhanced(std::string_view text, int reply_class, std::array<std::uint8_t, 3>& out) {
  if (text.size() < 5 || text[0] - '0' != reply_class || text[1] != '.') return 0;
  std::size_t i = 2;
  unsigned parts[2] = {0, 0};
  for (int p = 0; p < 2; ++p) {
    std::size_t start = i;
    while (i < text.size() && is_digit(text[i]) && i - start < 4) parts[p] = parts[p] * 10 + static_cast<unsigned>(text[i++] - '0');
    if (i == start || i - start > 3) return 0;
    if (p == 0) {
      if (i >= text.size() || text[i] != '.') return 0;
      ++i;
    }
  }
  if (i < text.size() && text[i] != ' ') return 0;
  if (parts[0] > 255 || parts[1] > 255) return 0;
  out = {static_cast<std::uint8_t>(reply_class), static_cast<std::uint8_t>(parts[0]), static_cast<std::uint8_t>(parts[1])};
  return i;
}

}  // namespace

reply_parser::reply_parser(reply_limits limits) : limits_(limits) {}

void reply_parser::feed(std::string_view bytes) {
  if (error_) return;  // nothing more will be parsed
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  buf_.append(bytes);
}

void reply_parser::discard_buffered() noexcept {
  buf_.clear();
  pos_ = 0;
  lines_ = 0;
  text_.clear();
}

result<std::optional<reply>> reply_parser::fail_with(std::error_code ec) {
  error_ = ec;
  buf_.clear();
  buf_.shrink_to_fit();
  text_.clear();
  text_.shrink_to_fit();
  pos_ = 0;
  return fail(ec);
}

result<std::optional<reply>> reply_parser::next() {
  if (error_) return fail(error_);
  for (;;) {
    std::string_view rest(buf_.data() + pos_, buf_.size() - pos_);
    auto lf = rest.find('\n');
    if (lf == std::string_view::npos) {
      // A line end cannot come soon enough: the line is already over the limit (a CR may still
      // be followed by its LF, hence + 1).
      if (rest.size() > limits_.max_line + 1) return fail_with(make_error_code(errc::reply_too_long));
      buf_.erase(0, pos_);
      pos_ = 0;
      return std::optional<reply>{};
    }
    std::string_view line = rest.substr(0, lf);
    pos_ += lf + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > limits_.max_line) return fail_with(make_error_code(errc::reply_too_long));

    // Reply-line = *( Reply-code "-" [ textstring ] CRLF ) Reply-code [ SP textstring ] CRLF
    if (line.size() < 3 || !is_digit(line[0]) || !is_digit(line[1]) || !is_digit(line[2]) || line[0] < '2' ||
        line[0] > '5')
      return fail_with(make_error_code(errc::malformed_reply));
    int const code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    bool last = true;
    std::string_view text;
    if (line.size() > 3) {
      if (line[3] == '-') last = false;
      else if (line[3] != ' ') return fail_with(make_error_code(errc::malformed_reply));
      text = line.substr(4);
    }

    if (lines_ == 0) {
      code_ = code;
      enhanced_ = {0, 0, 0};
      enhanced_text_.clear();
      text_.clear();
      if (auto n = parse_enhanced(text, code / 100, enhanced_); n > 0) {
        enhanced_text_ = text.substr(0, n);
        text = text.substr(std::min(text.size(), n + 1));
      }
    } else {
      if (code != code_) return fail_with(make_error_code(errc::malformed_reply));
      if (!enhanced_text_.empty() && text.substr(0, enhanced_text_.size()) == enhanced_text_ &&
          (text.size() == enhanced_text_.size() || text[enhanced_text_.size()] == ' '))
        text = text.substr(std::min(text.size(), enhanced_text_.size() + 1));
      text_ += '\n';
    }
    if (++lines_ > limits_.max_lines) return fail_with(make_error_code(errc::reply_too_long));
    text_.append(text);

    if (last) {
      reply r(code_, enhanced_, std::move(text_));
      text_.clear();
      lines_ = 0;
      return std::optional<reply>(std::move(r));
    }
  }
}

}  // namespace mailroom::smtp
