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

/// RFC 4314 access rights as a set of the letters "lrswipkxtea":
///   l lookup (visible in LIST, may be subscribed)   r read (SELECT, EXAMINE, STATUS, FETCH, SEARCH, COPY from)
///   s keep \Seen across sessions                    w write other flags and keywords
///   i insert (APPEND, COPY into)                    p post (send mail to the submission address)
///   k create mailboxes below                        x delete the mailbox (and rename it)
///   t set/clear \Deleted                            e expunge                      a administer (SETACL...)
class rights {
 public:
  static constexpr std::string_view all = "lrswipkxtea";

  constexpr rights() = default;
  /// Parses rights letters in any order, repeated or not; also accepts the obsolete "c" (= k x)
  /// and "d" (= x t e) of RFC 2086. nullopt for any other character (RFC 4314: BAD).
  static std::optional<rights> parse(std::string_view letters);
  static rights full();
  /// True for a letter of `all` in the set; for "c" and "d", true when every right they stand for
  /// is in the set. False for any other character.
  bool has(char letter) const noexcept;
  rights& add(rights o) noexcept;
  rights& remove(rights o) noexcept;
  bool empty() const noexcept { return bits_ == 0; }
  /// The letters in canonical order ("lrswipkxtea" order), "" when empty.
  std::string to_string() const;
  bool operator==(rights const&) const = default;

 private:
  std::uint16_t bits_ = 0;
};

/// One entry of a mailbox's access control list. `identifier` is a user name, "anyone",
/// "authenticated", or one of those prefixed with '-' for negative rights (rights taken away).
struct acl_entry {
  std::string identifier;
  rights granted;
  bool operator==(acl_entry const&) const = default;
};

/// A mailbox of another account that a user may see (IMAP's other-users namespace).
struct shared_mailbox {
  std::string owner;  ///< the account (user name) the mailbox belongs to
  std::string name;   ///< the mailbox name in the owner's account
  bool operator==(shared_mailbox const&) const = default;
};

/// True when `identifier` can be stored in an ACL: an optional '-' then a non-empty name of
/// valid UTF-8 without whitespace or control characters that does not start with '-', at most
/// 255 octets in all. Stores refuse other identifiers with errc::cannot.
bool valid_acl_identifier(std::string_view identifier) noexcept;

/// What `user` may do with a mailbox of `owner` whose ACL is `acl` (RFC 4314 section 2): the
/// owner has every right; anyone else the union of the entries for `user`, "authenticated" and
/// "anyone", minus the union of "-user", "-authenticated" and "-anyone". Other entries (other
/// users) do not apply.
rights effective_rights(std::vector<acl_entry> const& acl, std::string_view owner, std::string_view user);

/// Canonical form of a mailbox name: "INBOX" in any case becomes "INBOX" (also as the first
/// component), other names unchanged. Fails with invalid_name for empty names, empty components,
/// a leading or trailing delimiter, control characters, invalid UTF-8 or names over 255 octets.
result<std::string> normalize_name(std::string_view name);
/// The parent of "a/b/c" is "a/b"; of "a" is "".
std::string_view parent_name(std::string_view name) noexcept;

}  // namespace mailroom::store

template <>
struct std::is_error_code_enum<mailroom::store::errc> : std::true_type {};
