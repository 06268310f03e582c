// Why toml++: a maintained, standards-complete TOML parser from Debian (libtomlplusplus-dev),
// compiled as a shared library so only this file sees its headers.
#include "config.hpp"

#include <algorithm>
#include <optional>
#include <sstream>

#include <toml++/toml.h>

namespace mailroomd {
namespace {
// "500M", "2G", "10000" (octets; K, M, G, T are powers of 1024).
std::optional<std::uint64_t> parse_size(toml::node_view<toml::node> n) {
  if (auto i = n.value<std::int64_t>()) return *i >= 0 ? std::optional<std::uint64_t>(*i) : std::nullopt;
  auto s = n.value<std::string>();
  if (!s || s->empty()) return std::nullopt;
  std::uint64_t mult = 1;
  switch (s->back()) {
    case 'K': case 'k': mult = 1ull << 10; break;
    case 'M': case 'm': mult = 1ull << 20; break;
    case 'G': case 'g': mult = 1ull << 30; break;
    case 'T': case 't': mult = 1ull << 40; break;
    default: break;
  }
  auto digits = mult == 1 ? *s : s->substr(0, s->size() - 1);
  if (digits.empty() || digits.size() > 12 || digits.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  return std::stoull(digits) * mult;
}
}  // namespace

mailroom::expected<config, std::string> load(std::string const& path) {
  toml::table t;
  try {
    t = toml::parse_file(path);
  } catch (toml::parse_error const& e) {
    std::ostringstream os;
    os << path << ":" << e.source().begin.line << ": " << e.description();
    return mailroom::unexpected(os.str());
  }
  auto bad = [&](std::string const& why) { return mailroom::unexpected(path + ": " + why); };
  config c;
  c.hostname = t["hostname"].value_or(c.hostname);
  c.data_dir = t["data_dir"].value_or(std::string{});
  c.log_level = t["log_level"].value_or(c.log_level);
  c.tls_cert = t["tls"]["cert"].value_or(std::string{});
  c.tls_key = t["tls"]["key"].value_or(std::string{});
  c.passwd_file = t["auth"]["passwd_file"].value_or(std::string{});
  c.aliases = t["mda"]["aliases"].value_or(std::string{});
  c.quota_tempfail = t["mda"]["quota_tempfail"].value_or(false);
  if (t["mda"]["quota"]) {
    auto q = parse_size(t["mda"]["quota"]);
    if (!q) return bad("[mda] quota must be a size such as 1073741824, \"500M\" or \"2G\"");
    c.quota_bytes = *q;
  }
  if (t["mda"]["quota_messages"]) {
    auto q = t["mda"]["quota_messages"].value<std::int64_t>();
    if (!q || *q < 0) return bad("[mda] quota_messages must be a count");
    c.quota_messages = static_cast<std::uint64_t>(*q);
  }
  if (auto* doms = t["local_domains"].as_array())
    for (auto const& d : *doms) {
      auto s = d.value<std::string>();
      if (!s) return bad("local_domains must be strings");
      c.local_domains.push_back(*s);
    }
  if (auto* ls = t["listener"].as_array()) {
    for (auto const& node : *ls) {
      auto const* l = node.as_table();
      if (!l) return bad("[[listener]] entries must be tables");
      listener x{(*l)["kind"].value_or(std::string{}), (*l)["address"].value_or(std::string{}),
                 (*l)["allow_plaintext_auth"].value_or(false), std::nullopt};
      static constexpr std::string_view kinds[] = {"mx", "submission", "submissions", "lmtp", "pop3", "pop3s", "imap", "imaps"};
      if (std::find(std::begin(kinds), std::end(kinds), x.kind) == std::end(kinds))
        return bad("listener kind must be mx, submission, submissions, lmtp, pop3, pop3s, imap or imaps, not \"" + x.kind +
                   "\"");
      if (x.address.rfind(':') == std::string::npos) return bad("listener address must be ADDRESS:PORT");
      if (auto const* fs = (*l)["filters"].as_array()) {
        x.filters.emplace();
        for (auto const& n : *fs) {
          auto v = n.value<std::string>();
          if (!v) return bad("listener filters must be a list of filter names");
          x.filters->push_back(*v);
        }
        if (x.kind == "pop3" || x.kind == "pop3s" || x.kind == "imap" || x.kind == "imaps")
          return bad("filters apply to SMTP and LMTP listeners only, not " + x.kind);
      }
      c.listeners.push_back(std::move(x));
    }
  }
  auto strings = [&](toml::node_view<toml::node> n, std::vector<std::string>& out, std::string const& what) -> bool {
    if (!n) return true;
    auto* a = n.as_array();
    if (!a) return false;
    for (auto const& x : *a) {
      auto v = x.value<std::string>();
      if (!v) return false;
      out.push_back(*v);
    }
    (void)what;
    return true;
  };
  if (auto o = t["outbound"]; o) {
    auto& ob = c.out;
    ob.enabled = o["enabled"].value_or(true);
    ob.relayhost = o["relayhost"].value_or(std::string{});
    ob.relay_tls = o["relay_tls"].value_or(ob.relay_tls);
    ob.relay_user = o["relay_user"].value_or(std::string{});
    ob.relay_password = o["relay_password"].value_or(std::string{});
    ob.tls = o["tls"].value_or(ob.tls);
    ob.ca_file = o["ca_file"].value_or(std::string{});
    auto port = o["mx_port"].value_or(std::int64_t{25});
    if (port < 1 || port > 65535) return bad("outbound.mx_port must be a port number");
    ob.mx_port = static_cast<std::uint16_t>(port);
    auto age = o["max_age_hours"].value_or(std::int64_t{120});
    if (age < 1) return bad("outbound.max_age_hours must be at least 1");
    ob.max_age_hours = static_cast<std::uint64_t>(age);
    if (!strings(o["dns_servers"], ob.dns_servers, "dns_servers")) return bad("outbound.dns_servers must be strings");
    if (!strings(o["relay_domains"], ob.relay_domains, "relay_domains")) return bad("outbound.relay_domains must be strings");
    if (!strings(o["trusted_networks"], ob.trusted_networks, "trusted_networks"))
      return bad("outbound.trusted_networks must be strings");
    for (auto const* p : {&ob.relay_tls, &ob.tls})
      if (*p != "none" && *p != "opportunistic" && *p != "required" && *p != "verify")
        return bad("outbound TLS policies are none, opportunistic, required or verify, not \"" + *p + "\"");
    if (!ob.relay_user.empty() && ob.relayhost.empty()) return bad("outbound.relay_user needs outbound.relayhost");
  }
  if (auto* ts = t["transport"].as_array()) {
    for (auto const& node : *ts) {
      auto const* x = node.as_table();
      if (!x) return bad("[[transport]] entries must be tables");
      transport tr{(*x)["domain"].value_or(std::string{}), (*x)["to"].value_or(std::string{})};
      if (tr.domain.empty()) return bad("[[transport]] needs a domain");
      auto const& to = tr.to;
      if (to != "local" && to != "mx" && to != "discard" && to.rfind("smtp:", 0) != 0 && to.rfind("lmtp:", 0) != 0)
        return bad("transport to must be local, mx, discard, smtp:HOST[:PORT] or lmtp:HOST:PORT, not \"" + to + "\"");
      c.transports.push_back(std::move(tr));
    }
  }
  if (auto* fs = t["fetch"].as_array()) {
    for (auto const& node : *fs) {
      auto const* x = node.as_table();
      if (!x) return bad("[[fetch]] entries must be tables");
      fetch_account f;
      f.id = (*x)["id"].value_or(std::string{});
      f.protocol = (*x)["protocol"].value_or(f.protocol);
      f.host = (*x)["host"].value_or(std::string{});
      f.tls = (*x)["tls"].value_or(f.tls);
      f.ca_file = (*x)["ca_file"].value_or(std::string{});
      f.user = (*x)["user"].value_or(std::string{});
      f.password = (*x)["password"].value_or(std::string{});
      f.folder = (*x)["folder"].value_or(f.folder);
      f.keep = (*x)["keep"].value_or(true);
      f.deliver_to = (*x)["deliver_to"].value_or(std::string{});
      f.idle = (*x)["idle"].value_or(false);
      auto interval = (*x)["interval"].value_or(std::int64_t{300});
      auto port = (*x)["port"].value_or(std::int64_t{0});
      if (f.id.empty() || f.id.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
                              std::string::npos)
        return bad("[[fetch]] needs an id of letters, digits, '.', '_' and '-'");
      if (f.protocol != "imap" && f.protocol != "pop3") return bad("fetch protocol must be imap or pop3");
      if (f.tls != "implicit" && f.tls != "verify" && f.tls != "required" && f.tls != "opportunistic" && f.tls != "none")
        return bad("fetch tls must be implicit, verify, required, opportunistic or none");
      if (f.host.empty() || f.user.empty() || f.deliver_to.empty()) return bad("[[fetch]] needs host, user and deliver_to");
      if (interval < 1) return bad("fetch interval must be at least 1 second");
      if (port < 0 || port > 65535) return bad("fetch port must be a port number");
      f.interval = static_cast<std::uint64_t>(interval);
      f.port = static_cast<std::uint16_t>(port);
      if (!f.port) f.port = f.protocol == "imap" ? (f.tls == "implicit" ? 993 : 143) : (f.tls == "implicit" ? 995 : 110);
      c.fetches.push_back(std::move(f));
    }
  }
  if (auto f = t["filters"]; f) {
    auto& fc = c.filters;
    if (!strings(f["mx"], fc.mx, "mx") || !strings(f["submission"], fc.submission, "submission"))
      return bad("[filters] mx and submission are lists of filter names");
    fc.spf_fail = f["spf_fail"].value_or(fc.spf_fail);
    if (fc.spf_fail != "mark" && fc.spf_fail != "reject") return bad("[filters] spf_fail is mark or reject");
    fc.dmarc_enforce = f["dmarc_enforce"].value_or(false);
    fc.public_suffix_list = f["public_suffix_list"].value_or(fc.public_suffix_list);
    if (!strings(f["dnsbl"], fc.dnsbl_sites, "dnsbl") || !strings(f["dnswl"], fc.dnswl_sites, "dnswl"))
      return bad("[filters] dnsbl and dnswl are lists of zones");
    fc.dnsbl_threshold = static_cast<int>(f["dnsbl_threshold"].value_or(std::int64_t{1}));
    auto delay = f["greylist_delay"].value_or(std::int64_t{300});
    auto per_ip = f["messages_per_ip_per_hour"].value_or(std::int64_t{0});
    auto per_sender = f["messages_per_sender_per_hour"].value_or(std::int64_t{0});
    if (delay < 0 || per_ip < 0 || per_sender < 0 || fc.dnsbl_threshold < 1)
      return bad("[filters] greylist_delay, rate limits and dnsbl_threshold must not be negative");
    fc.greylist_delay = static_cast<std::uint64_t>(delay);
    fc.rate_messages_per_ip = static_cast<std::uint64_t>(per_ip);
    fc.rate_messages_per_sender = static_cast<std::uint64_t>(per_sender);
    fc.clamd = f["clamd"].value_or(std::string{});
    fc.spamd = f["spamd"].value_or(std::string{});
    fc.rspamd = f["rspamd"].value_or(std::string{});
    fc.scanners_on_failure = f["scanners_on_failure"].value_or(fc.scanners_on_failure);
    fc.spam_reject_score = f["spam_reject_score"].value_or(0.0);
    if (auto* ms = f["milter"].as_array())
      for (auto const& node : *ms) {
        auto const* x = node.as_table();
        if (!x) return bad("[[filters.milter]] entries must be tables");
        milter_conf m{(*x)["name"].value_or(std::string{}), (*x)["address"].value_or(std::string{}),
                      (*x)["on_failure"].value_or(std::string("tempfail"))};
        if (m.name.empty() || m.address.empty()) return bad("[[filters.milter]] needs name and address");
        if (m.on_failure != "tempfail" && m.on_failure != "accept")
          return bad("[[filters.milter]] on_failure is tempfail or accept");
        fc.milters.push_back(std::move(m));
      }
    if (auto* ks = f["dkim_key"].as_array())
      for (auto const& node : *ks) {
        auto const* x = node.as_table();
        if (!x) return bad("[[filters.dkim_key]] entries must be tables");
        dkim_key_conf k{(*x)["domain"].value_or(std::string{}), (*x)["selector"].value_or(std::string{}),
                        (*x)["key"].value_or(std::string{})};
        if (k.domain.empty() || k.selector.empty() || k.key_file.empty())
          return bad("[[filters.dkim_key]] needs domain, selector and key");
        fc.dkim_keys.push_back(std::move(k));
      }
    if (fc.scanners_on_failure != "tempfail" && fc.scanners_on_failure != "accept")
      return bad("[filters] scanners_on_failure is tempfail or accept");
  }
  {
    auto const& fc = c.filters;
    static constexpr std::string_view known[] = {"spf", "dkim", "dmarc", "dnsbl", "greylist", "rate_limit",
                                                 "clamd", "spamd", "rspamd", "dkim_sign"};
    std::vector<std::vector<std::string> const*> chains{&fc.mx, &fc.submission};
    for (auto const& l : c.listeners)
      if (l.filters) chains.push_back(&*l.filters);
    for (auto const* chain : chains)
      for (auto const& name : *chain) {
        if (name.rfind("milter:", 0) == 0) {
          auto n = name.substr(7);
          if (std::none_of(fc.milters.begin(), fc.milters.end(), [&](milter_conf const& m) { return m.name == n; }))
            return bad("[filters] names milter \"" + n + "\", which no [[filters.milter]] defines");
          continue;
        }
        if (std::find(std::begin(known), std::end(known), name) == std::end(known))
          return bad("[filters] unknown filter \"" + name + "\"");
        if ((name == "clamd" && fc.clamd.empty()) || (name == "spamd" && fc.spamd.empty()) ||
            (name == "rspamd" && fc.rspamd.empty()))
          return bad("[filters] uses " + name + " without its address");
        if (name == "dnsbl" && fc.dnsbl_sites.empty()) return bad("[filters] uses dnsbl without dnsbl sites");
        if (name == "dkim_sign" && fc.dkim_keys.empty()) return bad("[filters] uses dkim_sign without [[filters.dkim_key]]");
      }
  }
  if (c.data_dir.empty()) return bad("data_dir is required");
  if (c.local_domains.empty()) return bad("local_domains needs at least one domain");
  if (c.listeners.empty()) return bad("at least one [[listener]] is required");
  for (auto const& l : c.listeners) {
    if ((l.kind == "submission" || l.kind == "submissions" || l.kind == "pop3s" || l.kind == "imaps") &&
        (c.tls_cert.empty() || c.passwd_file.empty()))
      return bad(l.kind + " needs [tls] cert/key and [auth] passwd_file");
    if ((l.kind == "pop3" || l.kind == "imap") && c.passwd_file.empty()) return bad(l.kind + " needs [auth] passwd_file");
    if ((l.kind == "pop3" || l.kind == "imap") && c.tls_cert.empty() && !l.allow_plaintext_auth)
      return bad(l.kind + " without [tls] needs allow_plaintext_auth = true (passwords in the clear)");
  }
  return c;
}

mailroom::expected<mailroom::mra::account, std::string> to_account(fetch_account const& f) {
  using mailroom::net::tls::policy;
  mailroom::mra::account a;
  a.id = f.id;
  a.proto = f.protocol == "pop3" ? mailroom::mra::account::protocol::pop3 : mailroom::mra::account::protocol::imap;
  a.host = f.host;
  a.port = f.port;
  a.implicit_tls = f.tls == "implicit";
  a.tls = f.tls == "none"            ? policy::none
          : f.tls == "opportunistic" ? policy::opportunistic
          : f.tls == "required"      ? policy::required
                                     : policy::verify;
  a.allow_plaintext_auth = f.tls == "none";
  a.user = f.user;
  a.password = f.password;
  a.folder = f.folder;
  a.keep = f.keep;
  a.max_size = f.max_size;
  a.interval = std::chrono::seconds(f.interval);
  a.idle = f.idle;
  auto to = mailroom::parse_path("<" + f.deliver_to + ">", mailroom::path_options{});
  if (!to) return mailroom::unexpected(std::string("fetch " + f.id + ": deliver_to is not an address"));
  a.deliver_to = *to;
  if (!f.ca_file.empty() && a.tls == policy::verify) {
    auto ctx = mailroom::net::tls::client_context::create(mailroom::net::tls::verify_mode::required, f.ca_file);
    if (!ctx) return mailroom::unexpected("fetch " + f.id + ": ca_file " + f.ca_file + ": " + ctx.error().message());
    a.tls_context = std::move(*ctx);
  }
  return a;
}

std::string dump(config const& c) {
  toml::table t;
  t.insert("hostname", c.hostname);
  t.insert("data_dir", c.data_dir);
  t.insert("log_level", c.log_level);
  toml::array doms;
  for (auto const& d : c.local_domains) doms.push_back(d);
  t.insert("local_domains", doms);
  if (!c.tls_cert.empty()) t.insert("tls", toml::table{{"cert", c.tls_cert}, {"key", c.tls_key}});
  if (!c.passwd_file.empty()) t.insert("auth", toml::table{{"passwd_file", c.passwd_file}});
  toml::table mda;
  if (!c.aliases.empty()) mda.insert("aliases", c.aliases);
  if (c.quota_bytes) mda.insert("quota", static_cast<std::int64_t>(c.quota_bytes));
  if (c.quota_messages) mda.insert("quota_messages", static_cast<std::int64_t>(c.quota_messages));
  if (c.quota_tempfail) mda.insert("quota_tempfail", true);
  if (!mda.empty()) t.insert("mda", mda);
  toml::array ls;
  for (auto const& l : c.listeners) {
    toml::table x{{"kind", l.kind}, {"address", l.address}};
    if (l.allow_plaintext_auth) x.insert("allow_plaintext_auth", true);
    ls.push_back(std::move(x));
  }
  t.insert("listener", ls);
  auto const& ob = c.out;
  toml::table o{{"enabled", ob.enabled}, {"tls", ob.tls}, {"mx_port", static_cast<std::int64_t>(ob.mx_port)},
                {"max_age_hours", static_cast<std::int64_t>(ob.max_age_hours)}};
  if (!ob.relayhost.empty()) {
    o.insert("relayhost", ob.relayhost);
    o.insert("relay_tls", ob.relay_tls);
    if (!ob.relay_user.empty()) o.insert("relay_user", ob.relay_user);
    if (!ob.relay_password.empty()) o.insert("relay_password", "(set)");
  }
  if (!ob.ca_file.empty()) o.insert("ca_file", ob.ca_file);
  for (auto [key, list] : {std::pair{"dns_servers", &ob.dns_servers}, std::pair{"relay_domains", &ob.relay_domains},
                           std::pair{"trusted_networks", &ob.trusted_networks}}) {
    if (list->empty()) continue;
    toml::array a;
    for (auto const& x : *list) a.push_back(x);
    o.insert(key, a);
  }
  t.insert("outbound", o);
  if (!c.fetches.empty()) {
    toml::array fs;
    for (auto const& f : c.fetches)
      fs.push_back(toml::table{{"id", f.id}, {"protocol", f.protocol}, {"host", f.host},
                               {"port", static_cast<std::int64_t>(f.port)}, {"tls", f.tls}, {"user", f.user},
                               {"password", "(set)"}, {"folder", f.folder}, {"keep", f.keep}, {"deliver_to", f.deliver_to},
                               {"interval", static_cast<std::int64_t>(f.interval)}, {"idle", f.idle}});
    for (std::size_t i = 0; i < c.fetches.size(); ++i)
      if (!c.fetches[i].ca_file.empty()) fs[i].as_table()->insert("ca_file", c.fetches[i].ca_file);
    t.insert("fetch", fs);
  }
  if (!c.filters.mx.empty() || !c.filters.submission.empty()) {
    toml::table ft;
    toml::array mx, sub;
    for (auto const& n : c.filters.mx) mx.push_back(n);
    for (auto const& n : c.filters.submission) sub.push_back(n);
    ft.insert("mx", mx);
    ft.insert("submission", sub);
    ft.insert("spf_fail", c.filters.spf_fail);
    ft.insert("dmarc_enforce", c.filters.dmarc_enforce);
    t.insert("filters", ft);
  }
  if (!c.transports.empty()) {
    toml::array ts;
    for (auto const& tr : c.transports) ts.push_back(toml::table{{"domain", tr.domain}, {"to", tr.to}});
    t.insert("transport", ts);
  }
  std::ostringstream os;
  os << t << "\n";
  return os.str();
}

}  // namespace mailroomd
