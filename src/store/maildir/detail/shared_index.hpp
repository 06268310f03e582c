// The store-wide index of shared mailboxes (private), so message_store::shared_with() need not
// read every account's ACL files.
//
// File <root>/.mailroom-shared (the leading '.' keeps it from ever being an account directory):
//   mailroom-shared 1
//   <identifier> <owner> <mailbox name>
// one line for each positive identifier ("bob", "anyone", "authenticated") that a mailbox's
// dovecot-acl gives the lookup right. Identifiers and owners contain no spaces; the mailbox name
// is the rest of the line. Rewritten whole (temporary file, fsync, rename, directory fsync).
//
// The index only narrows the search: shared_with() confirms every hit against the mailbox's
// current ACL, so a stale line never grants anything. For changes made through the store it is
// kept a superset of the truth (lines are added before an ACL changes or a mailbox moves, and
// pruned after), so a crash in between leaves an extra line, never a missing one. ACLs changed by
// other programs (doveadm acl, a hand edit) are not seen until the file is deleted: the next
// lookup then rebuilds it by scanning every account, as it does when the file is missing or its
// header is wrong.
//
// Thread-safe through lock(); every *_locked method needs it held. Blocking: run on the pool.
#pragma once

#include <compare>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "mailroom/core/log.hpp"
#include "mailroom/core/result.hpp"

namespace mailroom::store::maildir::detail {

/// The folder directory of `owner`'s mailbox `name` (normalized) under the store root:
/// <root>/<owner>/Maildir[/.<folder>]. invalid_name for names Maildir++ cannot hold.
result<std::string> mailbox_dir(std::string_view root, std::string_view owner, std::string_view name);

class shared_index {
 public:
  struct entry {
    std::string identifier;
    std::string owner;
    std::string mailbox;
    auto operator<=>(entry const&) const = default;
  };

  shared_index(std::string root, log::logger log);

  std::unique_lock<std::mutex> lock() { return std::unique_lock<std::mutex>(mutex_); }

  /// Lines that may concern `user`: for the user, "anyone" or "authenticated", on mailboxes of
  /// other owners.
  result<std::vector<entry>> candidates_locked(std::string_view user);
  /// Lines of `owner`'s mailbox `name` and its inferiors.
  result<std::vector<entry>> subtree_locked(std::string_view owner, std::string_view name);
  /// Adds lines (saved at once when any is new).
  result<void> add_locked(std::vector<entry> const& more);
  /// Makes the lines of `owner`'s mailboxes `names` match their dovecot-acl files now (none for a
  /// mailbox that is gone or whose ACL cannot be read); saved at once when anything changed.
  result<void> refresh_locked(std::string_view owner, std::vector<std::string> const& names);

  std::string const& path() const noexcept { return path_; }

 private:
  result<void> load_locked();  ///< current: loaded, reloaded if the file changed, rebuilt if missing
  void rebuild_locked();       ///< scans every account and saves (a failed save is logged)
  result<void> save_locked();
  std::set<entry> scan() const;  ///< every account's ACLs
  void lines_for(std::string_view owner, std::string const& name, std::string const& dir, std::set<entry>& out) const;
  void remember_identity();

  std::string root_;
  std::string path_;
  log::logger log_;
  std::mutex mutex_;
  std::set<entry> entries_;
  bool loaded_ = false;
  struct identity {
    std::uint64_t dev = 0, ino = 0, size = 0;
    std::int64_t mtime_ns = 0;
    bool operator==(identity const&) const = default;
  } identity_;
};

}  // namespace mailroom::store::maildir::detail
