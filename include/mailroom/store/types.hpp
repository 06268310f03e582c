// Vocabulary of the message store: UIDs, flags, mailbox roles, status and quota, and errors.
//
// Names: mailbox names are UTF-8 with '/' as the hierarchy delimiter; "INBOX" is matched without
// regard to case and always exists. Keywords are IMAP atoms compared without regard to case.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "mailroom/core/result.hpp"

namespace mailroom::store {

using uid_t = std::uint32_t;
using modseq_t = std::uint64_t;

inline constexpr char delimiter = '/';

enum class errc {
  no_such_mailbox = 1,  ///< IMAP [NONEXISTENT]
  mailbox_exists,       ///< IMAP [ALREADYEXISTS]
  invalid_name,         ///< the name cannot be a mailbox here (IMAP [CANNOT])
  cannot,               ///< refused by the store's rules, e.g. deleting INBOX (IMAP [CANNOT])
  has_children,         ///< deleting a mailbox that has inferiors (IMAP [INUSE]-like refusal)
  over_quota,           ///< IMAP [OVERQUOTA], SMTP 552 5.2.2 / 452 4.2.2
  no_such_message,      ///< the UID is not (or no longer) in the mailbox
  too_many_keywords,    ///< the mailbox cannot hold another keyword (IMAP [LIMIT])
  no_such_account,      ///< the user has no mailboxes here
  corrupt,              ///< stored state could not be read; details were logged
};
std::error_category const& category() noexcept;
inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

/// IMAP system flags. \Recent is not a flag here: it is a property of a session's view.
enum class system_flag : std::uint8_t { seen = 1, answered = 2, flagged = 4, deleted = 8, draft = 16 };

struct flag_set {
  std::uint8_t system = 0;
  std::vector<std::string> keywords;  ///< kept sorted (case-insensitively) and unique

  bool has(system_flag f) const noexcept { return system & static_cast<std::uint8_t>(f); }
  void set(system_flag f, bool on = true) noexcept {
    system = on ? (system | static_cast<std::uint8_t>(f)) : (system & ~static_cast<std::uint8_t>(f));
  }
  bool has_keyword(std::string_view k) const noexcept;
  void add_keyword(std::string_view k);
  void remove_keyword(std::string_view k);
  void add(flag_set const& other);
  void remove(flag_set const& other);
  bool operator==(flag_set const& o) const;

  /// Parses one IMAP flag ("\Seen", "$Forwarded", "Junk"). False for \Recent, \* and non-atoms.
  bool add_imap(std::string_view flag);
  /// The flags as IMAP writes them: "\Seen \Flagged $Label1" (no parentheses).
  std::string to_imap() const;
};

/// True when `k` can be a keyword: a non-empty IMAP atom without '\'.
bool valid_keyword(std::string_view k) noexcept;

/// RFC 6154 roles.
enum class special_use : std::uint8_t { none, all, archive, drafts, flagged, junk, sent, trash };
std::string_view to_imap(special_use u) noexcept;  ///< "\Sent", ... ("" for none)
std::optional<special_use> parse_special_use(std::string_view imap) noexcept;  ///< case-insensitive

struct mailbox_info {
  std::string name;
  special_use use = special_use::none;
  bool subscribed = false;
  bool has_children = false;
};

struct mailbox_status {
  std::uint32_t messages = 0;
  std::uint32_t unseen = 0;
  std::uint32_t recent = 0;      ///< messages not yet seen by any session (Maildir new/)
  std::uint32_t uidvalidity = 0;
  uid_t uidnext = 1;
  modseq_t highest_modseq = 1;
  std::uint64_t size = 0;        ///< sum of message sizes
  std::uint32_t deleted = 0;     ///< messages with \Deleted
};

struct message_info {
  uid_t uid = 0;
  modseq_t modseq = 0;
  flag_set flags;
  std::int64_t internal_date = 0;  ///< seconds since the epoch, UTC
  std::uint64_t size = 0;          ///< octets as stored (and as IMAP RFC822.SIZE reports)
  bool recent = false;             ///< \Recent in this view (IMAP4rev1 only)
};

/// 0 limits mean unlimited.
struct quota_usage {
  std::uint64_t storage_used = 0;
  std::uint64_t storage_limit = 0;
  std::uint64_t messages_used = 0;
  std::uint64_t messages_limit = 0;
  /// True when adding `bytes` in one more message would cross a limit.
  bool would_exceed(std::uint64_t bytes) const noexcept {
    return (storage_limit && storage_used + bytes > storage_limit) ||
           (messages_limit && messages_used + 1 > messages_limit);
  }
};

/// Canonical form of a mailbox name: "INBOX" in any case becomes "INBOX" (also as the first
/// component), other names unchanged. Fails with invalid_name for empty names, empty components,
/// a leading or trailing delimiter, control characters, invalid UTF-8 or names over 255 octets.
result<std::string> normalize_name(std::string_view name);
/// The parent of "a/b/c" is "a/b"; of "a" is "".
std::string_view parent_name(std::string_view name) noexcept;

}  // namespace mailroom::store

template <>
struct std::is_error_code_enum<mailroom::store::errc> : std::true_type {};
