#include "mailroom/mime/message.hpp"

#include <algorithm>
#include <map>

#include "mailroom/core/error.hpp"
#include "mailroom/core/text.hpp"

namespace mailroom::mime {
namespace {

bool is_ws(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (is_ws(s.front()) || s.front() == '\r' || s.front() == '\n')) s.remove_prefix(1);
  while (!s.empty() && (is_ws(s.back()) || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

// The line starting at pos: its content (without line end) and where the next line starts.
std::pair<std::string_view, std::size_t> line_at(std::string_view msg, std::size_t pos, std::size_t end) {
  auto lf = msg.find('\n', pos);
  if (lf == std::string_view::npos || lf >= end) return {msg.substr(pos, end - pos), end};
  auto content = msg.substr(pos, lf - pos);
  if (!content.empty() && content.back() == '\r') content.remove_suffix(1);
  return {content, lf + 1};
}

// Removes RFC 5322 comments outside quoted strings.
std::string strip_comments(std::string_view s) {
  std::string out;
  int depth = 0;
  bool quoted = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (quoted) {
      out += c;
      if (c == '\\' && i + 1 < s.size()) out += s[++i];
      else if (c == '"') quoted = false;
      continue;
    }
    if (depth > 0) {
      if (c == '\\') ++i;
      else if (c == '(') ++depth;
      else if (c == ')') --depth;
      continue;
    }
    if (c == '(') ++depth;
    else {
      if (c == '"') quoted = true;
      out += c;
    }
  }
  return out;
}

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = text::to_lower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int a = hex(s[i + 1]), b = hex(s[i + 2]);
      if (a >= 0 && b >= 0) {
        out += static_cast<char>(a * 16 + b);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

struct counter {
  std::size_t parts = 0;
};

result<void> parse_part(std::string_view msg, std::size_t begin, std::size_t end, bool digest_child, std::size_t depth,
                        counter& count, limits const& lim, part& p) {
  if (depth > lim.max_depth || ++count.parts > lim.max_parts) return fail(errc::limit_exceeded);
  p.begin = begin;
  p.end = end;
  auto body = parse_header(msg.substr(0, end), begin, p.fields, lim);
  if (!body) return fail(body.error());
  p.body_begin = *body;
  if (digest_child) {
    p.type = "message";
    p.subtype = "rfc822";
  }
  if (auto ct = p.header("Content-Type")) {
    auto parsed = parse_parameterized(*ct);
    auto slash = parsed.value.find('/');
    if (slash != std::string::npos && slash > 0 && slash + 1 < parsed.value.size() &&
        parsed.value.find_first_of(" \t\"", 0) == std::string::npos) {
      p.type = parsed.value.substr(0, slash);
      p.subtype = parsed.value.substr(slash + 1);
      p.params = std::move(parsed.params);
    } else {  // unusable: RFC 2045 5.2 says text/plain
      p.type = "text";
      p.subtype = "plain";
    }
  }
  if (p.type == "text" && p.params.empty() && !p.header("Content-Type")) p.params.emplace_back("charset", "us-ascii");

  if (p.multipart()) {
    std::string_view boundary;
    for (auto const& [k, v] : p.params)
      if (k == "boundary") boundary = v;
    if (boundary.empty() || boundary.size() > 200) return {};  // no usable boundary: one opaque body
    std::string delim = "--" + std::string(boundary);
    constexpr auto none = std::string_view::npos;
    std::size_t part_start = none;
    std::size_t pos = p.body_begin;
    bool digest = p.subtype == "digest";
    while (pos < end) {
      auto line_start = pos;
      auto [line, next] = line_at(msg, pos, end);
      pos = next;
      if (line.size() < delim.size() || line.compare(0, delim.size(), delim) != 0) continue;
      auto rest = line.substr(delim.size());
      bool close = rest.size() >= 2 && rest[0] == '-' && rest[1] == '-';
      if (close) rest.remove_prefix(2);
      if (!trim(rest).empty()) continue;  // "--boundaryX" is not our delimiter
      if (part_start != none) {
        // The line end before the delimiter belongs to the delimiter.
        auto part_end = line_start;
        if (part_end > part_start && msg[part_end - 1] == '\n') --part_end;
        if (part_end > part_start && msg[part_end - 1] == '\r') --part_end;
        p.children.emplace_back();
        if (auto r = parse_part(msg, part_start, std::max(part_end, part_start), digest, depth + 1, count, lim,
                                p.children.back());
            !r)
          return r;
      }
      if (close) {
        part_start = none;
        break;
      }
      part_start = next;
    }
    if (part_start != none && part_start < end) {  // no closing delimiter: the last part runs to the end
      p.children.emplace_back();
      if (auto r = parse_part(msg, part_start, end, digest, depth + 1, count, lim, p.children.back()); !r) return r;
    }
    return {};
  }
  if (p.is_message()) {
    p.children.emplace_back();
    if (auto r = parse_part(msg, p.body_begin, end, false, depth + 1, count, lim, p.children.back()); !r) return r;
  }
  if (p.type == "text" || p.is_message()) {
    auto b = msg.substr(p.body_begin, end - p.body_begin);
    p.body_lines = static_cast<std::size_t>(std::count(b.begin(), b.end(), '\n'));  // line ends, as Dovecot counts
  }
  return {};
}

}  // namespace

std::string_view parameterized::param(std::string_view name) const noexcept {
  for (auto const& [k, v] : params)
    if (text::iequals(k, name)) return v;
  return {};
}

std::string unfold(std::string_view raw) {
  std::string out;
  for (char c : raw)
    if (c != '\r' && c != '\n') out += c;
  return std::string(trim(out));
}

parameterized parse_parameterized(std::string_view raw) {
  parameterized out;
  auto s = strip_comments(unfold(raw));
  std::size_t pos = 0;
  auto next_piece = [&]() {  // up to the next ';' outside quotes
    bool quoted = false;
    auto start = pos;
    for (; pos < s.size(); ++pos) {
      if (quoted) {
        if (s[pos] == '\\') ++pos;
        else if (s[pos] == '"') quoted = false;
      } else if (s[pos] == '"') {
        quoted = true;
      } else if (s[pos] == ';') {
        break;
      }
    }
    auto piece = std::string_view(s).substr(start, std::min(pos, s.size()) - start);
    if (pos < s.size()) ++pos;
    return trim(piece);
  };
  out.value = text::to_lower(next_piece());
  // RFC 2231: name*N[*]=value pieces, joined by name in index order.
  std::map<std::string, std::map<unsigned, std::pair<std::string, bool>>> pieces;
  std::vector<std::string> order;
  for (std::size_t guard = 0; pos < s.size() && guard < 1000; ++guard) {
    auto piece = next_piece();
    auto eq = piece.find('=');
    if (eq == std::string_view::npos) continue;
    auto name = text::to_lower(trim(piece.substr(0, eq)));
    auto v = trim(piece.substr(eq + 1));
    std::string value;
    if (!v.empty() && v.front() == '"') {
      for (std::size_t i = 1; i < v.size() && v[i] != '"'; ++i) {
        if (v[i] == '\\' && i + 1 < v.size()) ++i;
        value += v[i];
      }
    } else {
      value = std::string(v);
    }
    if (name.empty()) continue;
    bool extended = name.back() == '*';
    if (extended) name.pop_back();
    unsigned index = 0;
    if (auto star = name.find('*'); star != std::string::npos) {
      auto idx = text::parse_uint(name.substr(star + 1), 999);
      if (!idx) continue;
      index = static_cast<unsigned>(*idx);
      name.resize(star);
    }
    if (!pieces.count(name)) order.push_back(name);
    pieces[name][index] = {std::move(value), extended};
  }
  for (auto const& name : order) {
    std::string joined;
    for (auto const& [index, pv] : pieces[name]) {
      auto v = pv.first;
      if (pv.second) {
        if (index == 0) {  // charset'language'value
          auto q1 = v.find('\'');
          auto q2 = q1 == std::string::npos ? std::string::npos : v.find('\'', q1 + 1);
          if (q2 != std::string::npos) v = v.substr(q2 + 1);
        }
        v = percent_decode(v);
      }
      joined += v;
    }
    out.params.emplace_back(name, std::move(joined));
  }
  return out;
}

std::optional<std::string_view> part::header(std::string_view name) const noexcept {
  for (auto const& f : fields)
    if (text::iequals(f.name, name)) return f.value;
  return std::nullopt;
}

result<std::size_t> parse_header(std::string_view msg, std::size_t offset, std::vector<field>& out, limits const& lim) {
  std::size_t pos = offset;
  auto end = msg.size();
  std::size_t value_start = 0;
  std::size_t value_end = 0;
  bool open = false;
  auto close = [&]() {
    if (open) out.back().value = msg.substr(value_start, value_end - value_start);
    open = false;
  };
  while (pos < end) {
    if (pos - offset > lim.max_header_bytes) return fail(errc::limit_exceeded);
    auto [line, next] = line_at(msg, pos, end);
    if (line.empty()) {  // the empty line: the body follows
      close();
      return next;
    }
    if (is_ws(line.front())) {
      if (open) value_end = pos + line.size();
      pos = next;
      continue;
    }
    close();
    auto colon = line.find(':');
    auto name = colon == std::string_view::npos ? std::string_view{} : line.substr(0, colon);
    while (!name.empty() && is_ws(name.back())) name.remove_suffix(1);
    bool valid = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return static_cast<unsigned char>(c) > ' ' && static_cast<unsigned char>(c) < 0x7f;
    });
    if (valid) {
      if (out.size() >= lim.max_fields) return fail(errc::limit_exceeded);
      out.push_back({name, {}});
      value_start = static_cast<std::size_t>(line.data() - msg.data()) + colon + 1;
      value_end = static_cast<std::size_t>(line.data() - msg.data()) + line.size();
      open = true;
    }
    pos = next;
  }
  close();
  return end;
}

result<part> parse(std::string_view message, limits const& lim) {
  part root;
  counter count;
  if (auto r = parse_part(message, 0, message.size(), false, 0, count, lim, root); !r) return fail(r.error());
  return root;
}

}  // namespace mailroom::mime
