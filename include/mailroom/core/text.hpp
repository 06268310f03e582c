// Small text utilities shared by the protocol parsers (ASCII only; no locale).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mailroom::text {

constexpr char to_lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }
constexpr char to_upper(char c) noexcept { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; }

/// ASCII case-insensitive equality.
constexpr bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (to_lower(a[i]) != to_lower(b[i])) return false;
  return true;
}

/// ASCII case-insensitive prefix test.
constexpr bool istarts_with(std::string_view s, std::string_view prefix) noexcept {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

std::string to_upper(std::string_view s);
std::string to_lower(std::string_view s);

/// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
bool is_valid_utf8(std::string_view s) noexcept;

/// Appends code point `cp` (at most U+10FFFF, not a surrogate) as UTF-8.
void append_utf8(std::string& out, char32_t cp);

/// Decimal digits only, no sign, no overflow past max; nullopt otherwise.
std::optional<std::uint64_t> parse_uint(std::string_view s, std::uint64_t max = UINT64_MAX) noexcept;

/// RFC 3501 5.1.3 modified UTF-7, as IMAP4rev1 sends mailbox names and Dovecot and Courier
/// store folder names. encode() takes valid UTF-8; decode() refuses anything not in canonical
/// form (printable ASCII encoded, bad base64, lone surrogates) with nullopt.
std::string encode_mutf7(std::string_view utf8);
std::optional<std::string> decode_mutf7(std::string_view mutf7);

}  // namespace mailroom::text
