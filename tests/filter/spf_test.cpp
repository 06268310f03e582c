// SPF: the record and macro syntax, check_host() over the in-memory zone (RFC 7208 examples,
// limits, hostile policies), the header fields, and static_dns itself.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include <asio/io_context.hpp>

#include "mailroom/filter/dns.hpp"
#include "mailroom/filter/spf.hpp"
#include "support/helpers.hpp"

using namespace mailroom;
using filter::static_dns;
namespace spf = filter::spf;
using spf::status;
using rr = static_dns::rr;

namespace {

asio::ip::address ip(std::string_view s) { return asio::ip::make_address(std::string(s)); }

spf::outcome mail_from(static_dns& d, std::string_view client, std::string_view from, std::string_view helo = "mx.example.org",
                       spf::options const& opts = {}) {
  asio::io_context io;
  return testing::run(io, spf::check_mail_from(d, ip(client), from, helo, opts));
}

template <class T>
T await(task<T> t) {
  asio::io_context io;
  return testing::run(io, std::move(t));
}

// Names queried for a type, in order.
std::vector<std::string> queried(static_dns const& d, rr type) {
  std::vector<std::string> out;
  for (auto const& q : d.log())
    if (q.type == type) out.push_back(q.name);
  return out;
}

spf::errc syntax_of(std::string_view record) {
  auto r = spf::parse_record(record);
  REQUIRE_MESSAGE(!r, record);
  return r.error().code;
}

}  // namespace

TEST_CASE("static_dns: names, types, CNAMEs, injected failures, counting") {
  static_dns d;
  d.add_txt("Example.COM.", "hello").add_address("example.com", "192.0.2.1").add_address("example.com", "2001:db8::1");
  d.add_mx("example.com", 20, "b.example.com.").add_mx("example.com", 10, "a.example.com").add_mx("null.example", 0, ".");
  d.add_cname("alias.example.com", "EXAMPLE.com").add_cname("loop1.example", "loop2.example").add_cname("loop2.example", "loop1.example");
  d.add_ptr("1.2.0.192.IN-ADDR.ARPA.", "host.example.com.").add_ptr(ip("2001:db8::1"), "six.example.com");
  d.add_name("empty.example").set_error("slow.example", make_error_code(net::dns::errc::timeout));
  d.set_error("half.example", rr::txt, make_error_code(net::dns::errc::servfail)).add_address("half.example", "192.0.2.9");

  auto txt = await(d.txt("EXAMPLE.com"));
  REQUIRE(txt);
  CHECK(*txt == std::vector<std::string>{"hello"});
  auto a = await(d.a("example.com."));
  REQUIRE(a);
  CHECK(*a == std::vector<asio::ip::address>{ip("192.0.2.1")});
  auto aaaa = await(d.aaaa("alias.example.com"));  // through the CNAME
  REQUIRE(aaaa);
  CHECK(*aaaa == std::vector<asio::ip::address>{ip("2001:db8::1")});
  auto mx = await(d.mx("example.com"));
  REQUIRE(mx);
  REQUIRE(mx->size() == 2);
  CHECK((*mx)[0] == net::dns::mx_record{10, "a.example.com"});
  CHECK((*mx)[1] == net::dns::mx_record{20, "b.example.com"});
  auto null_mx = await(d.mx("null.example"));
  REQUIRE(null_mx);
  CHECK((*null_mx)[0].host.empty());

  CHECK(await(d.mx("empty.example")).error() == net::dns::errc::no_data);
  CHECK(await(d.a("nowhere.example")).error() == net::dns::errc::nxdomain);
  CHECK(await(d.mx("half.example")).error() == net::dns::errc::no_data);  // only an address there
  CHECK(await(d.txt("loop1.example")).error() == net::dns::errc::servfail);
  CHECK(await(d.a("slow.example")).error() == net::dns::errc::timeout);
  CHECK(await(d.txt("half.example")).error() == net::dns::errc::servfail);
  CHECK(await(d.a("half.example")));
  CHECK(await(d.a(std::string(300, 'x'))).error() == net::dns::errc::bad_name);

  auto p4 = await(d.ptr(ip("192.0.2.1")));
  REQUIRE(p4);
  CHECK(*p4 == std::vector<std::string>{"host.example.com"});
  auto p6 = await(d.ptr(ip("2001:db8::1")));
  REQUIRE(p6);
  CHECK(*p6 == std::vector<std::string>{"six.example.com"});
  CHECK(await(d.ptr(ip("192.0.2.2"))).error() == net::dns::errc::nxdomain);

  CHECK(d.queries(rr::a) == 5);
  CHECK(d.queries(rr::txt, "EXAMPLE.COM") == 1);
  CHECK(d.queries(rr::ptr, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.B.D.0.1.0.0.2.ip6.arpa") == 1);
  CHECK(d.queries() == 16);
  d.clear_log();
  CHECK(d.queries() == 0);

  CHECK_THROWS_AS(d.add_ptr("example.com", "x.example"), std::invalid_argument);
  CHECK_THROWS_AS(d.add_address("x.example", "192.0.2.256"), std::invalid_argument);
  CHECK(static_dns::parse_reverse_name("4.3.2.1.in-addr.arpa") == ip("1.2.3.4"));
  CHECK(!static_dns::parse_reverse_name("4.3.2.1.in-addr.arpa.example"));
  CHECK(!static_dns::parse_reverse_name("x.3.2.1.in-addr.arpa"));
}

TEST_CASE("record syntax: what parses and what each error is") {
  auto r = spf::parse_record("V=SPF1  +a mx:%{d}/24//64 -ip4:192.0.2.0/24 ip6:2001:DB8::/32 ~ptr:example.com "
                             "?exists:%{ir}.bl.example.org include:_spf.example.net x-foo=%{l} redirect=_spf.%{d2} "
                             "exp=explain.%{d} ");
  REQUIRE(r);
  REQUIRE(r->mechanisms.size() == 7);
  CHECK(r->mechanisms[0].kind == spf::mechanism_kind::a);
  CHECK(r->mechanisms[0].qualifier == spf::qualifier::pass);
  CHECK(!r->mechanisms[0].domain);
  CHECK(r->mechanisms[1].kind == spf::mechanism_kind::mx);
  CHECK(r->mechanisms[1].cidr4 == 24);
  CHECK(r->mechanisms[1].cidr6 == 64);
  CHECK(r->mechanisms[1].domain->uses('d'));
  CHECK(r->mechanisms[2].network == ip("192.0.2.0"));
  CHECK(r->mechanisms[2].qualifier == spf::qualifier::fail);
  CHECK(r->mechanisms[3].network == ip("2001:db8::"));
  CHECK(r->mechanisms[3].cidr6 == 32);
  CHECK(r->mechanisms[4].qualifier == spf::qualifier::softfail);
  CHECK(r->mechanisms[5].qualifier == spf::qualifier::neutral);
  CHECK(r->mechanisms[6].text == "include:_spf.example.net");
  CHECK(r->redirect);
  CHECK(r->exp);
  CHECK(r->unknown_modifiers == 1);
  CHECK(!r->has_all);

  CHECK(spf::is_spf_record("v=spf1"));
  CHECK(spf::is_spf_record("v=Spf1 -all"));
  CHECK(!spf::is_spf_record("v=spf10"));
  CHECK(!spf::is_spf_record("v=spf1-all"));
  CHECK(!spf::is_spf_record(" v=spf1"));

  using E = spf::errc;
  CHECK(syntax_of("v=spf2 -all") == E::not_spf);
  CHECK(syntax_of("v=spf1 a\t-all") == E::not_ascii);
  CHECK(syntax_of("v=spf1 a:ex\xc3\xa9.com") == E::not_ascii);
  CHECK(syntax_of("v=spf1 moo") == E::unknown_mechanism);
  CHECK(syntax_of("v=spf1 -all.") == E::unknown_mechanism);
  CHECK(syntax_of("v=spf1 =all") == E::unknown_mechanism);
  CHECK(syntax_of("v=spf1 1up=x") == E::unknown_mechanism);
  CHECK(syntax_of("v=spf1 redirect:example.com") == E::unknown_mechanism);
  CHECK(syntax_of("v=spf1 -all:x") == E::bad_argument);
  CHECK(syntax_of("v=spf1 include") == E::bad_argument);
  CHECK(syntax_of("v=spf1 ptr/0") == E::bad_argument);
  CHECK(syntax_of("v=spf1 a/24/64") == E::bad_cidr);
  CHECK(syntax_of("v=spf1 a/33") == E::bad_cidr);
  CHECK(syntax_of("v=spf1 a//129") == E::bad_cidr);
  CHECK(syntax_of("v=spf1 a/024") == E::bad_cidr);
  CHECK(syntax_of("v=spf1 mx/99999999999999999999") == E::bad_cidr);
  CHECK(syntax_of("v=spf1 ip4:192.0.2.1/33") == E::bad_cidr);
  CHECK(syntax_of("v=spf1 ip4:192.0.2.1//32") == E::bad_cidr);
  CHECK(syntax_of("v=spf1 ip4:192.0.2.1/") == E::bad_cidr);
  CHECK(syntax_of("v=spf1 ip6:::1/129") == E::bad_cidr);
  CHECK(syntax_of("v=spf1 ip4") == E::bad_argument);
  CHECK(syntax_of("v=spf1 ip4:192.0.2") == E::bad_ip);
  CHECK(syntax_of("v=spf1 ip4:192.0.2.01") == E::bad_ip);
  CHECK(syntax_of("v=spf1 ip4:192.0.2.256") == E::bad_ip);
  CHECK(syntax_of("v=spf1 ip4:192.0.2.1:25") == E::bad_ip);
  CHECK(syntax_of("v=spf1 ip4:192.0.2.1.5") == E::bad_ip);
  CHECK(syntax_of("v=spf1 ip4:2001:db8::1") == E::bad_ip);
  CHECK(syntax_of("v=spf1 ip6::CAFE::BABE") == E::bad_ip);
  CHECK(syntax_of("v=spf1 ip6:fe80::1%eth0") == E::bad_ip);
  CHECK(syntax_of("v=spf1 ip6:1:2:3:4:5:6:7:8:9") == E::bad_ip);
  CHECK(syntax_of("v=spf1 a:foo-bar") == E::bad_domain_spec);
  CHECK(syntax_of("v=spf1 a:example.com:8080") == E::bad_domain_spec);
  CHECK(syntax_of("v=spf1 a:111.222.33.44") == E::bad_domain_spec);
  CHECK(syntax_of("v=spf1 a:museum.") == E::bad_domain_spec);
  CHECK(syntax_of("v=spf1 a:example.-com") == E::bad_domain_spec);
  CHECK(syntax_of("v=spf1 a:") == E::bad_domain_spec);
  CHECK(syntax_of("v=spf1 redirect=") == E::bad_domain_spec);
  CHECK(syntax_of("v=spf1 exp=-all") == E::bad_domain_spec);
  CHECK(syntax_of("v=spf1 include:example.com/24") == E::bad_domain_spec);
  CHECK(syntax_of("v=spf1 exists:%(ir).example.com") == E::bad_macro);
  CHECK(syntax_of("v=spf1 exists:foo%.example.com") == E::bad_macro);
  CHECK(syntax_of("v=spf1 exists:%{a}.example.com") == E::bad_macro);
  CHECK(syntax_of("v=spf1 exists:%{d0}.example.com") == E::bad_macro);
  CHECK(syntax_of("v=spf1 exists:%{d2r+x}.example.com") == E::bad_macro);
  CHECK(syntax_of("v=spf1 exists:%{d") == E::bad_macro);
  CHECK(syntax_of("v=spf1 foo=%") == E::bad_macro);
  CHECK(syntax_of("v=spf1 exp=%{r}.example.com") == E::macro_not_allowed);
  CHECK(syntax_of("v=spf1 a:%{c}.example.com") == E::macro_not_allowed);
  CHECK(syntax_of("v=spf1 redirect=a.example redirect=b.example") == E::duplicate_modifier);
  CHECK(syntax_of("v=spf1 exp=a.example EXP=b.example") == E::duplicate_modifier);

  // Accepted corner cases of the grammar.
  CHECK(spf::parse_record("v=spf1 a:foo:bar/baz.example.com/24"));
  CHECK(spf::parse_record("v=spf1 a:foo.example.xn--zckzah a:%{d} exists:%{l}%% x=%{c}%_%{t}"));
  CHECK(spf::parse_record("v=spf1 ip6:::1.1.1.1/0 ip4:0.0.0.0/0 a//0 mx/0"));
  CHECK(spf::parse_record("v=spf1 default=+ moo.cow-far_out=man:dog/cat"));
  CHECK(spf::parse_record("v=spf1 exists:%{d32r}.example.com"));
}

TEST_CASE("record limits: length and term count") {
  std::string many = "v=spf1";
  for (int i = 0; i < 10000; ++i) many += " a";
  CHECK(syntax_of(many) == spf::errc::too_long);
  spf::limits wide;
  wide.max_record = 1 << 20;
  auto r = spf::parse_record(many, wide);
  REQUIRE(!r);
  CHECK(r.error().code == spf::errc::too_many_terms);
  wide.max_terms = 20000;
  CHECK(spf::parse_record(many, wide));
  CHECK(make_error_code(spf::errc::too_long).message() == "record too long");
}

TEST_CASE("macro expansion: the examples of RFC 7208 7.4") {
  // The sender strong-bad@email.example.com; each expansion goes out as an "exists" query, which
  // the zone logs, so the test reads what check_host() really asked for.
  struct example {
    char const* macro;
    char const* v4;
    char const* v6;
  };
  std::vector<example> const examples{
      {"%{s}", "strong-bad@email.example.com", nullptr},
      {"%{o}", "email.example.com", nullptr},
      {"%{d}", "email.example.com", nullptr},
      {"%{d4}", "email.example.com", nullptr},
      {"%{d3}", "email.example.com", nullptr},
      {"%{d2}", "example.com", nullptr},
      {"%{d1}", "com", nullptr},
      {"%{dr}", "com.example.email", nullptr},
      {"%{d2r}", "example.email", nullptr},
      {"%{l}", "strong-bad", nullptr},
      {"%{l-}", "strong.bad", nullptr},
      {"%{lr}", "strong-bad", nullptr},
      {"%{lr-}", "bad.strong", nullptr},
      {"%{l1r-}", "strong", nullptr},
      {"%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com",
       "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"},
      {"%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com", nullptr},
      {"%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com", nullptr},
      {"%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com", nullptr},
      {"%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net", nullptr},
      {"%{L}.%{S}", "strong-bad.strong-bad%40email.example.com", nullptr},
      {"%{i}.%{h}", "192.0.2.3.mx.example.org", nullptr},
      {"x%%y%-z%_w.example", "x%y%20z w.example", nullptr},
  };
  for (auto const& e : examples) {
    for (bool v6 : {false, true}) {
      if (v6 && !e.v6) continue;
      static_dns d;
      d.add_txt("email.example.com", std::string("v=spf1 exists:") + e.macro + " -all");
      auto o = mail_from(d, v6 ? "2001:db8::cb01" : "192.0.2.3", "strong-bad@email.example.com");
      CAPTURE(e.macro);
      CHECK(o.result == status::fail);
      CHECK(queried(d, rr::a) == std::vector<std::string>{v6 ? e.v6 : e.v4});
    }
  }
}

TEST_CASE("macro expansion: truncation to 253 octets, and a huge sender costs no memory") {
  spf::macro_values v;
  v.l = std::string(100000, 'x') + ".a";
  auto m = spf::parse_macro_string("%{l}.%{l}.example.com", spf::macro_use::domain);
  REQUIRE(m);
  auto name = spf::expand_domain(*m, v);
  REQUIRE(name);  // the 100000-octet labels are cut off from the left
  CHECK(*name == "a.example.com");

  v.l = std::string(300, 'y');
  auto cut = spf::expand_domain(*m, v);  // both over-long labels cut off
  REQUIRE(cut);
  CHECK(*cut == "example.com");
  v.l = std::string(64, 'y');
  CHECK(!spf::expand_domain(*m, v));  // an over-long label left standing
  v.l = "a..b";
  CHECK(!spf::expand_domain(*m, v));  // empty label
  v.l = std::string(63, 'z');
  auto ok = spf::expand_domain(*m, v);
  REQUIRE(ok);
  CHECK(*ok == std::string(63, 'z') + "." + std::string(63, 'z') + ".example.com");

  v.l = std::string(5000, 'q');
  auto text = spf::parse_macro_string("%{l} %{L}", spf::macro_use::explanation);
  REQUIRE(text);
  CHECK(spf::expand_text(*text, v, 100) == std::string(100, 'q'));
  CHECK(spf::expand_text(*text, v, 0).empty());
}

TEST_CASE("check_host: mechanisms, qualifiers, CIDR and the IPv4-mapped client") {
  static_dns d;
  d.add_txt("example.com", "v=spf1 a/30 mx//64 -ip4:198.51.100.7 ip4:198.51.100.0/24 ip6:2001:db8:aa::/48 "
                           "ptr:ptr.example.com ~exists:%{ir}.soft.example.com ?all");
  d.add_address("example.com", "192.0.2.8").add_mx("example.com", 10, "mx1.example.com");
  d.add_address("mx1.example.com", "2001:db8:bb:cc::1");
  d.add_address("4.3.2.1.soft.example.com", "127.0.0.2");
  d.add_ptr(ip("203.0.113.9"), "host.ptr.example.com").add_address("host.ptr.example.com", "203.0.113.9");
  d.add_ptr(ip("203.0.113.10"), "fake.ptr.example.com").add_address("fake.ptr.example.com", "203.0.113.99");

  struct row {
    char const* client;
    status expected;
    char const* mechanism;
  };
  for (auto const& r : std::vector<row>{
           {"192.0.2.9", status::pass, "a/30"},
           {"::ffff:192.0.2.11", status::pass, "a/30"},
           {"192.0.2.12", status::neutral, "?all"},
           {"2001:db8:bb:cc::ffff", status::pass, "mx//64"},
           {"198.51.100.7", status::fail, "-ip4:198.51.100.7"},
           {"198.51.100.200", status::pass, "ip4:198.51.100.0/24"},
           {"2001:db8:aa:1::1", status::pass, "ip6:2001:db8:aa::/48"},
           {"203.0.113.9", status::pass, "ptr:ptr.example.com"},
           {"203.0.113.10", status::neutral, "?all"},
           {"1.2.3.4", status::softfail, "~exists:%{ir}.soft.example.com"},
       }) {
    CAPTURE(r.client);
    auto o = mail_from(d, r.client, "someone@example.com");
    CHECK(o.result == r.expected);
    CHECK(o.mechanism == r.mechanism);
    CHECK(o.problem.empty());
    CHECK(o.domain == "example.com");
  }
  auto mapped = mail_from(d, "::ffff:192.0.2.11", "x@example.com");
  CHECK(mapped.ip == ip("192.0.2.11"));
}

TEST_CASE("check_host: none, record selection, include and redirect semantics, DNS failures") {
  static_dns d;
  d.add_txt("none.example", "not spf").add_txt("none.example", "v=spf10 -all");
  d.add_txt("two.example", "v=spf1 -all").add_txt("two.example", "V=SPF1 +all");
  d.add_txt("slow.example", "v=spf1 include:timeout.example -all").set_error("timeout.example", make_error_code(net::dns::errc::timeout));
  d.add_txt("inc.example", "v=spf1 include:pass.example include:fail.example include:none.example -all");
  d.add_txt("pass.example", "v=spf1 ip4:192.0.2.1 -all").add_txt("fail.example", "v=spf1 -all");
  d.add_txt("red.example", "v=spf1 ip4:192.0.2.77 redirect=pass.example");
  d.add_txt("redall.example", "v=spf1 redirect=pass.example ?all");
  d.add_txt("rednone.example", "v=spf1 redirect=none.example");
  d.add_txt("exists-slow.example", "v=spf1 exists:timeout.example -all");
  d.add_txt("mx-slow.example", "v=spf1 mx -all").add_mx("mx-slow.example", 1, "timeout.example");

  CHECK(mail_from(d, "192.0.2.1", "a@none.example").result == status::none);
  CHECK(mail_from(d, "192.0.2.1", "a@nxdomain.example").result == status::none);
  CHECK(mail_from(d, "192.0.2.1", "a@[192.0.2.1]").result == status::none);
  CHECK(mail_from(d, "192.0.2.1", "a@localhost").result == status::none);
  CHECK(mail_from(d, "192.0.2.1", "a@x..example").result == status::none);
  CHECK(mail_from(d, "192.0.2.1", "a@" + std::string(64, 'l') + ".example").result == status::none);
  CHECK(d.queries(rr::txt, "nxdomain.example") == 1);  // the malformed ones made no query
  CHECK(d.queries() == 2);

  auto two = mail_from(d, "192.0.2.1", "a@two.example");
  CHECK(two.result == status::permerror);
  CHECK(two.problem.find("more than one") != std::string::npos);

  auto slow = mail_from(d, "192.0.2.1", "a@slow.example");
  CHECK(slow.result == status::temperror);
  CHECK(!slow.problem.empty());
  CHECK(mail_from(d, "192.0.2.1", "a@exists-slow.example").result == status::temperror);
  CHECK(mail_from(d, "192.0.2.1", "a@mx-slow.example").result == status::temperror);

  CHECK(mail_from(d, "192.0.2.1", "a@inc.example").result == status::pass);
  auto inc_none = mail_from(d, "192.0.2.9", "a@inc.example");  // pass.example -> fail: no match; then none
  CHECK(inc_none.result == status::permerror);
  CHECK(inc_none.problem.find("none.example") != std::string::npos);

  CHECK(mail_from(d, "192.0.2.1", "a@red.example").result == status::pass);
  CHECK(mail_from(d, "192.0.2.2", "a@red.example").result == status::fail);
  CHECK(mail_from(d, "192.0.2.2", "a@redall.example").result == status::neutral);  // "all" wins over redirect
  CHECK(mail_from(d, "192.0.2.2", "a@rednone.example").result == status::permerror);
}

TEST_CASE("check_mail_from and check_helo: null sender, no local part, identities") {
  static_dns d;
  d.add_txt("helo.example", "v=spf1 ip4:192.0.2.1 -all exp=why.helo.example");
  d.add_txt("why.helo.example", "%{s} %{l} %{o} %{d} %{h} from %{c} at %{r} t=%{t}");
  spf::options opts;
  opts.receiver = "mx.receiver.example";
  opts.now = 1700000000;

  asio::io_context io;
  auto null = mail_from(d, "192.0.2.2", "", "helo.example", opts);
  CHECK(null.result == status::fail);
  CHECK(null.identity == spf::identity::mailfrom);
  CHECK(null.sender == "postmaster@helo.example");
  CHECK(null.explanation ==
        "postmaster@helo.example postmaster helo.example helo.example helo.example from 192.0.2.2 at "
        "mx.receiver.example t=1700000000");

  auto nolocal = mail_from(d, "192.0.2.1", "@helo.example", "other.example", opts);
  CHECK(nolocal.result == status::pass);
  CHECK(nolocal.sender == "postmaster@helo.example");
  CHECK(nolocal.explanation.empty());

  auto helo = testing::run(io, spf::check_helo(d, ip("192.0.2.1"), "helo.example", opts));
  CHECK(helo.result == status::pass);
  CHECK(helo.identity == spf::identity::helo);
  CHECK(helo.sender == "postmaster@helo.example");
  auto literal = testing::run(io, spf::check_helo(d, ip("192.0.2.1"), "[192.0.2.1]", opts));
  CHECK(literal.result == status::none);
  auto single = testing::run(io, spf::check_helo(d, ip("192.0.2.1"), "OEMCOMPUTER", opts));
  CHECK(single.result == status::none);

  auto host = testing::run(io, spf::check_host(d, ip("192.0.2.3"), "helo.example", "who@else.example", "h.example", opts));
  CHECK(host.result == status::fail);
  CHECK(host.explanation.rfind("who@else.example who else.example helo.example h.example from 192.0.2.3", 0) == 0);
}

TEST_CASE("hostile: include and redirect loops end in permerror after at most 10 lookups") {
  static_dns d;
  d.add_txt("loop-a.example", "v=spf1 include:loop-b.example -all");
  d.add_txt("loop-b.example", "v=spf1 include:loop-a.example -all");
  d.add_txt("self.example", "v=spf1 redirect=self.example");
  d.add_txt("mutual1.example", "v=spf1 ip4:192.0.2.1 redirect=mutual2.example");
  d.add_txt("mutual2.example", "v=spf1 ip4:192.0.2.2 redirect=mutual1.example");
  for (auto const* domain : {"loop-a.example", "self.example", "mutual1.example"}) {
    d.clear_log();
    auto o = mail_from(d, "192.0.2.9", std::string("x@") + domain);
    CAPTURE(domain);
    CHECK(o.result == status::permerror);
    CHECK(o.dns_mechanisms == 11);
    CHECK(d.queries(rr::txt) == 11);  // the first record plus one per include/redirect allowed
    CHECK(d.queries() == 11);
  }
  // No loop, but a chain of fresh names deeper than the limits allow.
  static_dns deep;
  std::string name = "deep.example";
  for (int i = 0; i < 40; ++i) {
    std::string next = "d" + std::to_string(i + 1) + ".example";
    deep.add_txt(name, "v=spf1 include:" + next + " -all");
    name = next;
  }
  deep.add_txt(name, "v=spf1 +all");
  CHECK(mail_from(deep, "192.0.2.1", "x@deep.example").result == status::permerror);
  CHECK(deep.queries() == 11);
  spf::options roomy;
  roomy.limits.dns_mechanisms = 1000;
  deep.clear_log();
  auto o = mail_from(deep, "192.0.2.1", "x@deep.example", "h.example", roomy);
  CHECK(o.result == status::permerror);  // max_depth 20 even when the lookup limit is raised
  CHECK(o.problem.find("deep") != std::string::npos);
  CHECK(deep.queries() == 21);
  roomy.limits.max_depth = 100;
  CHECK(mail_from(deep, "192.0.2.1", "x@deep.example", "h.example", roomy).result == status::pass);
}

TEST_CASE("hostile: void lookups, MX and PTR explosions") {
  static_dns d;
  std::string voids = "v=spf1";
  for (int i = 0; i < 9; ++i) voids += " a:void" + std::to_string(i) + ".example";
  d.add_txt("voids.example", voids + " -all");
  auto o = mail_from(d, "192.0.2.1", "x@voids.example");
  CHECK(o.result == status::permerror);
  CHECK(o.void_lookups == 3);
  CHECK(d.queries(rr::a) == 3);

  d.add_txt("two-voids.example", "v=spf1 a:void1.example exists:void2.example mx:void3.example/24 +all");
  d.add_name("void3.example");
  CHECK(mail_from(d, "192.0.2.1", "x@two-voids.example").result == status::permerror);
  d.add_txt("ok-voids.example", "v=spf1 a:void1.example exists:void2.example +all");
  CHECK(mail_from(d, "192.0.2.1", "x@ok-voids.example").result == status::pass);

  d.add_txt("many-mx.example", "v=spf1 mx -all");
  for (int i = 0; i < 11; ++i) d.add_mx("many-mx.example", static_cast<std::uint16_t>(i), "mx" + std::to_string(i) + ".example");
  d.clear_log();
  auto mx = mail_from(d, "192.0.2.1", "x@many-mx.example");
  CHECK(mx.result == status::permerror);
  CHECK(d.queries(rr::a) == 0);
  spf::options more;
  more.limits.mx_names = 11;
  CHECK(mail_from(d, "192.0.2.1", "x@many-mx.example", "h.example", more).result == status::fail);

  // 50 PTR names under the target, only the last one valid: never looked at.
  d.add_txt("many-ptr.example", "v=spf1 ptr -all");
  for (int i = 0; i < 50; ++i) {
    std::string n = "h" + std::to_string(i) + ".many-ptr.example";
    d.add_ptr(ip("192.0.2.50"), n);
    d.add_address(n, i == 49 ? "192.0.2.50" : "192.0.2.51");
  }
  d.clear_log();
  CHECK(mail_from(d, "192.0.2.50", "x@many-ptr.example").result == status::fail);
  CHECK(d.queries(rr::a) == 10);
  CHECK(d.queries(rr::ptr) == 1);
}

TEST_CASE("hostile: 10k terms, huge macro expansions, malformed networks, all bounded") {
  static_dns d;
  std::string big = "v=spf1";
  for (int i = 0; i < 10000; ++i) big += " ip4:192.0.2." + std::to_string(i % 250);
  d.add_txt("big.example", big);
  auto t0 = std::chrono::steady_clock::now();
  auto o = mail_from(d, "192.0.2.1", "x@big.example");
  CHECK(o.result == status::permerror);
  CHECK(o.problem.find("too long") != std::string::npos);
  spf::options roomy;
  roomy.limits.max_record = 1 << 20;
  CHECK(mail_from(d, "192.0.2.1", "x@big.example", "h.example", roomy).result == status::permerror);
  roomy.limits.max_terms = 10000;
  CHECK(mail_from(d, "192.0.2.1", "x@big.example", "h.example", roomy).result == status::pass);

  // A record of macros, each expanding the 2000-octet sender: names stay <= 253 octets.
  std::string macros = "v=spf1 exists:";
  for (int i = 0; i < 1000; ++i) macros += i % 2 ? "%{s}" : "%{L}";
  d.add_txt("macro.example", macros + ".example -all");
  std::string local(2000, 'l');
  d.clear_log();
  auto m = mail_from(d, "192.0.2.1", local + "@macro.example");
  CHECK(m.result == status::fail);
  REQUIRE(d.queries(rr::a) == 1);
  CHECK(queried(d, rr::a)[0].size() <= 253);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20));

  // The explanation of a fail is cut at max_explanation.
  d.add_txt("exp.example", "v=spf1 -all exp=why.example");
  d.add_txt("why.example", "%{l}%{l}%{l}%{l}");
  auto e = mail_from(d, "192.0.2.1", local + "@exp.example");
  CHECK(e.result == status::fail);
  CHECK(e.explanation.size() == spf::limits{}.max_explanation);

  for (auto const* rec : {"v=spf1 ip4:1.2.3.4/33", "v=spf1 ip4:1.2.3", "v=spf1 ip4:1.2.3.4:25", "v=spf1 ip4:1.2.3.4//32",
                          "v=spf1 ip6:::1/129", "v=spf1 ip6::1", "v=spf1 ip6:1::2::3", "v=spf1 a/-1", "v=spf1 a//",
                          "v=spf1 mx/32/", "v=spf1 ip4:999.1.1.1", "v=spf1 ip4:1.2.3.4/ +all", "v=spf1 a/08"}) {
    static_dns z;
    z.add_txt("bad.example", rec);
    CAPTURE(rec);
    CHECK(mail_from(z, "1.2.3.4", "x@bad.example").result == status::permerror);
    CHECK(z.queries() == 1);
  }
}

TEST_CASE("explanations: only for fail, only the deciding record's, ignored when broken") {
  static_dns d;
  d.add_txt("e.example", "v=spf1 ip4:192.0.2.1 -ip4:192.0.2.2 ~all exp=%{d}.why.example");
  d.add_txt("e.example.why.example", "%{i} is not one of %{d}'s");
  CHECK(mail_from(d, "192.0.2.2", "x@e.example").explanation == "192.0.2.2 is not one of e.example's");
  CHECK(mail_from(d, "192.0.2.3", "x@e.example").explanation.empty());  // softfail
  CHECK(mail_from(d, "192.0.2.1", "x@e.example").explanation.empty());

  d.add_txt("broken.example", "v=spf1 -all exp=bad.why.example");
  d.add_txt("bad.why.example", "100%");
  CHECK(mail_from(d, "192.0.2.1", "x@broken.example").explanation.empty());
  d.add_txt("eight.example", "v=spf1 -all exp=eight.why.example");
  d.add_txt("eight.why.example", "caf\xc3\xa9");
  CHECK(mail_from(d, "192.0.2.1", "x@eight.example").explanation.empty());
  d.add_txt("gone.example", "v=spf1 a:nx1.example a:nx2.example -all exp=nx3.example");
  auto gone = mail_from(d, "192.0.2.1", "x@gone.example");
  CHECK(gone.result == status::fail);  // the exp lookup is no third void lookup
  CHECK(gone.void_lookups == 2);
}

TEST_CASE("Received-SPF and Authentication-Results") {
  static_dns d;
  d.add_txt("example.com", "v=spf1 ip4:192.0.2.1 -all");
  auto pass = mail_from(d, "192.0.2.1", "user@example.com", "mail.example.com");
  CHECK(spf::received_spf(pass, "mx.example.org") ==
        "pass (mx.example.org: domain of user@example.com designates 192.0.2.1 as permitted sender)\r\n"
        " receiver=mx.example.org;\r\n client-ip=192.0.2.1;\r\n envelope-from=user@example.com;\r\n"
        " helo=mail.example.com;\r\n identity=mailfrom;\r\n mechanism=\"ip4:192.0.2.1\";");
  CHECK(spf::authentication_results(pass) == "spf=pass smtp.mailfrom=user@example.com");

  d.add_txt("bad.example", "v=spf1 a:(x)");
  auto hostile = mail_from(d, "2001:db8::1", "\"we\\ird\r\n\"@bad.example", "evil\r\nX-Injected: 1");
  CHECK(hostile.result == status::permerror);
  auto field = spf::received_spf(hostile, "");
  auto ar = spf::authentication_results(hostile);
  for (auto const& s : {field, ar}) {
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '\r') {
        CHECK(s.substr(i, 3) == "\r\n ");  // only folds
      } else if (s[i] != '\n') {
        CHECK((s[i] >= 0x20 && s[i] < 0x7f));
      }
    }
  }
  CHECK(field.rfind("permerror (", 0) == 0);
  CHECK(field.find("helo=\"evil??X-Injected: 1\";") != std::string::npos);
  CHECK(field.find("problem=") != std::string::npos);
  CHECK(ar.rfind("spf=permerror (", 0) == 0);
  CHECK(ar.find("smtp.mailfrom=\"\\\"we\\\\ird??\\\"@bad.example\"") != std::string::npos);

  asio::io_context io;
  auto helo = testing::run(io, spf::check_helo(d, ip("192.0.2.1"), "example.com"));
  CHECK(spf::authentication_results(helo) == "spf=pass smtp.helo=example.com");
  CHECK(spf::received_spf(helo, "r.example").find("identity=helo;") != std::string::npos);
  CHECK(spf::received_spf(helo, "r.example").find("envelope-from") == std::string::npos);
  helo.helo = std::string(300, 'h');
  CHECK(spf::authentication_results(helo) == "spf=pass");

  for (auto s : {status::none, status::neutral, status::pass, status::fail, status::softfail, status::temperror,
                 status::permerror}) {
    spf::outcome o;
    o.result = s;
    o.sender = "a@b.example";
    CHECK(spf::received_spf(o, "r").rfind(std::string(spf::to_string(s)) + " (r: ", 0) == 0);
  }
}

TEST_CASE("time limit: a slow DNS makes temperror once time_limit has passed") {
  static_dns d;
  d.set_delay(std::chrono::milliseconds(40));
  d.add_txt("slow.example", "v=spf1 include:i1.slow.example include:i2.slow.example include:i3.slow.example "
                            "include:i4.slow.example include:i5.slow.example -all");
  for (int i = 1; i <= 5; ++i) d.add_txt("i" + std::to_string(i) + ".slow.example", "v=spf1 a:a.slow.example -all");
  d.add_address("a.slow.example", "192.0.2.99");
  spf::options opts;
  opts.time_limit = std::chrono::milliseconds(150);
  auto t0 = std::chrono::steady_clock::now();
  auto o = mail_from(d, "192.0.2.1", "x@slow.example", "h.example", opts);
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(o.result == status::temperror);
  CHECK(o.problem.find("time limit") != std::string::npos);
  CHECK(d.queries() < 11);  // stopped early: the whole check would make 11
  CHECK(took < std::chrono::seconds(2));  // about 150 ms + one 40 ms answer; slack for a loaded machine
  opts.time_limit = std::chrono::milliseconds(0);  // no limit: the same check runs to its end
  d.clear_log();
  CHECK(mail_from(d, "192.0.2.1", "x@slow.example", "h.example", opts).result == status::fail);
  CHECK(d.queries() == 11);
}
