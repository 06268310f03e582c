// mailroomd: the mail server assembled from mailroom's components.
//
//   mailroomd --config FILE         run
//   mailroomd --check-config FILE   validate and print the effective configuration
//   mailroomd --demo DIR            create DIR (config, self-signed certificate, user
//                                   demo@example.test / demo) if needed, then run on 127.0.0.1
//
// What it does today: SMTP (MX), submission (STARTTLS + AUTH), submissions (TLS + AUTH) and
// LMTP listeners feed a durable queue; a queue manager delivers through aliases into the
// Maildir++ store <data_dir>/mail/<user>/Maildir (with quota); POP3 (STLS), POP3S, IMAP
// (STARTTLS) and IMAPS serve it. Outbound delivery is not there yet, so mail for other domains
// is refused (no relaying). SIGHUP re-reads the configuration
// (the alias map; other changes are reported as needing a restart); SIGTERM stops cleanly.
#include <sys/stat.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>

#include "config.hpp"
#include "filters.hpp"
#include "mailroom/auth/passwd_file.hpp"
#include "mailroom/core/durable.hpp"
#include "mailroom/core/text.hpp"
#include "mailroom/mda/store_target.hpp"
#include "mailroom/mta/inbound.hpp"
#include "mailroom/net/tls/context.hpp"
#include "mailroom/imap/server.hpp"
#include "mailroom/pop3/server.hpp"
#include "mailroom/mra/fetcher.hpp"
#include "mailroom/mta/remote_target.hpp"
#include "mailroom/mta/router.hpp"
#include "mailroom/net/dns/resolver.hpp"
#include "mailroom/queue/manager.hpp"
#include "mailroom/store/maildir/store.hpp"

using namespace mailroom;
namespace fs = std::filesystem;

namespace {

void write_private(fs::path const& p, std::string const& content) {
  std::ofstream out(p, std::ios::trunc);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + p.string());
  fs::permissions(p, fs::perms::owner_read | fs::perms::owner_write);
}

// --demo: everything a first run needs, created once and kept.
std::string make_demo(fs::path dir) {
  dir = fs::absolute(dir);
  auto cfg = dir / "mailroomd.toml";
  // The certificate, users and mail are kept; the configuration is the demo's own and is
  // rewritten so a newer mailroomd brings its new listeners.
  fs::create_directories(dir / "mail" / "demo");
  if (!fs::exists(dir / "cert.pem") || !fs::exists(dir / "key.pem")) {
    auto kp = net::tls::generate_self_signed({"localhost", "127.0.0.1"});
    if (!kp) throw std::runtime_error("certificate: " + kp.error().message());
    write_private(dir / "cert.pem", kp->cert_pem);
    write_private(dir / "key.pem", kp->key_pem);
  }
  if (!fs::exists(dir / "passwd"))
    write_private(dir / "passwd", "demo@example.test:" + auth::hash_password("demo").value() + "\n");
  write_private(cfg, "# mailroomd demo configuration (created by mailroomd --demo)\n"
                     "hostname = \"localhost\"\n"
                     "data_dir = \"" + dir.string() + "\"\n"
                     "local_domains = [\"example.test\"]\n"
                     "log_level = \"info\"\n\n"
                     "[tls]\ncert = \"" + (dir / "cert.pem").string() + "\"\nkey = \"" + (dir / "key.pem").string() + "\"\n\n"
                     "[auth]\npasswd_file = \"" + (dir / "passwd").string() + "\"\n\n"
                     "[[listener]]\nkind = \"mx\"\naddress = \"127.0.0.1:2525\"\n\n"
                     "[[listener]]\nkind = \"submission\"\naddress = \"127.0.0.1:2587\"\n\n"
                     "[[listener]]\nkind = \"submissions\"\naddress = \"127.0.0.1:2465\"\n\n"
                     "[[listener]]\nkind = \"lmtp\"\naddress = \"127.0.0.1:2424\"\n\n"
                     "[[listener]]\nkind = \"pop3\"\naddress = \"127.0.0.1:1110\"\n\n"
                     "[[listener]]\nkind = \"pop3s\"\naddress = \"127.0.0.1:1995\"\n\n"
                     "[[listener]]\nkind = \"imap\"\naddress = \"127.0.0.1:1143\"\n\n"
                     "[[listener]]\nkind = \"imaps\"\naddress = \"127.0.0.1:1993\"\n");
  return cfg.string();
}

void load_aliases(mailroomd::config const& c, mda::store_target& mda, log::logger const& logger) {
  if (c.aliases.empty()) {
    mda.set_aliases(nullptr);
    return;
  }
  std::vector<std::string> warnings;
  auto map = mda::alias_map::load(c.aliases, &warnings);
  if (!map) throw std::runtime_error("aliases " + c.aliases + ": " + map.error().message());
  for (auto const& w : warnings) logger.warning("aliases", {{"file", c.aliases}, {"problem", w}});
  auto entries = map->size();
  mda.set_aliases(std::make_shared<mda::alias_map const>(std::move(*map)));
  logger.info("aliases loaded", {{"file", c.aliases}, {"entries", std::to_string(entries)}});
}

// What SIGHUP can change: the alias map (the passwd file reloads by itself when it changes).
// Anything else that differs is reported as needing a restart; a broken file changes nothing.
void reload(std::string const& path, mailroomd::config const& running, mda::store_target& mda,
            log::logger const& logger) {
  auto next = mailroomd::load(path);
  if (!next) {
    logger.error("reload failed, configuration unchanged", {{"error", next.error()}});
    return;
  }
  try {
    load_aliases(*next, mda, logger);
  } catch (std::exception const& e) {
    logger.error("reload failed, aliases unchanged", {{"error", e.what()}});
    return;
  }
  auto strip = [](mailroomd::config c) {
    c.aliases.clear();
    return mailroomd::dump(c);
  };
  if (strip(*next) != strip(running)) logger.warning("reloaded aliases; other changes need a restart");
  else logger.notice("reloaded");
}

asio::ip::tcp::endpoint endpoint_of(std::string const& s) {
  auto colon = s.rfind(':');
  auto host = s.substr(0, colon);
  if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
  return {asio::ip::make_address(host), static_cast<unsigned short>(std::stoi(s.substr(colon + 1)))};
}

// POP3 and IMAP listeners: plain (STLS/STARTTLS) or implicit TLS.
template <class Options, class Server>
void listen_reader(Server& server, mailroomd::listener const& l, bool implicit_tls) {
  Options o;
  o.endpoint = endpoint_of(l.address);
  o.implicit_tls = implicit_tls;
  o.allow_plaintext_auth = l.allow_plaintext_auth;
  if (auto r = server.listen(o); !r) throw std::runtime_error("listen " + l.address + ": " + r.error().message());
  std::cout << "mailroomd: " << l.kind << " on " << l.address << "\n";
}

int run(std::string const& config_path, mailroomd::config const& c) {
  log::logger logger(std::make_shared<log::stderr_sink>(), log::parse_level(c.log_level), "mailroomd");
  blocking_pool pool(8);
  asio::io_context io(1);

  auto sp = queue::spool::open(c.data_dir + "/queue", pool, logger);
  if (!sp) throw std::runtime_error("queue " + c.data_dir + "/queue: " + sp.error().message());
  if (auto ec = mailroom::create_directories(c.data_dir + "/mail"); ec)
    throw std::runtime_error(c.data_dir + "/mail: " + ec.message());
  store::maildir::store_options so;
  so.root = c.data_dir + "/mail";
  so.storage_limit = c.quota_bytes;
  so.messages_limit = c.quota_messages;
  auto st = store::maildir::store::create(so, pool, logger);
  mda::store_target_options mo;
  mo.store = st;
  mo.over_quota_tempfail = c.quota_tempfail;
  mo.hostname = c.hostname;
  // Sieve: each user's active script is <data_dir>/mail/<user>/.dovecot.sieve, where Dovecot's
  // Pigeonhole keeps it too; vacation replies are remembered beside it.
  auto const mail_root = c.data_dir + "/mail/";
  mo.sieve_script = [mail_root](std::string const& user) -> std::optional<std::string> {
    std::ifstream in(mail_root + user + "/.dovecot.sieve", std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream os;
    os << in.rdbuf();
    return os.str();
  };
  mo.vacation_store = [mail_root](std::string const& user) -> std::unique_ptr<sieve::vacation_store> {
    return std::make_unique<sieve::file_vacation_store>(mail_root + user + "/.mailroom-vacation");
  };
  auto mda = std::make_shared<mda::store_target>(mo, logger);
  mda->set_outgoing(*sp);  // Sieve's redirect and vacation replies are queued
  load_aliases(c, *mda, logger);
  // Where queued mail goes: [[transport]] routes first, then local domains to the store and,
  // with [outbound] enabled, every other domain to its MX hosts (or the relayhost).
  std::unique_ptr<net::dns::resolver> dns;
  std::shared_ptr<mta::remote_target> remote;
  std::vector<mta::router::route> routes;
  auto parse_policy = [](std::string const& p) {
    return p == "none" ? smtp::tls_policy::none
           : p == "required" ? smtp::tls_policy::required
           : p == "verify" ? smtp::tls_policy::verify
                            : smtp::tls_policy::opportunistic;
  };
  auto host_port = [](std::string const& s, std::uint16_t def) {
    mta::next_hop hop;
    auto colon = s.rfind(':');
    bool has_port = colon != std::string::npos && s.find(']', colon) == std::string::npos &&
                    (s.front() == '[' || s.find(':') == colon);
    hop.host = has_port ? s.substr(0, colon) : s;
    hop.port = has_port ? static_cast<std::uint16_t>(std::stoi(s.substr(colon + 1))) : def;
    if (hop.host.size() > 1 && hop.host.front() == '[' && hop.host.back() == ']') hop.host = hop.host.substr(1, hop.host.size() - 2);
    return hop;
  };
  net::dns::options dopts;
  dopts.servers = c.out.dns_servers;
  dns = std::make_unique<net::dns::resolver>(io.get_executor(), dopts);
  auto tls_none = net::tls::client_context::create(net::tls::verify_mode::none).value();
  auto tls_verify = net::tls::client_context::create(net::tls::verify_mode::required, c.out.ca_file);
  if (!tls_verify && !c.out.ca_file.empty())
    throw std::runtime_error("outbound.ca_file " + c.out.ca_file + ": " + tls_verify.error().message());
  auto remote_for = [&](std::optional<mta::next_hop> hop) {
    mta::remote_options ro;
    ro.helo_name = c.hostname;
    ro.port = c.out.mx_port;
    ro.tls = parse_policy(c.out.tls);
    ro.tls_context = tls_none;
    if (tls_verify) ro.tls_verify_context = *tls_verify;
    ro.local_names = {c.hostname};
    ro.relay = std::move(hop);
    return std::make_shared<mta::remote_target>(io.get_executor(), *dns, ro, logger);
  };
  for (auto const& tr : c.transports) {
    std::shared_ptr<delivery::delivery_target> t;
    if (tr.to == "local") t = mda;
    else if (tr.to == "discard") t = std::make_shared<mta::discard_target>(logger);
    else if (tr.to == "mx") t = remote_for(std::nullopt);
    else {
      bool lmtp = tr.to.rfind("lmtp:", 0) == 0;
      auto hop = host_port(tr.to.substr(5), lmtp ? 24 : 25);
      hop.lmtp = lmtp;
      hop.tls = lmtp ? smtp::tls_policy::none : parse_policy(c.out.tls);
      t = remote_for(hop);
    }
    routes.push_back({tr.domain, t});
  }
  for (auto const& d : c.local_domains) routes.push_back({d, mda});
  std::shared_ptr<delivery::delivery_target> fallback;
  if (c.out.enabled) {
    std::optional<mta::next_hop> relayhost;
    if (!c.out.relayhost.empty()) {
      relayhost = host_port(c.out.relayhost, 25);
      relayhost->tls = parse_policy(c.out.relay_tls);
      if (!c.out.relay_user.empty()) relayhost->auth = std::make_pair(c.out.relay_user, c.out.relay_password);
    }
    fallback = remote = remote_for(relayhost);
  }
  auto router = std::make_shared<mta::router>(std::move(routes), fallback);
  queue::manager_options qo;
  qo.max_age = std::chrono::hours(c.out.max_age_hours);
  qo.hostname = c.hostname;
  auto qmgr = std::make_shared<queue::manager>(io.get_executor(), *sp, router, qo, logger);
  (*sp)->on_queued([m = std::weak_ptr(qmgr)] {
    if (auto q = m.lock()) q->wake();
  });

  smtp::server_options opts;
  opts.hostname = c.hostname;
  if (!c.tls_cert.empty()) {
    auto kp = net::tls::load_key_pair(c.tls_cert, c.tls_key);
    if (!kp) throw std::runtime_error("TLS " + c.tls_cert + ": " + kp.error().message());
    opts.tls = net::tls::server_context::create(*kp).value();
  }
  if (!c.passwd_file.empty()) {
    auto pf = auth::passwd_file::open(c.passwd_file, pool);
    if (!pf) throw std::runtime_error("passwd file " + c.passwd_file + ": " + pf.error().message());
    for (auto const& w : (*pf)->warnings()) logger.warning("passwd file", {{"problem", w}});
    opts.auth = *pf;
  }
  opts.auth_throttle = std::make_shared<auth::throttle>();  // one per-IP failure record for all protocols

  // Readers log in as "user@domain" (or "user") and read the account the MX delivers to.
  pop3::server_options po;
  po.hostname = c.hostname;
  po.store = st;
  po.auth = opts.auth;
  po.tls = opts.tls;
  po.auth_throttle = opts.auth_throttle;
  po.account_for = [](auth::identity const& who) { return text::to_lower(who.user.substr(0, who.user.rfind('@'))); };
  pop3::server pop3_server(io.get_executor(), po, logger);
  imap::server_options io_opts;
  io_opts.hostname = c.hostname;
  io_opts.store = st;
  io_opts.auth = opts.auth;
  io_opts.tls = opts.tls;
  io_opts.auth_throttle = opts.auth_throttle;
  io_opts.account_for = po.account_for;
  imap::server imap_server(io.get_executor(), io_opts, logger);
  mta::relay_policy_options relay;
  relay.local_domains = c.local_domains;
  relay.authenticated_may_relay = c.out.enabled;
  relay.relay_domains = c.out.relay_domains;
  for (auto const& n : c.out.trusted_networks) {
    std::error_code ec;
    if (n.find(':') != std::string::npos) {
      auto net6 = asio::ip::make_network_v6(n, ec);
      if (!ec) relay.trusted_v6.push_back(net6);
    } else {
      auto net4 = asio::ip::make_network_v4(n, ec);
      if (!ec) relay.trusted_v4.push_back(net4);
    }
    if (ec) throw std::runtime_error("outbound.trusted_networks: " + n + ": " + ec.message());
  }
  mta::inbound_options in;
  in.target = *sp;
  in.relay = std::make_shared<mta::relay_policy const>(relay);
  in.local_recipient_check = [mda](address const& to, std::uint64_t size) { return mda->check_recipient(to, size); };
  in.hostname = c.hostname;
  // [filters]: one chain for mail from outside (mx, lmtp), one for our users' (submission).
  auto chains = mailroomd::build_filters(c, io.get_executor(), *dns, logger);
  auto const in_base = in;
  auto in_submission = in;
  in.filters = chains.mx;
  in_submission.filters = chains.submission;
  auto inbound = std::make_shared<mta::inbound>(std::move(in), logger);
  auto inbound_submission = std::make_shared<mta::inbound>(std::move(in_submission), logger);
  smtp::server server(io.get_executor(), inbound, opts, logger);
  smtp::server submission_server(io.get_executor(), inbound_submission, opts, logger);
  std::vector<std::unique_ptr<smtp::server>> own_servers;  // listeners with their own filters
  for (auto const& l : c.listeners) {
    if (l.kind == "imap" || l.kind == "imaps") {
      listen_reader<imap::listener_options>(imap_server, l, l.kind == "imaps");
      continue;
    }
    if (l.kind == "pop3" || l.kind == "pop3s") {
      listen_reader<pop3::listener_options>(pop3_server, l, l.kind == "pop3s");
      continue;
    }
    smtp::listener_options lo;
    lo.endpoint = endpoint_of(l.address);
    if (l.kind == "submission") {
      lo.mode = smtp::security::starttls_required;
      lo.require_auth = true;
    } else if (l.kind == "submissions") {
      lo.mode = smtp::security::implicit_tls;
      lo.require_auth = true;
    } else if (l.kind == "lmtp") {
      lo.proto = smtp::protocol::lmtp;
    }
    smtp::server* srv = l.kind == "submission" || l.kind == "submissions" ? &submission_server : &server;
    if (auto own = chains.per_listener.find(l.address); own != chains.per_listener.end()) {
      // This listener's own chain: its own inbound and server, sharing everything else.
      auto o = in_base;
      o.filters = own->second;
      auto b = std::make_shared<mta::inbound>(std::move(o), logger);
      own_servers.push_back(std::make_unique<smtp::server>(io.get_executor(), b, opts, logger));
      srv = own_servers.back().get();
    }
    if (auto r = srv->listen(lo); !r) throw std::runtime_error("listen " + l.address + ": " + r.error().message());
    std::cout << "mailroomd: " << l.kind << " on " << l.address << "\n";
  }
  std::cout << "mailroomd: mail for " << c.local_domains.front() << " goes to " << c.data_dir << "/mail/<user>/Maildir"
            << std::endl;

  asio::co_spawn(io, qmgr->run(), asio::detached);
  // [[fetch]]: remote mailboxes pulled into the queue (so aliases and delivery apply as to any
  // mail); what was fetched is remembered under data_dir/fetch.
  std::vector<std::shared_ptr<mra::fetcher>> fetchers;
  for (auto const& f : c.fetches) {
    auto a = mailroomd::to_account(f);
    if (!a) throw std::runtime_error(a.error());
    auto fe = std::make_shared<mra::fetcher>(io.get_executor(), *a, *sp, c.data_dir + "/fetch", dns.get(), logger);
    asio::co_spawn(io, fe->run(), asio::detached);
    fetchers.push_back(fe);
  }
  // SIGHUP: re-read the configuration and apply what can change while running.
  asio::signal_set hup(io, SIGHUP);
  std::function<void(std::error_code, int)> on_hup = [&](std::error_code ec, int) {
    if (ec) return;
    reload(config_path, c, *mda, logger);
    hup.async_wait(on_hup);
  };
  hup.async_wait(on_hup);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code ec, int) {
    if (ec) return;
    logger.notice("shutting down");
    asio::co_spawn(io, server.shutdown(std::chrono::seconds(10)), asio::detached);
    asio::co_spawn(io, submission_server.shutdown(std::chrono::seconds(10)), asio::detached);
    for (auto& o : own_servers) asio::co_spawn(io, o->shutdown(std::chrono::seconds(10)), asio::detached);
    asio::co_spawn(io, pop3_server.shutdown(std::chrono::seconds(10)), asio::detached);
    asio::co_spawn(io, imap_server.shutdown(std::chrono::seconds(10)), asio::detached);
    qmgr->stop();
    for (auto const& fe : fetchers) fe->stop();
    if (remote) asio::co_spawn(io, remote->close_idle(), asio::detached);  // QUIT to cached connections
    hup.cancel();
  });
  io.run();
  return 0;
}

}  // namespace

int main(int argc, char** argv) try {
  std::string mode = argc > 1 ? argv[1] : "";
  if (argc != 3 || (mode != "--config" && mode != "--check-config" && mode != "--demo")) {
    std::cerr << "usage: mailroomd --config FILE | --check-config FILE | --demo DIR\n";
    return 2;
  }
  auto path = mode == "--demo" ? make_demo(argv[2]) : std::string(argv[2]);
  auto c = mailroomd::load(path);
  if (!c) {
    std::cerr << "mailroomd: " << c.error() << "\n";
    return 1;
  }
  if (mode == "--check-config") {
    std::cout << mailroomd::dump(*c);
    return 0;
  }
  if (mode == "--demo")
    std::cout << "mailroomd: demo in " << c->data_dir << ", user demo@example.test password demo\n";
  return run(path, *c);
} catch (std::exception const& e) {
  std::cerr << "mailroomd: " << e.what() << "\n";
  return 1;
}
