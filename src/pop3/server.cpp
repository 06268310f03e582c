#include "mailroom/pop3/server.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "mailroom/auth/sasl_exchange.hpp"
#include "mailroom/core/base64.hpp"
#include "mailroom/core/text.hpp"
#include "mailroom/net/error.hpp"
#include "mailroom/net/line_reader.hpp"
#include "mailroom/net/server_core.hpp"
#include "mailroom/net/tcp_stream.hpp"
#include "mailroom/pop3/command.hpp"

namespace mailroom::pop3 {

struct server::impl {
  impl(executor ex, server_options o, log::logger l)
      : opts(std::move(o)), log(l.with_component("pop3")),
        core(std::make_shared<net::server_core>(ex, log, opts.max_connections,
                                                "-ERR [SYS/TEMP] Too many connections\r\n")) {
    if (!opts.auth_throttle) opts.auth_throttle = std::make_shared<auth::throttle>();
  }
  server_options opts;
  log::logger log;
  std::shared_ptr<net::server_core> core;
};

namespace {

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);
constexpr std::size_t max_sasl_line = 12288;

std::string make_session_id() {
  static std::atomic<std::uint64_t> counter{0};
  char buf[24];
  std::snprintf(buf, sizeof buf, "P%llX", static_cast<unsigned long long>(++counter));
  return buf;
}

class session final : public net::stoppable {
 public:
  session(server::impl& srv, std::unique_ptr<net::stream> s, asio::ip::tcp::endpoint remote, listener_options lo)
      : opts_(srv.opts), stream_(std::move(s)), reader_(opts_.max_line, 16 * 1024),
        remote_(remote), listener_(std::move(lo)), log_(srv.log.with_id(make_session_id())) {}

  task<void> run();

  void request_stop() noexcept override {
    stop_ = true;
    if (handshake_lower_) handshake_lower_->close();
    else if (idle_ && stream_) stream_->cancel();
  }
  void force_close() noexcept override {
    stop_ = true;
    if (handshake_lower_) handshake_lower_->close();
    else if (stream_) stream_->close();
  }

 private:
  void ok(std::string_view text) {
    out_ += "+OK ";
    out_ += text;
    out_ += "\r\n";
  }
  void err(std::string_view text) {
    out_ += "-ERR ";
    out_ += text;
    out_ += "\r\n";
  }
  task<result<void>> flush() {
    if (out_.empty()) co_return result<void>{};
    std::string data;
    data.swap(out_);
    co_return co_await stream_->write(std::string_view(data));
  }
  bool line_buffered() const noexcept {
    auto b = reader_.buffered();
    return std::find(b.begin(), b.end(), '\n') != b.end();
  }
  task<result<net::line_reader::line>> next_line(std::size_t limit = 0) {
    if (!line_buffered()) {  // PIPELINING: answer a batch at once
      auto w = co_await flush();
      if (!w) co_return fail(w.error());
    }
    idle_ = true;
    auto l = co_await reader_.read_line(*stream_, limit);
    idle_ = false;
    co_return l;
  }

  bool tls_available() const noexcept { return opts_.tls && !stream_->tls(); }
  bool auth_allowed() const noexcept { return opts_.auth && (stream_->tls() || listener_.allow_plaintext_auth); }
  std::vector<std::string> mechanisms() const {
    std::vector<std::string> out;
    for (auto const& m : opts_.auth_mechanisms) {
      if (text::iequals(m, "SCRAM-SHA-256") && !opts_.auth->supports_scram()) continue;
      out.push_back(text::to_upper(m));
    }
    return out;
  }

  task<bool> start_tls() {
    auto t = co_await net::accept_tls(opts_.tls, std::move(stream_), opts_.tls_handshake_timeout, &handshake_lower_);
    if (!t) {
      log_.info("TLS handshake failed", {{"error", t.error().message()}});
      co_return false;
    }
    stream_ = std::move(*t);
    stream_->set_timeouts({opts_.command_timeout, opts_.command_timeout});
    co_return true;
  }

  task<void> dispatch(command const& c);
  task<void> do_capa();
  task<void> do_auth(command const& c);
  task<void> do_pass(command const& c);
  task<void> auth_failed(bool malformed);
  task<void> login(auth::identity who);
  task<void> do_retr(std::size_t index, std::optional<std::uint32_t> top_lines);
  task<void> do_quit();
  /// Index of message argument `s` if it names a message not deleted; otherwise answers -ERR.
  std::optional<std::size_t> message_arg(std::string_view s);
  bool bad() {
    ++bad_commands_;
    return bad_commands_ >= opts_.max_bad_commands;
  }

  server_options const& opts_;
  std::unique_ptr<net::stream> stream_;
  net::line_reader reader_;
  asio::ip::tcp::endpoint remote_;
  listener_options listener_;
  log::logger log_;
  net::stream* handshake_lower_ = nullptr;
  std::string out_;
  bool idle_ = false;
  bool stop_ = false;
  bool quit_ = false;
  std::size_t bad_commands_ = 0;
  std::size_t auth_failures_ = 0;

  // AUTHORIZATION state
  std::string user_;
  // TRANSACTION state
  std::unique_ptr<store::mailbox> mailbox_;
  std::vector<store::message_info> messages_;
  std::vector<bool> deleted_;
  std::vector<bool> retrieved_;
  std::string account_;
};

task<void> session::run() {
  stream_->set_timeouts({opts_.command_timeout, opts_.command_timeout});
  if (log_.enabled(log::level::info))
    log_.info("connect", {{"client", remote_.address().to_string() + ":" + std::to_string(remote_.port())}});
  if (listener_.implicit_tls) {
    if (!opts_.tls || !co_await start_tls()) {
      if (!opts_.tls) log_.error("implicit TLS listener without a TLS context");
      if (stream_) stream_->close();
      co_return;
    }
  }
  ok("mailroom POP3 ready");
  while (!quit_ && !stop_) {
    bool sasl_ok = opts_.auth && !mailbox_;
    auto l = co_await next_line(sasl_ok ? max_sasl_line : 0);
    if (!l) {
      if (l.error() == net::errc::line_too_long) {
        err("Line too long");
        if (bad()) break;
        continue;
      }
      if (l.error() == net::errc::timeout) err("Autologout; idle for too long");
      else if (!(l.error() == asio::error::operation_aborted && stop_))
        log_.info("connection lost", {{"error", l.error().message()}});
      break;
    }
    if (l->text.size() > opts_.max_line && !text::istarts_with(l->text, "AUTH ")) {
      err("Line too long");
      if (bad()) break;
      continue;
    }
    auto c = parse_command(l->text);
    if (log_.enabled(log::level::trace) && c.v != verb::pass && c.v != verb::auth)
      log_.trace("command", {{"line", std::string(l->text)}});
    try {
      co_await dispatch(c);
    } catch (std::exception const& e) {
      log_.error("session failed", {{"error", e.what()}});
      err("[SYS/TEMP] Internal error");
      quit_ = true;
    }
    if (!quit_ && bad_commands_ >= opts_.max_bad_commands) {
      err("Too many bad commands");
      break;
    }
  }
  if (stop_ && !quit_) err("[SYS/TEMP] Server shutting down");
  if (stream_) {
    co_await flush();
    co_await stream_->shutdown();
    stream_->close();
  }
  log_.info("disconnect", {{"user", account_}});
}

task<void> session::dispatch(command const& c) {
  bool in_txn = mailbox_ != nullptr;
  switch (c.v) {
    case verb::capa:
      co_await do_capa();
      co_return;
    case verb::noop:
      if (!in_txn) break;
      ok("");
      co_return;
    case verb::quit:
      co_await do_quit();
      co_return;
    case verb::stls:
      if (in_txn || !tls_available()) break;
      ok("Begin TLS negotiation");
      if (auto w = co_await flush(); !w) {
        quit_ = true;
        co_return;
      }
      reader_.discard_buffered();  // nothing pipelined before the handshake may survive it
      if (!co_await start_tls()) {
        quit_ = true;
        co_return;
      }
      user_.clear();
      co_return;
    case verb::user:
      if (in_txn || c.args != 1) break;
      if (!auth_allowed()) {
        err(opts_.auth ? "[AUTH] Plaintext authentication disallowed without TLS (use STLS)" : "Authentication not enabled");
        co_return;
      }
      user_ = std::string(c.arg1);
      ok("");
      co_return;
    case verb::pass:
      if (in_txn || c.args != 1) break;
      co_await do_pass(c);
      co_return;
    case verb::auth:
      if (in_txn) break;
      co_await do_auth(c);
      co_return;
    case verb::apop:
      if (in_txn) break;
      err("APOP not supported");
      co_return;
    default:
      break;
  }
  if (!in_txn || c.v == verb::unknown || c.v == verb::user || c.v == verb::pass || c.v == verb::auth ||
      c.v == verb::stls || c.v == verb::apop || c.v == verb::noop) {
    err(c.v == verb::unknown ? "Unknown command" : "Command not valid in this state");
    bad();
    co_return;
  }
  // TRANSACTION state.
  switch (c.v) {
    case verb::stat: {
      if (c.args != 0) break;
      std::size_t n = 0;
      std::uint64_t size = 0;
      for (std::size_t i = 0; i < messages_.size(); ++i)
        if (!deleted_[i]) {
          ++n;
          size += messages_[i].size;
        }
      ok(std::to_string(n) + " " + std::to_string(size));
      co_return;
    }
    case verb::list:
    case verb::uidl: {
      auto line = [&](std::size_t i) {
        if (c.v == verb::list) return std::to_string(i + 1) + " " + std::to_string(messages_[i].size);
        char buf[40];
        std::snprintf(buf, sizeof buf, "%zu %08X%08X", i + 1, messages_[i].uid, mailbox_->uidvalidity());
        return std::string(buf);
      };
      if (c.args > 1) break;
      if (c.args == 1) {
        if (auto i = message_arg(c.arg1)) ok(line(*i));
        co_return;
      }
      std::size_t n = 0;
      for (std::size_t i = 0; i < messages_.size(); ++i) n += deleted_[i] ? 0 : 1;
      ok(std::to_string(n) + " messages");
      for (std::size_t i = 0; i < messages_.size(); ++i)
        if (!deleted_[i]) out_ += line(i) + "\r\n";
      out_ += ".\r\n";
      co_return;
    }
    case verb::retr:
      if (c.args != 1) break;
      if (auto i = message_arg(c.arg1)) co_await do_retr(*i, std::nullopt);
      co_return;
    case verb::top: {
      if (c.args != 2) break;
      auto lines = parse_number(c.arg2);
      if (!lines) break;
      if (auto i = message_arg(c.arg1)) co_await do_retr(*i, *lines);
      co_return;
    }
    case verb::dele:
      if (c.args != 1) break;
      if (auto i = message_arg(c.arg1)) {
        deleted_[*i] = true;
        ok("Marked to be deleted");
      }
      co_return;
    case verb::rset:
      if (c.args != 0) break;
      std::fill(deleted_.begin(), deleted_.end(), false);
      ok("");
      co_return;
    default:
      break;
  }
  err("Invalid arguments");
  bad();
}

std::optional<std::size_t> session::message_arg(std::string_view s) {
  auto n = parse_number(s);
  if (!n) {
    err("Invalid message number");
    bad();
    return std::nullopt;
  }
  if (*n == 0 || *n > messages_.size()) {
    err("There's no message " + std::string(s));
    return std::nullopt;
  }
  if (deleted_[*n - 1]) {
    err("Message is deleted");
    return std::nullopt;
  }
  return *n - 1;
}

task<void> session::do_capa() {
  out_ += "+OK Capability list follows\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n";
  if (!mailbox_) {
    if (auth_allowed()) {
      out_ += "USER\r\nSASL";
      for (auto const& m : mechanisms()) out_ += " " + m;
      out_ += "\r\n";
    }
    if (tls_available()) out_ += "STLS\r\n";
  }
  out_ += "IMPLEMENTATION mailroom\r\n.\r\n";
  co_return;
}

task<void> session::auth_failed(bool malformed) {
  ++auth_failures_;
  log_.notice("authentication failed", {{"client", remote_.address().to_string()}});
  if (auto delay = opts_.auth_throttle->failure(remote_.address()); delay.count() > 0) {
    asio::steady_timer t(stream_->get_executor(), delay);
    co_await t.async_wait(use_tuple);
  }
  err(malformed ? "Malformed authentication data" : "[AUTH] Authentication failed");
  if (auth_failures_ >= opts_.max_auth_failures) {
    err("Too many failed authentications");
    quit_ = true;
  }
}

task<void> session::do_pass(command const& c) {
  if (!auth_allowed()) {
    err("[AUTH] Plaintext authentication disallowed without TLS (use STLS)");
    co_return;
  }
  if (user_.empty()) {
    err("No username given");
    bad();
    co_return;
  }
  sasl::credentials creds{{}, user_, std::string(c.arg1)};
  user_.clear();
  auto who = co_await opts_.auth->authenticate(creds);
  if (!who) {
    if (who.error() != mailroom::errc::unknown_credentials && who.error() != mailroom::errc::bad_credentials) {
      log_.warning("auth backend failed", {{"error", who.error().message()}});
      err("[SYS/TEMP] Temporary authentication failure");
      co_return;
    }
    co_await auth_failed(false);
    co_return;
  }
  co_await login(std::move(*who));
}

task<void> session::do_auth(command const& c) {
  if (!opts_.auth) {
    err("Authentication not enabled");
    co_return;
  }
  if (c.args == 0) {  // the mechanism list (RFC 1734 clients ask this way)
    ok("");
    if (auth_allowed())
      for (auto const& m : mechanisms()) out_ += m + "\r\n";
    out_ += ".\r\n";
    co_return;
  }
  if (!auth_allowed()) {
    err("[AUTH] Plaintext authentication disallowed without TLS (use STLS)");
    co_return;
  }
  if (c.args > 2) {
    err("Invalid arguments");
    bad();
    co_return;
  }
  auto offered = mechanisms();
  auto name = text::to_upper(c.arg1);
  auto mech = std::find(offered.begin(), offered.end(), name) == offered.end()
                  ? result<std::unique_ptr<sasl::server_mechanism>>(fail(mailroom::errc::unsupported))
                  : sasl::make_server_mechanism(name);
  if (!mech) {
    err("Unsupported authentication mechanism");
    co_return;
  }
  std::optional<std::string> initial;
  if (c.args == 2) {
    if (c.arg2 == "=") {
      initial = std::string();
    } else {
      auto d = base64::decode(c.arg2);
      if (!d) {
        co_await auth_failed(true);
        co_return;
      }
      initial = std::move(*d);
    }
  }
  auth::sasl_challenge_fn challenge = [this](std::string_view data) -> task<result<std::optional<std::string>>> {
    out_ += "+ " + base64::encode(data) + "\r\n";
    auto l = co_await next_line(max_sasl_line);
    if (!l) co_return fail(l.error());
    if (l->text == "*") co_return std::optional<std::string>{};
    auto d = base64::decode(l->text);
    if (!d) co_return fail(mailroom::errc::invalid_argument);
    co_return std::optional<std::string>(std::move(*d));
  };
  auto outcome = co_await auth::run_sasl(**mech, *opts_.auth, std::move(initial), challenge);
  switch (outcome.k) {
    case auth::sasl_outcome::kind::success:
      co_await login(std::move(outcome.who));
      co_return;
    case auth::sasl_outcome::kind::cancelled:
      err("Authentication cancelled");
      co_return;
    case auth::sasl_outcome::kind::temporary:
      err("[SYS/TEMP] Temporary authentication failure");
      co_return;
    case auth::sasl_outcome::kind::io_error:
      quit_ = true;
      co_return;
    case auth::sasl_outcome::kind::malformed:
      co_await auth_failed(true);
      co_return;
    case auth::sasl_outcome::kind::failed:
      co_await auth_failed(false);
      co_return;
  }
}

task<void> session::login(auth::identity who) {
  opts_.auth_throttle->success(remote_.address());
  auto name = opts_.account_for ? opts_.account_for(who) : who.user;
  auto acct = co_await opts_.store->open_account(name);
  if (!acct) {
    log_.warning("no mailbox for user", {{"user", who.user}, {"account", name}, {"error", acct.error().message()}});
    err(acct.error() == store::errc::no_such_account ? "[SYS/PERM] No mailbox for this user"
                                                     : "[SYS/TEMP] Mailbox not available");
    co_return;
  }
  auto mb = co_await (*acct)->open("INBOX");
  if (!mb) {
    log_.warning("cannot open INBOX", {{"account", name}, {"error", mb.error().message()}});
    err("[SYS/TEMP] Mailbox not available");
    co_return;
  }
  mailbox_ = std::move(*mb);
  messages_ = mailbox_->messages();
  deleted_.assign(messages_.size(), false);
  retrieved_.assign(messages_.size(), false);
  account_ = name;
  log_.info("logged in", {{"user", who.user}, {"messages", std::to_string(messages_.size())}});
  ok("Logged in, " + std::to_string(messages_.size()) + " messages");
}

task<void> session::do_retr(std::size_t index, std::optional<std::uint32_t> top_lines) {
  auto r = co_await mailbox_->open(messages_[index].uid);
  if (!r) {
    err(r.error() == store::errc::no_such_message ? "Message was removed by another session"
                                                  : "[SYS/TEMP] Cannot read the message");
    co_return;
  }
  if (!top_lines) retrieved_[index] = true;
  ok(top_lines ? std::string("Top of message follows") : std::to_string((*r)->size()) + " octets");
  multiline_encoder enc(top_lines);
  std::vector<char> buf(64 * 1024);
  for (;;) {
    auto n = co_await (*r)->read(buf);
    if (!n) {  // the reply has begun: all we can do is end the connection
      log_.error("read failed in RETR", {{"error", n.error().message()}});
      quit_ = true;
      out_.clear();
      co_return;
    }
    if (*n == 0 || enc.done()) break;
    enc.feed(std::string_view(buf.data(), *n), out_);
    if (out_.size() >= 64 * 1024)
      if (auto w = co_await flush(); !w) {
        quit_ = true;
        co_return;
      }
  }
  enc.finish(out_);
}

task<void> session::do_quit() {
  quit_ = true;
  if (!mailbox_) {
    ok("Bye");
    co_return;
  }
  // UPDATE state.
  std::vector<store::uid_t> gone, seen;
  for (std::size_t i = 0; i < messages_.size(); ++i) {
    if (deleted_[i]) gone.push_back(messages_[i].uid);
    else if (retrieved_[i] && !messages_[i].flags.has(store::system_flag::seen)) seen.push_back(messages_[i].uid);
  }
  if (!seen.empty()) {
    store::flag_set f;
    f.set(store::system_flag::seen);
    if (auto r = co_await mailbox_->store(seen, store::flag_op::add, f); !r)
      log_.warning("cannot mark messages seen", {{"error", r.error().message()}});
  }
  if (!gone.empty()) {
    store::flag_set f;
    f.set(store::system_flag::deleted);
    auto marked = co_await mailbox_->store(gone, store::flag_op::add, f);
    std::error_code failure;
    std::size_t removed = 0;
    if (!marked) {
      failure = marked.error();
    } else {
      std::optional<std::span<store::uid_t const>> only(gone);
      auto expunged = co_await mailbox_->expunge(only);
      if (expunged) removed = expunged->size();
      else failure = expunged.error();
    }
    if (failure) {
      log_.error("cannot delete messages", {{"error", failure.message()}});
      err("[SYS/TEMP] Some messages could not be deleted");
      co_return;
    }
    log_.info("deleted", {{"messages", std::to_string(removed)}});
  }
  ok("Logging out, " + std::to_string(gone.size()) + " messages deleted");
}

task<void> run_session(std::shared_ptr<server::impl> self, std::unique_ptr<net::stream> stream,
                       asio::ip::tcp::endpoint remote, listener_options lo) {
  session s(*self, std::move(stream), remote, std::move(lo));
  net::server_core::guard g(self->core, s);
  try {
    co_await s.run();
  } catch (std::exception const& e) {
    self->log.error("session ended by exception", {{"error", e.what()}});
  }
}

}  // namespace

server::server(executor ex, server_options opts, log::logger logger)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(opts), std::move(logger))) {}

server::~server() { impl_->core->close_all(); }

std::size_t server::active_sessions() const noexcept { return impl_->core->active_sessions(); }

result<asio::ip::tcp::endpoint> server::listen(listener_options const& opts) {
  auto self = impl_;
  auto ep = impl_->core->listen(
      opts.endpoint, opts.reuse_port,
      [self, opts](std::unique_ptr<net::tcp_stream> s, asio::ip::tcp::endpoint remote, asio::ip::tcp::endpoint) {
        return run_session(self, std::move(s), remote, opts);
      },
      opts.implicit_tls ? "implicit-tls" : "plain");
  return ep;
}

task<void> server::shutdown(std::chrono::milliseconds grace) { return impl_->core->shutdown(grace); }

}  // namespace mailroom::pop3
