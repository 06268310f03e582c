#include "mailroom/filter/scanner.hpp"

#include <charconv>

#include "mailroom/core/error.hpp"

namespace mailroom::filter {

namespace {

char const* describe(scan_errc e) noexcept {
  switch (e) {
    case scan_errc::malformed_reply: return "malformed reply from the scanner";
    case scan_errc::reply_too_large: return "reply from the scanner over the client's limits";
    case scan_errc::message_too_large: return "message over the size limit for scanning";
    case scan_errc::size_limit_exceeded: return "the scanner refused the message as too large";
    case scan_errc::scanner_error: return "the scanner reported an error";
    case scan_errc::request_refused: return "the scanner refused the request";
    case scan_errc::temporarily_unavailable: return "the scanner is temporarily unavailable";
  }
  return nullptr;
}

constexpr std::size_t max_unix_path = 107;  // sun_path is 108 octets with its NUL

result<std::uint16_t> parse_port(std::string_view s) {
  unsigned v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v == 0 || v > 65535)
    return fail(errc::invalid_argument);
  return static_cast<std::uint16_t>(v);
}

result<asio::ip::address> parse_host(std::string_view s) {
  if (s == "localhost") return asio::ip::address(asio::ip::address_v4::loopback());
  if (s.size() >= 2 && s.front() == '[' && s.back() == ']') s = s.substr(1, s.size() - 2);
  std::error_code ec;
  auto a = asio::ip::make_address(std::string(s), ec);
  if (ec) return fail(errc::invalid_argument);
  return a;
}

result<scanner_address> tcp_from(std::string_view host, std::string_view port) {
  auto p = parse_port(port);
  if (!p) return fail(p.error());
  auto h = parse_host(host);
  if (!h) return fail(h.error());
  return scanner_address::tcp({*h, *p});
}

}  // namespace

std::error_category const& scan_category() noexcept {
  static mailroom::detail::enum_category<scan_errc> const instance("mailroom.filter.scan", describe,
                                                                    "unknown scanner error");
  return instance;
}

scanner_address scanner_address::tcp(asio::ip::tcp::endpoint ep) {
  scanner_address a;
  a.k = kind::tcp;
  a.endpoint = ep;
  return a;
}

scanner_address scanner_address::unix_socket(std::string path) {
  scanner_address a;
  a.k = kind::unix_socket;
  a.path = std::move(path);
  return a;
}

result<scanner_address> scanner_address::parse(std::string_view text) {
  bool const unix_prefix = text.starts_with("unix:");
  if (unix_prefix) text.remove_prefix(5);
  if (unix_prefix && !text.starts_with("/")) return fail(errc::invalid_argument);
  if (text.starts_with("/")) {
    if (text.size() > max_unix_path || text.find('\0') != std::string_view::npos) return fail(errc::invalid_argument);
    return unix_socket(std::string(text));
  }
  if (text.starts_with("inet:")) {
    text.remove_prefix(5);
    auto at = text.find('@');
    if (at == std::string_view::npos) return fail(errc::invalid_argument);
    return tcp_from(text.substr(at + 1), text.substr(0, at));
  }
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return fail(errc::invalid_argument);
  auto host = text.substr(0, colon);
  // A bare IPv6 literal has colons of its own: it must be bracketed.
  if (host.find(':') != std::string_view::npos && !host.starts_with("[")) return fail(errc::invalid_argument);
  return tcp_from(host, text.substr(colon + 1));
}

std::string scanner_address::to_string() const {
  if (k == kind::unix_socket) return "unix:" + path;
  return "inet:" + std::to_string(endpoint.port()) + "@" + endpoint.address().to_string();
}

}  // namespace mailroom::filter
