#include "mailroom/pop3/response_reader.hpp"

#include <cstring>

#include "mailroom/core/error.hpp"

namespace mailroom::pop3 {

namespace {

char const* describe(errc e) noexcept {
  switch (e) {
    case errc::malformed_response: return "malformed POP3 response";
    case errc::line_too_long: return "POP3 response line too long";
    case errc::too_large: return "POP3 message or listing over the size limit";
    case errc::refused: return "POP3 server answered -ERR";
    case errc::auth_failed: return "POP3 authentication failed";
    case errc::auth_unavailable: return "no way to send POP3 credentials (no TLS, or no usable mechanism)";
    case errc::stls_unavailable: return "STLS required by policy but not offered";
    case errc::no_uidl: return "POP3 server does not support UIDL";
    case errc::protocol_error: return "POP3 protocol error";
  }
  return nullptr;
}

}  // namespace

std::error_category const& category() noexcept {
  static mailroom::detail::enum_category<errc> const instance("mailroom.pop3", describe, "unknown pop3 error");
  return instance;
}

void response_reader::feed(std::string_view bytes) {
  compact();
  buf_.append(bytes);
}

void response_reader::compact() {
  if (pos_ == 0) return;
  if (pos_ >= buf_.size()) {
    buf_.clear();
  } else {
    buf_.erase(0, pos_);
  }
  pos_ = 0;
}

void response_reader::discard_buffered() noexcept {
  buf_.clear();
  pos_ = 0;
  ms_ = mstate::bol;
}

result<std::optional<std::string_view>> response_reader::take_line() {
  std::string_view const rest(buf_.data() + pos_, buf_.size() - pos_);
  auto const nl = rest.find('\n');
  if (nl == std::string_view::npos) {
    // max_line octets and a CR may legitimately wait for their LF; more cannot be a line.
    if (rest.size() > max_line_ + 1) return fail_with<std::optional<std::string_view>>(errc::line_too_long);
    return std::optional<std::string_view>{};
  }
  std::string_view l = rest.substr(0, nl);
  if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
  if (l.size() > max_line_) return fail_with<std::optional<std::string_view>>(errc::line_too_long);
  pos_ += nl + 1;
  return std::optional<std::string_view>(l);
}

result<std::optional<status>> response_reader::next_status() {
  if (error_) return fail(error_);
  auto l = take_line();
  if (!l) return fail(l.error());
  if (!*l) return std::optional<status>{};
  std::string_view const s = **l;
  status st;
  st.line = std::string(s);
  auto rest_after = [&](std::string_view prefix) -> std::optional<std::string_view> {
    if (!s.starts_with(prefix)) return std::nullopt;
    std::string_view r = s.substr(prefix.size());
    if (r.empty()) return r;
    if (r.front() != ' ') return std::nullopt;
    return r.substr(1);
  };
  if (auto r = rest_after("+OK")) {
    st.k = status::kind::ok;
    st.text = std::string(*r);
  } else if (auto e = rest_after("-ERR")) {
    st.k = status::kind::err;
    st.text = std::string(*e);
  } else if (auto c = rest_after("+")) {
    st.k = status::kind::continuation;
    st.text = std::string(*c);
  } else {
    return fail_with<std::optional<status>>(errc::malformed_response);
  }
  return std::optional<status>(std::move(st));
}

result<std::optional<response_reader::line>> response_reader::next_line() {
  if (error_) return fail(error_);
  auto l = take_line();
  if (!l) return fail(l.error());
  if (!*l) return std::optional<line>{};
  std::string_view s = **l;
  line out;
  if (s == ".") {
    out.end = true;
    return std::optional<line>(std::move(out));
  }
  if (s.starts_with('.')) s.remove_prefix(1);
  out.text = std::string(s);
  return std::optional<line>(std::move(out));
}

result<bool> response_reader::read_message(std::string& out, std::size_t max_size) {
  if (error_) return fail(error_);
  char const* p = buf_.data() + pos_;
  char const* const end = buf_.data() + buf_.size();
  // Appends n octets, or fails when that would pass max_size (nothing of them is appended).
  auto emit = [&](char const* from, std::size_t n) -> bool {
    if (n > max_size || out.size() > max_size - n) return false;
    out.append(from, n);
    return true;
  };
  auto too_large = [&] {
    pos_ = buf_.size();
    return fail_with<bool>(errc::too_large);
  };
  while (p != end) {
    char const c = *p;
    switch (ms_) {
      case mstate::bol:
        if (c == '.') {
          ms_ = mstate::dot;
          ++p;
          continue;
        }
        ms_ = mstate::mid;
        continue;  // the same octet, as content
      case mstate::dot:  // a line that began with '.': the terminator, or a stuffed dot dropped
        if (c == '\r') {
          ms_ = mstate::dot_cr;
          ++p;
          continue;
        }
        if (c == '\n') {  // ".\n": a lenient end
          pos_ = static_cast<std::size_t>(p + 1 - buf_.data());
          ms_ = mstate::bol;
          compact();
          return true;
        }
        ms_ = mstate::mid;
        continue;
      case mstate::dot_cr:
        if (c == '\n') {
          pos_ = static_cast<std::size_t>(p + 1 - buf_.data());
          ms_ = mstate::bol;
          compact();
          return true;
        }
        // "." CR then something else: the dot was stuffing; the CR is a bare one, kept.
        ms_ = mstate::cr;
        continue;
      case mstate::cr:  // a CR was read and not emitted yet
        if (c == '\n') {
          if (!emit("\r\n", 2)) return too_large();
          ms_ = mstate::bol;
          ++p;
          continue;
        }
        if (!emit("\r", 1)) return too_large();
        ms_ = mstate::mid;
        continue;
      case mstate::mid: {
        // Plain content up to the next CR or LF in one piece.
        std::size_t const avail = static_cast<std::size_t>(end - p);
        auto const* cr = static_cast<char const*>(std::memchr(p, '\r', avail));
        auto const* lf = static_cast<char const*>(std::memchr(p, '\n', avail));
        char const* stop = cr && (!lf || cr < lf) ? cr : lf;
        if (!stop) stop = end;
        if (stop != p && !emit(p, static_cast<std::size_t>(stop - p))) return too_large();
        p = stop;
        if (p == end) break;
        if (*p == '\r') {
          ms_ = mstate::cr;
        } else {
          if (!emit("\r\n", 2)) return too_large();
          ms_ = mstate::bol;
        }
        ++p;
        continue;
      }
    }
  }
  pos_ = buf_.size();
  compact();
  return false;
}

}  // namespace mailroom::pop3
