// Character classes and small string helpers shared by the SPF record parser and check_host().
#pragma once

#include <string_view>

namespace mailroom::filter::spf::detail {

constexpr bool is_alpha(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
constexpr bool is_alnum(char c) noexcept { return is_alpha(c) || is_digit(c); }
constexpr bool is_printable(char c) noexcept { return c >= 0x20 && c <= 0x7e; }

inline std::string_view strip_dot(std::string_view s) noexcept {
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);
  return s;
}

}  // namespace mailroom::filter::spf::detail
