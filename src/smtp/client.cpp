#include "mailroom/smtp/client.hpp"

#include <algorithm>
#include <array>
#include <mutex>
#include <span>

#include <asio/steady_timer.hpp>

#include "mailroom/core/base64.hpp"
#include "mailroom/core/error.hpp"
#include "mailroom/core/text.hpp"
#include "mailroom/net/error.hpp"
#include "mailroom/net/tls/context.hpp"
#include "mailroom/sasl/client.hpp"
#include "mailroom/smtp/error.hpp"

namespace mailroom::smtp {

namespace {

constexpr std::size_t read_buffer_size = 4096;
constexpr std::size_t data_write_size = 64 * 1024;  // DATA is written in pieces of about this size
constexpr std::size_t bdat_chunk_size = 128 * 1024;  // and BDAT sends chunks of about this size
constexpr int max_auth_rounds = 8;                  // 334 challenges before we give up on a server

std::error_code not_connected() { return std::make_error_code(std::errc::not_connected); }

bool has_8bit(std::string_view s) noexcept {
  return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

bool has_8bit(address const& a) noexcept { return has_8bit(a.local) || has_8bit(a.domain); }

// An address can go on the wire when it reads back as itself: nothing that would end the
// command line or the path early, a valid domain.
bool sendable(address const& a, bool sender) {
  path_options po;
  po.allow_utf8 = true;
  po.allow_null = sender;
  po.allow_postmaster = !sender;
  std::string const path = "<" + a.to_string() + ">";
  std::size_t used = 0;
  auto back = parse_path(path, po, &used);
  return back && used == path.size() && *back == a;
}

bool is_class(reply const& r, std::initializer_list<int> classes) {
  int const c = r.code / 100;
  return std::find(classes.begin(), classes.end(), c) != classes.end();
}

// What the EHLO reply's lines after the first one offer (RFC 5321 4.1.1.1: keyword [params]).
extensions parse_extensions(std::string_view text) {
  extensions e;
  bool first = true;
  while (!text.empty() || first) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (first) {
      first = false;
      if (nl == std::string_view::npos) break;
      continue;
    }
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    auto const sp = line.find_first_of(" =");
    std::string const kw = text::to_upper(line.substr(0, sp));
    std::string_view params = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
    if (kw == "PIPELINING") e.pipelining = true;
    else if (kw == "8BITMIME") e.eightbitmime = true;
    else if (kw == "SMTPUTF8") e.smtputf8 = true;
    else if (kw == "CHUNKING") e.chunking = true;
    else if (kw == "BINARYMIME") e.binarymime = true;
    else if (kw == "DSN") e.dsn = true;
    else if (kw == "STARTTLS") e.starttls = true;
    else if (kw == "ENHANCEDSTATUSCODES") e.enhancedstatuscodes = true;
    else if (kw == "SIZE") {
      e.size = true;
      while (!params.empty() && params.front() == ' ') params.remove_prefix(1);
      e.max_size = text::parse_uint(params.substr(0, params.find(' '))).value_or(0);
    } else if (kw == "AUTH") {  // also the pre-standard "AUTH=LOGIN PLAIN"
      while (!params.empty()) {
        auto const end = params.find(' ');
        auto const mech = params.substr(0, end);
        params = end == std::string_view::npos ? std::string_view{} : params.substr(end + 1);
        if (mech.empty() || mech.size() > 40 || e.auth.size() >= 32) continue;
        std::string up = text::to_upper(mech);
        if (std::find(e.auth.begin(), e.auth.end(), up) == e.auth.end()) e.auth.push_back(std::move(up));
      }
    }
  }
  return e;
}

// Message data on its way out: CRLF line ends whatever the source holds (a bare LF or bare CR
// becomes CRLF, a CRLF stays one), a final line end added when missing, and for DATA a '.' doubled
// at the start of a line (RFC 5321 4.5.2). A binary body (BDAT with BINARYMIME) passes unchanged.
class body_encoder {
 public:
  body_encoder(bool dot_stuff, bool normalize) : stuff_(dot_stuff), normalize_(normalize) {}

  void encode(std::span<char const> in, std::string& out) {
    if (!normalize_) {
      out.append(in.data(), in.size());
      return;
    }
    for (char c : in) {
      if (cr_) {
        cr_ = false;
        out += "\r\n";
        bol_ = true;
        if (c == '\n') continue;
      }
      if (c == '\r') {
        cr_ = true;
        continue;
      }
      if (c == '\n') {
        out += "\r\n";
        bol_ = true;
        continue;
      }
      if (bol_ && stuff_ && c == '.') out += '.';
      out += c;
      bol_ = false;
    }
  }

  /// The end of the source: ends the last line (not the message: DATA's "." is the caller's).
  void finish(std::string& out) {
    if (!normalize_) return;
    if (cr_ || !bol_) out += "\r\n";
    cr_ = false;
    bol_ = true;
  }

 private:
  bool stuff_;
  bool normalize_;
  bool bol_ = true;  // at the start of a line
  bool cr_ = false;  // a CR waits to see whether an LF follows
};

}  // namespace

// ---- connection state ------------------------------------------------------------------------

struct client::impl {
  impl(std::unique_ptr<net::stream> s, client_options o, log::logger l)
      : stream(std::move(s)),
        opts(std::move(o)),
        log(l.with_component("smtp-client")),
        parser(opts.limits),
        watchdog(stream->get_executor()) {}

  ~impl() {
    ++watchdog_gen;
    if (stream) stream->close();
  }

  std::unique_ptr<net::stream> stream;
  client_options opts;
  log::logger log;
  reply_parser parser;
  extensions ext;
  std::array<char, read_buffer_size> rbuf{};
  asio::steady_timer watchdog;
  std::uint64_t watchdog_gen = 0;
  bool watchdog_fired = false;
  net::stream* handshake_lower = nullptr;  // the transport while tls::connect owns it
  std::shared_ptr<int> alive = std::make_shared<int>(0);
  std::error_code closed;  // set once the connection is given up
  bool greeted = false;    // hello() was called
  bool hello_ok = false;   // and it succeeded
  bool closing = false;    // the server said 421, or we sent QUIT
  bool tls_active = false;
  bool authenticated = false;

  bool ready() const noexcept { return hello_ok && !closing && !closed && stream; }

  // The whole-reply deadline: the per-read deadline alone would let a server trickle a byte per
  // read forever. On expiry the stream is cancelled (the transport closed under a handshake).
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

  /// Gives the connection up: closes it and remembers why. Returns ec for `fail(...)`.
  std::error_code abort_with(std::error_code ec) {
    if (!closed) {
      closed = ec;
      log.info("connection aborted", {{"error", ec.message()}});
    }
    if (stream) stream->close();
    return ec;
  }

  task<result<void>> write(std::string_view data, std::chrono::milliseconds limit, bool secret = false) {
    if (!stream || closed) co_return fail(not_connected());
    if (log.enabled(log::level::trace)) {
      // Never an AUTH payload, even at trace: the mechanism name at most.
      std::string shown = !secret                    ? std::string(data)
                          : data.starts_with("AUTH ") ? std::string(data.substr(0, data.find(' ', 5))) + " ..."
                                                      : std::string("(SASL response)");
      while (!shown.empty() && (shown.back() == '\n' || shown.back() == '\r')) shown.pop_back();
      log.trace("command", {{"line", std::move(shown)}});
    }
    stream->set_timeouts({limit, limit});
    auto w = co_await stream->write(data);
    if (!w) co_return fail(abort_with(w.error()));
    co_return result<void>{};
  }

  // Message data: no trace of its content.
  task<result<void>> write_data(std::string_view data) {
    if (!stream || closed) co_return fail(not_connected());
    stream->set_timeouts({opts.command_timeout, opts.data_block_timeout});
    auto w = co_await stream->write(data);
    if (!w) co_return fail(abort_with(w.error()));
    co_return result<void>{};
  }

  task<result<reply>> read_reply(std::chrono::milliseconds limit) {
    if (!stream || closed) co_return fail(not_connected());
    stream->set_timeouts({limit, opts.command_timeout});
    arm(limit);
    for (;;) {
      auto p = parser.next();
      if (!p) {
        disarm();
        co_return fail(abort_with(p.error()));
      }
      if (*p) {
        disarm();
        reply r = std::move(**p);
        if (log.enabled(log::level::trace)) log.trace("reply", {{"line", r.wire()}});
        if (r.code == 421) closing = true;  // the server is closing the connection
        co_return r;
      }
      std::span<char> buf(rbuf.data(), rbuf.size());
      auto n = co_await stream->read_some(buf);
      if (!n) {
        disarm();
        std::error_code const ec = watchdog_fired ? make_error_code(net::errc::timeout) : n.error();
        co_return fail(abort_with(ec));
      }
      parser.feed(std::string_view(rbuf.data(), *n));
    }
  }

  task<result<std::optional<reply>>> greet();
  task<result<std::optional<reply>>> starttls(std::shared_ptr<net::tls::client_context> ctx);
  task<result<std::optional<reply>>> authenticate();
  task<result<std::vector<reply>>> final_replies(std::size_t n);
  std::string mail_command(outgoing const& tx, bool utf8) const;
  std::string rcpt_command(address const& to, rcpt_params const& p) const;
};

// EHLO/LHLO, and HELO after a permanent refusal of EHLO.
task<result<std::optional<reply>>> client::impl::greet() {
  std::string const cmd = (opts.lmtp ? "LHLO " : "EHLO ") + opts.helo_name + "\r\n";
  if (auto w = co_await write(cmd, opts.command_timeout); !w) co_return fail(w.error());
  auto r = co_await read_reply(opts.command_timeout);
  if (!r) co_return fail(r.error());
  if (is_class(*r, {2})) {
    ext = parse_extensions(r->text);
    co_return std::optional<reply>{};
  }
  if (!is_class(*r, {4, 5})) co_return fail(abort_with(make_error_code(errc::protocol_error)));
  if (opts.lmtp || r->transient()) co_return std::optional<reply>(std::move(*r));
  log.info("EHLO refused, trying HELO", {{"reply", std::to_string(r->code)}});
  std::string const helo = "HELO " + opts.helo_name + "\r\n";
  if (auto w = co_await write(helo, opts.command_timeout); !w) co_return fail(w.error());
  auto h = co_await read_reply(opts.command_timeout);
  if (!h) co_return fail(h.error());
  if (is_class(*h, {2})) {
    ext = {};
    co_return std::optional<reply>{};
  }
  if (!is_class(*h, {4, 5})) co_return fail(abort_with(make_error_code(errc::protocol_error)));
  co_return std::optional<reply>(std::move(*h));
}

task<result<std::optional<reply>>> client::impl::starttls(std::shared_ptr<net::tls::client_context> ctx) {
  if (auto w = co_await write("STARTTLS\r\n", opts.command_timeout); !w) co_return fail(w.error());
  auto r = co_await read_reply(opts.command_timeout);
  if (!r) co_return fail(r.error());
  if (is_class(*r, {4, 5})) co_return std::optional<reply>(std::move(*r));
  if (r->code != 220) co_return fail(abort_with(make_error_code(errc::protocol_error)));
  // Whatever came with the 220 arrived in plaintext: taken as replies from inside TLS it would
  // let a man in the middle answer for the server (STARTTLS response injection).
  if (parser.buffered() != 0) {
    log.notice("discarded plaintext sent after the STARTTLS reply", {{"bytes", std::to_string(parser.buffered())}});
    parser.discard_buffered();
  }
  auto lower = std::move(stream);
  handshake_lower = lower.get();
  lower->set_timeouts({opts.command_timeout, opts.command_timeout});
  arm(opts.command_timeout);
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
  // RFC 3207 4.2: forget what the server said before TLS and ask again.
  ext = {};
  co_return co_await greet();
}

task<result<std::optional<reply>>> client::impl::authenticate() {
  if (!tls_active && !opts.allow_plaintext_auth) {
    log.notice("not sending credentials without TLS");
    co_return fail(make_error_code(errc::auth_unavailable));
  }
  std::string name;
  for (auto const& m : sasl::supported_client_mechanisms()) {
    if (std::find(ext.auth.begin(), ext.auth.end(), m) != ext.auth.end()) {
      name = m;
      break;
    }
  }
  if (name.empty()) {
    log.notice("no usable AUTH mechanism offered");
    co_return fail(make_error_code(errc::auth_unavailable));
  }
  sasl::credentials creds;
  creds.authcid = opts.auth->first;
  creds.password = opts.auth->second;
  auto made = sasl::make_client_mechanism(name, std::move(creds));
  if (!made) co_return fail(made.error());
  auto& mech = **made;

  std::string cmd = "AUTH " + name;
  if (auto ir = mech.initial_response()) {
    cmd += ' ';
    cmd += ir->empty() ? std::string("=") : base64::encode(*ir);
  }
  cmd += "\r\n";
  auto w = co_await write(cmd, opts.command_timeout, true);
  std::fill(cmd.begin(), cmd.end(), '\0');
  if (!w) co_return fail(w.error());
  for (int round = 0;; ++round) {
    auto r = co_await read_reply(opts.command_timeout);
    if (!r) co_return fail(r.error());
    if (r->code == 334) {
      if (round >= max_auth_rounds) co_return fail(abort_with(make_error_code(errc::protocol_error)));
      auto challenge = base64::decode(r->text);
      result<std::string> answer = challenge ? mech.respond(*challenge) : result<std::string>(fail(sasl::errc::malformed));
      if (!answer) {
        // Cancel the exchange (RFC 4954 4); the server answers 501.
        log.notice("AUTH exchange abandoned", {{"mechanism", name}, {"error", answer.error().message()}});
        if (auto c = co_await write("*\r\n", opts.command_timeout); !c) co_return fail(c.error());
        if (auto c = co_await read_reply(opts.command_timeout); !c) co_return fail(c.error());
        co_return fail(answer.error());
      }
      std::string line = base64::encode(*answer) + "\r\n";
      auto lw = co_await write(line, opts.command_timeout, true);
      std::fill(line.begin(), line.end(), '\0');
      if (!lw) co_return fail(lw.error());
      continue;
    }
    if (is_class(*r, {2})) {
      if (!mech.complete()) {
        // A SCRAM server that never proved it knows the password: not the server we meant.
        log.warning("server claimed AUTH success without completing the exchange", {{"mechanism", name}});
        co_return fail(abort_with(make_error_code(sasl::errc::authentication_failed)));
      }
      authenticated = true;
      log.info("authenticated", {{"mechanism", name}});
      co_return std::optional<reply>{};
    }
    if (is_class(*r, {4, 5})) co_return std::optional<reply>(std::move(*r));
    co_return fail(abort_with(make_error_code(errc::protocol_error)));
  }
}

std::string client::impl::mail_command(outgoing const& tx, bool utf8) const {
  auto const& p = tx.params;
  std::string cmd = "MAIL FROM:<" + tx.from.to_string() + ">";
  if (ext.size && p.size) cmd += " SIZE=" + std::to_string(*p.size);
  if (ext.eightbitmime) {
    switch (p.body) {
      case body_type::seven_bit: cmd += " BODY=7BIT"; break;
      case body_type::eight_bit_mime: cmd += " BODY=8BITMIME"; break;
      case body_type::binary_mime: cmd += " BODY=BINARYMIME"; break;
      case body_type::unspecified:
        if (tx.eight_bit) cmd += " BODY=8BITMIME";
        break;
    }
  }
  if (utf8) cmd += " SMTPUTF8";
  if (ext.dsn) {
    if (p.ret == dsn_ret::full) cmd += " RET=FULL";
    else if (p.ret == dsn_ret::headers) cmd += " RET=HDRS";
    if (!p.envid.empty()) cmd += " ENVID=" + xtext_encode(p.envid);
  }
  if (authenticated && p.auth)  // RFC 4954 5: vouch for the original submitter only when trusted
    cmd += " AUTH=" + (p.auth->empty() || *p.auth == "<>" ? std::string("<>") : xtext_encode(*p.auth));
  cmd += "\r\n";
  return cmd;
}

std::string client::impl::rcpt_command(address const& to, rcpt_params const& p) const {
  std::string cmd = "RCPT TO:<" + to.to_string() + ">";
  if (ext.dsn) {
    if (p.notify & notify_never) {
      cmd += " NOTIFY=NEVER";
    } else if (p.notify) {
      std::string n;
      if (p.notify & notify_success) n += ",SUCCESS";
      if (p.notify & notify_failure) n += ",FAILURE";
      if (p.notify & notify_delay) n += ",DELAY";
      cmd += " NOTIFY=" + n.substr(1);
    }
    if (!p.orcpt.empty())
      cmd += " ORCPT=" + xtext_encode(p.orcpt_type.empty() ? std::string("rfc822") : p.orcpt_type) + ";" + xtext_encode(p.orcpt);
  }
  cmd += "\r\n";
  return cmd;
}

// The replies after the end of the message: one for SMTP, one per accepted recipient for LMTP.
// An LMTP server that dies after some of them has delivered to those: the others get a local 451.
task<result<std::vector<reply>>> client::impl::final_replies(std::size_t n) {
  std::vector<reply> out;
  while (out.size() < n) {
    auto r = co_await read_reply(opts.data_end_timeout);
    if (!r) {
      if (out.empty()) co_return fail(r.error());
      while (out.size() < n) out.push_back(reply{451, {4, 4, 2}, "Connection lost before this recipient's reply"});
      break;
    }
    if (!is_class(*r, {2, 4, 5})) {
      std::error_code const ec = abort_with(make_error_code(errc::protocol_error));
      if (out.empty()) co_return fail(ec);
      while (out.size() < n) out.push_back(reply{451, {4, 4, 2}, "Connection lost before this recipient's reply"});
      break;
    }
    bool const last_words = r->code == 421;
    out.push_back(std::move(*r));
    if (last_words)
      while (out.size() < n) out.push_back(out.back());
  }
  co_return out;
}

// ---- client ----------------------------------------------------------------------------------

client::client(std::unique_ptr<net::stream> s, client_options opts, log::logger logger)
    : impl_(std::make_unique<impl>(std::move(s), std::move(opts), std::move(logger))) {}
client::~client() = default;
client::client(client&&) noexcept = default;
client& client::operator=(client&&) noexcept = default;

extensions const& client::ext() const noexcept { return impl_->ext; }
bool client::tls() const noexcept { return impl_->tls_active; }
bool client::ready() const noexcept { return impl_->ready(); }

task<result<std::optional<reply>>> client::hello() {
  auto& s = *impl_;
  if (s.greeted) co_return fail(mailroom::errc::invalid_argument);
  if (!s.stream || s.closed) co_return fail(not_connected());
  if (!is_valid_domain(s.opts.helo_name, false)) co_return fail(mailroom::errc::invalid_argument);
  if (s.opts.tls == tls_policy::verify && s.opts.tls_name.empty()) co_return fail(mailroom::errc::invalid_argument);
  std::shared_ptr<net::tls::client_context> ctx = s.opts.tls_context;
  if (s.opts.tls != tls_policy::none && !ctx) {
    auto shared = net::tls::shared_client_context(s.opts.tls == tls_policy::verify);
    if (!shared) co_return fail(shared.error());
    ctx = std::move(*shared);
  }
  s.greeted = true;

  auto g = co_await s.read_reply(s.opts.greeting_timeout);
  if (!g) co_return fail(g.error());
  if (g->code != 220) {
    if (is_class(*g, {4, 5})) co_return std::optional<reply>(std::move(*g));
    co_return fail(s.abort_with(make_error_code(errc::protocol_error)));
  }
  auto e = co_await s.greet();
  if (!e || *e) co_return e;

  bool const must_tls = s.opts.tls == tls_policy::required || s.opts.tls == tls_policy::verify;
  if (must_tls && !s.ext.starttls) {
    s.log.notice("STARTTLS required by policy but not offered");
    co_return fail(make_error_code(errc::starttls_unavailable));
  }
  if (s.opts.tls != tls_policy::none && s.ext.starttls) {
    auto t = co_await s.starttls(ctx);
    if (!t || *t) co_return t;
    if (must_tls && !s.tls_active) co_return fail(make_error_code(errc::starttls_unavailable));
  }
  if (s.opts.auth) {
    auto a = co_await s.authenticate();
    if (!a || *a) co_return a;
  }
  s.hello_ok = true;
  co_return std::optional<reply>{};
}

task<result<transaction_result>> client::send(outgoing const& tx, message_source& body) {
  auto& s = *impl_;
  if (!s.ready()) co_return fail(not_connected());
  if (tx.rcpts.empty()) co_return fail(mailroom::errc::invalid_argument);
  transaction_result res;
  auto const& ext = s.ext;

  // Refusals decided here, before anything is sent.
  bool utf8 = tx.params.smtputf8 || has_8bit(tx.from);
  for (auto const& [to, p] : tx.rcpts) utf8 = utf8 || has_8bit(to);
  bool const binary = tx.params.body == body_type::binary_mime;
  bool const eight = binary || tx.eight_bit || tx.params.body == body_type::eight_bit_mime;
  if (utf8 && !ext.smtputf8) {
    res.mail = reply{550, {5, 6, 7}, "Non-ASCII addresses need SMTPUTF8, which the server does not offer"};
    co_return res;
  }
  if (binary && !(ext.binarymime && ext.chunking)) {
    res.mail = reply{554, {5, 6, 3}, "Binary message, and the server does not offer BINARYMIME and CHUNKING"};
    co_return res;
  }
  if (eight && !ext.eightbitmime) {
    res.mail = reply{554, {5, 6, 3}, "8-bit message, and the server does not offer 8BITMIME"};
    co_return res;
  }
  if (ext.size && ext.max_size != 0 && tx.params.size && *tx.params.size > ext.max_size) {
    res.mail = reply{552, {5, 3, 4}, "Message size exceeds the server's limit of " + std::to_string(ext.max_size) + " octets"};
    co_return res;
  }
  if (!sendable(tx.from, true)) {
    res.mail = reply{553, {5, 1, 7}, "Sender address cannot be sent over SMTP"};
    co_return res;
  }

  std::string const mail = s.mail_command(tx, utf8);
  std::vector<std::string> rcpts(tx.rcpts.size());  // empty: refused locally
  res.rcpt.resize(tx.rcpts.size());
  std::size_t to_send = 0;
  for (std::size_t i = 0; i < tx.rcpts.size(); ++i) {
    if (sendable(tx.rcpts[i].first, false)) {
      rcpts[i] = s.rcpt_command(tx.rcpts[i].first, tx.rcpts[i].second);
      ++to_send;
    } else {
      res.rcpt[i] = reply{553, {5, 1, 3}, "Recipient address cannot be sent over SMTP"};
    }
  }
  if (to_send == 0) co_return res;

  bool const bdat = ext.chunking;
  bool const pipelined = ext.pipelining;
  auto const cmd_timeout = std::chrono::milliseconds(s.opts.command_timeout);
  auto const insane = [&] { return fail(s.abort_with(make_error_code(errc::protocol_error))); };

  // MAIL and RCPT (and DATA): in one write with PIPELINING, else one at a time.
  if (pipelined) {
    std::string batch = mail;
    for (auto const& r : rcpts) batch += r;
    if (!bdat) batch += "DATA\r\n";
    if (auto w = co_await s.write(batch, cmd_timeout); !w) co_return fail(w.error());
  } else {
    if (auto w = co_await s.write(mail, cmd_timeout); !w) co_return fail(w.error());
  }
  auto m = co_await s.read_reply(cmd_timeout);
  if (!m) co_return fail(m.error());
  if (!is_class(*m, {2, 4, 5})) co_return insane();
  bool const mail_ok = m->positive();
  if (!mail_ok) {
    res.mail = std::move(*m);
    res.rcpt.clear();
    if (!pipelined || s.closing) co_return res;
  }

  std::size_t accepted = 0;
  for (std::size_t i = 0; i < rcpts.size(); ++i) {
    if (rcpts[i].empty()) continue;
    if (s.closing) {  // 421: no more replies come
      if (mail_ok) res.rcpt[i] = reply{421, {4, 4, 2}, "Connection closed by the server"};
      continue;
    }
    if (!pipelined) {
      if (auto w = co_await s.write(rcpts[i], cmd_timeout); !w) co_return fail(w.error());
    }
    auto r = co_await s.read_reply(cmd_timeout);
    if (!r) co_return fail(r.error());
    if (!is_class(*r, {2, 4, 5})) co_return insane();
    if (!mail_ok) continue;  // 503s after a refused MAIL, read to stay in step
    if (r->positive()) ++accepted;
    res.rcpt[i] = std::move(*r);
  }
  if (s.closing) co_return res;

  // DATA: its reply is in flight already when pipelined.
  std::optional<reply> data_reply;
  if (!bdat && (pipelined || accepted > 0)) {
    if (!pipelined) {
      if (auto w = co_await s.write("DATA\r\n", cmd_timeout); !w) co_return fail(w.error());
    }
    auto d = co_await s.read_reply(s.opts.data_init_timeout);
    if (!d) co_return fail(d.error());
    if (d->code != 354 && !is_class(*d, {4, 5})) co_return insane();
    data_reply = std::move(*d);
  }
  if (accepted == 0) {
    if (data_reply && data_reply->code == 354) {
      // A server that said 354 with no recipient: end the empty message, it goes nowhere.
      if (auto w = co_await s.write_data(".\r\n"); !w) co_return fail(w.error());
      if (auto r = co_await s.read_reply(s.opts.data_end_timeout); !r) co_return fail(r.error());
    }
    co_return res;
  }
  std::size_t const expected = s.opts.lmtp ? accepted : 1;

  if (!bdat) {
    if (data_reply->code != 354) {
      res.data_refused = std::move(*data_reply);
      co_return res;
    }
    body_encoder enc(true, true);
    std::string out;
    for (;;) {
      auto piece = co_await body.read();
      if (!piece) {
        // Ending the message now would deliver it truncated: drop the connection instead.
        s.log.notice("message source failed; connection dropped", {{"error", piece.error().message()}});
        co_return fail(s.abort_with(piece.error()));
      }
      if (piece->empty()) break;
      enc.encode(*piece, out);
      if (out.size() >= data_write_size) {
        if (auto w = co_await s.write_data(out); !w) co_return fail(w.error());
        out.clear();
      }
    }
    enc.finish(out);
    out += ".\r\n";
    if (auto w = co_await s.write_data(out); !w) co_return fail(w.error());
    auto replies = co_await s.final_replies(expected);
    if (!replies) co_return fail(replies.error());
    res.data = std::move(*replies);
    co_return res;
  }

  // BDAT: chunks of about bdat_chunk_size, each acknowledged before the next; the last one's
  // reply(ies) end the transaction.
  body_encoder enc(false, !binary);
  std::string chunk;
  for (bool last = false; !last;) {
    auto piece = co_await body.read();
    if (!piece) {
      s.log.notice("message source failed; connection dropped", {{"error", piece.error().message()}});
      co_return fail(s.abort_with(piece.error()));
    }
    if (piece->empty()) {
      enc.finish(chunk);
      last = true;
    } else {
      enc.encode(*piece, chunk);
      if (chunk.size() < bdat_chunk_size) continue;
    }
    std::string const cmd = "BDAT " + std::to_string(chunk.size()) + (last ? " LAST\r\n" : "\r\n");
    if (auto w = co_await s.write(cmd, cmd_timeout); !w) co_return fail(w.error());
    if (auto w = co_await s.write_data(chunk); !w) co_return fail(w.error());
    chunk.clear();
    if (last) break;
    auto r = co_await s.read_reply(s.opts.data_block_timeout);
    if (!r) co_return fail(r.error());
    if (!is_class(*r, {2, 4, 5})) co_return insane();
    if (!r->positive()) {  // RFC 3030 2: no further chunks; the transaction failed
      res.data.assign(expected, *r);
      co_return res;
    }
  }
  auto replies = co_await s.final_replies(expected);
  if (!replies) co_return fail(replies.error());
  res.data = std::move(*replies);
  co_return res;
}

task<result<void>> client::reset() {
  auto& s = *impl_;
  if (!s.ready()) co_return fail(not_connected());
  if (auto w = co_await s.write("RSET\r\n", s.opts.command_timeout); !w) co_return fail(w.error());
  auto r = co_await s.read_reply(s.opts.command_timeout);
  if (!r) co_return fail(r.error());
  if (r->code == 421) co_return fail(not_connected());
  if (!r->positive()) {
    s.hello_ok = false;  // a server that cannot reset is not one to send more mail through
    co_return fail(make_error_code(errc::protocol_error));
  }
  co_return result<void>{};
}

task<void> client::quit() {
  auto& s = *impl_;
  if (!s.stream) co_return;
  if (!s.closed && !s.closing) {
    s.closing = true;
    auto const limit = std::chrono::milliseconds(s.opts.quit_timeout);
    if (auto w = co_await s.write("QUIT\r\n", limit); w) (void)co_await s.read_reply(limit);
  }
  if (!s.closed) {
    s.stream->set_timeouts({std::chrono::milliseconds(s.opts.quit_timeout), std::chrono::milliseconds(s.opts.quit_timeout)});
    co_await s.stream->shutdown();
    s.closed = not_connected();
  }
  s.stream->close();
}

}  // namespace mailroom::smtp
