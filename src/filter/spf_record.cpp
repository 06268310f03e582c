#include "mailroom/filter/spf_record.hpp"

#include <algorithm>
#include <cctype>
#include <utility>

#include "detail/spf_chars.hpp"  // relative: the fuzz target compiles this file without src/ on its path
#include "mailroom/core/error.hpp"
#include "mailroom/core/text.hpp"

namespace mailroom::filter::spf {

using namespace detail;

namespace {

char const* describe(errc e) noexcept {
  switch (e) {
    case errc::not_spf: return "not an SPF record";
    case errc::not_ascii: return "record holds a control or non-ASCII octet";
    case errc::too_long: return "record too long";
    case errc::too_many_terms: return "record has too many terms";
    case errc::unknown_mechanism: return "unknown mechanism";
    case errc::bad_argument: return "mechanism argument missing, extra or malformed";
    case errc::bad_ip: return "malformed IP network";
    case errc::bad_cidr: return "malformed prefix length";
    case errc::bad_domain_spec: return "malformed domain-spec";
    case errc::bad_macro: return "malformed macro";
    case errc::macro_not_allowed: return "macro letter allowed only in explanations";
    case errc::duplicate_modifier: return "redirect or exp given twice";
  }
  return nullptr;
}

// RFC 7208 7.1: macro-literal = %x21-24 / %x26-7E
constexpr bool is_macro_literal(char c) noexcept { return c >= 0x21 && c <= 0x7e && c != '%'; }
constexpr bool is_delimiter(char c) noexcept {
  return c == '.' || c == '-' || c == '+' || c == ',' || c == '/' || c == '_' || c == '=';
}

unexpected<syntax_error> syntax(errc code, std::string_view term) {
  return unexpected<syntax_error>(syntax_error{code, std::string(term.substr(0, 64))});
}

// toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
bool is_toplabel(std::string_view s) noexcept {
  if (s.empty() || !is_alnum(s.front()) || !is_alnum(s.back())) return false;
  bool alpha = false, dash = false;
  for (char c : s) {
    if (is_alpha(c)) alpha = true;
    else if (c == '-') dash = true;
    else if (!is_digit(c)) return false;
  }
  return alpha || dash;
}

// name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )
bool is_modifier_name(std::string_view s) noexcept {
  if (s.empty() || !is_alpha(s.front())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return is_alnum(c) || c == '-' || c == '_' || c == '.'; });
}

// "/" 1*DIGIT without leading zeros, at most `max`.
std::optional<unsigned> parse_prefix(std::string_view digits, unsigned max) noexcept {
  if (digits.empty() || digits.size() > 3 || (digits.size() > 1 && digits[0] == '0')) return std::nullopt;
  auto v = text::parse_uint(digits, max);
  if (!v) return std::nullopt;
  return static_cast<unsigned>(*v);
}

// ip4-network: four dotted decimal octets, no leading zeros.
std::optional<asio::ip::address> parse_ip4(std::string_view s) {
  asio::ip::address_v4::bytes_type b{};
  for (std::size_t i = 0; i < 4; ++i) {
    auto dot = s.find('.');
    if ((i < 3) != (dot != std::string_view::npos)) return std::nullopt;
    auto part = s.substr(0, dot);
    if (part.empty() || part.size() > 3 || (part.size() > 1 && part[0] == '0')) return std::nullopt;
    auto v = text::parse_uint(part, 255);
    if (!v) return std::nullopt;
    b[i] = static_cast<unsigned char>(*v);
    s = dot == std::string_view::npos ? std::string_view() : s.substr(dot + 1);
  }
  return asio::ip::address(asio::ip::address_v4(b));
}

std::optional<asio::ip::address> parse_ip6(std::string_view s) {
  if (s.empty() || s.size() > 45) return std::nullopt;
  for (char c : s)
    if (!(std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.')) return std::nullopt;
  std::error_code ec;
  auto a = asio::ip::make_address_v6(std::string(s), ec);
  if (ec) return std::nullopt;
  return asio::ip::address(a);
}

// One macro's value after the transformers (RFC 7208 7.3).
void append_transformed(std::string& out, std::string_view value, macro_piece const& p) {
  std::string_view delims = p.delimiters.empty() ? std::string_view(".") : std::string_view(p.delimiters);
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= value.size(); ++i) {
    if (i == value.size() || delims.find(value[i]) != std::string_view::npos) {
      parts.push_back(value.substr(start, i - start));
      start = i + 1;
    }
  }
  if (p.reverse) std::reverse(parts.begin(), parts.end());
  std::size_t first = (p.keep != 0 && p.keep < parts.size()) ? parts.size() - p.keep : 0;
  static constexpr char hex[] = "0123456789ABCDEF";
  for (std::size_t i = first; i < parts.size(); ++i) {
    if (i != first) out += '.';
    if (!p.url_escape) {
      out += parts[i];
      continue;
    }
    for (char c : parts[i]) {
      if (is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
        out += c;
      } else {
        auto u = static_cast<unsigned char>(c);
        out += '%';
        out += hex[u >> 4];
        out += hex[u & 0xf];
      }
    }
  }
}

std::string_view value_of(char letter, macro_values const& v) noexcept {
  switch (letter) {
    case 's': return v.s;
    case 'l': return v.l;
    case 'o': return v.o;
    case 'd': return v.d;
    case 'i': return v.i;
    case 'p': return v.p;
    case 'h': return v.h;
    case 'c': return v.c;
    case 'r': return v.r;
    case 't': return v.t;
    case 'v': return v.v;
  }
  return {};
}

// Expands m into out. When window is nonzero only the last `window` octets are kept (all a domain
// name can use after 7.3's truncation); when cap is nonzero expansion stops at cap octets.
void expand_into(std::string& out, macro_string const& m, macro_values const& v, std::size_t window, std::size_t cap) {
  for (auto const& p : m.pieces) {
    if (p.letter == 0) out += p.literal;
    else append_transformed(out, value_of(p.letter, v), p);
    if (window != 0 && out.size() > 2 * window) out.erase(0, out.size() - window);
    if (cap != 0 && out.size() >= cap) {
      out.resize(cap);
      return;
    }
  }
  if (window != 0 && out.size() > window) out.erase(0, out.size() - window);
}

}  // namespace

std::error_category const& category() noexcept {
  static mailroom::detail::enum_category<errc> const instance("mailroom.spf", describe, "unknown spf error");
  return instance;
}

bool macro_string::uses(char letter) const noexcept {
  return std::any_of(pieces.begin(), pieces.end(), [letter](macro_piece const& p) { return p.letter == letter; });
}

bool is_spf_record(std::string_view txt) noexcept {
  return text::istarts_with(txt, "v=spf1") && (txt.size() == 6 || txt[6] == ' ');
}

expected<macro_string, syntax_error> parse_macro_string(std::string_view text, macro_use use) {
  macro_string out;
  std::string literal;
  auto flush = [&] {
    if (literal.empty()) return;
    macro_piece p;
    p.literal = std::move(literal);
    out.pieces.push_back(std::move(p));
    literal.clear();
  };
  std::size_t last_expand_end = 0;  // offset just past the last macro-expand ("%%" etc. included)
  std::size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    if (c != '%') {
      if (is_macro_literal(c) || (c == ' ' && use == macro_use::explanation)) {
        literal += c;
        ++i;
        continue;
      }
      return syntax(is_printable(c) ? errc::bad_macro : errc::not_ascii, text);
    }
    if (i + 1 >= text.size()) return syntax(errc::bad_macro, text);
    char n = text[i + 1];
    if (n == '%' || n == '_' || n == '-') {
      literal += n == '%' ? "%" : n == '_' ? " " : "%20";
      i += 2;
      last_expand_end = i;
      continue;
    }
    if (n != '{') return syntax(errc::bad_macro, text);
    i += 2;
    if (i >= text.size()) return syntax(errc::bad_macro, text);
    macro_piece p;
    char letter = text[i];
    p.url_escape = letter >= 'A' && letter <= 'Z';
    letter = text::to_lower(letter);
    if (std::string_view("slodiphcrtv").find(letter) == std::string_view::npos) return syntax(errc::bad_macro, text);
    if ((letter == 'c' || letter == 'r' || letter == 't') && use == macro_use::domain)
      return syntax(errc::macro_not_allowed, text);
    p.letter = letter;
    ++i;
    bool digits = false;
    while (i < text.size() && is_digit(text[i])) {
      digits = true;
      p.keep = std::min<std::size_t>(p.keep * 10 + static_cast<std::size_t>(text[i] - '0'), 1'000'000);
      ++i;
    }
    if (digits && p.keep == 0) return syntax(errc::bad_macro, text);
    if (i < text.size() && (text[i] == 'r' || text[i] == 'R')) {
      p.reverse = true;
      ++i;
    }
    while (i < text.size() && is_delimiter(text[i])) {
      if (p.delimiters.find(text[i]) == std::string::npos) p.delimiters += text[i];
      ++i;
    }
    if (i >= text.size() || text[i] != '}') return syntax(errc::bad_macro, text);
    ++i;
    last_expand_end = i;
    flush();
    out.pieces.push_back(std::move(p));
  }
  flush();

  if (use == macro_use::domain) {
    // domain-end = ( "." toplabel [ "." ] ) / macro-expand
    if (text.empty()) return syntax(errc::bad_domain_spec, text);
    if (last_expand_end != text.size()) {
      auto tail = strip_dot(text.substr(last_expand_end));
      auto dot = tail.rfind('.');
      if (dot == std::string_view::npos || !is_toplabel(tail.substr(dot + 1))) return syntax(errc::bad_domain_spec, text);
    }
  }
  return out;
}

namespace {

// a and mx: [ ":" domain-spec ] [ ip4-cidr-length ] [ "/" ip6-cidr-length ], cidrs taken off the end.
expected<std::string_view, syntax_error> take_dual_cidr(std::string_view rest, mechanism& m) {
  auto digits_start = [](std::string_view s) {
    std::size_t i = s.size();
    while (i > 0 && is_digit(s[i - 1])) --i;
    return i;
  };
  std::size_t d = digits_start(rest);
  if (d < rest.size() && d >= 2 && rest[d - 1] == '/' && rest[d - 2] == '/') {
    auto v = parse_prefix(rest.substr(d), 128);
    if (!v) return syntax(errc::bad_cidr, m.text);
    m.cidr6 = *v;
    rest = rest.substr(0, d - 2);
    d = digits_start(rest);
  }
  if (d < rest.size() && d >= 1 && rest[d - 1] == '/') {
    auto v = parse_prefix(rest.substr(d), 32);
    if (!v) return syntax(errc::bad_cidr, m.text);
    m.cidr4 = *v;
    rest = rest.substr(0, d - 1);
  }
  return rest;
}

// ":" domain-spec, required or optional.
expected<void, syntax_error> take_domain(std::string_view rest, mechanism& m, bool required) {
  if (rest.empty()) {
    if (required) return syntax(errc::bad_argument, m.text);
    return {};
  }
  if (rest.front() != ':') return syntax(errc::bad_argument, m.text);
  auto spec = parse_macro_string(rest.substr(1), macro_use::domain);
  if (!spec) return unexpected<syntax_error>(syntax_error{spec.error().code, m.text.substr(0, 64)});
  m.domain = std::move(*spec);
  return {};
}

// ip4 / ip6: ":" network [ "/" prefix ].
expected<void, syntax_error> take_network(std::string_view rest, mechanism& m, bool v6) {
  if (rest.empty() || rest.front() != ':') return syntax(errc::bad_argument, m.text);
  rest.remove_prefix(1);
  auto slash = rest.find('/');
  auto net = v6 ? parse_ip6(rest.substr(0, slash)) : parse_ip4(rest.substr(0, slash));
  if (!net) return syntax(errc::bad_ip, m.text);
  m.network = *net;
  if (slash != std::string_view::npos) {
    auto v = parse_prefix(rest.substr(slash + 1), v6 ? 128 : 32);
    if (!v) return syntax(errc::bad_cidr, m.text);
    (v6 ? m.cidr6 : m.cidr4) = *v;
  }
  return {};
}

expected<void, syntax_error> parse_modifier(std::string_view name, std::string_view value, std::string_view term,
                                           record& rec) {
  bool const redirect = text::iequals(name, "redirect");
  if (redirect || text::iequals(name, "exp")) {
    auto& slot = redirect ? rec.redirect : rec.exp;
    if (slot) return syntax(errc::duplicate_modifier, term);
    auto spec = parse_macro_string(value, macro_use::domain);
    if (!spec) return syntax(spec.error().code, term);
    slot = std::move(*spec);
    return {};
  }
  auto v = parse_macro_string(value, macro_use::modifier);
  if (!v) return syntax(v.error().code, term);
  ++rec.unknown_modifiers;
  return {};
}

expected<void, syntax_error> parse_term(std::string_view term, record& rec) {
  if (auto eq = term.find('='); eq != std::string_view::npos && is_modifier_name(term.substr(0, eq)))
    return parse_modifier(term.substr(0, eq), term.substr(eq + 1), term, rec);

  mechanism m;
  m.text = std::string(term);
  std::size_t i = 0;
  switch (term.front()) {
    case '+': m.qualifier = qualifier::pass; ++i; break;
    case '-': m.qualifier = qualifier::fail; ++i; break;
    case '~': m.qualifier = qualifier::softfail; ++i; break;
    case '?': m.qualifier = qualifier::neutral; ++i; break;
    default: break;
  }
  auto name_end = std::min(term.find_first_of(":/", i), term.size());
  auto name = term.substr(i, name_end - i);
  auto rest = term.substr(name_end);
  static constexpr std::array<std::pair<std::string_view, mechanism_kind>, 8> kinds{{
      {"all", mechanism_kind::all}, {"include", mechanism_kind::include}, {"a", mechanism_kind::a},
      {"mx", mechanism_kind::mx}, {"ptr", mechanism_kind::ptr}, {"ip4", mechanism_kind::ip4},
      {"ip6", mechanism_kind::ip6}, {"exists", mechanism_kind::exists}}};
  auto kind = std::find_if(kinds.begin(), kinds.end(), [name](auto const& k) { return text::iequals(k.first, name); });
  if (kind == kinds.end()) return syntax(errc::unknown_mechanism, term);
  m.kind = kind->second;

  expected<void, syntax_error> ok;
  switch (m.kind) {
    case mechanism_kind::all:
      if (!rest.empty()) return syntax(errc::bad_argument, term);
      rec.has_all = true;
      break;
    case mechanism_kind::include:
    case mechanism_kind::exists: ok = take_domain(rest, m, true); break;
    case mechanism_kind::ptr: ok = take_domain(rest, m, false); break;
    case mechanism_kind::a:
    case mechanism_kind::mx: {
      auto left = take_dual_cidr(rest, m);
      if (!left) return unexpected<syntax_error>(left.error());
      ok = take_domain(*left, m, false);
      break;
    }
    case mechanism_kind::ip4: ok = take_network(rest, m, false); break;
    case mechanism_kind::ip6: ok = take_network(rest, m, true); break;
  }
  if (!ok) return ok;
  rec.mechanisms.push_back(std::move(m));
  return {};
}

}  // namespace

expected<record, syntax_error> parse_record(std::string_view txt, limits const& lim) {
  if (txt.size() > lim.max_record) return syntax(errc::too_long, txt);
  if (!std::all_of(txt.begin(), txt.end(), is_printable)) return syntax(errc::not_ascii, txt);
  if (!is_spf_record(txt)) return syntax(errc::not_spf, txt);
  record rec;
  std::size_t terms = 0;
  std::size_t pos = 6;
  while (pos < txt.size()) {
    if (txt[pos] == ' ') {
      ++pos;
      continue;
    }
    auto end = std::min(txt.find(' ', pos), txt.size());
    auto term = txt.substr(pos, end - pos);
    pos = end;
    if (++terms > lim.max_terms) return syntax(errc::too_many_terms, term);
    if (auto ok = parse_term(term, rec); !ok) return unexpected<syntax_error>(ok.error());
  }
  return rec;
}

std::optional<std::string> expand_domain(macro_string const& m, macro_values const& v) {
  constexpr std::size_t window = 512;  // > 253 + 1: enough to find the label boundary 7.3 cuts at
  std::string out;
  expand_into(out, m, v, window, 0);
  if (!out.empty() && out.back() == '.') out.pop_back();
  while (out.size() > 253) {
    auto dot = out.find('.');
    if (dot == std::string::npos) return std::nullopt;
    out.erase(0, dot + 1);
  }
  if (out.empty()) return std::nullopt;
  std::size_t start = 0;
  for (;;) {
    auto dot = std::min(out.find('.', start), out.size());
    if (dot == start || dot - start > 63) return std::nullopt;
    if (dot == out.size()) break;
    start = dot + 1;
  }
  return out;
}

std::string expand_text(macro_string const& m, macro_values const& v, std::size_t max_len) {
  std::string out;
  if (max_len == 0) return out;
  expand_into(out, m, v, 0, max_len);
  return out;
}

}  // namespace mailroom::filter::spf
