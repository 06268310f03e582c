// The inbound MTA path: SMTP or LMTP sessions feeding any delivery_target (normally the queue),
// with the relay policy applied to each recipient and a Received: header (RFC 5321 4.4) added.
//
// Filters: see filter/filter.hpp; their headers (Authentication-Results first) go right below
// our Received: line, a quarantine verdict asks the target to hold() the message.
//
// Contract: 250 after DATA means the target's commit() returned, so the message is as durable as
// the target makes it (the spool: fsynced). A target that refuses to start or fails to store
// answers 452 4.3.1 when it is out of space (ENOSPC, EDQUOT) and 451 4.3.0 for any other error,
// at MAIL (start) or after DATA (body, commit): try again later; nothing is half-accepted.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <memory>
#include <string>

#include "mailroom/core/log.hpp"
#include "mailroom/delivery/target.hpp"
#include "mailroom/filter/filter.hpp"
#include "mailroom/mta/relay_policy.hpp"
#include "mailroom/smtp/server.hpp"

namespace mailroom::mta {

struct inbound_options {
  std::shared_ptr<delivery::delivery_target> target;
  std::shared_ptr<relay_policy const> relay;  ///< null: every recipient is accepted
  /// Checked after the relay policy for recipients in local domains (does the user exist, is
  /// the mailbox full for a message of the SIZE= the client announced, 0 if none); nullopt
  /// accepts. Empty: no check.
  std::function<task<std::optional<smtp::reply>>(address const&, std::uint64_t size_hint)> local_recipient_check;
  std::string hostname = "localhost";         ///< in the Received: line and Authentication-Results
  bool add_received = true;
  /// The filter chain (filter/filter.hpp), asked at connect, HELO, MAIL, RCPT (after the relay
  /// policy and the recipient check) and for the message before the target commits it.
  std::vector<filter::chain_entry> filters;
};

class inbound final : public smtp::backend {
 public:
  explicit inbound(inbound_options opts, log::logger logger = {});
  task<expected<std::unique_ptr<smtp::session_handler>, smtp::reply>> new_session(smtp::session_info const& info) override;

 private:
  inbound_options opts_;
  log::logger log_;
};

/// A target's failure to store as a reply: 452 4.3.1 for ENOSPC/EDQUOT, else 451 4.3.0.
smtp::reply storage_error_reply(std::error_code const& ec);

/// "ESMTPSA" and friends (RFC 3848), from what the session negotiated.
std::string protocol_name(smtp::session_info const& info);

/// A Received: header field, folded, ending in CRLF.
std::string received_header(smtp::session_info const& info, std::string_view by_host, std::string_view protocol,
                            std::string_view id, std::chrono::system_clock::time_point when);

/// RFC 5322 date-time in UTC: "Mon, 23 Nov 2026 13:55:02 +0000".
std::string rfc5322_date(std::chrono::system_clock::time_point when);

}  // namespace mailroom::mta
