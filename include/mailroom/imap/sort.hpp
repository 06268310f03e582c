// IMAP SORT and THREAD (RFC 5256) with the DISPLAYFROM and DISPLAYTO sort keys (RFC 5957), as
// pure functions over the messages of a mailbox view. The server parses the command, selects the
// messages (the SEARCH part) and hands them here; nothing in this file does I/O.
//
// Contract: message data never makes these functions fail, throw (apart from std::bad_alloc)
// or crash. Missing or malformed header fields fall back to what RFC 5256 prescribes: the empty
// string for address and subject keys, INTERNALDATE for the sent date. Nothing recurses: a
// reply chain of 100,000 messages is as safe as a flat mailbox. Cost is linear in the header
// bytes plus O(n log n) in the number of messages n (REFERENCES: O(r log r) in the number r of
// references read, at most 100 per message); nothing is quadratic.
//
// Comparison: strings compare with i;ascii-casemap (RFC 4790: a-z folded to A-Z, then octet
// order), the collation RFC 5256 makes the default, applied to the UTF-8 of the decoded value.
// This approximates i;unicode-casemap (RFC 5051) for ASCII only: non-ASCII letters compare by
// code point, case-sensitively, without normalisation.
//
// Hostile-input limits: References contributes its last 100 message IDs, message IDs longer
// than 998 octets are ignored, and each header block is read as mime::parse_header reads it
// (1 MiB, 10,000 fields; what precedes a crossed limit is still used).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mailroom::imap {

/// One message of the mailbox view.
struct sort_message {
  std::uint32_t seq = 0;
  std::uint32_t uid = 0;
  std::int64_t internal_date = 0;  ///< seconds since the epoch, UTC
  std::uint64_t size = 0;          ///< RFC822.SIZE
  std::string_view header;         ///< the raw header block (up to and including the blank line, which may be missing)
};

enum class sort_key { arrival, cc, date, from, size, subject, to, display_from, display_to };
struct sort_criterion {
  sort_key key;
  bool reverse = false;
};

/// A sort-key name as SORT sends it ("ARRIVAL", "DISPLAYFROM", ...; case-insensitive).
/// "REVERSE" is a modifier, not a key: nullopt.
std::optional<sort_key> parse_sort_key(std::string_view name);
/// A whole sort program as its atoms, e.g. {"REVERSE", "DATE", "SUBJECT"}; nullopt when it is
/// empty, names an unknown key or ends with REVERSE. "REVERSE REVERSE x" is accepted (RFC 5256
/// allows one REVERSE per key; a second one is redundant, not an error, here).
std::optional<std::vector<sort_criterion>> parse_sort_criteria(std::span<std::string_view const> atoms);

/// Indexes into msgs in SORT order. Messages equal under every criterion are ordered by
/// sequence number (whatever the REVERSE flags), as RFC 5256 requires; then by index.
std::vector<std::size_t> sort_messages(std::span<sort_message const> msgs, std::span<sort_criterion const> by);

enum class thread_algorithm { orderedsubject, references };
/// "ORDEREDSUBJECT" or "REFERENCES", case-insensitive.
std::optional<thread_algorithm> parse_thread_algorithm(std::string_view name);

/// The threads of a mailbox view as a flat forest: nodes name each other by index, so building,
/// copying, formatting and destroying a deep thread never recurses. Siblings are in THREAD
/// order (by sent date, then sequence number).
struct thread_forest {
  static constexpr std::size_t none = static_cast<std::size_t>(-1);
  struct node {
    std::size_t message = none;       ///< index into the messages; none for a dummy (only at top level)
    std::size_t first_child = none;
    std::size_t next_sibling = none;
  };
  std::vector<node> nodes;
  std::size_t first_root = none;      ///< the first thread; the others follow by next_sibling
};

/// Threads msgs with the given algorithm (RFC 5256 section 3).
thread_forest build_threads(std::span<sort_message const> msgs, thread_algorithm alg);

/// The THREAD response payload for a forest of msgs, e.g. "(2)(3 6 (4 23)(44 7 96))", with UIDs
/// when `uid` is true, else sequence numbers. A top-level dummy prints as "((3)(5))".
std::string format_threads(thread_forest const& forest, std::span<sort_message const> msgs, bool uid);

/// format_threads(build_threads(msgs, alg), msgs, uid).
std::string thread_messages(std::span<sort_message const> msgs, thread_algorithm alg, bool uid);

/// RFC 5256 section 2.1 base subject of a raw Subject field value, after RFC 2047 decoding
/// (mime::decode_header_value) and white-space normalisation. Case is kept; callers compare
/// with i;ascii-casemap.
std::string base_subject(std::string_view subject_field_value);
/// Whether extracting the base subject removed a subj-refwd ("Re:", "Fwd:", "Fw:", with an
/// optional "[blob]" before the colon), a "(fwd)" trailer or a "[fwd: ...]" wrapper: RFC 5256's
/// definition of a reply or forward, used by REFERENCES when merging threads by subject.
bool is_reply_or_forward(std::string_view subject_field_value);

/// Seconds since the epoch (UTC) of an RFC 5322 date-time, with the obsolete forms of section
/// 4.3: two- and three-digit years, alphabetic zones (UT, GMT, the US zones; military and
/// unknown ones count as +0000), comments and white space between any tokens, missing
/// seconds, an optional day of week (its value is not checked). Lenient beyond the RFC: a
/// missing zone means +0000, a "+hh:mm" zone and full month names are accepted. nullopt when
/// the date is impossible (31 Apr, hour 24, year before 1900 or after 9999) or unreadable.
std::optional<std::int64_t> parse_message_date(std::string_view date_field_value);

}  // namespace mailroom::imap
