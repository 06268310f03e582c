#include <doctest/doctest.h>

#include "mailroom/mta/relay_policy.hpp"

using namespace mailroom;

namespace {
mta::relay_policy policy() {
  mta::relay_policy_options o;
  o.local_domains = {"Example.ORG.", ".hosted.example"};
  o.relay_domains = {"backup.example"};
  o.trusted_v4 = {asio::ip::make_network_v4("192.0.2.0/24")};
  o.trusted_v6 = {asio::ip::make_network_v6("2001:db8:1::/48")};
  return mta::relay_policy(o);
}

smtp::session_info from(std::string ip, bool authenticated = false) {
  smtp::session_info s;
  s.remote = {asio::ip::make_address(ip), 40000};
  if (authenticated) s.auth = auth::identity{"alice"};
  return s;
}

address rcpt(std::string local, std::string domain) { return {std::move(local), std::move(domain)}; }
}  // namespace

TEST_CASE("strangers may send only to our domains") {
  auto p = policy();
  auto stranger = from("198.51.100.9");
  CHECK_FALSE(p.check(stranger, rcpt("u", "example.org")));
  CHECK_FALSE(p.check(stranger, rcpt("u", "EXAMPLE.org.")));
  CHECK_FALSE(p.check(stranger, rcpt("u", "mx.hosted.example")));
  CHECK(p.check(stranger, rcpt("u", "hosted.example")));  // ".x" covers subdomains only
  CHECK_FALSE(p.check(stranger, rcpt("u", "backup.example")));
  CHECK_FALSE(p.check(stranger, rcpt("postmaster", "")));
  auto r = p.check(stranger, rcpt("u", "gmail.example"));
  REQUIRE(r);
  CHECK(r->code == 554);
  CHECK(r->enhanced == std::array<std::uint8_t, 3>{5, 7, 1});
  CHECK(p.check(stranger, rcpt("u", "example.org.evil")));
  CHECK(p.check(stranger, rcpt("u", "notexample.org")));
  CHECK(p.check(stranger, rcpt("u", "[192.0.2.1]")));
}

TEST_CASE("routing tricks in the local part are refused from strangers") {
  auto p = policy();
  auto stranger = from("198.51.100.9");
  CHECK(p.check(stranger, rcpt("x%remote.example", "example.org")));
  CHECK(p.check(stranger, rcpt("remote.example!x", "example.org")));
  CHECK(p.check(stranger, rcpt("x@remote.example", "example.org")));  // "x@remote"@example.org
  CHECK_FALSE(p.check(from("192.0.2.10"), rcpt("x%remote.example", "example.org")));
}

TEST_CASE("authenticated and trusted clients may relay") {
  auto p = policy();
  CHECK_FALSE(p.check(from("198.51.100.9", true), rcpt("u", "anywhere.example")));
  CHECK_FALSE(p.check(from("192.0.2.200"), rcpt("u", "anywhere.example")));
  CHECK_FALSE(p.check(from("::ffff:192.0.2.5"), rcpt("u", "anywhere.example")));  // v4-mapped
  CHECK_FALSE(p.check(from("2001:db8:1:ff::1"), rcpt("u", "anywhere.example")));
  CHECK(p.check(from("2001:db8:2::1"), rcpt("u", "anywhere.example")));
  CHECK(p.check(from("192.0.3.1"), rcpt("u", "anywhere.example")));
  mta::relay_policy_options o;
  o.local_domains = {"example.org"};
  o.authenticated_may_relay = false;
  CHECK(mta::relay_policy(o).check(from("198.51.100.9", true), rcpt("u", "anywhere.example")));
}
