// DNS blocklists and allowlists (DNSBL/DNSWL, RFC 5782): query names, the meaning of answers,
// and a check of one client address against several lists with weights, in the style of
// Postfix's postscreen_dnsbl_sites ("zen.example=127.0.0.[2..11]*3", "wl.example=127.0.[0..255].[1..3]*-2").
//
// Contract:
// - query_name(): IPv4 as its reversed octets, IPv6 as its 32 reversed nibbles (lowercase hex),
//   each followed by the zone (RFC 5782 2.1, 2.4). An IPv4-mapped IPv6 address is queried as IPv4.
// - interpret(): only A answers in 127.0.0.0/8 mean anything. 127.255.255.0/24 are the lists'
//   own error codes (query refused, over quota...): status list_error, never a listing. Other
//   127/8 answers are listings when the site has no code filter or the filter accepts them;
//   anything outside 127/8 (a wildcarded or hijacked zone) is ignored.
// - check(): queries every distinct zone once (in parallel, on the caller's executor), fetches
//   the TXT reason of a zone that listed the address, and adds the weights of the sites that
//   listed it. nxdomain/no_data mean "not listed"; any other lookup failure, or the deadline
//   passing first, leaves that site "unknown", which never counts as listed. The executor must
//   not run the check's handlers concurrently (one thread or a strand). The lookup functions are
//   copied and may still be running after check() returned at its deadline; they must keep
//   whatever they use alive (the net::dns::resolver cancels its queries when destroyed).
#pragma once

#include <array>
#include <bitset>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <asio/ip/address.hpp>

#include "mailroom/core/result.hpp"
#include "mailroom/core/task.hpp"

namespace mailroom::filter::dnsbl {

/// "d.c.b.a.<zone>" for a.b.c.d; nibbles for IPv6. The zone loses a leading/trailing dot.
std::string query_name(asio::ip::address const& ip, std::string_view zone);

/// Accepted return codes: each octet a set of values.
struct code_filter {
  std::array<std::bitset<256>, 4> octets;
  bool matches(asio::ip::address_v4 const& a) const noexcept;
};

struct site {
  std::string zone;                   ///< lowercased, without leading/trailing dots
  std::optional<code_filter> accept;  ///< nullopt: any listing code
  int weight = 1;                     ///< negative for allowlists
};

/// Parses "zone[=filter][*weight]": the filter is four dot-separated octets, each a number or a
/// bracketed list of numbers and ranges ("[2..11;13]"); the weight an integer within +-1000000.
/// Errors: mailroom::errc::invalid_argument.
result<site> parse_site(std::string_view spec);

enum class status {
  not_listed,  ///< no record (or only answers outside 127/8, or codes the filter refuses)
  listed,
  unknown,     ///< the lookup failed or timed out
  list_error,  ///< the list answered with one of its 127.255.255.x error codes
};
std::string_view to_string(status s) noexcept;

struct interpretation {
  status state = status::not_listed;
  std::vector<asio::ip::address_v4> codes;  ///< the listing codes accepted
};
interpretation interpret(std::vector<asio::ip::address> const& answers, site const& s);

struct site_result {
  std::string zone;
  status state = status::unknown;
  std::vector<asio::ip::address_v4> codes;
  std::string reason;    ///< the zone's TXT record for the address, when listed (sanitized, bounded)
  int weight = 0;        ///< the site's weight when listed, else 0
  std::error_code error; ///< for unknown: the lookup's error (asio::error::timed_out at the deadline)
};

struct report {
  std::vector<site_result> sites;  ///< in the order of the sites given
  int score = 0;                   ///< sum of the listed sites' weights
  bool listed = false;             ///< score >= threshold
  /// The first listed site with a positive weight, for a rejection text; nullptr when none.
  site_result const* first_listed() const noexcept;
};

using a_lookup = std::function<task<result<std::vector<asio::ip::address>>>(std::string const& name)>;
using txt_lookup = std::function<task<result<std::vector<std::string>>>(std::string const& name)>;

struct check_options {
  int threshold = 1;                      ///< postscreen_dnsbl_threshold
  bool fetch_reasons = true;              ///< query TXT for zones that listed the address
  std::chrono::milliseconds deadline{0};  ///< 0: wait for every lookup (they have their own timeouts)
  std::size_t max_reason = 512;           ///< octets kept of a TXT reason
  std::size_t max_sites = 64;             ///< sites beyond this are not queried (state unknown)
};

task<report> check(asio::ip::address ip, std::vector<site> sites, a_lookup a, txt_lookup txt, check_options opts = {});

}  // namespace mailroom::filter::dnsbl
