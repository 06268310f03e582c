// Recipient rewriting for local delivery: aliases and catch-all, from a simple map.
//
// Text format, one entry per line ('#' starts a comment), as /etc/aliases reads:
//   postmaster: alice
//   sales@example.test: bob, carol
//   @example.org: alice                  catch-all for a domain
// Keys: "local" (any local domain), "local@domain" (one domain) or "@domain" (catch-all, used
// when nothing else matches; a real account of that name still wins over it). Targets are
// account names or local addresses, expanded again (up to 8 levels; a loop ends at the name
// that repeats, which is then taken as an account). Matching ignores case.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "mailroom/core/result.hpp"

namespace mailroom::mda {

class alias_map {
 public:
  /// Parses the text; lines that cannot be read are reported in `warnings` and skipped.
  static alias_map parse(std::string_view text, std::vector<std::string>* warnings = nullptr);
  /// Reads and parses a file.
  static result<alias_map> load(std::string const& path, std::vector<std::string>* warnings = nullptr);

  /// Targets for an explicit key ("local@domain", then "local"); empty when none matches.
  std::vector<std::string> const* find(std::string_view local, std::string_view domain) const;
  /// Targets of the catch-all of `domain`, or nullptr.
  std::vector<std::string> const* catch_all(std::string_view domain) const;
  std::size_t size() const noexcept { return entries_.size(); }

 private:
  std::map<std::string, std::vector<std::string>, std::less<>> entries_;  // lower-case keys
};

}  // namespace mailroom::mda
