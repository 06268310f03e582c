// SASL server mechanisms (RFC 4422) as sans-I/O state machines: PLAIN (RFC 4616), LOGIN
// (draft-murchison-sasl-login) and SCRAM-SHA-256 (RFC 7677, RFC 5802; no channel binding).
//
// Contract: the protocol session decodes the client's base64 and feeds raw bytes to step(); the
// mechanism answers with a challenge to send, or asks the session to consult the auth backend
// (check_password for PLAIN/LOGIN, need_scram_secret for SCRAM), or finishes. A mechanism never
// does I/O and never logs secrets. An empty initial response (SASL-IR "=") is step("", true).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mailroom/core/result.hpp"

namespace mailroom::sasl {

enum class errc {
  malformed = 1,       ///< the client's message does not parse (reply 501 / BAD)
  unsupported_mechanism,
  authentication_failed,  ///< wrong credentials or proof (reply 535 / NO)
  cancelled,           ///< the client sent "*"
  protocol_error,      ///< step() called in the wrong state
};
std::error_category const& category() noexcept;
inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

/// What PLAIN and LOGIN learn from the client.
struct credentials {
  std::string authzid;   ///< requested authorization identity, often empty
  std::string authcid;   ///< user name
  std::string password;
};

/// The per-user secret SCRAM-SHA-256 needs from the backend (never the password itself).
struct scram_secret {
  std::string salt;  ///< raw bytes
  std::uint32_t iterations = 4096;
  std::array<std::uint8_t, 32> stored_key{};
  std::array<std::uint8_t, 32> server_key{};
};

/// Derives the SCRAM-SHA-256 secret from a password (PBKDF2-HMAC-SHA-256). salt: raw bytes.
scram_secret make_scram_secret(std::string_view password, std::string_view salt, std::uint32_t iterations = 4096);

struct step_result {
  enum class kind {
    challenge,          ///< send `data` to the client, then step() with its answer
    check_password,     ///< verify credentials() with the backend, then call password_checked()
    need_scram_secret,  ///< look up scram_user() with the backend, then call set_scram_secret()
    success,            ///< authenticated as authcid(); `data` (may be empty) is final server data
    failure,            ///< `error` says why
  };
  kind k = kind::failure;
  std::string data;
  std::error_code error;
};

class server_mechanism {
 public:
  virtual ~server_mechanism() = default;
  virtual std::string_view name() const noexcept = 0;

  /// Feeds the client's (decoded) response. The first call carries the initial response, or
  /// is made with `initial = false` and empty data when the client sent none.
  virtual step_result step(std::string_view client_data, bool initial = false) = 0;

  /// PLAIN/LOGIN: the credentials to check once step() returned check_password.
  virtual credentials const* pending_credentials() const noexcept { return nullptr; }
  /// PLAIN/LOGIN: the backend's verdict; returns success or failure.
  virtual step_result password_checked(bool ok) { return {step_result::kind::failure, {}, make_error_code(errc::protocol_error)}; }

  /// SCRAM: the user whose secret is needed after need_scram_secret.
  virtual std::string_view scram_user() const noexcept { return {}; }
  /// SCRAM: the backend's secret, or nullptr when the user is unknown (the exchange still runs to
  /// the end with a fake secret so unknown users cannot be told apart, then fails).
  virtual step_result set_scram_secret(scram_secret const* secret) { return {step_result::kind::failure, {}, make_error_code(errc::protocol_error)}; }

  /// The authenticated user (authcid), valid after success.
  virtual std::string const& authcid() const noexcept = 0;
  /// The requested authorization identity, valid after success (empty = same as authcid).
  virtual std::string const& authzid() const noexcept = 0;
};

/// Creates a mechanism by its IANA name ("PLAIN", "LOGIN", "SCRAM-SHA-256"), case-insensitive.
result<std::unique_ptr<server_mechanism>> make_server_mechanism(std::string_view name);

/// The mechanism names make_server_mechanism knows, strongest first.
std::vector<std::string> supported_server_mechanisms();

}  // namespace mailroom::sasl

template <>
struct std::is_error_code_enum<mailroom::sasl::errc> : std::true_type {};
