// An IMAP4rev2/IMAP4rev1 server (RFC 9051, RFC 3501) over a message_store.
//
// Done: CAPABILITY, NOOP, LOGOUT, STARTTLS, LOGIN, AUTHENTICATE (PLAIN, SCRAM-SHA-256, SASL-IR),
// ENABLE (IMAP4rev2, UTF8=ACCEPT), ID, SELECT/EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE,
// UNSUBSCRIBE, LIST (patterns, child and SPECIAL-USE attributes), LSUB, NAMESPACE, STATUS,
// APPEND (APPENDUID, APPENDLIMIT), IDLE, CHECK, CLOSE, UNSELECT, EXPUNGE, SEARCH (flags, sizes,
// dates, sequence and UID sets, header and text substrings, NOT/OR/lists), FETCH (FLAGS, UID,
// INTERNALDATE, RFC822.SIZE, RFC822*, ENVELOPE, BODY, BODYSTRUCTURE, BODY[section]<partial>
// and BODY.PEEK with MIME part numbers, HEADER.FIELDS[.NOT], MIME, TEXT), STORE, COPY, MOVE,
// UID variants, UIDPLUS, CONDSTORE (HIGHESTMODSEQ, FETCH MODSEQ/CHANGEDSINCE, STORE
// UNCHANGEDSINCE with [MODIFIED], SEARCH MODSEQ, STATUS HIGHESTMODSEQ), QUOTA (one root ""
// per account, STORAGE and MESSAGE; SETQUOTA refused).
// Not yet: QRESYNC, SEARCH RETURN options, SORT, THREAD, ACL, LIST-EXTENDED selection options,
// BINARY (answered BAD or ignored as documented per command).
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
