#include "mailroom/imap/fetch.hpp"

#include "mailroom/core/text.hpp"
#include "mailroom/mime/address.hpp"

namespace mailroom::imap {
namespace {

std::string addresses(mime::part const& p, std::string_view field) {
  auto v = p.header(field);
  if (!v) return "NIL";
  auto list = mime::parse_address_list(mime::unfold(*v));
  if (list.empty()) return "NIL";
  std::string out = "(";
  for (auto const& a : list) {
    if (a.group_end) {
      out += "(NIL NIL NIL NIL)";
    } else if (a.group) {
      out += "(NIL NIL " + imap_string(a.mailbox) + " NIL)";
    } else {
      out += "(" + (a.name.empty() ? std::string("NIL") : imap_string(a.name)) + " " +
             (a.route.empty() ? std::string("NIL") : imap_string(a.route)) + " " + imap_string(a.mailbox) + " " +
             (a.host.empty() ? std::string("NIL") : imap_string(a.host)) + ")";
    }
  }
  return out + ")";
}

std::optional<std::string> unfolded(mime::part const& p, std::string_view field) {
  auto v = p.header(field);
  if (!v) return std::nullopt;
  return mime::unfold(*v);
}

std::string params(std::vector<std::pair<std::string, std::string>> const& ps) {
  if (ps.empty()) return "NIL";
  std::string out = "(";
  bool first = true;
  for (auto const& [k, v] : ps) {
    if (!first) out += ' ';
    first = false;
    out += imap_string(text::to_upper(k)) + " " + imap_string(v);
  }
  return out + ")";
}

std::string disposition(mime::part const& p) {
  auto v = p.header("Content-Disposition");
  if (!v) return "NIL";
  auto d = mime::parse_parameterized(*v);
  if (d.value.empty()) return "NIL";
  return "(" + imap_string(text::to_upper(d.value)) + " " + params(d.params) + ")";
}

std::string language(mime::part const& p) {
  auto v = unfolded(p, "Content-Language");
  return v ? imap_string(*v) : std::string("NIL");
}

}  // namespace

std::string imap_string(std::string_view s) {
  bool quotable = s.size() < 1024;
  for (unsigned char c : s)
    if (c == '"' || c == '\\' || c < ' ' || c >= 0x7f) quotable = false;
  if (quotable) return "\"" + std::string(s) + "\"";
  return "{" + std::to_string(s.size()) + "}\r\n" + std::string(s);
}

std::string nstring(std::optional<std::string_view> s) { return s ? imap_string(*s) : std::string("NIL"); }

std::string envelope(mime::part const& p) {
  auto from = addresses(p, "From");
  auto sender = p.header("Sender") ? addresses(p, "Sender") : from;
  auto reply_to = p.header("Reply-To") ? addresses(p, "Reply-To") : from;
  auto date = unfolded(p, "Date");
  auto subject = unfolded(p, "Subject");
  auto in_reply_to = unfolded(p, "In-Reply-To");
  auto message_id = unfolded(p, "Message-ID");
  return "(" + nstring(date) + " " + nstring(subject) + " " + from + " " + sender + " " + reply_to + " " +
         addresses(p, "To") + " " + addresses(p, "Cc") + " " + addresses(p, "Bcc") + " " + nstring(in_reply_to) + " " +
         nstring(message_id) + ")";
}

std::string body_structure(std::string_view msg, mime::part const& p, bool extensible) {
  if (p.multipart()) {
    std::string out = "(";
    if (p.children.empty()) {
      // A multipart without parts cannot be written as one: describe it as opaque text.
      out += "\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" " + std::to_string(p.end - p.body_begin) + " 0";
    }
    for (auto const& c : p.children) out += body_structure(msg, c, extensible);
    out += " " + imap_string(text::to_upper(p.subtype));
    if (extensible) out += " " + params(p.params) + " " + disposition(p) + " " + language(p) + " " + nstring(unfolded(p, "Content-Location"));
    return out + ")";
  }
  auto enc = unfolded(p, "Content-Transfer-Encoding");
  std::string out = "(" + imap_string(text::to_upper(p.type)) + " " + imap_string(text::to_upper(p.subtype)) + " " +
                    params(p.params) + " " + nstring(unfolded(p, "Content-ID")) + " " +
                    nstring(unfolded(p, "Content-Description")) + " " +
                    imap_string(enc ? text::to_upper(*enc) : std::string("7BIT")) + " " +
                    std::to_string(p.end - p.body_begin);
  if (p.is_message() && !p.children.empty()) {
    out += " " + envelope(p.children[0]) + " " + body_structure(msg, p.children[0], extensible) + " " +
           std::to_string(p.body_lines);
  } else if (p.type == "text") {
    out += " " + std::to_string(p.body_lines);
  }
  if (extensible)
    out += " " + nstring(unfolded(p, "Content-MD5")) + " " + disposition(p) + " " + language(p) + " " +
           nstring(unfolded(p, "Content-Location"));
  return out + ")";
}

}  // namespace mailroom::imap
