// Outbound delivery to other mail servers: MX lookup (or a smarthost), connection, one SMTP
// transaction per destination domain, connection reuse.
//
// Contract:
// - group_key() is the recipient's domain (lower-cased), or "" when every message goes to one
//   smarthost, so the queue makes one delivery, and one transaction, per destination.
// - A delivery accepts every add_rcpt() (the remote verdict comes later) and does its work in
//   body(): it finds the destination, connects and runs the transaction while reading the
//   source once. body() fails, for all recipients together, when no server could be reached or
//   said yes to MAIL/DATA: failure_reply() is then the reply that decided it (5xx: bounce), or a
//   451 4.4.1 / 4.4.2 naming why nothing could be sent (retry). After commit(),
//   recipient_outcomes() has each recipient's RCPT verdict. An idle connection the server
//   closed meanwhile is replaced by a fresh one once, before the body is read.
// - Destinations (RFC 5321 5.1): MX records in preference order, equal preferences shuffled; no
//   MX record means the domain itself (implicit MX); a null MX (RFC 7505) fails at once with 556
//   5.1.10; a domain that does not exist with 550 5.1.2. Each host's IPv6 then IPv4 addresses are
//   tried in turn; a host that does not answer, greets with 4xx/5xx or fails TLS under a
//   "required"/"verify" policy makes the next one be tried. DNS failures that may pass are
//   temporary.
// - At most max_connections connections in total and max_per_destination per destination;
//   a delivery waits (up to connection_wait) for a free slot, then defers. Idle connections are
//   kept for reuse up to idle_timeout and reset with RSET before the next transaction.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mailroom/core/log.hpp"
#include "mailroom/delivery/target.hpp"
#include "mailroom/net/dns/resolver.hpp"
#include "mailroom/smtp/client.hpp"

namespace mailroom::mta {

/// A fixed next hop: a smarthost (relay), or an LMTP server.
struct next_hop {
  std::string host;            ///< a name (A/AAAA looked up, no MX) or an IP literal
  std::uint16_t port = 25;
  smtp::tls_policy tls = smtp::tls_policy::opportunistic;
  std::optional<std::pair<std::string, std::string>> auth;  ///< user, password
  bool lmtp = false;
};

struct remote_options {
  std::string helo_name = "localhost";
  std::uint16_t port = 25;                          ///< the port MX hosts are reached on
  smtp::tls_policy tls = smtp::tls_policy::opportunistic;
  std::map<std::string, smtp::tls_policy> tls_per_domain;  ///< lower-case domain -> policy
  /// STARTTLS without checking the certificate (policies opportunistic and required), and with
  /// checking it against trust anchors (policy verify; verify_mode::required).
  std::shared_ptr<net::tls::client_context> tls_context;
  std::shared_ptr<net::tls::client_context> tls_verify_context;
  /// This server's own names: MX records at or above the preference of one of them are dropped
  /// (RFC 5321 5.1), so a backup MX hands mail to better MX hosts only, never to itself.
  std::vector<std::string> local_names;
  std::optional<next_hop> relay;                    ///< every message goes there instead of MX hosts
  std::size_t max_recipients = 50;                  ///< per transaction (Postfix: 50)
  std::size_t max_connections = 100;
  std::size_t max_per_destination = 10;
  std::chrono::seconds connect_timeout{30};
  std::chrono::seconds connection_wait{60};
  std::chrono::seconds idle_timeout{10};
  bool ipv6 = true;
  smtp::client_options client;                      ///< timeouts; helo_name, tls and auth are set per hop
};

class remote_target final : public delivery::delivery_target, public std::enable_shared_from_this<remote_target> {
 public:
  /// The resolver must outlive the target.
  remote_target(executor ex, net::dns::resolver& dns, remote_options opts, log::logger logger = {});
  ~remote_target() override;

  task<result<std::unique_ptr<delivery::delivery>>> start(delivery::message_context const& ctx, address const& from) override;
  std::string group_key(address const& rcpt) const override;
  std::size_t max_recipients() const override { return opts_.max_recipients; }

  /// Closes idle connections (QUIT); deliveries under way finish.
  task<void> close_idle();

  struct destination;  // one resolved server address
  class remote_delivery;

 private:
  friend class remote_delivery;
  /// A ready client to `domain`'s servers (from the cache or freshly connected), with the
  /// address it is connected to; a reply when every server refused or the domain cannot
  /// receive mail; an error when none could be reached.
  struct connection {
    std::unique_ptr<smtp::client> client;
    std::string peer;  ///< "host[ip]:port" for logs and DSN Remote-MTA
    std::string host;
    bool reused = false;  ///< taken from the idle cache
  };
  struct connect_result {
    std::optional<connection> conn;
    std::optional<smtp::reply> refusal;
    std::string error;  ///< when neither: why nothing could be reached
  };
  /// `fresh`: do not take an idle connection from the cache.
  task<connect_result> connect(std::string domain, bool fresh = false);
  task<connect_result> connect_host(std::string host, std::uint16_t port, smtp::client_options copts);
  void give_back(std::string const& key, connection c);
  /// A connection slot for `key` if one is free now (true), and an idle connection to another
  /// destination that was closed to make room (the caller quits it).
  std::pair<bool, std::optional<connection>> try_acquire(std::string const& key);
  void release(std::string const& key);
  smtp::tls_policy policy_for(std::string const& domain) const;

  executor ex_;
  net::dns::resolver& dns_;
  remote_options opts_;
  log::logger log_;
  std::mutex mutex_;
  std::size_t open_ = 0;
  std::map<std::string, std::size_t> open_per_key_;
  struct idle_connection {
    connection conn;
    std::chrono::steady_clock::time_point since;
  };
  std::map<std::string, std::vector<idle_connection>> idle_;
};

}  // namespace mailroom::mta
