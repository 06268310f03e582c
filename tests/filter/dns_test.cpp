// resolver_dns over the real resolver and a dnsmasq: the filter lookups, MX without the implicit
// MX, and an SPF check end to end over real DNS (including a server that never answers).
#include <chrono>
#include <string>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>
#include <doctest/doctest.h>

#include "mailroom/filter/dns.hpp"
#include "mailroom/filter/spf.hpp"
#include "support/dnsmasq.hpp"
#include "support/helpers.hpp"

using namespace mailroom;
using namespace std::chrono_literals;
using testing::dnsmasq;
using testing::requires_dnsmasq;
using testing::run;
namespace spf = filter::spf;

namespace {

std::vector<std::string> zone() {
  return {
      "local=/example.test/",
      "local=/in-addr.arpa/",
      "mx-host=example.test,mx-b.example.test,20",
      "mx-host=example.test,mx-a.example.test,10",
      "mx-host=null.example.test,.,0",
      "host-record=mx-a.example.test,192.0.2.10",
      "host-record=mx-b.example.test,192.0.2.11,2001:db8::11",
      "host-record=addr-only.example.test,192.0.2.20",
      "txt-record=example.test,v=spf1 mx include:_spf.example.test -all",
      "txt-record=example.test,unrelated text",
      "txt-record=_spf.example.test,v=spf1 ip4:198.51.100.0/24 ptr:example.test ~all",
      "txt-record=addr-only.example.test,v=spf1 mx -all",
      "txt-record=split.example.test,v=spf1 ip4:,192.0.2.99 -all",
      "ptr-record=7.113.0.203.in-addr.arpa,host.example.test",
      "host-record=host.example.test,203.0.113.7",
  };
}

struct zone_fixture {
  dnsmasq server{zone()};
  asio::io_context io;
  net::dns::resolver resolver{io.get_executor(), net::dns::options{{server.server()}, 2000ms, 2}};
  filter::resolver_dns d{resolver};
};

spf::outcome check(zone_fixture& f, char const* client, char const* from) {
  return run(f.io, spf::check_mail_from(f.d, asio::ip::make_address(client), from, "helo.example.test"));
}

}  // namespace

TEST_CASE_FIXTURE(zone_fixture, "resolver_dns: typed lookups, MX as published" * requires_dnsmasq()) {
  auto txt = run(io, d.txt("example.test"));
  REQUIRE(txt);
  CHECK(txt->size() == 2);
  auto split = run(io, d.txt("split.example.test"));
  REQUIRE(split);
  CHECK(*split == std::vector<std::string>{"v=spf1 ip4:192.0.2.99 -all"});  // strings concatenated

  auto mx = run(io, d.mx("example.test"));
  REQUIRE(mx);
  CHECK(*mx == std::vector<net::dns::mx_record>{{10, "mx-a.example.test"}, {20, "mx-b.example.test"}});
  auto null = run(io, d.mx("null.example.test"));
  REQUIRE(null);
  CHECK(*null == std::vector<net::dns::mx_record>{{0, ""}});
  // An address but no MX: no_data here, where resolver::mx() would make up the implicit MX.
  auto raw = run(io, d.mx("addr-only.example.test"));
  REQUIRE(!raw);
  CHECK(raw.error() == net::dns::errc::no_data);
  auto implicit = run(io, resolver.mx("addr-only.example.test"));
  REQUIRE(implicit);
  CHECK(implicit->size() == 1);
  auto gone = run(io, d.mx("nowhere.example.test"));
  REQUIRE(!gone);
  CHECK(gone.error() == net::dns::errc::nxdomain);

  auto a = run(io, d.a("mx-b.example.test"));
  REQUIRE(a);
  CHECK(*a == std::vector<asio::ip::address>{asio::ip::make_address("192.0.2.11")});
  auto aaaa = run(io, d.aaaa("mx-b.example.test"));
  REQUIRE(aaaa);
  CHECK(*aaaa == std::vector<asio::ip::address>{asio::ip::make_address("2001:db8::11")});
  auto ptr = run(io, d.ptr(asio::ip::make_address("203.0.113.7")));
  REQUIRE(ptr);
  CHECK(*ptr == std::vector<std::string>{"host.example.test"});
}

TEST_CASE_FIXTURE(zone_fixture, "SPF over real DNS" * requires_dnsmasq()) {
  auto by_mx = check(*this, "192.0.2.11", "user@example.test");
  CHECK(by_mx.result == spf::status::pass);
  CHECK(by_mx.mechanism == "mx");
  auto by_include = check(*this, "198.51.100.9", "user@example.test");
  CHECK(by_include.result == spf::status::pass);
  CHECK(by_include.mechanism == "include:_spf.example.test");
  CHECK(check(*this, "203.0.113.7", "user@example.test").result == spf::status::pass);  // ptr, validated
  CHECK(check(*this, "203.0.113.8", "user@example.test").result == spf::status::fail);
  CHECK(check(*this, "192.0.2.20", "user@addr-only.example.test").result == spf::status::fail);  // no implicit MX
  CHECK(check(*this, "192.0.2.99", "user@split.example.test").result == spf::status::pass);
  CHECK(check(*this, "192.0.2.99", "user@nowhere.example.test").result == spf::status::none);
}

TEST_CASE("SPF: a DNS server that never answers is temperror") {
  asio::io_context io;
  asio::ip::udp::socket silent(io, asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  net::dns::resolver r{io.get_executor(),
                       net::dns::options{{"127.0.0.1:" + std::to_string(silent.local_endpoint().port())}, 200ms, 1}};
  filter::resolver_dns d{r};
  auto o = run(io, spf::check_mail_from(d, asio::ip::make_address("192.0.2.1"), "a@example.test", "h.example.test"));
  CHECK(o.result == spf::status::temperror);
  CHECK(o.problem.find("example.test") != std::string::npos);
}
