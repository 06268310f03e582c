#include "mailroom/mime/address.hpp"

namespace mailroom::mime {
namespace {

struct reader {
  std::string_view s;
  std::size_t pos = 0;

  bool end() const { return pos >= s.size(); }
  void skip_cfws() {
    for (;;) {
      while (pos < s.size() && (s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\r' || s[pos] == '\n')) ++pos;
      if (pos < s.size() && s[pos] == '(') {
        int depth = 0;
        while (pos < s.size()) {
          char c = s[pos++];
          if (c == '\\') ++pos;
          else if (c == '(') ++depth;
          else if (c == ')' && --depth == 0) break;
        }
        continue;
      }
      return;
    }
  }
  std::string quoted() {  // at '"'
    std::string out;
    ++pos;
    while (pos < s.size() && s[pos] != '"') {
      if (s[pos] == '\\' && pos + 1 < s.size()) ++pos;
      if (s[pos] != '\r' && s[pos] != '\n') out += s[pos];
      ++pos;
    }
    if (pos < s.size()) ++pos;
    return out;
  }
  std::string atom() {
    auto start = pos;
    while (pos < s.size()) {
      char c = s[pos];
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '(' || c == ')' || c == '<' || c == '>' || c == ',' ||
          c == ':' || c == ';' || c == '"' || c == '@')
        break;
      ++pos;
    }
    return std::string(s.substr(start, pos - start));
  }
};

void split_addr_spec(std::string const& spec, address& a) {
  auto at = spec.rfind('@');
  if (at == std::string::npos) {
    a.mailbox = spec;
  } else {
    a.mailbox = spec.substr(0, at);
    a.host = spec.substr(at + 1);
  }
}

}  // namespace

std::vector<address> parse_address_list(std::string_view value, std::size_t max_addresses) {
  std::vector<address> out;
  reader r{value};
  bool in_group = false;
  std::string display;  // words, for a display name
  std::string raw;      // the same tokens without spaces, for an addr-spec
  auto reset = [&] {
    display.clear();
    raw.clear();
  };
  auto emit_spec = [&] {
    if (!raw.empty() && out.size() < max_addresses) {
      address a;
      split_addr_spec(raw, a);
      out.push_back(std::move(a));
    }
    reset();
  };
  while (!r.end() && out.size() < max_addresses) {
    r.skip_cfws();
    if (r.end()) break;
    char c = r.s[r.pos];
    if (c == '"') {
      auto q = r.quoted();
      if (!display.empty()) display += ' ';
      display += q;
      raw += "\"" + q + "\"";
    } else if (c == '<') {  // name-addr
      ++r.pos;
      address a;
      a.name = display;
      std::string spec;
      std::string route;
      while (!r.end() && r.s[r.pos] != '>') {
        r.skip_cfws();
        if (r.end() || r.s[r.pos] == '>') break;
        char d = r.s[r.pos];
        if (d == '"') spec += "\"" + r.quoted() + "\"";
        else if (d == ':' && !spec.empty() && spec[0] == '@') {  // end of an obsolete route
          route = spec;
          spec.clear();
          ++r.pos;
        } else if (d == ',' || d == '@' || d == '.' || d == ';') {
          spec += d;
          ++r.pos;
        } else {
          auto w = r.atom();
          if (w.empty()) ++r.pos;
          spec += w;
        }
      }
      if (!r.end()) ++r.pos;  // '>'
      a.route = route;
      split_addr_spec(spec, a);
      if (out.size() < max_addresses) out.push_back(std::move(a));
      reset();
    } else if (c == ':' && !in_group) {  // group start
      ++r.pos;
      address g;
      g.group = true;
      g.mailbox = display.empty() ? raw : display;
      out.push_back(std::move(g));
      in_group = true;
      reset();
    } else if (c == ';') {
      ++r.pos;
      emit_spec();
      if (in_group && out.size() < max_addresses) {
        address e;
        e.group_end = true;
        out.push_back(std::move(e));
      }
      in_group = false;
    } else if (c == ',') {
      ++r.pos;
      emit_spec();
    } else if (c == '@' || c == '.') {
      ++r.pos;
      raw += c;
    } else if (c == '>' || c == ')' || c == ':') {
      ++r.pos;  // stray
    } else {
      auto w = r.atom();
      if (w.empty()) {
        ++r.pos;
        continue;
      }
      if (!display.empty()) display += ' ';
      display += w;
      raw += w;
    }
  }
  emit_spec();
  if (in_group && out.size() < max_addresses) {
    address e;
    e.group_end = true;
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace mailroom::mime
