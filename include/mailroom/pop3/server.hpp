// A POP3 server (RFC 1939, RFC 2449 CAPA/RESP-CODES/PIPELINING, RFC 5034 SASL, RFC 2595 STLS)
// over a message_store: each session sees its INBOX as it was at login.
//
// Contracts: USER/PASS and AUTH only over TLS unless the listener allows plaintext; APOP is
// not offered. Messages are numbered from 1 as of login; UIDL is "%08X%08X" of UID and
// UIDVALIDITY (Dovecot's default format), stable across restarts. DELE takes effect only at
// QUIT (then messages retrieved are also marked \Seen); a dropped connection changes nothing.
// Sizes are the stored octets (CRLF lines). Every read has a deadline (10 minutes by default,
// RFC 1939's autologout timer); commands are capped at max_line, SASL lines at 12288 octets.
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
#include "mailroom/net/stream.hpp"
#include "mailroom/net/server_core.hpp"
#include "mailroom/net/tls/context.hpp"
#include "mailroom/store/store.hpp"

namespace mailroom::pop3 {

struct server_options {
  std::string hostname = "localhost";
  std::shared_ptr<store::message_store> store;
  std::shared_ptr<auth::backend> auth;
  std::shared_ptr<net::tls::server_context> tls;  ///< enables STLS and implicit-TLS listeners
  /// The store account of an authenticated user (default: the user name as given).
  std::function<std::string(auth::identity const&)> account_for;
  std::vector<std::string> auth_mechanisms = {"SCRAM-SHA-256", "PLAIN"};
  std::size_t max_line = 1024;
  std::size_t max_connections = 1000;
  std::size_t max_bad_commands = 10;   ///< then -ERR and disconnect
  std::size_t max_auth_failures = 3;
  std::chrono::milliseconds command_timeout{std::chrono::minutes(10)};
  std::chrono::milliseconds tls_handshake_timeout{std::chrono::seconds(30)};
  std::shared_ptr<auth::throttle> auth_throttle;  ///< null: the server makes its own
};

using listener_options = net::reader_listener_options;  ///< implicit_tls: port 995

class server {
 public:
  server(executor ex, server_options opts, log::logger logger = {});
  ~server();
  server(server const&) = delete;
  server& operator=(server const&) = delete;

  result<asio::ip::tcp::endpoint> listen(listener_options const& opts);
  /// Ends sessions: idle ones at once, busy ones after their command, all after `grace`.
  task<void> shutdown(std::chrono::milliseconds grace = std::chrono::seconds(10));
  std::size_t active_sessions() const noexcept;

  struct impl;

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace mailroom::pop3
