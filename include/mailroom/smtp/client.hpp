// The outbound SMTP (RFC 5321) and LMTP (RFC 2033) client: one connection, one transaction at a
// time, for delivery to MX hosts, smarthosts and LMTP servers.
//
// Contract:
// - The caller connects (net::tcp_stream::connect) and hands the stream over; hello() greets,
//   negotiates STARTTLS and AUTH; send() runs transactions; reset() (RSET) goes between
//   transactions on a cached connection; quit() ends it. One operation at a time, from the
//   stream's executor; the client must outlive the operation, and so must the arguments.
// - The server's answers are values: a refusal (4xx: defer, 5xx: bounce) is a reply in the
//   result, never an error. Errors (result's error) are for I/O failures, deadlines
//   (net::errc::timeout), TLS failures (net::tls::errc), policy failures (smtp::errc::
//   starttls_unavailable, auth_unavailable, a SCRAM server that cannot prove itself:
//   sasl::errc::authentication_failed), hostile or broken servers (smtp::errc::malformed_reply,
//   reply_too_long, protocol_error). After an error the connection is not reused: ready() is
//   false, further operations fail with std::errc::not_connected, and quit() only closes.
//   An error after the end of the message data was sent means its fate is unknown (the caller
//   retries later, RFC 5321 6.1 accepts the duplicate risk).
// - Bounded memory whatever the server does: replies go through smtp::reply_parser (a 4096-octet
//   line, 1000 lines per reply), reads use a fixed 4 KiB buffer, the body is streamed (DATA in
//   writes of about 64 KiB, BDAT in chunks of about 128 KiB, each acknowledged before the next).
// - Every wait for a reply has the RFC 5321 4.5.3.2 deadline for that step, both per read and
//   for the whole reply (a server trickling a byte at a time cannot stretch it); writes have
//   the command deadline, message data the data block deadline.
// - Logging: the dialogue at trace level only (never AUTH payloads or the body); TLS and policy
//   outcomes at info/notice.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mailroom/core/address.hpp"
#include "mailroom/core/log.hpp"
#include "mailroom/core/result.hpp"
#include "mailroom/core/task.hpp"
#include "mailroom/net/stream.hpp"
#include "mailroom/net/tls/policy.hpp"
#include "mailroom/smtp/command.hpp"
#include "mailroom/smtp/reply.hpp"
#include "mailroom/smtp/reply_parser.hpp"
#include "mailroom/smtp/server.hpp"  // message_source

namespace mailroom::net::tls {
class client_context;
}

namespace mailroom::smtp {

/// STARTTLS use (net/tls/policy.hpp): none, opportunistic, required, verify.
using tls_policy = net::tls::policy;

struct client_options {
  std::string helo_name = "localhost";  ///< EHLO/HELO/LHLO argument: a domain or address literal
  bool lmtp = false;                    ///< LHLO, and one DATA reply per accepted recipient
  tls_policy tls = tls_policy::opportunistic;
  /// The TLS client context. Under `verify` it must verify (verify_mode::required); null means
  /// the system trust store. Under `opportunistic` and `required` null means a shared context
  /// that checks nothing; a context given is used as it is (a verifying one then verifies).
  std::shared_ptr<net::tls::client_context> tls_context;
  std::string tls_name;  ///< SNI and the name verified under tls_policy::verify (required there)
  /// user, password (smarthosts): SCRAM-SHA-256, PLAIN, LOGIN in that order of preference among
  /// those the server offers; only over TLS unless allow_plaintext_auth.
  std::optional<std::pair<std::string, std::string>> auth;
  bool allow_plaintext_auth = false;
  // RFC 5321 4.5.3.2 timeouts. The TLS handshake runs under command_timeout.
  std::chrono::seconds greeting_timeout{300};
  std::chrono::seconds command_timeout{300};    ///< EHLO, STARTTLS, AUTH, MAIL, RCPT, RSET replies; writes
  std::chrono::seconds data_init_timeout{120};  ///< the reply to DATA
  std::chrono::seconds data_block_timeout{180};  ///< each write of message data; each non-final BDAT reply
  std::chrono::seconds data_end_timeout{600};   ///< the reply(ies) after the final "." or BDAT LAST
  std::chrono::seconds quit_timeout{30};        ///< the reply to QUIT (then the connection is closed anyway)
  reply_limits limits;                          ///< reply line and line count caps
};

/// What the server's EHLO/LHLO reply offered (all false after a HELO fallback).
struct extensions {
  bool pipelining = false, size = false, eightbitmime = false, smtputf8 = false, chunking = false, dsn = false,
       starttls = false, enhancedstatuscodes = false, binarymime = false;
  std::uint64_t max_size = 0;     ///< SIZE's argument; 0 = no limit given
  std::vector<std::string> auth;  ///< mechanisms, upper-cased
};

/// One transaction.
struct outgoing {
  address from;
  /// As the message was received (pass-through): SIZE (sent when the server has SIZE), BODY
  /// (8BITMIME and 7BIT only when the server has 8BITMIME; BINARYMIME needs BINARYMIME and
  /// CHUNKING), SMTPUTF8, and RET, ENVID when the server has DSN. AUTH= is sent only after we
  /// authenticated.
  mail_params params;
  std::vector<std::pair<address, rcpt_params>> rcpts;  ///< NOTIFY/ORCPT sent when the server has DSN
  bool eight_bit = false;  ///< the body holds 8-bit octets (BODY=8BITMIME was declared or the caller knows)
};

struct transaction_result {
  /// Set when the transaction failed as a whole before any recipient: MAIL FROM refused, or
  /// refused locally without sending anything: 550 5.6.7 (SMTPUTF8 needed, not offered), 554 5.6.3
  /// (8-bit or binary body, not offered), 552 5.3.4 (declared SIZE over the server's limit, as the
  /// server would answer MAIL by RFC 1870), 553 5.1.7 (a sender address that cannot be sent).
  /// Every recipient fails with it; rcpt is then empty.
  std::optional<reply> mail;
  /// One per recipient, in order (a recipient address that cannot be sent gets a local 553 5.1.3).
  std::vector<reply> rcpt;
  /// SMTP: one reply for all accepted recipients; LMTP: one per accepted recipient in order (a
  /// BDAT chunk refused before the last: that reply for each). Empty when nothing was accepted or
  /// DATA was refused (then data_refused).
  std::vector<reply> data;
  std::optional<reply> data_refused;
};

class client {
 public:
  client(std::unique_ptr<net::stream> s, client_options opts, log::logger logger = {});
  ~client();
  client(client&&) noexcept;
  client& operator=(client&&) noexcept;

  /// Greeting, EHLO (HELO after a 5xx to EHLO; never for LMTP), STARTTLS per policy (EHLO
  /// again), AUTH. nullopt when ready; a reply when the server refused (greeting 554, EHLO,
  /// STARTTLS, AUTH...): the caller defers on 4xx and may bounce on 5xx, and calls quit(). An
  /// error as described at the top. Call once.
  task<result<std::optional<reply>>> hello();

  extensions const& ext() const noexcept;
  bool tls() const noexcept;
  /// True when a transaction may start: hello() succeeded and no error, 421 or quit() since.
  bool ready() const noexcept;

  /// One transaction: MAIL, RCPT..., then DATA (dot-stuffed; CRLF line ends whatever the source
  /// holds: bare LF and bare CR become CRLF, a final line end is added if missing) or BDAT chunks
  /// when CHUNKING is offered (the same line ends; a BINARYMIME body goes unchanged). With
  /// PIPELINING, MAIL, the RCPTs and DATA go in one write (RFC 2920) and replies are matched in
  /// order. Nothing is sent automatically afterwards: call reset() before another transaction
  /// when the last one did not end with the message's final reply(ies). A failure of the body
  /// source aborts the connection without ending the message. Needs at least one recipient
  /// (mailroom::errc::invalid_argument otherwise).
  task<result<transaction_result>> send(outgoing const& tx, message_source& body);

  /// RSET. A refusal is smtp::errc::protocol_error (the connection is no longer trusted).
  task<result<void>> reset();

  /// QUIT, waits up to quit_timeout for its reply, then closes; never fails.
  task<void> quit();

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace mailroom::smtp
