// TLS with mbedTLS over any net::stream.
//
// Contract: contexts are immutable once built and may be shared by many connections and threads
// (each thread draws randomness from its own DRBG). accept()/connect() take ownership of the
// lower stream, run the handshake under the lower stream's deadlines, and return a stream whose
// tls() details are set. Errors are tls::errc or mbedTLS codes (negative values, message from
// mbedtls_strerror) in the "mailroom.tls" category, or the lower stream's own errors.
//
// Deadlines: the lower stream's timeouts (set_timeouts forwards to it) bound each wait for the
// peer during the handshake, reads and writes. The peer's close_notify reads as net::errc::eof.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mailroom/core/result.hpp"
#include "mailroom/core/task.hpp"
#include "mailroom/net/stream.hpp"

namespace mailroom::net::tls {

enum class errc {
  bad_certificate = 1,  ///< certificate or key could not be parsed, or they do not match
  handshake_failed,     ///< the peer's handshake was malformed or rejected
  verify_failed,        ///< the peer's certificate did not verify against the trust anchors
  closed,               ///< the session is over (after shutdown() or a fatal TLS error)
};
std::error_category const& category() noexcept;
inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

/// A certificate chain and private key, PEM encoded.
struct key_pair {
  std::string cert_pem;
  std::string key_pem;
};

/// Reads a PEM file pair from disk.
result<key_pair> load_key_pair(std::string const& cert_file, std::string const& key_file);

/// A fresh self-signed certificate (EC P-256, valid for `days`) for quick trials and tests.
/// `names` go into the subject CN (first) and subjectAltName DNS entries.
result<key_pair> generate_self_signed(std::vector<std::string> const& names, int days = 365);

class server_context {
 public:
  /// The default certificate, used when the client sends no SNI or an unknown name.
  static result<std::shared_ptr<server_context>> create(key_pair const& default_cert);
  ~server_context();

  /// An extra certificate selected when the client's SNI matches `host_name` (case-insensitive;
  /// "*.example.org" matches one label). Call before the context is used.
  result<void> add_sni_certificate(std::string const& host_name, key_pair const& kp);

  struct impl;
  impl& get() noexcept { return *impl_; }

 private:
  server_context();
  std::unique_ptr<impl> impl_;
};

enum class verify_mode {
  none,      ///< encrypt, do not check the peer (opportunistic SMTP)
  optional,  ///< check and record the result, continue on failure
  required,  ///< fail the handshake unless the chain and host name verify
};

class client_context {
 public:
  /// trust_pem_file: CA bundle; empty = the system bundle (/etc/ssl/certs/ca-certificates.crt).
  static result<std::shared_ptr<client_context>> create(verify_mode mode, std::string const& trust_pem_file = {});
  /// Trust anchors given directly as PEM (tests, pinned smarthosts).
  static result<std::shared_ptr<client_context>> create_with_trust(verify_mode mode, std::string_view trust_pem);
  /// Presents this certificate when a server asks for one.
  result<void> set_client_certificate(key_pair const& kp);
  ~client_context();

  struct impl;
  impl& get() noexcept { return *impl_; }

 private:
  client_context();
  std::unique_ptr<impl> impl_;
};

/// A process-wide client context for connections that bring none: verifying chain and name
/// against the system trust store (`verify`), or checking nothing. Contexts are immutable and
/// shared between connections and threads.
result<std::shared_ptr<client_context>> shared_client_context(bool verify);

/// Server side handshake over `next`. Fails with errc::verify_failed when a peer certificate was
/// rejected, errc::handshake_failed for any other TLS failure, or the lower stream's error
/// (net::errc::timeout, net::errc::eof) when the transport failed first.
task<result<std::unique_ptr<stream>>> accept(std::shared_ptr<server_context> ctx, std::unique_ptr<stream> next);

/// Client side handshake over `next`; server_name is sent as SNI and checked when verifying
/// (empty: no SNI, chain-only verification). Fails as accept() does.
task<result<std::unique_ptr<stream>>> connect(std::shared_ptr<client_context> ctx, std::unique_ptr<stream> next,
                                              std::string const& server_name);

}  // namespace mailroom::net::tls

template <>
struct std::is_error_code_enum<mailroom::net::tls::errc> : std::true_type {};
