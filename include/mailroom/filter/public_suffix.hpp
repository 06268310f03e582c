// The Public Suffix List (https://publicsuffix.org/list/) and the organizational domain of
// RFC 7489 3.2, as DMARC alignment needs it.
//
// Contract: parse() reads the list's file format: one rule per line (the text up to the first
// whitespace), "//" comments, blank lines, "*.x" wildcard rules (a wildcard only as the leftmost
// label), "!x" exception rules, and the "===BEGIN ICANN DOMAINS===" / "===BEGIN PRIVATE
// DOMAINS===" section markers, which tag each rule ICANN or PRIVATE. Rules that are not one of
// these forms (a wildcard elsewhere, an empty label, over max_labels labels) are skipped and
// counted. Lookups follow the list's algorithm: an exception rule prevails, else the matching
// rule with the most labels, else the implicit "*" (one label).
//
// Names are compared as ASCII-lowercased bytes; a trailing dot is ignored. IDNA is left out: the
// list's rules are UTF-8 U-labels and are matched as such, so a name given in A-labels
// ("xn--...") only matches rules written in A-labels (the Debian file has none) and otherwise
// falls back to the implicit "*" rule. Callers that receive A-labels and need the IDN rules must
// convert them to U-labels first.
//
// Bounded: the file size, the line length, the number of rules and the labels of a rule or a
// looked-up name are limited (psl_limits). The object is immutable after parse()/load() and may
// be shared between threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "mailroom/core/result.hpp"

namespace mailroom::filter {

/// Where Debian's `publicsuffix` package installs the list.
inline constexpr char const* default_public_suffix_path = "/usr/share/publicsuffix/public_suffix_list.dat";

struct psl_limits {
  std::size_t max_file_size = 8 * 1024 * 1024;  ///< octets of the file (errc::limit_exceeded)
  std::size_t max_line = 1024;                  ///< a longer line is skipped as malformed
  std::size_t max_rules = 200000;               ///< more rules: errc::limit_exceeded
  std::size_t max_labels = 127;                 ///< labels of a rule or a looked-up name
};

class public_suffix_list {
 public:
  struct match {
    std::string suffix;        ///< the public suffix of the name (lowercased)
    std::size_t labels = 0;    ///< labels in suffix
    bool icann = false;        ///< the prevailing rule is in the ICANN section
    bool implicit = false;     ///< no rule matched: the implicit "*" rule gave the last label
  };

  /// An empty list (every lookup uses the implicit "*" rule).
  public_suffix_list() = default;

  /// Parses the list's text. Errors: errc::limit_exceeded (text or rule count over the limits).
  static result<public_suffix_list> parse(std::string_view text, psl_limits limits = {});
  /// Reads and parses a file. Errors: the errno of open/read as a std::errc code (e.g.
  /// no_such_file_or_directory), errc::limit_exceeded.
  static result<public_suffix_list> load(std::string const& path = default_public_suffix_path, psl_limits limits = {});

  /// The public suffix of name per the list (include_private = false ignores the PRIVATE
  /// section). nullopt for a name that cannot be a domain: empty, an empty label (leading dot,
  /// ".."), or over max_labels labels.
  std::optional<match> public_suffix(std::string_view name, bool include_private = true) const;

  /// The public suffix plus one label (lowercased): what the list calls the registrable domain.
  /// nullopt when the name is itself a public suffix or malformed.
  std::optional<std::string> registrable_domain(std::string_view name, bool include_private = true) const;

  /// RFC 7489 3.2: the longest matching public suffix plus one label of the name. A name that is
  /// itself a public suffix is its own organizational domain. Returns "" for a malformed name.
  std::string organizational_domain(std::string_view name, bool include_private = true) const;

  std::size_t size() const noexcept { return rules_.size(); }
  /// Lines that looked like rules but were skipped (see the contract).
  std::size_t skipped() const noexcept { return skipped_; }

 private:
  // Bits of a rule key ("co.uk" for "co.uk", "*.co.uk" and "!co.uk").
  enum : std::uint8_t {
    normal_icann = 1,
    normal_private = 2,
    wildcard_icann = 4,
    wildcard_private = 8,
    exception_icann = 16,
    exception_private = 32,
  };
  std::uint8_t flags(std::string_view key, bool include_private) const;

  std::unordered_map<std::string, std::uint8_t> rules_;
  std::size_t skipped_ = 0;
  std::size_t max_labels_ = 127;
};

}  // namespace mailroom::filter
