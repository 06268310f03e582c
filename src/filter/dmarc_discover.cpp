// DMARC's DNS side: policy discovery and the whole check (coroutines over a TXT lookup).
#include "mailroom/filter/dmarc.hpp"

#include "mailroom/core/text.hpp"
#include "mailroom/net/dns/resolver.hpp"

namespace mailroom::filter::dmarc {

namespace {

// No record can exist: the name or the type is absent, or the name cannot be queried at all.
bool is_absent(std::error_code ec) noexcept {
  return ec == net::dns::errc::nxdomain || ec == net::dns::errc::no_data || ec == net::dns::errc::bad_name;
}

}  // namespace

task<discovery> discover(std::string from_domain, public_suffix_list const& psl, txt_lookup lookup, record_limits limits) {
  discovery out;
  std::string domain = text::to_lower(from_domain);
  if (!domain.empty() && domain.back() == '.') domain.pop_back();
  std::string const org = psl.organizational_domain(domain);
  for (int round = 0; round < 2; ++round) {
    std::string const at = round == 0 ? domain : org;
    if (round == 1 && (org.empty() || org == domain)) break;
    std::string const name = "_dmarc." + at;
    auto answers = co_await lookup(name);
    if (!answers) {
      if (is_absent(answers.error())) continue;
      out.state = discovery::status::temperror;
      out.error = answers.error();
      co_return out;
    }
    std::string_view only;
    std::size_t count = 0;
    for (auto const& txt : *answers) {
      if (!is_dmarc_record(txt)) continue;
      if (++count == 1) only = txt;
    }
    if (count == 0) continue;
    out.domain = at;
    out.organizational = round == 1;
    if (count > 1) {
      out.error = make_error_code(errc::multiple_records);
      co_return out;
    }
    auto rec = parse_record(only, limits);
    if (!rec) {
      out.error = rec.error();
      co_return out;
    }
    out.state = discovery::status::found;
    out.rec = std::move(*rec);
    co_return out;
  }
  co_return out;
}

task<evaluation> check(std::vector<std::string> from_fields, auth_results auth, public_suffix_list const& psl,
                       txt_lookup lookup, random_source random, record_limits limits) {
  std::vector<std::string_view> views(from_fields.begin(), from_fields.end());
  auto domain = from_domain(std::span<std::string_view const>(views));
  if (!domain) {
    evaluation e;
    e.result = outcome::permerror;
    e.error = domain.error();
    co_return e;
  }
  discovery found = co_await discover(*domain, psl, std::move(lookup), limits);
  co_return evaluate(*domain, found, auth, psl, random);
}

}  // namespace mailroom::filter::dmarc
