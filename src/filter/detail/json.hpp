// A small bounded JSON reader (RFC 8259) for scanner replies: a whole document in, a tree out.
// Limits on nesting depth, number of values and string length keep memory and stack bounded
// whatever a peer sends (the document's own size is bounded by whoever read it). Private to
// src/filter.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "mailroom/core/result.hpp"

namespace mailroom::filter::detail {

struct json_limits {
  std::size_t max_depth = 32;         ///< arrays and objects nested in one another
  std::size_t max_values = 50'000;    ///< values in the document, members and elements included
  std::size_t max_string = 64 * 1024; ///< octets of one string after unescaping
};

struct json_member;

struct json_value {
  enum class kind { null, boolean, number, string, array, object };
  kind k = kind::null;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<json_value> elements;                        ///< array
  std::vector<json_member> members;                         ///< object, in document order

  /// The first member named key of an object; null for anything else or no such member.
  json_value const* find(std::string_view key) const noexcept;
  bool is(kind x) const noexcept { return k == x; }
};

struct json_member {
  std::string name;
  json_value value;
};

/// Parses one document (surrounding white space allowed). Errors: scan_errc::malformed_reply
/// for anything that is not JSON (invalid escapes, unpaired surrogates, control characters in
/// strings, trailing data, numbers out of double's range), scan_errc::reply_too_large when a
/// limit is crossed.
result<json_value> parse_json(std::string_view text, json_limits limits = {});

}  // namespace mailroom::filter::detail
