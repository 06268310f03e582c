// Sieve (RFC 5228) scripts: compiled once, run many times (interpreter.hpp).
//
// Contract: compile() never throws on bad input (only std::bad_alloc) and works in time and
// memory linear in the script, bounded by `limits`. It checks the grammar, every command, test
// and tagged argument against what this implementation knows, and that each extension used was
// named in `require`. A failure is a diagnostic with the line and column (1-based) and a message
// meant for the script's owner: `line 4: unknown command "filein"`.
//
// Supported extensions: fileinto, reject, ereject, envelope, body, variables, relational,
// subaddress, copy, imap4flags, date, index, mailbox, vacation, vacation-seconds,
// encoded-character, comparator-i;octet, comparator-i;ascii-casemap, comparator-i;ascii-numeric.
//
// The syntax tree is public so tools can inspect scripts; it is immutable once compiled and may
// be shared between threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mailroom/core/result.hpp"
#include "mailroom/sieve/error.hpp"

namespace mailroom::sieve {

struct limits {
  // compile time
  std::size_t max_script_bytes = 1024 * 1024;
  std::size_t max_depth = 50;              ///< nested blocks plus nested tests
  std::size_t max_string_bytes = 64 * 1024;
  std::size_t max_list_items = 1024;       ///< strings in one string list
  std::size_t max_commands = 10000;        ///< commands plus tests in the script
  // run time
  std::size_t max_actions = 32;            ///< actions a run may produce (keep, fileinto, ...)
  std::size_t max_redirects = 10;
  std::size_t max_variables = 256;         ///< distinct variables (RFC 5229)
  std::size_t max_variable_bytes = 4096;   ///< a longer value is truncated, as RFC 5229 allows
  std::size_t max_match_work = 20'000'000; ///< character comparisons over a whole run
  std::size_t max_flags = 256;             ///< flags in one imap4flags variable
};

/// Why compile() or run() failed, for the script's owner.
struct diagnostic {
  std::error_code code;
  unsigned line = 0;    ///< 1-based; 0 when not tied to a place in the script
  unsigned column = 0;  ///< 1-based
  std::string message;  ///< without the position
  /// "line 4: unknown command \"filein\"" (or just the message when line is 0).
  std::string text() const;
};

/// Extensions, as bits of script::required.
enum class extension : std::uint32_t {
  fileinto = 1u << 0, reject = 1u << 1, ereject = 1u << 2, envelope = 1u << 3, body = 1u << 4,
  variables = 1u << 5, relational = 1u << 6, subaddress = 1u << 7, copy = 1u << 8,
  imap4flags = 1u << 9, date = 1u << 10, index = 1u << 11, mailbox = 1u << 12, vacation = 1u << 13,
  vacation_seconds = 1u << 14, encoded_character = 1u << 15, comparator_numeric = 1u << 16,
};

struct argument {
  enum class kind : std::uint8_t { tag, number, string, string_list };
  kind type = kind::string;
  std::string tag;                   ///< kind::tag: lower-case, with the colon (":contains")
  std::uint64_t number = 0;          ///< kind::number, quantifier applied
  std::vector<std::string> strings;  ///< kind::string (one) and kind::string_list
  unsigned line = 0, column = 0;
};

/// A command or a test after checking: tagged arguments by name, the rest in order.
struct node {
  std::string name;  ///< lower-case identifier
  unsigned line = 0, column = 0;
  std::vector<std::pair<std::string, argument>> tagged;  ///< ":tag" -> its value (kind::tag if none)
  std::vector<argument> positional;
  std::vector<node> tests;  ///< the test of if/elsif/not, the tests of allof/anyof
  std::vector<node> block;  ///< commands of if/elsif/else

  argument const* tag(std::string_view name) const noexcept;  ///< nullptr when not given
  bool has(std::string_view name) const noexcept { return tag(name) != nullptr; }
};

struct script {
  std::vector<node> commands;
  std::uint32_t required = 0;  ///< extension bits named in `require`
  bool uses(extension e) const noexcept { return (required & static_cast<std::uint32_t>(e)) != 0; }
};

/// Compiles a script. The result may be shared (shared_ptr to const) by concurrent runs.
expected<std::shared_ptr<script const>, diagnostic> compile(std::string_view text, limits const& lim = {});

}  // namespace mailroom::sieve
