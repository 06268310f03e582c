// The DNS a filter sees (SPF, DKIM, DMARC): a few typed lookups behind one small interface, so a
// filter runs the same over the real resolver and over an in-memory zone in tests.
//
// Contract for every implementation: lookups are coroutines; arguments are copied when a lookup is
// called, so the caller's strings may go away before the task is awaited. Answers are values; a
// name that does not exist is net::dns::errc::nxdomain, a name without records of the asked type
// is net::dns::errc::no_data (never an empty vector), a name that cannot be queried (malformed) is
// net::dns::errc::bad_name; anything else (timeout, servfail, refused, ...) is a failure a filter
// reports as temporary. Names are taken as fully qualified; a trailing dot is allowed.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <asio/ip/address.hpp>

#include "mailroom/core/result.hpp"
#include "mailroom/core/task.hpp"
#include "mailroom/net/dns/resolver.hpp"

namespace mailroom::filter {

class dns {
 public:
  virtual ~dns() = default;

  /// TXT records of `name`, each with its character-strings concatenated (in answer order).
  task<result<std::vector<std::string>>> txt(std::string_view name) { return do_txt(std::string(name)); }
  /// IPv4 addresses of `name`.
  task<result<std::vector<asio::ip::address>>> a(std::string_view name) { return do_a(std::string(name)); }
  /// IPv6 addresses of `name`.
  task<result<std::vector<asio::ip::address>>> aaaa(std::string_view name) { return do_aaaa(std::string(name)); }
  /// MX records of `name` as published, sorted by preference: no implicit MX (a name with only an
  /// address answers no_data); a null MX (RFC 7505) is {preference, ""}.
  task<result<std::vector<net::dns::mx_record>>> mx(std::string_view name) { return do_mx(std::string(name)); }
  /// Names of `addr` from its reverse zone (in-addr.arpa / ip6.arpa), without trailing dots.
  task<result<std::vector<std::string>>> ptr(asio::ip::address const& addr) { return do_ptr(addr); }

 protected:
  virtual task<result<std::vector<std::string>>> do_txt(std::string name) = 0;
  virtual task<result<std::vector<asio::ip::address>>> do_a(std::string name) = 0;
  virtual task<result<std::vector<asio::ip::address>>> do_aaaa(std::string name) = 0;
  virtual task<result<std::vector<net::dns::mx_record>>> do_mx(std::string name) = 0;
  virtual task<result<std::vector<std::string>>> do_ptr(asio::ip::address addr) = 0;
};

/// The filter DNS over mailroom's c-ares resolver. The resolver must outlive this object, and
/// lookups run on the resolver's executor (see net::dns::resolver).
class resolver_dns final : public dns {
 public:
  explicit resolver_dns(net::dns::resolver& r) noexcept : resolver_(&r) {}

 protected:
  task<result<std::vector<std::string>>> do_txt(std::string name) override;
  task<result<std::vector<asio::ip::address>>> do_a(std::string name) override;
  task<result<std::vector<asio::ip::address>>> do_aaaa(std::string name) override;
  task<result<std::vector<net::dns::mx_record>>> do_mx(std::string name) override;
  task<result<std::vector<std::string>>> do_ptr(asio::ip::address addr) override;

 private:
  net::dns::resolver* resolver_;
};

/// An in-memory zone for tests and embedders: records added per name and type, failures injected
/// per name (and type), every query counted and logged.
///
/// Names compare ASCII case-insensitively and a trailing dot is ignored. A name exists (no_data
/// rather than nxdomain) once anything was added for it, add_name() included. A CNAME is followed
/// for the other types (at most 8 links; a loop or a longer chain answers servfail). A failure set
/// with set_error() wins over records of that name and type. Answers come at once, or after the
/// set_delay() on the awaiting coroutine's executor (a slow server). Not synchronised: configure
/// first, then query from one thread at a time.
class static_dns final : public dns {
 public:
  enum class rr { a, aaaa, txt, mx, ptr, cname };

  struct query {
    rr type;
    std::string name;  ///< normalised (lower case, no trailing dot); PTR: "#" and the address
  };

  /// One TXT record (its character-strings already concatenated).
  static_dns& add_txt(std::string_view name, std::string_view text);
  /// An A record for an IPv4 address, an AAAA record for an IPv6 one.
  static_dns& add_address(std::string_view name, asio::ip::address const& addr);
  /// Throws std::invalid_argument when `addr` is not an IP address.
  static_dns& add_address(std::string_view name, std::string_view addr);
  /// An MX record; host "" (or ".") is a null MX.
  static_dns& add_mx(std::string_view name, std::uint16_t preference, std::string_view host);
  /// A PTR record for an address, or at its reverse name ("4.3.2.1.in-addr.arpa", 32 nibble
  /// labels under ip6.arpa); throws std::invalid_argument for any other name.
  static_dns& add_ptr(asio::ip::address const& addr, std::string_view target);
  static_dns& add_ptr(std::string_view reverse_name, std::string_view target);
  static_dns& add_cname(std::string_view name, std::string_view target);
  /// Makes `name` exist without records (queries answer no_data).
  static_dns& add_name(std::string_view name);
  /// Queries of `type` at `name` fail with `ec` (e.g. net::dns::errc::timeout).
  static_dns& set_error(std::string_view name, rr type, std::error_code ec);
  /// Queries of every type at `name` fail with `ec`.
  static_dns& set_error(std::string_view name, std::error_code ec);

  /// Every answer waits this long first (zero: none).
  static_dns& set_delay(std::chrono::milliseconds delay) noexcept {
    delay_ = delay;
    return *this;
  }

  /// Queries answered so far (each lookup is one query, CNAME links not counted).
  std::size_t queries() const noexcept { return log_.size(); }
  std::size_t queries(rr type) const noexcept;
  std::size_t queries(rr type, std::string_view name) const;  ///< a reverse name for PTR
  std::vector<query> const& log() const noexcept { return log_; }
  void clear_log() noexcept { log_.clear(); }

  /// The address a reverse-zone name stands for; nullopt when it is no such name.
  static std::optional<asio::ip::address> parse_reverse_name(std::string_view name);
  /// Lower case, without a trailing dot: the form names are stored and logged in.
  static std::string normalise(std::string_view name);

 protected:
  task<result<std::vector<std::string>>> do_txt(std::string name) override;
  task<result<std::vector<asio::ip::address>>> do_a(std::string name) override;
  task<result<std::vector<asio::ip::address>>> do_aaaa(std::string name) override;
  task<result<std::vector<net::dns::mx_record>>> do_mx(std::string name) override;
  task<result<std::vector<std::string>>> do_ptr(asio::ip::address addr) override;

 private:
  struct node {
    std::vector<std::string> txt;
    std::vector<asio::ip::address> a, aaaa;
    std::vector<net::dns::mx_record> mx;
    std::vector<std::string> ptr;
    std::string cname;
    std::map<rr, std::error_code> errors;
    std::error_code any_error;
  };
  // Logs the query, follows CNAMEs, and returns the node answering it or the error.
  result<node const*> find(rr type, std::string_view name);
  node& at(std::string_view name) { return zone_[key(name)]; }

  // Keyed by normalised name; a reverse-zone name by its address ("#192.0.2.1") so that every
  // spelling of it (upper-case nibbles, ...) is one node.
  static std::string key(std::string_view name);
  std::map<std::string, node> zone_;
  std::vector<query> log_;
  std::chrono::milliseconds delay_{0};
};

}  // namespace mailroom::filter
