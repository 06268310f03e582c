#include "filters.hpp"

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include "mailroom/filter/checks.hpp"
#include "mailroom/filter/dkim.hpp"
#include "mailroom/filter/scanner.hpp"

namespace mailroomd {

namespace flt = mailroom::filter;

namespace {

std::string read_file(std::string const& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

flt::failure_policy policy_of(std::string const& s) {
  return s == "accept" ? flt::failure_policy::accept : flt::failure_policy::tempfail;
}

}  // namespace

filter_chains build_filters(config const& c, mailroom::executor ex, mailroom::net::dns::resolver& resolver,
                            mailroom::log::logger const& logger) {
  auto const& fc = c.filters;
  filter_chains out;
  out.dns = std::make_unique<flt::resolver_dns>(resolver);
  auto& dns = *out.dns;

  std::shared_ptr<flt::public_suffix_list const> psl;
  std::shared_ptr<flt::dkim::signing_table> keys;
  std::shared_ptr<flt::greylist> grey;
  // Each named filter is made once and shared by the chains that name it.
  auto make = [&](std::string const& name) -> flt::chain_entry {
    if (name == "spf") {
      flt::spf_filter_options o;
      o.reject_fail = fc.spf_fail == "reject";
      o.spf.receiver = c.hostname;
      return {flt::make_spf_filter(dns, o), flt::failure_policy::tempfail};
    }
    if (name == "dkim") return {flt::make_dkim_verify_filter(dns), flt::failure_policy::tempfail};
    if (name == "dmarc") {
      if (!psl) {
        auto l = flt::public_suffix_list::load(fc.public_suffix_list);
        if (!l) throw std::runtime_error("public suffix list " + fc.public_suffix_list + ": " + l.error().message());
        psl = std::make_shared<flt::public_suffix_list const>(std::move(*l));
      }
      flt::dmarc_filter_options o;
      o.psl = psl;
      o.enforce = fc.dmarc_enforce;
      return {flt::make_dmarc_filter(dns, o), flt::failure_policy::tempfail};
    }
    if (name == "dkim_sign") {
      if (!keys) {
        keys = std::make_shared<flt::dkim::signing_table>();
        for (auto const& k : fc.dkim_keys) {
          auto key = flt::dkim::private_key::load_pem(read_file(k.key_file));
          if (!key) throw std::runtime_error("DKIM key " + k.key_file + ": " + key.error().message());
          keys->add(k.domain, k.selector, *key);
        }
      }
      return {flt::make_dkim_sign_filter(keys), flt::failure_policy::tempfail};
    }
    if (name == "dnsbl") {
      flt::dnsbl_filter_options o;
      o.threshold = fc.dnsbl_threshold;
      for (auto const& spec : fc.dnsbl_sites) {
        auto s = flt::dnsbl::parse_site(spec);
        if (!s) throw std::runtime_error("[filters] dnsbl site \"" + spec + "\" is malformed");
        o.sites.push_back(*s);
      }
      for (auto const& spec : fc.dnswl_sites) {
        auto s = flt::dnsbl::parse_site(spec);
        if (!s) throw std::runtime_error("[filters] dnswl site \"" + spec + "\" is malformed");
        s->weight = -std::abs(s->weight) * 1000;  // an allowlisted client is never refused
        o.sites.push_back(*s);
      }
      return {flt::make_dnsbl_filter(dns, o), flt::failure_policy::accept};
    }
    if (name == "greylist") {
      if (!grey) {
        flt::greylist::options o;
        o.delay = std::chrono::seconds(fc.greylist_delay);
        o.path = c.data_dir + "/greylist";
        auto g = flt::greylist::open(o);
        if (!g) throw std::runtime_error("greylist " + o.path + ": " + g.error().message());
        grey = std::move(*g);
      }
      return {flt::make_greylist_filter(grey), flt::failure_policy::accept};
    }
    if (name == "rate_limit") {
      std::shared_ptr<flt::rate_limiter> per_ip, per_sender;
      if (fc.rate_messages_per_ip) {
        flt::rate_limiter::options o;
        o.limit = static_cast<std::uint32_t>(fc.rate_messages_per_ip);
        o.window = std::chrono::hours(1);
        per_ip = std::make_shared<flt::rate_limiter>(o);
      }
      if (fc.rate_messages_per_sender) {
        flt::rate_limiter::options o;
        o.limit = static_cast<std::uint32_t>(fc.rate_messages_per_sender);
        o.window = std::chrono::hours(1);
        per_sender = std::make_shared<flt::rate_limiter>(o);
      }
      return {flt::make_rate_limit_filter(per_ip, per_sender), flt::failure_policy::accept};
    }
    if (name == "clamd" || name == "spamd" || name == "rspamd") {
      auto const& spec = name == "clamd" ? fc.clamd : name == "spamd" ? fc.spamd : fc.rspamd;
      auto addr = flt::scanner_address::parse(spec);
      if (!addr) throw std::runtime_error("[filters] " + name + " address \"" + spec + "\" is malformed");
      auto const policy = policy_of(fc.scanners_on_failure);
      if (name == "clamd") {
        flt::clamd_options o;
        o.address = *addr;
        return {flt::make_clamd_filter(ex, o, logger), policy};
      }
      if (name == "spamd") {
        flt::spamd_options o;
        o.address = *addr;
        return {flt::make_spamd_filter(ex, o, fc.spam_reject_score, logger), policy};
      }
      flt::rspamd_options o;
      o.address = *addr;
      return {flt::make_rspamd_filter(ex, o, logger), policy};
    }
    if (name.rfind("milter:", 0) == 0) {
      for (auto const& m : fc.milters)
        if ("milter:" + m.name == name)
          return {flt::make_milter_filter(ex, m.name, m.address, c.hostname, {}, logger), policy_of(m.on_failure)};
    }
    throw std::runtime_error("[filters] unknown filter \"" + name + "\"");
  };
  std::map<std::string, flt::chain_entry> made;
  auto chain = [&](std::vector<std::string> const& names) {
    std::vector<flt::chain_entry> entries;
    for (auto const& n : names) {
      auto it = made.find(n);
      if (it == made.end()) it = made.emplace(n, make(n)).first;
      entries.push_back(it->second);
    }
    return entries;
  };
  out.mx = chain(fc.mx);
  out.submission = chain(fc.submission);
  for (auto const& l : c.listeners)
    if (l.filters) out.per_listener[l.address] = chain(*l.filters);
  return out;
}

}  // namespace mailroomd
