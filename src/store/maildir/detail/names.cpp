#include "names.hpp"

#include <algorithm>

#include "mailroom/core/text.hpp"

namespace mailroom::store::maildir::detail {
namespace {
constexpr struct {
  char letter;
  system_flag flag;
} letters[] = {{'D', system_flag::draft},
               {'F', system_flag::flagged},
               {'R', system_flag::answered},
               {'S', system_flag::seen},
               {'T', system_flag::deleted}};
}  // namespace

result<std::string> folder_dir(std::string_view name) {
  if (name == "INBOX") return std::string();
  std::string out;
  std::size_t start = 0;
  while (start <= name.size()) {
    auto end = name.find(delimiter, start);
    if (end == std::string_view::npos) end = name.size();
    auto part = name.substr(start, end - start);
    if (part.empty() || part.find('.') != std::string_view::npos || part == "tmp" || part == "new" ||
        part == "cur")
      return fail(errc::invalid_name);
    out += '.';
    out += text::encode_mutf7(part);
    start = end + 1;
  }
  return out;
}

std::optional<std::string> folder_name(std::string_view entry) {
  if (entry.size() < 2 || entry[0] != '.' || entry == "..") return std::nullopt;
  std::string out;
  std::size_t start = 1;
  while (start <= entry.size()) {
    auto end = entry.find('.', start);
    if (end == std::string_view::npos) end = entry.size();
    auto part = entry.substr(start, end - start);
    if (part.empty()) return std::nullopt;
    auto decoded = text::decode_mutf7(part);
    if (!decoded || decoded->find(delimiter) != std::string::npos) return std::nullopt;
    if (!out.empty()) out += delimiter;
    out += *decoded;
    start = end + 1;
  }
  auto norm = normalize_name(out);
  if (!norm) return std::nullopt;
  return *norm;
}

file_name split_file_name(std::string_view name) noexcept {
  auto pos = name.find(":2,");
  if (pos == std::string_view::npos) return {name, {}, false};
  return {name.substr(0, pos), name.substr(pos + 3), true};
}

std::optional<std::uint64_t> size_from_name(std::string_view base) noexcept {
  auto pos = base.find(",S=");
  if (pos == std::string_view::npos) return std::nullopt;
  auto rest = base.substr(pos + 3);
  return text::parse_uint(rest.substr(0, rest.find(',')));
}

flag_set flags_from_info(std::string_view info, std::vector<std::string> const& keywords, std::string* other) {
  flag_set f;
  for (char c : info) {
    bool known = false;
    for (auto const& l : letters)
      if (l.letter == c) {
        f.set(l.flag);
        known = true;
      }
    if (known) continue;
    if (c >= 'a' && c <= 'z') {
      auto idx = static_cast<std::size_t>(c - 'a');
      if (idx < keywords.size()) {
        f.add_keyword(keywords[idx]);
        continue;
      }
    }
    if (other && c > ' ' && c != '/' && c != ':' && other->find(c) == std::string::npos) *other += c;
  }
  return f;
}

std::optional<std::string> info_from_flags(flag_set const& f, std::vector<std::string>& keywords, std::string_view other) {
  std::string out(other);
  for (auto const& l : letters)
    if (f.has(l.flag)) out += l.letter;
  for (auto const& k : f.keywords) {
    auto it = std::find_if(keywords.begin(), keywords.end(), [&](auto const& x) { return text::iequals(x, k); });
    if (it == keywords.end()) {
      if (keywords.size() >= 26) return std::nullopt;
      keywords.push_back(k);
      it = keywords.end() - 1;
    }
    out += static_cast<char>('a' + (it - keywords.begin()));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace mailroom::store::maildir::detail
