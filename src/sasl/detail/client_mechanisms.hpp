// Constructors of the client mechanisms behind make_client_mechanism (private to src/sasl and
// its tests).
#pragma once

#include <memory>
#include <string>

#include "mailroom/sasl/client.hpp"

namespace mailroom::sasl::detail {

/// SCRAM-SHA-256 client. client_nonce: empty means 24 fresh random bytes in base64; a fixed value
/// exists only to replay published test vectors (RFC 7677 section 3).
std::unique_ptr<client_mechanism> make_scram_sha256_client(credentials creds, std::string client_nonce = {});

}  // namespace mailroom::sasl::detail
