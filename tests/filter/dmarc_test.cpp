// DMARC: the record parser (RFC 7489 appendix B examples and 6.3 defaults), policy discovery
// against a fake TXT lookup, the From domain (6.6.1), alignment (3.1 examples), evaluation with
// pct sampling and sp, the Authentication-Results entry, and hostile input.
#include <doctest/doctest.h>

#include <asio/io_context.hpp>
#include <map>
#include <string>
#include <vector>

#include "mailroom/filter/dmarc.hpp"
#include "mailroom/net/dns/resolver.hpp"
#include "support/helpers.hpp"

using namespace mailroom;
using namespace mailroom::filter;
using dmarc::alignment;
using dmarc::outcome;
using dmarc::policy;

namespace {

public_suffix_list const& test_psl() {
  static public_suffix_list const psl = *public_suffix_list::parse("com\norg\nnet\nuk\nco.uk\n*.ck\n");
  return psl;
}

// Answers TXT queries from a table; names not in it are NXDOMAIN.
struct fake_dns {
  std::map<std::string, std::vector<std::string>> txt;
  std::map<std::string, std::error_code> errors;
  std::vector<std::string> asked;

  dmarc::txt_lookup lookup() {
    return [this](std::string const& name) -> task<result<std::vector<std::string>>> {
      asked.push_back(name);
      if (auto e = errors.find(name); e != errors.end()) co_return fail(e->second);
      auto it = txt.find(name);
      if (it == txt.end()) co_return fail(net::dns::errc::nxdomain);
      co_return it->second;
    };
  }
};

dmarc::auth_results spf(std::string domain, bool pass) {
  dmarc::auth_results a;
  a.spf_domain = std::move(domain);
  a.spf_pass = pass;
  return a;
}

dmarc::dkim_signature sig(std::string domain, std::string selector, bool pass) {
  dmarc::dkim_signature s;
  s.domain = std::move(domain);
  s.selector = std::move(selector);
  s.pass = pass;
  return s;
}

template <class T>
T run(task<T> t) {
  asio::io_context io;
  return testing::run(io, std::move(t));
}

}  // namespace

TEST_CASE("dmarc: appendix B records and defaults") {
  auto r = dmarc::parse_record("v=DMARC1; p=none; rua=mailto:dmarc-feedback@example.com");
  REQUIRE(r);
  CHECK(r->p == policy::none);
  CHECK(!r->sp);
  CHECK(r->adkim == alignment::relaxed);
  CHECK(r->aspf == alignment::relaxed);
  CHECK(r->pct == 100);
  REQUIRE(r->rua.size() == 1);
  CHECK(r->rua[0] == dmarc::report_uri{"mailto:dmarc-feedback@example.com", 0});
  CHECK(r->ruf.empty());
  CHECK(r->fo_all);
  CHECK(!r->fo_any);
  CHECK(r->rf == std::vector<std::string>{"afrf"});
  CHECK(r->ri == 86400);
  CHECK(!r->p_assumed);

  r = dmarc::parse_record(
      "v=DMARC1; p=none; rua=mailto:dmarc-feedback@example.com; ruf=mailto:auth-reports@thirdparty.example.net");
  REQUIRE(r);
  REQUIRE(r->ruf.size() == 1);
  CHECK(r->ruf[0].uri == "mailto:auth-reports@thirdparty.example.net");

  r = dmarc::parse_record(
      "v=DMARC1; p=quarantine; rua=mailto:dmarc-feedback@example.com,mailto:tld-test@thirdparty.example.net!10m; pct=25");
  REQUIRE(r);
  CHECK(r->p == policy::quarantine);
  CHECK(r->pct == 25);
  REQUIRE(r->rua.size() == 2);
  CHECK(r->rua[1] == dmarc::report_uri{"mailto:tld-test@thirdparty.example.net", 10u << 20});

  r = dmarc::parse_record("v=DMARC1;p=Reject;SP=quarantine;adkim=s;aspf=S;fo=1:d:s;rf=afrf;ri=3600;");
  REQUIRE(r);
  CHECK(r->p == policy::reject);
  CHECK(r->sp == policy::quarantine);
  CHECK(r->subdomain_policy() == policy::quarantine);
  CHECK(r->adkim == alignment::strict);
  CHECK(r->aspf == alignment::strict);
  CHECK(!r->fo_all);
  CHECK(r->fo_any);
  CHECK(r->fo_dkim);
  CHECK(r->fo_spf);
  CHECK(r->ri == 3600);
}

TEST_CASE("dmarc: invalid values fall back to defaults; invalid records are refused") {
  // Bad optional values: defaults.
  auto r = dmarc::parse_record("v=DMARC1; p=reject; adkim=x; aspf=; pct=250; fo=2; rf=; ri=-1; future=1; junk");
  REQUIRE(r);
  CHECK(r->adkim == alignment::relaxed);
  CHECK(r->aspf == alignment::relaxed);
  CHECK(r->pct == 100);
  CHECK(r->fo_all);
  CHECK(!r->fo_any);
  CHECK(r->rf == std::vector<std::string>{"afrf"});
  CHECK(r->ri == 86400);
  for (char const* pct : {"pct=-5", "pct=99999999999999999999999", "pct=1e2", "pct=50%"}) {
    CAPTURE(pct);
    r = dmarc::parse_record(std::string("v=DMARC1; p=reject; ") + pct);
    REQUIRE(r);
    CHECK(r->pct == 100);
  }
  r = dmarc::parse_record("v=DMARC1; p=reject; pct=0");
  REQUIRE(r);
  CHECK(r->pct == 0);

  // The first of a repeated tag counts.
  r = dmarc::parse_record("v=DMARC1; p=none; p=reject");
  REQUIRE(r);
  CHECK(r->p == policy::none);

  // v=DMARC1 first, exactly.
  for (char const* bad : {"", "p=reject; v=DMARC1", "v=DMARC2; p=reject", "v=dmarc1; p=reject", "v=DMARC10; p=reject",
                          " v=DMARC1; p=reject", "v=spf1 -all"}) {
    CAPTURE(bad);
    r = dmarc::parse_record(bad);
    REQUIRE(!r);
    CHECK(r.error() == dmarc::errc::not_dmarc);
  }
  CHECK(dmarc::parse_record("v = DMARC1 ;p=none"));
  // No valid p, or an invalid sp: unusable, unless rua is valid (6.6.3): then p=none.
  for (char const* bad : {"v=DMARC1", "v=DMARC1; p=block", "v=DMARC1; p=reject; sp=maybe", "v=DMARC1; sp=none; rua=nothing"}) {
    CAPTURE(bad);
    r = dmarc::parse_record(bad);
    REQUIRE(!r);
    CHECK(r.error() == dmarc::errc::no_policy);
  }
  r = dmarc::parse_record("v=DMARC1; p=block; sp=reject; rua=mailto:r@example.com");
  REQUIRE(r);
  CHECK(r->p == policy::none);
  CHECK(!r->sp);
  CHECK(r->p_assumed);
  r = dmarc::parse_record("v=DMARC1; rua=bad uri, mailto:a@example.com!5x, mailto:b@example.com!2K");
  REQUIRE(r);
  CHECK(r->p_assumed);
  REQUIRE(r->rua.size() == 1);
  CHECK(r->rua[0] == dmarc::report_uri{"mailto:b@example.com", 2048});
}

TEST_CASE("dmarc: hostile records stay bounded") {
  std::string many = "v=DMARC1; p=reject";
  for (int i = 0; i < 10000; ++i) many += "; t" + std::to_string(i) + "=x";
  auto r = dmarc::parse_record(many);
  REQUIRE(!r);
  CHECK(r.error() == dmarc::errc::too_long);
  dmarc::record_limits big;
  big.max_length = many.size();
  r = dmarc::parse_record(many, big);
  REQUIRE(!r);
  CHECK(r.error() == dmarc::errc::too_many_tags);

  std::string tags = "v=DMARC1; p=reject";
  for (int i = 0; i < 100; ++i) tags += ";x";
  r = dmarc::parse_record(tags);
  REQUIRE(!r);
  CHECK(r.error() == dmarc::errc::too_many_tags);

  std::string uris = "v=DMARC1; p=none; rua=";
  for (int i = 0; i < 500; ++i) uris += "mailto:r" + std::to_string(i) + "@example.com,";
  big.max_length = uris.size();
  r = dmarc::parse_record(uris, big);
  REQUIRE(r);
  CHECK(r->rua.size() == 16);
  r = dmarc::parse_record("v=DMARC1; p=none; rua=mailto:a@example.com!99999999999999999999t,mailto:b@example.com!16777216t");
  REQUIRE(r);
  CHECK(r->rua.empty());  // sizes that overflow 64 bits make the URI invalid
}

TEST_CASE("dmarc: alignment (RFC 7489 3.1 examples)") {
  auto const& psl = test_psl();
  // 3.1.1 DKIM: d=example.com with From example.com aligns both ways; a subdomain only relaxed.
  CHECK(dmarc::aligned("example.com", "example.com", alignment::strict, psl));
  CHECK(dmarc::aligned("example.com", "news.example.com", alignment::relaxed, psl));
  CHECK(!dmarc::aligned("example.com", "news.example.com", alignment::strict, psl));
  CHECK(dmarc::aligned("news.example.com", "example.com", alignment::relaxed, psl));
  // 3.1.2 SPF: MAIL FROM child.example.com with From example.com.
  CHECK(dmarc::aligned("child.example.com", "example.com", alignment::relaxed, psl));
  CHECK(!dmarc::aligned("child.example.com", "example.com", alignment::strict, psl));
  CHECK(dmarc::aligned("Example.COM.", "example.com", alignment::strict, psl));
  // Different organizations; a public suffix shared is not enough.
  CHECK(!dmarc::aligned("example.net", "example.com", alignment::relaxed, psl));
  CHECK(!dmarc::aligned("a.example.co.uk", "b.other.co.uk", alignment::relaxed, psl));
  CHECK(dmarc::aligned("a.example.co.uk", "b.example.co.uk", alignment::relaxed, psl));
  CHECK(!dmarc::aligned("", "example.com", alignment::relaxed, psl));
}

TEST_CASE("dmarc: the From domain (6.6.1)") {
  CHECK(*dmarc::from_domain("Joe <joe@Example.COM.>") == "example.com");
  CHECK(*dmarc::from_domain("joe@example.com (comment)") == "example.com");
  CHECK(*dmarc::from_domain("Team: joe@example.com;") == "example.com");
  auto err = [](std::string_view v) { return dmarc::from_domain(v).error(); };
  CHECK(err("") == dmarc::errc::no_from);
  CHECK(err("undisclosed-recipients:;") == dmarc::errc::no_from);
  CHECK(err("a@example.com, b@example.org") == dmarc::errc::multiple_from);
  CHECK(err("joe") == dmarc::errc::no_from_domain);
  CHECK(err("joe@[192.0.2.1]") == dmarc::errc::bad_from_domain);
  CHECK(err("joe@a..com") == dmarc::errc::bad_from_domain);
  CHECK(err("joe@.com") == dmarc::errc::bad_from_domain);
  std::string many;
  for (int i = 0; i < 100000; ++i) many += "u" + std::to_string(i) + "@example.com, ";
  CHECK(err(many) == dmarc::errc::multiple_from);
  // Empty groups as padding cannot push a second mailbox out of sight.
  std::string padded = "a@evil.example";
  for (int i = 0; i < 600; ++i) padded += ", g" + std::to_string(i) + ":;";
  CHECK(err(padded + ", ceo@bank.example") == dmarc::errc::multiple_from);
  std::vector<std::string_view> two{"a@example.com", "a@example.com"};
  CHECK(dmarc::from_domain(std::span<std::string_view const>(two)).error() == dmarc::errc::multiple_from);
  CHECK(dmarc::from_domain(std::span<std::string_view const>()).error() == dmarc::errc::no_from);
}

TEST_CASE("dmarc: discovery at the From domain, then the organizational domain") {
  auto const& psl = test_psl();
  fake_dns dns;
  dns.txt["_dmarc.example.com"] = {"v=spf1 -all", "v=DMARC1; p=reject; sp=quarantine"};
  dns.txt["_dmarc.sub.example.com"] = {"some other text"};

  auto d = run(dmarc::discover("Mail.Sub.Example.com", psl, dns.lookup()));
  CHECK(dns.asked == std::vector<std::string>{"_dmarc.mail.sub.example.com", "_dmarc.example.com"});
  REQUIRE(d.state == dmarc::discovery::status::found);
  CHECK(d.domain == "example.com");
  CHECK(d.organizational);
  CHECK(d.rec.sp == policy::quarantine);

  dns.asked.clear();
  d = run(dmarc::discover("example.com", psl, dns.lookup()));
  CHECK(dns.asked == std::vector<std::string>{"_dmarc.example.com"});
  REQUIRE(d.state == dmarc::discovery::status::found);
  CHECK(!d.organizational);

  // A non-DMARC TXT at the From domain does not stop the fallback; an exact match wins.
  dns.txt["_dmarc.sub.example.com"] = {"v=DMARC1; p=none"};
  d = run(dmarc::discover("sub.example.com", psl, dns.lookup()));
  REQUIRE(d.state == dmarc::discovery::status::found);
  CHECK(d.domain == "sub.example.com");
  CHECK(d.rec.p == policy::none);

  // Several records: no policy. An invalid one: no policy, and no fallback either.
  dns.txt["_dmarc.sub.example.com"] = {"v=DMARC1; p=none", "v=DMARC1; p=reject"};
  d = run(dmarc::discover("sub.example.com", psl, dns.lookup()));
  CHECK(d.state == dmarc::discovery::status::none);
  CHECK(d.error == dmarc::errc::multiple_records);
  dns.txt["_dmarc.sub.example.com"] = {"v=DMARC1; p=bogus"};
  d = run(dmarc::discover("sub.example.com", psl, dns.lookup()));
  CHECK(d.state == dmarc::discovery::status::none);
  CHECK(d.error == dmarc::errc::no_policy);

  // Nothing anywhere: none. no_data counts as absent; timeouts are temperror.
  dns.asked.clear();
  d = run(dmarc::discover("example.org", psl, dns.lookup()));
  CHECK(d.state == dmarc::discovery::status::none);
  CHECK(dns.asked == std::vector<std::string>{"_dmarc.example.org"});
  dns.errors["_dmarc.a.example.net"] = make_error_code(net::dns::errc::no_data);
  dns.errors["_dmarc.example.net"] = make_error_code(net::dns::errc::timeout);
  d = run(dmarc::discover("a.example.net", psl, dns.lookup()));
  CHECK(d.state == dmarc::discovery::status::temperror);
  CHECK(d.error == net::dns::errc::timeout);
  dns.errors["_dmarc.example.net"] = make_error_code(net::dns::errc::servfail);
  d = run(dmarc::discover("example.net", psl, dns.lookup()));
  CHECK(d.state == dmarc::discovery::status::temperror);
}

TEST_CASE("dmarc: evaluation, sp, pct sampling and the Authentication-Results entry") {
  auto const& psl = test_psl();
  fake_dns dns;
  dns.txt["_dmarc.example.com"] = {"v=DMARC1; p=reject; sp=quarantine; pct=50; aspf=s"};
  dns.txt["_dmarc.example.org"] = {"v=DMARC1; p=reject"};

  dmarc::auth_results spf_child = spf("child.example.com", true);
  unsigned calls = 0;
  unsigned roll = 0;
  dmarc::random_source rnd = [&] {
    ++calls;
    return roll;
  };

  // aspf=s: SPF for a child domain does not align; no DKIM: fail; roll 10 < 50: reject applies.
  auto e = run(dmarc::check({"joe@example.com"}, spf_child, psl, dns.lookup(), rnd));
  CHECK(e.result == outcome::fail);
  CHECK(!e.spf_aligned);
  CHECK(e.requested == policy::reject);
  CHECK(e.disposition == policy::reject);
  CHECK(!e.sampled_out);
  CHECK(calls == 1);
  CHECK(dmarc::authentication_results(e) == "dmarc=fail (p=reject sp=quarantine dis=reject) header.from=example.com");

  // Outside pct: one step lower.
  roll = 50;
  e = run(dmarc::check({"joe@example.com"}, spf_child, psl, dns.lookup(), rnd));
  CHECK(e.disposition == policy::quarantine);
  CHECK(e.sampled_out);

  // A subdomain gets sp; outside pct, quarantine becomes none.
  roll = 10;
  e = run(dmarc::check({"joe@news.example.com"}, spf_child, psl, dns.lookup(), rnd));
  CHECK(e.organizational);
  CHECK(e.requested == policy::quarantine);
  CHECK(e.disposition == policy::quarantine);
  roll = 99;
  e = run(dmarc::check({"joe@news.example.com"}, spf_child, psl, dns.lookup(), rnd));
  CHECK(e.disposition == policy::none);
  CHECK(e.sampled_out);

  // Relaxed DKIM alignment passes; failing and unaligned signatures do not.
  calls = 0;
  dmarc::auth_results dkim = spf("other.net", true);
  dkim.dkim = {sig("example.net", "s1", true), sig("example.com", "s2", false), sig("mail.example.com", "s3", true)};
  e = run(dmarc::check({"joe@example.com"}, dkim, psl, dns.lookup(), rnd));
  CHECK(e.result == outcome::pass);
  CHECK(e.dkim_aligned);
  CHECK(e.dkim_domain == "mail.example.com");
  CHECK(e.disposition == policy::none);
  CHECK(calls == 0);
  CHECK(dmarc::authentication_results(e) == "dmarc=pass (p=reject sp=quarantine dis=none) header.from=example.com");

  // SPF alignment (relaxed at example.org) passes; SPF that did not pass does not count.
  e = run(dmarc::check({"joe@example.org"}, spf("bounce.example.org", true), psl, dns.lookup(), rnd));
  CHECK(e.result == outcome::pass);
  CHECK(e.spf_aligned);
  e = run(dmarc::check({"joe@example.org"}, spf("example.org", false), psl, dns.lookup(), rnd));
  CHECK(e.result == outcome::fail);
  CHECK(e.disposition == policy::reject);
  CHECK(calls == 0);  // pct=100: no sampling

  // No policy: none; DNS trouble: temperror; From trouble: permerror.
  e = run(dmarc::check({"joe@example.net"}, spf_child, psl, dns.lookup(), rnd));
  CHECK(e.result == outcome::none);
  CHECK(dmarc::authentication_results(e) == "dmarc=none header.from=example.net");
  dns.errors["_dmarc.example.net"] = make_error_code(net::dns::errc::timeout);
  e = run(dmarc::check({"joe@example.net"}, spf_child, psl, dns.lookup(), rnd));
  CHECK(e.result == outcome::temperror);
  CHECK(dmarc::authentication_results(e).starts_with("dmarc=temperror ("));
  e = run(dmarc::check({"a@example.com, b@example.com"}, spf_child, psl, dns.lookup(), rnd));
  CHECK(e.result == outcome::permerror);
  CHECK(e.error == dmarc::errc::multiple_from);
  CHECK(dmarc::authentication_results(e) == "dmarc=permerror (several From addresses)");
  e = run(dmarc::check({}, spf_child, psl, dns.lookup(), rnd));
  CHECK(e.error == dmarc::errc::no_from);

  // pct=0: never applied, nothing rolled.
  dns.txt["_dmarc.example.org"] = {"v=DMARC1; p=reject; pct=0"};
  e = run(dmarc::check({"joe@example.org"}, {}, psl, dns.lookup(), rnd));
  CHECK(e.disposition == policy::quarantine);
  CHECK(e.sampled_out);
  CHECK(calls == 0);

  // A From domain that is not a token is quoted.
  dmarc::evaluation odd;
  odd.from_domain = "ex\"ample.com";
  CHECK(dmarc::authentication_results(odd) == "dmarc=none header.from=\"ex\\\"ample.com\"");
}

TEST_CASE("dmarc: a From domain the resolver cannot query has no policy") {
  fake_dns dns;
  dns.errors["_dmarc.bad name.com"] = make_error_code(net::dns::errc::bad_name);
  auto d = run(dmarc::discover("bad name.com", test_psl(), dns.lookup()));
  CHECK(d.state == dmarc::discovery::status::none);
  dns.errors["_dmarc.gone.com"] = make_error_code(net::dns::errc::cancelled);
  d = run(dmarc::discover("gone.com", test_psl(), dns.lookup()));
  CHECK(d.state == dmarc::discovery::status::temperror);
}
