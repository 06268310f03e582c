// The milter client session: connecting, negotiation, one exchange per SMTP phase.
#include <charconv>

#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "mailroom/core/error.hpp"
#include "mailroom/filter/milter.hpp"
#include "mailroom/filter/scanner.hpp"
#include "mailroom/net/error.hpp"
#include "mailroom/net/tcp_stream.hpp"

namespace mailroom::filter::milter {

namespace {

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);
using steady = std::chrono::steady_clock;

// net::stream over a Unix-domain socket; each operation races a timer.
class local_stream final : public net::stream {
 public:
  explicit local_stream(asio::local::stream_protocol::socket s)
      : sock_(std::move(s)), read_timer_(sock_.get_executor()), write_timer_(sock_.get_executor()) {}
  ~local_stream() override { close(); }

  executor get_executor() override { return sock_.get_executor(); }

  task<result<std::size_t>> read_some(std::span<char> buf) override {
    using namespace asio::experimental::awaitable_operators;
    read_timer_.expires_after(limits_.read);
    auto r = co_await (sock_.async_read_some(asio::buffer(buf.data(), buf.size()), use_tuple) ||
                       read_timer_.async_wait(use_tuple));
    if (r.index() == 1) co_return fail(net::errc::timeout);
    auto [ec, n] = std::get<0>(r);
    if (ec) co_return fail(ec == asio::error::eof || ec == asio::error::connection_reset ? make_error_code(net::errc::eof) : ec);
    co_return n;
  }

  task<result<void>> write(std::span<char const> data) override {
    using namespace asio::experimental::awaitable_operators;
    write_timer_.expires_after(limits_.write);
    auto r = co_await (asio::async_write(sock_, asio::buffer(data.data(), data.size()), use_tuple) ||
                       write_timer_.async_wait(use_tuple));
    if (r.index() == 1) co_return fail(net::errc::timeout);
    auto [ec, n] = std::get<0>(r);
    if (ec) co_return fail(ec == asio::error::broken_pipe || ec == asio::error::connection_reset ? make_error_code(net::errc::eof) : ec);
    co_return result<void>{};
  }
  using stream::write;

  task<void> shutdown() override {
    std::error_code ignored;
    sock_.shutdown(asio::socket_base::shutdown_send, ignored);
    co_return;
  }
  void close() noexcept override {
    std::error_code ignored;
    read_timer_.cancel();
    write_timer_.cancel();
    sock_.close(ignored);
  }
  void cancel() noexcept override {
    std::error_code ignored;
    sock_.cancel(ignored);
  }
  void set_timeouts(net::timeouts t) override { limits_ = t; }

 private:
  asio::local::stream_protocol::socket sock_;
  asio::steady_timer read_timer_;
  asio::steady_timer write_timer_;
  net::timeouts limits_;
};

task<result<std::unique_ptr<net::stream>>> connect_local(executor ex, std::string const& path, std::chrono::milliseconds d) {
  using namespace asio::experimental::awaitable_operators;
  asio::local::stream_protocol::socket s(ex);
  asio::steady_timer timer(ex);
  timer.expires_after(d);
  asio::local::stream_protocol::endpoint ep(path);
  auto r = co_await (s.async_connect(ep, use_tuple) || timer.async_wait(use_tuple));
  if (r.index() == 1) co_return fail(net::errc::timeout);
  if (auto [ec] = std::get<0>(r); ec) co_return fail(ec);
  co_return std::unique_ptr<net::stream>(std::make_unique<local_stream>(std::move(s)));
}


// "{name}" and "name" are the same macro.
std::string_view bare_name(std::string_view n) {
  if (n.size() >= 2 && n.front() == '{' && n.back() == '}') return n.substr(1, n.size() - 2);
  return n;
}

bool listed(std::string_view list, std::string_view name) {
  name = bare_name(name);
  std::size_t i = 0;
  while (i < list.size()) {
    auto j = list.find_first_of(" \t,", i);
    if (j == std::string_view::npos) j = list.size();
    if (j > i && bare_name(list.substr(i, j - i)) == name) return true;
    i = j + 1;
  }
  return false;
}

// The action flag a modification needs.
std::uint32_t needed_action(modification const& m) {
  using k = modification::kind;
  switch (m.what) {
    case k::add_header:
    case k::insert_header: return actions::add_headers;
    case k::change_header: return actions::change_headers;
    case k::replace_body: return actions::change_body;
    case k::add_rcpt: return m.with_args ? actions::add_rcpt_par : actions::add_rcpt;
    case k::delete_rcpt: return actions::delete_rcpt;
    case k::change_from: return actions::change_from;
    case k::quarantine: return actions::quarantine;
  }
  return actions::all + 1;
}

bool final_for_message(action a) {
  return a == action::accept || a == action::reject || a == action::tempfail || a == action::discard ||
         a == action::reply;
}

// Header values go to the milter with "\n" between folded lines (as Sendmail and Postfix send them).
std::string milter_value(std::string_view v, bool leading_space) {
  if (!leading_space) {
    auto i = v.find_first_not_of(" \t");
    v = i == std::string_view::npos ? std::string_view() : v.substr(i);
  }
  std::string out;
  out.reserve(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '\r' && i + 1 < v.size() && v[i + 1] == '\n') continue;
    out += v[i];
  }
  return out;
}

}  // namespace

task<result<std::unique_ptr<client>>> client::connect(executor ex, std::string_view spec, client_options opts) {
  // One address syntax with the scanners (scanner.hpp): IP literals only, so connecting never
  // waits on a resolver without a deadline, and unix paths checked for length.
  std::string text(spec);
  if (text.starts_with("local:")) text.replace(0, 6, "unix:");
  else if (text.starts_with("inet6:")) text.replace(0, 6, "inet:");
  if (!text.starts_with("unix:") && !text.starts_with("inet:")) co_return fail(errc::bad_socket);
  auto where = scanner_address::parse(text);
  if (!where) co_return fail(errc::bad_socket);
  result<std::unique_ptr<net::stream>> s = fail(errc::bad_socket);
  if (where->k == scanner_address::kind::unix_socket) {
    s = co_await connect_local(ex, where->path, opts.limits.connect);
  } else {
    auto t = co_await net::tcp_stream::connect(ex, where->endpoint, opts.limits.connect);
    if (t) s = std::unique_ptr<net::stream>(std::move(*t));
    else s = fail(t.error());
  }
  if (!s) co_return fail(s.error());
  auto c = std::make_unique<client>(std::move(*s), opts);
  if (auto r = co_await c->negotiate(); !r) co_return fail(r.error());
  co_return c;
}

client::client(std::unique_ptr<net::stream> stream, client_options opts)
    : stream_(std::move(stream)), opts_(opts), reader_(opts.max_packet) {}

client::~client() {
  if (stream_) stream_->close();
}

std::error_code client::broken(std::error_code ec) {
  if (!failed_) failed_ = ec;
  if (stream_) stream_->close();
  return failed_;
}

task<result<void>> client::send(std::string const& bytes) {
  if (failed_) co_return fail(failed_);
  stream_->set_timeouts(net::timeouts{opts_.limits.command, opts_.limits.command});
  if (auto r = co_await stream_->write(bytes); !r) co_return fail(broken(r.error()));
  co_return result<void>{};
}

// The deadline covers the whole packet, however the milter dribbles it out.
task<result<packet>> client::read_packet(steady::time_point until) {
  std::array<char, 16384> buf;
  for (;;) {
    auto p = reader_.next();
    if (!p) co_return fail(broken(p.error()));
    if (*p) co_return std::move(**p);
    auto const left = std::chrono::duration_cast<std::chrono::milliseconds>(until - steady::now());
    if (left.count() <= 0) co_return fail(broken(make_error_code(net::errc::timeout)));
    stream_->set_timeouts(net::timeouts{left, opts_.limits.command});
    auto n = co_await stream_->read_some(std::span<char>(buf));
    if (!n) co_return fail(broken(n.error()));
    reader_.feed(std::string_view(buf.data(), *n));
  }
}

task<result<response>> client::read_response(steady::time_point until) {
  auto p = co_await read_packet(until);
  if (!p) co_return fail(p.error());
  auto r = decode_response(*p);
  if (!r) co_return fail(broken(r.error()));
  if (std::holds_alternative<shutdown_request>(*r)) co_return fail(broken(make_error_code(errc::shutdown)));
  if (auto s = std::get_if<symlist>(&*r)) {
    if (!(neg_.actions & actions::set_symlist)) co_return fail(broken(make_error_code(errc::unexpected_response)));
    neg_.macros[s->stage] = s->names;
  }
  co_return std::move(*r);
}

task<result<void>> client::negotiate() {
  auto offer = encode_optneg(protocol_version, opts_.actions, opts_.protocol);
  if (auto r = co_await send(offer); !r) co_return r;
  auto p = co_await read_packet(steady::now() + opts_.limits.command);
  if (!p) co_return fail(p.error());
  auto n = decode_negotiation(*p);
  if (!n) co_return fail(broken(n.error()));
  if (n->version < 2 || n->version > protocol_version || (n->actions & ~opts_.actions) != 0 ||
      (n->protocol & ~opts_.protocol) != 0)
    co_return fail(broken(make_error_code(errc::negotiation_failed)));
  neg_ = std::move(*n);
  co_return result<void>{};
}

result<std::string> client::macro_packet(stage s, char command, macro_list m) const {
  auto const& want = neg_.macros[static_cast<std::size_t>(s)];
  if (m.empty()) return std::string();
  if (!want) return encode_macros(command, m);
  macros chosen;
  for (auto const& kv : m)
    if (listed(*want, kv.first)) chosen.push_back(kv);
  if (chosen.empty()) return std::string();
  return encode_macros(command, chosen);
}

// Sends the packets (macros and the command), then reads the verdict unless the milter said it
// will not reply. Modifications, progress and skip are not allowed here.
task<result<verdict>> client::step(std::string const& packets, std::uint32_t nr_flag) {
  if (auto r = co_await send(packets); !r) co_return fail(r.error());
  if (neg_.protocol & nr_flag) co_return verdict{};
  auto const until = steady::now() + opts_.limits.command;  // for the verdict and any symlist before it
  for (;;) {
    auto r = co_await read_response(until);
    if (!r) co_return fail(r.error());
    if (std::holds_alternative<symlist>(*r)) continue;
    auto v = std::get_if<verdict>(&*r);
    if (!v || v->act == action::skip) co_return fail(broken(make_error_code(errc::unexpected_response)));
    if (v->act == action::connection_failure) connection_done_ = *v;
    co_return std::move(*v);
  }
}

std::optional<verdict> client::settled(bool message_scope) const {
  if (connection_done_) return connection_done_;
  if (message_scope && message_done_) return message_done_;
  return std::nullopt;
}

task<result<verdict>> client::on_connect(std::string_view hostname, peer const& p, macro_list m) {
  if (failed_) co_return fail(failed_);
  if (auto s = settled(false)) co_return *s;
  if (neg_.protocol & proto::no_connect) co_return verdict{};
  auto mp = macro_packet(stage::connect, cmd::connect, m);
  auto c = encode_connect(hostname, p);
  if (!mp || !c) co_return fail(mailroom::errc::invalid_argument);
  auto const packets = *mp + *c;
  auto r = co_await step(packets, proto::nr_connect);
  if (r && (r->act == action::accept || final_for_message(r->act))) connection_done_ = *r;
  co_return r;
}

task<result<verdict>> client::helo(std::string_view name, macro_list m) {
  if (failed_) co_return fail(failed_);
  if (auto s = settled(false)) co_return *s;
  if (neg_.protocol & proto::no_helo) co_return verdict{};
  auto mp = macro_packet(stage::helo, cmd::helo, m);
  auto c = encode_helo(name);
  if (!mp || !c) co_return fail(mailroom::errc::invalid_argument);
  auto const packets = *mp + *c;
  auto r = co_await step(packets, proto::nr_helo);
  if (r && r->act == action::accept) connection_done_ = *r;
  co_return r;
}

task<result<verdict>> client::message_step(std::string const& packets, std::uint32_t nr_flag) {
  auto r = co_await step(packets, nr_flag);
  if (r && final_for_message(r->act)) message_done_ = *r;
  co_return r;
}

task<result<verdict>> client::mail(std::string_view sender, std::span<std::string const> args, macro_list m) {
  if (in_message_)
    if (auto r = co_await abort(); !r) co_return fail(r.error());
  if (failed_) co_return fail(failed_);
  if (auto s = settled(false)) co_return *s;
  in_message_ = true;
  message_done_.reset();
  skipping_body_ = false;
  if (neg_.protocol & proto::no_mail) co_return verdict{};
  auto mp = macro_packet(stage::mail, cmd::mail, m);
  auto c = encode_mail(sender, args);
  if (!mp || !c) co_return fail(mailroom::errc::invalid_argument);
  auto const packets = *mp + *c;
  co_return co_await message_step(packets, proto::nr_mail);
}

task<result<verdict>> client::rcpt(std::string_view recipient, std::span<std::string const> args, macro_list m,
                                   bool rejected_by_mta) {
  if (failed_) co_return fail(failed_);
  if (auto s = settled(true)) co_return *s;
  if ((neg_.protocol & proto::no_rcpt) || (rejected_by_mta && !(neg_.protocol & proto::rcpt_rej))) co_return verdict{};
  auto mp = macro_packet(stage::rcpt, cmd::rcpt, m);
  auto c = encode_rcpt(recipient, args);
  if (!mp || !c) co_return fail(mailroom::errc::invalid_argument);
  auto const packets = *mp + *c;
  auto r = co_await step(packets, proto::nr_rcpt);
  // Reject and tempfail concern this recipient; accept and discard the message.
  if (r && (r->act == action::accept || r->act == action::discard)) message_done_ = *r;
  co_return r;
}

task<result<verdict>> client::data(macro_list m) {
  if (failed_) co_return fail(failed_);
  if (auto s = settled(true)) co_return *s;
  if (neg_.protocol & proto::no_data) co_return verdict{};
  auto mp = macro_packet(stage::data, cmd::data, m);
  if (!mp) co_return fail(mp.error());
  auto const packets = *mp + encode_simple(cmd::data);
  co_return co_await message_step(packets, proto::nr_data);
}

task<result<verdict>> client::header(std::string_view name, std::string_view value) {
  if (failed_) co_return fail(failed_);
  if (auto s = settled(true)) co_return *s;
  if (neg_.protocol & proto::no_headers) co_return verdict{};
  auto c = encode_header(name, milter_value(value, leading_space()));
  if (!c) co_return fail(c.error());
  co_return co_await message_step(*c, proto::nr_header);
}

task<result<verdict>> client::end_of_headers(macro_list m) {
  if (failed_) co_return fail(failed_);
  if (auto s = settled(true)) co_return *s;
  if (neg_.protocol & proto::no_eoh) co_return verdict{};
  auto mp = macro_packet(stage::eoh, cmd::eoh, m);
  if (!mp) co_return fail(mp.error());
  auto const packets = *mp + encode_simple(cmd::eoh);
  co_return co_await message_step(packets, proto::nr_eoh);
}

task<result<verdict>> client::body(std::string_view chunk) {
  if (failed_) co_return fail(failed_);
  if (auto s = settled(true)) co_return *s;
  if ((neg_.protocol & proto::no_body) || skipping_body_) co_return verdict{};
  for (std::size_t i = 0; i < chunk.size(); i += max_body_chunk) {
    std::string p;
    append_packet(p, cmd::body, chunk.substr(i, max_body_chunk));
    if (auto r = co_await send(p); !r) co_return fail(r.error());
    if (neg_.protocol & proto::nr_body) continue;
    auto const until = steady::now() + opts_.limits.command;
    for (;;) {
      auto r = co_await read_response(until);
      if (!r) co_return fail(r.error());
      if (std::holds_alternative<symlist>(*r)) continue;
      auto v = std::get_if<verdict>(&*r);
      if (!v || (v->act == action::skip && !(neg_.protocol & proto::skip)))
        co_return fail(broken(make_error_code(errc::unexpected_response)));
      if (v->act == action::skip) {
        skipping_body_ = true;
        co_return std::move(*v);
      }
      if (v->act == action::connection_failure) connection_done_ = *v;
      if (final_for_message(v->act)) message_done_ = *v;
      if (v->act != action::continue_) co_return std::move(*v);
      break;
    }
  }
  co_return verdict{};
}

task<result<outcome>> client::end_of_message(macro_list m) {
  if (failed_) co_return fail(failed_);
  if (auto s = settled(true)) {
    in_message_ = false;
    co_return outcome{*s, {}};
  }
  auto mp = macro_packet(stage::eom, cmd::body_eob, m);
  if (!mp) co_return fail(mp.error());
  auto const packets = *mp + encode_simple(cmd::body_eob);
  if (auto r = co_await send(packets); !r) co_return fail(r.error());
  outcome out;
  std::size_t body_octets = 0;
  auto const give_up = steady::now() + opts_.limits.end_of_message_total;
  auto until = std::min(give_up, steady::now() + opts_.limits.end_of_message);
  for (;;) {
    auto r = co_await read_response(until);
    if (!r) co_return fail(r.error());
    if (std::holds_alternative<progress>(*r)) until = std::min(give_up, steady::now() + opts_.limits.end_of_message);
    if (std::holds_alternative<progress>(*r) || std::holds_alternative<symlist>(*r)) continue;
    if (auto mod = std::get_if<modification>(&*r)) {
      if (!(neg_.actions & needed_action(*mod))) co_return fail(broken(make_error_code(errc::unexpected_response)));
      // Every change counts: header values, recipients and reasons as much as a new body.
      body_octets += mod->name.size() + mod->value.size();
      if (out.changes.size() >= opts_.max_modifications || body_octets > opts_.max_body_replacement)
        co_return fail(broken(make_error_code(errc::too_many_changes)));
      out.changes.push_back(std::move(*mod));
      continue;
    }
    auto& v = std::get<verdict>(*r);
    if (v.act == action::skip) co_return fail(broken(make_error_code(errc::unexpected_response)));
    if (v.act == action::connection_failure) connection_done_ = v;
    out.final = std::move(v);
    break;
  }
  in_message_ = false;
  message_done_.reset();
  co_return out;
}

task<result<verdict>> client::unknown(std::string_view command_line, macro_list m) {
  if (failed_) co_return fail(failed_);
  if (auto s = settled(false)) co_return *s;
  if (neg_.protocol & proto::no_unknown) co_return verdict{};
  // No stage has a macro list for unknown commands: every macro given is sent.
  auto mp = m.empty() ? result<std::string>(std::string()) : encode_macros(cmd::unknown, m);
  auto c = encode_unknown(command_line);
  if (!mp || !c) co_return fail(mailroom::errc::invalid_argument);
  auto const packets = *mp + *c;
  co_return co_await step(packets, proto::nr_unknown);
}

task<result<void>> client::abort() {
  if (failed_) co_return fail(failed_);
  bool const open = in_message_;
  in_message_ = false;
  message_done_.reset();
  skipping_body_ = false;
  if (!open || connection_done_) co_return result<void>{};
  auto const packet = encode_simple(cmd::abort);
  co_return co_await send(packet);
}

task<result<void>> client::quit_nc() {
  if (auto r = co_await abort(); !r) co_return r;
  connection_done_.reset();
  auto const packet = encode_simple(cmd::quit_nc);
  co_return co_await send(packet);
}

task<void> client::quit() {
  if (!failed_) {
    auto q = encode_simple(cmd::quit);
    (void)co_await send(q);
  }
  if (!failed_) failed_ = make_error_code(mailroom::errc::cancelled);
  stream_->close();
}

task<result<outcome>> send_message(client& c, std::string_view message, macro_list eoh_macros,
                                   macro_list eom_macros) {
  auto parts = split(message);
  for (auto const& h : parts.headers) {
    auto v = co_await c.header(h.name, h.value);
    if (!v) co_return fail(v.error());
    if (v->act != action::continue_) co_return outcome{std::move(*v), {}};
  }
  auto e = co_await c.end_of_headers(eoh_macros);
  if (!e) co_return fail(e.error());
  if (e->act != action::continue_) co_return outcome{std::move(*e), {}};
  auto b = co_await c.body(message.substr(parts.body_offset));
  if (!b) co_return fail(b.error());
  if (b->act != action::continue_ && b->act != action::skip) co_return outcome{std::move(*b), {}};
  co_return co_await c.end_of_message(eom_macros);
}

}  // namespace mailroom::filter::milter
