#include "mailroom/smtp/server.hpp"

#include <atomic>
#include <cstdio>
#include <algorithm>
#include <list>

#include <sys/socket.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "mailroom/core/base64.hpp"
#include "mailroom/core/text.hpp"
#include "mailroom/net/error.hpp"
#include "mailroom/net/line_reader.hpp"
#include "mailroom/net/tcp_stream.hpp"
#include "mailroom/net/tls/context.hpp"
#include "mailroom/sasl/server.hpp"
#include "mailroom/smtp/error.hpp"

namespace mailroom::smtp {

namespace {
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);
constexpr std::size_t max_sasl_line = 12288;  // RFC 4954 4

std::string make_session_id() {
  static std::atomic<std::uint32_t> counter{0};
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%011llX%04X", static_cast<unsigned long long>(us) & 0xFFFFFFFFFFFull,
                counter.fetch_add(1, std::memory_order_relaxed) & 0xFFFFu);
  return buf;
}

bool has_8bit(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0x80) return true;
  return false;
}

std::string endpoint_string(asio::ip::tcp::endpoint const& ep) {
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}
}  // namespace

// ---- default hooks ---------------------------------------------------------------------------

task<reply> session_handler::on_helo(std::string_view) { co_return replies::ok(); }
task<reply> session_handler::on_tls(net::tls_details const&) { co_return replies::ok(); }
task<reply> session_handler::on_auth(auth::identity const&) { co_return replies::auth_succeeded(); }
task<reply> session_handler::on_mail(address const&, mail_params const&) { co_return replies::sender_ok(); }
task<reply> session_handler::on_rcpt(address const&, rcpt_params const&) { co_return replies::recipient_ok(); }
task<std::vector<reply>> session_handler::on_data_per_recipient(message_source& body, std::size_t recipients) {
  auto r = co_await on_data(body);
  co_return std::vector<reply>(recipients, r);
}

task<reply> session_handler::on_vrfy(std::string_view) {
  co_return reply{252, {2, 5, 2}, "Cannot VRFY user, but will accept message and attempt delivery"};
}

task<result<std::string>> read_all(message_source& src) {
  std::string out;
  for (;;) {
    auto piece = co_await src.read();
    if (!piece) co_return fail(piece.error());
    if (piece->empty()) co_return out;
    out.append(piece->data(), piece->size());
  }
}

task<result<std::span<char const>>> memory_source::read() {
  while (step_ < 2) {
    std::string_view const piece = step_++ == 0 ? std::string_view(prefix_) : content_;
    if (piece.empty()) continue;
    handed_out_ += piece.size();
    co_return std::span<char const>(piece.data(), piece.size());
  }
  co_return std::span<char const>();
}

// ---- server state ----------------------------------------------------------------------------

class session;

struct server::impl {
  impl(executor e, std::shared_ptr<smtp::backend> b, server_options o, log::logger l)
      : ex(std::move(e)), be(std::move(b)), opts(std::move(o)), log(l.with_component("smtp")), drained(ex) {
    if (!opts.auth_throttle) opts.auth_throttle = std::make_shared<auth::throttle>();
  }

  executor ex;
  std::shared_ptr<smtp::backend> be;
  server_options opts;
  log::logger log;
  std::list<std::unique_ptr<asio::ip::tcp::acceptor>> acceptors;
  std::list<session*> sessions;
  bool stopping = false;
  asio::steady_timer drained;  // cancelled when the last session ends during shutdown
};

// ---- one session -----------------------------------------------------------------------------

class session {
 public:
  session(server::impl& srv, std::unique_ptr<net::stream> s, session_info info, listener_options lo)
      : srv_(srv),
        opts_(srv.opts),
        stream_(std::move(s)),
        reader_(srv.opts.max_line, std::max<std::size_t>(16 * 1024, max_sasl_line + 2)),
        info_(std::move(info)),
        listener_(std::move(lo)),
        log_(srv.log.with_id(info_.id)),
        watchdog_(srv.ex) {}

  task<void> run();

  /// Shutdown: idle sessions are woken and told 421; busy ones finish their command first;
  /// handshakes in progress are cut.
  void request_stop() noexcept {
    stop_ = true;
    if (handshake_lower_) handshake_lower_->close();
    else if (idle_ && stream_) stream_->cancel();
  }
  void force_close() noexcept {
    stop_ = true;
    if (handshake_lower_) handshake_lower_->close();
    else if (stream_) stream_->close();
  }

 private:
  friend class data_source;
  friend class bdat_source;

  // Output is collected and written when the client has nothing more pipelined (RFC 2920).
  void respond(reply const& r) {
    if (r.code >= 400) ++errors_;
    r.append_wire(out_);
    if (log_.enabled(log::level::trace)) log_.trace("reply", {{"line", r.wire()}});
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
  // A whole-line deadline on top of the per-read one: a client trickling a byte now and then
  // cannot hold a command line (or the session) open for longer than command_timeout.
  task<result<net::line_reader::line>> next_line(std::size_t limit = 0) {
    if (!line_buffered()) {
      auto w = co_await flush();
      if (!w) co_return fail(w.error());
    }
    idle_ = true;
    arm_watchdog(opts_.command_timeout);
    auto l = co_await reader_.read_line(*stream_, limit);
    disarm_watchdog();
    idle_ = false;
    if (!l && watchdog_fired_) co_return fail(net::errc::timeout);
    co_return l;
  }

  // The watchdog cancels the stream (or closes the transport under a TLS handshake) when an
  // operation takes longer than its overall deadline. Stale expiries are ignored by generation.
  void arm_watchdog(std::chrono::milliseconds d) {
    watchdog_fired_ = false;
    watchdog_.expires_after(d);
    watchdog_.async_wait([alive = std::weak_ptr<int>(alive_), gen = ++watchdog_gen_, this](std::error_code ec) {
      if (ec || alive.expired() || gen != watchdog_gen_) return;
      watchdog_fired_ = true;
      if (handshake_lower_) handshake_lower_->close();
      else if (stream_) stream_->cancel();
    });
  }
  void disarm_watchdog() {
    ++watchdog_gen_;
    watchdog_.cancel();
  }

  // TLS server handshake with an overall deadline; the transport stays reachable for shutdown.
  task<bool> start_tls() {
    handshake_lower_ = stream_.get();
    arm_watchdog(opts_.tls_handshake_timeout);
    auto t = co_await net::tls::accept(opts_.tls, std::move(stream_));
    disarm_watchdog();
    handshake_lower_ = nullptr;
    if (!t) {
      log_.info("TLS handshake failed", {{"error", watchdog_fired_ ? "timeout" : t.error().message()}});
      co_return false;
    }
    stream_ = std::move(*t);
    stream_->set_timeouts({opts_.command_timeout, opts_.command_timeout});
    info_.tls = *stream_->tls();
    co_return true;
  }

  extension_set extensions() const {
    extension_set e;
    e.esmtp = info_.esmtp;
    e.eight_bit_mime = info_.esmtp && opts_.eight_bit_mime;
    e.smtputf8 = info_.esmtp && opts_.smtputf8;
    e.dsn = info_.esmtp && opts_.dsn;
    e.chunking = info_.esmtp && opts_.chunking;
    e.max_size = opts_.max_message_size;
    return e;
  }
  /// The message size limit, with 0 meaning none (RFC 1870 "SIZE 0").
  std::uint64_t max_size() const noexcept { return opts_.max_message_size ? opts_.max_message_size : UINT64_MAX; }
  bool tls_available() const noexcept { return opts_.tls && !stream_->tls(); }
  bool auth_available() const {
    return opts_.auth && (stream_->tls() || listener_.allow_plaintext_auth) && !auth_mechanisms().empty();
  }
  std::vector<std::string> auth_mechanisms() const {
    std::vector<std::string> out;
    for (auto const& m : opts_.auth_mechanisms) {
      if (text::iequals(m, "SCRAM-SHA-256") && !opts_.auth->supports_scram()) continue;
      out.push_back(text::to_upper(m));
    }
    return out;
  }

  bool lmtp() const noexcept { return listener_.proto == protocol::lmtp; }

  // SMTP has one reply for the message, LMTP one per accepted recipient.
  task<std::vector<reply>> message_replies(message_source& src) {
    if (lmtp()) co_return co_await handler_->on_data_per_recipient(src, rcpts_);
    std::vector<reply> one;
    one.push_back(co_await handler_->on_data(src));
    co_return one;
  }

  void reset_transaction() {
    if (in_txn_ && handler_) handler_->on_reset();
    in_txn_ = false;
    rcpts_ = 0;
    mail_ = {};
  }

  task<void> dispatch(std::string_view line);
  task<void> do_helo(command const& c);
  task<void> do_starttls(command const& c);
  task<void> do_auth(command const& c);
  task<void> do_mail(command const& c);
  task<void> do_rcpt(command const& c);
  task<void> do_data(command const& c);
  task<void> do_bdat(command const& c);
  task<void> finish_message(std::error_code const& src_error, std::vector<reply> const& handler_replies);
  task<bool> discard_bytes(std::uint64_t n);
  task<bool> pregreet_ok();

  server::impl& srv_;
  server_options const& opts_;
  std::unique_ptr<net::stream> stream_;
  net::line_reader reader_;
  session_info info_;
  listener_options listener_;
  log::logger log_;
  std::unique_ptr<session_handler> handler_;
  std::string out_;
  std::size_t errors_ = 0;
  std::size_t auth_failures_ = 0;
  bool in_txn_ = false;
  std::size_t rcpts_ = 0;
  mail_params mail_;
  bool quit_ = false;
  bool stop_ = false;
  bool idle_ = false;
  std::optional<std::string> pending_line_;  // a command that ended a BDAT transaction early
  asio::steady_timer watchdog_;
  std::uint64_t watchdog_gen_ = 0;
  bool watchdog_fired_ = false;
  net::stream* handshake_lower_ = nullptr;  // the transport while tls::accept owns it
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

// DATA: decodes the dot-stuffed stream straight from the session's reader.
class data_source final : public message_source {
 public:
  explicit data_source(session& s) : s_(s) {}

  task<result<std::span<char const>>> read() override {
    while (!dec_.done()) {
      if (error_ && error_ != smtp::errc::message_too_big && error_ != smtp::errc::bare_newline) break;
      auto in = s_.reader_.buffered();
      if (in.empty()) {
        auto r = co_await s_.reader_.fill(*s_.stream_);
        if (!r) {
          error_ = r.error();
          break;
        }
        continue;
      }
      chunk_.clear();
      std::uint64_t room = s_.max_size() - size_;  // size_ never passes the limit
      if (error_) room = 0;  // failed already: discard up to the end
      auto st = dec_.decode(in, chunk_, static_cast<std::size_t>(std::min<std::uint64_t>(room, SIZE_MAX)));
      s_.reader_.consume(st.consumed);
      if (error_) continue;
      if (dec_.overflow()) {
        error_ = make_error_code(smtp::errc::message_too_big);
        co_return fail(error_);
      }
      if (dec_.bare_newlines() && s_.opts_.bare_newlines == bare_policy::reject) {
        error_ = make_error_code(smtp::errc::bare_newline);
        co_return fail(error_);
      }
      if (!chunk_.empty()) {
        size_ += chunk_.size();
        co_return std::span<char const>(chunk_.data(), chunk_.size());
      }
    }
    if (error_) co_return fail(error_);
    co_return std::span<char const>{};
  }
  std::uint64_t size() const noexcept override { return size_; }
  std::error_code const& error() const noexcept { return error_; }
  bool complete() const noexcept { return dec_.done(); }

 private:
  session& s_;
  data_decoder dec_;
  std::string chunk_;
  std::uint64_t size_ = 0;
  std::error_code error_;
};

// BDAT: raw chunks; between chunks it answers 250 and reads the next BDAT command itself, so the
// handler sees one continuous message across chunks.
class bdat_source final : public message_source {
 public:
  bdat_source(session& s, bdat_command first)
      : s_(s), remaining_(first.size), last_(first.last), total_(first.size), chunk_size_(first.size) {}

  task<result<std::span<char const>>> read() override {
    for (;;) {
      if (error_) co_return fail(error_);
      if (remaining_ > 0) {
        auto in = s_.reader_.buffered();
        if (in.empty()) {
          auto r = co_await s_.reader_.fill(*s_.stream_);
          if (!r) error_ = r.error();
          continue;
        }
        auto n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, in.size()));
        remaining_ -= n;
        size_ += n;
        s_.reader_.consume(n);  // the bytes stay in place until the reader is used again
        co_return std::span<char const>(in.data(), n);
      }
      if (last_) co_return std::span<char const>{};
      // Chunk done: acknowledge it once, then read what comes next.
      if (!acked_) {
        s_.respond(reply{250, {2, 0, 0}, std::to_string(chunk_size_) + " octets received"});
        acked_ = true;
      }
      auto line = co_await s_.next_line();
      if (!line) {
        if (line.error() == net::errc::line_too_long) {
          s_.respond(replies::line_too_long());
          continue_after_error();
          continue;
        }
        error_ = line.error();
        continue;
      }
      if (line->bare_lf) {
        s_.respond(replies::syntax_error("Bare <LF> received; commands must end with <CR><LF>"));
        continue_after_error();
        continue;
      }
      auto c = parse_command(line->text);
      if (c.v == verb::bdat) {
        auto b = parse_bdat(c.args);
        if (!b) {  // the chunk length is unknown: the stream cannot be resynchronised
          s_.respond(b.error());
          s_.quit_ = true;
          error_ = make_error_code(smtp::errc::protocol_error);
          continue;
        }
        if (b->size > s_.max_size() - total_) {
          oversize_chunk_ = b->size;
          error_ = make_error_code(smtp::errc::message_too_big);
          last_ = b->last;
          continue;
        }
        remaining_ = chunk_size_ = b->size;
        acked_ = false;
        total_ += b->size;
        last_ = b->last;
        continue;
      }
      if (c.v == verb::noop) {
        s_.respond(replies::ok());
        continue_after_error();
        continue;
      }
      if (c.v == verb::rset || c.v == verb::quit || c.v == verb::helo || c.v == verb::ehlo) {
        s_.pending_line_ = std::string(line->text);
        error_ = make_error_code(smtp::errc::transaction_aborted);
        continue;
      }
      s_.respond(replies::bad_sequence("BDAT transaction in progress; send BDAT or RSET"));
      continue_after_error();
    }
  }
  std::uint64_t size() const noexcept override { return size_; }
  std::error_code const& error() const noexcept { return error_; }
  std::uint64_t oversize_chunk() const noexcept { return oversize_chunk_; }
  bool complete() const noexcept { return !error_ && remaining_ == 0 && last_; }


 private:
  void continue_after_error() {
    if (s_.errors_ >= s_.opts_.max_errors) {
      s_.respond(reply{421, {4, 7, 0}, s_.opts_.hostname + " Error: too many errors"});
      s_.quit_ = true;
      error_ = make_error_code(smtp::errc::protocol_error);
    }
  }

  session& s_;
  std::uint64_t remaining_;
  bool last_;
  std::uint64_t total_;
  std::uint64_t chunk_size_;
  std::uint64_t size_ = 0;
  std::uint64_t oversize_chunk_ = 0;
  bool acked_ = false;
  std::error_code error_;
};

task<bool> session::pregreet_ok() {
  if (opts_.greet_delay.count() <= 0 || stream_->tls()) co_return true;
  stream_->set_timeouts({opts_.greet_delay, opts_.command_timeout});
  auto r = co_await reader_.fill(*stream_);
  stream_->set_timeouts({opts_.command_timeout, opts_.command_timeout});
  if (!r && r.error() == net::errc::timeout) co_return true;
  if (r) {
    log_.notice("client talked before the greeting", {{"client", endpoint_string(info_.remote)}});
    respond(reply{554, {5, 5, 1}, "Protocol error: client sent data before the greeting"});
  }
  co_return false;
}

task<void> session::run() {
  stream_->set_timeouts({opts_.command_timeout, opts_.command_timeout});
  // Per-connection lines sit on the accept path: build their fields only when they are wanted.
  if (log_.enabled(log::level::info)) log_.info("connect", {{"client", endpoint_string(info_.remote)}});
  if (listener_.mode == security::implicit_tls) {
    if (!opts_.tls) {
      log_.error("implicit TLS listener without a TLS context");
      co_return;
    }
    if (!co_await start_tls()) co_return;
  }
  if (co_await pregreet_ok()) {
    auto h = co_await srv_.be->new_session(info_);
    if (!h) {
      respond(h.error());
      log_.info("connection refused by backend", {{"reply", std::to_string(h.error().code)}});
    } else {
      handler_ = std::move(*h);
      if (info_.tls) {
        if (auto r = co_await handler_->on_tls(*info_.tls); !r.positive()) {
          respond(r);
          quit_ = true;
        }
      }
      if (!quit_)
        respond(reply{220, {0, 0, 0}, opts_.hostname + " " + (lmtp() ? std::string("LMTP mailroom") : opts_.greeting_text)});
      while (!quit_ && !stop_) {
        std::string pending;
        std::string_view line;
        if (pending_line_) {
          pending = std::move(*pending_line_);
          pending_line_.reset();
          line = pending;
        } else {
          // AUTH may carry an initial response up to 12288 octets (RFC 4954 4); others keep max_line.
          auto l = co_await next_line(opts_.auth ? std::max(opts_.max_line, max_sasl_line) : 0);
          if (!l) {
            if (l.error() == net::errc::line_too_long) {
              respond(replies::line_too_long());
            } else if (l.error() == net::errc::timeout) {
              respond(reply{421, {4, 4, 2}, opts_.hostname + " Error: timeout exceeded"});
              break;
            } else if (l.error() == asio::error::operation_aborted && stop_) {
              break;
            } else {
              log_.info("connection lost", {{"error", l.error().message()}});
              break;
            }
            if (errors_ >= opts_.max_errors) {
              respond(reply{421, {4, 7, 0}, opts_.hostname + " Error: too many errors"});
              break;
            }
            continue;
          }
          if (l->bare_lf) {
            // Commands end with CRLF only; accepting bare LF here lets a client desynchronise
            // from a proxy or filter in front of us.
            respond(replies::syntax_error("Bare <LF> received; commands must end with <CR><LF>"));
            if (errors_ >= opts_.max_errors) {
              respond(reply{421, {4, 7, 0}, opts_.hostname + " Error: too many errors"});
              break;
            }
            continue;
          }
          if (l->text.size() > opts_.max_line && parse_command(l->text).v != verb::auth) {
            respond(replies::line_too_long());
            continue;
          }
          line = l->text;
        }
        try {
          co_await dispatch(line);
        } catch (std::exception const& e) {
          log_.error("session handler failed", {{"error", e.what()}});
          respond(reply{421, {4, 3, 0}, opts_.hostname + " Error: local error in processing"});
          quit_ = true;
        }
        if (!quit_ && errors_ >= opts_.max_errors) {
          respond(reply{421, {4, 7, 0}, opts_.hostname + " Error: too many errors"});
          break;
        }
      }
      if (stop_ && !quit_) respond(replies::service_unavailable(opts_.hostname, "Service shutting down, closing channel"));
      reset_transaction();
      handler_->on_close();
    }
  }
  if (stream_) {
    co_await flush();
    co_await stream_->shutdown();
    stream_->close();
  }
  if (log_.enabled(log::level::info)) log_.info("disconnect", {{"errors", std::to_string(errors_)}});
}

task<void> session::dispatch(std::string_view line) {
  auto c = parse_command(line);
  if (log_.enabled(log::level::trace))  // never the AUTH payload, even at trace
    log_.trace("command", {{"line", c.v == verb::auth ? "AUTH " + std::string(c.args.substr(0, c.args.find(' '))) + " ..." : std::string(line)}});
  switch (c.v) {
    case verb::helo:
    case verb::ehlo:
      if (lmtp()) {
        respond(replies::syntax_error("Error: this is LMTP; use LHLO"));
        break;
      }
      co_await do_helo(c);
      break;
    case verb::lhlo:
      if (!lmtp()) {
        respond(replies::syntax_error("Error: LHLO is for LMTP; use EHLO"));
        break;
      }
      co_await do_helo(c);
      break;
    case verb::starttls:
      co_await do_starttls(c);
      break;
    case verb::auth:
      co_await do_auth(c);
      break;
    case verb::mail:
      co_await do_mail(c);
      break;
    case verb::rcpt:
      co_await do_rcpt(c);
      break;
    case verb::data:
      co_await do_data(c);
      break;
    case verb::bdat:
      co_await do_bdat(c);
      break;
    case verb::rset:
      if (!c.args.empty()) {
        respond(replies::bad_arguments("Syntax: RSET"));
        break;
      }
      reset_transaction();
      respond(replies::ok());
      break;
    case verb::noop:
      respond(replies::ok());
      break;
    case verb::quit:
      respond(replies::closing(opts_.hostname));
      quit_ = true;
      break;
    case verb::vrfy:
      if (!opts_.vrfy) {
        respond(replies::not_implemented("VRFY command is disabled"));
      } else if (c.args.empty()) {
        respond(replies::bad_arguments("Syntax: VRFY address"));
      } else {
        respond(co_await handler_->on_vrfy(c.args));
      }
      break;
    case verb::expn:
      respond(replies::not_implemented("EXPN command is disabled"));
      break;
    case verb::help:
      respond(reply{214, {2, 0, 0}, "mailroom: see https://www.rfc-editor.org/rfc/rfc5321"});
      break;
    case verb::unknown:
      // Web requests sent to a mail port are cross-protocol attacks; do not keep talking.
      if (c.name == "GET" || c.name == "POST" || c.name == "HEAD" || c.name == "CONNECT" || c.name == "PUT") {
        log_.notice("HTTP request on the SMTP port", {{"client", endpoint_string(info_.remote)}});
        respond(reply{421, {4, 7, 0}, opts_.hostname + " Error: this is an SMTP server"});
        quit_ = true;
        break;
      }
      respond(replies::syntax_error("Error: command not recognized"));
      break;
  }
}

task<void> session::do_helo(command const& c) {
  auto name = parse_helo(c.args);
  if (!name) {
    respond(name.error());
    co_return;
  }
  reset_transaction();
  auto r = co_await handler_->on_helo(*name);
  if (!r.positive()) {
    respond(r);
    co_return;
  }
  info_.helo = std::move(*name);
  info_.esmtp = c.v != verb::helo;
  if (!info_.esmtp) {
    respond(reply{250, {0, 0, 0}, opts_.hostname});
    co_return;
  }
  std::string t = opts_.hostname;
  if (opts_.pipelining) t += "\nPIPELINING";
  t += "\nSIZE " + std::to_string(opts_.max_message_size);
  if (opts_.vrfy) t += "\nVRFY";
  if (opts_.eight_bit_mime) t += "\n8BITMIME";
  if (opts_.smtputf8) t += "\nSMTPUTF8";
  if (tls_available()) t += "\nSTARTTLS";
  if (auth_available()) {
    t += "\nAUTH";
    for (auto const& m : auth_mechanisms()) t += " " + m;
  }
  t += "\nENHANCEDSTATUSCODES";
  if (opts_.chunking) t += "\nCHUNKING";
  if (opts_.dsn) t += "\nDSN";
  respond(reply{250, {0, 0, 0}, std::move(t)});
}

task<void> session::do_starttls(command const& c) {
  if (!c.args.empty()) {
    respond(replies::bad_arguments("Syntax: STARTTLS"));
    co_return;
  }
  if (stream_->tls()) {
    respond(reply{554, {5, 5, 1}, "Error: TLS already active"});
    co_return;
  }
  if (!opts_.tls) {
    respond(replies::not_implemented());
    co_return;
  }
  respond(reply{220, {2, 0, 0}, "Ready to start TLS"});
  auto w = co_await flush();
  if (!w) {
    quit_ = true;
    co_return;
  }
  // Anything the client pipelined after STARTTLS arrived in plaintext: it must not be executed
  // with the authority of the TLS session (CVE-2011-0411 and relatives).
  if (!reader_.buffered().empty()) {
    log_.notice("discarded input pipelined after STARTTLS", {{"bytes", std::to_string(reader_.buffered().size())}});
    reader_.discard_buffered();
  }
  if (!co_await start_tls()) {
    quit_ = true;
    co_return;
  }
  // RFC 3207 4.2: forget everything learned before TLS.
  reset_transaction();
  info_.helo.clear();
  info_.esmtp = false;
  info_.auth.reset();
  log_.info("TLS established", {{"version", info_.tls->version}, {"cipher", info_.tls->cipher}});
  if (auto r = co_await handler_->on_tls(*info_.tls); !r.positive()) {
    respond(r);
    quit_ = true;
  }
}

task<void> session::do_auth(command const& c) {
  if (!opts_.auth) {
    respond(replies::not_implemented("Error: authentication not enabled"));
    co_return;
  }
  if (!info_.esmtp) {
    respond(replies::bad_sequence("Error: send EHLO first"));
    co_return;
  }
  if (info_.auth) {
    respond(replies::bad_sequence("Error: already authenticated"));
    co_return;
  }
  if (in_txn_) {
    respond(replies::bad_sequence("Error: AUTH not allowed during a mail transaction"));
    co_return;
  }
  if (!auth_available()) {
    respond(replies::auth_plaintext_forbidden());
    co_return;
  }
  auto a = parse_auth(c.args);
  if (!a) {
    respond(a.error());
    co_return;
  }
  auto offered = auth_mechanisms();
  if (std::find(offered.begin(), offered.end(), a->mechanism) == offered.end()) {
    respond(replies::param_not_implemented("Unrecognized authentication type"));
    co_return;
  }
  auto mech = sasl::make_server_mechanism(a->mechanism);
  if (!mech) {
    respond(replies::param_not_implemented("Unrecognized authentication type"));
    co_return;
  }
  auto& m = **mech;

  std::string client_data;
  bool initial = false;
  if (a->initial_response) {
    initial = true;
    if (*a->initial_response != "=") {
      auto d = base64::decode(*a->initial_response);
      if (!d) {
        respond(replies::bad_arguments("Cannot decode AUTH parameter"));
        co_return;
      }
      client_data = std::move(*d);
    }
  }
  auth::identity identity;  // as the backend names the user, when it says so
  auto step = m.step(client_data, initial);
  for (;;) {
    switch (step.k) {
      case sasl::step_result::kind::challenge: {
        respond(reply{334, {0, 0, 0}, base64::encode(step.data)});
        auto l = co_await next_line(max_sasl_line);
        if (!l) {
          if (l.error() == net::errc::line_too_long) {
            respond(replies::line_too_long());
          } else {
            quit_ = true;
          }
          co_return;
        }
        if (l->text == "*") {
          respond(replies::bad_arguments("Authentication cancelled"));
          co_return;
        }
        auto d = base64::decode(l->text);
        if (!d) {
          respond(reply{501, {5, 5, 2}, "Cannot decode response"});
          co_return;
        }
        step = m.step(*d);
        break;
      }
      case sasl::step_result::kind::check_password: {
        auto const* creds = m.pending_credentials();
        bool ok = false;
        if (creds) {
          auto who = co_await opts_.auth->authenticate(*creds);
          ok = static_cast<bool>(who);
          if (who) {
            identity = std::move(*who);
          } else if (who.error() != mailroom::errc::unknown_credentials && who.error() != mailroom::errc::bad_credentials) {
            log_.warning("auth backend failed", {{"error", who.error().message()}});
            respond(reply{454, {4, 7, 0}, "Temporary authentication failure"});
            co_return;
          }
        }
        step = m.password_checked(ok);
        break;
      }
      case sasl::step_result::kind::need_scram_secret: {
        auto secret = co_await opts_.auth->scram_secret(m.scram_user());
        if (!secret && secret.error() != mailroom::errc::unknown_credentials) {
          log_.warning("auth backend failed", {{"error", secret.error().message()}});
          respond(reply{454, {4, 7, 0}, "Temporary authentication failure"});
          co_return;
        }
        step = m.set_scram_secret(secret ? &*secret : nullptr);
        break;
      }
      case sasl::step_result::kind::success: {
        if (!step.data.empty()) {
          // Additional data with success goes in a final challenge (RFC 4954 4).
          respond(reply{334, {0, 0, 0}, base64::encode(step.data)});
          auto l = co_await next_line(max_sasl_line);
          if (!l) {
            quit_ = true;
            co_return;
          }
          if (!l->text.empty()) {
            respond(replies::auth_failed());
            co_return;
          }
        }
        auth::identity who = identity.user.empty() ? auth::identity{m.authcid()} : std::move(identity);
        auto r = co_await handler_->on_auth(who);
        if (!r.positive()) {
          respond(r);
          co_return;
        }
        info_.auth = std::move(who);
        opts_.auth_throttle->success(info_.remote.address());
        log_.info("authenticated", {{"user", info_.auth->user}, {"mechanism", std::string(m.name())}});
        respond(r);
        co_return;
      }
      case sasl::step_result::kind::failure: {
        ++auth_failures_;
        log_.notice("authentication failed",
                    {{"mechanism", std::string(m.name())}, {"client", endpoint_string(info_.remote)}});
        if (auto delay = opts_.auth_throttle->failure(info_.remote.address()); delay.count() > 0) {
          asio::steady_timer t(stream_->get_executor(), delay);
          co_await t.async_wait(use_tuple);
        }
        if (step.error == sasl::errc::malformed) {
          respond(replies::bad_arguments("Malformed authentication data"));
        } else {
          respond(replies::auth_failed());
        }
        if (auth_failures_ >= opts_.max_auth_failures) {
          respond(reply{421, {4, 7, 0}, opts_.hostname + " Error: too many failed authentications"});
          quit_ = true;
        }
        co_return;
      }
    }
  }
}

task<void> session::do_mail(command const& c) {
  if (info_.helo.empty()) {
    respond(replies::bad_sequence("Error: send HELO/EHLO first"));
    co_return;
  }
  if (in_txn_) {
    respond(replies::bad_sequence("Error: nested MAIL command"));
    co_return;
  }
  if (listener_.mode == security::starttls_required && !stream_->tls()) {
    respond(replies::encryption_required());
    co_return;
  }
  if (listener_.require_auth && !info_.auth) {
    respond(replies::auth_required());
    co_return;
  }
  auto m = parse_mail(c.args, extensions());
  if (!m) {
    respond(m.error());
    co_return;
  }
  if (m->params.auth && !info_.auth) m->params.auth = "<>";  // untrusted: RFC 4954 5
  auto r = co_await handler_->on_mail(m->from, m->params);
  if (r.positive()) {
    in_txn_ = true;
    rcpts_ = 0;
    mail_ = std::move(m->params);
  }
  respond(r);
}

task<void> session::do_rcpt(command const& c) {
  if (!in_txn_) {
    respond(replies::bad_sequence("Error: need MAIL command"));
    co_return;
  }
  if (rcpts_ >= opts_.max_recipients) {
    respond(replies::too_many_recipients());
    co_return;
  }
  auto r = parse_rcpt(c.args, extensions());
  if (!r) {
    respond(r.error());
    co_return;
  }
  if (!mail_.smtputf8 && (has_8bit(r->to.local) || has_8bit(r->to.domain))) {
    respond(reply{553, {5, 6, 7}, "Non-ASCII address requires SMTPUTF8"});
    co_return;
  }
  auto rep = co_await handler_->on_rcpt(r->to, r->params);
  if (rep.positive()) ++rcpts_;
  respond(rep);
}

task<void> session::finish_message(std::error_code const& err, std::vector<reply> const& handler_replies) {
  std::size_t const expected = lmtp() ? rcpts_ : 1;
  auto each = [&](reply const& r) {
    for (std::size_t i = 0; i < expected; ++i) respond(r);
  };
  if (!err) {
    if (handler_replies.size() == expected) {
      for (auto const& r : handler_replies) respond(r);
    } else {
      log_.error("handler gave the wrong number of replies",
                 {{"expected", std::to_string(expected)}, {"got", std::to_string(handler_replies.size())}});
      each(replies::local_error());
    }
  } else if (err == smtp::errc::message_too_big) {
    each(replies::message_too_big());
  } else if (err == smtp::errc::bare_newline) {
    each(reply{550, {5, 6, 0}, "Message contains bare <CR> or <LF>; lines must end with <CR><LF> (RFC 5321 2.3.8)"});
  } else if (err == smtp::errc::transaction_aborted || err == smtp::errc::protocol_error) {
    // RSET/QUIT/EHLO ended a BDAT transaction (it is processed next), or the stream is lost.
  } else {
    log_.info("connection lost during message", {{"error", err.message()}});
    quit_ = true;
  }
  reset_transaction();
  co_return;
}

task<void> session::do_data(command const& c) {
  if (!c.args.empty()) {
    respond(replies::bad_arguments("Syntax: DATA"));
    co_return;
  }
  if (!in_txn_) {
    respond(replies::bad_sequence("Error: need MAIL command"));
    co_return;
  }
  if (rcpts_ == 0) {
    respond(reply{554, {5, 5, 1}, "Error: no valid recipients"});
    co_return;
  }
  if (!reader_.buffered().empty()) {
    // RFC 2920: DATA ends a pipelined group; message text before 354 is a desynchronised or
    // malicious client. Its bytes cannot be told apart from commands, so end the session.
    log_.notice("improper pipelining after DATA", {{"client", endpoint_string(info_.remote)}});
    respond(reply{554, {5, 5, 0}, "Error: SMTP protocol synchronization (data sent before 354)"});
    quit_ = true;
    co_return;
  }
  respond(replies::start_data());
  if (auto w = co_await flush(); !w) {
    quit_ = true;
    co_return;
  }
  stream_->set_timeouts({opts_.data_timeout, opts_.data_timeout});
  data_source src(*this);
  auto r = co_await message_replies(src);
  while (!src.complete()) {  // whatever the handler left unread
    auto piece = co_await src.read();
    if (!piece && piece.error() != smtp::errc::message_too_big && piece.error() != smtp::errc::bare_newline) break;
  }
  stream_->set_timeouts({opts_.command_timeout, opts_.command_timeout});
  co_await finish_message(src.error(), r);
}

task<bool> session::discard_bytes(std::uint64_t n) {
  while (n > 0) {
    auto in = reader_.buffered();
    if (in.empty()) {
      auto r = co_await reader_.fill(*stream_);
      if (!r) co_return false;
      continue;
    }
    auto k = static_cast<std::size_t>(std::min<std::uint64_t>(n, in.size()));
    reader_.consume(k);
    n -= k;
  }
  co_return true;
}

task<void> session::do_bdat(command const& c) {
  auto b = parse_bdat(c.args);
  if (!b || !opts_.chunking) {
    // Without a valid length the chunk's end cannot be found: stop reading from this client.
    respond(b ? replies::not_implemented() : b.error());
    quit_ = true;
    co_return;
  }
  if (b->size > max_size()) {
    respond(replies::message_too_big());
    quit_ = true;
    reset_transaction();
    co_return;
  }
  if (!in_txn_ || rcpts_ == 0) {
    stream_->set_timeouts({opts_.data_timeout, opts_.data_timeout});
    bool ok = co_await discard_bytes(b->size);
    stream_->set_timeouts({opts_.command_timeout, opts_.command_timeout});
    if (!ok) {
      quit_ = true;
      co_return;
    }
    respond(in_txn_ ? reply{554, {5, 5, 1}, "Error: no valid recipients"} : replies::bad_sequence("Error: need MAIL command"));
    co_return;
  }
  stream_->set_timeouts({opts_.data_timeout, opts_.data_timeout});
  bdat_source src(*this, *b);
  auto r = co_await message_replies(src);
  while (!src.complete() && !src.error()) (void)co_await src.read();
  if (src.error() == smtp::errc::message_too_big && !quit_) {
    if (src.oversize_chunk() > max_size()) {
      quit_ = true;  // too large to skip
    } else if (!co_await discard_bytes(src.oversize_chunk())) {
      quit_ = true;
    }
  }
  stream_->set_timeouts({opts_.command_timeout, opts_.command_timeout});
  co_await finish_message(src.error(), r);
}

// ---- server ----------------------------------------------------------------------------------

server::server(executor ex, std::shared_ptr<backend> be, server_options opts, log::logger logger)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(be), std::move(opts), std::move(logger))) {}

server::~server() {
  for (auto& a : impl_->acceptors) {
    std::error_code ignored;
    a->close(ignored);
  }
  for (auto* s : impl_->sessions) s->force_close();
}

std::size_t server::active_sessions() const noexcept { return impl_->sessions.size(); }
server_options const& server::options() const noexcept { return impl_->opts; }

namespace {
task<void> refuse(std::unique_ptr<net::tcp_stream> s, std::string text) {
  s->set_timeouts({std::chrono::seconds(5), std::chrono::seconds(5)});
  (void)co_await s->write(std::string_view(text));
  co_await s->shutdown();
}

task<void> run_session(std::shared_ptr<server::impl> self, std::unique_ptr<net::stream> stream,
                       asio::ip::tcp::endpoint remote, asio::ip::tcp::endpoint local, listener_options lo) {
  session_info info;
  info.id = make_session_id();
  info.remote = remote;
  info.local = local;
  info.proto = lo.proto;
  session s(*self, std::move(stream), std::move(info), std::move(lo));
  auto it = self->sessions.insert(self->sessions.end(), &s);
  try {
    co_await s.run();
  } catch (std::exception const& e) {
    self->log.error("session ended by exception", {{"error", e.what()}});
  }
  self->sessions.erase(it);
  if (self->stopping && self->sessions.empty()) self->drained.cancel();
}

// Holds the impl, never the server object, so a server destroyed mid-accept is never touched.
task<void> accept_loop(std::shared_ptr<server::impl> self, asio::ip::tcp::acceptor* acc, listener_options lo) {
  for (;;) {
    auto [ec, sock] = co_await acc->async_accept(use_tuple);
    if (self->stopping || ec == asio::error::operation_aborted || !acc->is_open()) co_return;
    if (ec) {
      self->log.warning("accept failed", {{"error", ec.message()}});
      asio::steady_timer t(self->ex, std::chrono::milliseconds(100));  // EMFILE and friends: back off
      co_await t.async_wait(use_tuple);
      continue;
    }
    std::error_code e1, e2;
    auto remote = sock.remote_endpoint(e1);
    auto local = sock.local_endpoint(e2);
    auto stream = std::make_unique<net::tcp_stream>(std::move(sock));
    if (self->sessions.size() >= self->opts.max_connections) {
      asio::co_spawn(self->ex,
                     refuse(std::move(stream), reply{421, {4, 7, 0}, self->opts.hostname + " Error: too many connections"}.wire()),
                     asio::detached);
      continue;
    }
    asio::co_spawn(self->ex, run_session(self, std::move(stream), remote, local, lo), asio::detached);
  }
}
}  // namespace

result<asio::ip::tcp::endpoint> server::listen(listener_options const& opts) {
  asio::ip::tcp::acceptor acc(impl_->ex);
  std::error_code ec;
  acc.open(opts.endpoint.protocol(), ec);
  if (ec) return fail(ec);
  acc.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (opts.reuse_port) {
    int one = 1;
    if (::setsockopt(acc.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
      return fail(std::error_code(errno, std::system_category()));
  }
  acc.bind(opts.endpoint, ec);
  if (ec) return fail(ec);
  acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail(ec);
  auto ep = acc.local_endpoint(ec);
  if (ec) return fail(ec);
  listen(std::move(acc), opts);
  impl_->log.info("listening", {{"address", endpoint_string(ep)},
                                {"mode", opts.mode == security::implicit_tls      ? "implicit-tls"
                                         : opts.mode == security::starttls_required ? "starttls-required"
                                                                                    : "plain"}});
  return ep;
}

void server::listen(asio::ip::tcp::acceptor acceptor, listener_options const& opts) {
  impl_->acceptors.push_back(std::make_unique<asio::ip::tcp::acceptor>(std::move(acceptor)));
  asio::co_spawn(impl_->ex, accept_loop(impl_, impl_->acceptors.back().get(), opts), asio::detached);
}

task<void> server::serve(std::unique_ptr<net::stream> stream, asio::ip::tcp::endpoint remote,
                         asio::ip::tcp::endpoint local, listener_options const& opts) {
  return run_session(impl_, std::move(stream), remote, local, opts);
}

task<void> server::shutdown(std::chrono::milliseconds grace) {
  auto self = impl_;
  self->stopping = true;
  for (auto& a : self->acceptors) {
    std::error_code ignored;
    a->close(ignored);
  }
  for (auto* s : self->sessions) s->request_stop();
  if (!self->sessions.empty()) {
    self->drained.expires_after(grace);
    co_await self->drained.async_wait(use_tuple);
  }
  if (!self->sessions.empty()) {
    self->log.notice("closing sessions still busy after the grace period",
                     {{"sessions", std::to_string(self->sessions.size())}});
    for (auto* s : self->sessions) s->force_close();
    while (!self->sessions.empty()) {
      self->drained.expires_after(std::chrono::milliseconds(50));
      co_await self->drained.async_wait(use_tuple);
    }
  }
  self->acceptors.clear();
}

}  // namespace mailroom::smtp
