// Applying a milter's end-of-message changes to a message (pure: no I/O).
#include <algorithm>

#include "mailroom/filter/milter.hpp"

namespace mailroom::filter::milter {

namespace {

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
           return lower(x) == lower(y);
         });
}

// RFC 5322 field-name: printable ASCII but colon.
bool valid_name(std::string_view n) {
  if (n.empty() || n.size() > 998) return false;
  return std::all_of(n.begin(), n.end(), [](char c) { return c > 32 && c < 127 && c != ':'; });
}

// A field value from the milter with CRLF line ends; every line after the first must be folded
// (start with SP or HT) so the value cannot end the header or start a new field.
std::optional<std::string> wire_value(std::string_view v) {
  std::string out;
  out.reserve(v.size() + 8);
  for (std::size_t i = 0; i < v.size(); ++i) {
    char const c = v[i];
    if (c == '\r' && i + 1 < v.size() && v[i + 1] == '\n') continue;  // the LF below adds it back
    if (c == '\r') return std::nullopt;
    if (c == '\n') {
      if (i + 1 >= v.size() || (v[i + 1] != ' ' && v[i + 1] != '\t')) return std::nullopt;
      out += "\r\n";
      continue;
    }
    if (c == '\0') return std::nullopt;
    out += c;
  }
  return out;
}

// Bare LF becomes CRLF.
std::string crlf_body(std::string_view b) {
  std::string out;
  out.reserve(b.size() + b.size() / 32);
  for (std::size_t i = 0; i < b.size(); ++i) {
    if (b[i] == '\n' && (i == 0 || b[i - 1] != '\r')) out += '\r';
    out += b[i];
  }
  return out;
}

struct field {
  std::string name;
  std::string raw;  // "Name:value\r\n" with its folding
};

}  // namespace

split_message split(std::string_view message) {
  split_message out;
  std::size_t pos = 0;
  while (pos < message.size()) {
    auto lf = message.find('\n', pos);
    std::size_t const end = lf == std::string_view::npos ? message.size() : lf + 1;
    std::string_view line = message.substr(pos, end - pos);
    std::string_view text = line;
    if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    if (text.empty()) {  // the blank line: the body follows it
      pos = end;
      out.blank_line = true;
      break;
    }
    if ((text.front() == ' ' || text.front() == '\t') && !out.headers.empty()) {
      // The value keeps the line end that preceded the continuation line.
      out.headers.back().value += pos >= 2 && message[pos - 2] == '\r' ? "\r\n" : "\n";
      out.headers.back().value.append(text);
      pos = end;
      continue;
    }
    auto colon = text.find(':');
    if (colon == std::string_view::npos || colon == 0) break;  // not a field: the body starts here
    out.headers.push_back(header_field{std::string(text.substr(0, colon)), std::string(text.substr(colon + 1))});
    pos = end;
  }
  out.body_offset = std::min(pos, message.size());
  return out;
}

result<applied> apply(std::string_view message, std::span<modification const> changes, bool leading_space) {
  auto parts = split(message);
  std::vector<field> fields;
  fields.reserve(parts.headers.size() + 4);
  for (auto& h : parts.headers) fields.push_back(field{h.name, h.name + ":" + h.value + "\r\n"});

  applied out;
  std::optional<std::string> new_body;
  auto make = [&](modification const& m) -> std::optional<field> {
    if (!valid_name(m.name)) return std::nullopt;
    auto v = wire_value(m.value);
    if (!v) return std::nullopt;
    return field{m.name, m.name + ":" + (leading_space ? "" : " ") + *v + "\r\n"};
  };
  using k = modification::kind;
  for (auto const& m : changes) {
    switch (m.what) {
      case k::add_header:
      case k::insert_header: {
        auto f = make(m);
        if (!f) return fail(errc::bad_modification);
        auto at = m.what == k::add_header ? fields.size() : std::min<std::size_t>(m.index, fields.size());
        fields.insert(fields.begin() + static_cast<std::ptrdiff_t>(at), std::move(*f));
        out.headers_changed = true;
        break;
      }
      case k::change_header: {
        if (!valid_name(m.name)) return fail(errc::bad_modification);
        std::uint32_t want = m.index == 0 ? 1 : m.index;
        auto it = std::find_if(fields.begin(), fields.end(), [&](field const& f) {
          return iequal(f.name, m.name) && --want == 0;
        });
        if (m.value.empty()) {
          if (it != fields.end()) fields.erase(it);
        } else {
          auto f = make(m);
          if (!f) return fail(errc::bad_modification);
          if (it != fields.end()) *it = std::move(*f);
          else fields.push_back(std::move(*f));
        }
        out.headers_changed = true;
        break;
      }
      case k::replace_body:
        if (!new_body) new_body.emplace();
        new_body->append(m.value);
        break;
      case k::add_rcpt: out.added_rcpts.emplace_back(m.name, m.value); break;
      case k::delete_rcpt: out.deleted_rcpts.push_back(m.name); break;
      case k::change_from: out.new_sender.emplace(m.name, m.value); break;
      case k::quarantine: out.quarantine = m.value; break;
    }
  }

  std::string_view old_body = message.substr(parts.body_offset);
  std::string body = new_body ? crlf_body(*new_body) : std::string(old_body);
  out.body_replaced = new_body.has_value();
  // A message whose header block ended with a blank line keeps it; one without gets it only when
  // a body follows.
  std::size_t size = body.size() + 2;
  for (auto const& f : fields) size += f.raw.size();
  out.message.reserve(size);
  for (auto const& f : fields) out.message += f.raw;
  if (parts.blank_line || !body.empty()) out.message += "\r\n";
  out.message += body;
  return out;
}

}  // namespace mailroom::filter::milter
