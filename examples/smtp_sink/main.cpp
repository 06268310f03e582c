// smtp_sink: accepts every message and stores it in a Maildir, durably, before answering 250.
//
//   smtp_sink --listen 127.0.0.1:2525 --maildir DIR [--tls-cert F --tls-key F | --self-signed]
//             [--listen-tls 127.0.0.1:4650] [--listen-lmtp 127.0.0.1:2424]
//             [--user NAME:PASSWORD]... [--passwd-file FILE] [--local-domain DOMAIN]...
//             [--allow-plaintext-auth]
//             [--threads N] [--hostname H] [--max-size BYTES] [--bare-lf reject|normalize]
//             [--log-level info]
//
// Without --local-domain it takes mail for anyone (a test sink); with it, only for those domains
// unless the client authenticated (no open relay). Prints nothing on stdout; logs go to stderr.
// SIGINT/SIGTERM shut it down gracefully.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>

#include "mailroom/auth/backend.hpp"
#include "mailroom/auth/passwd_file.hpp"
#include "mailroom/mta/relay_policy.hpp"
#include "mailroom/net/tls/context.hpp"
#include "mailroom/smtp/server.hpp"
#include "mailroom/store/maildir/writer.hpp"

using namespace mailroom;

namespace {

class sink_handler final : public smtp::session_handler {
 public:
  sink_handler(std::shared_ptr<store::maildir::directory> dir, smtp::session_info const& info,
               std::shared_ptr<mta::relay_policy const> relay)
      : dir_(std::move(dir)), info_(info), relay_(std::move(relay)) {}

  task<smtp::reply> on_rcpt(address const& to, smtp::rcpt_params const&) override {
    if (relay_)
      if (auto refused = relay_->check(info_, to)) co_return *refused;
    co_return smtp::replies::recipient_ok();
  }

  task<smtp::reply> on_data(smtp::message_source& body) override {
    auto w = store::maildir::writer::create(dir_);
    if (!w) co_return smtp::replies::local_error();
    for (;;) {
      auto piece = co_await body.read();
      if (!piece) co_return smtp::replies::local_error();  // the server replies for protocol errors
      if (piece->empty()) break;
      if (!(*w)->write(*piece)) co_return smtp::replies::insufficient_storage();
    }
    auto name = co_await (*w)->commit();
    if (!name) co_return smtp::replies::local_error();
    co_return smtp::replies::queued(name->substr(0, name->find(',')));
  }

 private:
  std::shared_ptr<store::maildir::directory> dir_;
  smtp::session_info const& info_;
  std::shared_ptr<mta::relay_policy const> relay_;
};

class sink_backend final : public smtp::backend {
 public:
  sink_backend(std::shared_ptr<store::maildir::directory> dir, std::shared_ptr<mta::relay_policy const> relay)
      : dir_(std::move(dir)), relay_(std::move(relay)) {}
  task<expected<std::unique_ptr<smtp::session_handler>, smtp::reply>> new_session(smtp::session_info const& info) override {
    co_return std::make_unique<sink_handler>(dir_, info, relay_);
  }

 private:
  std::shared_ptr<store::maildir::directory> dir_;
  std::shared_ptr<mta::relay_policy const> relay_;
};

asio::ip::tcp::endpoint parse_endpoint(std::string const& s) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error("expected ADDRESS:PORT, got " + s);
  auto host = s.substr(0, colon);
  if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
  return {asio::ip::make_address(host), static_cast<unsigned short>(std::stoi(s.substr(colon + 1)))};
}

[[noreturn]] void usage() {
  std::cerr << "usage: smtp_sink --listen ADDR:PORT --maildir DIR [--listen-tls ADDR:PORT] [--listen-lmtp ADDR:PORT]\n"
               "                 [--tls-cert FILE --tls-key FILE | --self-signed] [--user NAME:PASSWORD]...\n"
               "                 [--passwd-file FILE] [--local-domain DOMAIN]...\n"
               "                 [--allow-plaintext-auth] [--threads N] [--hostname NAME] [--max-size BYTES]\n"
               "                 [--bare-lf reject|normalize] [--log-level LEVEL]\n";
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) try {
  std::vector<std::string> listen, listen_tls, listen_lmtp;
  mta::relay_policy_options relay;
  std::string maildir_path, cert, key, hostname = "localhost", passwd_path;
  bool self_signed = false, plaintext_auth = false;
  unsigned threads = 1;
  smtp::server_options opts;
  auto users = std::make_shared<auth::memory_backend>();
  bool have_users = false;
  log::level level = log::level::info;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (a == "--listen") listen.push_back(next());
    else if (a == "--listen-tls") listen_tls.push_back(next());
    else if (a == "--listen-lmtp") listen_lmtp.push_back(next());
    else if (a == "--maildir") maildir_path = next();
    else if (a == "--tls-cert") cert = next();
    else if (a == "--tls-key") key = next();
    else if (a == "--self-signed") self_signed = true;
    else if (a == "--allow-plaintext-auth") plaintext_auth = true;
    else if (a == "--threads") threads = static_cast<unsigned>(std::stoul(next()));
    else if (a == "--hostname") hostname = next();
    else if (a == "--passwd-file") passwd_path = next();
    else if (a == "--local-domain") relay.local_domains.push_back(next());
    else if (a == "--max-size") opts.max_message_size = std::stoull(next());
    else if (a == "--log-level") level = log::parse_level(next());
    else if (a == "--bare-lf") opts.bare_newlines = next() == "reject" ? smtp::bare_policy::reject : smtp::bare_policy::normalize;
    else if (a == "--user") {
      auto u = next();
      auto colon = u.find(':');
      if (colon == std::string::npos) usage();
      users->add_user(u.substr(0, colon), u.substr(colon + 1));
      have_users = true;
    } else usage();
  }
  if ((listen.empty() && listen_tls.empty() && listen_lmtp.empty()) || maildir_path.empty() || threads == 0) usage();

  log::logger logger(std::make_shared<log::stderr_sink>(), level, "smtp_sink");
  opts.hostname = hostname;
  blocking_pool pool(8);
  std::vector<std::shared_ptr<auth::backend>> backends;
  if (have_users) backends.push_back(users);
  if (!passwd_path.empty()) {
    auto pf = auth::passwd_file::open(passwd_path, pool);
    if (!pf) throw std::runtime_error("passwd file " + passwd_path + ": " + pf.error().message());
    for (auto const& w : (*pf)->warnings()) logger.warning("passwd file", {{"problem", w}});
    backends.push_back(*pf);
  }
  opts.auth_throttle = std::make_shared<auth::throttle>();  // one per process: failures count per IP
  if (backends.size() == 1) opts.auth = backends.front();
  if (backends.size() > 1) opts.auth = std::make_shared<auth::chain>(std::move(backends));
  if (!cert.empty() || self_signed) {
    auto kp = self_signed ? net::tls::generate_self_signed({hostname}) : net::tls::load_key_pair(cert, key);
    if (!kp) throw std::runtime_error("TLS certificate: " + kp.error().message());
    auto ctx = net::tls::server_context::create(*kp);
    if (!ctx) throw std::runtime_error("TLS context: " + ctx.error().message());
    opts.tls = *ctx;
  }

  auto dir = store::maildir::directory::open(maildir_path, pool);
  if (!dir) throw std::runtime_error("maildir " + maildir_path + ": " + dir.error().message());
  auto be = std::make_shared<sink_backend>(
      *dir, relay.local_domains.empty() ? nullptr : std::make_shared<mta::relay_policy const>(relay));

  // One io_context and one server per thread, all listening on the same ports (SO_REUSEPORT).
  std::vector<std::unique_ptr<asio::io_context>> ios;
  std::vector<std::unique_ptr<smtp::server>> servers;
  for (unsigned t = 0; t < threads; ++t) {
    ios.push_back(std::make_unique<asio::io_context>(1));
    servers.push_back(std::make_unique<smtp::server>(ios.back()->get_executor(), be, opts, logger));
    auto add = [&](std::string const& ep, smtp::security mode, smtp::protocol proto = smtp::protocol::smtp) {
      smtp::listener_options lo;
      lo.endpoint = parse_endpoint(ep);
      lo.mode = mode;
      lo.proto = proto;
      lo.allow_plaintext_auth = plaintext_auth;
      lo.reuse_port = threads > 1;
      auto r = servers.back()->listen(lo);
      if (!r) throw std::runtime_error("listen " + ep + ": " + r.error().message());
    };
    for (auto const& ep : listen) add(ep, smtp::security::plain);
    for (auto const& ep : listen_tls) add(ep, smtp::security::implicit_tls);
    for (auto const& ep : listen_lmtp) add(ep, smtp::security::plain, smtp::protocol::lmtp);
  }

  asio::signal_set signals(*ios[0], SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code ec, int) {
    if (ec) return;
    for (std::size_t t = 0; t < servers.size(); ++t)
      asio::co_spawn(*ios[t], servers[t]->shutdown(std::chrono::seconds(10)), asio::detached);
  });

  std::vector<std::thread> workers;
  for (std::size_t t = 1; t < ios.size(); ++t) workers.emplace_back([&, t] { ios[t]->run(); });
  ios[0]->run();
  for (auto& w : workers) w.join();
  return 0;
} catch (std::exception const& e) {
  std::cerr << "smtp_sink: " << e.what() << "\n";
  return 1;
}
