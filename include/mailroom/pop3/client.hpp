// The POP3 client (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 SASL) for the mail
// retrieval agent: one connection, one command at a time.
//
// Contract:
// - The caller connects (net::tcp_stream::connect) and hands the stream over; login() does the
//   greeting, TLS and authentication; list(), retrieve(), dele() work in the TRANSACTION state;
//   quit() asks the server to apply the DELEs (UPDATE state) and closes. One operation at a time,
//   from the stream's executor; the client must outlive the operation.
// - Errors (result's error): I/O failures and deadlines (net::errc::timeout, net::errc::eof),
//   TLS failures (net::tls::errc), policy failures (pop3::errc::stls_unavailable,
//   auth_unavailable; a SCRAM server that cannot prove itself: sasl::errc::authentication_failed),
//   hostile or broken servers (pop3::errc::malformed_response, line_too_long, protocol_error),
//   and the server's -ERR: pop3::errc::auth_failed for refused credentials, errc::refused for
//   any other command, errc::no_uidl for UIDL. After a -ERR the session goes on (last_response()
//   has the server's line); after any other error the connection is closed and every further
//   operation fails with std::errc::not_connected.
// - Bounded memory whatever the server does: status and listing lines are capped at max_line,
//   a listing at max_listing entries, a message at retrieve()'s max_size; reads use a 4 KiB buffer.
// - Deadlines: every read has `timeout`; a status line (greeting, each command's answer, SASL
//   challenges) and the TLS handshake must also arrive whole within `timeout`, so a server
//   trickling a byte at a time cannot stretch them. Multi-line bodies only have the per-read
//   deadline (a large message may take longer than `timeout` as a whole).
// - Credentials: never sent without TLS unless allow_plaintext_auth; never logged (the dialogue
//   is logged at trace level with PASS and AUTH payloads replaced). TLS and policy outcomes are
//   logged at info/notice.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mailroom/core/log.hpp"
#include "mailroom/core/result.hpp"
#include "mailroom/core/task.hpp"
#include "mailroom/net/stream.hpp"
#include "mailroom/net/tls/policy.hpp"
#include "mailroom/pop3/response_reader.hpp"  // errc

namespace mailroom::net::tls {
class client_context;
}

namespace mailroom::pop3 {

struct client_options {
  /// STLS (RFC 2595) use. With implicit_tls TLS is always used, and the policy only picks the
  /// default context when tls_context is null: `verify` verifies, anything else checks nothing.
  net::tls::policy tls = net::tls::policy::required;
  bool implicit_tls = false;  ///< TLS from the first byte (port 995)
  /// The TLS client context; null as smtp::client: under `verify` the system trust store, under
  /// `opportunistic` and `required` a shared context that checks nothing. A context given is used
  /// as it is (a verifying one then verifies).
  std::shared_ptr<net::tls::client_context> tls_context;
  std::string tls_name;  ///< SNI and the name verified under `verify` (required there)
  std::string user, password;  ///< user must not be empty; neither may hold CR, LF or NUL
  bool allow_plaintext_auth = false;  ///< credentials without TLS only when true
  std::chrono::seconds timeout{120};  ///< every read (see the contract above)
  std::size_t max_line = 8192;        ///< status and listing lines, without the line end
  std::size_t max_listing = 1'000'000;  ///< entries of LIST/UIDL (errc::too_large beyond)
};

struct listing {
  std::uint32_t number = 0;
  std::uint64_t size = 0;  ///< octets as the server counts them (LIST)
  std::string uidl;        ///< 1 to 70 octets 0x21..0x7E (RFC 1939 7)
};

/// What CAPA offered (all false and empty when the server has no CAPA).
struct capabilities {
  bool stls = false, user = false, uidl = false, top = false, pipelining = false;
  std::vector<std::string> sasl;  ///< mechanisms, upper-cased
};

class client {
 public:
  client(std::unique_ptr<net::stream> s, client_options opts, log::logger logger = {});
  ~client();
  client(client&&) noexcept;
  client& operator=(client&&) noexcept;

  /// Greeting, CAPA, STLS per policy (CAPA again), then AUTH SCRAM-SHA-256 or PLAIN (in that
  /// order) when CAPA lists them under SASL (RFC 5034), else USER/PASS (when CAPA lists USER, or
  /// the server has no CAPA). A -ERR greeting or STLS reply is errc::refused; refused
  /// credentials errc::auth_failed (the connection stays open: call quit()). Call once;
  /// mailroom::errc::invalid_argument for bad options (empty user, CR/LF in credentials,
  /// `verify` without tls_name).
  task<result<void>> login();

  /// UIDL and LIST merged by message number (RFC 1939), in ascending order. errc::no_uidl when
  /// the server answers -ERR to UIDL; errc::protocol_error when the two listings name different
  /// messages or a line is not "number value".
  task<result<std::vector<listing>>> list();

  /// RETR n: the message with dot-stuffing removed and CRLF line ends, at most max_size octets.
  /// A larger message is errc::too_large and the connection is closed at once (not drained: a
  /// hostile server could send forever); compare list()'s sizes with max_size first to skip
  /// large messages without losing the session. EOF or a deadline before the final "." is an
  /// error, never a truncated message. errc::refused for a -ERR (no such message).
  task<result<std::string>> retrieve(std::uint32_t n, std::uint64_t max_size);

  /// DELE n: marks the message; it is deleted at quit(). errc::refused for a -ERR.
  task<result<void>> dele(std::uint32_t n);

  /// QUIT: the server applies DELEs now (UPDATE state); errc::refused when it did not say +OK
  /// (some DELEs may not have been applied). The connection is closed in every case.
  task<result<void>> quit();

  /// The last status line the server sent, without its line end ("-ERR [AUTH] ..."); empty
  /// before the greeting.
  std::string const& last_response() const noexcept;
  capabilities const& capa() const noexcept;
  bool tls() const noexcept;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace mailroom::pop3
