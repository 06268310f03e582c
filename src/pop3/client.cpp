#include "mailroom/pop3/client.hpp"

#include <algorithm>
#include <array>
#include <map>
#include <mutex>
#include <span>

#include <asio/steady_timer.hpp>

#include "mailroom/core/base64.hpp"
#include "mailroom/core/error.hpp"
#include "mailroom/core/text.hpp"
#include "mailroom/net/error.hpp"
#include "mailroom/net/tls/context.hpp"
#include "mailroom/pop3/command.hpp"  // parse_number
#include "mailroom/sasl/client.hpp"

namespace mailroom::pop3 {

namespace {

constexpr std::size_t read_buffer_size = 4096;
constexpr int max_auth_rounds = 8;          // "+ " challenges before we give up on a server
constexpr std::size_t max_capa_lines = 1000;

std::error_code not_connected() { return std::make_error_code(std::errc::not_connected); }

bool sendable(std::string_view s) { return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos; }

// "number value" (LIST: value is the size; UIDL: the unique-id). Extra words after the value
// are ignored (RFC 1939 allows none, some servers add them).
bool split_entry(std::string_view l, std::uint32_t& n, std::string_view& value) {
  auto const sp = l.find(' ');
  if (sp == std::string_view::npos) return false;
  auto num = parse_number(l.substr(0, sp));
  if (!num || *num == 0) return false;
  value = l.substr(sp + 1);
  value = value.substr(0, value.find(' '));
  n = *num;
  return !value.empty();
}

bool valid_uidl(std::string_view u) {
  if (u.empty() || u.size() > 70) return false;
  return std::all_of(u.begin(), u.end(), [](char c) { return c >= 0x21 && c <= 0x7e; });
}

}  // namespace

struct client::impl {
  impl(std::unique_ptr<net::stream> s, client_options o, log::logger l)
      : stream(std::move(s)),
        opts(std::move(o)),
        log(l.with_component("pop3-client")),
        reader(opts.max_line),
        watchdog(stream->get_executor()) {}

  ~impl() {
    ++watchdog_gen;
    if (stream) stream->close();
  }

  std::unique_ptr<net::stream> stream;
  client_options opts;
  log::logger log;
  response_reader reader;
  capabilities caps;
  std::string last;
  std::array<char, read_buffer_size> rbuf{};
  asio::steady_timer watchdog;
  std::uint64_t watchdog_gen = 0;
  bool watchdog_fired = false;
  net::stream* handshake_lower = nullptr;  // the transport while tls::connect owns it
  std::shared_ptr<int> alive = std::make_shared<int>(0);
  std::error_code closed;  // set once the connection is given up
  bool started = false;    // login() was called
  bool logged_in = false;
  bool tls_active = false;
  bool capa_known = false;  // the last CAPA was answered +OK

  bool usable() const noexcept { return stream && !closed; }
  bool ready() const noexcept { return logged_in && usable(); }
  std::chrono::milliseconds timeout() const { return opts.timeout; }

  // The whole-line deadline (see the header); on expiry the stream is cancelled, or the
  // transport closed under a handshake.
  void arm() {
    watchdog_fired = false;
    watchdog.expires_after(timeout());
    watchdog.async_wait([weak = std::weak_ptr<int>(alive), gen = ++watchdog_gen, this](std::error_code ec) {
      if (ec || weak.expired() || gen != watchdog_gen) return;
      watchdog_fired = true;
      if (handshake_lower) handshake_lower->close();
      else if (stream) stream->cancel();
    });
  }
  void disarm() {
    ++watchdog_gen;
    watchdog.cancel();
  }

  /// Gives the connection up: closes it and remembers why. Returns ec for `fail(...)`.
  std::error_code abort_with(std::error_code ec) {
    if (!closed) {
      closed = ec;
      log.info("connection aborted", {{"error", ec.message()}});
    }
    if (stream) stream->close();
    return ec;
  }

  /// `shown` is what the trace log gets instead of the line (credentials); empty: the line.
  task<result<void>> write(std::string_view line, std::string_view shown = {}) {
    if (!usable()) co_return fail(not_connected());
    if (log.enabled(log::level::trace)) {
      std::string s(shown.empty() ? line : shown);
      while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
      log.trace("command", {{"line", std::move(s)}});
    }
    stream->set_timeouts({timeout(), timeout()});
    auto w = co_await stream->write(line);
    if (!w) co_return fail(abort_with(w.error()));
    co_return result<void>{};
  }

  // One read into the reader; errors close the connection.
  task<result<void>> fill() {
    std::span<char> buf(rbuf.data(), rbuf.size());
    auto n = co_await stream->read_some(buf);
    if (!n) {
      std::error_code const ec = watchdog_fired ? make_error_code(net::errc::timeout) : n.error();
      co_return fail(abort_with(ec));
    }
    reader.feed(std::string_view(rbuf.data(), *n));
    co_return result<void>{};
  }

  task<result<status>> read_status() {
    if (!usable()) co_return fail(not_connected());
    stream->set_timeouts({timeout(), timeout()});
    arm();
    for (;;) {
      auto st = reader.next_status();
      if (!st) {
        disarm();
        co_return fail(abort_with(st.error()));
      }
      if (*st) {
        disarm();
        last = (*st)->line;
        if (log.enabled(log::level::trace)) log.trace("response", {{"line", last}});
        co_return std::move(**st);
      }
      auto f = co_await fill();
      if (!f) {
        disarm();
        co_return fail(f.error());
      }
    }
  }

  /// A status that must be +OK or -ERR (a continuation here is a protocol error).
  task<result<bool>> read_ok() {
    auto st = co_await read_status();
    if (!st) co_return fail(st.error());
    if (st->k == status::kind::continuation) co_return fail(abort_with(make_error_code(errc::protocol_error)));
    co_return st->k == status::kind::ok;
  }

  /// The lines of a multi-line body after +OK, each handed to `on_line` (false: stop with its
  /// error, set in `err`), up to `max_lines` lines.
  template <class F>
  task<result<void>> read_lines(std::size_t max_lines, F& on_line) {
    stream->set_timeouts({timeout(), timeout()});
    std::size_t count = 0;
    for (;;) {
      auto l = reader.next_line();
      if (!l) co_return fail(abort_with(l.error()));
      if (!*l) {
        auto f = co_await fill();
        if (!f) co_return fail(f.error());
        continue;
      }
      if ((*l)->end) co_return result<void>{};
      if (++count > max_lines) co_return fail(abort_with(make_error_code(errc::too_large)));
      if (std::error_code ec = on_line((*l)->text)) co_return fail(abort_with(ec));
    }
  }

  task<result<void>> capa();
  task<result<void>> starttls(std::shared_ptr<net::tls::client_context> ctx);
  task<result<void>> authenticate();
  task<result<void>> sasl_login(std::string const& name);
  task<result<void>> user_pass();
  task<result<std::map<std::uint32_t, std::string>>> listing_of();
};

task<result<void>> client::impl::capa() {
  caps = {};
  capa_known = false;
  if (auto w = co_await write("CAPA\r\n"); !w) co_return fail(w.error());
  auto ok = co_await read_ok();
  if (!ok) co_return fail(ok.error());
  if (!*ok) co_return result<void>{};  // no CAPA (RFC 1939 only): nothing known
  capa_known = true;
  auto on_line = [this](std::string const& line) -> std::error_code {
    std::string_view l = line;
    auto const sp = l.find(' ');
    std::string const kw = text::to_upper(l.substr(0, sp));
    if (kw == "STLS") caps.stls = true;
    else if (kw == "USER") caps.user = true;
    else if (kw == "UIDL") caps.uidl = true;
    else if (kw == "TOP") caps.top = true;
    else if (kw == "PIPELINING") caps.pipelining = true;
    else if (kw == "SASL" && sp != std::string_view::npos) {
      std::string_view rest = l.substr(sp + 1);
      while (!rest.empty()) {
        auto const end = rest.find(' ');
        auto const mech = rest.substr(0, end);
        rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
        if (mech.empty() || mech.size() > 40 || caps.sasl.size() >= 32) continue;
        std::string up = text::to_upper(mech);
        if (std::find(caps.sasl.begin(), caps.sasl.end(), up) == caps.sasl.end()) caps.sasl.push_back(std::move(up));
      }
    }
    return {};
  };
  co_return co_await read_lines(max_capa_lines, on_line);
}

task<result<void>> client::impl::starttls(std::shared_ptr<net::tls::client_context> ctx) {
  if (auto w = co_await write("STLS\r\n"); !w) co_return fail(w.error());
  auto ok = co_await read_ok();
  if (!ok) co_return fail(ok.error());
  if (!*ok) {
    log.notice("STLS refused", {{"response", last}});
    co_return fail(make_error_code(errc::refused));
  }
  // Whatever came with the +OK arrived in plaintext: read as responses from inside TLS it would
  // let a man in the middle answer for the server (response injection).
  if (reader.buffered() != 0) {
    log.notice("discarded plaintext sent after the STLS response", {{"bytes", std::to_string(reader.buffered())}});
    reader.discard_buffered();
  }
  auto lower = std::move(stream);
  handshake_lower = lower.get();
  lower->set_timeouts({timeout(), timeout()});
  arm();
  auto t = co_await net::tls::connect(ctx, std::move(lower), opts.tls_name);
  disarm();
  handshake_lower = nullptr;
  if (!t) {
    std::error_code const ec = watchdog_fired ? make_error_code(net::errc::timeout) : t.error();
    log.notice("TLS handshake failed", {{"error", ec.message()}, {"name", opts.tls_name}});
    co_return fail(abort_with(ec));
  }
  stream = std::move(*t);
  tls_active = true;
  if (auto const* d = stream->tls()) log.info("TLS established", {{"version", d->version}, {"cipher", d->cipher}});
  // RFC 2595 4: forget what the server said before TLS and ask again.
  co_return co_await capa();
}

task<result<void>> client::impl::authenticate() {
  if (!tls_active && !opts.allow_plaintext_auth) {
    log.notice("not sending credentials without TLS");
    co_return fail(make_error_code(errc::auth_unavailable));
  }
  for (std::string const name : {"SCRAM-SHA-256", "PLAIN"}) {
    if (std::find(caps.sasl.begin(), caps.sasl.end(), name) != caps.sasl.end()) co_return co_await sasl_login(name);
  }
  if (capa_known && !caps.user) {
    log.notice("neither USER nor a usable SASL mechanism offered");
    co_return fail(make_error_code(errc::auth_unavailable));
  }
  co_return co_await user_pass();
}

task<result<void>> client::impl::sasl_login(std::string const& name) {
  sasl::credentials creds;
  creds.authcid = opts.user;
  creds.password = opts.password;
  auto made = sasl::make_client_mechanism(name, std::move(creds));
  if (!made) co_return fail(made.error());
  auto& mech = **made;

  // RFC 5034 4: the initial response goes with AUTH ("=" when empty).
  std::string cmd = "AUTH " + name;
  if (auto ir = mech.initial_response()) {
    cmd += ' ';
    cmd += ir->empty() ? std::string("=") : base64::encode(*ir);
  }
  cmd += "\r\n";
  std::string const shown = "AUTH " + name + " ...";
  auto w = co_await write(cmd, shown);
  std::fill(cmd.begin(), cmd.end(), '\0');
  if (!w) co_return fail(w.error());
  for (int round = 0;; ++round) {
    auto st = co_await read_status();
    if (!st) co_return fail(st.error());
    if (st->k == status::kind::continuation) {
      if (round >= max_auth_rounds) co_return fail(abort_with(make_error_code(errc::protocol_error)));
      auto challenge = base64::decode(st->text);
      result<std::string> answer =
          challenge ? mech.respond(*challenge) : result<std::string>(fail(sasl::errc::malformed));
      if (!answer) {
        // Cancel the exchange (RFC 5034 4); the server answers -ERR.
        log.notice("AUTH exchange abandoned", {{"mechanism", name}, {"error", answer.error().message()}});
        if (auto c = co_await write("*\r\n"); !c) co_return fail(c.error());
        if (auto c = co_await read_status(); !c) co_return fail(c.error());
        co_return fail(answer.error());
      }
      std::string line = base64::encode(*answer) + "\r\n";
      auto lw = co_await write(line, "(SASL response)");
      std::fill(line.begin(), line.end(), '\0');
      if (!lw) co_return fail(lw.error());
      continue;
    }
    if (st->k == status::kind::ok) {
      if (!mech.complete()) {
        // A SCRAM server that never proved it knows the password: not the server we meant.
        log.warning("server claimed AUTH success without completing the exchange", {{"mechanism", name}});
        co_return fail(abort_with(make_error_code(sasl::errc::authentication_failed)));
      }
      log.info("authenticated", {{"mechanism", name}});
      co_return result<void>{};
    }
    log.notice("authentication refused", {{"mechanism", name}, {"response", last}});
    co_return fail(make_error_code(errc::auth_failed));
  }
}

task<result<void>> client::impl::user_pass() {
  std::string const user = "USER " + opts.user + "\r\n";
  if (auto w = co_await write(user); !w) co_return fail(w.error());
  auto ok = co_await read_ok();
  if (!ok) co_return fail(ok.error());
  if (!*ok) {
    log.notice("USER refused", {{"response", last}});
    co_return fail(make_error_code(errc::auth_failed));
  }
  std::string pass = "PASS " + opts.password + "\r\n";
  auto w = co_await write(pass, "PASS ...");
  std::fill(pass.begin(), pass.end(), '\0');
  if (!w) co_return fail(w.error());
  ok = co_await read_ok();
  if (!ok) co_return fail(ok.error());
  if (!*ok) {
    log.notice("PASS refused", {{"response", last}});
    co_return fail(make_error_code(errc::auth_failed));
  }
  log.info("authenticated", {{"mechanism", "USER"}});
  co_return result<void>{};
}

// LIST or UIDL without argument: number -> value, in order, each number once.
task<result<std::map<std::uint32_t, std::string>>> client::impl::listing_of() {
  std::map<std::uint32_t, std::string> out;
  auto on_line = [&out](std::string const& line) -> std::error_code {
    std::uint32_t n = 0;
    std::string_view value;
    if (!split_entry(line, n, value)) return make_error_code(errc::malformed_response);
    if (!out.emplace(n, std::string(value)).second) return make_error_code(errc::protocol_error);
    return {};
  };
  auto r = co_await read_lines(opts.max_listing, on_line);
  if (!r) co_return fail(r.error());
  co_return out;
}

// ---- client ----------------------------------------------------------------------------------

client::client(std::unique_ptr<net::stream> s, client_options opts, log::logger logger)
    : impl_(std::make_unique<impl>(std::move(s), std::move(opts), std::move(logger))) {}
client::~client() = default;
client::client(client&&) noexcept = default;
client& client::operator=(client&&) noexcept = default;

std::string const& client::last_response() const noexcept { return impl_->last; }
capabilities const& client::capa() const noexcept { return impl_->caps; }
bool client::tls() const noexcept { return impl_->tls_active; }

task<result<void>> client::login() {
  auto& s = *impl_;
  if (s.started) co_return fail(mailroom::errc::invalid_argument);
  if (!s.usable()) co_return fail(not_connected());
  auto const policy = s.opts.tls;
  if (s.opts.user.empty() || !sendable(s.opts.user) || !sendable(s.opts.password) ||
      s.opts.user.find(' ') != std::string::npos)
    co_return fail(mailroom::errc::invalid_argument);
  if (policy == net::tls::policy::verify && s.opts.tls_name.empty()) co_return fail(mailroom::errc::invalid_argument);
  std::shared_ptr<net::tls::client_context> ctx = s.opts.tls_context;
  if ((s.opts.implicit_tls || policy != net::tls::policy::none) && !ctx) {
    auto shared = net::tls::shared_client_context(policy == net::tls::policy::verify);
    if (!shared) co_return fail(shared.error());
    ctx = std::move(*shared);
  }
  s.started = true;

  if (s.opts.implicit_tls) {
    auto lower = std::move(s.stream);
    s.handshake_lower = lower.get();
    lower->set_timeouts({s.timeout(), s.timeout()});
    s.arm();
    auto t = co_await net::tls::connect(ctx, std::move(lower), s.opts.tls_name);
    s.disarm();
    s.handshake_lower = nullptr;
    if (!t) {
      std::error_code const ec = s.watchdog_fired ? make_error_code(net::errc::timeout) : t.error();
      s.log.notice("TLS handshake failed", {{"error", ec.message()}, {"name", s.opts.tls_name}});
      co_return fail(s.abort_with(ec));
    }
    s.stream = std::move(*t);
    s.tls_active = true;
    if (auto const* d = s.stream->tls()) s.log.info("TLS established", {{"version", d->version}, {"cipher", d->cipher}});
  }

  auto greeting = co_await s.read_ok();
  if (!greeting) co_return fail(greeting.error());
  if (!*greeting) {
    s.log.notice("server refused the session", {{"response", s.last}});
    co_return fail(s.abort_with(make_error_code(errc::refused)));
  }
  if (auto c = co_await s.capa(); !c) co_return fail(c.error());

  if (!s.tls_active && policy != net::tls::policy::none) {
    bool const must = policy == net::tls::policy::required || policy == net::tls::policy::verify;
    if (s.caps.stls) {
      if (auto t = co_await s.starttls(ctx); !t) co_return fail(t.error());
    } else if (must) {
      s.log.notice("STLS required by policy but not offered");
      co_return fail(s.abort_with(make_error_code(errc::stls_unavailable)));
    }
  }
  if (auto a = co_await s.authenticate(); !a) co_return fail(a.error());
  s.logged_in = true;
  co_return result<void>{};
}

task<result<std::vector<listing>>> client::list() {
  auto& s = *impl_;
  if (!s.ready()) co_return fail(not_connected());
  if (auto w = co_await s.write("UIDL\r\n"); !w) co_return fail(w.error());
  auto ok = co_await s.read_ok();
  if (!ok) co_return fail(ok.error());
  if (!*ok) co_return fail(make_error_code(errc::no_uidl));
  auto uidls = co_await s.listing_of();
  if (!uidls) co_return fail(uidls.error());

  if (auto w = co_await s.write("LIST\r\n"); !w) co_return fail(w.error());
  ok = co_await s.read_ok();
  if (!ok) co_return fail(ok.error());
  if (!*ok) co_return fail(make_error_code(errc::refused));
  auto sizes = co_await s.listing_of();
  if (!sizes) co_return fail(sizes.error());

  if (sizes->size() != uidls->size()) co_return fail(s.abort_with(make_error_code(errc::protocol_error)));
  std::vector<listing> out;
  out.reserve(sizes->size());
  auto u = uidls->begin();
  for (auto const& [n, size] : *sizes) {
    auto const octets = text::parse_uint(size);
    if (u->first != n || !octets || !valid_uidl(u->second))
      co_return fail(s.abort_with(make_error_code(errc::protocol_error)));
    listing l;
    l.number = n;
    l.size = *octets;
    l.uidl = std::move(u->second);
    out.push_back(std::move(l));
    ++u;
  }
  co_return out;
}

task<result<std::string>> client::retrieve(std::uint32_t n, std::uint64_t max_size) {
  auto& s = *impl_;
  if (!s.ready()) co_return fail(not_connected());
  if (n == 0) co_return fail(mailroom::errc::invalid_argument);
  std::string const cmd = "RETR " + std::to_string(n) + "\r\n";
  if (auto w = co_await s.write(cmd); !w) co_return fail(w.error());
  auto ok = co_await s.read_ok();
  if (!ok) co_return fail(ok.error());
  if (!*ok) co_return fail(make_error_code(errc::refused));
  std::size_t const limit = static_cast<std::size_t>(std::min<std::uint64_t>(max_size, SIZE_MAX));
  std::string out;
  s.stream->set_timeouts({s.timeout(), s.timeout()});
  for (;;) {
    auto done = s.reader.read_message(out, limit);
    if (!done) {
      if (done.error() == errc::too_large)
        s.log.notice("message over the size limit; connection closed",
                     {{"message", std::to_string(n)}, {"limit", std::to_string(max_size)}});
      co_return fail(s.abort_with(done.error()));
    }
    if (*done) break;
    auto f = co_await s.fill();
    if (!f) co_return fail(f.error());
  }
  co_return out;
}

task<result<void>> client::dele(std::uint32_t n) {
  auto& s = *impl_;
  if (!s.ready()) co_return fail(not_connected());
  if (n == 0) co_return fail(mailroom::errc::invalid_argument);
  std::string const cmd = "DELE " + std::to_string(n) + "\r\n";
  if (auto w = co_await s.write(cmd); !w) co_return fail(w.error());
  auto ok = co_await s.read_ok();
  if (!ok) co_return fail(ok.error());
  if (!*ok) co_return fail(make_error_code(errc::refused));
  co_return result<void>{};
}

task<result<void>> client::quit() {
  auto& s = *impl_;
  if (!s.usable()) co_return fail(not_connected());
  result<void> out;
  if (auto w = co_await s.write("QUIT\r\n"); !w) {
    out = fail(w.error());
  } else {
    auto ok = co_await s.read_ok();
    if (!ok) out = fail(ok.error());
    else if (!*ok) out = fail(make_error_code(errc::refused));
  }
  if (s.usable()) {
    s.stream->set_timeouts({s.timeout(), s.timeout()});
    co_await s.stream->shutdown();
  }
  s.logged_in = false;
  if (!s.closed) s.closed = not_connected();
  if (s.stream) s.stream->close();
  co_return out;
}

}  // namespace mailroom::pop3
