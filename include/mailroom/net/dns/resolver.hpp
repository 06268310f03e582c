// Asynchronous DNS through c-ares, driven by the Asio executor (no blocking calls, no extra thread).
//
// Contract: a resolver belongs to one executor; its operations are called from that executor and
// any number may be outstanding. Answers are returned as values; "no such name" and "no records of
// that type" are dns::errc::nxdomain and dns::errc::no_data so callers can tell them from failures
// (timeout, servfail) that should be retried later. Names are queried as given (fully qualified;
// no resolv.conf search domains). Arguments are copied when an operation is called, so the
// returned task may be spawned or awaited after they are gone.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <asio/ip/address.hpp>

#include "mailroom/core/result.hpp"
#include "mailroom/core/task.hpp"

namespace mailroom::net::dns {

enum class errc {
  nxdomain = 1,  ///< the name does not exist
  no_data,       ///< the name exists, without records of the asked type
  servfail,      ///< the server failed (retry later)
  timeout,       ///< no answer in time (retry later)
  refused,       ///< the server refused the query
  bad_response,  ///< the answer could not be parsed
  bad_name,      ///< the query name is malformed
  cancelled,     ///< the resolver was shut down
  other,         ///< any other c-ares failure
};
std::error_category const& category() noexcept;
inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

/// True for failures worth retrying later (timeout, servfail, refused, other).
bool is_temporary(std::error_code ec) noexcept;

struct mx_record {
  std::uint16_t preference = 0;
  std::string host;  ///< without trailing dot; "" for a null MX (RFC 7505, host ".")
  friend bool operator==(mx_record const&, mx_record const&) = default;
};

struct options {
  /// "ip:port" or "[ipv6]:port" entries; empty = the system configuration (/etc/resolv.conf).
  std::vector<std::string> servers;
  std::chrono::milliseconds timeout{5000};  ///< per try
  int tries = 2;
};

class resolver {
 public:
  /// Throws std::invalid_argument for a malformed server entry, std::system_error when c-ares
  /// cannot start.
  explicit resolver(executor ex, options opts = {});
  /// Outstanding queries complete with errc::cancelled.
  ~resolver();
  resolver(resolver const&) = delete;
  resolver& operator=(resolver const&) = delete;

  /// MX records sorted by preference (ties keep server order). When the name has no MX records
  /// but has an address, returns the implicit MX {0, name} (RFC 5321 5.1).
  task<result<std::vector<mx_record>>> mx(std::string_view name);
  /// MX records as published, sorted by preference (ties keep server order), without the
  /// implicit-MX rule: a name without MX records answers no_data (what SPF's "mx" needs).
  task<result<std::vector<mx_record>>> mx_records(std::string_view name);
  task<result<std::vector<asio::ip::address>>> a(std::string_view name);
  task<result<std::vector<asio::ip::address>>> aaaa(std::string_view name);
  /// Each TXT record with its character-strings concatenated.
  task<result<std::vector<std::string>>> txt(std::string_view name);
  /// Names for an address (reverse lookup), without trailing dots.
  task<result<std::vector<std::string>>> ptr(asio::ip::address const& addr);

  /// Cancels outstanding queries (they complete with errc::cancelled).
  void cancel() noexcept;

  struct impl;

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace mailroom::net::dns

template <>
struct std::is_error_code_enum<mailroom::net::dns::errc> : std::true_type {};
