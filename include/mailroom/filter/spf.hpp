// SPF (RFC 7208): may this IP address send mail for this domain?
//
// check_host() is the function of RFC 7208 section 4 as a coroutine over filter::dns; check_mail_from()
// and check_helo() apply it to the two identities an SMTP server sees. The verdict is a value
// (outcome), never an exception: DNS failures become temperror, anything the published policy gets
// wrong becomes permerror, each with a short `problem` for logs and headers.
//
// Bounded whatever the DNS serves: at most `dns_mechanisms` (10) terms that query DNS per check
// (include, a, mx, ptr, exists, redirect), at most `void_lookups` (2) of them answering no records,
// at most `mx_names` (10) exchanges per "mx" (more is permerror), the first `ptr_names` (10) names
// of a PTR answer, `max_depth` nested include/redirect, records of at most `max_record` octets and
// `max_terms` terms, macro expansions kept to what a DNS name can use (the rightmost 253 octets
// survive RFC 7208 7.3's truncation, so a huge sender or a record full of macros costs time linear
// in its size, never memory beyond a fixed window) and explanations cut at `max_explanation`.
// In all, one check makes at most about 10 x 11 + 13 DNS queries; how long each may take is the
// dns implementation's business (net::dns::options::timeout for the real resolver).
//
// Choices where RFC 7208 leaves room: a target name that is no valid DNS name after expansion
// (empty label, label over 63 octets) matches nothing without a query; void lookups are counted for
// a, mx, exists, include and redirect, not for ptr or %{p} (the client controls its reverse zone);
// %{p} is looked up once per check and does not count against the 10; DNS errors while validating
// a PTR name skip that name; a DNS error on an exchange's address is temperror.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <asio/ip/address.hpp>

#include "mailroom/core/result.hpp"
#include "mailroom/core/task.hpp"
#include "mailroom/filter/dns.hpp"

namespace mailroom::filter::spf {

/// RFC 7208 section 2.6.
enum class status { none, neutral, pass, fail, softfail, temperror, permerror };
/// "none", "neutral", "pass", ... (the RFC's lower-case names).
std::string_view to_string(status s) noexcept;

/// Which identity was checked (RFC 7208 2.3 and 2.4).
enum class identity { mailfrom, helo };

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

struct options {
  spf::limits limits;
  std::string receiver = "unknown";  ///< %{r}: the checking host's domain (explanations only)
  std::optional<std::int64_t> now;   ///< %{t} in seconds since 1970; nullopt = the system clock
};

/// The verdict and what led to it.
struct outcome {
  status result = status::none;
  spf::identity identity = identity::mailfrom;
  asio::ip::address ip;     ///< the client address (an IPv4-mapped IPv6 address as IPv4)
  std::string sender;       ///< <sender> as checked (postmaster@helo for a null reverse-path)
  std::string domain;       ///< <domain> checked first
  std::string helo;
  std::string mechanism;    ///< the deciding term ("-all", "ip4:192.0.2.0/24", "default"), if any
  std::string explanation;  ///< for fail: the domain's expanded exp= text, if it gave one; else ""
  std::string problem;      ///< for temperror and permerror: why, for logs and headers
  std::size_t dns_mechanisms = 0;  ///< terms that queried DNS
  std::size_t void_lookups = 0;
};

/// RFC 7208 section 4: evaluates <domain>'s policy for `ip` with the given <sender> (local@domain;
/// no local part means "postmaster") and HELO name. A malformed or single-label <domain>, or an
/// address literal, is status::none without any query. `d` must outlive the returned task.
task<outcome> check_host(dns& d, asio::ip::address ip, std::string_view domain, std::string_view sender,
                         std::string_view helo, options const& opts = {});

/// The MAIL FROM identity (RFC 7208 2.4): the domain of `mail_from` (an address without angle
/// brackets); for a null reverse-path (""), postmaster@helo. A mail_from without '@' is taken
/// as a domain.
task<outcome> check_mail_from(dns& d, asio::ip::address ip, std::string_view mail_from, std::string_view helo,
                              options const& opts = {});

/// The HELO identity (RFC 7208 2.3): postmaster@helo. An address literal or a single-label name is
/// status::none.
task<outcome> check_helo(dns& d, asio::ip::address ip, std::string_view helo, options const& opts = {});

/// The value of a Received-SPF header field (RFC 7208 9.1), without the field name: the result, a
/// comment, and the key-value pairs receiver, client-ip, envelope-from, helo, identity, mechanism
/// (when one decided) and problem (for errors). Folded with CRLF SP before each pair so no line
/// grows long; text from the peer is quoted and anything outside printable ASCII is replaced, and a
/// value over 256 octets is left out, so the field is always safe to add to a message.
std::string received_spf(outcome const& o, std::string_view receiver);

/// The SPF part of an Authentication-Results field (RFC 8601 2.7.2): "spf=pass
/// smtp.mailfrom=user@example.com" (smtp.helo=name for the HELO identity), with the problem as a
/// comment for errors. Same quoting guarantees as received_spf().
std::string authentication_results(outcome const& o);

// ---------------------------------------------------------------------------------------------
// The record and macro syntax without DNS (what check_host() uses; exposed for tests and fuzzing).

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
