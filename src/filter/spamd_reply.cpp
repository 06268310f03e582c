// The sans-I/O half of spamd.hpp, apart from the client so that fuzzers can compile it alone.
#include "mailroom/filter/spamd.hpp"

#include <charconv>

#include "mailroom/core/error.hpp"
#include "mailroom/core/text.hpp"
#include "mailroom/net/error.hpp"

namespace mailroom::filter {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

template <class T>
bool parse_number(std::string_view s, T& out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

/// "SPAMD/d.d CODE MESSAGE" (MESSAGE may be empty).
bool parse_status(std::string_view line, int& code, std::string& message) {
  if (!line.starts_with("SPAMD/")) return false;
  line.remove_prefix(6);
  auto sp = line.find(' ');
  auto version = line.substr(0, sp);
  auto dot = version.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == version.size()) return false;
  for (std::size_t i = 0; i < version.size(); ++i)
    if (i != dot && !is_digit(version[i])) return false;
  if (sp == std::string_view::npos) return false;
  line.remove_prefix(sp + 1);
  sp = line.find(' ');
  auto code_text = line.substr(0, sp);
  if (code_text.size() > 3 || !parse_number(code_text, code) || code < 0) return false;
  message = sp == std::string_view::npos ? std::string() : std::string(trim(line.substr(sp + 1)));
  return true;
}

}  // namespace

spamd_reply_parser::spamd_reply_parser(spamd_command cmd, spamd_reply_limits limits) : cmd_(cmd), limits_(limits) {}

void spamd_reply_parser::feed(std::string_view bytes) {
  if (!error_) buf_.append(bytes);
}

result<std::optional<spamd_reply>> spamd_reply_parser::fail_with(scan_errc e) {
  error_ = make_error_code(e);
  buf_.clear();
  buf_.shrink_to_fit();
  reply_ = {};
  return fail(error_);
}

result<void> spamd_reply_parser::status_line(std::string_view line) {
  if (!parse_status(line, reply_.code, reply_.message)) return fail(scan_errc::malformed_reply);
  phase_ = reply_.code == 0 ? phase::headers : phase::done;
  return {};
}

result<void> spamd_reply_parser::header_line(std::string_view line) {
  if (++headers_ > limits_.max_headers) return fail(scan_errc::reply_too_large);
  auto colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return fail(scan_errc::malformed_reply);
  auto name = line.substr(0, colon);
  auto value = trim(line.substr(colon + 1));
  if (text::iequals(name, "Spam")) {
    reply_.spam = std::string(value);
  } else if (text::iequals(name, "Content-length")) {
    std::uint64_t n = 0;
    if (reply_.content_length || !parse_number(value, n)) return fail(scan_errc::malformed_reply);
    if (n > limits_.max_body) return fail(scan_errc::reply_too_large);
    reply_.content_length = n;
  }
  return {};
}

result<std::optional<spamd_reply>> spamd_reply_parser::next() {
  if (error_) return fail(error_);
  while (phase_ == phase::status || phase_ == phase::headers) {
    auto lf = buf_.find('\n');
    if (lf == std::string::npos) {
      if (buf_.size() > limits_.max_line + 1) return fail_with(scan_errc::reply_too_large);
      return std::optional<spamd_reply>{};
    }
    std::string_view line(buf_.data(), lf);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > limits_.max_line) return fail_with(scan_errc::reply_too_large);
    result<void> r;
    if (phase_ == phase::status) {
      r = status_line(line);
    } else if (line.empty()) {
      bool const body = reply_.content_length ? *reply_.content_length > 0 : cmd_ != spamd_command::check;
      phase_ = body ? phase::body : phase::done;
    } else {
      r = header_line(line);
    }
    if (!r) return fail_with(static_cast<scan_errc>(r.error().value()));
    buf_.erase(0, lf + 1);
  }
  if (phase_ == phase::body) {
    std::size_t const want = reply_.content_length ? static_cast<std::size_t>(*reply_.content_length) : limits_.max_body;
    if (buf_.size() > want) {
      if (reply_.content_length) return fail_with(scan_errc::malformed_reply);  // more than announced
      return fail_with(scan_errc::reply_too_large);
    }
    if (!reply_.content_length || buf_.size() < want) return std::optional<spamd_reply>{};
    reply_.body = std::move(buf_);
    buf_.clear();
    phase_ = phase::done;
  }
  if (!buf_.empty()) return fail_with(scan_errc::malformed_reply);  // octets after the reply
  return std::optional<spamd_reply>(std::move(reply_));
}

result<spamd_reply> spamd_reply_parser::finish() {
  if (error_) return fail(error_);
  if (phase_ == phase::body && !reply_.content_length) {
    reply_.body = std::move(buf_);
    buf_.clear();
    phase_ = phase::done;
    return std::move(reply_);
  }
  auto r = next();
  if (!r) return fail(r.error());
  if (!*r) return fail(net::errc::eof);
  return std::move(**r);
}

result<spamd_verdict> interpret_spamd_reply(spamd_reply const& reply, spamd_command cmd) {
  switch (reply.code) {
    case 0: break;
    case 69: case 75: case 79: return fail(scan_errc::temporarily_unavailable);
    case 64: case 65: case 66: case 67: case 68: case 76: case 77: return fail(scan_errc::request_refused);
    default: return fail(scan_errc::scanner_error);
  }
  if (!reply.spam) return fail(scan_errc::malformed_reply);
  // "True ; 15.3 / 5.0"
  std::string_view v = *reply.spam;
  auto semi = v.find(';'), slash = v.find('/');
  if (semi == std::string_view::npos || slash == std::string_view::npos || slash < semi)
    return fail(scan_errc::malformed_reply);
  spamd_verdict out;
  auto flag = trim(v.substr(0, semi));
  if (text::iequals(flag, "True") || text::iequals(flag, "Yes")) out.spam = true;
  else if (!text::iequals(flag, "False") && !text::iequals(flag, "No")) return fail(scan_errc::malformed_reply);
  if (!parse_number(trim(v.substr(semi + 1, slash - semi - 1)), out.score) ||
      !parse_number(trim(v.substr(slash + 1)), out.threshold))
    return fail(scan_errc::malformed_reply);
  if (cmd == spamd_command::report) {
    out.report = reply.body;
  } else if (cmd == spamd_command::symbols) {
    std::string_view rest = trim(reply.body);
    while (!rest.empty()) {
      auto comma = rest.find(',');
      auto name = trim(rest.substr(0, comma));
      if (name.empty()) return fail(scan_errc::malformed_reply);
      for (char c : name)
        if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return fail(scan_errc::malformed_reply);
      out.symbols.emplace_back(name);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return out;
}

result<std::string> spamd_request_head(spamd_command cmd, std::uint64_t length, std::string_view user) {
  if (user.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos) return fail(errc::invalid_argument);
  std::string out = cmd == spamd_command::check ? "CHECK" : cmd == spamd_command::symbols ? "SYMBOLS" : "REPORT";
  out += " SPAMC/1.5\r\nContent-length: " + std::to_string(length) + "\r\n";
  if (!user.empty()) out += "User: " + std::string(user) + "\r\n";
  out += "\r\n";
  return out;
}

}  // namespace mailroom::filter
