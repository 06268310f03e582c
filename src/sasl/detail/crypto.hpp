// SHA-256 primitives for the SASL mechanisms, over mbedTLS (private to src/sasl).
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace mailroom::sasl::detail {

using digest = std::array<std::uint8_t, 32>;

inline std::string_view as_text(digest const& d) noexcept {
  return {reinterpret_cast<char const*>(d.data()), d.size()};
}

// These throw std::runtime_error only when mbedTLS was built without SHA-256.
digest sha256(std::string_view data);
digest hmac_sha256(std::string_view key, std::string_view data);
/// PBKDF2-HMAC-SHA-256 with one output block: SCRAM's Hi(password, salt, iterations).
digest pbkdf2_sha256(std::string_view password, std::string_view salt, std::uint32_t iterations);

/// Equality whose running time depends only on the length.
bool equal_constant_time(digest const& a, digest const& b) noexcept;

/// Fills out with bytes from a per-thread CTR-DRBG seeded from the OS entropy source; throws
/// std::runtime_error if the entropy source fails (nothing sensible can continue without it).
void random_bytes(std::uint8_t* out, std::size_t n);

}  // namespace mailroom::sasl::detail
