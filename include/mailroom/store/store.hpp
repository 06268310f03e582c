// The message store: accounts, mailboxes and messages, shaped for IMAP4rev2/rev1 and POP3 and
// for local delivery. Backends: store::maildir (default, on disk) and store::memory (tests and
// embedders); the interfaces are asynchronous so network-backed stores fit behind them.
//
// Contracts common to every backend:
// - UIDs are assigned in ascending order and never reused within one UIDVALIDITY; UIDVALIDITY
//   changes only when the store loses its UID list.
// - Every change to a message (arrival, flag change) gives it a MODSEQ above every earlier one
//   in its mailbox; HIGHESTMODSEQ never goes back.
// - appender::commit() returns only after the message is durable (like an SMTP 250); a crash
//   before that leaves nothing visible.
// - A `mailbox` is one session's view: its message list changes only in sync(), which reports
//   what other views (or other programs) changed since the previous sync(). Views of the same
//   mailbox may live on different threads; one view is used from one coroutine at a time.
// - A mailbox's ACL moves with it when it (or a parent) is renamed and goes when it is deleted;
//   renaming INBOX leaves INBOX its ACL and gives the new mailbox none. A mailbox created under
//   a name that had an ACL before starts with none.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mailroom/core/result.hpp"
#include "mailroom/core/task.hpp"
#include "mailroom/store/types.hpp"

namespace mailroom::store {

/// A message body, streamed.
class message_reader {
 public:
  virtual ~message_reader() = default;
  virtual std::uint64_t size() const noexcept = 0;
  /// Reads up to buf.size() octets; 0 at the end.
  virtual task<result<std::size_t>> read(std::span<char> buf) = 0;
};

struct append_options {
  flag_set flags;
  std::optional<std::int64_t> internal_date;  ///< seconds since the epoch; default now
  /// False for local delivery: the UID is assigned when a session next looks (as Dovecot's
  /// deliver does lazily), and commit() reports uid 0. True for IMAP APPEND (APPENDUID).
  bool assign_uid = true;
  /// Delivery checks the quota; IMAP APPEND too. False only for administrative imports.
  bool check_quota = true;
};

struct append_result {
  std::uint32_t uidvalidity = 0;
  uid_t uid = 0;  ///< 0 when not assigned yet (append_options::assign_uid = false)
};

/// One message being added. write() buffers; commit() makes it durable and visible.
class appender {
 public:
  virtual ~appender() = default;  ///< without commit(), nothing is left behind
  virtual result<void> write(std::span<char const> data) = 0;
  /// errc::over_quota when the finished message does not fit.
  virtual task<result<append_result>> commit() = 0;
  virtual void abort() noexcept = 0;
};

struct sync_changes {
  std::vector<uid_t> expunged;           ///< in ascending UID order; gone from messages()
  std::vector<std::size_t> changed;      ///< indexes into messages(): new or with new flags
  bool uidvalidity_changed = false;      ///< the view was reset: re-select
};

enum class flag_op { add, remove, replace };

struct store_flags_result {
  std::vector<std::size_t> changed;     ///< indexes into messages() whose flags or modseq changed
  std::vector<uid_t> modified;          ///< UIDs refused by unchanged_since (RFC 7162 MODIFIED)
};

struct copy_result {
  std::uint32_t uidvalidity = 0;        ///< of the destination
  std::vector<std::pair<uid_t, uid_t>> uids;  ///< (source UID, destination UID), source order
  std::vector<uid_t> expunged;          ///< move: the sources removed from the view, ascending
};

class mailbox {
 public:
  virtual ~mailbox() = default;
  virtual std::string const& name() const noexcept = 0;
  virtual bool read_only() const noexcept = 0;
  virtual std::uint32_t uidvalidity() const noexcept = 0;
  /// The view's messages in ascending UID order; IMAP sequence number = index + 1.
  virtual std::vector<message_info> const& messages() const noexcept = 0;
  /// UIDNEXT and HIGHESTMODSEQ as of the last sync.
  virtual uid_t uidnext() const noexcept = 0;
  virtual modseq_t highest_modseq() const noexcept = 0;

  /// Brings the view up to date with the mailbox.
  virtual task<result<sync_changes>> sync() = 0;
  /// Completes when the mailbox may have changed since the last sync, or after `max` (a backend
  /// that cannot observe other programs' changes returns after `max` at the latest, so an IDLE
  /// loop that syncs each time sees every change). Cancellable by closing the session.
  virtual task<void> wait_for_change(std::chrono::steady_clock::duration max) = 0;

  virtual task<result<std::unique_ptr<message_reader>>> open(uid_t uid) = 0;
  /// Changes flags of the given messages (UIDs not in the view are ignored). With
  /// unchanged_since, messages whose modseq is higher are left alone and listed in `modified`.
  virtual task<result<store_flags_result>> store(std::span<uid_t const> uids, flag_op op, flag_set const& f,
                                                 std::optional<modseq_t> unchanged_since = {}) = 0;
  /// Removes messages flagged \Deleted (only those in `only` when given) and returns their
  /// UIDs; the view drops them at once (the caller reports them as EXPUNGE).
  virtual task<result<std::vector<uid_t>>> expunge(std::optional<std::span<uid_t const>> only = {}) = 0;
  /// Copies (or moves) messages into another mailbox of the same account, keeping flags and
  /// internal dates. A move also removes them from this view, as expunge() does.
  virtual task<result<copy_result>> copy(std::span<uid_t const> uids, std::string_view dest, bool move = false) = 0;
};

class account {
 public:
  virtual ~account() = default;
  virtual std::string const& user() const noexcept = 0;

  /// Every mailbox, INBOX first, then by name.
  virtual task<result<std::vector<mailbox_info>>> list() = 0;
  /// Creates a mailbox (and missing parents). mailbox_exists if it is there already.
  virtual task<result<void>> create(std::string_view name, special_use use = special_use::none) = 0;
  /// Deletes a mailbox and its messages; cannot for INBOX; has_children if it has inferiors.
  virtual task<result<void>> remove(std::string_view name) = 0;
  /// Renames a mailbox with its inferiors. Renaming INBOX moves its messages into a new mailbox
  /// and leaves INBOX empty (RFC 9051).
  virtual task<result<void>> rename(std::string_view from, std::string_view to) = 0;
  /// Adds or removes a name in the subscription list (RFC 9051 6.3.7). The list is kept apart
  /// from the mailboxes: a name may be subscribed whether or not it exists, and DELETE and
  /// RENAME leave the list alone.
  virtual task<result<void>> subscribe(std::string_view name, bool subscribed) = 0;
  /// The subscribed names in name order, existing or not.
  virtual task<result<std::vector<std::string>>> subscriptions() = 0;
  virtual task<result<mailbox_status>> status(std::string_view name) = 0;
  /// Opens a view (IMAP SELECT, or EXAMINE with read_only).
  virtual task<result<std::unique_ptr<mailbox>>> open(std::string_view name, bool read_only = false) = 0;
  virtual task<result<std::unique_ptr<appender>>> append(std::string_view name, append_options const& opts) = 0;
  virtual task<result<quota_usage>> quota() = 0;

  // ---- access control (RFC 4314). The store records and evaluates rights; enforcing them is the
  // protocol layer's job (an account object does whatever it is asked, for the owner or not). ----

  /// The ACL of one of this account's mailboxes (no_such_mailbox if absent), one entry per
  /// identifier, sorted by identifier. The owner's own rights are implicit (all rights) and not
  /// listed unless explicitly set.
  virtual task<result<std::vector<acl_entry>>> get_acl(std::string_view name) = 0;
  /// Sets (or, with nullopt or an empty set, removes) the entry for `identifier` ("bob",
  /// "anyone", "authenticated", "-bob"...); cannot if !valid_acl_identifier(identifier).
  /// Persisted durably before it completes. An entry for the owner is kept and listed but does not
  /// limit the owner.
  virtual task<result<void>> set_acl(std::string_view name, std::string_view identifier, std::optional<rights> r) = 0;
  /// What `user` may do with the mailbox (no_such_mailbox if absent): see effective_rights().
  /// The owner (user() == user) has all rights.
  virtual task<result<rights>> rights_of(std::string_view name, std::string_view user) = 0;
};

class message_store {
 public:
  virtual ~message_store() = default;
  /// The account of an (already authenticated or resolved) user; no_such_account if the user
  /// has no mailboxes and the store does not create them.
  virtual task<result<std::shared_ptr<account>>> open_account(std::string_view user) = 0;
  /// Mailboxes of other accounts on which `user` holds the lookup right ('l'), for LIST of the
  /// other-users namespace; by owner, then name. Never lists the user's own mailboxes. Each one is
  /// checked against its current ACL (as rights_of() would) before it is returned.
  virtual task<result<std::vector<shared_mailbox>>> shared_with(std::string_view user) = 0;
};

}  // namespace mailroom::store
