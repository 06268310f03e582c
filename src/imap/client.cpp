#include "mailroom/imap/client.hpp"

#include <algorithm>
#include <functional>
#include <mutex>
#include <utility>

#include <asio/steady_timer.hpp>

#include "mailroom/core/base64.hpp"
#include "mailroom/core/error.hpp"
#include "mailroom/core/text.hpp"
#include "mailroom/imap/response_parser.hpp"
#include "mailroom/net/error.hpp"
#include "mailroom/net/tls/context.hpp"
#include "mailroom/sasl/client.hpp"

namespace mailroom::imap {

namespace {

constexpr std::size_t read_buffer_size = 16 * 1024;
constexpr int max_auth_rounds = 8;
constexpr std::size_t max_listed = 10'000'000;

std::error_code not_connected() { return std::make_error_code(std::errc::not_connected); }

/// A quoted string, or nullopt when s cannot be one (CR, LF, NUL, 8-bit).
std::optional<std::string> quoted(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    auto const u = static_cast<unsigned char>(c);
    if (u == 0 || u == '\r' || u == '\n' || u >= 0x80) return std::nullopt;
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

/// "1:3,7,9" from UIDs in any order.
std::string uid_set(std::vector<std::uint32_t> uids) {
  std::sort(uids.begin(), uids.end());
  uids.erase(std::unique(uids.begin(), uids.end()), uids.end());
  std::string out;
  for (std::size_t i = 0; i < uids.size();) {
    std::size_t j = i;
    while (j + 1 < uids.size() && uids[j + 1] == uids[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(uids[i]);
    if (j > i) out += ':' + std::to_string(uids[j]);
    i = j + 1;
  }
  return out;
}

std::optional<std::uint32_t> as_u32(value const& v) {
  if (v.k != value::kind::atom) return std::nullopt;
  auto n = text::parse_uint(v.text, UINT32_MAX);
  if (!n) return std::nullopt;
  return static_cast<std::uint32_t>(*n);
}

/// The value after attribute `name` in a FETCH response's list, or null.
value const* fetch_att(response const& r, std::string_view name) {
  if (r.items.size() != 1 || r.items[0].k != value::kind::list) return nullptr;
  auto const& l = r.items[0].items;
  for (std::size_t i = 0; i + 1 < l.size(); i += 2)
    if (l[i].k == value::kind::atom && text::iequals(l[i].text, name)) return &l[i + 1];
  return nullptr;
}

/// "UIDNEXT 4" -> 4 when the code's keyword is `kw`.
std::optional<std::uint32_t> code_number(std::string_view code, std::string_view kw) {
  if (code.size() <= kw.size() + 1 || !text::istarts_with(code, kw) || code[kw.size()] != ' ') return std::nullopt;
  auto n = text::parse_uint(code.substr(kw.size() + 1), UINT32_MAX);
  if (!n) return std::nullopt;
  return static_cast<std::uint32_t>(*n);
}

}  // namespace

using untagged_fn = std::function<result<void>(response&)>;

struct client::impl {
  impl(std::unique_ptr<net::stream> s, client_options o, log::logger l)
      : stream(std::move(s)),
        opts(std::move(o)),
        log(l.with_component("imap-client")),
        parser(response_limits{.max_line = opts.max_line, .max_literal = opts.max_literal}),
        rbuf(read_buffer_size),
        watchdog(stream->get_executor()) {}

  ~impl() {
    ++watchdog_gen;
    if (stream) stream->close();
  }

  std::unique_ptr<net::stream> stream;
  client_options opts;
  log::logger log;
  response_parser parser;
  std::vector<char> rbuf;
  asio::steady_timer watchdog;
  std::uint64_t watchdog_gen = 0;
  bool watchdog_fired = false;
  net::stream* handshake_lower = nullptr;
  std::shared_ptr<int> alive = std::make_shared<int>(0);
  std::error_code closed;
  std::vector<std::string> caps;  // upper-case
  std::string last;
  unsigned tag_no = 0;
  mailbox_state box;
  bool login_called = false, logged_in = false, tls_active = false, bye = false, preauth = false;
  bool sasl_ir = false;  // SASL-IR was offered before authentication

  // fetch(): where a streamed BODY[] goes.
  struct body_sink {
    std::uint64_t max = 0;
    std::string data;
    bool streamed = false;   // this response's BODY[] was streamed into data
    bool too_large = false;  // this response's BODY[] was over max and skipped
  };
  body_sink* sink = nullptr;

  bool has_cap(std::string_view c) const {
    return std::any_of(caps.begin(), caps.end(), [&](std::string const& x) { return x == c; });
  }
  std::string next_tag() { return "A" + std::to_string(++tag_no); }

  void set_caps_from_words(std::string_view s) {
    caps.clear();
    while (!s.empty()) {
      auto const sp = s.find(' ');
      auto w = s.substr(0, sp);
      s = sp == std::string_view::npos ? std::string_view{} : s.substr(sp + 1);
      if (!w.empty() && caps.size() < 512) caps.push_back(text::to_upper(w));
    }
  }

  void arm(std::chrono::milliseconds d) {
    watchdog_fired = false;
    watchdog.expires_after(d);
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

  std::error_code abort_with(std::error_code ec) {
    if (!closed) {
      closed = ec;
      log.info("connection aborted", {{"error", ec.message()}});
    }
    if (stream) stream->close();
    return ec;
  }

  task<result<void>> write(std::string_view data, bool secret = false) {
    if (!stream || closed) co_return fail(not_connected());
    if (log.enabled(log::level::trace)) {
      std::string shown = secret ? std::string(data.substr(0, data.find(' ', data.find(' ') + 1))) + " ..." : std::string(data);
      while (!shown.empty() && (shown.back() == '\n' || shown.back() == '\r')) shown.pop_back();
      log.trace("command", {{"line", std::move(shown)}});
    }
    stream->set_timeouts({opts.timeout, opts.timeout});
    auto w = co_await stream->write(data);
    if (!w) co_return fail(abort_with(w.error()));
    co_return result<void>{};
  }

  // Bookkeeping every response gets: capabilities, mailbox counters, BYE.
  void note(response const& r) {
    if (r.k == response::kind::continuation) return;
    if (text::istarts_with(r.code, "CAPABILITY ")) set_caps_from_words(std::string_view(r.code).substr(11));
    if (r.k == response::kind::tagged) {
      last = r.line;
      return;
    }
    if (r.name == "CAPABILITY") {
      caps.clear();
      for (auto const& v : r.items)
        if (v.k == value::kind::atom && caps.size() < 512) caps.push_back(text::to_upper(v.text));
    } else if (r.number && r.name == "EXISTS") {
      box.exists = *r.number;
    } else if (r.number && r.name == "EXPUNGE") {
      if (box.exists > 0) --box.exists;
    } else if (r.status == "OK") {
      if (auto n = code_number(r.code, "UIDVALIDITY")) box.uidvalidity = *n;
      if (auto n = code_number(r.code, "UIDNEXT")) box.uidnext = *n;
    } else if (r.status == "BYE") {
      bye = true;
      last = r.line;
    }
  }

  /// The next response; streams or skips a FETCH BODY[] literal into `sink` when one is set.
  /// A read failure while the watchdog fired is net::errc::timeout and does not abort (IDLE).
  task<result<response>> read_response(std::chrono::milliseconds limit) {
    if (!stream || closed) co_return fail(not_connected());
    stream->set_timeouts({limit, opts.timeout});
    for (;;) {
      auto ev = parser.next();
      if (!ev) co_return fail(abort_with(ev.error()));
      switch (ev->k) {
        case response_parser::event::kind::response: {
          if (log.enabled(log::level::trace)) log.trace("response", {{"line", ev->resp.line}});
          note(ev->resp);
          co_return std::move(ev->resp);
        }
        case response_parser::event::kind::literal:
          if (sink && ev->in_fetch && text::iequals(ev->key, "BODY[]")) {
            if (ev->literal_size > sink->max) {
              sink->too_large = true;
              parser.on_literal(literal_mode::discard);
            } else {
              sink->data.clear();
              sink->data.reserve(static_cast<std::size_t>(ev->literal_size));
              sink->streamed = true;
              parser.on_literal(literal_mode::stream);
            }
          }
          continue;
        case response_parser::event::kind::literal_data:
          if (sink) sink->data.append(ev->data);
          continue;
        case response_parser::event::kind::need_more:
          break;
      }
      auto n = co_await stream->read_some(std::span<char>(rbuf.data(), rbuf.size()));
      if (!n) {
        if (watchdog_fired) co_return fail(make_error_code(net::errc::timeout));
        if (bye && n.error() == net::errc::eof) co_return fail(abort_with(make_error_code(errc::server_closed)));
        co_return fail(abort_with(n.error()));
      }
      parser.feed(std::string_view(rbuf.data(), *n));
    }
  }

  /// Reads until the tagged response for `tag` (returned) or a continuation (returned);
  /// untagged responses go to `on` when given. Another tag is a protocol error.
  task<result<response>> until_tagged(std::string const& tag, untagged_fn const* on) {
    for (;;) {
      auto r = co_await read_response(opts.timeout);
      if (!r) co_return fail(r.error());
      if (r->k == response::kind::untagged) {
        if (on) {
          if (auto h = (*on)(*r); !h) co_return fail(abort_with(h.error()));
        }
        continue;
      }
      if (r->k == response::kind::tagged && r->tag != tag) co_return fail(abort_with(make_error_code(errc::malformed_response)));
      co_return std::move(*r);
    }
  }

  /// Sends "tag command" and waits for its tagged response; a continuation is a protocol error.
  task<result<response>> simple(std::string command, untagged_fn const* on) {
    std::string const tag = next_tag();
    std::string const line = tag + " " + command + "\r\n";
    if (auto w = co_await write(line); !w) co_return fail(w.error());
    auto r = co_await until_tagged(tag, on);
    if (!r) co_return fail(r.error());
    if (r->k == response::kind::continuation) co_return fail(abort_with(make_error_code(errc::protocol_error)));
    co_return std::move(*r);
  }

  task<result<void>> capability() {
    std::string const cmd = "CAPABILITY";
    auto r = co_await simple(cmd, nullptr);
    if (!r) co_return fail(r.error());
    if (r->status != "OK") co_return fail(make_error_code(errc::command_failed));
    co_return result<void>{};
  }

  task<result<void>> starttls(std::shared_ptr<net::tls::client_context> ctx);
  task<result<void>> authenticate(std::string const& mech_name);
  task<result<void>> plain_login();
  task<result<void>> upgrade(std::shared_ptr<net::tls::client_context> ctx);
};

// Swaps the stream for a TLS stream over it, the handshake under the whole-operation deadline.
task<result<void>> client::impl::upgrade(std::shared_ptr<net::tls::client_context> ctx) {
  auto lower = std::move(stream);
  handshake_lower = lower.get();
  lower->set_timeouts({opts.timeout, opts.timeout});
  arm(opts.timeout);
  auto t = co_await net::tls::connect(ctx, std::move(lower), opts.tls_name);
  disarm();
  handshake_lower = nullptr;
  if (!t) {
    std::error_code const ec = watchdog_fired ? make_error_code(net::errc::timeout) : t.error();
    log.notice("TLS handshake failed", {{"error", ec.message()}, {"name", opts.tls_name}});
    if (!closed) closed = ec;
    co_return fail(ec);
  }
  stream = std::move(*t);
  tls_active = true;
  if (auto const* d = stream->tls()) log.info("TLS established", {{"version", d->version}, {"cipher", d->cipher}});
  co_return result<void>{};
}

task<result<void>> client::impl::starttls(std::shared_ptr<net::tls::client_context> ctx) {
  std::string const cmd = "STARTTLS";
  auto r = co_await simple(cmd, nullptr);
  if (!r) co_return fail(r.error());
  if (r->status != "OK") {
    log.notice("STARTTLS refused", {{"reply", r->line}});
    co_return fail(make_error_code(errc::starttls_unavailable));
  }
  // Whatever came with the OK arrived in plaintext (STARTTLS response injection): drop it.
  if (parser.buffered() != 0) {
    log.notice("discarded plaintext sent after the STARTTLS reply", {{"bytes", std::to_string(parser.buffered())}});
    parser.discard_buffered();
  }
  if (auto u = co_await upgrade(std::move(ctx)); !u) co_return fail(u.error());
  caps.clear();  // RFC 9051 6.2.1: forget what was said before TLS
  co_return co_await capability();
}

task<result<void>> client::impl::authenticate(std::string const& name) {
  sasl::credentials creds;
  creds.authcid = opts.user;
  creds.password = opts.password;
  auto made = sasl::make_client_mechanism(name, std::move(creds));
  if (!made) co_return fail(made.error());
  auto& mech = **made;
  std::optional<std::string> ir = mech.initial_response();
  std::string const tag = next_tag();
  std::string cmd = tag + " AUTHENTICATE " + name;
  if (ir && sasl_ir) {
    cmd += ' ';
    cmd += ir->empty() ? std::string("=") : base64::encode(*ir);
    std::fill(ir->begin(), ir->end(), '\0');
    ir.reset();
  }
  cmd += "\r\n";
  auto w = co_await write(cmd, true);
  std::fill(cmd.begin(), cmd.end(), '\0');
  if (!w) co_return fail(w.error());
  for (int round = 0;; ++round) {
    auto r = co_await until_tagged(tag, nullptr);
    if (!r) co_return fail(r.error());
    if (r->k == response::kind::continuation) {
      if (round >= max_auth_rounds) co_return fail(abort_with(make_error_code(errc::protocol_error)));
      result<std::string> answer = std::string();
      if (ir) {  // no SASL-IR: the initial response answers the server's empty challenge
        answer = std::move(*ir);
        ir.reset();
      } else {
        auto challenge = base64::decode(r->text);
        answer = challenge ? mech.respond(*challenge) : result<std::string>(fail(sasl::errc::malformed));
      }
      if (!answer) {
        log.notice("AUTHENTICATE abandoned", {{"mechanism", name}, {"error", answer.error().message()}});
        if (auto c = co_await write("*\r\n"); !c) co_return fail(c.error());
        if (auto c = co_await until_tagged(tag, nullptr); !c) co_return fail(c.error());
        co_return fail(answer.error());
      }
      std::string line = base64::encode(*answer) + "\r\n";
      auto lw = co_await write(line, true);
      std::fill(line.begin(), line.end(), '\0');
      if (!lw) co_return fail(lw.error());
      continue;
    }
    if (r->status == "OK") {
      if (!mech.complete()) {
        log.warning("server claimed AUTHENTICATE success without completing the exchange", {{"mechanism", name}});
        co_return fail(abort_with(make_error_code(sasl::errc::authentication_failed)));
      }
      log.info("authenticated", {{"mechanism", name}});
      co_return result<void>{};
    }
    log.notice("login refused", {{"mechanism", name}, {"reply", r->line}});
    co_return fail(make_error_code(errc::login_refused));
  }
}

task<result<void>> client::impl::plain_login() {
  auto u = quoted(opts.user);
  auto p = quoted(opts.password);
  if (!u || !p) {
    log.notice("credentials cannot be sent with LOGIN");
    co_return fail(make_error_code(errc::auth_unavailable));
  }
  std::string const tag = next_tag();
  std::string cmd = tag + " LOGIN " + *u + " " + *p + "\r\n";
  std::fill(p->begin(), p->end(), '\0');
  auto w = co_await write(cmd, true);
  std::fill(cmd.begin(), cmd.end(), '\0');
  if (!w) co_return fail(w.error());
  auto r = co_await until_tagged(tag, nullptr);
  if (!r) co_return fail(r.error());
  if (r->k == response::kind::continuation) co_return fail(abort_with(make_error_code(errc::protocol_error)));
  if (r->status != "OK") {
    log.notice("login refused", {{"mechanism", "LOGIN"}, {"reply", r->line}});
    co_return fail(make_error_code(errc::login_refused));
  }
  log.info("authenticated", {{"mechanism", "LOGIN"}});
  co_return result<void>{};
}

// ---- client ----------------------------------------------------------------------------------

client::client(std::unique_ptr<net::stream> s, client_options opts, log::logger logger)
    : impl_(std::make_unique<impl>(std::move(s), std::move(opts), std::move(logger))) {}
client::~client() = default;
client::client(client&&) noexcept = default;
client& client::operator=(client&&) noexcept = default;

std::string const& client::last_response() const noexcept { return impl_->last; }
bool client::tls() const noexcept { return impl_->tls_active; }
mailbox_state const& client::state() const noexcept { return impl_->box; }

task<result<void>> client::login() {
  auto& s = *impl_;
  if (s.login_called) co_return fail(mailroom::errc::invalid_argument);
  if (!s.stream || s.closed) co_return fail(not_connected());
  auto const pol = s.opts.tls;
  if (pol == net::tls::policy::verify && s.opts.tls_name.empty()) co_return fail(mailroom::errc::invalid_argument);
  s.login_called = true;
  std::shared_ptr<net::tls::client_context> ctx = s.opts.tls_context;
  if ((s.opts.implicit_tls || pol != net::tls::policy::none) && !ctx) {
    auto shared = net::tls::shared_client_context(pol == net::tls::policy::verify);
    if (!shared) co_return fail(shared.error());
    ctx = std::move(*shared);
  }
  if (s.opts.implicit_tls) {
    if (auto u = co_await s.upgrade(ctx); !u) co_return fail(u.error());
  }

  auto g = co_await s.read_response(s.opts.timeout);
  if (!g) co_return fail(g.error());
  s.last = g->line;
  if (g->k != response::kind::untagged || (g->status != "OK" && g->status != "PREAUTH")) {
    if (g->status == "BYE") co_return fail(s.abort_with(make_error_code(errc::server_closed)));
    co_return fail(s.abort_with(make_error_code(errc::malformed_response)));
  }
  s.preauth = g->status == "PREAUTH";
  if (s.caps.empty()) {
    if (auto c = co_await s.capability(); !c) co_return fail(c.error());
  }

  if (!s.opts.implicit_tls && !s.preauth) {
    bool const must = pol == net::tls::policy::required || pol == net::tls::policy::verify;
    bool const offered = s.has_cap("STARTTLS");
    if (must && !offered) {
      s.log.notice("STARTTLS required by policy but not offered");
      co_return fail(make_error_code(errc::starttls_unavailable));
    }
    if (pol != net::tls::policy::none && offered) {
      auto t = co_await s.starttls(ctx);
      if (!t) co_return fail(t.error());
    }
  } else if (!s.opts.implicit_tls && s.preauth &&
             (pol == net::tls::policy::required || pol == net::tls::policy::verify)) {
    // RFC 9051 6.2.1: STARTTLS is not available after PREAUTH; the policy cannot be met.
    s.log.notice("PREAUTH greeting without TLS while the policy requires TLS");
    co_return fail(s.abort_with(make_error_code(errc::starttls_unavailable)));
  }

  if (!s.preauth) {
    if (!s.tls_active && !s.opts.allow_plaintext_auth) {
      s.log.notice("not sending credentials without TLS");
      co_return fail(make_error_code(errc::auth_unavailable));
    }
    result<void> a;
    bool const scram = s.has_cap("AUTH=SCRAM-SHA-256"), plain = s.has_cap("AUTH=PLAIN");
    bool const login_ok = !s.has_cap("LOGINDISABLED");
    s.sasl_ir = s.has_cap("SASL-IR");
    s.caps.clear();  // what the server says after login replaces them
    if (scram) {
      std::string const m = "SCRAM-SHA-256";
      a = co_await s.authenticate(m);
      // A server may offer SCRAM but hold no SCRAM secret for this user: PLAIN is worth a try.
      if (!a && a.error() == errc::login_refused && plain && !s.closed) {
        s.log.info("SCRAM-SHA-256 refused, trying PLAIN");
        std::string const p = "PLAIN";
        a = co_await s.authenticate(p);
      }
    } else if (plain) {
      std::string const m = "PLAIN";
      a = co_await s.authenticate(m);
    } else if (login_ok) {
      a = co_await s.plain_login();
    } else {
      s.log.notice("LOGINDISABLED and no usable AUTHENTICATE mechanism");
      a = fail(make_error_code(errc::auth_unavailable));
    }
    if (!a) co_return fail(a.error());
    // Capabilities change after login (RFC 9051 6.2); a CAPABILITY code on the OK is enough.
    if (s.caps.empty()) {
      if (auto c = co_await s.capability(); !c) co_return fail(c.error());
    }
  }
  s.logged_in = true;
  co_return result<void>{};
}

task<result<mailbox_state>> client::select(std::string mailbox, bool read_only) {
  auto& s = *impl_;
  if (!s.logged_in || s.closed) co_return fail(not_connected());
  auto name = quoted(text::encode_mutf7(mailbox));
  if (!name) co_return fail(mailroom::errc::invalid_argument);
  s.box = {};
  std::string const cmd = std::string(read_only ? "EXAMINE " : "SELECT ") + *name;
  auto r = co_await s.simple(cmd, nullptr);
  if (!r) co_return fail(r.error());
  if (r->status != "OK") co_return fail(make_error_code(errc::command_failed));
  co_return s.box;
}

task<result<std::vector<message_ref>>> client::list_from(std::uint32_t first_uid) {
  auto& s = *impl_;
  if (!s.logged_in || s.closed) co_return fail(not_connected());
  std::vector<message_ref> out;
  if (s.box.exists == 0) co_return out;
  if (first_uid == 0) first_uid = 1;
  untagged_fn const on = [&](response& r) -> result<void> {
    if (r.name != "FETCH") return {};
    auto const* u = fetch_att(r, "UID");
    auto const* z = fetch_att(r, "RFC822.SIZE");
    if (!u || !z) return {};  // an unsolicited FETCH (flags changed by another session)
    auto uid = as_u32(*u);
    auto size = z->k == value::kind::atom ? text::parse_uint(z->text) : std::nullopt;
    if (!uid || !size) return fail(errc::malformed_response);
    if (*uid < first_uid) return {};  // "n:*" includes the last message whatever its UID
    if (out.size() >= max_listed) return fail(errc::response_too_large);
    out.push_back({*uid, *size});
    return {};
  };
  std::string const cmd = "UID FETCH " + std::to_string(first_uid) + ":* (UID RFC822.SIZE)";
  auto r = co_await s.simple(cmd, &on);
  if (!r) co_return fail(r.error());
  if (r->status != "OK") co_return fail(make_error_code(errc::command_failed));
  co_return out;
}

task<result<std::string>> client::fetch(std::uint32_t uid, std::uint64_t max_size) {
  auto& s = *impl_;
  if (!s.logged_in || s.closed) co_return fail(not_connected());
  if (uid == 0) co_return fail(mailroom::errc::invalid_argument);
  impl::body_sink sink;
  sink.max = max_size;
  std::optional<std::string> body;
  bool too_large = false;
  untagged_fn const on = [&](response& r) -> result<void> {
    bool const streamed = std::exchange(sink.streamed, false);
    bool const skipped = std::exchange(sink.too_large, false);
    if (r.name != "FETCH" || !(streamed || skipped)) return {};
    auto const* u = fetch_att(r, "UID");
    if (u && as_u32(*u) != uid) return {};  // not ours (a UID FETCH response carries UID)
    if (skipped) too_large = true;
    else body = std::move(sink.data);
    sink.data.clear();
    return {};
  };
  std::string const cmd = "UID FETCH " + std::to_string(uid) + " BODY.PEEK[]";
  s.sink = &sink;
  auto r = co_await s.simple(cmd, &on);
  s.sink = nullptr;
  if (!r) co_return fail(r.error());
  if (r->status != "OK") {
    if (text::istarts_with(r->code, "EXPUNGEISSUED") || text::istarts_with(r->code, "NONEXISTENT"))
      co_return fail(make_error_code(errc::no_such_message));
    co_return fail(make_error_code(errc::command_failed));
  }
  if (body) co_return std::move(*body);
  if (too_large) co_return fail(make_error_code(errc::too_large));
  co_return fail(make_error_code(errc::no_such_message));
}

task<result<void>> client::remove(std::vector<std::uint32_t> uids) {
  auto& s = *impl_;
  if (!s.logged_in || s.closed) co_return fail(not_connected());
  uids.erase(std::remove(uids.begin(), uids.end(), 0u), uids.end());
  if (uids.empty()) co_return result<void>{};
  std::string const set = uid_set(std::move(uids));
  std::string const store = "UID STORE " + set + " +FLAGS.SILENT (\\Deleted)";
  auto r = co_await s.simple(store, nullptr);
  if (!r) co_return fail(r.error());
  if (r->status != "OK") co_return fail(make_error_code(errc::command_failed));
  std::string const expunge = s.has_cap("UIDPLUS") ? "UID EXPUNGE " + set : std::string("EXPUNGE");
  auto e = co_await s.simple(expunge, nullptr);
  if (!e) co_return fail(e.error());
  if (e->status != "OK") co_return fail(make_error_code(errc::command_failed));
  co_return result<void>{};
}

task<result<bool>> client::idle(std::chrono::seconds max) {
  auto& s = *impl_;
  if (!s.logged_in || s.closed) co_return fail(not_connected());
  if (!s.has_cap("IDLE")) co_return fail(make_error_code(errc::unsupported));
  std::string const tag = s.next_tag();
  std::string const cmd = tag + " IDLE\r\n";
  if (auto w = co_await s.write(cmd); !w) co_return fail(w.error());
  auto r = co_await s.until_tagged(tag, nullptr);
  if (!r) co_return fail(r.error());
  if (r->k != response::kind::continuation) co_return fail(make_error_code(errc::command_failed));

  bool woken = false;
  auto const bound = std::chrono::milliseconds(max);
  s.arm(bound);
  for (;;) {
    auto u = co_await s.read_response(bound + std::chrono::milliseconds(s.opts.timeout));
    if (!u) {
      if (u.error() == net::errc::timeout && s.watchdog_fired && !s.closed) break;  // max passed
      s.disarm();
      co_return fail(u.error());
    }
    if (u->k != response::kind::untagged) {
      s.disarm();
      co_return fail(s.abort_with(make_error_code(errc::protocol_error)));
    }
    if (s.bye) {
      s.disarm();
      co_return fail(s.abort_with(make_error_code(errc::server_closed)));
    }
    if ((u->name == "EXISTS") || (u->name == "RECENT" && u->number && *u->number > 0)) {
      woken = true;
      break;
    }
  }
  s.disarm();
  s.watchdog_fired = false;
  if (auto w = co_await s.write("DONE\r\n"); !w) co_return fail(w.error());
  auto d = co_await s.until_tagged(tag, nullptr);
  if (!d) co_return fail(d.error());
  if (d->k != response::kind::tagged) co_return fail(s.abort_with(make_error_code(errc::protocol_error)));
  if (d->status != "OK") co_return fail(make_error_code(errc::command_failed));
  co_return woken;
}

void client::close() noexcept { impl_->abort_with(make_error_code(mailroom::errc::cancelled)); }

task<void> client::logout() {
  auto& s = *impl_;
  if (!s.stream) co_return;
  if (!s.closed && s.login_called && !s.bye) {
    std::string const tag = s.next_tag();
    std::string const cmd = tag + " LOGOUT\r\n";
    if (auto w = co_await s.write(cmd); w) (void)co_await s.until_tagged(tag, nullptr);
  }
  if (!s.closed) {
    s.stream->set_timeouts({std::chrono::milliseconds(s.opts.timeout), std::chrono::milliseconds(s.opts.timeout)});
    co_await s.stream->shutdown();
    s.closed = not_connected();
  }
  s.stream->close();
}

}  // namespace mailroom::imap
