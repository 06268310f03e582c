// An embeddable SMTP server (RFC 5321) for inbound MX, submission and appliances.
//
// The embedder supplies a `backend` that makes one `session_handler` per connection; every hook
// of the handler is optional and returns the reply to send as a value. The server owns the
// protocol: limits, pipelining, STARTTLS, AUTH, DATA/BDAT framing and size enforcement; a handler
// only says yes or no and consumes message bodies.
//
// Threading: a server and its sessions live on one executor (one thread). To use several cores,
// run one server per thread, each listening on the same port with reuse_port.
//
// Durability: the server sends the handler's reply to DATA as is. A handler that answers 250
// must have made the message durable first (see delivery targets and the queue).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <asio/ip/tcp.hpp>

#include "mailroom/auth/backend.hpp"
#include "mailroom/auth/throttle.hpp"
#include "mailroom/core/address.hpp"
#include "mailroom/core/log.hpp"
#include "mailroom/core/result.hpp"
#include "mailroom/core/task.hpp"
#include "mailroom/net/stream.hpp"
#include "mailroom/smtp/command.hpp"
#include "mailroom/smtp/data_decoder.hpp"
#include "mailroom/smtp/reply.hpp"

namespace mailroom::net::tls {
class server_context;
}

namespace mailroom::smtp {

enum class protocol : std::uint8_t {
  smtp,  ///< RFC 5321 (HELO/EHLO)
  lmtp,  ///< RFC 2033 (LHLO, a reply per recipient after the message)
};

/// What a session knows about its client; kept current by the server (helo, tls, auth change).
struct session_info {
  std::string id;  ///< unique per connection, used in logs and queue ids
  asio::ip::tcp::endpoint remote;
  asio::ip::tcp::endpoint local;
  protocol proto = protocol::smtp;
  std::string helo;           ///< argument of the last HELO/EHLO/LHLO
  bool esmtp = false;         ///< EHLO rather than HELO
  std::optional<net::tls_details> tls;
  std::optional<auth::identity> auth;
};

/// A message body as it arrives: CRLF line ends, dot-stuffing removed, size limit enforced.
class message_source {
 public:
  virtual ~message_source() = default;
  /// The next piece of the message, valid until the next call; empty at the end. Fails with
  /// smtp::errc::message_too_big, bare_newline (reject policy), transaction_aborted, or a net error.
  virtual task<result<std::span<char const>>> read() = 0;
  /// Bytes handed out so far.
  virtual std::uint64_t size() const noexcept = 0;
};

/// Reads the whole message into memory (for handlers that want it; bounded by the size limit).
task<result<std::string>> read_all(message_source& src);

/// A message already in memory, handed out as `prefix` (e.g. trace fields; owned) and then
/// `content` (not owned: it must outlive the source), each in one piece.
class memory_source final : public message_source {
 public:
  explicit memory_source(std::string_view content, std::string prefix = {})
      : prefix_(std::move(prefix)), content_(content) {}
  task<result<std::span<char const>>> read() override;
  std::uint64_t size() const noexcept override { return handed_out_; }

 private:
  std::string prefix_;
  std::string_view content_;
  int step_ = 0;
  std::uint64_t handed_out_ = 0;
};

/// Per-connection hooks. Defaults accept everything except DATA, which the embedder must handle.
class session_handler {
 public:
  virtual ~session_handler() = default;
  virtual task<reply> on_helo(std::string_view domain);
  /// After a TLS handshake (STARTTLS or implicit TLS); a negative reply is sent and the session
  /// closed (e.g. a policy on protocol version or client certificate).
  virtual task<reply> on_tls(net::tls_details const& tls);
  /// After a successful AUTH; a negative reply turns it into a failure.
  virtual task<reply> on_auth(auth::identity const& who);
  virtual task<reply> on_mail(address const& from, mail_params const& params);
  virtual task<reply> on_rcpt(address const& to, rcpt_params const& params);
  /// The message body, streamed. The reply is sent after the whole message has arrived; if the
  /// source fails (too big, bare newline, aborted) the server sends its own reply instead.
  virtual task<reply> on_data(message_source& body) = 0;
  /// LMTP (RFC 2033): one reply per accepted recipient, in RCPT order. The default gives every
  /// recipient on_data's reply; a delivering LMTP server overrides this. A result of the wrong
  /// length is a bug and turns into 451 for every recipient.
  virtual task<std::vector<reply>> on_data_per_recipient(message_source& body, std::size_t recipients);
  /// VRFY, when enabled in the options.
  virtual task<reply> on_vrfy(std::string_view arg);
  /// The transaction ended (RSET, new EHLO, STARTTLS, after DATA, on close).
  virtual void on_reset() {}
  virtual void on_close() {}
};

/// Makes a handler per connection, or refuses the connection with a reply (e.g. 554 by IP).
class backend {
 public:
  virtual ~backend() = default;
  virtual task<expected<std::unique_ptr<session_handler>, reply>> new_session(session_info const& info) = 0;
};

struct server_options {
  std::string hostname = "localhost";  ///< in the greeting, EHLO reply and Received lines
  std::string greeting_text = "ESMTP mailroom";
  std::size_t max_line = 2048;         ///< command line, without CRLF (AUTH lines: up to 12288)
  std::uint64_t max_message_size = 10 * 1024 * 1024;  ///< advertised with SIZE, enforced while reading; 0 = none
  std::size_t max_recipients = 1000;
  std::size_t max_errors = 20;         ///< protocol errors before 421 and disconnect
  std::size_t max_connections = 1000;  ///< per server; more are greeted with 421
  std::chrono::milliseconds command_timeout{std::chrono::seconds(300)};  ///< per read and per whole command line
  std::chrono::milliseconds data_timeout{std::chrono::seconds(300)};  ///< per read inside DATA/BDAT
  std::chrono::milliseconds tls_handshake_timeout{std::chrono::seconds(30)};  ///< whole handshake
  /// Wait this long before greeting and reject clients that talk first (0 = greet at once).
  std::chrono::milliseconds greet_delay{0};
  /// Failed AUTH answers are delayed per client IP, growing with each failure (auth::throttle).
  /// Null: the server makes its own with the defaults; share one between per-thread servers.
  std::shared_ptr<auth::throttle> auth_throttle;
  std::size_t max_auth_failures = 3;   ///< per session, then 421 and disconnect
  /// Bare LF/CR inside DATA: normalize (the Postfix 3.9 default: real clients such as scripts
  /// handing bytes with LF line ends still get through) or reject with 550. Either way only
  /// CRLF.CRLF ends a message, so neither allows smuggling.
  bare_policy bare_newlines = bare_policy::normalize;
  bool pipelining = true;
  bool chunking = true;
  bool eight_bit_mime = true;
  bool smtputf8 = true;
  bool dsn = true;
  bool vrfy = false;
  std::shared_ptr<net::tls::server_context> tls;  ///< enables STARTTLS and implicit TLS listeners
  std::shared_ptr<auth::backend> auth;            ///< enables AUTH
  std::vector<std::string> auth_mechanisms = {"SCRAM-SHA-256", "PLAIN", "LOGIN"};
};

enum class security : std::uint8_t {
  plain,              ///< STARTTLS offered when a TLS context is set
  implicit_tls,       ///< TLS from the first byte (port 465)
  starttls_required,  ///< MAIL refused until STARTTLS
};

struct listener_options {
  asio::ip::tcp::endpoint endpoint;
  protocol proto = protocol::smtp;
  security mode = security::plain;
  bool allow_plaintext_auth = false;  ///< AUTH without TLS (LAN appliances)
  bool require_auth = false;          ///< submission: MAIL refused until AUTH
  bool reuse_port = false;            ///< SO_REUSEPORT, for one server per thread
};

class server {
 public:
  server(executor ex, std::shared_ptr<backend> be, server_options opts, log::logger logger = {});
  ~server();
  server(server const&) = delete;
  server& operator=(server const&) = delete;

  /// Binds and starts accepting. Returns the bound endpoint (port 0 picks a free port).
  result<asio::ip::tcp::endpoint> listen(listener_options const& opts);
  /// Accepts on an already bound and listening socket (socket activation: wrap the inherited
  /// fd with acceptor.assign(protocol, fd)); opts.endpoint is ignored.
  void listen(asio::ip::tcp::acceptor acceptor, listener_options const& opts);

  /// Runs one session on an established stream (any transport: an inetd-style inherited socket,
  /// a unix socket, a test stream); completes when it ends.
  task<void> serve(std::unique_ptr<net::stream> stream, asio::ip::tcp::endpoint remote,
                   asio::ip::tcp::endpoint local, listener_options const& opts);

  /// Stops accepting, greets idle clients with 421, lets transactions in progress finish for up
  /// to `grace`, then closes what is left. Completes when every session has ended.
  task<void> shutdown(std::chrono::milliseconds grace = std::chrono::seconds(10));

  std::size_t active_sessions() const noexcept;
  server_options const& options() const noexcept;

  struct impl;

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace mailroom::smtp
