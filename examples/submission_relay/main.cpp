// submission_relay: an appliance's outbound mail (scanners, printers, alarm panels). Devices on
// the LAN submit with AUTH (plaintext allowed: they rarely speak TLS), or without AUTH from
// --trusted networks; every message is queued durably and relayed to one smarthost over TLS
// (required, or verified with --verify) with the smarthost's own AUTH.
//
//   submission_relay --listen 0.0.0.0:587 --spool DIR --smarthost smtp.example.net:587
//                    [--smarthost-user U --smarthost-password P] [--verify | --smarthost-tls POLICY]
//                    [--user NAME:PASSWORD]... [--trusted 192.168.1.0/24]... [--hostname H]
#include <csignal>
#include <iostream>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>

#include "mailroom/mta/inbound.hpp"
#include "mailroom/mta/remote_target.hpp"
#include "mailroom/net/dns/resolver.hpp"
#include "mailroom/net/tls/context.hpp"
#include "mailroom/queue/manager.hpp"
#include "mailroom/queue/spool.hpp"

using namespace mailroom;

int main(int argc, char** argv) try {
  std::string listen, spool_dir, smarthost, hostname = "relay.localdomain";
  mta::next_hop hop;
  hop.tls = smtp::tls_policy::required;
  mta::relay_policy_options relay;
  relay.local_domains = {};  // nothing is delivered here: everything goes to the smarthost
  auto users = std::make_shared<auth::memory_backend>();
  bool have_users = false;
  std::string hop_user, hop_password;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("missing value after " + a);
      return argv[++i];
    };
    if (a == "--listen") listen = next();
    else if (a == "--spool") spool_dir = next();
    else if (a == "--smarthost") smarthost = next();
    else if (a == "--smarthost-user") hop_user = next();
    else if (a == "--smarthost-password") hop_password = next();
    else if (a == "--verify") hop.tls = smtp::tls_policy::verify;
    else if (a == "--smarthost-tls") {  // none | opportunistic | required | verify (tests, LAN smarthosts)
      auto p = next();
      hop.tls = p == "none" ? smtp::tls_policy::none
                : p == "opportunistic" ? smtp::tls_policy::opportunistic
                : p == "verify" ? smtp::tls_policy::verify
                                 : smtp::tls_policy::required;
    }
    else if (a == "--hostname") hostname = next();
    else if (a == "--trusted") relay.trusted_v4.push_back(asio::ip::make_network_v4(next()));
    else if (a == "--user") {
      auto u = next();
      auto colon = u.find(':');
      if (colon == std::string::npos) throw std::runtime_error("--user NAME:PASSWORD");
      users->add_user(u.substr(0, colon), u.substr(colon + 1));
      have_users = true;
    } else throw std::runtime_error("unknown option " + a);
  }
  if (listen.empty() || spool_dir.empty() || smarthost.empty())
    throw std::runtime_error("usage: submission_relay --listen ADDR:PORT --spool DIR --smarthost HOST[:PORT]");
  auto colon = smarthost.rfind(':');
  hop.host = colon == std::string::npos ? smarthost : smarthost.substr(0, colon);
  hop.port = colon == std::string::npos ? 587 : static_cast<std::uint16_t>(std::stoi(smarthost.substr(colon + 1)));
  if (!hop_user.empty()) hop.auth = std::make_pair(hop_user, hop_password);

  log::logger logger(std::make_shared<log::stderr_sink>(), log::level::info, "submission_relay");
  blocking_pool pool(4);
  asio::io_context io(1);
  auto sp = queue::spool::open(spool_dir, pool, logger).value();
  net::dns::resolver dns(io.get_executor());
  mta::remote_options ro;
  ro.helo_name = hostname;
  ro.relay = hop;
  ro.tls_context = net::tls::client_context::create(net::tls::verify_mode::none).value();
  ro.tls_verify_context = net::tls::client_context::create(net::tls::verify_mode::required).value();
  auto remote = std::make_shared<mta::remote_target>(io.get_executor(), dns, ro, logger);
  auto qmgr = std::make_shared<queue::manager>(io.get_executor(), sp, remote, queue::manager_options{}, logger);
  sp->on_queued([m = std::weak_ptr(qmgr)] {
    if (auto q = m.lock()) q->wake();
  });
  asio::co_spawn(io, qmgr->run(), asio::detached);

  smtp::server_options opts;
  opts.hostname = hostname;
  if (have_users) opts.auth = users;
  mta::inbound_options in;
  in.target = sp;
  in.relay = std::make_shared<mta::relay_policy const>(relay);  // authenticated or trusted: anywhere
  in.hostname = hostname;
  auto be = std::make_shared<mta::inbound>(std::move(in), logger);
  smtp::server server(io.get_executor(), be, opts, logger);
  auto lc = listen.rfind(':');
  smtp::listener_options lo;
  lo.endpoint = {asio::ip::make_address(listen.substr(0, lc)), static_cast<unsigned short>(std::stoi(listen.substr(lc + 1)))};
  lo.allow_plaintext_auth = true;  // LAN devices; keep this listener off the Internet
  server.listen(lo).value();
  std::cout << "submission_relay: " << listen << " -> " << hop.host << ":" << hop.port << std::endl;
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code ec, int) {
    if (ec) return;
    asio::co_spawn(io, server.shutdown(std::chrono::seconds(10)), asio::detached);
    qmgr->stop();
  });
  io.run();
  return 0;
} catch (std::exception const& e) {
  std::cerr << "submission_relay: " << e.what() << "\n";
  return 1;
}
