#include "filter/detail/http_reply.hpp"

#include <algorithm>

#include "mailroom/core/text.hpp"
#include "mailroom/filter/scanner.hpp"
#include "mailroom/net/error.hpp"

namespace mailroom::filter::detail {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_token_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string const* http_response::header(std::string_view name) const noexcept {
  for (auto const& [n, v] : headers)
    if (text::iequals(n, name)) return &v;
  return nullptr;
}

void http_response_parser::feed(std::string_view bytes) {
  if (error_) return;
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  buf_.append(bytes);
}

result<std::optional<http_response>> http_response_parser::fail_with(std::error_code ec) {
  error_ = ec;
  buf_.clear();
  buf_.shrink_to_fit();
  pos_ = 0;
  r_ = {};
  return fail(ec);
}

result<std::optional<std::string_view>> http_response_parser::line() {
  std::string_view rest(buf_.data() + pos_, buf_.size() - pos_);
  auto lf = rest.find('\n');
  if (lf == std::string_view::npos) {
    if (rest.size() > limits_.max_line + 1) return fail(scan_errc::reply_too_large);
    return std::optional<std::string_view>{};
  }
  std::string_view l = rest.substr(0, lf);
  pos_ += lf + 1;
  if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
  if (l.size() > limits_.max_line) return fail(scan_errc::reply_too_large);
  return std::optional<std::string_view>(l);
}

// "HTTP/1.1 200 OK"
result<void> http_response_parser::on_status(std::string_view l) {
  if (l.size() < 12 || !l.starts_with("HTTP/1.") || (l[7] != '0' && l[7] != '1') || l[8] != ' ')
    return fail(scan_errc::malformed_reply);
  auto code = l.substr(9, 3);
  auto v = text::parse_uint(code);
  if (!v || *v < 100 || *v > 599 || (l.size() > 12 && l[12] != ' ')) return fail(scan_errc::malformed_reply);
  r_.status = static_cast<int>(*v);
  r_.reason = std::string(l.size() > 13 ? l.substr(13) : std::string_view());
  r_.headers.clear();
  phase_ = phase::headers;
  return {};
}

result<void> http_response_parser::on_header(std::string_view l) {
  if (++header_lines_ > limits_.max_headers) return fail(scan_errc::reply_too_large);
  auto colon = l.find(':');
  if (colon == std::string_view::npos || colon == 0) return fail(scan_errc::malformed_reply);
  auto name = l.substr(0, colon);
  if (!std::all_of(name.begin(), name.end(), is_token_char)) return fail(scan_errc::malformed_reply);
  if (phase_ == phase::headers) r_.headers.emplace_back(std::string(name), std::string(trim(l.substr(colon + 1))));
  return {};  // trailers are read and dropped
}

result<void> http_response_parser::end_of_headers() {
  if (r_.status < 200) {  // an interim response: the real one follows
    phase_ = phase::status;
    return {};
  }
  std::optional<std::uint64_t> length;
  bool chunked = false;
  for (auto const& [n, v] : r_.headers) {
    if (text::iequals(n, "Content-Length")) {
      auto x = text::parse_uint(v);
      if (!x || (length && *length != *x)) return fail(scan_errc::malformed_reply);
      length = x;
    } else if (text::iequals(n, "Transfer-Encoding")) {
      // Only "chunked" (as the last and only coding) is understood.
      if (!text::iequals(v, "chunked")) return fail(scan_errc::malformed_reply);
      chunked = true;
    }
  }
  if (chunked && length) return fail(scan_errc::malformed_reply);
  if (r_.status == 204 || r_.status == 304) {
    phase_ = phase::done;
  } else if (chunked) {
    phase_ = phase::chunk_size;
  } else if (length) {
    if (*length > limits_.max_body) return fail(scan_errc::reply_too_large);
    remaining_ = *length;
    phase_ = remaining_ ? phase::length_body : phase::done;
  } else {
    phase_ = phase::eof_body;
  }
  return {};
}

result<std::optional<http_response>> http_response_parser::next() {
  if (error_) return fail(error_);
  for (;;) {
    switch (phase_) {
      case phase::status:
      case phase::headers:
      case phase::chunk_size:
      case phase::chunk_end:
      case phase::trailers: {
        auto l = line();
        if (!l) return fail_with(l.error());
        if (!*l) {
          buf_.erase(0, pos_);
          pos_ = 0;
          return std::optional<http_response>{};
        }
        std::string_view const ln = **l;
        result<void> r;
        if (phase_ == phase::status) {
          r = on_status(ln);
        } else if (phase_ == phase::headers) {
          r = ln.empty() ? end_of_headers() : on_header(ln);
        } else if (phase_ == phase::trailers) {
          if (ln.empty()) phase_ = phase::done;
          else r = on_header(ln);
        } else if (phase_ == phase::chunk_end) {
          if (!ln.empty()) r = fail(scan_errc::malformed_reply);
          else phase_ = phase::chunk_size;
        } else {
          // chunk-size [ ; extensions ]: at most 16 hex digits, so no overflow.
          auto digits = ln.substr(0, std::min(ln.find(';'), ln.size()));
          digits = trim(digits);
          std::uint64_t n = 0;
          if (digits.empty() || digits.size() > 16) {
            r = fail(scan_errc::malformed_reply);
          } else {
            for (char c : digits) {
              int h = hex(c);
              if (h < 0) {
                r = fail(scan_errc::malformed_reply);
                break;
              }
              n = n * 16 + static_cast<unsigned>(h);
            }
          }
          if (r && n > limits_.max_body - r_.body.size()) r = fail(scan_errc::reply_too_large);
          if (r) {
            remaining_ = n;
            phase_ = n ? phase::chunk_data : phase::trailers;
          }
        }
        if (!r) return fail_with(r.error());
        break;
      }
      case phase::length_body:
      case phase::chunk_data: {
        auto take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, buf_.size() - pos_));
        r_.body.append(buf_, pos_, take);
        pos_ += take;
        remaining_ -= take;
        if (remaining_ > 0) return std::optional<http_response>{};
        phase_ = phase_ == phase::length_body ? phase::done : phase::chunk_end;
        break;
      }
      case phase::eof_body: {
        if (r_.body.size() + (buf_.size() - pos_) > limits_.max_body) return fail_with(make_error_code(scan_errc::reply_too_large));
        r_.body.append(buf_, pos_);
        pos_ = buf_.size();
        return std::optional<http_response>{};
      }
      case phase::done: {
        if (pos_ != buf_.size()) return fail_with(make_error_code(scan_errc::malformed_reply));
        phase_ = phase::status;  // a second call finds nothing more
        error_ = make_error_code(scan_errc::malformed_reply);
        return std::optional<http_response>(std::move(r_));
      }
    }
  }
}

result<http_response> http_response_parser::finish() {
  if (error_) return fail(error_);
  if (phase_ == phase::eof_body) {
    phase_ = phase::done;
    error_ = make_error_code(scan_errc::malformed_reply);
    return std::move(r_);
  }
  auto r = next();
  if (!r) return fail(r.error());
  if (!*r) return fail(net::errc::eof);
  return std::move(**r);
}

}  // namespace mailroom::filter::detail
