// The Public Suffix List: the file format, the lookup algorithm (against the real Debian file
// when it is installed), RFC 7489 3.2 organizational domains, and hostile input.
#include <doctest/doctest.h>

#include <fstream>
#include <string>
#include <string_view>
#include <unistd.h>

#include "mailroom/core/error.hpp"
#include "mailroom/filter/public_suffix.hpp"
#include "support/helpers.hpp"

using namespace mailroom;
using filter::public_suffix_list;

namespace {

std::string reg(public_suffix_list const& psl, std::string_view name) {
  auto r = psl.registrable_domain(name);
  return r ? *r : std::string("(none)");
}

}  // namespace

TEST_CASE("psl: file format, sections, wildcards and exceptions on a small list") {
  auto psl = public_suffix_list::parse(
      "// a comment\n"
      "\n"
      "// ===BEGIN ICANN DOMAINS===\n"
      "com\n"
      "  uk   trailing words are ignored\n"
      "co.uk\r\n"
      "*.ck\n"
      "!www.ck\n"
      "a.*.bad\n"
      "!single\n"
      "..\n"
      "// ===END ICANN DOMAINS===\n"
      "// ===BEGIN PRIVATE DOMAINS===\n"
      "blogspot.com\n"
      "// ===END PRIVATE DOMAINS===\n");
  REQUIRE(psl);
  CHECK(psl->size() == 6);      // keys com, uk, co.uk, ck (*.ck), www.ck (!www.ck), blogspot.com
  CHECK(psl->skipped() == 3);  // a.*.bad, !single, ..

  auto m = psl->public_suffix("Foo.Example.CO.UK.");
  REQUIRE(m);
  CHECK(m->suffix == "co.uk");
  CHECK(m->labels == 2);
  CHECK(m->icann);
  CHECK(!m->implicit);
  CHECK(reg(*psl, "Foo.Example.CO.UK.") == "example.co.uk");

  m = psl->public_suffix("x.blogspot.com");
  REQUIRE(m);
  CHECK(m->suffix == "blogspot.com");
  CHECK(!m->icann);
  m = psl->public_suffix("x.blogspot.com", false);
  REQUIRE(m);
  CHECK(m->suffix == "com");
  CHECK(m->icann);
  CHECK(psl->organizational_domain("a.b.x.blogspot.com") == "x.blogspot.com");
  CHECK(psl->organizational_domain("a.b.x.blogspot.com", false) == "blogspot.com");

  CHECK(psl->public_suffix("a.b.ck")->suffix == "b.ck");
  CHECK(psl->public_suffix("a.www.ck")->suffix == "ck");
  CHECK(psl->public_suffix("unlisted")->implicit);
  CHECK(psl->public_suffix("x.unlisted")->suffix == "unlisted");

  CHECK(!psl->public_suffix(""));
  CHECK(!psl->public_suffix("."));
  CHECK(!psl->public_suffix(".com"));
  CHECK(!psl->public_suffix("a..com"));
  CHECK(psl->organizational_domain("a..com").empty());
}

TEST_CASE("psl: the checkPublicSuffix cases against Debian's list") {
  auto psl = public_suffix_list::load();
  if (!psl) {
    MESSAGE("skipped: " << filter::default_public_suffix_path << ": " << psl.error().message());
    return;
  }
  CHECK(psl->size() > 5000);
  struct row {
    char const* name;
    char const* registrable;  // "(none)" when the name is a public suffix or malformed
  };
  static row const cases[] = {
      // Mixed case, leading dots, unlisted TLDs.
      {"COM", "(none)"},
      {"example.COM", "example.com"},
      {"WwW.example.COM", "example.com"},
      {".com", "(none)"},
      {".example", "(none)"},
      {".example.com", "(none)"},
      {".example.example", "(none)"},
      {"example", "(none)"},
      {"example.example", "example.example"},
      {"b.example.example", "example.example"},
      {"a.b.example.example", "example.example"},
      // A TLD with one rule.
      {"biz", "(none)"},
      {"domain.biz", "domain.biz"},
      {"b.domain.biz", "domain.biz"},
      {"a.b.domain.biz", "domain.biz"},
      // A TLD with two-level rules (uk.com is in the PRIVATE section).
      {"com", "(none)"},
      {"example.com", "example.com"},
      {"b.example.com", "example.com"},
      {"a.b.example.com", "example.com"},
      {"uk.com", "(none)"},
      {"example.uk.com", "example.uk.com"},
      {"b.example.uk.com", "example.uk.com"},
      {"a.b.example.uk.com", "example.uk.com"},
      {"test.ac", "test.ac"},
      // A TLD with only a wildcard rule.
      {"mm", "(none)"},
      {"c.mm", "(none)"},
      {"b.c.mm", "b.c.mm"},
      {"a.b.c.mm", "b.c.mm"},
      // Japan: plain, wildcard and exception rules on several levels.
      {"jp", "(none)"},
      {"test.jp", "test.jp"},
      {"www.test.jp", "test.jp"},
      {"ac.jp", "(none)"},
      {"test.ac.jp", "test.ac.jp"},
      {"www.test.ac.jp", "test.ac.jp"},
      {"kyoto.jp", "(none)"},
      {"test.kyoto.jp", "test.kyoto.jp"},
      {"ide.kyoto.jp", "(none)"},
      {"b.ide.kyoto.jp", "b.ide.kyoto.jp"},
      {"a.b.ide.kyoto.jp", "b.ide.kyoto.jp"},
      {"c.kobe.jp", "(none)"},
      {"b.c.kobe.jp", "b.c.kobe.jp"},
      {"a.b.c.kobe.jp", "b.c.kobe.jp"},
      {"city.kobe.jp", "city.kobe.jp"},
      {"www.city.kobe.jp", "city.kobe.jp"},
      // A wildcard with an exception.
      {"ck", "(none)"},
      {"test.ck", "(none)"},
      {"b.test.ck", "b.test.ck"},
      {"a.b.test.ck", "b.test.ck"},
      {"www.ck", "www.ck"},
      {"www.www.ck", "www.ck"},
      // US K12.
      {"us", "(none)"},
      {"test.us", "test.us"},
      {"www.test.us", "test.us"},
      {"ak.us", "(none)"},
      {"test.ak.us", "test.ak.us"},
      {"www.test.ak.us", "test.ak.us"},
      {"k12.ak.us", "(none)"},
      {"test.k12.ak.us", "test.k12.ak.us"},
      {"www.test.k12.ak.us", "test.k12.ak.us"},
      // IDN rules, given as UTF-8 (A-labels are out of scope, see the header).
      {"\xe9\xa3\x9f\xe7\x8b\xae.com.cn", "\xe9\xa3\x9f\xe7\x8b\xae.com.cn"},
      {"\xe9\xa3\x9f\xe7\x8b\xae.\xe5\x85\xac\xe5\x8f\xb8.cn", "\xe9\xa3\x9f\xe7\x8b\xae.\xe5\x85\xac\xe5\x8f\xb8.cn"},
      {"www.\xe9\xa3\x9f\xe7\x8b\xae.\xe5\x85\xac\xe5\x8f\xb8.cn", "\xe9\xa3\x9f\xe7\x8b\xae.\xe5\x85\xac\xe5\x8f\xb8.cn"},
      {"shishi.\xe5\x85\xac\xe5\x8f\xb8.cn", "shishi.\xe5\x85\xac\xe5\x8f\xb8.cn"},
      {"\xe5\x85\xac\xe5\x8f\xb8.cn", "(none)"},
      {"\xe9\xa3\x9f\xe7\x8b\xae.\xe4\xb8\xad\xe5\x9b\xbd", "\xe9\xa3\x9f\xe7\x8b\xae.\xe4\xb8\xad\xe5\x9b\xbd"},
      {"www.\xe9\xa3\x9f\xe7\x8b\xae.\xe4\xb8\xad\xe5\x9b\xbd", "\xe9\xa3\x9f\xe7\x8b\xae.\xe4\xb8\xad\xe5\x9b\xbd"},
      {"shishi.\xe4\xb8\xad\xe5\x9b\xbd", "shishi.\xe4\xb8\xad\xe5\x9b\xbd"},
      {"\xe4\xb8\xad\xe5\x9b\xbd", "(none)"},
  };
  for (auto const& c : cases) {
    CAPTURE(c.name);
    CHECK(reg(*psl, c.name) == c.registrable);
  }
  // A-labels fall back to the implicit rule (documented limitation): xn--fiqs8s is 中国.
  CHECK(psl->public_suffix("shishi.xn--fiqs8s")->implicit);
}

TEST_CASE("psl: RFC 7489 3.2 organizational domains") {
  auto psl = public_suffix_list::parse("com\nuk\nco.uk\n*.ck\n!www.ck\n");
  REQUIRE(psl);
  CHECK(psl->organizational_domain("a.mail.example.com") == "example.com");
  CHECK(psl->organizational_domain("example.com") == "example.com");
  CHECK(psl->organizational_domain("news.example.co.uk") == "example.co.uk");
  CHECK(psl->organizational_domain("com") == "com");
  CHECK(psl->organizational_domain("co.uk") == "co.uk");
  CHECK(psl->organizational_domain("x.y.b.ck") == "y.b.ck");
  CHECK(psl->organizational_domain("a.www.ck") == "www.ck");
  CHECK(psl->organizational_domain("EXAMPLE.COM.") == "example.com");
}

TEST_CASE("psl: hostile input stays bounded") {
  // A 1 MB line is skipped, the rules around it still count.
  std::string text = "com\n" + std::string(1024 * 1024, 'a') + "\norg\n";
  auto psl = public_suffix_list::parse(text);
  REQUIRE(psl);
  CHECK(psl->size() == 2);
  CHECK(psl->skipped() == 1);

  // A rule with too many labels is skipped; so is a looked-up name with too many.
  std::string deep;
  for (int i = 0; i < 200; ++i) deep += "a.";
  deep += "com";
  psl = public_suffix_list::parse(deep + "\ncom\n");
  REQUIRE(psl);
  CHECK(psl->size() == 1);
  CHECK(!psl->public_suffix(deep));
  CHECK(psl->organizational_domain(deep).empty());

  // File size and rule count limits.
  filter::psl_limits small;
  small.max_file_size = 10;
  auto r = public_suffix_list::parse("com\norg\nnet\n", small);
  REQUIRE(!r);
  CHECK(r.error() == errc::limit_exceeded);
  small = {};
  small.max_rules = 2;
  r = public_suffix_list::parse("com\norg\nnet\n", small);
  REQUIRE(!r);
  CHECK(r.error() == errc::limit_exceeded);

  // Load errors come back as error codes.
  testing::temp_dir dir;
  r = public_suffix_list::load(dir.path() + "/missing.dat");
  REQUIRE(!r);
  CHECK(r.error() == std::errc::no_such_file_or_directory);
  testing::write_file(dir.path() + "/big.dat", std::string(100, 'x'));
  small = {};
  small.max_file_size = 50;
  r = public_suffix_list::load(dir.path() + "/big.dat", small);
  REQUIRE(!r);
  CHECK(r.error() == errc::limit_exceeded);
  testing::write_file(dir.path() + "/ok.dat", "com\n*.ck\n");
  r = public_suffix_list::load(dir.path() + "/ok.dat");
  REQUIRE(r);
  CHECK(r->public_suffix("a.b.ck")->suffix == "b.ck");
}
