// A real DNS server for tests: a dnsmasq process answering fixed records on 127.0.0.1.
//
// Tests that need it are declared `TEST_CASE("..." * testing::requires_dnsmasq())`: without the
// binary they are reported as skipped, and a run in which every selected case was skipped that way
// exits with 77 (ctest's SKIP_RETURN_CODE) instead of passing vacuously.
#pragma once

#include <cstdint>
#include <string>
#include <sys/types.h>
#include <vector>

#include <doctest/doctest.h>

#include "support/helpers.hpp"

namespace mailroom::testing {

class dnsmasq {
 public:
  /// The dnsmasq executable: $MAILROOM_DNSMASQ when set (a non-executable value such as "none"
  /// disables the dnsmasq cases), else the first on PATH, /usr/sbin, /usr/local/sbin; "" if none.
  static std::string const& binary();
  static bool available() { return !binary().empty(); }

  /// Starts dnsmasq on a free 127.0.0.1 port (UDP and TCP) configured with `config` only: dnsmasq
  /// long options without the leading "--", e.g. "mx-host=example.test,mx.example.test,10",
  /// "host-record=mx.example.test,192.0.2.1,2001:db8::1", "txt-record=example.test,v=spf1 -all",
  /// "ptr-record=1.2.0.192.in-addr.arpa,mx.example.test". Nothing is forwarded upstream: names in
  /// a zone declared "local=/example.test/" that have no record of the asked type get NODATA (or
  /// NXDOMAIN if the name has no records at all); names outside every local zone get REFUSED.
  /// Returns once the server answers queries; throws std::runtime_error with dnsmasq's output if
  /// it does not start.
  explicit dnsmasq(std::vector<std::string> config);
  /// Stops the server and waits for it to exit.
  ~dnsmasq();
  dnsmasq(dnsmasq const&) = delete;
  dnsmasq& operator=(dnsmasq const&) = delete;

  std::uint16_t port() const noexcept { return port_; }
  /// "127.0.0.1:<port>", as dns::options::servers takes it.
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  bool launch(std::vector<std::string> const& config);  // false if dnsmasq exited (port taken)
  void stop() noexcept;

  temp_dir dir_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
};

/// doctest decorator: skips the case when dnsmasq is not installed.
inline doctest::skip requires_dnsmasq() { return doctest::skip(!dnsmasq::available()); }

}  // namespace mailroom::testing
