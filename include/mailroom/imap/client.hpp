// The IMAP4rev2/rev1 client of the mail retrieval agent (mra::imap_fetcher): log in, select a
// mailbox, list messages by UID, fetch and remove them, wait for new mail with IDLE.
//
// Contract:
// - The caller connects (net::tcp_stream::connect) and hands the stream over; login() first,
//   then select(), then list_from/fetch/remove/idle in any order; logout() ends. One operation
//   at a time, from the stream's executor; the client must outlive each operation.
// - Errors (result's error): I/O failures and deadlines (net::errc::timeout; every read has
//   client_options::timeout, IDLE its own bound), TLS failures (net::tls::errc), policy
//   failures (imap::errc::starttls_unavailable, auth_unavailable, a SCRAM server that cannot prove
//   itself: sasl::errc::authentication_failed), refusals (login_refused, command_failed; the
//   server's line in last_response()), hostile or broken servers (imap::errc::malformed_response,
//   line_too_long, literal_too_large, nesting_too_deep, response_too_large, protocol_error),
//   server_closed after a BYE. After an I/O, TLS or protocol error the connection is given up:
//   further operations fail with std::errc::not_connected. Refusals (NO) and too_large /
//   no_such_message leave the connection usable.
// - Bounded memory whatever the server does: responses go through imap::response_parser
//   (max_line, max_literal, nesting 64); a message body is streamed into the result and never
//   held beyond max_size (a larger one is skipped on the wire); list_from holds one entry per
//   message (at most 10 million).
// - TLS: implicit_tls wraps the stream before the greeting; otherwise STARTTLS per `tls`
//   (net::tls::policy). The context: tls_context when set; else a shared one that verifies
//   against the system trust store under policy::verify (also with implicit_tls), and checks
//   nothing otherwise. After STARTTLS, plaintext the server sent with its OK is discarded and
//   CAPABILITY is asked again.
// - Login: AUTHENTICATE SCRAM-SHA-256, else PLAIN (with SASL-IR when offered), when CAPABILITY
//   lists them (PLAIN also after a refused SCRAM: a server may hold no SCRAM secret for the
//   user); else LOGIN (quoted strings: credentials with CR, LF, NUL or 8-bit octets cannot
//   go that way: auth_unavailable), never under LOGINDISABLED. Never without TLS unless
//   allow_plaintext_auth. A PREAUTH greeting skips it.
// - Logging: commands at trace level (never credentials or SASL payloads), responses at trace
//   (never literal contents), TLS and policy outcomes at info/notice.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mailroom/core/log.hpp"
#include "mailroom/core/result.hpp"
#include "mailroom/core/task.hpp"
#include "mailroom/imap/error.hpp"
#include "mailroom/net/stream.hpp"
#include "mailroom/net/tls/policy.hpp"

namespace mailroom::net::tls {
class client_context;
}

namespace mailroom::imap {

struct client_options {
  net::tls::policy tls = net::tls::policy::required;      ///< STARTTLS use; ignored with implicit_tls
  bool implicit_tls = false;                              ///< port 993
  std::shared_ptr<net::tls::client_context> tls_context;  ///< null: as smtp::client does
  std::string tls_name;                                   ///< SNI; the name verified under policy::verify
  std::string user, password;
  bool allow_plaintext_auth = false;
  std::chrono::seconds timeout{120};                      ///< every read and write (IDLE has its own bound)
  std::size_t max_line = 65536;                           ///< response line outside literals
  std::uint64_t max_literal = 64 * 1024 * 1024;           ///< largest literal accepted (message bodies)
};

struct mailbox_state {
  std::uint32_t uidvalidity = 0;
  std::uint32_t uidnext = 0;  ///< 0 when the server did not say
  std::uint32_t exists = 0;
};

struct message_ref {
  std::uint32_t uid = 0;
  std::uint64_t size = 0;
};

class client {
 public:
  client(std::unique_ptr<net::stream> s, client_options opts, log::logger logger = {});
  ~client();
  client(client&&) noexcept;
  client& operator=(client&&) noexcept;

  /// Greeting (PREAUTH accepted), CAPABILITY, STARTTLS per policy, authentication. Call once.
  task<result<void>> login();

  /// SELECT (EXAMINE when read_only) a mailbox named in UTF-8 (sent in modified UTF-7).
  /// A refusal: errc::command_failed.
  task<result<mailbox_state>> select(std::string mailbox, bool read_only);

  /// UID and RFC822.SIZE of the messages with UID >= first_uid, in the server's order (UID FETCH
  /// first:*; the last message that "n:*" returns even when its UID < n is filtered out).
  /// An empty mailbox: an empty result, nothing sent.
  task<result<std::vector<message_ref>>> list_from(std::uint32_t first_uid);

  /// UID FETCH uid BODY.PEEK[]: the message octets exactly. Larger than max_size: errc::too_large
  /// (the body is skipped, never buffered). Not there (vanished meanwhile): errc::no_such_message.
  task<result<std::string>> fetch(std::uint32_t uid, std::uint64_t max_size);

  /// UID STORE uids +FLAGS.SILENT (\Deleted), then UID EXPUNGE uids with UIDPLUS, else EXPUNGE.
  /// An empty list: nothing sent.
  task<result<void>> remove(std::vector<std::uint32_t> uids);

  /// IDLE (RFC 2177) until the server reports EXISTS or RECENT (true: new mail may be there) or
  /// `max` passes (false), then DONE. Without the IDLE capability: errc::unsupported.
  task<result<bool>> idle(std::chrono::seconds max);

  /// LOGOUT, waits up to `timeout` for its reply, then closes; never fails.
  task<void> logout();

  /// Closes the connection at once, without LOGOUT: a pending operation (an idle() waiting for
  /// mail) fails with errc::cancelled. Called from the client's executor, when shutting down.
  void close() noexcept;

  /// The server's last tagged response (or greeting, or BYE) line, for logs and error reports.
  std::string const& last_response() const noexcept;
  /// True once TLS protects the connection (implicit or STARTTLS).
  bool tls() const noexcept;
  /// The mailbox state as last reported (EXISTS tracks untagged EXISTS/EXPUNGE).
  mailbox_state const& state() const noexcept;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace mailroom::imap
