// Mail addresses as they travel in the SMTP envelope (RFC 5321 4.1.2, RFC 6531 for UTF-8).
#pragma once

#include <string>
#include <string_view>

#include "mailroom/core/result.hpp"

namespace mailroom {

/// An envelope address. The null reverse-path <> has empty local and domain. The local part is
/// kept unquoted (`"a b"@x` holds `a b`); to_string() quotes it again when needed.
struct address {
  std::string local;
  std::string domain;  ///< as given (case preserved); empty for <> and for <postmaster>

  bool is_null() const noexcept { return local.empty() && domain.empty(); }
  /// `local@domain`, the local part quoted if it is not a dot-atom; "" for the null path.
  std::string to_string() const;

  friend bool operator==(address const&, address const&) = default;
};

struct path_options {
  bool allow_utf8 = false;      ///< SMTPUTF8 was given: UTF-8 allowed in local part and domain
  bool allow_null = false;      ///< <> accepted (MAIL FROM)
  bool allow_postmaster = false;  ///< <postmaster> without a domain accepted (RCPT TO)
};

/// Parses an RFC 5321 Path or Reverse-path including its angle brackets; a source route
/// (<@a,@b:user@d>) is accepted and dropped. Returns errc::invalid_argument when malformed.
/// `consumed` is set to the number of bytes of `text` the path took (parameters follow).
result<address> parse_path(std::string_view text, path_options const& opts, std::size_t* consumed = nullptr);

/// True when s is a valid RFC 5321 Dot-string (no quoting needed).
bool is_dot_string(std::string_view s, bool allow_utf8) noexcept;

/// True when s is a syntactically valid domain or address literal ([1.2.3.4], [IPv6:...]).
bool is_valid_domain(std::string_view s, bool allow_utf8) noexcept;

}  // namespace mailroom
