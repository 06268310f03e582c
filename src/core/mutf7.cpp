#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailroom/core/text.hpp"

namespace mailroom::text {
namespace {
constexpr char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

int b64_value(char c) {
  auto p = std::find(b64, b64 + 64, c);
  return p == b64 + 64 ? -1 : static_cast<int>(p - b64);
}

// UTF-8 -> code points; the input is valid UTF-8 (the caller checked).
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

}  // namespace mailroom::text
