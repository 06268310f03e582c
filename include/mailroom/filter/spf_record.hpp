// The SPF record and macro syntax (RFC 7208 sections 4.5, 4.6, 5, 6 and 7), sans I/O: text in,
// parsed records and expanded names out. check_host() (spf.hpp) is built on it; it is public for
// tests, fuzzing and tools that lint a policy without DNS.
//
// Contract: parse_record() checks a whole record (any error anywhere makes it unusable, RFC 7208
// 4.6) and refuses more than limits::max_record octets or limits::max_terms terms. Expansion never
// grows beyond a fixed window for domain names (only the rightmost 253 octets survive RFC 7208
// 7.3's truncation) and a given cap for explanations, whatever the macro values hold; its time is
// linear in the sizes of the values and the macro-string.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <asio/ip/address.hpp>

#include "mailroom/core/result.hpp"

namespace mailroom::filter::spf {

/// Bounds on a check (spf.hpp) and on parsing one record; the first four are RFC 7208 4.6.4's.
struct limits {
  std::size_t dns_mechanisms = 10;  ///< terms causing DNS queries per check (4.6.4)
  std::size_t void_lookups = 2;     ///< of those, answers with no records (4.6.4)
  std::size_t mx_names = 10;        ///< exchanges per "mx"; more is permerror
  std::size_t ptr_names = 10;       ///< PTR names looked at; the rest ignored
  std::size_t max_depth = 20;       ///< nested include/redirect
  std::size_t max_record = 4096;    ///< octets of one SPF record
  std::size_t max_terms = 512;      ///< terms of one SPF record
  std::size_t max_explanation = 1024;  ///< octets of an expanded explanation (cut there)
};

enum class errc {
  not_spf = 1,         ///< the text does not start with "v=spf1" followed by a space or its end
  not_ascii,           ///< an octet outside printable ASCII (controls, 8-bit)
  too_long,            ///< over limits::max_record
  too_many_terms,      ///< over limits::max_terms
  unknown_mechanism,   ///< a term that is neither a known mechanism nor a modifier
  bad_argument,        ///< a mechanism with a missing, extra or malformed argument
  bad_ip,              ///< a malformed ip4/ip6 network
  bad_cidr,            ///< a malformed or out-of-range prefix length
  bad_domain_spec,     ///< a domain-spec that is empty or does not end in a toplabel or macro
  bad_macro,           ///< a '%' not starting a valid macro
  macro_not_allowed,   ///< c, r or t outside an explanation
  duplicate_modifier,  ///< redirect= or exp= twice
};
std::error_category const& category() noexcept;
inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

/// One piece of a macro-string (RFC 7208 7.1): literal text or one %{...} expansion.
struct macro_piece {
  std::string literal;     ///< the text when letter == 0 ("%%", "%_", "%-" already decoded)
  char letter = 0;         ///< lower-case macro letter, 0 for literal text
  bool url_escape = false; ///< the letter was upper case
  bool reverse = false;    ///< "r" transformer
  std::size_t keep = 0;    ///< rightmost parts to keep; 0 = all
  std::string delimiters;  ///< "" = "."
};

struct macro_string {
  std::vector<macro_piece> pieces;
  bool empty() const noexcept { return pieces.empty(); }
  bool uses(char letter) const noexcept;
};

enum class qualifier : char { pass = '+', fail = '-', softfail = '~', neutral = '?' };
enum class mechanism_kind { all, include, a, mx, ptr, ip4, ip6, exists };

struct mechanism {
  spf::qualifier qualifier = qualifier::pass;
  mechanism_kind kind = mechanism_kind::all;
  std::optional<macro_string> domain;  ///< the domain-spec, when given (include/exists: always)
  asio::ip::address network;           ///< ip4 / ip6
  unsigned cidr4 = 32;
  unsigned cidr6 = 128;
  std::string text;                    ///< the term as written
};

struct record {
  std::vector<mechanism> mechanisms;          ///< in order
  std::optional<macro_string> redirect;
  std::optional<macro_string> exp;
  std::size_t unknown_modifiers = 0;          ///< syntax-checked and otherwise ignored
  bool has_all = false;
};

struct syntax_error {
  spf::errc code;
  std::string term;  ///< the offending term (or a prefix of it), for the problem text
};

/// True when `txt` is an SPF record (RFC 7208 4.5): "v=spf1" in any case, then a space or nothing.
bool is_spf_record(std::string_view txt) noexcept;

/// Parses a whole record; any error anywhere makes it unusable (permerror).
expected<record, syntax_error> parse_record(std::string_view txt, limits const& lim = {});

enum class macro_use {
  domain,       ///< a domain-spec: letters s l o d i p v h, no spaces, must end in toplabel or macro
  modifier,     ///< an unknown modifier's value: any letter, no spaces
  explanation,  ///< explain-string: any letter, spaces allowed
};
expected<macro_string, syntax_error> parse_macro_string(std::string_view text, macro_use use);

/// The values macros expand to (RFC 7208 7.3). `p` is used as is (check_host() fills it in).
struct macro_values {
  std::string s, l, o, d, i, p, h, c, r, t, v;
};

/// Expands for a DNS query: the rightmost labels of at most 253 octets (7.3), a trailing dot
/// dropped; nullopt when that is no valid name (empty or over-long label, nothing left).
std::optional<std::string> expand_domain(macro_string const& m, macro_values const& v);

/// Expands an explanation, cut at max_len octets.
std::string expand_text(macro_string const& m, macro_values const& v, std::size_t max_len);

}  // namespace mailroom::filter::spf

template <>
struct std::is_error_code_enum<mailroom::filter::spf::errc> : std::true_type {};
