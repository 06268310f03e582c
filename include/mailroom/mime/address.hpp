// RFC 5322 address lists (From:, To:, Cc:, ...) as IMAP's ENVELOPE and filters read them.
//
// Contract: lenient like mail readers: comments are dropped, obsolete routes kept apart, a
// malformed entry becomes what can be read of it; never fails. Groups appear as a start marker
// (group set, mailbox = group name) and an end marker (group_end). At most max_addresses.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mailroom::mime {

struct address {
  std::string name;     ///< display name (unquoted), may be empty
  std::string route;    ///< obsolete source route ("@a,@b"), usually empty
  std::string mailbox;  ///< local part, or the group's name for a group start
  std::string host;     ///< domain; empty for group markers and for "undisclosed" local-only entries
  bool group = false;      ///< group start marker
  bool group_end = false;  ///< group end marker
};

std::vector<address> parse_address_list(std::string_view value, std::size_t max_addresses = 1000);

}  // namespace mailroom::mime
