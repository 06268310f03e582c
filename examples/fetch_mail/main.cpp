// fetch_mail: a small fetchmail. Pulls one remote POP3 or IMAP mailbox into a local Maildir tree
// (through the MDA) or to an LMTP server, remembering what it fetched under --state.
//
//   fetch_mail --imap|--pop3 HOST[:PORT] --user U --password P --to LOCAL@DOMAIN --state DIR
//              (--maildir ROOT | --lmtp HOST:PORT) [--tls implicit|verify|required|opportunistic|none]
//              [--folder F] [--delete] [--every SECONDS]
#include <iostream>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>

#include "mailroom/mda/store_target.hpp"
#include "mailroom/mra/fetcher.hpp"
#include "mailroom/mta/remote_target.hpp"
#include "mailroom/store/maildir/store.hpp"

using namespace mailroom;

int main(int argc, char** argv) try {
  mra::account a;
  a.id = "fetch_mail";
  std::string server, state, maildir, lmtp, tls = "implicit", to;
  long every = 0;
  for (int i = 1; i < argc; ++i) {
    std::string o = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("missing value after " + o);
      return argv[++i];
    };
    if (o == "--imap" || o == "--pop3") {
      a.proto = o == "--imap" ? mra::account::protocol::imap : mra::account::protocol::pop3;
      server = next();
    } else if (o == "--user") a.user = next();
    else if (o == "--password") a.password = next();
    else if (o == "--to") to = next();
    else if (o == "--state") state = next();
    else if (o == "--maildir") maildir = next();
    else if (o == "--lmtp") lmtp = next();
    else if (o == "--tls") tls = next();
    else if (o == "--folder") a.folder = next();
    else if (o == "--delete") a.keep = false;
    else if (o == "--every") every = std::stol(next());
    else throw std::runtime_error("unknown option " + o);
  }
  if (server.empty() || to.empty() || state.empty() || (maildir.empty() == lmtp.empty()))
    throw std::runtime_error("usage: fetch_mail --imap|--pop3 HOST[:PORT] --user U --password P --to ADDR --state DIR "
                             "(--maildir ROOT | --lmtp HOST:PORT)");
  auto colon = server.rfind(':');
  a.host = colon == std::string::npos ? server : server.substr(0, colon);
  a.implicit_tls = tls == "implicit";
  a.tls = tls == "none" ? net::tls::policy::none
          : tls == "opportunistic" ? net::tls::policy::opportunistic
          : tls == "required" ? net::tls::policy::required
                              : net::tls::policy::verify;
  a.allow_plaintext_auth = tls == "none";
  bool imap = a.proto == mra::account::protocol::imap;
  a.port = colon != std::string::npos ? static_cast<std::uint16_t>(std::stoi(server.substr(colon + 1)))
                                      : static_cast<std::uint16_t>(imap ? (a.implicit_tls ? 993 : 143) : (a.implicit_tls ? 995 : 110));
  auto rcpt = parse_path("<" + to + ">", path_options{});
  if (!rcpt) throw std::runtime_error("--to is not an address");
  a.deliver_to = *rcpt;
  if (every > 0) a.interval = std::chrono::seconds(every);

  log::logger logger(std::make_shared<log::stderr_sink>(), log::level::info, "fetch_mail");
  blocking_pool pool(2);
  asio::io_context io(1);
  net::dns::resolver dns(io.get_executor());
  std::shared_ptr<delivery::delivery_target> target;
  if (!maildir.empty()) {
    store::maildir::store_options so;
    so.root = maildir;
    so.create_accounts = true;
    mda::store_target_options mo;
    mo.store = store::maildir::store::create(so, pool, logger);
    target = std::make_shared<mda::store_target>(mo, logger);
  } else {
    mta::remote_options ro;
    mta::next_hop hop;
    auto c = lmtp.rfind(':');
    hop.host = lmtp.substr(0, c);
    hop.port = static_cast<std::uint16_t>(std::stoi(lmtp.substr(c + 1)));
    hop.lmtp = true;
    hop.tls = net::tls::policy::none;
    ro.relay = hop;
    target = std::make_shared<mta::remote_target>(io.get_executor(), dns, ro, logger);
  }
  auto f = std::make_shared<mra::fetcher>(io.get_executor(), a, target, state, &dns, logger);
  int status = 0;
  if (every > 0) {
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](std::error_code, int) { f->stop(); });
    asio::co_spawn(io, f->run(), asio::detached);
    io.run();
  } else {
    asio::co_spawn(io, [&]() -> task<void> {
      auto r = co_await f->fetch_once();
      if (!r) {
        std::cerr << "fetch_mail: " << r.error().message() << "\n";
        status = 1;
      } else {
        std::cout << "fetched " << r->fetched << ", already had " << r->seen << ", deleted " << r->deleted
                  << ", too large " << r->skipped << "\n";
      }
      dns.cancel();
    }, asio::detached);
    io.run();
  }
  return status;
} catch (std::exception const& e) {
  std::cerr << "fetch_mail: " << e.what() << "\n";
  return 1;
}
