// One Maildir folder's shared state (private): the UID list, the scan of new/ and cur/, flag
// renames and expunges. Shared by every view of the folder in this process; all methods lock
// and do file I/O, so callers run them on the blocking pool.
//
// UID list file "mailroom-uidlist" (ours, text, append-only between compactions):
//   mailroom-uidlist 1 V<uidvalidity> N<uidnext> M<highestmodseq>
//   <uid> <modseq> <internal date> <size> <file name>     a message, or its new flags/modseq
//   -<uid> <modseq>                                        an expunge
// The last record of a UID wins. New UIDs are fdatasync'ed before anyone sees them, so a crash
// never hands the same UID to two messages. If the list is lost, the folder gets a new
// UIDVALIDITY. A torn last line (crash while appending) is ignored.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "../../detail/view.hpp"
#include "mailroom/core/log.hpp"
#include "mailroom/store/maildir/writer.hpp"
#include "mailroom/store/types.hpp"

namespace mailroom::store::maildir::detail {

struct entry {
  std::string base;   ///< unique part of the file name
  std::string info;   ///< letters after ":2," as on disk
  bool has_info = false;
  bool in_new = false;
  modseq_t modseq = 0;
  std::uint64_t size = 0;
  std::int64_t date = 0;
  flag_set flags;
  std::string other;  ///< info letters we do not interpret, kept on rewrite

  std::string file() const { return has_info ? base + ":2," + info : base; }
  std::string relative_path() const { return (in_new ? "new/" : "cur/") + file(); }
};

class folder {
 public:
  folder(std::string path, std::shared_ptr<directory> dir, log::logger const& log);

  std::string const& path() const noexcept { return path_; }
  std::shared_ptr<directory> const& dir() const noexcept { return dir_; }
  mailroom::store::detail::change_notifier& notifier() noexcept { return notifier_; }

  struct snapshot {
    std::vector<message_info> messages;
    std::vector<uid_t> claimed;  ///< moved from new/ to cur/ by this call (\Recent for the caller)
    std::uint32_t uidvalidity = 0;
    uid_t uidnext = 1;
    modseq_t highest_modseq = 1;
    std::uint64_t generation = 0;
  };
  /// Rescans when the directories changed; with claim_new, moves new/ messages to cur/.
  /// no_such_mailbox if the folder directory is gone.
  result<snapshot> sync(bool claim_new);
  result<mailbox_status> status();

  /// Absolute path of a message's file now, or no_such_message.
  result<std::string> file_path(uid_t uid);
  /// Flags of the given UIDs; returns (uid, new info, modseq) for those changed or refused.
  result<store_flags_result> set_flags(std::vector<message_info>& view, std::span<uid_t const> uids, flag_op op,
                                       flag_set const& f, std::optional<modseq_t> unchanged_since);
  struct removed {
    std::vector<uid_t> uids;
    std::uint64_t bytes = 0;
  };
  /// Deletes the files of the UIDs (only those with \Deleted when require_deleted).
  result<removed> remove(std::span<uid_t const> uids, bool require_deleted);

  /// The info letters for `f` in this folder (may add keywords to dovecot-keywords).
  result<std::string> info_for(flag_set const& f);
  /// Registers files already durable in cur/ or new/ and returns their UIDs, fdatasync'ed.
  struct adopted_file {
    std::string file;
    bool in_new = false;
    std::uint64_t size = 0;
    std::int64_t date = 0;
  };
  result<std::vector<uid_t>> adopt(std::vector<adopted_file> const& files);
  /// Source data for a copy: (entry copy) of each UID still present.
  std::vector<std::pair<uid_t, entry>> entries_for(std::span<uid_t const> uids);
  std::uint32_t uidvalidity();

 private:
  result<void> load_locked();
  result<bool> scan_locked(bool force);
  result<void> current_locked();  ///< loaded, and rescanned if the directories changed
  /// A new message with the next UID and MODSEQ; its log record goes to `records`.
  result<uid_t> add_entry_locked(std::string_view file, bool in_new, std::uint64_t size, std::int64_t date,
                                 std::string& records);
  result<void> append_log_locked(std::string const& records);
  result<void> rewrite_log_locked();
  void load_keywords_locked();
  result<void> save_keywords_locked();
  std::string record(uid_t uid, entry const& e) const;
  snapshot make_snapshot_locked(std::vector<uid_t> claimed);

  std::string path_;
  std::shared_ptr<directory> dir_;
  log::logger log_;
  mailroom::store::detail::change_notifier notifier_;

  std::mutex mutex_;
  bool loaded_ = false;
  std::uint32_t uidvalidity_ = 0;
  uid_t uidnext_ = 1;
  modseq_t highest_ = 1;
  std::map<uid_t, entry> entries_;
  std::unordered_map<std::string, uid_t> by_base_;
  std::vector<std::string> keywords_;
  std::int64_t keywords_mtime_ = -1;
  std::int64_t new_mtime_ = -1, cur_mtime_ = -1, scanned_at_ = 0;
  std::size_t log_records_ = 0;
};

/// Reads a whole (small) file.
result<std::string> read_small_file(std::string const& path);
/// Replaces dir/name with content through a temporary file, durably (file and directory).
std::error_code replace_file(std::string const& dir, std::string const& name, std::string const& content);

/// A UIDVALIDITY for a new UID list: the time, strictly increasing within the process.
std::uint32_t new_uidvalidity();

}  // namespace mailroom::store::maildir::detail
