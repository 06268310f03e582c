#include "mailroom/mta/dsn.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <random>

#include "mailroom/core/text.hpp"
#include "mailroom/mta/inbound.hpp"

namespace mailroom::mta {

namespace {

constexpr std::size_t max_line = 998;  // RFC 5322 2.1.1, without the CRLF
constexpr std::size_t fold_width = 76;
constexpr std::size_t max_diagnostic = 4096;  // one recipient's reply or error text, after cleaning

bool is_ascii(std::string_view s) noexcept {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

// Text fit for one header field or one paragraph: CR, LF and TAB become spaces, runs of spaces
// one space, other control characters '?'; UTF-8 stays when allowed and valid, any other
// non-ASCII octet becomes '?'. At most `limit` octets (cut at a character boundary).
std::string clean(std::string_view in, bool utf8, std::size_t limit = max_diagnostic) {
  std::string out;
  out.reserve(std::min(in.size(), limit));
  for (std::size_t i = 0; i < in.size() && out.size() < limit;) {
    auto c = static_cast<unsigned char>(in[i]);
    if (c == '\r' || c == '\n' || c == '\t' || c == ' ') {
      if (!out.empty() && out.back() != ' ') out += ' ';
      ++i;
    } else if (c < 0x20 || c == 0x7f) {
      out += '?';
      ++i;
    } else if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
    } else {
      std::size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
      if (utf8 && n > 1 && i + n <= in.size() && text::is_valid_utf8(in.substr(i, n)) && out.size() + n <= limit) {
        out.append(in.substr(i, n));
        i += n;
      } else {
        out += '?';
        ++i;
      }
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// A host name for Reporting-MTA, Remote-MTA, From: and Message-ID: no spaces, nothing odd.
std::string clean_host(std::string_view in) {
  std::string out;
  for (char c : in.substr(0, 255))
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
        c == '_' || c == ':' || c == '[' || c == ']')
      out += c;
  return out.empty() ? std::string("localhost") : out;
}

// Appends `first` + `value` as lines of at most `width` octets where words allow (never more
// than 998), breaking at spaces; continuation lines start with `cont` (" " folds a header field).
// A word too long for one line is cut at a UTF-8 character boundary.
void wrap(std::string& out, std::string_view first, std::string_view value, std::string_view cont,
          std::size_t width = fold_width) {
  std::string line(first);
  bool has_word = false;
  std::size_t pos = 0;
  while (pos < value.size()) {
    auto sp = value.find(' ', pos);
    auto word = value.substr(pos, sp == std::string_view::npos ? std::string_view::npos : sp - pos);
    pos = sp == std::string_view::npos ? value.size() : sp + 1;
    if (word.empty()) continue;
    if (has_word && line.size() + 1 + word.size() > width) {
      out += line;
      out += "\r\n";
      line = cont;
      has_word = false;
    }
    if (has_word) line += ' ';
    while (line.size() + word.size() > max_line) {
      std::size_t take = max_line - line.size();
      while (take > 0 && (static_cast<unsigned char>(word[take]) & 0xC0) == 0x80) --take;
      line.append(word.substr(0, take));
      out += line;
      out += "\r\n";
      line = cont;
      word.remove_prefix(take);
    }
    line += word;
    has_word = true;
  }
  out += line;
  out += "\r\n";
}

void field(std::string& out, std::string_view name, std::string_view value) {
  std::string first(name);
  first += ": ";
  wrap(out, first, value, " ");
}

// A reply on one line: "550 5.1.1 first line second line".
std::string reply_text(smtp::reply const& r, bool utf8) {
  std::string s = std::to_string(r.code >= 200 && r.code <= 599 ? r.code : 451);
  if (r.enhanced[0] != 0) {
    char enh[16];
    std::snprintf(enh, sizeof enh, " %u.%u.%u", r.enhanced[0], r.enhanced[1], r.enhanced[2]);
    s += enh;
  }
  auto t = clean(r.text, utf8);
  if (!t.empty()) s += " " + t;
  return s;
}

std::string status_string(dsn_status s) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%u.%u.%u", s[0], s[1], s[2]);
  return buf;
}

// "rfc822; a@b" or, for a non-ASCII address, "utf-8; a@b" (RFC 6533 3: raw UTF-8 in a global
// report; a report with such an address is always global).
std::string typed_address(address const& a, bool global) {
  auto s = a.to_string();
  bool ascii = is_ascii(s);
  return std::string(ascii ? "rfc822; " : "utf-8; ") + clean(s, global, max_line);
}

// Original-Recipient: the ORCPT address type and its decoded value.
std::string original_recipient(smtp::rcpt_params const& p, bool global) {
  std::string type;
  for (char c : p.orcpt_type.substr(0, 32))
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-') type += c;
  if (type.empty()) type = "rfc822";
  return type + "; " + clean(p.orcpt, global, max_line);
}

// Where the original's header ends: the offset of its empty line (or the end of the message).
struct header_split {
  std::size_t header_end = 0;  ///< one past the last header line's line end
};
header_split split_header(std::string_view m) {
  std::size_t pos = 0;
  while (pos < m.size()) {
    auto nl = m.find('\n', pos);
    auto end = nl == std::string_view::npos ? m.size() : nl;
    auto line = m.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) return {pos};
    pos = nl == std::string_view::npos ? m.size() : nl + 1;
  }
  return {m.size()};
}

// The original as valid 8bit MIME: CRLF line ends (bare CR or LF included), lines of at most 998
// octets (header lines folded, body lines broken), NUL as space. `header_end` is where its
// header ends in `m`.
void copy_original(std::string& out, std::string_view m, std::size_t header_end) {
  std::size_t pos = 0;
  while (pos < m.size()) {
    std::size_t end = pos;
    while (end < m.size() && m[end] != '\r' && m[end] != '\n') ++end;
    auto line = m.substr(pos, end - pos);
    bool in_header = pos < header_end;
    if (end < m.size()) end += (m[end] == '\r' && end + 1 < m.size() && m[end + 1] == '\n') ? 2 : 1;
    pos = end;
    std::size_t room = max_line;
    while (true) {
      auto take = std::min(line.size(), room);
      for (char c : line.substr(0, take)) out += c == '\0' ? ' ' : c;
      line.remove_prefix(take);
      out += "\r\n";
      if (line.empty()) break;
      if (in_header) {
        out += ' ';  // folding keeps the rest in the same field
        room = max_line - 1;
      } else {
        room = max_line;
      }
    }
  }
}

std::string unique_token(std::chrono::system_clock::time_point now) {
  static std::atomic<std::uint64_t> counter{0};
  static std::uint64_t const salt = [] {
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  }();
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  char buf[64];
  std::snprintf(buf, sizeof buf, "%llX.%llX", static_cast<unsigned long long>(us),
                static_cast<unsigned long long>(salt ^ (counter.fetch_add(1) * 0x9E3779B97F4A7C15ull)));
  return buf;
}

}  // namespace

std::string_view to_string(dsn_action a) noexcept {
  switch (a) {
    case dsn_action::failed: return "failed";
    case dsn_action::delayed: return "delayed";
    case dsn_action::delivered: return "delivered";
    case dsn_action::relayed: return "relayed";
    case dsn_action::expanded: return "expanded";
  }
  return "failed";
}

dsn_status status_of(smtp::reply const& r) noexcept {
  int cls = r.code / 100;
  if (cls < 2 || cls > 5 || cls == 3) cls = 4;
  if (r.enhanced[0] == cls) return r.enhanced;
  return {static_cast<std::uint8_t>(cls), 0, 0};
}

dsn_status status_of(dsn_recipient const& r) noexcept {
  if (r.status[0] != 0) return r.status;
  if (r.reply) return status_of(*r.reply);
  switch (r.action) {
    case dsn_action::failed: return {5, 0, 0};
    case dsn_action::delayed: return {4, 0, 0};
    default: return {2, 0, 0};
  }
}

bool is_global(dsn_report const& r) noexcept {
  if (r.smtputf8 || !is_ascii(r.sender.local) || !is_ascii(r.sender.domain)) return true;
  for (auto const& x : r.recipients)
    if (!is_ascii(x.addr.local) || !is_ascii(x.addr.domain) || !is_ascii(x.params.orcpt)) return true;
  return false;
}

std::string make_dsn(dsn_report const& r, std::string_view original) {
  bool const global = is_global(r);
  auto const host = clean_host(r.reporting_mta);
  auto has = [&](dsn_action a) {
    return std::any_of(r.recipients.begin(), r.recipients.end(), [a](auto const& x) { return x.action == a; });
  };
  bool const failed = has(dsn_action::failed);
  auto const split = split_header(original);
  bool const whole = failed && r.ret != smtp::dsn_ret::headers && original.size() <= r.max_returned;

  // ---- 1. the notification, for people ----
  std::string notice;
  wrap(notice, "", "This is the mail system at host " + host + ".", "");
  auto section = [&](dsn_action a, std::string const& intro) {
    if (!has(a)) return;
    notice += "\r\n";
    wrap(notice, "", intro, "");
    for (auto const& x : r.recipients) {
      if (x.action != a) continue;
      std::string what;
      auto err = clean(x.error, true);
      if (!err.empty()) what = err;
      if (x.reply) {
        std::string said = (x.remote_mta.empty() ? std::string() : "host " + clean_host(x.remote_mta) + " said: ") +
                           reply_text(*x.reply, true);
        what = what.empty() ? said : what + "; last reply: " + said;
      }
      if (what.empty()) what = a == dsn_action::failed ? "delivery failed" : a == dsn_action::delayed ? "not yet delivered" : "ok";
      std::string who = "<" + clean(x.addr.to_string(), true, max_line) + ">";
      if (!x.params.orcpt.empty()) who += " (originally " + clean(x.params.orcpt, true, max_line) + ")";
      notice += "\r\n";
      wrap(notice, "", who + ": " + what, "    ");
    }
  };
  section(dsn_action::failed,
          "Your message could not be delivered to the recipients below. The mail system has given up on them.");
  if (has(dsn_action::delayed)) {
    std::chrono::system_clock::time_point until{};
    for (auto const& x : r.recipients)
      if (x.action == dsn_action::delayed) until = std::max(until, x.will_retry_until);
    std::string intro = "Your message has not yet been delivered to the recipients below. The mail system is still "
                        "trying";
    if (until != std::chrono::system_clock::time_point{}) intro += " (until " + rfc5322_date(until) + ")";
    intro += "; you do not need to send it again. You will be told if it cannot be delivered.";
    section(dsn_action::delayed, intro);
  }
  section(dsn_action::delivered, "Your message was delivered to the recipients below.");
  section(dsn_action::relayed,
          "Your message was passed on to the recipients below, whose mail systems send no delivery notifications.");
  section(dsn_action::expanded, "Your message was delivered to the recipients below, which forward it further.");
  notice += "\r\n";
  std::string ref = r.queue_id.empty() ? std::string() : " (queue id " + clean(r.queue_id, false, 64) + ")";
  wrap(notice, "", std::string(whole ? "The original message" : "The header of the original message") + ref +
                       " is attached.", "");

  // ---- 2. the machine-readable report ----
  std::string status;
  field(status, "Reporting-MTA", "dns; " + host);
  if (!r.queue_id.empty()) field(status, "X-Mailroom-Queue-ID", clean(r.queue_id, false, 64));
  if (!r.envid.empty()) field(status, "Original-Envelope-Id", smtp::xtext_encode(r.envid.substr(0, 400)));
  if (r.arrival != std::chrono::system_clock::time_point{}) field(status, "Arrival-Date", rfc5322_date(r.arrival));
  for (auto const& x : r.recipients) {
    status += "\r\n";
    if (!x.params.orcpt.empty()) field(status, "Original-Recipient", original_recipient(x.params, global));
    field(status, "Final-Recipient", typed_address(x.addr, global));
    field(status, "Action", to_string(x.action));
    field(status, "Status", status_string(status_of(x)));
    if (!x.remote_mta.empty()) field(status, "Remote-MTA", "dns; " + clean_host(x.remote_mta));
    if (x.reply)
      field(status, "Diagnostic-Code", "smtp; " + reply_text(*x.reply, global));
    else if (auto err = clean(x.error, global); !err.empty())
      field(status, "Diagnostic-Code", "X-mailroom; " + err);
    if (x.last_attempt != std::chrono::system_clock::time_point{})
      field(status, "Last-Attempt-Date", rfc5322_date(x.last_attempt));
    if (x.action == dsn_action::delayed && x.will_retry_until != std::chrono::system_clock::time_point{})
      field(status, "Will-Retry-Until", rfc5322_date(x.will_retry_until));
  }

  // ---- 3. the original, or its header ----
  std::string returned;
  if (whole) {
    copy_original(returned, original, split.header_end);
  } else {
    auto head = original.substr(0, split.header_end);
    if (head.size() > r.max_returned) {  // a monstrous header: cut at a line end
      auto cut = head.rfind('\n', r.max_returned);
      head = head.substr(0, cut == std::string_view::npos ? 0 : cut + 1);
    }
    copy_original(returned, head, head.size());
  }

  // ---- the envelope of it all ----
  std::string boundary;
  for (;;) {
    boundary = "=_mailroom_report_" + unique_token(r.now);
    auto delim = "--" + boundary;
    if (notice.find(delim) == std::string::npos && status.find(delim) == std::string::npos &&
        returned.find(delim) == std::string::npos)
      break;
  }
  bool const notice_8bit = !is_ascii(notice), status_8bit = !is_ascii(status), returned_8bit = !is_ascii(returned);

  std::string out;
  out.reserve(notice.size() + status.size() + returned.size() + 2048);
  field(out, "From", "\"Mail Delivery System\" <MAILER-DAEMON@" + host + ">");
  if (r.sender.is_null())
    field(out, "To", "undisclosed-recipients:;");
  else
    field(out, "To", "<" + clean(r.sender.to_string(), global, max_line) + ">");
  field(out, "Subject", failed                          ? "Undelivered Mail Returned to Sender"
                        : has(dsn_action::delayed)      ? "Delayed Mail (still being retried)"
                                                        : "Successful Mail Delivery Report");
  field(out, "Date", rfc5322_date(r.now));
  field(out, "Message-ID", r.message_id.empty() ? "<" + unique_token(r.now) + "@" + host + ">"
                                                : clean(r.message_id, false, 900));
  field(out, "Auto-Submitted", "auto-replied");
  field(out, "MIME-Version", "1.0");
  field(out, "Content-Type", "multipart/report; report-type=delivery-status; boundary=\"" + boundary + "\"");
  if (notice_8bit || status_8bit || returned_8bit) field(out, "Content-Transfer-Encoding", "8bit");
  out += "\r\nThis is a MIME-encapsulated message.\r\n";

  out += "\r\n--" + boundary + "\r\n";
  field(out, "Content-Description", "Notification");
  field(out, "Content-Type", notice_8bit ? "text/plain; charset=utf-8" : "text/plain; charset=us-ascii");
  if (notice_8bit) field(out, "Content-Transfer-Encoding", "8bit");
  out += "\r\n";
  out += notice;

  out += "\r\n--" + boundary + "\r\n";
  field(out, "Content-Description", "Delivery report");
  field(out, "Content-Type", global ? "message/global-delivery-status" : "message/delivery-status");
  if (status_8bit) field(out, "Content-Transfer-Encoding", "8bit");
  out += "\r\n";
  out += status;

  out += "\r\n--" + boundary + "\r\n";
  field(out, "Content-Description", whole ? "Undelivered Message" : failed ? "Undelivered Message Headers" : "Message Headers");
  field(out, "Content-Type", whole ? (global ? "message/global" : "message/rfc822")
                                   : (global ? "message/global-headers" : "text/rfc822-headers"));
  if (returned_8bit) field(out, "Content-Transfer-Encoding", "8bit");
  out += "\r\n";
  out += returned;
  out += "\r\n--" + boundary + "--\r\n";
  return out;
}

smtp::mail_params dsn_mail_params(dsn_report const& r, std::string_view dsn) {
  smtp::mail_params p;
  p.smtputf8 = is_global(r);
  p.body = is_ascii(dsn) ? smtp::body_type::seven_bit : smtp::body_type::eight_bit_mime;
  p.size = dsn.size();
  return p;
}

}  // namespace mailroom::mta
