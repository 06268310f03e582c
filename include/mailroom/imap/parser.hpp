// IMAP4rev2/rev1 command reader without I/O (RFC 9051 9, RFC 3501 9, RFC 7888 LITERAL+/-,
// RFC 3516 literal8): bytes in, whole commands out.
//
// Contract: feed() takes any slice of the input; next() then reports, in order,
//  - need_more: feed more bytes;
//  - continuation: a synchronizing literal {n} was announced and accepted: the session sends
//    "+ ..." and the client then sends n octets (feed them as usual);
//  - command: one complete command, literals inlined as strings;
//  - error: the command cannot be read. Its text is for a tagged BAD (or untagged when there is
//    no tag). With `fatal` the connection must be closed (the client is committed to sending
//    data we will not take: a LITERAL+ over the limit, or a line that never ends).
// Limits: a line (between literals) of max_line octets, literals of max_literal octets
// (max_append_literal for APPEND), a whole command of max_command octets, list nesting of
// max_depth. Memory stays within max_command plus one feed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mailroom::imap {

struct value {
  enum class kind : std::uint8_t { atom, string, nil, list };
  kind k = kind::atom;
  std::string text;           ///< atom text (as sent) or string contents
  std::vector<value> items;   ///< for lists
  bool literal = false;       ///< the string came as a literal
  bool binary = false;        ///< literal8 (~{n}): may contain NUL

  bool is_atom(std::string_view upper) const noexcept;  ///< case-insensitive atom comparison
  bool is_string_like() const noexcept { return k == kind::atom || k == kind::string; }
};

struct command {
  std::string tag;
  std::string name;            ///< upper-case; "UID" commands have uid = true and the real name here
  bool uid = false;
  std::vector<value> args;
};

struct parser_limits {
  std::size_t max_line = 64 * 1024;
  std::size_t max_literal = 64 * 1024;                 ///< any command but APPEND
  std::size_t max_append_literal = 64 * 1024 * 1024;   ///< APPENDLIMIT
  std::size_t max_command = 72 * 1024 * 1024;
  std::size_t max_depth = 100;
  std::size_t max_nonsync_literal = 4096;              ///< LITERAL- (RFC 7888): larger {n+} refused
  bool literal_plus = false;                           ///< true: LITERAL+, any size up to the limits
};

class parser {
 public:
  explicit parser(parser_limits limits = {}) : limits_(limits) {}

  struct event {
    enum class kind { need_more, continuation, command, error } k = kind::need_more;
    imap::command cmd;       ///< for command
    std::string tag;         ///< for error: the tag if it could be read
    std::string message;     ///< for error
    bool fatal = false;      ///< for error
  };

  void feed(std::string_view bytes);
  event next();
  /// Bytes fed but not yet consumed (e.g. pipelined after STARTTLS, to be discarded).
  std::size_t buffered() const noexcept { return buf_.size() - pos_; }
  void discard_buffered() noexcept;
  /// After an IDLE command: the next line is expected to be "DONE"; returns true when it came,
  /// false when more bytes are needed; nullopt when the line was something else.
  std::optional<bool> take_done();
  /// The next whole line (without its line end) for exchanges outside command syntax (SASL
  /// continuations); nullopt until one is buffered. Lines over max_line are cut to it.
  std::optional<std::string> take_line();

 private:
  event finish_command();
  event error(std::string message, bool fatal);
  bool scan_command_name();

  parser_limits limits_;
  std::string buf_;
  std::size_t pos_ = 0;
  std::string cmd_;                    // the command so far, literals inlined as \0-marked refs
  std::vector<std::string> literals_;  // literal contents, referenced from cmd_
  std::vector<bool> literal_binary_;
  std::optional<std::size_t> literal_left_;  // octets of a literal still to read
  bool skipping_ = false;              // discarding a line that was too long
  std::size_t total_ = 0;
};

/// RFC 9051 sequence sets: "1:3,7,9:*". `*` is max (the largest number in use; 0 = empty).
/// Returns the ranges in ascending order, merged; nullopt if malformed.
struct seq_range {
  std::uint32_t first, last;
};
std::optional<std::vector<seq_range>> parse_sequence_set(std::string_view s, std::uint32_t max);
bool contains(std::vector<seq_range> const& set, std::uint32_t n) noexcept;

}  // namespace mailroom::imap
