// The DNS-using policy checks with the real resolver against a dnsmasq: how the lookups plug
// into net::dns::resolver (the adapters are one-line lambdas).
#include <doctest/doctest.h>

#include <asio/io_context.hpp>

#include "mailroom/filter/dmarc.hpp"
#include "mailroom/filter/dnsbl.hpp"
#include "mailroom/net/dns/resolver.hpp"
#include "support/dnsmasq.hpp"
#include "support/helpers.hpp"

using namespace mailroom;
using namespace mailroom::filter;

namespace {

struct zone_fixture {
  testing::dnsmasq server{{
      "local=/bl.test/",
      "local=/example.test/",
      "local=/none.test/",
      "host-record=99.2.0.192.bl.test,127.0.0.2",
      "txt-record=99.2.0.192.bl.test,Listed: see https://bl.test/192.0.2.99",
      "host-record=1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test,127.255.255.254",
      "txt-record=_dmarc.example.test,v=DMARC1; p=reject; sp=quarantine; rua=mailto:agg@example.test",
      "txt-record=_dmarc.other.example.test,not a policy",
  }};
  asio::io_context io;
  net::dns::resolver r{io.get_executor(), [this] {
                         net::dns::options o;
                         o.servers = {server.server()};
                         o.timeout = std::chrono::milliseconds(2000);
                         return o;
                       }()};
  dnsbl::a_lookup a = [this](std::string const& name) { return r.a(name); };
  dnsbl::txt_lookup txt = [this](std::string const& name) { return r.txt(name); };
};

}  // namespace

TEST_CASE_FIXTURE(zone_fixture, "policy dns: DNSBL over the real resolver" * testing::requires_dnsmasq()) {
  std::vector<dnsbl::site> sites{*dnsbl::parse_site("bl.test*2"), *dnsbl::parse_site("bl.test=127.0.0.3")};
  auto rep = testing::run(io, dnsbl::check(asio::ip::make_address("192.0.2.99"), sites, a, txt));
  REQUIRE(rep.sites.size() == 2);
  CHECK(rep.sites[0].state == dnsbl::status::listed);
  CHECK(rep.sites[0].reason == "Listed: see https://bl.test/192.0.2.99");
  CHECK(rep.sites[1].state == dnsbl::status::not_listed);
  CHECK(rep.score == 2);
  CHECK(rep.listed);

  rep = testing::run(io, dnsbl::check(asio::ip::make_address("192.0.2.98"), sites, a, txt));
  CHECK(rep.sites[0].state == dnsbl::status::not_listed);
  CHECK(!rep.listed);
  rep = testing::run(io, dnsbl::check(asio::ip::make_address("2001:db8::1"), sites, a, txt));
  CHECK(rep.sites[0].state == dnsbl::status::list_error);
  CHECK(!rep.listed);
  // A zone the server refuses: unknown, not listed.
  rep = testing::run(io, dnsbl::check(asio::ip::make_address("192.0.2.99"), {*dnsbl::parse_site("elsewhere.invalid")}, a, txt));
  CHECK(rep.sites[0].state == dnsbl::status::unknown);
  CHECK(!rep.listed);
}

TEST_CASE_FIXTURE(zone_fixture, "policy dns: DMARC discovery over the real resolver" * testing::requires_dnsmasq()) {
  auto psl = public_suffix_list::parse("test\n");
  REQUIRE(psl);
  auto d = testing::run(io, dmarc::discover("mail.example.test", *psl, txt));
  REQUIRE(d.state == dmarc::discovery::status::found);
  CHECK(d.domain == "example.test");
  CHECK(d.organizational);
  CHECK(d.rec.p == dmarc::policy::reject);

  // A non-DMARC TXT at the From domain: the organizational domain's record applies.
  dmarc::auth_results none;
  auto e = testing::run(io, dmarc::check({"Joe <joe@other.example.test>"}, none, *psl, txt));
  CHECK(e.result == dmarc::outcome::fail);
  CHECK(e.requested == dmarc::policy::quarantine);
  CHECK(dmarc::authentication_results(e) == "dmarc=fail (p=reject sp=quarantine dis=quarantine) header.from=other.example.test");

  e = testing::run(io, dmarc::check({"joe@none.test"}, none, *psl, txt));
  CHECK(e.result == dmarc::outcome::none);
  // Outside the server's zones it refuses: temperror.
  e = testing::run(io, dmarc::check({"joe@refused.test"}, none, *psl, txt));
  CHECK(e.result == dmarc::outcome::temperror);
  CHECK(net::dns::is_temporary(e.error));
}
