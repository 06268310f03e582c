// The default message store: Maildir++ on disk, readable and writable by mutt, Dovecot and
// Courier at the same time.
//
// Layout: <root>/<account>/Maildir is INBOX; mailbox "Lists/dev" is the folder
// <root>/<account>/Maildir/.Lists.dev (names in modified UTF-7 on disk; '.' cannot appear in a
// name component). Each folder has tmp/ new/ cur/, a `maildirfolder` marker, its UID list
// `mailroom-uidlist` (see src/store/maildir/detail/folder.hpp) and Dovecot's `dovecot-keywords`
// letter map. Flags live in the file names (":2,DFRST" plus keyword letters a-z, at most 26
// keywords per folder). Internal date = file mtime. The account keeps `subscriptions` (one
// name per line), `mailroom-special-use` ("<\Role> <name>" lines) and, when a limit is set,
// Maildir++'s `maildirsize` quota file.
//
// Access rights: each folder directory (the Maildir itself for INBOX) may hold a `dovecot-acl`
// file in Dovecot's vfile format ("user=bob lrs", "anyone lr", "-user=bob w"; see
// src/store/maildir/detail/acl.hpp), written under Dovecot's `dovecot-acl.lock`, so Dovecot can
// serve the same shared mailboxes. It moves with its folder on rename. After a change the
// account's `dovecot-acl-list` (Dovecot's own cache) is removed so Dovecot rebuilds it. The store
// keeps `<root>/.mailroom-shared`, an index of who may look up which mailboxes of other accounts
// (see src/store/maildir/detail/shared_index.hpp); delete it after changing ACLs with other tools.
//
// Other programs may add, flag, move and delete files at any time: views see that at their
// next sync (IDLE waits are capped by store_options::poll_interval for this reason). One
// mailroom process per store: the UID lists are not locked against a second writer.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mailroom/core/blocking.hpp"
#include "mailroom/core/log.hpp"
#include "mailroom/store/store.hpp"

namespace mailroom::store::maildir {

struct store_options {
  std::string root;
  bool create_accounts = false;      ///< open_account() creates missing accounts
  std::uint64_t storage_limit = 0;   ///< per account, octets; 0 = unlimited (usage then untracked)
  std::uint64_t messages_limit = 0;  ///< per account; 0 = unlimited
  /// Mailboxes every account gets on open (RFC 6154 roles), as Dovecot's `auto = create`.
  std::vector<std::pair<std::string, special_use>> auto_create = {{"Drafts", special_use::drafts},
                                                                  {"Sent", special_use::sent},
                                                                  {"Trash", special_use::trash},
                                                                  {"Junk", special_use::junk},
                                                                  {"Archive", special_use::archive}};
  /// How long a change by another program may go unnoticed by a waiting view.
  std::chrono::steady_clock::duration poll_interval = std::chrono::seconds(5);
};

namespace detail {
class folder;
class shared_index;
}  // namespace detail

class store final : public message_store, public std::enable_shared_from_this<store> {
 public:
  static std::shared_ptr<store> create(store_options opts, blocking_pool& pool, log::logger logger = {});

  task<result<std::shared_ptr<account>>> open_account(std::string_view user) override;
  /// Looks in the shared-mailbox index, then confirms each hit against its dovecot-acl.
  task<result<std::vector<shared_mailbox>>> shared_with(std::string_view user) override;

  /// True when `user` can name an account directory (no '/', no leading '.', printable,
  /// valid UTF-8, at most 255 octets). Account names are used as given (case matters).
  static bool valid_account_name(std::string_view user) noexcept;
  /// <root>/<user>/Maildir.
  std::string maildir_path(std::string_view user) const;
  store_options const& options() const noexcept { return opts_; }
  blocking_pool& pool() noexcept { return pool_; }
  log::logger const& logger() const noexcept { return log_; }

  /// The shared state of a folder directory (created on first use, dropped when unused).
  std::shared_ptr<detail::folder> folder_at(std::string const& path);
  /// Wakes views of a folder if any are open (after a delivery that did not assign a UID).
  void notify(std::string const& path);
  /// Forgets a folder's state (after it was deleted or renamed on disk).
  void forget(std::string const& path);
  /// The store-wide index of shared mailboxes.
  detail::shared_index& shared() noexcept { return *shared_; }

  store(store_options opts, blocking_pool& pool, log::logger logger);

 private:
  store_options opts_;
  blocking_pool& pool_;
  log::logger log_;
  std::mutex mutex_;
  std::map<std::string, std::weak_ptr<detail::folder>> folders_;
  std::shared_ptr<detail::shared_index> shared_;
  // Accounts seen recently: deliveries skip the existence check and mailbox auto-creation
  // (an account deleted on disk is noticed within the TTL).
  struct cached_account {
    std::shared_ptr<mailroom::store::account> acct;
    std::chrono::steady_clock::time_point checked;
  };
  static constexpr std::chrono::seconds account_cache_ttl{2};
  std::map<std::string, cached_account, std::less<>> accounts_;
};

}  // namespace mailroom::store::maildir
