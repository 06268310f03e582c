// DMARC (RFC 7489) for a receiver: the policy record, policy discovery in DNS, the RFC5322.From
// domain, identifier alignment, the DMARC result, the disposition to apply, and the
// Authentication-Results (RFC 8601) entry. SPF and DKIM are evaluated elsewhere; their results
// come in as values (auth_results).
//
// Contract:
// - parse_record() accepts a record that starts with "v=DMARC1" (exactly, as the ABNF spells
//   it). Tag names and keyword values compare ASCII case-insensitively; unknown tags, tags
//   without "=", and repeats of a tag (the first counts) are ignored. A tag with an invalid value
//   falls back to its default (adkim/aspf r, pct 100, fo 0, rf afrf, ri 86400) as RFC 7489 6.3
//   allows. A missing or invalid p, or an invalid sp, makes the record unusable (errc::no_policy)
//   unless rua holds a valid URI: then it reads as p=none without sp (6.6.3), p_assumed set.
//   Bounded: record length, tag count and URIs per list (record_limits); over them the record is
//   invalid (errc::too_long, errc::too_many_tags) and, like any invalid record, ignored.
// - discover() follows 6.6.3: TXT at _dmarc.<From domain>; records not starting with v=DMARC1
//   are discarded; if none remain, TXT at _dmarc.<organizational domain> (when it differs);
//   several DMARC records, or an invalid one, mean no policy. nxdomain/no_data (and bad_name: a
//   From domain that cannot be queried) are "no record", any other lookup failure is temperror.
//   The lookup gets names without a trailing dot.
// - from_domain() applies 6.6.1: exactly one From field holding exactly one mailbox with a
//   domain; otherwise errc::no_from / multiple_from / no_from_domain / bad_from_domain, which
//   check() reports as permerror (receivers typically reject such messages; that choice is the
//   caller's).
// - evaluate(): pass when SPF passed for an aligned domain or a passing DKIM signature has an
//   aligned d=; otherwise fail when a policy was found, none when not, temperror when discovery
//   failed temporarily. The disposition is none unless the result is fail; then it is p (or sp,
//   when the record came from the organizational domain), lowered one step (reject ->
//   quarantine -> none) when the message falls outside pct.
// All names are compared lowercased; IDNA as in public_suffix.hpp. Functions hold no state;
// the coroutines copy their arguments except the public_suffix_list, which must outlive them.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "mailroom/core/result.hpp"
#include "mailroom/core/task.hpp"
#include "mailroom/filter/public_suffix.hpp"

namespace mailroom::filter::dmarc {

enum class errc {
  not_dmarc = 1,     ///< the text does not start with v=DMARC1
  no_policy,         ///< no valid p (or an invalid sp) and no valid rua
  too_long,          ///< the record is over record_limits::max_length
  too_many_tags,     ///< the record has more than record_limits::max_tags tags
  multiple_records,  ///< several DMARC records at one name (no policy, 6.6.3)
  no_from,           ///< no From field, or no mailbox in it
  multiple_from,     ///< several From fields or several mailboxes
  no_from_domain,    ///< the From mailbox has no domain
  bad_from_domain,   ///< the From domain is not a domain name (an address literal, empty labels)
};
std::error_category const& category() noexcept;
inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

enum class policy { none, quarantine, reject };
enum class alignment { relaxed, strict };
std::string_view to_string(policy p) noexcept;

struct report_uri {
  std::string uri;             ///< as written ("mailto:dmarc@example.com")
  std::uint64_t max_size = 0;  ///< octets from the "!size" suffix; 0 = no limit given
  friend bool operator==(report_uri const&, report_uri const&) = default;
};

struct record {
  policy p = policy::none;
  std::optional<policy> sp;  ///< nullopt: subdomains get p
  alignment adkim = alignment::relaxed;
  alignment aspf = alignment::relaxed;
  unsigned pct = 100;
  std::vector<report_uri> rua;
  std::vector<report_uri> ruf;
  // fo: failure reporting options (colon-separated 0, 1, d, s), default "0".
  bool fo_all = true;   ///< "0": report when all mechanisms failed to align
  bool fo_any = false;  ///< "1": when any failed
  bool fo_dkim = false; ///< "d": DKIM failures
  bool fo_spf = false;  ///< "s": SPF failures
  std::vector<std::string> rf{"afrf"};  ///< failure report formats (lowercased)
  std::uint32_t ri = 86400;             ///< aggregate report interval, seconds
  bool p_assumed = false;               ///< p was missing/invalid (or sp invalid) and rua valid: read as p=none

  policy subdomain_policy() const noexcept { return sp.value_or(p); }
};

struct record_limits {
  std::size_t max_length = 8192;  ///< octets of the TXT record
  std::size_t max_tags = 64;      ///< ";"-separated parts
  std::size_t max_uris = 16;      ///< entries kept per rua/ruf (more are dropped)
};

/// Parses one DMARC TXT record (the character-strings joined).
result<record> parse_record(std::string_view text, record_limits limits = {});
/// True when a TXT record announces itself as DMARC ("v" *WSP "=" *WSP "DMARC1", then the end,
/// whitespace or ";"): the test 6.6.3 applies before parsing.
bool is_dmarc_record(std::string_view text) noexcept;

/// A TXT lookup: each record's strings concatenated; errors are net::dns::errc.
using txt_lookup = std::function<task<result<std::vector<std::string>>>(std::string const& name)>;

struct discovery {
  enum class status { found, none, temperror };
  status state = status::none;
  record rec;                  ///< when found
  std::string domain;          ///< where the record was found (without "_dmarc.")
  bool organizational = false; ///< found at the organizational domain (so sp applies)
  std::error_code error;       ///< temperror: the lookup's error; none: why, when not simply absent
};

/// Policy discovery for a From domain (lowercased by the caller or not; it is lowercased here).
task<discovery> discover(std::string from_domain, public_suffix_list const& psl, txt_lookup lookup,
                         record_limits limits = {});

/// The RFC5322.From domain (lowercased, without a trailing dot) from the From field values.
result<std::string> from_domain(std::span<std::string_view const> from_fields);
result<std::string> from_domain(std::string_view from_field);

/// RFC 7489 3.1: strict = the same name, relaxed = the same organizational domain.
bool aligned(std::string_view identifier, std::string_view from_domain, alignment mode, public_suffix_list const& psl);

struct dkim_signature {
  std::string domain;    ///< d=
  std::string selector;  ///< s= (for reports)
  bool pass = false;
  std::string result;    ///< for reports: "fail", "temperror"...; empty = "pass" or "fail" from pass
};
struct auth_results {
  std::string spf_domain;  ///< the domain SPF checked (MAIL FROM's, or HELO's for a null sender)
  bool spf_pass = false;
  std::vector<dkim_signature> dkim;
  std::string spf_result;  ///< for reports: "softfail", "none"...; empty = "pass" or "fail" from spf_pass
  std::string spf_scope;   ///< for reports: "mfrom" or "helo"; empty = "mfrom"
};

enum class outcome { none, pass, fail, temperror, permerror };
std::string_view to_string(outcome o) noexcept;

/// A uniformly distributed value in [0, 100); the policy applies to a failing message when it is
/// below pct. default_random() uses a per-thread std::mt19937 seeded from std::random_device.
using random_source = std::function<unsigned()>;
random_source default_random();

struct evaluation {
  outcome result = outcome::none;
  std::string from_domain;            ///< "" when the From field gave none
  std::optional<record> rec;          ///< the record applied
  std::string policy_domain;          ///< where rec was found
  bool organizational = false;        ///< rec came from the organizational domain
  policy requested = policy::none;    ///< p, or sp for a subdomain
  policy disposition = policy::none;  ///< what to do with the message
  bool sampled_out = false;           ///< failed, but outside pct: disposition lowered
  bool spf_aligned = false;           ///< SPF passed for an aligned domain
  bool dkim_aligned = false;          ///< a passing signature has an aligned d=
  std::string dkim_domain;            ///< the first aligned passing d=, else the first passing d=
  std::error_code error;              ///< temperror/permerror: why
};

/// The DMARC result and disposition from a discovered policy and the SPF/DKIM results. random
/// is called only for a failing message whose policy is not none and 0 < pct < 100
/// (default_random() when empty).
evaluation evaluate(std::string_view from_domain, discovery const& found, auth_results const& auth,
                    public_suffix_list const& psl, random_source const& random = {});

/// The whole check for a message: From domain, discovery, evaluation.
task<evaluation> check(std::vector<std::string> from_fields, auth_results auth, public_suffix_list const& psl,
                       txt_lookup lookup, random_source random = {}, record_limits limits = {});

/// The resinfo for an Authentication-Results field (RFC 8601, method registered by RFC 7489
/// 11.2): "dmarc=fail (p=reject sp=quarantine dis=quarantine) header.from=example.com".
/// The comment appears when a record was applied; header.from when a From domain is known (as a
/// quoted-string when it is not a token).
std::string authentication_results(evaluation const& e);

}  // namespace mailroom::filter::dmarc

template <>
struct std::is_error_code_enum<mailroom::filter::dmarc::errc> : std::true_type {};
