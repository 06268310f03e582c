// Who may send mail where: the open-relay check every MX and submission server needs.
//
// Contract: a recipient is accepted when its domain is local or a relay domain (backup MX), or
// when the client is trusted (authenticated, or from a trusted network). Untrusted clients may not
// route through us: a local part containing '%', '!' or '@' ("x%remote@local", "host!x@local",
// "\"x@remote\"@local") is refused even for a local domain, since some later hop may treat it as
// a route. Source routes are already removed by the address parser. Domains compare
// case-insensitively, without a trailing dot; ".example.org" also matches every subdomain.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <asio/ip/network_v4.hpp>
#include <asio/ip/network_v6.hpp>

#include "mailroom/core/address.hpp"
#include "mailroom/smtp/reply.hpp"
#include "mailroom/smtp/server.hpp"

namespace mailroom::mta {

struct relay_policy_options {
  std::vector<std::string> local_domains;  ///< delivered here
  std::vector<std::string> relay_domains;  ///< accepted for another server (backup MX)
  std::vector<asio::ip::network_v4> trusted_v4;  ///< e.g. 127.0.0.0/8, a LAN of appliances
  std::vector<asio::ip::network_v6> trusted_v6;
  bool authenticated_may_relay = true;     ///< submission: authenticated users send anywhere
};

class relay_policy {
 public:
  explicit relay_policy(relay_policy_options opts);

  /// nullopt when the recipient is acceptable from this client, else the reply to send.
  std::optional<smtp::reply> check(smtp::session_info const& client, address const& rcpt) const;

  bool is_local(std::string_view domain) const;
  bool is_relay(std::string_view domain) const;
  bool is_trusted(smtp::session_info const& client) const;

 private:
  static bool listed(std::vector<std::string> const& list, std::string_view domain);
  relay_policy_options opts_;
};

}  // namespace mailroom::mta
