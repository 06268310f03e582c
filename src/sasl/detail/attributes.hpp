// RFC 5802 message attributes ("r=...,s=...,i=..."), shared by the SCRAM server and client.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

namespace mailroom::sasl::detail {

/// Splits on ',' keeping empty pieces, so a stray comma shows up as an empty attribute.
inline std::vector<std::string_view> split_attributes(std::string_view s) {
  std::vector<std::string_view> out;
  for (;;) {
    auto const comma = s.find(',');
    out.push_back(s.substr(0, comma));
    if (comma == std::string_view::npos) return out;
    s.remove_prefix(comma + 1);
  }
}

/// The value of `name=value` when `attr` has that name and a non-empty value.
inline std::optional<std::string_view> attribute(std::string_view attr, char name) {
  if (attr.size() < 3 || attr[0] != name || attr[1] != '=') return std::nullopt;
  return attr.substr(2);
}

}  // namespace mailroom::sasl::detail
