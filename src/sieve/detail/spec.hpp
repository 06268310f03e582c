// What the compiler knows of each command and test: extension, tagged arguments, positional
// arguments, tests and block. Shared by the compiler (checks) and nothing else.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "mailroom/sieve/script.hpp"

namespace mailroom::sieve::detail {

enum class value_kind : std::uint8_t { none, string, number, strings };

/// Tags in the same non-zero group exclude each other (two match types, two comparators...).
enum class tag_group : std::uint8_t { none, comparator, match, address_part, transform, zone, size, precedence40,
                                      precedence30, precedence20, precedence10 };

struct tag_spec {
  std::string_view name;  ///< with the colon
  value_kind value = value_kind::none;
  std::uint32_t ext = 0;  ///< extension bit needed, 0 for the base language
  tag_group group = tag_group::none;
};

struct command_spec {
  std::string_view name;
  bool is_test = false;
  std::uint32_t ext = 0;
  std::vector<tag_spec> tags;
  /// Accepted positional shapes, e.g. {"LL"} or {"L", "SL"}: S string, L string list, N number.
  std::vector<std::string_view> positional;
  int tests = 0;  ///< 0 none, 1 exactly one test, 2 a test list
  bool block = false;
};

/// The spec of a command (is_test false) or test; nullptr when unknown.
command_spec const* find_spec(std::string_view name, bool is_test) noexcept;

/// The extension bit of a `require` name; 0 when unknown. Comparators i;octet and
/// i;ascii-casemap map to a bit that is always set.
std::uint32_t extension_bit(std::string_view name) noexcept;

constexpr std::uint32_t bit(extension e) noexcept { return static_cast<std::uint32_t>(e); }
constexpr std::uint32_t always = 1u << 31;

}  // namespace mailroom::sieve::detail
