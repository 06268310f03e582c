// The milter wire format: framing, command encoders, response decoders (and their inverses).
#include <algorithm>

#include "mailroom/core/error.hpp"
#include "mailroom/filter/milter.hpp"
#include "mailroom/smtp/reply_parser.hpp"

namespace mailroom::filter::milter {

namespace {

char const* describe(errc e) noexcept {
  switch (e) {
    case errc::packet_too_large: return "milter packet over the size limit";
    case errc::malformed_packet: return "malformed milter packet";
    case errc::unknown_command: return "unknown milter response";
    case errc::bad_reply_code: return "milter sent an invalid SMTP reply";
    case errc::negotiation_failed: return "milter option negotiation failed";
    case errc::unexpected_response: return "milter response not allowed here";
    case errc::too_many_changes: return "milter requested too many changes";
    case errc::shutdown: return "milter shut down the connection";
    case errc::bad_socket: return "bad milter socket specification";
    case errc::bad_modification: return "milter modification would corrupt the message";
  }
  return nullptr;
}

void put32(std::string& out, std::uint32_t v) {
  out += static_cast<char>(v >> 24);
  out += static_cast<char>(v >> 16);
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v);
}

std::uint32_t get32(std::string_view s) {
  auto b = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(s[i])); };
  return b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3);
}

bool has_nul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

// Appends s and its NUL; false if s holds a NUL.
bool put_str(std::string& out, std::string_view s) {
  if (has_nul(s)) return false;
  out.append(s);
  out += '\0';
  return true;
}

// Reads NUL-terminated strings and 32-bit integers from a packet's data, front to back.
class fields {
 public:
  explicit fields(std::string_view d) : d_(d) {}
  std::optional<std::string> str() {
    auto nul = d_.find('\0');
    if (nul == std::string_view::npos) return std::nullopt;
    std::string s(d_.substr(0, nul));
    d_.remove_prefix(nul + 1);
    return s;
  }
  std::optional<std::uint32_t> u32() {
    if (d_.size() < 4) return std::nullopt;
    auto v = get32(d_);
    d_.remove_prefix(4);
    return v;
  }
  bool done() const { return d_.empty(); }
  std::string_view rest() const { return d_; }

 private:
  std::string_view d_;
};

result<std::string> packet_with(char command, std::string_view a) {
  std::string d;
  if (!put_str(d, a)) return fail(mailroom::errc::invalid_argument);
  std::string out;
  append_packet(out, command, d);
  return out;
}

result<std::string> address_with_args(char command, std::string_view addr, std::span<std::string const> args) {
  std::string d;
  if (!put_str(d, addr)) return fail(mailroom::errc::invalid_argument);
  for (auto const& a : args)
    if (!put_str(d, a)) return fail(mailroom::errc::invalid_argument);
  std::string out;
  append_packet(out, command, d);
  return out;
}

result<response> malformed() { return fail(errc::malformed_packet); }

// name\0value\0 with nothing after.
result<response> name_value(modification::kind k, std::uint32_t index, fields& f) {
  auto name = f.str();
  auto value = f.str();
  if (!name || !value || !f.done()) return malformed();
  modification m;
  m.what = k;
  m.index = index;
  m.name = std::move(*name);
  m.value = std::move(*value);
  return response(std::move(m));
}

}  // namespace

std::error_category const& category() noexcept {
  static mailroom::detail::enum_category<errc> const instance("mailroom.milter", describe, "unknown milter error");
  return instance;
}

void packet_reader::feed(std::string_view bytes) {
  if (error_) return;
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  buf_.append(bytes);
}

result<std::optional<packet>> packet_reader::next() {
  if (error_) return fail(error_);
  std::string_view rest(buf_.data() + pos_, buf_.size() - pos_);
  if (rest.size() < 4) return std::optional<packet>{};
  std::uint32_t const len = get32(rest);
  if (len == 0 || len > max_) {
    error_ = make_error_code(len == 0 ? errc::malformed_packet : errc::packet_too_large);
    buf_.clear();
    buf_.shrink_to_fit();
    pos_ = 0;
    return fail(error_);
  }
  if (rest.size() - 4 < len) {
    if (pos_ > 0) {  // keep the partial packet at the front so the buffer does not creep
      buf_.erase(0, pos_);
      pos_ = 0;
    }
    return std::optional<packet>{};
  }
  packet p;
  p.command = rest[4];
  p.data.assign(rest.substr(5, len - 1));
  pos_ += 4 + len;
  return std::optional<packet>(std::move(p));
}

void append_packet(std::string& out, char command, std::string_view data) {
  put32(out, static_cast<std::uint32_t>(data.size() + 1));
  out += command;
  out.append(data);
}

std::string encode_optneg(std::uint32_t version, std::uint32_t acts, std::uint32_t protocol) {
  std::string d;
  put32(d, version);
  put32(d, acts);
  put32(d, protocol);
  std::string out;
  append_packet(out, cmd::optneg, d);
  return out;
}

result<std::string> encode_macros(char for_command, macro_list m) {
  std::string d(1, for_command);
  for (auto const& [name, value] : m)
    if (!put_str(d, name) || !put_str(d, value)) return fail(mailroom::errc::invalid_argument);
  std::string out;
  append_packet(out, cmd::macro, d);
  return out;
}

result<std::string> encode_connect(std::string_view hostname, peer const& p) {
  std::string d;
  if (!put_str(d, hostname)) return fail(mailroom::errc::invalid_argument);
  d += static_cast<char>(p.fam);
  if (p.fam != family::unknown) {
    d += static_cast<char>(p.port >> 8);
    d += static_cast<char>(p.port & 0xff);
    if (!put_str(d, p.address)) return fail(mailroom::errc::invalid_argument);
  }
  std::string out;
  append_packet(out, cmd::connect, d);
  return out;
}

result<std::string> encode_helo(std::string_view name) { return packet_with(cmd::helo, name); }

result<std::string> encode_mail(std::string_view sender, std::span<std::string const> args) {
  return address_with_args(cmd::mail, sender, args);
}

result<std::string> encode_rcpt(std::string_view recipient, std::span<std::string const> args) {
  return address_with_args(cmd::rcpt, recipient, args);
}

result<std::string> encode_header(std::string_view name, std::string_view value) {
  std::string d;
  if (!put_str(d, name) || !put_str(d, value)) return fail(mailroom::errc::invalid_argument);
  std::string out;
  append_packet(out, cmd::header, d);
  return out;
}

std::string encode_body(std::string_view body) {
  std::string out;
  for (std::size_t i = 0; i < body.size(); i += max_body_chunk) append_packet(out, cmd::body, body.substr(i, max_body_chunk));
  return out;
}

result<std::string> encode_unknown(std::string_view command_line) { return packet_with(cmd::unknown, command_line); }

std::string encode_simple(char command) {
  std::string out;
  append_packet(out, command, {});
  return out;
}

result<smtp::reply> parse_replycode(std::string_view text) {
  // Each line must carry the reply's code; smtp::reply_parser checks that and the syntax.
  if (text.empty() || text.size() > 64 * 1024) return fail(errc::bad_reply_code);
  smtp::reply_parser p;
  std::string wire(text);
  if (wire.back() != '\n') wire += "\r\n";
  p.feed(wire);
  auto r = p.next();
  if (!r || !*r || p.buffered() != 0 || p.in_reply()) return fail(errc::bad_reply_code);
  if ((*r)->code < 400 || (*r)->code > 599) return fail(errc::bad_reply_code);
  return std::move(**r);
}

result<response> decode_response(packet const& p) {
  fields f(p.data);
  auto bare = [&](response r) -> result<response> {
    if (!f.done()) return malformed();
    return r;
  };
  using k = modification::kind;
  switch (p.command) {
    case rsp::accept: return bare(verdict{action::accept, {}});
    case rsp::continue_: return bare(verdict{action::continue_, {}});
    case rsp::discard: return bare(verdict{action::discard, {}});
    case rsp::reject: return bare(verdict{action::reject, {}});
    case rsp::tempfail: return bare(verdict{action::tempfail, {}});
    case rsp::skip: return bare(verdict{action::skip, {}});
    case rsp::conn_fail: return bare(verdict{action::connection_failure, {}});
    case rsp::progress: return bare(progress{});
    case rsp::shutdown: return bare(shutdown_request{});
    case rsp::replycode: {
      auto text = f.str();
      if (!text || !f.done()) return malformed();
      auto r = parse_replycode(*text);
      if (!r) return fail(r.error());
      return response(verdict{action::reply, std::move(*r)});
    }
    case rsp::addheader: return name_value(k::add_header, 0, f);
    case rsp::insheader:
    case rsp::chgheader: {
      auto index = f.u32();
      if (!index) return malformed();
      return name_value(p.command == rsp::insheader ? k::insert_header : k::change_header, *index, f);
    }
    case rsp::replbody: {
      modification m;
      m.what = k::replace_body;
      m.value = p.data;
      return response(std::move(m));
    }
    case rsp::addrcpt:
    case rsp::delrcpt:
    case rsp::quarantine: {
      auto s = f.str();
      if (!s || !f.done()) return malformed();
      modification m;
      m.what = p.command == rsp::addrcpt ? k::add_rcpt : p.command == rsp::delrcpt ? k::delete_rcpt : k::quarantine;
      (m.what == k::quarantine ? m.value : m.name) = std::move(*s);
      return response(std::move(m));
    }
    case rsp::addrcpt_par:
    case rsp::chgfrom: {
      // address\0 then ESMTP arguments\0; libmilter omits the arguments when there are none.
      auto addr = f.str();
      if (!addr) return malformed();
      modification m;
      m.what = p.command == rsp::chgfrom ? k::change_from : k::add_rcpt;
      m.name = std::move(*addr);
      m.with_args = p.command == rsp::addrcpt_par;
      if (!f.done()) {
        auto args = f.str();
        if (!args || !f.done()) return malformed();
        m.value = std::move(*args);
        m.with_args = true;
      }
      return response(std::move(m));
    }
    case rsp::setsymlist: {
      auto st = f.u32();
      if (!st) return malformed();
      auto names = f.str();
      if (!names || !f.done() || *st >= stage_count) return malformed();
      return response(symlist{*st, std::move(*names)});
    }
    default: return fail(errc::unknown_command);
  }
}

result<negotiation> decode_negotiation(packet const& p) {
  if (p.command != rsp::optneg) return fail(errc::unexpected_response);
  fields f(p.data);
  negotiation n;
  auto v = f.u32();
  auto a = f.u32();
  auto pr = f.u32();
  if (!v || !a || !pr) return fail(errc::malformed_packet);
  n.version = *v;
  n.actions = *a;
  n.protocol = *pr;
  while (!f.done()) {
    auto st = f.u32();
    if (!st) return fail(errc::malformed_packet);
    auto names = f.str();
    if (!names || *st >= stage_count) return fail(errc::malformed_packet);
    n.macros[*st] = std::move(*names);
  }
  return n;
}

std::string encode_response(response const& r) {
  std::string d;
  char c = 0;
  if (auto v = std::get_if<verdict>(&r)) {
    switch (v->act) {
      case action::continue_: c = rsp::continue_; break;
      case action::accept: c = rsp::accept; break;
      case action::reject: c = rsp::reject; break;
      case action::tempfail: c = rsp::tempfail; break;
      case action::discard: c = rsp::discard; break;
      case action::skip: c = rsp::skip; break;
      case action::connection_failure: c = rsp::conn_fail; break;
      case action::reply: {
        c = rsp::replycode;
        std::string w = v->smtp ? v->smtp->wire() : std::string();
        if (w.size() >= 2) w.resize(w.size() - 2);  // the last CRLF
        put_str(d, w);
        break;
      }
    }
  } else if (auto m = std::get_if<modification>(&r)) {
    using k = modification::kind;
    switch (m->what) {
      case k::add_header: c = rsp::addheader; break;
      case k::insert_header: c = rsp::insheader; put32(d, m->index); break;
      case k::change_header: c = rsp::chgheader; put32(d, m->index); break;
      case k::replace_body: c = rsp::replbody; d = m->value; break;
      case k::add_rcpt: c = m->with_args ? rsp::addrcpt_par : rsp::addrcpt; break;
      case k::delete_rcpt: c = rsp::delrcpt; break;
      case k::change_from: c = rsp::chgfrom; break;
      case k::quarantine: c = rsp::quarantine; put_str(d, m->value); break;
    }
    if (m->what != k::replace_body && m->what != k::quarantine) {
      put_str(d, m->name);
      bool const header = m->what == k::add_header || m->what == k::insert_header || m->what == k::change_header;
      if (header || m->with_args) put_str(d, m->value);
    }
  } else if (std::holds_alternative<progress>(r)) {
    c = rsp::progress;
  } else if (std::holds_alternative<shutdown_request>(r)) {
    c = rsp::shutdown;
  } else if (auto s = std::get_if<symlist>(&r)) {
    c = rsp::setsymlist;
    put32(d, s->stage);
    put_str(d, s->names);
  }
  std::string out;
  append_packet(out, c, d);
  return out;
}

std::string encode_negotiation(negotiation const& n) {
  std::string d;
  put32(d, n.version);
  put32(d, n.actions);
  put32(d, n.protocol);
  for (std::size_t i = 0; i < stage_count; ++i) {
    if (!n.macros[i]) continue;
    put32(d, static_cast<std::uint32_t>(i));
    put_str(d, *n.macros[i]);
  }
  std::string out;
  append_packet(out, rsp::optneg, d);
  return out;
}

verdict failure_verdict(failure_mode m) {
  switch (m) {
    case failure_mode::accept: return verdict{action::continue_, {}};
    case failure_mode::reject: return verdict{action::reject, {}};
    case failure_mode::tempfail: break;
  }
  return verdict{action::tempfail, {}};
}

}  // namespace mailroom::filter::milter
