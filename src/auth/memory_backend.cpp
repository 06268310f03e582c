extern "C" {  // mbedTLS 2.28 ships this header without C++ guards
#include <mbedtls/constant_time.h>
}
#include <mbedtls/entropy.h>
#include <mbedtls/platform_util.h>

#include <optional>
#include <stdexcept>

#include "mailroom/auth/backend.hpp"

namespace mailroom::auth {
namespace {

constexpr std::size_t salt_size = 16;
constexpr std::uint32_t iterations = 4096;

/// A fresh salt from the OS entropy source (a salt must be unique, not secret).
std::string random_salt() {
  std::string salt(salt_size, '\0');
  mbedtls_entropy_context entropy;
  mbedtls_entropy_init(&entropy);
  int const rc = mbedtls_entropy_func(&entropy, reinterpret_cast<unsigned char*>(salt.data()), salt.size());
  mbedtls_entropy_free(&entropy);
  if (rc != 0) throw std::runtime_error("mailroom: entropy source failed");
  return salt;
}

/// Whether password derives the same StoredKey as secret, in time independent of where they differ.
bool matches(sasl::scram_secret const& secret, std::string_view password) {
  auto candidate = sasl::make_scram_secret(password, secret.salt, secret.iterations);
  bool const same = mbedtls_ct_memcmp(candidate.stored_key.data(), secret.stored_key.data(), secret.stored_key.size()) == 0;
  mbedtls_platform_zeroize(candidate.server_key.data(), candidate.server_key.size());
  return same;
}

using user_map = std::map<std::string, sasl::scram_secret, std::less<>>;

std::optional<sasl::scram_secret> find_secret(std::mutex& mutex, user_map const& users, std::string_view user) {
  std::lock_guard lock(mutex);
  if (auto it = users.find(user); it != users.end()) return it->second;
  return std::nullopt;
}

}  // namespace

void memory_backend::add_user(std::string const& user, std::string_view password) {
  auto secret = sasl::make_scram_secret(password, random_salt(), iterations);
  std::lock_guard lock(mutex_);
  users_.insert_or_assign(user, std::move(secret));
}

task<result<identity>> memory_backend::authenticate(sasl::credentials const& creds) {
  auto const secret = find_secret(mutex_, users_, creds.authcid);
  if (!secret) {
    // Spend the same work as for a known user so timing does not reveal which names exist.
    static sasl::scram_secret const decoy = sasl::make_scram_secret({}, random_salt(), iterations);
    matches(decoy, creds.password);
    co_return fail(errc::unknown_credentials);
  }
  bool const ok = matches(*secret, creds.password);
  // No proxy authorization: the authorization identity, if given, must be the user itself.
  if (!ok || (!creds.authzid.empty() && creds.authzid != creds.authcid)) co_return fail(errc::bad_credentials);
  co_return identity{creds.authcid};
}

task<result<bool>> memory_backend::user_exists(std::string_view user) {
  co_return find_secret(mutex_, users_, user).has_value();
}

task<result<sasl::scram_secret>> memory_backend::scram_secret(std::string_view user) {
  auto secret = find_secret(mutex_, users_, user);
  if (!secret) co_return fail(errc::unknown_credentials);
  co_return std::move(*secret);
}

}  // namespace mailroom::auth
