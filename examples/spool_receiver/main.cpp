// spool_receiver: an MX front end. Accepts mail for --local-domain domains (authenticated users
// may send anywhere) into a durable queue directory; 250 means the queue file is fsynced.
// With --deliver-to ROOT a queue manager delivers it into ROOT/<user>/Maildir (users are the
// directories under ROOT, or anyone with --create-users) and retries what fails.
//
//   spool_receiver --listen 127.0.0.1:2525 --spool DIR --local-domain example.org
//                  [--deliver-to ROOT [--create-users]]
//                  [--self-signed | --tls-cert F --tls-key F] [--user NAME:PASSWORD]... [--hostname H]
#include <csignal>
#include <iostream>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>

#include "mailroom/mda/store_target.hpp"
#include "mailroom/store/maildir/store.hpp"
#include "mailroom/mta/inbound.hpp"
#include "mailroom/net/tls/context.hpp"
#include "mailroom/queue/manager.hpp"
#include "mailroom/queue/spool.hpp"

using namespace mailroom;

int main(int argc, char** argv) try {
  std::string listen, spool_dir, hostname = "localhost", cert, key;
  bool self_signed = false, create_users = false;
  std::string deliver_to;
  mta::relay_policy_options relay;
  auto users = std::make_shared<auth::memory_backend>();
  bool have_users = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("missing value after " + a);
      return argv[++i];
    };
    if (a == "--listen") listen = next();
    else if (a == "--spool") spool_dir = next();
    else if (a == "--local-domain") relay.local_domains.push_back(next());
    else if (a == "--hostname") hostname = next();
    else if (a == "--deliver-to") deliver_to = next();
    else if (a == "--create-users") create_users = true;
    else if (a == "--self-signed") self_signed = true;
    else if (a == "--tls-cert") cert = next();
    else if (a == "--tls-key") key = next();
    else if (a == "--user") {
      auto u = next();
      auto colon = u.find(':');
      if (colon == std::string::npos) throw std::runtime_error("--user NAME:PASSWORD");
      users->add_user(u.substr(0, colon), u.substr(colon + 1));
      have_users = true;
    } else throw std::runtime_error("unknown option " + a);
  }
  if (listen.empty() || spool_dir.empty() || relay.local_domains.empty())
    throw std::runtime_error("usage: spool_receiver --listen ADDR:PORT --spool DIR --local-domain DOMAIN...");

  log::logger logger(std::make_shared<log::stderr_sink>(), log::level::info, "spool_receiver");
  blocking_pool pool(4);
  auto sp = queue::spool::open(spool_dir, pool, logger).value();
  asio::io_context io(1);
  std::shared_ptr<queue::manager> qmgr;
  if (!deliver_to.empty()) {
    store::maildir::store_options so;
    so.root = deliver_to;
    so.create_accounts = create_users;
    so.auto_create.clear();  // plain delivery: INBOX only
    mda::store_target_options mo;
    mo.store = store::maildir::store::create(so, pool, logger);
    auto mda = std::make_shared<mda::store_target>(mo, logger);
    qmgr = std::make_shared<queue::manager>(io.get_executor(), sp, mda, queue::manager_options{}, logger);
    sp->on_queued([m = std::weak_ptr(qmgr)] {
      if (auto q = m.lock()) q->wake();
    });
    asio::co_spawn(io, qmgr->run(), asio::detached);  // recovers the spool first
  } else if (auto n = [&] {
        std::size_t moved = 0;
        asio::co_spawn(io, [&]() -> task<void> { moved = (co_await sp->recover()).value(); }, asio::detached);
        io.run();
        io.restart();
        return moved;
      }())
    logger.notice("interrupted deliveries back in incoming", {{"count", std::to_string(n)}});

  smtp::server_options opts;
  opts.hostname = hostname;
  if (have_users) opts.auth = users;
  if (self_signed || !cert.empty()) {
    auto kp = self_signed ? net::tls::generate_self_signed({hostname}) : net::tls::load_key_pair(cert, key);
    opts.tls = net::tls::server_context::create(kp.value()).value();
  }
  mta::inbound_options in;
  in.target = sp;
  in.relay = std::make_shared<mta::relay_policy const>(relay);
  in.hostname = hostname;
  auto be = std::make_shared<mta::inbound>(std::move(in), logger);
  smtp::server server(io.get_executor(), be, opts, logger);
  auto colon = listen.rfind(':');
  server.listen({.endpoint = {asio::ip::make_address(listen.substr(0, colon)),
                              static_cast<unsigned short>(std::stoi(listen.substr(colon + 1)))}})
      .value();
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code ec, int) {
    if (ec) return;
    asio::co_spawn(io, server.shutdown(std::chrono::seconds(10)), asio::detached);
    if (qmgr) qmgr->stop();
  });
  io.run();
  return 0;
} catch (std::exception const& e) {
  std::cerr << "spool_receiver: " << e.what() << "\n";
  return 1;
}
