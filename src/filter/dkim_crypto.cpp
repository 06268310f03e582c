// RSA keys, signatures and their verification for DKIM through mbedTLS (2.28 and 3.x).
#include <mbedtls/version.h>  // first: the build configuration in 2.x and 3.x alike

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/rsa.h>

#include <mutex>

#include "filter/detail/dkim.hpp"
#include "mailroom/core/base64.hpp"
#include "mailroom/filter/dkim.hpp"

namespace mailroom::filter::dkim {

namespace {

constexpr unsigned min_bits = 1024;
constexpr unsigned max_bits = 8192;

unsigned char const* bytes(std::string_view s) noexcept { return reinterpret_cast<unsigned char const*>(s.data()); }

// The calling thread's CTR-DRBG, seeded from the OS on first use (RSA blinding, key generation).
struct random_source {
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
  int seed_rc = 0;
  random_source() {
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    static constexpr std::string_view label = "mailroom-dkim";
    seed_rc = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, bytes(label), label.size());
  }
  ~random_source() {
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
  }
  random_source(random_source const&) = delete;
  random_source& operator=(random_source const&) = delete;
};

int thread_random(void*, unsigned char* out, std::size_t len) {
  thread_local random_source src;
  if (src.seed_rc != 0) return src.seed_rc;
  while (len > 0) {
    std::size_t const n = len < MBEDTLS_CTR_DRBG_MAX_REQUEST ? len : MBEDTLS_CTR_DRBG_MAX_REQUEST;
    if (int rc = mbedtls_ctr_drbg_random(&src.drbg, out, n)) return rc;
    out += n;
    len -= n;
  }
  return 0;
}

struct pk_holder {
  mbedtls_pk_context pk;
  pk_holder() { mbedtls_pk_init(&pk); }
  ~pk_holder() { mbedtls_pk_free(&pk); }
  pk_holder(pk_holder const&) = delete;
  pk_holder& operator=(pk_holder const&) = delete;
};

std::error_code check_size(mbedtls_pk_context const* pk) {
  auto const bits = mbedtls_pk_get_bitlen(pk);
  if (bits < min_bits) return make_error_code(errc::key_too_small);
  if (bits > max_bits) return make_error_code(errc::key_too_large);
  return {};
}

// DER length octets.
void append_length(std::string& out, std::size_t n) {
  if (n < 0x80) {
    out += static_cast<char>(n);
    return;
  }
  std::string digits;
  for (; n > 0; n >>= 8) digits.insert(digits.begin(), static_cast<char>(n & 0xff));
  out += static_cast<char>(0x80 | digits.size());
  out += digits;
}

// A bare PKCS#1 RSAPublicKey (as RFC 6376 3.6.1 literally says p= holds) wrapped into the
// SubjectPublicKeyInfo mbedTLS parses: SEQUENCE { AlgorithmIdentifier rsaEncryption, BIT STRING }.
std::string wrap_rsa_public_key(std::string_view pkcs1) {
  static constexpr char algorithm_id[] = "\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01\x05\x00";
  std::string bits("\x03", 1);
  append_length(bits, pkcs1.size() + 1);
  bits += '\0';
  bits += pkcs1;
  std::string body(algorithm_id, sizeof algorithm_id - 1);
  body += bits;
  std::string out("\x30", 1);
  append_length(out, body.size());
  return out + body;
}

int parse_public(mbedtls_pk_context* pk, std::string_view der) {
  return mbedtls_pk_parse_public_key(pk, bytes(der), der.size());
}

}  // namespace

struct private_key::impl {
  pk_holder key;
  std::mutex signing;  // RSA blinding updates the key context on every signature
};

private_key::private_key(std::unique_ptr<impl> p) : p_(std::move(p)) {}
private_key::~private_key() = default;

result<std::shared_ptr<private_key>> private_key::load_pem(std::string_view pem) {
  if (pem.size() > 64 * 1024) return fail(errc::bad_private_key);
  auto p = std::make_unique<impl>();
  std::string const text(pem);  // mbedTLS wants the PEM NUL-terminated, the NUL counted
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
  int rc = mbedtls_pk_parse_key(&p->key.pk, bytes(text), text.size() + 1, nullptr, 0, thread_random, nullptr);
#else
  int rc = mbedtls_pk_parse_key(&p->key.pk, bytes(text), text.size() + 1, nullptr, 0);
#endif
  if (rc != 0 || mbedtls_pk_get_type(&p->key.pk) != MBEDTLS_PK_RSA) return fail(errc::bad_private_key);
  if (auto ec = check_size(&p->key.pk)) return fail(ec);
  return std::make_shared<private_key>(std::move(p));
}

result<std::shared_ptr<private_key>> private_key::generate_rsa(unsigned bits) {
  if (bits < min_bits) return fail(errc::key_too_small);
  if (bits > max_bits) return fail(errc::key_too_large);
  auto p = std::make_unique<impl>();
  if (mbedtls_pk_setup(&p->key.pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)) != 0 ||
      mbedtls_rsa_gen_key(mbedtls_pk_rsa(p->key.pk), thread_random, nullptr, bits, 65537) != 0)
    return fail(errc::crypto_failure);
  return std::make_shared<private_key>(std::move(p));
}

unsigned private_key::bits() const noexcept { return static_cast<unsigned>(mbedtls_pk_get_bitlen(&p_->key.pk)); }

std::string private_key::private_pem() const {
  std::string buf(16 * 1024, '\0');
  if (mbedtls_pk_write_key_pem(&p_->key.pk, reinterpret_cast<unsigned char*>(buf.data()), buf.size()) != 0) return {};
  buf.resize(buf.find('\0'));
  return buf;
}

std::string private_key::key_record() const {
  std::string buf(4096, '\0');
  int const n = mbedtls_pk_write_pubkey_der(&p_->key.pk, reinterpret_cast<unsigned char*>(buf.data()), buf.size());
  if (n <= 0) return {};
  // mbedTLS writes at the end of the buffer.
  return "v=DKIM1; k=rsa; p=" + base64::encode(std::string_view(buf).substr(buf.size() - static_cast<std::size_t>(n)));
}

namespace detail {

std::error_code rsa_verify(std::string_view public_key, std::string_view sha256, std::string_view sig) {
  if (public_key.size() > max_bits / 8 + 128) return make_error_code(errc::key_too_large);
  pk_holder pub;
  if (parse_public(&pub.pk, public_key) != 0) {
    mbedtls_pk_free(&pub.pk);
    mbedtls_pk_init(&pub.pk);
    if (parse_public(&pub.pk, wrap_rsa_public_key(public_key)) != 0) return make_error_code(errc::bad_key);
  }
  if (mbedtls_pk_get_type(&pub.pk) != MBEDTLS_PK_RSA) return make_error_code(errc::key_type_mismatch);
  if (auto ec = check_size(&pub.pk)) return ec;
  if (sig.size() != mbedtls_pk_get_len(&pub.pk)) return make_error_code(errc::signature_mismatch);
  if (mbedtls_pk_verify(&pub.pk, MBEDTLS_MD_SHA256, bytes(sha256), sha256.size(), bytes(sig), sig.size()) != 0)
    return make_error_code(errc::signature_mismatch);
  return {};
}

result<std::string> rsa_sign(private_key const& key, std::string_view sha256) {
  auto& k = key.get();
  std::lock_guard lock(k.signing);
  auto* pk = &k.key.pk;
  std::string sig(MBEDTLS_PK_SIGNATURE_MAX_SIZE, '\0');
  std::size_t len = 0;
  auto* out = reinterpret_cast<unsigned char*>(sig.data());
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
  int rc = mbedtls_pk_sign(pk, MBEDTLS_MD_SHA256, bytes(sha256), sha256.size(), out, sig.size(), &len, thread_random,
                           nullptr);
#else
  int rc = mbedtls_pk_sign(pk, MBEDTLS_MD_SHA256, bytes(sha256), sha256.size(), out, &len, thread_random, nullptr);
#endif
  if (rc != 0) return fail(errc::crypto_failure);
  sig.resize(len);
  return sig;
}

}  // namespace detail

}  // namespace mailroom::filter::dkim
