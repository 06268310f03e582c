// DMARC aggregate reports: rows grouped and counted, the appendix C XML, escaping, and bounds.
#include <doctest/doctest.h>

#include <string>

#include "mailroom/filter/dmarc_report.hpp"

using namespace mailroom;
using namespace mailroom::filter;
using asio::ip::make_address;

namespace {

public_suffix_list const& test_psl() {
  static public_suffix_list const psl = *public_suffix_list::parse("com\norg\n");
  return psl;
}

dmarc::discovery found(std::string_view text, std::string domain, bool org = false) {
  dmarc::discovery d;
  d.state = dmarc::discovery::status::found;
  d.rec = *dmarc::parse_record(text);
  d.domain = std::move(domain);
  d.organizational = org;
  return d;
}

dmarc::auth_results auth(std::string spf_domain, bool spf_pass, std::string dkim_domain = {}, bool dkim_pass = false) {
  dmarc::auth_results a;
  a.spf_domain = std::move(spf_domain);
  a.spf_pass = spf_pass;
  if (!dkim_domain.empty()) {
    dmarc::dkim_signature s;
    s.domain = std::move(dkim_domain);
    s.selector = "sel";
    s.pass = dkim_pass;
    a.dkim.push_back(std::move(s));
  }
  return a;
}

std::size_t count(std::string const& hay, std::string_view needle) {
  std::size_t n = 0;
  for (auto pos = hay.find(needle); pos != std::string::npos; pos = hay.find(needle, pos + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("dmarc report: rows are grouped, counted and written as appendix C XML") {
  auto const& psl = test_psl();
  auto const policy = found("v=DMARC1; p=reject; sp=quarantine; pct=50; fo=1:d; rua=mailto:agg@example.com", "example.com");
  dmarc::aggregate_collector c;
  auto const pass = auth("example.com", true, "example.com", true);
  auto const failing = auth("evil.org", true);
  auto rnd = [] { return 99u; };  // always outside pct=50

  for (int i = 0; i < 3; ++i) {
    auto e = dmarc::evaluate("example.com", policy, pass, psl, rnd);
    c.add(e, make_address("192.0.2.1"), pass);
  }
  auto e = dmarc::evaluate("example.com", policy, failing, psl, rnd);
  REQUIRE(e.result == dmarc::outcome::fail);
  REQUIRE(e.sampled_out);
  c.add(e, make_address("198.51.100.7"), failing);
  // Results without a record are not reported.
  c.add(dmarc::evaluate("example.org", dmarc::discovery{}, pass, psl), make_address("192.0.2.1"), pass);

  CHECK(c.domains() == std::vector<std::string>{"example.com"});
  CHECK(c.rows() == 2);
  CHECK(c.messages("example.com") == 4);
  CHECK(c.messages("example.org") == 0);
  REQUIRE(c.rua("example.com").size() == 1);
  CHECK(c.rua("example.com")[0].uri == "mailto:agg@example.com");

  dmarc::report_metadata meta{"mx.example.net", "postmaster@example.net", "", "r-1", 1700000000, 1700086400};
  std::string xml = c.xml("example.com", meta);
  CHECK(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n"));
  CHECK(xml.ends_with("</feedback>\n"));
  CHECK(xml.find("<org_name>mx.example.net</org_name>") != std::string::npos);
  CHECK(xml.find("<report_id>r-1</report_id>") != std::string::npos);
  CHECK(xml.find("<begin>1700000000</begin>") != std::string::npos);
  CHECK(xml.find("<extra_contact_info>") == std::string::npos);
  CHECK(xml.find("<domain>example.com</domain>\n    <adkim>r</adkim>\n    <aspf>r</aspf>\n    <p>reject</p>\n    "
                 "<sp>quarantine</sp>\n    <pct>50</pct>\n    <fo>1:d</fo>") != std::string::npos);
  CHECK(count(xml, "<record>") == 2);
  CHECK(xml.find("<source_ip>192.0.2.1</source_ip>\n      <count>3</count>") != std::string::npos);
  CHECK(xml.find("<source_ip>198.51.100.7</source_ip>\n      <count>1</count>") != std::string::npos);
  CHECK(xml.find("<disposition>quarantine</disposition>\n        <dkim>fail</dkim>\n        <spf>fail</spf>\n"
                 "        <reason>\n          <type>sampled_out</type>") != std::string::npos);
  CHECK(xml.find("<dkim>\n        <domain>example.com</domain>\n        <selector>sel</selector>\n        <result>pass</result>") !=
        std::string::npos);
  CHECK(xml.find("<spf>\n        <domain>evil.org</domain>\n        <scope>mfrom</scope>\n        <result>pass</result>") !=
        std::string::npos);
  CHECK(xml.find("<envelope_from>evil.org</envelope_from>\n      <header_from>example.com</header_from>") != std::string::npos);
  CHECK(c.xml("example.org", meta).empty());

  c.clear();
  CHECK(c.rows() == 0);
  CHECK(c.domains().empty());
}

TEST_CASE("dmarc report: escaping and bounds") {
  auto const& psl = test_psl();
  auto const policy = found("v=DMARC1; p=none", "example.com");
  dmarc::aggregate_collector c(10);
  auto a = auth("x<&>\"'\x01\xff.example.com", false, "d\xc3\xa9.example.com", false);
  a.dkim[0].result = "temperror";
  a.spf_result = "softfail";
  a.spf_scope = "helo";
  c.add(dmarc::evaluate("example.com", policy, a, psl), make_address("2001:db8::1"), a);
  dmarc::report_metadata meta{"Org & <Co>", "a@b", "https://x/?a=1&b=2", "id", 0, 1};
  std::string xml = c.xml("example.com", meta);
  CHECK(xml.find("<org_name>Org &amp; &lt;Co&gt;</org_name>") != std::string::npos);
  CHECK(xml.find("<extra_contact_info>https://x/?a=1&amp;b=2</extra_contact_info>") != std::string::npos);
  CHECK(xml.find("<domain>x&lt;&amp;&gt;&quot;&apos;??.example.com</domain>") != std::string::npos);
  CHECK(xml.find("<domain>d\xc3\xa9.example.com</domain>") != std::string::npos);
  CHECK(xml.find("<result>temperror</result>") != std::string::npos);
  CHECK(xml.find("<scope>helo</scope>\n        <result>softfail</result>") != std::string::npos);
  CHECK(xml.find("<envelope_from></envelope_from>") != std::string::npos);
  CHECK(xml.find("<source_ip>2001:db8::1</source_ip>") != std::string::npos);

  // At most max_rows rows; more evaluations for existing rows still count.
  for (int i = 0; i < 10000; ++i) {
    auto ip = asio::ip::address_v4(static_cast<std::uint32_t>(0x0a000000 + i));
    auto b = auth("example.com", true);
    c.add(dmarc::evaluate("example.com", policy, b, psl), ip, b);
  }
  CHECK(c.rows() == 10);
  CHECK(c.dropped() == 10000 - 9);
  auto b = auth("example.com", true);
  c.add(dmarc::evaluate("example.com", policy, b, psl), asio::ip::address_v4(0x0a000000), b);
  CHECK(c.dropped() == 10000 - 9);
  CHECK(c.messages("example.com") == 11);

  // Many signatures: 16 kept per row.
  dmarc::aggregate_collector many;
  auto m = auth("example.com", true);
  for (int i = 0; i < 1000; ++i) m.dkim.push_back(m.dkim.empty() ? dmarc::dkim_signature{} : m.dkim.back());
  for (auto& s : m.dkim) s.domain = "example.com";
  many.add(dmarc::evaluate("example.com", policy, m, psl), make_address("192.0.2.1"), m);
  CHECK(count(many.xml("example.com", meta), "<dkim>\n") == 16);
}
