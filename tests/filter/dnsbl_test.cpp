// DNSBL/DNSWL: RFC 5782 query names, answer interpretation, postscreen-style site specs, and the
// multi-list check with weights, TXT reasons, failures and a deadline, over fake lookups.
#include <doctest/doctest.h>

#include <algorithm>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <map>
#include <string>
#include <vector>

#include "mailroom/core/error.hpp"
#include "mailroom/filter/dnsbl.hpp"
#include "mailroom/net/dns/resolver.hpp"
#include "support/helpers.hpp"

using namespace mailroom;
using namespace mailroom::filter;
using asio::ip::make_address;
using asio::ip::make_address_v4;

namespace {

struct fake_dns {
  std::map<std::string, std::vector<asio::ip::address>> a;
  std::map<std::string, std::vector<std::string>> txt;
  std::map<std::string, std::error_code> errors;
  std::map<std::string, std::chrono::milliseconds> delays;
  std::vector<std::string> asked;

  dnsbl::a_lookup a_fn() {
    return [this](std::string const& name) -> task<result<std::vector<asio::ip::address>>> {
      asked.push_back("A " + name);
      if (auto d = delays.find(name); d != delays.end()) {
        asio::steady_timer t(co_await asio::this_coro::executor);
        t.expires_after(d->second);
        co_await t.async_wait(asio::use_awaitable);
      }
      if (auto e = errors.find(name); e != errors.end()) co_return fail(e->second);
      auto it = a.find(name);
      if (it == a.end()) co_return fail(net::dns::errc::nxdomain);
      co_return it->second;
    };
  }
  dnsbl::txt_lookup txt_fn() {
    return [this](std::string const& name) -> task<result<std::vector<std::string>>> {
      asked.push_back("TXT " + name);
      auto it = txt.find(name);
      if (it == txt.end()) co_return fail(net::dns::errc::no_data);
      co_return it->second;
    };
  }
};

dnsbl::site site(std::string_view spec) {
  auto s = dnsbl::parse_site(spec);
  REQUIRE(s);
  return *s;
}

}  // namespace

TEST_CASE("dnsbl: RFC 5782 query names") {
  CHECK(dnsbl::query_name(make_address("192.0.2.99"), "dnsxl.example.com") == "99.2.0.192.dnsxl.example.com");
  CHECK(dnsbl::query_name(make_address("127.0.0.2"), ".Zen.Example.") == "2.0.0.127.zen.example");
  CHECK(dnsbl::query_name(make_address("2001:db8:1:2:3:4:567:89ab"), "ugly.example.com") ==
        "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com");
  CHECK(dnsbl::query_name(make_address("::1"), "x") ==
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.x");
  CHECK(dnsbl::query_name(make_address("::ffff:198.51.100.7"), "bl.example") == "7.100.51.198.bl.example");
}

TEST_CASE("dnsbl: site specs") {
  auto s = site("zen.example.org");
  CHECK(s.zone == "zen.example.org");
  CHECK(!s.accept);
  CHECK(s.weight == 1);
  s = site("Zen.Example.org=127.0.0.[2..11;20]*3");
  CHECK(s.zone == "zen.example.org");
  CHECK(s.weight == 3);
  REQUIRE(s.accept);
  CHECK(s.accept->matches(make_address_v4("127.0.0.2")));
  CHECK(s.accept->matches(make_address_v4("127.0.0.11")));
  CHECK(s.accept->matches(make_address_v4("127.0.0.20")));
  CHECK(!s.accept->matches(make_address_v4("127.0.0.12")));
  CHECK(!s.accept->matches(make_address_v4("127.0.1.2")));
  s = site("list.dnswl.example=127.0.[0..255].[1..3]*-5");
  CHECK(s.weight == -5);
  CHECK(s.accept->matches(make_address_v4("127.0.200.3")));
  CHECK(!s.accept->matches(make_address_v4("127.0.200.0")));
  s = site("bl.example=127.0.0.4");
  CHECK(s.accept->matches(make_address_v4("127.0.0.4")));
  CHECK(!s.accept->matches(make_address_v4("127.0.0.5")));
  for (char const* bad : {"", "=127.0.0.2", "bl.example=127.0.0", "bl.example=127.0.0.256", "bl.example=127.0.0.[5..2]",
                          "bl.example=127.0.0.[2", "bl.example*x", "bl.example*99999999", "bl.example=1.2.3.4.5",
                          "bad zone", "bl.example=127.0.0.[]"}) {
    CAPTURE(bad);
    auto r = dnsbl::parse_site(bad);
    REQUIRE(!r);
    CHECK(r.error() == errc::invalid_argument);
  }
}

TEST_CASE("dnsbl: interpretation of A answers") {
  auto any = site("bl.example");
  auto only2 = site("bl.example=127.0.0.2");
  std::vector<asio::ip::address> ans{make_address("127.0.0.2"), make_address("127.0.0.4")};
  auto r = dnsbl::interpret(ans, any);
  CHECK(r.state == dnsbl::status::listed);
  CHECK(r.codes.size() == 2);
  r = dnsbl::interpret(ans, only2);
  CHECK(r.state == dnsbl::status::listed);
  REQUIRE(r.codes.size() == 1);
  CHECK(r.codes[0] == make_address_v4("127.0.0.2"));
  r = dnsbl::interpret({make_address("127.0.0.4")}, only2);
  CHECK(r.state == dnsbl::status::not_listed);
  // Error codes are not listings; answers outside 127/8 mean nothing.
  r = dnsbl::interpret({make_address("127.255.255.254")}, any);
  CHECK(r.state == dnsbl::status::list_error);
  CHECK(r.codes.empty());
  r = dnsbl::interpret({make_address("127.255.255.252"), make_address("127.0.0.3")}, any);
  CHECK(r.state == dnsbl::status::listed);
  r = dnsbl::interpret({make_address("192.0.2.1"), make_address("::1"), make_address("10.0.0.2")}, any);
  CHECK(r.state == dnsbl::status::not_listed);
  CHECK(dnsbl::interpret({}, any).state == dnsbl::status::not_listed);
}

TEST_CASE("dnsbl: checking several lists with weights, reasons and failures") {
  fake_dns dns;
  auto const ip = make_address("192.0.2.99");
  dns.a["99.2.0.192.zen.example"] = {make_address("127.0.0.4"), make_address("127.0.0.11")};
  dns.txt["99.2.0.192.zen.example"] = {"Listed\r\nsee https://zen.example/query/ip/192.0.2.99", "second"};
  dns.a["99.2.0.192.wl.example"] = {make_address("127.0.10.2")};
  dns.a["99.2.0.192.quota.example"] = {make_address("127.255.255.254")};
  dns.a["99.2.0.192.wild.example"] = {make_address("198.51.100.1")};
  dns.errors["99.2.0.192.broken.example"] = make_error_code(net::dns::errc::servfail);
  std::vector<dnsbl::site> sites{site("zen.example=127.0.0.[10;11]*8"), site("zen.example=127.0.0.[4..7]*6"),
                                 site("zen.example=127.0.0.[2..3]*3"),  site("wl.example=127.0.[0..255].[1..3]*-5"),
                                 site("quota.example*10"),              site("wild.example*10"),
                                 site("broken.example*10"),             site("clean.example*10")};
  asio::io_context io;
  dnsbl::check_options opts;
  opts.threshold = 5;
  auto rep = testing::run(io, dnsbl::check(ip, sites, dns.a_fn(), dns.txt_fn(), opts));
  REQUIRE(rep.sites.size() == 8);
  CHECK(rep.score == 8 + 6 - 5);
  CHECK(rep.listed);
  // zen.example was asked once for three sites, and its TXT once.
  CHECK(std::count(dns.asked.begin(), dns.asked.end(), "A 99.2.0.192.zen.example") == 1);
  CHECK(std::count(dns.asked.begin(), dns.asked.end(), "TXT 99.2.0.192.zen.example") == 1);
  CHECK(std::count(dns.asked.begin(), dns.asked.end(), "TXT 99.2.0.192.wild.example") == 0);
  CHECK(std::count(dns.asked.begin(), dns.asked.end(), "TXT 99.2.0.192.quota.example") == 0);
  CHECK(rep.sites[0].state == dnsbl::status::listed);
  CHECK(rep.sites[0].weight == 8);
  CHECK(rep.sites[0].reason == "Listed  see https://zen.example/query/ip/192.0.2.99");
  CHECK(rep.sites[1].state == dnsbl::status::listed);
  CHECK(rep.sites[2].state == dnsbl::status::not_listed);
  CHECK(rep.sites[2].weight == 0);
  CHECK(rep.sites[3].state == dnsbl::status::listed);
  CHECK(rep.sites[3].weight == -5);
  CHECK(rep.sites[4].state == dnsbl::status::list_error);
  CHECK(rep.sites[5].state == dnsbl::status::not_listed);
  CHECK(rep.sites[6].state == dnsbl::status::unknown);
  CHECK(rep.sites[6].error == net::dns::errc::servfail);
  CHECK(rep.sites[7].state == dnsbl::status::not_listed);
  REQUIRE(rep.first_listed());
  CHECK(rep.first_listed()->zone == "zen.example");

  // Below the threshold: not listed.
  opts.threshold = 10;
  rep = testing::run(io, dnsbl::check(ip, sites, dns.a_fn(), dns.txt_fn(), opts));
  CHECK(rep.score == 9);
  CHECK(!rep.listed);

  // No sites: nothing asked, nothing listed.
  dns.asked.clear();
  rep = testing::run(io, dnsbl::check(ip, {}, dns.a_fn(), dns.txt_fn()));
  CHECK(rep.sites.empty());
  CHECK(!rep.listed);
  CHECK(dns.asked.empty());
  CHECK(!rep.first_listed());
}

TEST_CASE("dnsbl: lookups run in parallel; the deadline leaves slow lists unknown") {
  fake_dns dns;
  auto const ip = make_address("2001:db8::1");
  std::string const p = dnsbl::query_name(ip, "");
  dns.a[p + "slow.example"] = {make_address("127.0.0.2")};
  dns.a[p + "fast.example"] = {make_address("127.0.0.2")};
  dns.a[p + "medium.example"] = {make_address("127.0.0.2")};
  dns.delays[p + "slow.example"] = std::chrono::seconds(20);
  dns.delays[p + "medium.example"] = std::chrono::milliseconds(300);
  dns.delays[p + "fast.example"] = std::chrono::milliseconds(300);
  asio::io_context io;
  dnsbl::check_options opts;
  opts.deadline = std::chrono::milliseconds(1500);
  opts.fetch_reasons = false;
  auto const start = std::chrono::steady_clock::now();
  auto rep = testing::run(io, dnsbl::check(ip, {site("slow.example"), site("fast.example"), site("medium.example")},
                                           dns.a_fn(), dns.txt_fn(), opts));
  auto const took = std::chrono::steady_clock::now() - start;
  CHECK(took >= std::chrono::milliseconds(1400));
  CHECK(took < std::chrono::seconds(10));
  CHECK(rep.sites[0].state == dnsbl::status::unknown);
  CHECK(rep.sites[0].error == asio::error::timed_out);
  CHECK(rep.sites[1].state == dnsbl::status::listed);
  CHECK(rep.sites[2].state == dnsbl::status::listed);
  CHECK(rep.score == 2);

  // Without the slow one, both 300 ms lookups finish together, well before 600 ms.
  auto const start2 = std::chrono::steady_clock::now();
  rep = testing::run(io, dnsbl::check(ip, {site("fast.example"), site("medium.example")}, dns.a_fn(), dns.txt_fn(), opts));
  CHECK(std::chrono::steady_clock::now() - start2 < std::chrono::milliseconds(590));
  CHECK(rep.score == 2);

  // More sites than max_sites: the rest are unknown, not queried.
  opts.max_sites = 1;
  dns.asked.clear();
  rep = testing::run(io, dnsbl::check(ip, {site("fast.example"), site("medium.example")}, dns.a_fn(), dns.txt_fn(), opts));
  CHECK(dns.asked.size() == 1);
  CHECK(rep.sites[1].state == dnsbl::status::unknown);
  CHECK(rep.sites[1].zone == "medium.example");
  CHECK(rep.sites[1].error == errc::limit_exceeded);
}
