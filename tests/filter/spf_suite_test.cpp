// The openspf RFC 7208 test suite (release 2014.04), read in place from the shared suites directory
// beside the checkout, run scenario by scenario against check_mail_from() over static_dns.
//
// Zone data follows the suite's driver conventions (see the comments at the top of the YAML):
// "TIMEOUT" makes every query of that name time out unless records of the asked type are listed;
// records of the obsolete SPF type are never queried, but a name without TXT entries publishes
// its SPF entries as TXT too (so most scenarios, written with "SPF:", test TXT); "TXT: NONE" is a
// TXT entry without a record (the name exists, and its SPF entries stay unpublished). A test
// passes when the result is one of those it allows and, when it gives an explanation, that is the
// explanation ("DEFAULT": the domain gave none).
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <asio/io_context.hpp>
#include <yaml-cpp/yaml.h>

#include "mailroom/core/text.hpp"
#include "mailroom/filter/dns.hpp"
#include "mailroom/filter/spf.hpp"
#include "support/helpers.hpp"

using namespace mailroom;
using filter::static_dns;
namespace spf = filter::spf;

namespace {

std::string const suite_path = MAILROOM_SOURCE_DIR "/../shared/suites/spf/rfc7208-tests.yml";

// Tests of the suite this implementation does not pass, with the reason. Empty: all pass.
std::map<std::string, std::string> const known_failures{};

// A TXT/SPF value: one string, or a list of character-strings glued together.
std::string joined(YAML::Node const& v) {
  if (!v.IsSequence()) return v.as<std::string>();
  std::string out;
  for (auto const& part : v) out += part.as<std::string>();
  return out;
}

void load_zone(YAML::Node const& zonedata, static_dns& zone) {
  using rr = static_dns::rr;
  for (auto const& entry : zonedata) {
    auto const name = entry.first.as<std::string>();
    bool timeout = false, txt_listed = false;
    std::vector<std::string> spf_records;
    std::set<rr> types;
    zone.add_name(name);
    for (auto const& rec : entry.second) {
      if (rec.IsScalar()) {
        REQUIRE_MESSAGE(rec.as<std::string>() == "TIMEOUT", name);
        timeout = true;
        continue;
      }
      REQUIRE(rec.IsMap());
      for (auto const& kv : rec) {
        auto const type = kv.first.as<std::string>();
        auto const& value = kv.second;
        if (type == "SPF") {
          spf_records.push_back(joined(value));
        } else if (type == "TXT") {
          txt_listed = true;
          if (value.IsScalar() && value.as<std::string>() == "NONE") continue;
          zone.add_txt(name, joined(value));
          types.insert(rr::txt);
        } else if (type == "A" || type == "AAAA") {
          zone.add_address(name, value.as<std::string>());
          types.insert(type == "A" ? rr::a : rr::aaaa);
        } else if (type == "MX") {
          zone.add_mx(name, value[0].as<std::uint16_t>(), value[1].as<std::string>());
          types.insert(rr::mx);
        } else if (type == "PTR") {
          zone.add_ptr(name, value.as<std::string>());
          types.insert(rr::ptr);
        } else if (type == "CNAME") {
          zone.add_cname(name, value.as<std::string>());
          types.insert(rr::cname);
        } else {
          FAIL("unknown record type " << type << " at " << name);
        }
      }
    }
    if (!txt_listed) {
      for (auto const& r : spf_records) zone.add_txt(name, r);
      if (!spf_records.empty()) types.insert(rr::txt);
    }
    if (timeout) {
      for (rr t : {rr::a, rr::aaaa, rr::txt, rr::mx, rr::ptr})
        if (!types.count(t)) zone.set_error(name, t, make_error_code(net::dns::errc::timeout));
    }
  }
}

std::vector<std::string> allowed_results(YAML::Node const& r) {
  std::vector<std::string> out;
  if (r.IsSequence()) {
    for (auto const& x : r) out.push_back(x.as<std::string>());
  } else {
    out.push_back(r.as<std::string>());
  }
  return out;
}

}  // namespace

TEST_CASE("RFC 7208 test suite (openspf 2014.04)") {
  REQUIRE_MESSAGE(std::filesystem::exists(suite_path), "the SPF suite is missing: " << suite_path);
  auto const scenarios = YAML::LoadAllFromFile(suite_path);
  REQUIRE(!scenarios.empty());

  std::size_t total = 0, passed = 0, skipped = 0;
  std::vector<std::string> failed;
  for (auto const& scenario : scenarios) {
    static_dns zone;
    load_zone(scenario["zonedata"], zone);
    for (auto const& t : scenario["tests"]) {
      auto const name = t.first.as<std::string>();
      auto const& test = t.second;
      ++total;
      if (known_failures.count(name)) {
        ++skipped;
        MESSAGE("skipped " << name << ": " << known_failures.at(name));
        continue;
      }
      auto const client = asio::ip::make_address(test["host"].as<std::string>());
      auto const helo = test["helo"].as<std::string>();
      auto const from = test["mailfrom"].as<std::string>();
      asio::io_context io;
      auto const o = testing::run(io, spf::check_mail_from(zone, client, from, helo));

      auto const allowed = allowed_results(test["result"]);
      bool ok = std::find(allowed.begin(), allowed.end(), spf::to_string(o.result)) != allowed.end();
      std::string expected_exp;
      if (auto e = test["explanation"]) {
        expected_exp = e.as<std::string>();
        // The suite writes the IPv6 nibbles of %{i} in upper case where RFC 7208 7.4 shows lower
        // case (v-macro-ip6), and DNS names compare case-insensitively anyway.
        bool const same = expected_exp == "DEFAULT" ? o.explanation.empty() : text::iequals(o.explanation, expected_exp);
        ok = ok && same;
      }
      INFO(scenario["description"].as<std::string>() << " / " << name << ": got " << spf::to_string(o.result)
                                                     << " (" << o.problem << ") explanation \"" << o.explanation
                                                     << "\", expected " << YAML::Dump(test["result"])
                                                     << (expected_exp.empty() ? "" : " / ") << expected_exp);
      CHECK(ok);
      if (ok) ++passed;
      else failed.push_back(name);
    }
  }
  std::string list;
  for (auto const& f : failed) list += " " + f;
  MESSAGE("RFC 7208 suite: " << passed << "/" << total << " passed, " << skipped << " skipped" << list);
  CHECK(total > 100);
}
