// DMARC aggregate reports (RFC 7489 7.2 and appendix C): a collector of evaluations and the XML
// report of one policy domain.
//
// Contract: add() counts an evaluation that applied a policy record (result pass or fail; none,
// temperror and permerror have no one to report to and are ignored) in a row keyed by policy
// domain, source IP, disposition, aligned DKIM/SPF results, override reason, header From and the
// underlying SPF/DKIM results. policy_published is the last record seen for the domain. Bounded:
// at most max_rows rows (an evaluation that would open a new row past that is counted in
// dropped()) and 16 DKIM results per row. Text is XML-escaped and characters XML 1.0 forbids
// are replaced, so any input gives well-formed XML. Sending the report (mailto: rua, with the
// size limit and the external-destination check of 7.1) is the caller's. Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <asio/ip/address.hpp>

#include "mailroom/filter/dmarc.hpp"

namespace mailroom::filter::dmarc {

struct report_metadata {
  std::string org_name;            ///< the reporting organization
  std::string email;               ///< its contact address
  std::string extra_contact_info;  ///< optional
  std::string report_id;
  std::int64_t begin = 0;          ///< seconds since the epoch (UTC)
  std::int64_t end = 0;
};

class aggregate_collector {
 public:
  explicit aggregate_collector(std::size_t max_rows = 100000) : max_rows_(max_rows) {}

  void add(evaluation const& e, asio::ip::address const& source_ip, auth_results const& auth);

  /// Policy domains with rows, sorted.
  std::vector<std::string> domains() const;
  /// Messages counted for a domain.
  std::uint64_t messages(std::string_view domain) const;
  /// The <feedback> document for one domain ("" when it has no rows).
  std::string xml(std::string_view domain, report_metadata const& meta) const;
  /// The rua URIs of the last record seen for a domain.
  std::vector<report_uri> rua(std::string_view domain) const;

  std::size_t rows() const noexcept { return rows_; }
  std::uint64_t dropped() const noexcept { return dropped_; }
  /// Forgets everything (after the reports of a period were sent).
  void clear();

 private:
  struct row_key {
    std::string source_ip, disposition, dkim, spf, reason, header_from, auth;  // auth: the results, serialized
    friend auto operator<=>(row_key const&, row_key const&) = default;
  };
  struct row {
    std::uint64_t count = 0;
    std::vector<dkim_signature> dkim;
    std::string spf_domain, spf_scope, spf_result;
  };
  struct domain_rows {
    record published;
    std::map<row_key, row> rows;
  };

  std::size_t max_rows_;
  std::size_t rows_ = 0;
  std::uint64_t dropped_ = 0;
  std::map<std::string, domain_rows, std::less<>> domains_;
};

}  // namespace mailroom::filter::dmarc
