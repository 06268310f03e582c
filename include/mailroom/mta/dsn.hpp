// Delivery status notifications (RFC 3464, RFC 3461, RFC 6522; RFC 6533 for UTF-8 addresses),
// built as complete RFC 5322 messages, sans-I/O.
//
// Contract: make_dsn() returns a whole message whose lines all end in CRLF and are at most 998
// octets, whatever the inputs hold: text from remote replies, error texts, ENVID and ORCPT are
// stripped of control characters (CR, LF, NUL, ...), long values are folded, and only valid UTF-8
// passes (and only where UTF-8 may stand; elsewhere non-ASCII bytes become '?'). The message is
// multipart/report; report-type=delivery-status with three parts:
//   1. text/plain: for each recipient what happened and why, for a person to read;
//   2. message/delivery-status: the per-message fields (Reporting-MTA, Original-Envelope-Id when
//      an ENVID was given, Arrival-Date) and one block per recipient (Original-Recipient when an
//      ORCPT was given, Final-Recipient, Action, Status, Remote-MTA, Diagnostic-Code,
//      Last-Attempt-Date, Will-Retry-Until for delays);
//   3. the original message: message/rfc822 (whole) when some recipient failed, RET is not HDRS and
//      the original is at most max_returned octets; else text/rfc822-headers (its header only:
//      RET applies to failure reports, RFC 3461 4.3, so delay and success reports carry headers).
// The returned original keeps its bytes except that line ends become CRLF, longer lines are
// broken at 998 octets (in its header as folding) and NUL becomes a space, so the report is
// valid 8bit MIME.
// A report is "global" (RFC 6533: message/global-delivery-status, message/global or
// message/global-headers, utf-8 address type) when the original was sent with SMTPUTF8 or an
// address in the report is not ASCII; then it must travel with SMTPUTF8 (dsn_mail_params).
// The DSN's own envelope sender is the null path <> (RFC 3461 6.2; never bounce a bounce).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailroom/core/address.hpp"
#include "mailroom/smtp/command.hpp"
#include "mailroom/smtp/reply.hpp"

namespace mailroom::mta {

enum class dsn_action : std::uint8_t { failed, delayed, delivered, relayed, expanded };
std::string_view to_string(dsn_action a) noexcept;

using dsn_status = std::array<std::uint8_t, 3>;  ///< {5,1,1}; {0,0,0} = none

struct dsn_recipient {
  address addr;                       ///< Final-Recipient
  smtp::rcpt_params params;           ///< ORCPT (xtext-decoded) gives Original-Recipient
  dsn_action action = dsn_action::failed;
  std::optional<smtp::reply> reply;   ///< the peer's reply: Diagnostic-Code: smtp; and the status
  std::string error;                  ///< our own explanation (no reply, expiry, loop); the text part
                                      ///< shows it, Diagnostic-Code too when there is no reply
  dsn_status status{0, 0, 0};         ///< overrides the status taken from the reply (4.4.7, 5.4.6)
  std::string remote_mta;             ///< Remote-MTA: dns; host — empty when unknown
  std::chrono::system_clock::time_point last_attempt{};      ///< epoch: no Last-Attempt-Date
  std::chrono::system_clock::time_point will_retry_until{};  ///< delayed only; epoch: none
};

struct dsn_report {
  std::string reporting_mta = "localhost";  ///< our host name: Reporting-MTA, From:, Message-ID
  address sender;                           ///< the original envelope sender: To: of the report
  std::string envid;                        ///< ENVID, xtext-decoded; echoed xtext-encoded
  smtp::dsn_ret ret = smtp::dsn_ret::unspecified;
  bool smtputf8 = false;                    ///< the original was sent with SMTPUTF8
  std::string queue_id;                     ///< the original's queue id (text part), may be empty
  std::chrono::system_clock::time_point arrival{};  ///< epoch: no Arrival-Date
  std::chrono::system_clock::time_point now = std::chrono::system_clock::now();  ///< Date:
  std::vector<dsn_recipient> recipients;
  std::size_t max_returned = 100 * 1024;    ///< a larger original is returned as headers only
  std::string message_id;                   ///< "<...>"; empty: a unique one is made
};

/// The status a reply gives: its enhanced code when that is of the reply's class, else x.0.0.
dsn_status status_of(smtp::reply const& r) noexcept;
/// The Status field of a recipient: its explicit status, else from its reply, else from its
/// action (failed 5.0.0, delayed 4.0.0, others 2.0.0).
dsn_status status_of(dsn_recipient const& r) noexcept;

/// Whether the report needs RFC 6533's global types (and so SMTPUTF8 to travel).
bool is_global(dsn_report const& r) noexcept;

/// The report as a message (see the contract above); `original` is the message as queued.
std::string make_dsn(dsn_report const& r, std::string_view original);

/// The envelope parameters to send a report with: SMTPUTF8 when it is global, BODY=8BITMIME
/// when it holds 8-bit octets, SIZE; no RET or ENVID (a DSN asks for no DSN).
smtp::mail_params dsn_mail_params(dsn_report const& r, std::string_view dsn);

}  // namespace mailroom::mta
