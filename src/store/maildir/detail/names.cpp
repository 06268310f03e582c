#include "names.hpp"

#include <algorithm>

#include "mailroom/core/text.hpp"

namespace mailroom::store::maildir::detail {
namespace {
constexpr char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

int b64_value(char c) {
  auto p = std::find(b64, b64 + 64, c);
  return p == b64 + 64 ? -1 : static_cast<int>(p - b64);
}

// UTF-8 -> code points; the input was validated by normalize_name.
std::vector<char32_t> code_points(std::string_view s) {
  std::vector<char32_t> out;
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    int n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    char32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (int k = 1; k < n && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    out.push_back(cp);
    i += n;
  }
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

constexpr struct {
  char letter;
  system_flag flag;
} letters[] = {{'D', system_flag::draft},
               {'F', system_flag::flagged},
               {'R', system_flag::answered},
               {'S', system_flag::seen},
               {'T', system_flag::deleted}};
}  // namespace

std::string encode_mutf7(std::string_view utf8) {
  std::string out;
  std::vector<std::uint16_t> units;
  auto flush = [&] {
    if (units.empty()) return;
    out += '&';
    std::uint32_t acc = 0;
    int bits = 0;
    for (auto u : units) {
      acc = (acc << 16) | u;
      bits += 16;
      while (bits >= 6) {
        bits -= 6;
        out += b64[(acc >> bits) & 0x3F];
      }
    }
    if (bits > 0) out += b64[(acc << (6 - bits)) & 0x3F];
    out += '-';
    units.clear();
  };
  for (char32_t cp : code_points(utf8)) {
    if (cp >= 0x20 && cp <= 0x7e) {
      flush();
      out += static_cast<char>(cp);
      if (cp == '&') out += '-';
    } else if (cp >= 0x10000) {
      char32_t v = cp - 0x10000;
      units.push_back(static_cast<std::uint16_t>(0xD800 + (v >> 10)));
      units.push_back(static_cast<std::uint16_t>(0xDC00 + (v & 0x3FF)));
    } else {
      units.push_back(static_cast<std::uint16_t>(cp));
    }
  }
  flush();
  return out;
}

std::optional<std::string> decode_mutf7(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    char c = s[i];
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) return std::nullopt;
    if (c != '&') {
      out += c;
      ++i;
      continue;
    }
    auto end = s.find('-', i + 1);
    if (end == std::string_view::npos) return std::nullopt;
    if (end == i + 1) {
      out += '&';
      i = end + 1;
      continue;
    }
    std::uint32_t acc = 0;
    int bits = 0;
    std::vector<std::uint16_t> units;
    for (std::size_t k = i + 1; k < end; ++k) {
      int v = b64_value(s[k]);
      if (v < 0) return std::nullopt;
      acc = (acc << 6) | static_cast<std::uint32_t>(v);
      bits += 6;
      if (bits >= 16) {
        bits -= 16;
        units.push_back(static_cast<std::uint16_t>((acc >> bits) & 0xFFFF));
      }
    }
    if (units.empty()) return std::nullopt;
    for (std::size_t k = 0; k < units.size(); ++k) {
      char32_t u = units[k];
      if (u >= 0xD800 && u < 0xDC00) {
        if (k + 1 >= units.size() || units[k + 1] < 0xDC00 || units[k + 1] > 0xDFFF) return std::nullopt;
        u = 0x10000 + ((u - 0xD800) << 10) + (units[++k] - 0xDC00);
      } else if (u >= 0xDC00 && u <= 0xDFFF) {
        return std::nullopt;
      }
      if (u >= 0x20 && u <= 0x7e) return std::nullopt;  // must have been written directly
      append_utf8(out, u);
    }
    i = end + 1;
  }
  if (!text::is_valid_utf8(out)) return std::nullopt;
  return out;
}

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
    out += encode_mutf7(part);
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
    auto decoded = decode_mutf7(part);
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
