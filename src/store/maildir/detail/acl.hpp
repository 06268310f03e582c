// Dovecot's per-mailbox ACL files (private): `dovecot-acl` in each folder directory (the Maildir
// itself for INBOX), as Dovecot's "vfile" ACL backend reads and writes them, so a Dovecot serving
// the same Maildirs honours the same rights.
//
// Format: one entry per line, "<identifier> <rights letters>[ :<named rights>]", e.g.
//   user=bob lrs
//   anyone lr
//   authenticated l
//   -user=bob w                  (negative rights: taken away from bob)
// The identifier is user=<name>, anyone (alias anonymous), authenticated, owner, group=<name> or
// group-override=<name>, prefixed with '-' for negative rights; an identifier containing spaces is
// written in double quotes with '\' escapes. Named rights after ':' are Dovecot's names ("lookup",
// "read", ...; unknown names are ignored). Empty lines and lines starting with '#' are comments.
//
// Here: user=, anyone/anonymous and authenticated lines are interpreted, as the store API names
// them ("bob", "anyone", "authenticated", "-bob"...). owner, group and group-override lines are
// kept verbatim when the file is rewritten but grant (or take away) nothing here: mailroom has no
// groups, and the owner always has every right. A line with an identifier or rights letter Dovecot
// would not accept makes the whole file unreadable (corrupt), as it does for Dovecot: refusing is
// safer than guessing, since a skipped negative line would grant too much.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailroom/core/result.hpp"
#include "mailroom/store/types.hpp"

namespace mailroom::store::maildir::detail {

inline constexpr std::string_view acl_file_name = "dovecot-acl";

struct acl_line {
  std::string text;               ///< the line as read (no newline); rewritten only for its identifier
  std::optional<std::string> id;  ///< the store API identifier, for lines interpreted here
  rights granted;
};

/// Parses a dovecot-acl file; corrupt as described above.
result<std::vector<acl_line>> parse_acl(std::string_view content);
/// The line for an identifier: "user=bob lrs", "-anyone w", "authenticated l". `id` must be valid.
std::string acl_line_text(std::string_view id, rights r);
/// One entry per interpreted identifier (duplicate lines merged, as Dovecot merges them), sorted.
std::vector<acl_entry> acl_entries(std::vector<acl_line> const& lines);

/// The entries of <dir>/dovecot-acl; a missing file is an empty ACL.
result<std::vector<acl_entry>> read_acl(std::string const& dir);
/// Replaces the lines of `id` in <dir>/dovecot-acl by one with `r` (none when r is nullopt or
/// empty), leaving other lines as they are. Takes Dovecot's lock file <dir>/dovecot-acl.lock
/// (O_EXCL; one older than 120 s is stale and broken), re-reads the file under it, writes the new
/// content into the lock file, fsyncs it, renames it over dovecot-acl and fsyncs the directory.
/// Blocking; run on the pool.
result<void> write_acl_entry(std::string const& dir, std::string_view id, std::optional<rights> r);

/// The positive identifiers holding the lookup right in `acl` (what the shared index records).
std::vector<std::string> lookup_identifiers(std::vector<acl_entry> const& acl);

}  // namespace mailroom::store::maildir::detail
