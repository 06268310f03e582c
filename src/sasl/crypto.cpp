#include "sasl/detail/crypto.hpp"

#include <stdexcept>

extern "C" {  // mbedTLS 2.28 ships this header without C++ guards
#include <mbedtls/constant_time.h>
}
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/md.h>
#include <mbedtls/pkcs5.h>
#include <mbedtls/version.h>

namespace mailroom::sasl::detail {
namespace {

unsigned char const* bytes(std::string_view s) noexcept { return reinterpret_cast<unsigned char const*>(s.data()); }
mbedtls_md_info_t const* sha256_info() noexcept { return mbedtls_md_info_from_type(MBEDTLS_MD_SHA256); }

class drbg {
 public:
  drbg() {
    mbedtls_entropy_init(&entropy_);
    mbedtls_ctr_drbg_init(&ctr_);
    static constexpr std::string_view personalization = "mailroom-sasl";
    if (mbedtls_ctr_drbg_seed(&ctr_, mbedtls_entropy_func, &entropy_, bytes(personalization), personalization.size()) != 0)
      seeded_ = false;
  }
  ~drbg() {
    mbedtls_ctr_drbg_free(&ctr_);
    mbedtls_entropy_free(&entropy_);
  }
  drbg(drbg const&) = delete;
  drbg& operator=(drbg const&) = delete;

  void fill(std::uint8_t* out, std::size_t n) {
    while (n > 0) {
      std::size_t const chunk = n < MBEDTLS_CTR_DRBG_MAX_REQUEST ? n : MBEDTLS_CTR_DRBG_MAX_REQUEST;
      if (!seeded_ || mbedtls_ctr_drbg_random(&ctr_, out, chunk) != 0)
        throw std::runtime_error("mailroom: random number generator failed");
      out += chunk;
      n -= chunk;
    }
  }

 private:
  mbedtls_entropy_context entropy_;
  mbedtls_ctr_drbg_context ctr_;
  bool seeded_ = true;
};

void check(int rc) {
  if (rc != 0) throw std::runtime_error("mailroom: SHA-256 is unavailable in this mbedTLS build");
}

}  // namespace

digest sha256(std::string_view data) {
  digest out{};
  check(mbedtls_md(sha256_info(), bytes(data), data.size(), out.data()));
  return out;
}

digest hmac_sha256(std::string_view key, std::string_view data) {
  digest out{};
  check(mbedtls_md_hmac(sha256_info(), bytes(key), key.size(), bytes(data), data.size(), out.data()));
  return out;
}

digest pbkdf2_sha256(std::string_view password, std::string_view salt, std::uint32_t iterations) {
  digest out{};
#if MBEDTLS_VERSION_NUMBER >= 0x03030000  // the md-context form is deprecated from 3.3
  check(mbedtls_pkcs5_pbkdf2_hmac_ext(MBEDTLS_MD_SHA256, bytes(password), password.size(), bytes(salt), salt.size(),
                                      iterations, static_cast<std::uint32_t>(out.size()), out.data()));
#else
  mbedtls_md_context_t ctx;
  mbedtls_md_init(&ctx);
  int rc = mbedtls_md_setup(&ctx, sha256_info(), 1);
  if (rc == 0)
    rc = mbedtls_pkcs5_pbkdf2_hmac(&ctx, bytes(password), password.size(), bytes(salt), salt.size(), iterations,
                                   static_cast<std::uint32_t>(out.size()), out.data());
  mbedtls_md_free(&ctx);
  check(rc);
#endif
  return out;
}

bool equal_constant_time(digest const& a, digest const& b) noexcept {
  return mbedtls_ct_memcmp(a.data(), b.data(), a.size()) == 0;
}

void random_bytes(std::uint8_t* out, std::size_t n) {
  thread_local drbg generator;
  generator.fill(out, n);
}

}  // namespace mailroom::sasl::detail
