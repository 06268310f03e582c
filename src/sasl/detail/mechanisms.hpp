// Constructors of the server mechanisms behind make_server_mechanism (private to src/sasl and
// its tests).
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "mailroom/sasl/server.hpp"

namespace mailroom::sasl::detail {

std::unique_ptr<server_mechanism> make_plain_server();
std::unique_ptr<server_mechanism> make_login_server();

/// SCRAM-SHA-256. server_nonce: the nonce part the server appends to the client's; empty means
/// 24 fresh random bytes in base64. A fixed value exists only to replay published test vectors.
std::unique_ptr<server_mechanism> make_scram_sha256_server(std::string server_nonce = {});

inline step_result failure(errc e) { return {step_result::kind::failure, {}, make_error_code(e)}; }
inline step_result challenge(std::string data) { return {step_result::kind::challenge, std::move(data), {}}; }

/// Upper bound of one client message for any mechanism here; longer input fails as malformed.
inline constexpr std::size_t max_message_size = 4096;

/// RFC 4616's bound on each of authzid, authcid and password (also applied by LOGIN).
inline constexpr std::size_t max_field_size = 255;

}  // namespace mailroom::sasl::detail
