// mbedTLS plumbing shared by the TLS sources (private to src/net/tls): version shims, the
// per-thread random generator, error mapping and the context internals the stream needs.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <mbedtls/version.h>  // first: pulls in the build configuration in 2.x and 3.x alike

#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "mailroom/core/result.hpp"
#include "mailroom/net/tls/context.hpp"

namespace mailroom::net::tls::detail {

/// mbedTLS RNG callback drawing from a CTR-DRBG owned by the calling thread (seeded from the OS
/// entropy source on first use), so one shared ssl_config serves connections on any thread.
/// `p_rng` is ignored; pass nullptr.
int thread_rng(void* p_rng, unsigned char* out, std::size_t len);

/// A negative mbedTLS return code as an error in the "mailroom.tls" category.
std::error_code mbedtls_error(int rc) noexcept;

/// A certificate chain and its private key, parsed.
class credential {
 public:
  credential();
  ~credential();
  credential(credential const&) = delete;
  credential& operator=(credential const&) = delete;

  /// Parses kp; fails with errc::bad_certificate when either part does not parse or the key
  /// does not belong to the first certificate.
  result<void> load(key_pair const& kp);

  mbedtls_x509_crt* chain() noexcept { return &chain_; }
  mbedtls_pk_context* key() noexcept { return &key_; }

 private:
  mbedtls_x509_crt chain_;
  mbedtls_pk_context key_;
};

/// A DNS name as certificates and SNI entries carry it: LDH labels joined by single dots, at most
/// 253 characters, optionally "*." first. (Anything else could also corrupt a subject DN string.)
bool valid_dns_name(std::string_view name) noexcept;

/// True when an SNI host name selects a certificate registered for `pattern`: equal ignoring
/// ASCII case, or pattern "*.rest" and name is exactly one non-empty label followed by ".rest".
bool sni_matches(std::string_view pattern, std::string_view name) noexcept;

/// Where the server's SNI callback records the name a client asked for. The callback runs inside
/// mbedtls_ssl_handshake on the calling thread; the stream sets this around each handshake step.
extern thread_local std::string* sni_sink;

}  // namespace mailroom::net::tls::detail

namespace mailroom::net::tls {

struct server_context::impl {
  impl();
  ~impl();
  impl(impl const&) = delete;
  impl& operator=(impl const&) = delete;

  struct sni_entry {
    std::string pattern;
    detail::credential cred;
  };

  mbedtls_ssl_config conf;
  detail::credential default_cred;
  std::vector<std::unique_ptr<sni_entry>> sni;  // exact names are tried before wildcards
};

struct client_context::impl {
  impl();
  ~impl();
  impl(impl const&) = delete;
  impl& operator=(impl const&) = delete;

  mbedtls_ssl_config conf;
  mbedtls_x509_crt trust;
  std::unique_ptr<detail::credential> own;  // set_client_certificate
  verify_mode mode = verify_mode::required;
};

}  // namespace mailroom::net::tls
