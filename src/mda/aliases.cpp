#include "mailroom/mda/aliases.hpp"

#include <fstream>
#include <sstream>

#include "mailroom/core/text.hpp"

namespace mailroom::mda {
namespace {
std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

bool plausible(std::string_view s) {
  if (s.empty() || s.size() > 320) return false;
  for (unsigned char c : s)
    if (c <= ' ' || c == ',' || c == ':' || c == '/' || c == '\\' || c == 0x7f) return false;
  return text::is_valid_utf8(s);
}
}  // namespace

alias_map alias_map::parse(std::string_view text, std::vector<std::string>* warnings) {
  alias_map out;
  std::size_t lineno = 0;
  while (!text.empty()) {
    auto nl = text.find('\n');
    auto line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++lineno;
    if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    line = trim(line);
    if (line.empty()) continue;
    auto colon = line.find(':');
    auto complain = [&](char const* why) {
      if (warnings) warnings->push_back("line " + std::to_string(lineno) + ": " + why);
    };
    if (colon == std::string_view::npos) {
      complain("no ':' after the key");
      continue;
    }
    auto key = text::to_lower(trim(line.substr(0, colon)));
    if (!plausible(key) || (key.find('@') != std::string::npos && key.find('@') != key.rfind('@'))) {
      complain("unusable key");
      continue;
    }
    std::vector<std::string> targets;
    std::string_view rest = line.substr(colon + 1);
    bool ok = true;
    while (!rest.empty()) {
      auto comma = rest.find(',');
      auto t = trim(rest.substr(0, comma));
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
      if (t.empty()) continue;
      if (!plausible(t) || t.front() == '|' || t.front() == '@') {
        ok = false;
        break;
      }
      targets.emplace_back(t);
    }
    if (!ok || targets.empty()) {
      complain("unusable target (only account names and local addresses)");
      continue;
    }
    if (out.entries_.count(key)) complain("duplicate key, the later one wins");
    out.entries_[key] = std::move(targets);
  }
  return out;
}

result<alias_map> alias_map::load(std::string const& path, std::vector<std::string>* warnings) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(std::error_code(errno ? errno : ENOENT, std::system_category()));
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), warnings);
}

std::vector<std::string> const* alias_map::find(std::string_view local, std::string_view domain) const {
  auto l = text::to_lower(local);
  if (auto it = entries_.find(l + "@" + text::to_lower(domain)); it != entries_.end()) return &it->second;
  if (auto it = entries_.find(l); it != entries_.end()) return &it->second;
  return nullptr;
}

std::vector<std::string> const* alias_map::catch_all(std::string_view domain) const {
  auto it = entries_.find("@" + text::to_lower(domain));
  return it == entries_.end() ? nullptr : &it->second;
}

}  // namespace mailroom::mda
