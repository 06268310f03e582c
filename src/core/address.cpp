#include "mailroom/core/address.hpp"

#include <asio/ip/address.hpp>

#include "mailroom/core/error.hpp"
#include "mailroom/core/text.hpp"

namespace mailroom {

namespace {
constexpr std::size_t max_local = 64 * 4;    // RFC 5321 says 64 octets; UTF-8 and real-world slack
constexpr std::size_t max_domain = 255;

bool is_atext(unsigned char c, bool utf8) {
  if (c >= 0x80) return utf8;
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '/': case '=': case '?': case '^': case '_': case '`': case '{': case '|': case '}': case '~':
      return true;
    default:
      return false;
  }
}

bool is_let_dig(unsigned char c, bool utf8) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || (utf8 && c >= 0x80);
}

bool valid_utf8(std::string_view s) { return text::is_valid_utf8(s); }
}  // namespace

bool is_dot_string(std::string_view s, bool allow_utf8) noexcept {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  char prev = 0;
  for (unsigned char c : s) {
    if (c == '.') {
      if (prev == '.') return false;
    } else if (!is_atext(c, allow_utf8)) {
      return false;
    }
    prev = static_cast<char>(c);
  }
  return !allow_utf8 || valid_utf8(s);
}

bool is_valid_domain(std::string_view s, bool allow_utf8) noexcept {
  if (s.empty() || s.size() > max_domain) return false;
  if (s.front() == '[') {
    if (s.back() != ']') return false;
    auto inner = s.substr(1, s.size() - 2);
    std::error_code ec;
    if (inner.substr(0, 5) == "IPv6:" || inner.substr(0, 5) == "ipv6:") {
      (void)asio::ip::make_address_v6(std::string(inner.substr(5)), ec);
      return !ec;
    }
    (void)asio::ip::make_address_v4(std::string(inner), ec);
    return !ec;
  }
  std::size_t label = 0;
  char prev = '.';
  for (unsigned char c : s) {
    if (c == '.') {
      if (label == 0 || prev == '-') return false;
      label = 0;
    } else if (is_let_dig(c, allow_utf8) || c == '-') {
      if (label == 0 && c == '-') return false;
      if (++label > 63 && !allow_utf8) return false;
    } else {
      return false;
    }
    prev = static_cast<char>(c);
  }
  if (prev == '-') return false;
  return !allow_utf8 || valid_utf8(s);
}

std::string address::to_string() const {
  if (is_null()) return {};
  std::string out;
  if (is_dot_string(local, true)) {
    out = local;
  } else {
    out.reserve(local.size() + 4);
    out += '"';
    for (char c : local) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  if (!domain.empty()) {
    out += '@';
    out += domain;
  }
  return out;
}

result<address> parse_path(std::string_view text, path_options const& opts, std::size_t* consumed) {
  auto bad = [] { return fail(errc::invalid_argument); };
  if (text.empty() || text.front() != '<') return bad();
  std::size_t i = 1;
  if (text.size() > 1 && text[1] == '>') {
    if (!opts.allow_null) return bad();
    if (consumed) *consumed = 2;
    return address{};
  }
  // Source route: "@a,@b:" before the mailbox; RFC 5321 says accept and ignore.
  if (i < text.size() && text[i] == '@') {
    auto colon = text.find(':', i);
    if (colon == std::string_view::npos) return bad();
    auto route = text.substr(i, colon - i);
    std::size_t p = 0;
    while (p < route.size()) {
      if (route[p] != '@') return bad();
      auto comma = route.find(',', p);
      auto dom = route.substr(p + 1, (comma == std::string_view::npos ? route.size() : comma) - p - 1);
      if (!is_valid_domain(dom, opts.allow_utf8)) return bad();
      if (comma == std::string_view::npos) break;
      p = comma + 1;
    }
    i = colon + 1;
  }
  address out;
  // Local part: quoted string or dot-string.
  if (i < text.size() && text[i] == '"') {
    ++i;
    bool closed = false;
    while (i < text.size()) {
      unsigned char c = static_cast<unsigned char>(text[i]);
      if (c == '"') {
        closed = true;
        ++i;
        break;
      }
      if (c == '\\') {
        if (i + 1 >= text.size()) return bad();
        unsigned char q = static_cast<unsigned char>(text[i + 1]);
        if (q < 32 || q > 126) return bad();
        out.local += static_cast<char>(q);
        i += 2;
        continue;
      }
      if ((c < 32 && c != '\t') || c == 127 || (c >= 0x80 && !opts.allow_utf8)) return bad();
      out.local += static_cast<char>(c);
      ++i;
    }
    if (!closed) return bad();
    if (opts.allow_utf8 && !valid_utf8(out.local)) return bad();
  } else {
    auto end = text.find_first_of("@>", i);
    if (end == std::string_view::npos) return bad();
    out.local = std::string(text.substr(i, end - i));
    if (!is_dot_string(out.local, opts.allow_utf8)) return bad();
    i = end;
  }
  if (out.local.size() > max_local) return bad();
  if (i >= text.size()) return bad();
  if (text[i] == '>') {
    // <postmaster> without a domain (RFC 5321 4.1.1.3), case-insensitive.
    if (!opts.allow_postmaster || out.local.size() != 10) return bad();
    for (std::size_t k = 0; k < 10; ++k)
      if ((out.local[k] | 0x20) != "postmaster"[k]) return bad();
    if (consumed) *consumed = i + 1;
    return out;
  }
  if (text[i] != '@') return bad();
  ++i;
  auto close = text.find('>', i);
  if (close == std::string_view::npos) return bad();
  auto dom = text.substr(i, close - i);
  if (!is_valid_domain(dom, opts.allow_utf8)) return bad();
  out.domain = std::string(dom);
  if (consumed) *consumed = close + 1;
  return out;
}

}  // namespace mailroom
