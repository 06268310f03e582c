#include <algorithm>
#include <array>
#include <ctime>
#include <string>
#include <vector>

#include "mailroom/core/error.hpp"
#include "mailroom/net/tls/context.hpp"
#include "net/tls/detail/mbedtls.hpp"

#include <mbedtls/asn1write.h>
#include <mbedtls/bignum.h>
#include <mbedtls/ecp.h>
#include <mbedtls/oid.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/x509_crt.h>

namespace mailroom::net::tls {

namespace {

// RAII for the mbedTLS objects a certificate is built from.
struct builder {
  builder() {
    mbedtls_pk_init(&key);
    mbedtls_x509write_crt_init(&crt);
  }
  ~builder() {
    mbedtls_x509write_crt_free(&crt);
    mbedtls_pk_free(&key);
  }
  builder(builder const&) = delete;
  builder& operator=(builder const&) = delete;

  mbedtls_pk_context key;
  mbedtls_x509write_cert crt;
};

// X.509 validity timestamp "YYYYMMDDhhmmss" (UTC) for t.
std::string x509_time(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::array<char, 16> buf{};
  std::strftime(buf.data(), buf.size(), "%Y%m%d%H%M%S", &tm);
  return buf.data();
}

// subjectAltName ::= SEQUENCE OF GeneralName, each dNSName [2] IMPLICIT IA5String (RFC 5280 4.2.1.6).
// asn1write fills buffers from the end, so names are written last to first.
result<std::vector<unsigned char>> san_extension(std::vector<std::string> const& names) {
  std::size_t cap = 16;
  for (auto const& n : names) cap += n.size() + 8;
  std::vector<unsigned char> buf(cap);
  unsigned char* const start = buf.data();
  unsigned char* p = start + buf.size();
  std::size_t total = 0;
  auto add = [&total](int rc) {
    if (rc < 0) return rc;
    total += static_cast<std::size_t>(rc);
    return 0;
  };
  for (auto it = names.rbegin(); it != names.rend(); ++it) {
    std::size_t const before = total;
    int rc = add(mbedtls_asn1_write_raw_buffer(&p, start, reinterpret_cast<unsigned char const*>(it->data()),
                                               it->size()));
    if (!rc) rc = add(mbedtls_asn1_write_len(&p, start, total - before));
    if (!rc) rc = add(mbedtls_asn1_write_tag(&p, start, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2));
    if (rc) return fail(detail::mbedtls_error(rc));
  }
  int rc = add(mbedtls_asn1_write_len(&p, start, total));
  if (!rc) rc = add(mbedtls_asn1_write_tag(&p, start, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
  if (rc) return fail(detail::mbedtls_error(rc));
  return std::vector<unsigned char>(p, start + buf.size());
}

// A positive 127-bit serial number with a non-zero leading byte (so it is already minimal DER).
int set_random_serial(mbedtls_x509write_cert* crt) {
  std::array<unsigned char, 16> serial{};
  if (int rc = detail::thread_rng(nullptr, serial.data(), serial.size())) return rc;
  serial[0] = static_cast<unsigned char>((serial[0] & 0x7f) | 0x40);
#if MBEDTLS_VERSION_NUMBER >= 0x03040000
  return mbedtls_x509write_crt_set_serial_raw(crt, serial.data(), serial.size());
#else
  mbedtls_mpi mpi;
  mbedtls_mpi_init(&mpi);
  int rc = mbedtls_mpi_read_binary(&mpi, serial.data(), serial.size());
  if (!rc) rc = mbedtls_x509write_crt_set_serial(crt, &mpi);
  mbedtls_mpi_free(&mpi);
  return rc;
#endif
}

}  // namespace

result<key_pair> generate_self_signed(std::vector<std::string> const& names, int days) {
  if (names.empty() || days <= 0) return fail(mailroom::errc::invalid_argument);
  for (auto const& n : names)
    if (!detail::valid_dns_name(n)) return fail(mailroom::errc::invalid_argument);

  builder b;
  int rc = mbedtls_pk_setup(&b.key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
  if (rc == 0) rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(b.key), detail::thread_rng, nullptr);
  if (rc != 0) return fail(detail::mbedtls_error(rc));

  std::time_t const now = std::time(nullptr);
  std::string const not_before = x509_time(now);
  std::string const not_after = x509_time(now + static_cast<std::time_t>(days) * 86400);
  std::string const dn = "CN=" + names.front();
  auto san = san_extension(names);
  if (!san) return fail(san.error());

  mbedtls_x509write_crt_set_version(&b.crt, MBEDTLS_X509_CRT_VERSION_3);
  mbedtls_x509write_crt_set_md_alg(&b.crt, MBEDTLS_MD_SHA256);
  mbedtls_x509write_crt_set_subject_key(&b.crt, &b.key);
  mbedtls_x509write_crt_set_issuer_key(&b.crt, &b.key);
  rc = mbedtls_x509write_crt_set_subject_name(&b.crt, dn.c_str());
  if (rc == 0) rc = mbedtls_x509write_crt_set_issuer_name(&b.crt, dn.c_str());
  if (rc == 0) rc = set_random_serial(&b.crt);
  if (rc == 0) rc = mbedtls_x509write_crt_set_validity(&b.crt, not_before.c_str(), not_after.c_str());
  if (rc == 0) rc = mbedtls_x509write_crt_set_basic_constraints(&b.crt, 0, -1);
  if (rc == 0) rc = mbedtls_x509write_crt_set_key_usage(&b.crt, MBEDTLS_X509_KU_DIGITAL_SIGNATURE);
  if (rc == 0)
    rc = mbedtls_x509write_crt_set_extension(&b.crt, MBEDTLS_OID_SUBJECT_ALT_NAME,
                                             MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0, san->data(),
                                             san->size());
  if (rc != 0) return fail(detail::mbedtls_error(rc));

  std::vector<unsigned char> pem(4096 + 2 * san->size());
  rc = mbedtls_x509write_crt_pem(&b.crt, pem.data(), pem.size(), detail::thread_rng, nullptr);
  if (rc != 0) return fail(detail::mbedtls_error(rc));
  key_pair kp;
  kp.cert_pem = reinterpret_cast<char const*>(pem.data());
  std::fill(pem.begin(), pem.end(), 0);
  rc = mbedtls_pk_write_key_pem(&b.key, pem.data(), pem.size());
  if (rc != 0) return fail(detail::mbedtls_error(rc));
  kp.key_pem = reinterpret_cast<char const*>(pem.data());
  mbedtls_platform_zeroize(pem.data(), pem.size());
  return kp;
}

}  // namespace mailroom::net::tls
