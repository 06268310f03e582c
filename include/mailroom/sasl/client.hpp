// SASL client mechanisms (RFC 4422) as sans-I/O state machines: PLAIN (RFC 4616), LOGIN
// (draft-murchison-sasl-login) and SCRAM-SHA-256 (RFC 7677, RFC 5802; no channel binding, gs2
// flag "n"), for protocol clients that log in to a server (SMTP AUTH to a smarthost, IMAP/POP3
// fetchers).
//
// Contract: the protocol client sends initial_response() with the command when it has one (SMTP
// AUTH's initial response, IMAP SASL-IR), decodes each server challenge from base64 and answers
// with respond(); it accepts the server's final success only when complete() is true. SCRAM is
// complete only after the server proved it knows the password (its ServerSignature verified), so
// a server that says "235" without that proof is not trusted. A mechanism never does I/O and never
// logs secrets; the password is wiped when the mechanism is destroyed. User names and passwords
// are used as bytes (SASLprep is not applied, as on the server side).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailroom/core/result.hpp"
#include "mailroom/sasl/server.hpp"  // credentials, errc

namespace mailroom::sasl {

class client_mechanism {
 public:
  virtual ~client_mechanism() = default;
  virtual std::string_view name() const noexcept = 0;

  /// The initial response to send with the command, or nullopt for a mechanism that waits for
  /// the server's first challenge (LOGIN). An empty value goes on the wire as "=" (RFC 4954).
  virtual std::optional<std::string> initial_response() = 0;

  /// The answer to a decoded server challenge. Fails with errc::malformed when the challenge
  /// does not parse or is out of bounds (a SCRAM iteration count over max_scram_iterations),
  /// errc::authentication_failed when the server's proof is wrong or it reports an error
  /// (SCRAM "e="), errc::protocol_error for a challenge the mechanism does not expect now.
  /// After a failure every further call fails.
  virtual result<std::string> respond(std::string_view challenge) = 0;

  /// True once the server may declare success: everything is sent and, for SCRAM, the server's
  /// signature verified.
  virtual bool complete() const noexcept = 0;
};

/// Upper bound on the SCRAM iteration count a server may ask for: each iteration costs the client
/// an HMAC, so a hostile server could otherwise keep a client busy for hours.
inline constexpr std::uint32_t max_scram_iterations = 1'000'000;

/// Creates a mechanism by its IANA name ("SCRAM-SHA-256", "PLAIN", "LOGIN"), case-insensitive;
/// errc::unsupported_mechanism otherwise, errc::malformed when the credentials cannot be sent
/// with it (empty user, NUL in a field, fields over 255 octets for PLAIN/LOGIN).
result<std::unique_ptr<client_mechanism>> make_client_mechanism(std::string_view name, credentials creds);

/// The mechanism names make_client_mechanism knows, in order of preference (strongest first).
std::vector<std::string> supported_client_mechanisms();

}  // namespace mailroom::sasl
