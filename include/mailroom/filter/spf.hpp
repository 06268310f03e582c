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
// In all, one check makes at most about 10 x 11 + 13 DNS queries; how long one may take is the
// dns implementation's business (net::dns::options::timeout for the real resolver), and no query
// starts once `time_limit` has passed since the check began (temperror, RFC 7208 4.6.4), so a
// check ends within time_limit plus one query's timeout.
//
// Choices where RFC 7208 leaves room: a <domain> must be letters, digits, '-' and '_' (a UTF-8
// name is status::none; callers pass A-labels); a target name that is no valid DNS name after
// expansion (empty label, label over 63 octets) matches nothing without a query; void lookups are
// counted for a, mx and exists (an include or redirect without a record is a permerror anyway),
// not for ptr or %{p} (the client controls its reverse zone); %{p} is looked up once per check
// and does not count against the 10; a DNS error on the PTR lookup makes ptr match nothing and
// %{p} "unknown", one while validating a PTR name skips that name; a DNS error on an exchange's
// address is temperror.
#pragma once

#include <chrono>
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
#include "mailroom/filter/spf_record.hpp"

namespace mailroom::filter::spf {

/// RFC 7208 section 2.6.
enum class status { none, neutral, pass, fail, softfail, temperror, permerror };
/// "none", "neutral", "pass", ... (the RFC's lower-case names).
std::string_view to_string(status s) noexcept;

/// Which identity was checked (RFC 7208 2.3 and 2.4).
enum class identity { mailfrom, helo };

struct options {
  spf::limits limits;
  std::string receiver = "unknown";  ///< %{r}: the checking host's domain (explanations only)
  std::optional<std::int64_t> now;   ///< %{t} in seconds since 1970; nullopt = the system clock
  std::chrono::milliseconds time_limit{20000};  ///< for the whole check; zero = none
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
  std::size_t dns_mechanisms = 0;  ///< terms counted against limits::dns_mechanisms (one over when that ended it)
  std::size_t void_lookups = 0;    ///< likewise for limits::void_lookups
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

}  // namespace mailroom::filter::spf
