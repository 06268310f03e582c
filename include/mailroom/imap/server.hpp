// An IMAP4rev2/IMAP4rev1 server (RFC 9051, RFC 3501) over a message_store.
//
// Done: CAPABILITY, NOOP, LOGOUT, STARTTLS, LOGIN, AUTHENTICATE (PLAIN, SCRAM-SHA-256, SASL-IR),
// ENABLE (IMAP4rev2, UTF8=ACCEPT, CONDSTORE, QRESYNC), ID, SELECT/EXAMINE, CREATE (USE),
// DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST (LIST-EXTENDED selection SUBSCRIBED,
// RECURSIVEMATCH, SPECIAL-USE, REMOTE; return SUBSCRIBED, CHILDREN, SPECIAL-USE, STATUS), LSUB,
// NAMESPACE, STATUS, APPEND (APPENDUID, APPENDLIMIT, literal8), IDLE, CHECK, CLOSE, UNSELECT,
// EXPUNGE, SEARCH (full RFC 9051 keys; ESEARCH with RETURN MIN/MAX/ALL/COUNT/SAVE and SEARCHRES
// "$"), FETCH (FLAGS, UID, INTERNALDATE, RFC822.SIZE, RFC822*, ENVELOPE, BODY, BODYSTRUCTURE,
// BODY[section]<partial>, BODY.PEEK, BINARY[part]<partial>, BINARY.PEEK, BINARY.SIZE), STORE,
// COPY, MOVE, UID variants, UIDPLUS, CONDSTORE and QRESYNC (VANISHED, SELECT (QRESYNC ...),
// UID FETCH (CHANGEDSINCE n VANISHED), [CLOSED]), SORT (with DISPLAY keys) and THREAD
// (ORDEREDSUBJECT, REFERENCES), QUOTA (one root "" per account; SETQUOTA refused), ACL
// (RFC 4314: GETACL, SETACL, DELETEACL, LISTRIGHTS, MYRIGHTS; RIGHTS=texk).
//
// Shared mailboxes: another user's mailbox that this user holds rights on is "Shared/<owner>/
// <name>" (NAMESPACE's other-users namespace); every command checks the RFC 4314 right it needs
// (flags the user may not change are silently left alone; FLAGS replacement then needs s, t and
// w). ACL identifiers are mapped through account_for like logins. COPY/MOVE between accounts
// reads and appends message by message (not atomic). Subscriptions to shared mailboxes are
// refused. QRESYNC's VANISHED (EARLIER) lists every known UID that is gone: expunges are not
// kept with a MODSEQ.
//
// Contracts: LOGIN and AUTHENTICATE only over TLS unless the listener allows plaintext; every
// read has a deadline (30 minutes, RFC 9051 5.4); commands are read by imap::parser with its
// limits; 3 bad commands before login end the session; a session sees other sessions' and
// deliveries' changes at NOOP, CHECK, IDLE and after commands other than FETCH, STORE and
// SEARCH (which never report expunges, RFC 9051 7.5.1).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <asio/ip/tcp.hpp>

#include "mailroom/auth/backend.hpp"
#include "mailroom/auth/throttle.hpp"
#include "mailroom/core/log.hpp"
#include "mailroom/core/result.hpp"
#include "mailroom/core/task.hpp"
#include "mailroom/imap/parser.hpp"
#include "mailroom/net/server_core.hpp"
#include "mailroom/net/tls/context.hpp"
#include "mailroom/store/store.hpp"

namespace mailroom::imap {

struct server_options {
  std::string hostname = "localhost";
  std::shared_ptr<store::message_store> store;
  std::shared_ptr<auth::backend> auth;
  std::shared_ptr<net::tls::server_context> tls;  ///< enables STARTTLS and implicit-TLS listeners
  /// The store account of an authenticated user (default: the user name as given).
  std::function<std::string(auth::identity const&)> account_for;
  std::vector<std::string> auth_mechanisms = {"SCRAM-SHA-256", "PLAIN"};
  parser_limits limits;                 ///< line, literal, APPEND size, nesting
  std::size_t max_connections = 10000;
  std::size_t max_bad_before_login = 3;
  std::size_t max_bad_commands = 20;
  std::size_t max_auth_failures = 3;
  std::chrono::milliseconds command_timeout{std::chrono::minutes(30)};
  std::chrono::milliseconds login_timeout{std::chrono::minutes(1)};  ///< before authentication
  std::chrono::milliseconds tls_handshake_timeout{std::chrono::seconds(30)};
  std::shared_ptr<auth::throttle> auth_throttle;  ///< null: the server makes its own
};

using listener_options = net::reader_listener_options;  ///< implicit_tls: port 993

class server {
 public:
  server(executor ex, server_options opts, log::logger logger = {});
  ~server();
  server(server const&) = delete;
  server& operator=(server const&) = delete;

  result<asio::ip::tcp::endpoint> listen(listener_options const& opts);
  /// Ends sessions: idle ones at once (* BYE), busy ones after their command, all after `grace`.
  task<void> shutdown(std::chrono::milliseconds grace = std::chrono::seconds(10));
  std::size_t active_sessions() const noexcept;

  struct impl;

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace mailroom::imap
