#include "mailroom/smtp/command.hpp"

#include <array>

#include "mailroom/core/text.hpp"
#include "mailroom/smtp/error.hpp"

#include "mailroom/core/error.hpp"

namespace mailroom::smtp {

namespace {
char const* describe(errc e) noexcept {
  switch (e) {
    case errc::message_too_big: return "message exceeds the size limit";
    case errc::bare_newline: return "bare CR or LF in message";
    case errc::transaction_aborted: return "transaction aborted by the client";
    case errc::protocol_error: return "SMTP protocol error";
    case errc::malformed_reply: return "malformed SMTP reply";
    case errc::reply_too_long: return "SMTP reply too long";
    case errc::starttls_unavailable: return "STARTTLS required by policy but not offered";
    case errc::auth_unavailable: return "no usable SMTP AUTH mechanism";
  }
  return nullptr;
}

struct verb_name {
  std::string_view name;
  verb v;
};
constexpr std::array<verb_name, 15> verbs{{
    {"HELO", verb::helo}, {"EHLO", verb::ehlo}, {"LHLO", verb::lhlo}, {"MAIL", verb::mail},
    {"RCPT", verb::rcpt}, {"DATA", verb::data}, {"BDAT", verb::bdat}, {"RSET", verb::rset},
    {"NOOP", verb::noop}, {"QUIT", verb::quit}, {"VRFY", verb::vrfy}, {"EXPN", verb::expn},
    {"HELP", verb::help}, {"STARTTLS", verb::starttls}, {"AUTH", verb::auth},
}};

std::string_view trim_spaces(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Splits "KEY=VALUE KEY2 ..." one parameter at a time.
struct param {
  std::string_view key;
  std::optional<std::string_view> value;
};
bool next_param(std::string_view& rest, param& out) {
  rest = trim_spaces(rest);
  if (rest.empty()) return false;
  auto sp = rest.find(' ');
  auto tok = rest.substr(0, sp);
  rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp + 1);
  auto eq = tok.find('=');
  out.key = tok.substr(0, eq);
  out.value = eq == std::string_view::npos ? std::nullopt : std::optional(tok.substr(eq + 1));
  return true;
}

bool valid_keyword(std::string_view k) {
  if (k.empty() || k.size() > 64) return false;
  for (char c : k)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return true;
}

// "FROM:" / "TO:" then optional spaces (real clients add one), then the path.
std::optional<std::string_view> strip_prefix(std::string_view args, std::string_view prefix) {
  if (!text::istarts_with(args, prefix)) return std::nullopt;
  args.remove_prefix(prefix.size());
  while (!args.empty() && args.front() == ' ') args.remove_prefix(1);
  return args;
}

// A parameter given twice is an error, not a silent override.
template <class T>
bool set_once(std::optional<T>& slot, T v) {
  if (slot) return false;
  slot = std::move(v);
  return true;
}
}  // namespace

std::error_category const& category() noexcept {
  static mailroom::detail::enum_category<errc> const instance("mailroom.smtp", describe, "unknown smtp error");
  return instance;
}

command parse_command(std::string_view line) noexcept {
  command c;
  auto sp = line.find(' ');
  c.name = line.substr(0, sp);
  c.args = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
  for (auto const& vn : verbs)
    if (text::iequals(c.name, vn.name)) {
      c.v = vn.v;
      break;
    }
  return c;
}

std::optional<std::string> xtext_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '+') {
      if (i + 2 >= s.size()) return std::nullopt;
      auto hex = [](char h) -> int {
        if (h >= '0' && h <= '9') return h - '0';
        if (h >= 'A' && h <= 'F') return h - 'A' + 10;
        return -1;
      };
      int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c < 33 || c > 126 || c == '=') {
      return std::nullopt;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

namespace {
// ENVID and ORCPT end up in DSN headers: only printable US-ASCII may come out of xtext there.
std::optional<std::string> xtext_decode_printable(std::string_view s) {
  auto v = xtext_decode(s);
  if (v)
    for (unsigned char c : *v)
      if (c < 0x20 || c == 0x7f) return std::nullopt;
  return v;
}

bool is_atom(std::string_view s) {
  if (s.empty() || s.size() > 32) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return true;
}
}  // namespace

std::string xtext_encode(std::string_view s) {
  static constexpr char hexd[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (c < 33 || c > 126 || c == '+' || c == '=') {
      out += '+';
      out += hexd[c >> 4];
      out += hexd[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

expected<std::string, reply> parse_helo(std::string_view args) {
  args = trim_spaces(args);
  if (args.empty()) return unexpected(replies::bad_arguments("Syntax: EHLO hostname"));
  // Clients send all sorts of names here (bare words, underscores); accept printable ASCII and
  // UTF-8 up to a sane length, reject controls.
  auto sp = args.find(' ');
  auto name = args.substr(0, sp);
  if (name.size() > 255) return unexpected(replies::bad_arguments("Hostname too long"));
  for (unsigned char c : name)
    if (c < 33 || c == 127) return unexpected(replies::bad_arguments("Invalid hostname"));
  if (!text::is_valid_utf8(name)) return unexpected(replies::bad_arguments("Invalid hostname"));
  return std::string(name);
}

expected<mail_command, reply> parse_mail(std::string_view args, extension_set const& ext) {
  auto rest = strip_prefix(args, "FROM:");
  if (!rest) return unexpected(replies::bad_arguments("Syntax: MAIL FROM:<address>"));
  // The path's UTF-8 is allowed only with SMTPUTF8, which is a parameter after the path: look ahead.
  bool utf8 = false;
  if (ext.smtputf8) {
    auto close = rest->find('>');
    if (close != std::string_view::npos) {
      std::string_view p = rest->substr(close + 1);
      param pr;
      while (next_param(p, pr))
        if (text::iequals(pr.key, "SMTPUTF8")) utf8 = true;
    }
  }
  std::size_t used = 0;
  auto from = parse_path(*rest, {.allow_utf8 = utf8, .allow_null = true}, &used);
  if (!from) return unexpected(replies::bad_arguments("Bad sender address syntax"));
  mail_command out{std::move(*from), {}};
  std::string_view p = rest->substr(used);
  if (!p.empty() && p.front() != ' ') return unexpected(replies::bad_arguments("Bad sender address syntax"));
  std::optional<body_type> body;
  std::optional<dsn_ret> ret;
  std::optional<std::string> envid, auth;
  param pr;
  while (next_param(p, pr)) {
    if (!valid_keyword(pr.key)) return unexpected(replies::bad_arguments("Bad parameter syntax"));
    if (!ext.esmtp) return unexpected(replies::unrecognized_parameter("Parameters need EHLO"));
    if (text::iequals(pr.key, "SIZE")) {
      auto v = pr.value ? text::parse_uint(*pr.value) : std::nullopt;
      if (!v || out.params.size) return unexpected(replies::bad_arguments("Bad SIZE parameter"));
      if (ext.max_size && *v > ext.max_size) return unexpected(replies::message_too_big());
      out.params.size = *v;
    } else if (text::iequals(pr.key, "BODY")) {
      if (!pr.value) return unexpected(replies::bad_arguments("Bad BODY parameter"));
      body_type b;
      if (text::iequals(*pr.value, "7BIT")) b = body_type::seven_bit;
      else if (text::iequals(*pr.value, "8BITMIME") && ext.eight_bit_mime) b = body_type::eight_bit_mime;
      else return unexpected(replies::unrecognized_parameter("Unsupported BODY type"));
      if (!set_once(body, b)) return unexpected(replies::bad_arguments("Duplicate BODY parameter"));
    } else if (text::iequals(pr.key, "SMTPUTF8") && ext.smtputf8) {
      if (pr.value || out.params.smtputf8) return unexpected(replies::bad_arguments("Bad SMTPUTF8 parameter"));
      out.params.smtputf8 = true;
    } else if (text::iequals(pr.key, "RET") && ext.dsn) {
      if (!pr.value) return unexpected(replies::bad_arguments("Bad RET parameter"));
      dsn_ret r;
      if (text::iequals(*pr.value, "FULL")) r = dsn_ret::full;
      else if (text::iequals(*pr.value, "HDRS")) r = dsn_ret::headers;
      else return unexpected(replies::bad_arguments("Bad RET parameter"));
      if (!set_once(ret, r)) return unexpected(replies::bad_arguments("Duplicate RET parameter"));
    } else if (text::iequals(pr.key, "ENVID") && ext.dsn) {
      auto v = pr.value ? xtext_decode_printable(*pr.value) : std::nullopt;
      if (!v || v->empty() || v->size() > 100 || !set_once(envid, std::move(*v)))
        return unexpected(replies::bad_arguments("Bad ENVID parameter"));
    } else if (text::iequals(pr.key, "AUTH")) {
      auto v = pr.value ? xtext_decode_printable(*pr.value) : std::nullopt;
      if (!v || v->empty() || v->size() > 500 || !set_once(auth, std::move(*v)))
        return unexpected(replies::bad_arguments("Bad AUTH parameter"));
    } else {
      return unexpected(replies::unrecognized_parameter("Unsupported parameter " + std::string(pr.key)));
    }
  }
  out.params.body = body.value_or(body_type::unspecified);
  out.params.ret = ret.value_or(dsn_ret::unspecified);
  if (envid) out.params.envid = std::move(*envid);
  out.params.auth = std::move(auth);
  return out;
}

expected<rcpt_command, reply> parse_rcpt(std::string_view args, extension_set const& ext) {
  auto rest = strip_prefix(args, "TO:");
  if (!rest) return unexpected(replies::bad_arguments("Syntax: RCPT TO:<address>"));
  std::size_t used = 0;
  // UTF-8 in RCPT is checked against the transaction's SMTPUTF8 by the session; the parser admits it
  // only when the extension is on at all.
  auto to = parse_path(*rest, {.allow_utf8 = ext.smtputf8, .allow_postmaster = true}, &used);
  if (!to) return unexpected(replies::bad_arguments("Bad recipient address syntax"));
  rcpt_command out{std::move(*to), {}};
  std::string_view p = rest->substr(used);
  if (!p.empty() && p.front() != ' ') return unexpected(replies::bad_arguments("Bad recipient address syntax"));
  bool have_notify = false, have_orcpt = false;
  param pr;
  while (next_param(p, pr)) {
    if (!valid_keyword(pr.key)) return unexpected(replies::bad_arguments("Bad parameter syntax"));
    if (!ext.esmtp) return unexpected(replies::unrecognized_parameter("Parameters need EHLO"));
    if (text::iequals(pr.key, "NOTIFY") && ext.dsn) {
      if (!pr.value || pr.value->empty() || have_notify) return unexpected(replies::bad_arguments("Bad NOTIFY parameter"));
      have_notify = true;
      std::string_view v = *pr.value;
      while (!v.empty()) {
        auto comma = v.find(',');
        auto item = v.substr(0, comma);
        v = comma == std::string_view::npos ? std::string_view{} : v.substr(comma + 1);
        if (text::iequals(item, "NEVER")) out.params.notify |= notify_never;
        else if (text::iequals(item, "SUCCESS")) out.params.notify |= notify_success;
        else if (text::iequals(item, "FAILURE")) out.params.notify |= notify_failure;
        else if (text::iequals(item, "DELAY")) out.params.notify |= notify_delay;
        else return unexpected(replies::bad_arguments("Bad NOTIFY parameter"));
      }
      // NEVER excludes the others (RFC 3461 4.1).
      if ((out.params.notify & notify_never) && out.params.notify != notify_never)
        return unexpected(replies::bad_arguments("Bad NOTIFY parameter"));
    } else if (text::iequals(pr.key, "ORCPT") && ext.dsn) {
      if (!pr.value || have_orcpt) return unexpected(replies::bad_arguments("Bad ORCPT parameter"));
      have_orcpt = true;
      auto semi = pr.value->find(';');
      if (semi == std::string_view::npos || !is_atom(pr.value->substr(0, semi)))
        return unexpected(replies::bad_arguments("Bad ORCPT parameter"));
      auto decoded = xtext_decode_printable(pr.value->substr(semi + 1));
      if (!decoded || decoded->empty() || decoded->size() > 500) return unexpected(replies::bad_arguments("Bad ORCPT parameter"));
      out.params.orcpt_type = text::to_lower(pr.value->substr(0, semi));
      out.params.orcpt = std::move(*decoded);
    } else {
      return unexpected(replies::unrecognized_parameter("Unsupported parameter " + std::string(pr.key)));
    }
  }
  return out;
}

expected<bdat_command, reply> parse_bdat(std::string_view args) {
  args = trim_spaces(args);
  auto sp = args.find(' ');
  auto size = text::parse_uint(args.substr(0, sp));
  if (!size) return unexpected(replies::bad_arguments("Syntax: BDAT size [LAST]"));
  bdat_command out{*size, false};
  if (sp != std::string_view::npos) {
    auto rest = trim_spaces(args.substr(sp + 1));
    if (!text::iequals(rest, "LAST")) return unexpected(replies::bad_arguments("Syntax: BDAT size [LAST]"));
    out.last = true;
  }
  return out;
}

expected<auth_command, reply> parse_auth(std::string_view args) {
  args = trim_spaces(args);
  auto sp = args.find(' ');
  auto mech = args.substr(0, sp);
  bool sasl_name = !mech.empty() && mech.size() <= 20;  // RFC 4422 3.1
  for (char c : mech)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
      sasl_name = false;
  if (!sasl_name)
    return unexpected(replies::bad_arguments("Syntax: AUTH mechanism [initial-response]"));
  auth_command out{text::to_upper(mech), std::nullopt};
  if (sp != std::string_view::npos) {
    auto ir = trim_spaces(args.substr(sp + 1));
    if (ir.empty() || ir.find(' ') != std::string_view::npos)
      return unexpected(replies::bad_arguments("Syntax: AUTH mechanism [initial-response]"));
    out.initial_response = std::string(ir);
  }
  return out;
}

}  // namespace mailroom::smtp
