// Maildir++ naming (private): mailbox names <-> folder directories, and flags <-> ":2," info.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailroom/store/types.hpp"

namespace mailroom::store::maildir::detail {

/// "INBOX" -> "" (the Maildir itself); "Lists/dev" -> ".Lists.dev". Names whose components
/// contain '.' cannot be stored (invalid_name). `name` must be normalized.
result<std::string> folder_dir(std::string_view name);
/// ".Lists.dev" -> "Lists/dev"; nullopt for entries that are not folders.
std::optional<std::string> folder_name(std::string_view dir_entry);

/// A Maildir file name split at ":2,".
struct file_name {
  std::string_view base;  ///< unique part, with ",S=..." extensions
  std::string_view info;  ///< letters after ":2," (empty when absent)
  bool has_info = false;
};
file_name split_file_name(std::string_view name) noexcept;
/// The ",S=<n>" size in a base name, if present.
std::optional<std::uint64_t> size_from_name(std::string_view base) noexcept;

/// Flags from info letters; keyword letters a-z index `keywords`. Unknown letters are kept in
/// `other` so a rewrite preserves them (e.g. 'P' passed).
flag_set flags_from_info(std::string_view info, std::vector<std::string> const& keywords, std::string* other = nullptr);
/// Info letters for flags, in ASCII order as Maildir requires. Keywords not in `keywords` are
/// appended to it (the caller saves the list); nullopt when more than 26 would be needed.
std::optional<std::string> info_from_flags(flag_set const& f, std::vector<std::string>& keywords, std::string_view other = {});

}  // namespace mailroom::store::maildir::detail
