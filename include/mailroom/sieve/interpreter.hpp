// Runs a compiled Sieve script (script.hpp) against one message for one recipient and returns the
// actions to perform. No I/O: the message is a string, the mailbox check and the vacation store
// are callbacks, and the caller performs (and, for vacation, sends) the actions.
//
// Contract:
// - run() is deterministic for the same inputs and bounded by script.hpp's limits (actions,
//   redirects, variables, total matching work); wildcard matching is at most |value| x |pattern|.
// - Header values are unfolded and RFC 2047-decoded before header/date tests compare them
//   (RFC 5228 2.7.2); the address test reads addresses with mime::parse_address_list. The body
//   test decodes transfer encodings and text/* charsets to UTF-8 (RFC 5173), except :raw.
// - The actions come out in script order, duplicates removed (fileinto/keep to the same mailbox,
//   redirect to the same address, local part compared exactly); an implicit keep still in force
//   comes last, marked implicit. discard_action appears once if discard ran; it needs no work.
// - No exceptions but std::bad_alloc; the script may be run by several threads at once.
// - On a runtime error (a limit crossed, conflicting actions such as reject with fileinto, an
//   invalid redirect address built from variables), the result holds the diagnostic and exactly
//   one action, the implicit keep, as RFC 5228 section 2.10.6 asks.
// - Vacation (RFC 5230) follows the RFC's rules before it emits anything: no reply to an empty or
//   automated sender (MAILER-DAEMON, postmaster, owner-*, *-request, *-bounces*, LISTSERV,
//   majordomo), to messages with Auto-Submitted other than "no", Precedence bulk/list/junk or any
//   List-* field, to the user's own addresses, or when none of the user's addresses is in To/Cc/Bcc/Resent-To/Resent-Cc/
//   Resent-Bcc; and none when the store saw the same handle and sender within :days/:seconds.
//   A run that emits a vacation action records it in the store (so retries are not answered
//   twice). The caller builds the reply (RFC 3834: Auto-Submitted: auto-replied, In-Reply-To,
//   References, sent with a null MAIL FROM) from the vacation_action.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "mailroom/sieve/script.hpp"

namespace mailroom::sieve {

class vacation_store;

/// What a script sees of one delivery.
struct environment {
  std::string_view message;          ///< the whole message, header and body (CRLF or LF line ends)
  std::string envelope_from;         ///< MAIL FROM without <>, empty for the null sender
  std::string envelope_to;           ///< RCPT TO of this recipient, without <>
  std::string original_recipient;    ///< ORCPT if known, else empty (envelope "to" uses envelope_to)
  std::vector<std::string> user_addresses;  ///< other addresses of the user (vacation's own-address rules)
  std::int64_t now = 0;              ///< seconds since 1970 UTC (currentdate, vacation)
  int local_zone = 0;                ///< minutes east of UTC for date tests without :zone
  /// Whether the user's mailbox exists (mailboxexists, and the caller's own business for
  /// fileinto); nullptr means no mailbox but INBOX exists.
  std::function<bool(std::string_view)> mailbox_exists;
  vacation_store* vacation = nullptr;  ///< nullptr: vacation never replies
};

struct keep_action {
  std::vector<std::string> flags;  ///< imap4flags, empty when none
  bool implicit = false;
};
struct fileinto_action {
  std::string mailbox;
  std::vector<std::string> flags;
  bool copy = false;    ///< :copy (the implicit keep was not cancelled)
  bool create = false;  ///< :create (RFC 5490): create the mailbox if missing
};
struct redirect_action {
  std::string address;
  bool copy = false;
};
struct reject_action {
  std::string reason;
  bool extended = false;  ///< ereject: refuse at the SMTP/LMTP level if still possible
};
struct discard_action {};  ///< discard ran: nothing to do but log it (the implicit keep is cancelled)
struct vacation_action {
  std::string to;         ///< the envelope sender to answer
  std::string from;       ///< :from, or empty for the recipient's address
  std::string subject;    ///< :subject, or "Auto: " + the original subject
  std::string reason;     ///< the text (or a MIME entity when mime is set)
  bool mime = false;
  std::string in_reply_to;  ///< the original Message-ID, empty when none
  std::string references;   ///< the original References plus its Message-ID
  std::string handle;       ///< as tracked in the vacation store
  std::int64_t period = 0;  ///< seconds: :seconds, or :days (default 7) x 86400; at most 365 days
};

using action = std::variant<keep_action, fileinto_action, redirect_action, reject_action, discard_action, vacation_action>;

struct run_result {
  std::vector<action> actions;
  std::optional<diagnostic> error;  ///< set when the run failed and fell back to implicit keep
};

run_result run(script const& s, environment const& env, limits const& lim = {});

/// One line per action in a stable form, for logs and tests: `keep`, `implicit keep`,
/// `keep :flags "\\Seen"`, `fileinto "Junk"`, `fileinto :copy "A"`, `redirect "a@b"`,
/// `reject "text"`, `ereject "text"`, `discard`, `vacation to "a@b" subject "..." period N "text"`.
std::string describe(action const& a);

}  // namespace mailroom::sieve
